#!/usr/bin/env bash
# The project's one test command (README, .ci/run): every unit, end-to-end
# (a real Ceph RGW, installed as root), packaging and example test, then each
# fuzz target for a short while.
# FUZZTIME=0 skips the fuzzing; FUZZTIME=2m fuzzes longer.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
-h | --help)
  echo "Usage: scripts/test.sh    (FUZZTIME=10s by default; FUZZTIME=0 skips fuzzing)"
  exit 0 ;;
"") ;;
*)
  echo "scripts/test.sh takes no arguments (see --help)" >&2
  exit 2 ;;
esac

fuzztime=${FUZZTIME:-10s}

# adapter/lua's Lua 5.3 differential tests run snippets in the real
# interpreter too: Debian's lua5.3, installed here when missing (as root).
# Without it they skip with a one-line reason, except under CI, where they
# fail.
if ! command -v lua5.3 >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== apt-get install lua5.3 (the Lua 5.3 differential tests)"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends lua5.3 >/dev/null
  elif [ -n "${CI:-}" ]; then
    echo "lua5.3 is missing and cannot be installed here (not root, or no apt-get): the Lua 5.3 tests need it under CI" >&2
    exit 1
  else
    echo "== lua5.3 missing and not installable (not root): the Lua 5.3 differential tests skip"
  fi
fi

# The end-to-end test (e2e/) needs a real RGW: Debian's Ceph packages. It
# skips with its reason where they cannot be installed, except in CI.
echo "== Ceph lab packages (scripts/ceph-lab.sh install)"
if ! ./scripts/ceph-lab.sh install; then
  if [ "${CI:-}" = true ]; then
    echo "CI: the end-to-end test cannot run without them" >&2
    exit 1
  fi
  echo "   not installed: the end-to-end test will skip"
fi

echo "== go test ./..."
go test -count=1 -timeout 20m ./...

echo "== go test -race ./..."
go test -count=1 -race -timeout 30m ./...

if [ "$fuzztime" != 0 ]; then
  # go test -fuzz takes one target of one package at a time.
  for pkg in $(go list ./...); do
    for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
      echo "== fuzz $pkg $target ($fuzztime)"
      log=$(mktemp)
      if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$log"; then
        # Go's fuzzer sometimes ends a run with a bare "context deadline
        # exceeded" and no failing input when the time runs out while a
        # worker is busy: run that target once more; a real failure (an
        # input written to testdata/fuzz) or a second timeout fails.
        if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
          echo "== fuzz $pkg $target: the fuzzer timed out at the end without an input; once more"
          go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
        else
          rm -f "$log"
          exit 1
        fi
      fi
      rm -f "$log"
    done
  done
fi
