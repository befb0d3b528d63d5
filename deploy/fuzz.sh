#!/usr/bin/env bash
# Run every fuzz target for the given time each (default 30s). New crashers land in testdata/fuzz, where
# `go test` replays them from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-30s}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for fn in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "== $pkg $fn ($t)"
    go test "$pkg" -run '^$' -fuzz "^$fn\$" -fuzztime "$t"
  done
done
