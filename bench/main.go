// Command bench runs Overlap's benchmark harness (package bench/harness)
// and writes its results. See bench/RESULTS.md.
//
//	go run ./bench --quick                 # under a minute on 2 cores (CI smoke test)
//	go run ./bench --out bench/results     # the full grid, all modes: about 50 minutes on 2 cores
//	go run ./bench --modes loopback --grid 1e5/1e6
//
// The loopback modes (loopback, private-loopback, epoch-loopback,
// records-loopback, private-records-loopback) re-execute this binary
// for their server and client processes (harness.RunChild, called from
// harness.Main).
package main

import (
	"os"

	"github.com/overlap-psi/overlap/bench/harness"
)

func main() {
	os.Exit(harness.Main(os.Args, os.Stdout, os.Stderr))
}
