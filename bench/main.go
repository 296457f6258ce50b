// Command bench runs Overlap's benchmark harness (package bench/harness)
// and writes its results. See bench/RESULTS.md.
//
//	go run ./bench --quick            # a few minutes on 2 cores (CI smoke test)
//	go run ./bench --out bench/out    # the default grid
package main

import (
	"os"

	"github.com/overlap-psi/overlap/bench/harness"
)

func main() {
	os.Exit(harness.Main(os.Args, os.Stdout, os.Stderr))
}
