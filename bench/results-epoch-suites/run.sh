cd /work/main
echo "start $(date -u +%T) $(uptime)" > /tmp/epochrun.log
go-built-bench --modes epoch-loopback --epoch-grid 1e5/1e7 --suites 1,2 --out /tmp/bench-epoch-suites >> /tmp/epochrun.log 2>&1
echo "mid $(date -u +%T) $(uptime)" >> /tmp/epochrun.log
go-built-bench --modes private-loopback --private-grid 1e5/1e7 --suites 1 --out /tmp/bench-private-1e7 >> /tmp/epochrun.log 2>&1
echo "end $(date -u +%T) $(uptime)" >> /tmp/epochrun.log
