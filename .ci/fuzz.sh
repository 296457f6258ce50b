#!/usr/bin/env bash
# Runs every fuzz target of the module for a fixed number of executions each
# (default 100000x). A count, not a duration: with a duration, Go 1.26's fuzz
# coordinator can report "context deadline exceeded" at the deadline without
# any failing input (go.dev/issue/75804, fixed in Go 1.27).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-100000x}"
count=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $target ($fuzztime)"
    start=$(date +%s)
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >/tmp/fuzz.$$ 2>&1 || { cat /tmp/fuzz.$$; exit 1; }
    echo "  $(( $(date +%s) - start )) s"
    count=$((count + 1))
  done
done
rm -f /tmp/fuzz.$$
echo "$count fuzz targets ran"
