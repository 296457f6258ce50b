#!/bin/bash
echo "start $(date -u +%T) $(uptime)"
/usr/bin/time -v go-built-bench --modes epoch-loopback --epoch-grid 1e4/1e8,1e5/1e8,1e6/1e8 --suites 2 --out bench/results-epoch-1e8
echo "end $(date -u +%T) $(uptime)"
