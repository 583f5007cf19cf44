#!/usr/bin/env bash
# Cold start and footprint of the rgw-nats binary as it ships (static,
# stripped, scripts/build.sh), against a NATS server in a separate process:
# exec -> readiness 200, exec -> first event on NATS, idle RSS, RSS and
# throughput under a bounded loopback load. A benchmark, not a test: the
# numbers depend on the machine. Linux only (reads /proc).
set -euo pipefail

prog=${0##*/}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
nats_server_version=v2.15.2

usage() {
	cat <<USAGE
Usage: $prog [--runs N] [--requests N] [--concurrency N] [--mode core|jetstream]...

Build rgw-nats, start nats-server $nats_server_version (built once with go install into
the tools cache) on loopback, then time N cold starts of rgw-nats against it
and load the last one.

Options:
  --runs N          cold starts to time (default 20)
  --requests N      requests of the load phase (default 20000; bounded to 30 s)
  --concurrency N   concurrent clients of the load phase (default 32)
  --mode MODE       NATS_MODE; repeat to measure several (default: core and jetstream)
  -h, --help        this text

Environment:
  RGW_NATS_TOOLS    tools cache (default: \${XDG_CACHE_HOME:-~/.cache}/rgw-nats/tools)
  BENCH_NATS_PORT   port of the NATS server (default 14223)
USAGE
}

runs=20
requests=20000
concurrency=32
modes=()
while [ "$#" -gt 0 ]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	--runs | --requests | --concurrency | --mode)
		[ "$#" -ge 2 ] || { echo "$prog: $1 needs a value" >&2; exit 2; }
		case "$1" in
		--runs) runs=$2 ;;
		--requests) requests=$2 ;;
		--concurrency) concurrency=$2 ;;
		--mode) modes+=("$2") ;;
		esac
		shift
		;;
	*)
		echo "$prog: unknown argument $1 (see --help)" >&2
		exit 2
		;;
	esac
	shift
done
[ "${#modes[@]}" -gt 0 ] || modes=(core jetstream)
[ "$(uname -s)" = Linux ] || { echo "$prog: Linux only (reads /proc)" >&2; exit 2; }

tools=${RGW_NATS_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/rgw-nats/tools}
nats_server=$tools/nats-server@$nats_server_version/nats-server
if [ ! -x "$nats_server" ]; then
	echo "building nats-server $nats_server_version into $tools"
	mkdir -p "$(dirname "$nats_server")"
	(cd "$tools" && GOWORK=off GOFLAGS='' CGO_ENABLED=0 GOBIN=$(dirname "$nats_server") \
		go install "github.com/nats-io/nats-server/v2@$nats_server_version")
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
size=$(stat -c %s "$bin")
printf 'binary: %s bytes (%s MiB), static, stripped\n' "$size" "$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }')"

port=${BENCH_NATS_PORT:-14223}
"$nats_server" -a 127.0.0.1 -p "$port" -js -sd "$work/jetstream" >"$work/nats.log" 2>&1 &
nats_pid=$!
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	kill -0 "$nats_pid" 2>/dev/null || { cat "$work/nats.log" >&2; exit 1; }
	sleep 0.05
done

(cd "$root" && go build -o "$work/coldstart" ./scripts/coldstart)
printf 'machine: %s, %s CPUs\n' "$(uname -srm)" "$(nproc)"
for mode in "${modes[@]}"; do
	echo
	(cd "$root" && "$work/coldstart" -bin "$bin" -nats "nats://127.0.0.1:$port" -mode "$mode" \
		-runs "$runs" -requests "$requests" -c "$concurrency")
done
