package harness

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Main is the command line of the harness, shared by `go run ./bench` and
// `overlap bench`. It returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "run the quick grid (a few minutes on 2 cores)")
	grid := fs.String("grid", "", "grid points as CLIENT/SERVER pairs, comma separated (e.g. 1000/10000,1e5/1e6)")
	out := fs.String("out", "bench/out", "directory for results.json, results.csv, results.md and plots")
	overlap := fs.Float64("overlap", 0.5, "fraction of the client's list that is in the server's set")
	seed := fs.Uint64("seed", 1, "data generation seed")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: bench [--quick] [--grid C/S,...] [--out DIR] [--overlap F] [--seed N]\n\n"+
			"Runs exact-mode sessions at a grid of sizes, checks each count against the true\n"+
			"overlap, and writes timings per phase, bytes on the wire, the lower bound from\n"+
			"measured per-operation costs, and plots.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	pairs := Default
	if *quick {
		pairs = Quick
	}
	if *grid != "" {
		var err error
		if pairs, err = parseGrid(*grid); err != nil {
			fmt.Fprintf(stderr, "bench: error: %v\n", err)
			return 2
		}
	}
	if *overlap < 0 || *overlap > 1 {
		fmt.Fprintf(stderr, "bench: error: --overlap %v is not in [0, 1]\n", *overlap)
		return 2
	}
	rep, err := Execute(Config{Pairs: pairs, Overlap: *overlap, Seed: *seed, Progress: stderr})
	if err != nil {
		fmt.Fprintf(stderr, "bench: error: %v\n", err)
		return 1
	}
	rep.Command = strings.Join(args, " ")
	md, err := Write(rep, *out)
	if err != nil {
		fmt.Fprintf(stderr, "bench: error: writing results: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, md)
	fmt.Fprintf(stderr, "results in %s (results.json, results.csv, results.md, time/efficiency/bytes .png and .svg)\n", *out)
	return 0
}

func parseGrid(s string) ([]Pair, error) {
	var pairs []Pair
	for _, part := range strings.Split(s, ",") {
		c, sv, ok := strings.Cut(strings.TrimSpace(part), "/")
		if !ok {
			return nil, fmt.Errorf("grid point %q is not CLIENT/SERVER", part)
		}
		cn, err1 := parseSize(c)
		sn, err2 := parseSize(sv)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("grid point %q: %w", part, err)
		}
		pairs = append(pairs, Pair{Client: cn, Server: sn})
	}
	return pairs, nil
}

func parseSize(s string) (int, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 1 || f > 1e8 || f != float64(int(f)) {
		return 0, fmt.Errorf("size %q is not a whole number in [1, 1e8]", s)
	}
	return int(f), nil
}
