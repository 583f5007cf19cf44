#!/usr/bin/env bash
# A throwaway single-node Ceph with RGW on 127.0.0.1, for the end-to-end test
# and for people who want to point a real RGW at rgw-nats. Everything it
# starts lives under one directory (config, data, pid files, admin sockets,
# logs); stop kills only the PIDs recorded there. Run with --help.
set -euo pipefail

prog=${0##*/}

usage() {
	cat <<USAGE
Usage: $prog install
       $prog [--debug-rgw N] start DIR
       $prog stop DIR
       $prog status DIR
       $prog env DIR

A single-node Ceph (one mon, one memstore OSD, one radosgw) on 127.0.0.1,
everything under DIR, no systemd. Needs root for install; start/stop do not
touch anything outside DIR.

Commands:
  install     apt-get install what is missing (ceph-mon ceph-osd radosgw
              ceph-common uuid-runtime awscli openssl curl, no recommends);
              runs apt-get update only when radosgw has no candidate
  start DIR   create and start the cluster in DIR (idempotent: a running lab
              is left alone, a half-dead one is rebuilt, since a restarted
              memstore OSD has lost its data), create an S3 user, write
              DIR/lab.env and print it
  stop DIR    stop the daemons whose PIDs DIR records (TERM, then KILL)
  status DIR  which daemons run, and ceph's health
  env DIR     print DIR/lab.env (export lines: endpoints, keys, paths)

Ports: mon 3300 (v2) and 6789 (v1); OSD 6800-7300; RGW S3 on
http://127.0.0.1:8000 (civetweb) and https://127.0.0.1:8443 (beast, a
self-signed certificate made in DIR). Create topics whose push-endpoint
carries user:password through the https port: RGW refuses secrets over
plain http.

Options:
  --debug-rgw N   RGW log level (default 1, env CEPH_LAB_DEBUG_RGW); 20 makes
                  Lua RGWDebugLog lines appear in DIR/log/rgw.log
  -h, --help      this text

Example:
  sudo $prog install
  $prog start /tmp/lab && . /tmp/lab/lab.env
  aws --endpoint-url "\$CEPH_LAB_ENDPOINT" s3 mb s3://demo
  $prog stop /tmp/lab
USAGE
}

die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 2
}

fail() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 1
}

packages=(ceph-mon ceph-osd radosgw ceph-common uuid-runtime awscli openssl curl)

# The daemons, by the name their pid file has.
daemons=(mon.a osd.0 client.rgw.lab)

