#!/usr/bin/env bash
# Builds the rgw-nats binary as it ships: static (no cgo, no ELF
# interpreter), stripped, with reproducible paths. The Dockerfile's build
# stage runs this script, and so does the packaging test, so what the image
# gets is what the tests check.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/build.sh [OUTPUT]

Build ./cmd/rgw-nats into OUTPUT (default: bin/rgw-nats in the repository)
as a static, stripped executable, and print OUTPUT.

Cross-compile with GOOS and GOARCH, e.g. GOOS=linux GOARCH=arm64.
Extra flags for go build can be passed in GOFLAGS. REVISION names the commit
that `rgw-nats version` reports when there is no .git to read it from.
USAGE
}

case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
-*)
	usage >&2
	exit 2
	;;
esac
if [ "$#" -gt 1 ]; then
	usage >&2
	exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/bin/rgw-nats}
case "$out" in
/*) ;;
*) out="$PWD/$out" ;;
esac

cd "$root"
# CGO_ENABLED=0: pure-Go net and os/user, so the binary needs no libc and
# runs on a scratch image. -trimpath: no build machine paths in the binary.
# -s -w: no symbol table and no DWARF (panics still print stack traces).
# The commit, for `rgw-nats version` and the build_info metric: the go
# command stamps it from .git, which a Docker build context does not hold,
# so REVISION (docker build --build-arg REVISION=$(git rev-parse HEAD)) or
# git, when it can tell, names it instead.
ldflags="-s -w"
rev=${REVISION:-$(git -C "$root" rev-parse HEAD 2>/dev/null || true)}
if [ -n "$rev" ]; then
	ldflags="$ldflags -X github.com/rgw-nats/rgw-nats/internal/buildinfo.revision=$rev"
fi
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out" ./cmd/rgw-nats
echo "$out"
