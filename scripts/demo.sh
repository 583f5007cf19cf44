#!/usr/bin/env bash
# The whole local flow in one go, on a bare machine (Go and curl needed, no
# NATS, no Ceph, no cluster): build rgw-nats, start it with its embedded
# NATS server, tail the NATS subjects, POST every sample RGW notification,
# show what arrived, stop everything.
set -euo pipefail

prog=${0##*/}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
	cat <<USAGE
Usage: $prog [--lua SCRIPT] [--keep] [FILE...]

Build and start rgw-nats (embedded NATS server, JetStream), tail what it
publishes, send FILEs (default: every sample in samples/events/) the way RGW
POSTs them, print the CloudEvents that arrived on NATS, then stop.

Options:
  --lua SCRIPT   run this Lua transform (a file or a directory), e.g. samples/lua/anonymize.lua
  --keep         keep the work directory (binary, logs, JetStream store) and print its path
  -h, --help     this text

Environment:
  DEMO_HTTP_PORT   port of rgw-nats' HTTP ingress (default 18080)
  DEMO_NATS_PORT   port of the embedded NATS server (default 14222)
  Any rgw-nats variable (NATS_SUBJECT, CE_MODE, LUA_HMAC_KEY, ...) is passed through.
USAGE
}

lua=""
keep=false
files=()
while [ "$#" -gt 0 ]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	--lua)
		[ "$#" -ge 2 ] || { echo "$prog: --lua needs a script" >&2; exit 2; }
		lua=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
		shift
		;;
	--keep) keep=true ;;
	-*)
		echo "$prog: unknown option $1 (see --help)" >&2
		exit 2
		;;
	*) files+=("$1") ;;
	esac
	shift
done
command -v curl >/dev/null || { echo "$prog: curl is needed" >&2; exit 2; }
if [ "${#files[@]}" -eq 0 ]; then
	while IFS= read -r f; do files+=("$f"); done < <(find "$root/samples/events" -name '*.json' | sort)
fi

http_port=${DEMO_HTTP_PORT:-18080}
nats_port=${DEMO_NATS_PORT:-14222}
for p in "$http_port" "$nats_port"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		echo "$prog: port $p is in use; set DEMO_HTTP_PORT / DEMO_NATS_PORT" >&2
		exit 2
	fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/rgw-nats-demo.XXXXXX")
serve_pid=""
tail_pid=""
cleanup() {
	local rc=$?
	# Only the processes this script started, by pid.
	[ -z "$tail_pid" ] || kill "$tail_pid" 2>/dev/null || true
	[ -z "$serve_pid" ] || kill "$serve_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	if [ "$keep" = true ]; then
		echo "work directory kept: $work"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }

step "build"
bin=$("$root/scripts/build.sh" "$work/rgw-nats")
ls -l "$bin"

step "start rgw-nats on 127.0.0.1:$http_port (embedded NATS on 127.0.0.1:$nats_port)"
(
	unset NATS_URL
	export LISTEN_ADDRESS=127.0.0.1:$http_port
	export NATS_EMBEDDED_LISTEN=127.0.0.1:$nats_port
	export NATS_STORE_DIR=$work/jetstream
	export NATS_MODE=${NATS_MODE:-jetstream}
	export LOG_FORMAT=text
	export LUA_SCRIPT=$lua
	exec "$bin" serve
) >"$work/serve.log" 2>&1 &
serve_pid=$!
ready=false
for _ in $(seq 100); do
	if curl -fsS -o /dev/null "http://127.0.0.1:$http_port/health/readiness" 2>/dev/null; then
		ready=true
		break
	fi
	kill -0 "$serve_pid" 2>/dev/null || break
	sleep 0.1
done
if [ "$ready" = false ]; then
	echo "$prog: rgw-nats did not get ready:" >&2
	cat "$work/serve.log" >&2
	exit 1
fi
echo "ready"

step "tail (rgw-nats tail)"
NATS_URL=nats://127.0.0.1:$nats_port "$bin" tail -timeout 3s >"$work/tail.out" 2>"$work/tail.err" &
tail_pid=$!
for _ in $(seq 50); do
	grep -q '^tailing' "$work/tail.err" 2>/dev/null && break
	sleep 0.1
done
cat "$work/tail.err"

step "send ${#files[@]} payloads (rgw-nats send)"
sent_ok=true
"$bin" send -url "http://127.0.0.1:$http_port/" "${files[@]}" | sed "s|$root/||" || sent_ok=false

step "what arrived on NATS"
# tail exits after 3 s without a message.
wait "$tail_pid" || true
tail_pid=""
cat "$work/tail.out"
arrived=$(grep -c '^--- ' "$work/tail.out" || true)

step "stop"
kill -TERM "$serve_pid"
wait "$serve_pid" && echo "rgw-nats stopped cleanly" || echo "rgw-nats exit status $?"
serve_pid=""
grep -Ei 'level=(warn|error)' "$work/serve.log" || true

printf '\n%d events arrived on NATS from %d payloads\n' "$arrived" "${#files[@]}"
[ "$sent_ok" = true ] || { echo "$prog: some payloads were not accepted (see above)" >&2; exit 1; }
