#!/usr/bin/env bash
# The project's one test command (README, .ci/run): every unit, end-to-end,
# packaging and example test, then each fuzz target for a short while.
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

echo "== go test ./..."
go test -count=1 -timeout 20m ./...

echo "== go test -race ./..."
go test -count=1 -race -timeout 30m ./...

if [ "$fuzztime" != 0 ]; then
  # go test -fuzz takes one target of one package at a time.
  for pkg in $(go list ./...); do
    for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
      echo "== fuzz $pkg $target ($fuzztime)"
      go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
    done
  done
fi
