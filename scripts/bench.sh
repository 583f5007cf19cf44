#!/usr/bin/env bash
# Throughput of rgw-nats beside floors, in one run under one load generator:
# wrk (1 thread, 32 connections) POSTs a real 1 KiB RGW record over loopback
# to each target in turn, every target publishing to one nats-server process
# on the same machine. Prints a table with req/s and each row's ratio to its
# floor (a server that does the least an honest adapter can do). A benchmark,
# not a test: the numbers depend on the machine; compare ratios.
set -euo pipefail

prog=${0##*/}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
	cat <<USAGE
Usage: $prog [--duration SECONDS] [--rounds N] [--lua] [--rules] [--only KEYS] [--profile DIR]

Build rgw-nats, nats-server (from the version in go.mod) and the driver
(scripts/speed), start nats-server with JetStream on a loopback port, then
measure each row for SECONDS after a short warm-up and print the table.
Installs wrk with apt-get when it is missing (needs root).

Options:
  --duration SECONDS  measured time per row (default 10)
  --rounds N          measure every row N times (default 1); each ratio is
                      taken within a round, the table shows medians and the
                      range: use 3 or more on a shared machine
  --lua               also price the Lua path: a script that returns the
                      event as it came (the Lua path alone), the samples
                      (anonymize, route, filter, fanout), 10 and 100 records
                      per POST, records of 32 KiB, each against rgw-nats
                      without Lua on the same body; CPU per event
  --profile DIR       run the rgw-nats rows hosted by the driver, each with
                      a CPU profile written to DIR/ROW.pprof
  --rules             also price connection rules for raw RGW POSTs
                      (Connection: close every Nth response, IdleTimeout)
  --only KEYS         comma-separated row keys, e.g. floor-core,core-keepalive
  -h, --help          this text
USAGE
}

duration=10
extra=()
while [ "$#" -gt 0 ]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	--duration | --only | --rounds | --profile)
		[ "$#" -ge 2 ] || { echo "$prog: $1 needs a value" >&2; exit 2; }
		case "$1" in
		--duration) duration=$2 ;;
		--only) extra+=(-only "$2") ;;
		--rounds) extra+=(-rounds "$2") ;;
		--profile) mkdir -p "$2" && extra+=(-profile "$2") ;;
		esac
		shift
		;;
	--rules) extra+=(-rules) ;;
	--lua) extra+=(-lua) ;;
	*)
		echo "$prog: unknown argument $1 (see --help)" >&2
		exit 2
		;;
	esac
	shift
done
case "$duration" in
'' | *[!0-9]*) echo "$prog: --duration takes whole seconds" >&2; exit 2 ;;
esac
[ "$(uname -s)" = Linux ] || { echo "$prog: Linux only (reads /proc)" >&2; exit 2; }

if ! command -v wrk >/dev/null; then
	echo "installing wrk (Debian package)"
	apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/rgw-nats-bench.XXXXXX")
nats_pid=""
cleanup() {
	local rc=$?
	[ -z "$nats_pid" ] || kill "$nats_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bin=$("$root/scripts/build.sh" "$work/rgw-nats")
(cd "$root" && go build -o "$work/nats-server" github.com/nats-io/nats-server/v2 &&
	go build -o "$work/speed" ./scripts/speed)

# -p -1: nats-server picks a free port and logs it.
"$work/nats-server" -a 127.0.0.1 -p -1 -js -sd "$work/jetstream" >"$work/nats.log" 2>&1 &
nats_pid=$!
url=""
for _ in $(seq 200); do
	url=$(sed -n 's/.*Listening for client connections on \([0-9.:]*\).*/nats:\/\/\1/p' "$work/nats.log")
	[ -z "$url" ] || break
	kill -0 "$nats_pid" 2>/dev/null || { cat "$work/nats.log" >&2; exit 1; }
	sleep 0.05
done
[ -n "$url" ] || { echo "$prog: nats-server did not start" >&2; cat "$work/nats.log" >&2; exit 1; }

printf 'machine: %s, %s CPUs, %s, nats-server %s\n' "$(uname -srm)" "$(nproc)" "$(go env GOVERSION)" \
	"$("$work/nats-server" --version | awk '{print $NF}')"
"$work/speed" run -root "$root" -bin "$bin" -nats "$url" -nats-pid "$nats_pid" \
	-wrk "$(command -v wrk)" -d "${duration}s" "${extra[@]}"
