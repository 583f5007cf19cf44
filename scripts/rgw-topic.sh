#!/usr/bin/env bash
# Creates the Ceph RGW topic that pushes bucket notifications to rgw-nats,
# and the bucket notification that uses it, with the aws CLI against any RGW
# endpoint. Run with --help for the options.
set -euo pipefail

prog=${0##*/}

usage() {
	cat <<USAGE
Usage: $prog [options] --endpoint RGW_URL --bucket BUCKET --push-endpoint URL

Create (or update) an RGW topic whose push-endpoint is rgw-nats, then make
BUCKET notify it. Uses the aws CLI: credentials come from its usual places
(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws).

Required:
  -e, --endpoint URL        RGW S3 endpoint, e.g. http://rgw.example:8080 (env RGW_ENDPOINT)
  -b, --bucket NAME         bucket whose events are sent (env BUCKET)
  -p, --push-endpoint URL   where RGW POSTs the notifications (env PUSH_ENDPOINT), e.g.
                            http://rgw-nats.<namespace>.svc.cluster.local/ (Knative, cluster-local)
                            http://localhost:8080/ (rgw-nats on the RGW host)
                            kafka://<bootstrap>:9092 (X-ray pipeline via Kafka and a KafkaSource)

Options:
  -t, --topic NAME          topic name (default: rgw-nats; env TOPIC)
  -u, --user USER           HTTP Basic user put into the push-endpoint URL (env PUSH_USER);
                            rgw-nats checks it against AUTH_USERNAME
      --password PASS       its password (env PUSH_PASSWORD; prefer the variable: arguments
                            show up in ps); rgw-nats checks it against AUTH_PASSWORD
      --events LIST         comma-separated event types
                            (default: s3:ObjectCreated:*,s3:ObjectRemoved:*)
      --prefix PREFIX       only keys starting with PREFIX
      --suffix SUFFIX       only keys ending with SUFFIX
      --id ID               notification id, the records' s3.configurationId (default: the topic name)
      --no-persistent       synchronous topic: one attempt, the S3 client waits for it, failures
                            are lost (default: persistent, retried until rgw-nats answers 2xx)
      --cloudevents         set cloudevents=true (RGW adds ce- headers; rgw-nats reads either form)
      --opaque-data DATA    copied into every record's opaqueData
      --max-retries N       persistent topics, Squid and later: give up after N attempts
      --retry-sleep SEC     persistent topics, Squid and later: wait between attempts
      --ttl SEC             persistent topics, Squid and later: drop entries older than SEC
      --insecure            do not verify rgw-nats' TLS certificate (verify-ssl=false)
      --region NAME         signing region, RGW's zonegroup (default: \$AWS_DEFAULT_REGION or "default")
      --dry-run             print the aws commands instead of running them
  -h, --help                this text

Notes:
  * put-bucket-notification-configuration replaces every notification the bucket
    has: add existing ones back if there are any (aws s3api get-bucket-notification-configuration).
  * RGW refuses a push-endpoint with credentials over plain http (and topic requests carrying
    them over plain http) unless rgw_allow_notification_secrets_in_cleartext is true.
  * Keys are not URL-encoded in records; prefix/suffix filters match the raw key.
USAGE
}

die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 2
}

# json_string prints $1 as a JSON string literal.
json_string() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/\\n}
	s=${s//$'\r'/\\r}
	s=${s//$'\t'/\\t}
	printf '"%s"' "$s"
}

# urlencode percent-encodes $1 for the userinfo part of a URL (RFC 3986:
# everything but unreserved characters).
urlencode() {
	local LC_ALL=C s=$1 out="" c i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case "$c" in
		[a-zA-Z0-9.~_-]) out+=$c ;;
		*) out+=$(printf '%%%02X' "'$c") ;;
		esac
	done
	printf '%s' "$out"
}

endpoint=${RGW_ENDPOINT:-}
bucket=${BUCKET:-}
push=${PUSH_ENDPOINT:-}
topic=${TOPIC:-rgw-nats}
user=${PUSH_USER:-}
password=${PUSH_PASSWORD:-}
events="s3:ObjectCreated:*,s3:ObjectRemoved:*"
prefix=""
suffix=""
id=""
persistent=true
cloudevents=false
opaque=""
max_retries=""
retry_sleep=""
ttl=""
insecure=false
region=${AWS_DEFAULT_REGION:-default}
dry_run=false

need() { [ "$#" -ge 2 ] || die "$1 needs a value"; }
while [ "$#" -gt 0 ]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	-e | --endpoint) need "$@"; endpoint=$2; shift ;;
	-b | --bucket) need "$@"; bucket=$2; shift ;;
	-p | --push-endpoint) need "$@"; push=$2; shift ;;
	-t | --topic) need "$@"; topic=$2; shift ;;
	-u | --user) need "$@"; user=$2; shift ;;
	--password) need "$@"; password=$2; shift ;;
	--events) need "$@"; events=$2; shift ;;
	--prefix) need "$@"; prefix=$2; shift ;;
	--suffix) need "$@"; suffix=$2; shift ;;
	--id) need "$@"; id=$2; shift ;;
	--no-persistent) persistent=false ;;
	--cloudevents) cloudevents=true ;;
	--opaque-data) need "$@"; opaque=$2; shift ;;
	--max-retries) need "$@"; max_retries=$2; shift ;;
	--retry-sleep) need "$@"; retry_sleep=$2; shift ;;
	--ttl) need "$@"; ttl=$2; shift ;;
	--insecure) insecure=true ;;
	--region) need "$@"; region=$2; shift ;;
	--dry-run) dry_run=true ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
	shift
