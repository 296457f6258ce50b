#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time each (default 4s).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-4s}"
count=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $target ($fuzztime)"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >/tmp/fuzz.$$ 2>&1 || { cat /tmp/fuzz.$$; exit 1; }
    count=$((count + 1))
  done
done
rm -f /tmp/fuzz.$$
echo "$count fuzz targets ran"