cmd_install() {
	local missing=() p
	for p in "${packages[@]}"; do
		if ! dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	if [ ${#missing[@]} -eq 0 ]; then
		echo "$prog: all packages installed"
		return 0
	fi
	[ "$(id -u)" = 0 ] || fail "install needs root (missing: ${missing[*]})"
	if ! apt-cache policy radosgw 2>/dev/null | grep -q 'Candidate: [0-9]'; then
		apt-get update -q
	fi
	echo "$prog: installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# pid_of DIR NAME prints the PID of daemon NAME if it runs from DIR's config.
pid_of() {
	local dir=$1 name=$2 pid
	[ -f "$dir/run/$name.pid" ] || return 1
	pid=$(cat "$dir/run/$name.pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
	# A recycled PID belongs to someone else: the command line must name our config.
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/ceph.conf" || return 1
	echo "$pid"
}

running_count() {
	local dir=$1 n=0 d
	for d in "${daemons[@]}"; do
		if pid_of "$dir" "$d" >/dev/null; then
			n=$((n + 1))
		fi
	done
	echo "$n"
}

# wait_for SECONDS DESCRIPTION COMMAND... retries COMMAND every 0.2 s.
wait_for() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 5; i++)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.2
	done
	fail "timed out after ${secs}s waiting for $what (logs in $dir/log)"
}

write_conf() {
	local dir=$1 fsid=$2 debug=$3
	cat >"$dir/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:3300,v1:127.0.0.1:6789]
mon initial members = a
public network = 127.0.0.0/8
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
keyring = $dir/keyring
run dir = $dir/run
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
log to stderr = false
err to stderr = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0

[mon]
mon data = $dir/mon/\$cluster-\$id

[osd]
osd data = $dir/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 2147483648
osd max object name len = 256
osd max object namespace len = 64

[client.rgw.lab]
rgw data = $dir/rgw
# radosgw defaults to secure-only mon connections, which auth none cannot do.
ms mon client mode = crc secure
rgw frontends = civetweb port=127.0.0.1:8000 num_threads=32, beast ssl_endpoint=127.0.0.1:8443 ssl_certificate=$dir/tls/rgw.crt ssl_private_key=$dir/tls/rgw.key
debug rgw = $debug
CONF
}

write_env() {
	local dir=$1 access=$2 secret=$3
	cat >"$dir/lab.env" <<ENV
export CEPH_LAB_DIR='$dir'
export CEPH_LAB_CONF='$dir/ceph.conf'
export CEPH_LAB_ENDPOINT='http://127.0.0.1:8000'
export CEPH_LAB_TLS_ENDPOINT='https://127.0.0.1:8443'
export CEPH_LAB_RGW_LOG='$dir/log/client.rgw.lab.log'
export CEPH_LAB_USER='lab'
export AWS_ACCESS_KEY_ID='$access'
export AWS_SECRET_ACCESS_KEY='$secret'
export AWS_DEFAULT_REGION='default'
ENV
}

rgw_answers() {
	curl -fsS -o /dev/null http://127.0.0.1:8000/ &&
		curl -fsS -k -o /dev/null https://127.0.0.1:8443/
}

osd_up() {
	ceph -c "$dir/ceph.conf" --connect-timeout 5 osd dump 2>/dev/null | grep -q '^osd.0 up'
}

cmd_start() {
	local dir=$1 debug=$2
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	local n
	n=$(running_count "$dir")
	if [ "$n" = "${#daemons[@]}" ] && [ -f "$dir/lab.env" ]; then
		echo "$prog: lab in $dir already runs" >&2
		cat "$dir/lab.env"
		return 0
	fi
	if [ "$n" != 0 ] || [ -e "$dir/ceph.conf" ]; then
		echo "$prog: rebuilding the lab in $dir (a memstore cluster cannot be restarted)" >&2
		cmd_stop "$dir"
		rm -rf "$dir/mon" "$dir/osd" "$dir/rgw" "$dir/run" "$dir/log" "$dir/tls" \
			"$dir/ceph.conf" "$dir/keyring" "$dir/monmap" "$dir/lab.env"
	fi
	local p
	for p in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool uuidgen openssl curl; do
		command -v "$p" >/dev/null || fail "$p is missing: run '$prog install' first"
	done
	mkdir -p "$dir/mon/ceph-a" "$dir/osd/ceph-0" "$dir/rgw" "$dir/run" "$dir/log" "$dir/tls"
	local fsid
	fsid=$(uuidgen)
	write_conf "$dir" "$fsid" "$debug"
	: >"$dir/keyring"
	local c=(-c "$dir/ceph.conf")

	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=127.0.0.1 \
		-addext subjectAltName=IP:127.0.0.1 \
		-keyout "$dir/tls/rgw.key" -out "$dir/tls/rgw.crt" >/dev/null 2>&1 ||
		fail "openssl could not make the RGW certificate"

	monmaptool --create --fsid "$fsid" --addv a '[v2:127.0.0.1:3300,v1:127.0.0.1:6789]' \
		"$dir/monmap" >/dev/null
	ceph-mon "${c[@]}" --mkfs -i a --monmap "$dir/monmap" >"$dir/log/mkfs.log" 2>&1 ||
		fail "ceph-mon --mkfs failed: $dir/log/mkfs.log"
	ceph-mon "${c[@]}" -i a
	wait_for 30 "the monitor" ceph "${c[@]}" --connect-timeout 5 mon stat

	local uuid
	uuid=$(uuidgen)
	ceph "${c[@]}" osd new "$uuid" >/dev/null
	ceph-osd "${c[@]}" -i 0 --mkfs --osd-uuid "$uuid" >>"$dir/log/mkfs.log" 2>&1 ||
		fail "ceph-osd --mkfs failed: $dir/log/mkfs.log"
	ceph-osd "${c[@]}" -i 0
	wait_for 60 "the OSD" osd_up

	radosgw "${c[@]}" -n client.rgw.lab
	wait_for 90 "radosgw" rgw_answers

	local access secret
	access=$(head -c 10 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
	secret=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
	radosgw-admin "${c[@]}" user create --uid=lab --display-name="ceph-lab user" \
		--access-key="$access" --secret-key="$secret" >/dev/null ||
		fail "radosgw-admin user create failed"
	write_env "$dir" "$access" "$secret"
	cat "$dir/lab.env"
}

cmd_stop() {
	local dir=$1 d pid pids=()
	[ -d "$dir" ] || return 0
	dir=$(cd "$dir" && pwd)
	for d in "${daemons[@]}"; do
		if pid=$(pid_of "$dir" "$d"); then
			pids+=("$pid")
		fi
	done
	[ ${#pids[@]} -eq 0 ] && return 0
	kill -TERM "${pids[@]}" 2>/dev/null || true
	local i alive
	for ((i = 0; i < 50; i++)); do
		alive=()
		for pid in "${pids[@]}"; do
			if kill -0 "$pid" 2>/dev/null; then
				alive+=("$pid")
			fi
		done
		[ ${#alive[@]} -eq 0 ] && break
		sleep 0.2
	done
	if [ ${#alive[@]} -gt 0 ]; then
		kill -KILL "${alive[@]}" 2>/dev/null || true
	fi
	echo "$prog: stopped ${pids[*]}" >&2
}

cmd_status() {
	local dir=$1 d pid rc=0
	[ -d "$dir" ] || fail "no lab in $dir"
	dir=$(cd "$dir" && pwd)
	for d in "${daemons[@]}"; do
		if pid=$(pid_of "$dir" "$d"); then
			echo "$d running (pid $pid)"
		else
			echo "$d stopped"
			rc=1
		fi
	done
	if [ "$rc" = 0 ]; then
		ceph -c "$dir/ceph.conf" --connect-timeout 5 health || rc=1
	fi
	return "$rc"
}

cmd_env() {
	local dir=$1
	[ -f "$dir/lab.env" ] || fail "no lab.env in $dir (run '$prog start $dir')"
	cat "$dir/lab.env"
}

debug=${CEPH_LAB_DEBUG_RGW:-1}
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	--debug-rgw)
		[ $# -ge 2 ] || die "--debug-rgw needs a level"
		debug=$2
		shift 2
		;;
	--debug-rgw=*)
		debug=${1#*=}
		shift
		;;
	-*) die "unknown option $1 (see --help)" ;;
	*) break ;;
	esac
done
[[ "$debug" =~ ^[0-9]+$ ]] || die "--debug-rgw wants a number, not $debug"
[ $# -ge 1 ] || {
	usage >&2
	exit 2
}
command=$1
shift
case "$command" in
install)
	[ $# -eq 0 ] || die "install takes no arguments"
	cmd_install
	;;
start | stop | status | env)
	[ $# -eq 1 ] || die "$command takes one argument: DIR"
	[ -n "$1" ] || die "DIR is empty"
	"cmd_$command" "$1" "$debug"
	;;
*) die "unknown command $command (see --help)" ;;
esac