done

[ -n "$endpoint" ] || die "--endpoint (or RGW_ENDPOINT) is required"
[ -n "$bucket" ] || die "--bucket (or BUCKET) is required"
[ -n "$push" ] || die "--push-endpoint (or PUSH_ENDPOINT) is required"
[[ $topic =~ ^[A-Za-z0-9_-]+$ ]] || die "topic name $topic: use letters, digits, - and _"
[ -n "$id" ] || id=$topic
for n in "$max_retries" "$retry_sleep" "$ttl"; do
	[[ -z $n || $n =~ ^[0-9]+$ ]] || die "--max-retries, --retry-sleep and --ttl take whole numbers"
done
if [ -n "$user$password" ] && { [ -z "$user" ] || [ -z "$password" ]; }; then
	die "--user and --password go together"
fi

case "$push" in
http://* | https://*) ;;
kafka://*) [ -z "$user" ] || die "credentials in the URL are for http(s) push-endpoints only" ;;
*) die "push-endpoint $push: want http://, https:// or kafka://" ;;
esac
scheme=${push%%://*}
rest=${push#*://}
hostpart=${rest%%/*}
if [[ $hostpart == *@* ]]; then
	die "push-endpoint already carries credentials; pass them with --user/--password instead"
fi
if [ -n "$user" ]; then
	push="$scheme://$(urlencode "$user"):$(urlencode "$password")@$rest"
	if [ "$scheme" = http ]; then
		printf '%s: warning: credentials over plain http: RGW needs rgw_allow_notification_secrets_in_cleartext=true\n' "$prog" >&2
	fi
fi

attrs="{\"push-endpoint\":$(json_string "$push"),\"persistent\":\"$persistent\""
[ "$cloudevents" = false ] || attrs+=",\"cloudevents\":\"true\""
[ -z "$opaque" ] || attrs+=",\"OpaqueData\":$(json_string "$opaque")"
[ "$insecure" = false ] || attrs+=",\"verify-ssl\":\"false\""
[ "$scheme" != kafka ] || attrs+=",\"kafka-ack-level\":\"broker\""
[ -z "$max_retries" ] || attrs+=",\"max_retries\":\"$max_retries\""
[ -z "$retry_sleep" ] || attrs+=",\"retry_sleep_duration\":\"$retry_sleep\""
[ -z "$ttl" ] || attrs+=",\"time_to_live\":\"$ttl\""
attrs+="}"

event_list=""
IFS=',' read -r -a event_array <<<"$events"
for e in "${event_array[@]}"; do
	[ -n "$e" ] || continue
	[[ $e == s3:* ]] || die "event $e: event types start with s3:, e.g. s3:ObjectCreated:*"
	event_list+="${event_list:+,}$(json_string "$e")"
done
[ -n "$event_list" ] || die "--events is empty"

rules=""
[ -z "$prefix" ] || rules+="{\"Name\":\"prefix\",\"Value\":$(json_string "$prefix")}"
[ -z "$suffix" ] || rules+="${rules:+,}{\"Name\":\"suffix\",\"Value\":$(json_string "$suffix")}"

aws_rgw() {
	local cmd=(aws --endpoint-url "$endpoint" --region "$region" "$@")
	if [ "$dry_run" = true ]; then
		printf '%q ' "${cmd[@]}"
		printf '\n'
	else
		"${cmd[@]}"
	fi
}

if [ "$dry_run" = true ]; then
	# RGW's ARN format; a real run takes the ARN RGW returns (it adds the tenant).
	arn="arn:aws:sns:$region::$topic"
	aws_rgw sns create-topic --name "$topic" --attributes "$attrs"
else
	arn=$(aws_rgw sns create-topic --name "$topic" --attributes "$attrs" --query TopicArn --output text)
	if [ -z "$arn" ] || [ "$arn" = None ]; then
		die "create-topic returned no TopicArn"
	fi
fi

config="{\"TopicConfigurations\":[{\"Id\":$(json_string "$id"),\"TopicArn\":$(json_string "$arn"),\"Events\":[$event_list]"
[ -z "$rules" ] || config+=",\"Filter\":{\"Key\":{\"FilterRules\":[$rules]}}"
config+="}]}"
aws_rgw s3api put-bucket-notification-configuration --bucket "$bucket" --notification-configuration "$config"

if [ "$dry_run" = false ]; then
	printf 'topic %s -> %s\nbucket %s notifies it of %s\n' "$arn" "${push/\/\/*@//***@}" "$bucket" "$events"
fi
