package harness

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/overlap-psi/overlap/psi"
)

// Main is the command line of the harness, shared by `go run ./bench` and
// `overlap bench`. It returns the exit code. In a loopback child process
// (RunChild) it runs the child's role instead.
func Main(args []string, stdout, stderr io.Writer) int {
	if ok, code := RunChild(); ok {
		return code
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "run the quick grids (a few minutes on 2 cores)")
	grid := fs.String("grid", "", "grid points as CLIENT/SERVER pairs, comma separated (e.g. 1000/10000,1e5/1e6); also private mode's unless --private-grid")
	privateGrid := fs.String("private-grid", "", "grid points of the private modes, private and private-loopback (default 1e4/1e6,1e5/1e7; with --quick 1e3/1e4)")
	epochGrid := fs.String("epoch-grid", "", "grid points of epoch-loopback as CLIENT/SERVER pairs: one setup per SERVER size, then a session of each CLIENT size (default 1e4/1e6,1e5/1e6,1e6/1e6,1e4/1e7,1e5/1e7,1e6/1e7; with --quick 1e3/1e4)")
	recordsGrid := fs.String("records-grid", "", "grid points of the record modes, records-loopback and private-records-loopback, as CLIENT/SERVER pairs: CLIENT customers with an email and a phone each against SERVER platform people with an email and a phone each (default 1e5/1e6; with --quick 1e3/1e4)")
	epochDelta := fs.Float64("epoch-delta", 0, "TEST-ONLY: the bound on a setup's δ_E, larger than the protocol's 1e-6 (fewer ringers); 0 means 1e-6, --quick means 1e-2")
	modes := fs.String("modes", strings.Join(Modes, ","), "modes to run, comma separated: in-process, loopback, private, private-loopback, epoch-loopback, records-loopback, private-records-loopback")
	out := fs.String("out", "bench/out", "directory for results.json, results.csv, phases.csv, results.md and plots")
	overlap := fs.Float64("overlap", 0.5, "fraction of the client's list that is in the server's set")
	seed := fs.Uint64("seed", 1, "data generation seed")
	suites := fs.String("suites", "1,2", "ciphersuites every grid point runs in, side by side, comma separated (SPEC.md §12): 1 ristretto255, 2 curve25519 with the X25519 ladder; results.md gives the time ratio suite2/suite1 per grid point")
	pools := fs.String("pools", "cold,warm", "loopback runs of each grid point, comma separated: cold (the session encodes the set), warm (a pool of one set, filled first)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: bench [--quick] [--modes M,...] [--grid C/S,...] [--private-grid C/S,...] [--records-grid C/S,...] [--pools cold,warm] [--suites 1,2] [--out DIR] [--overlap F] [--seed N]\n\n"+
			"Runs sessions at a grid of sizes in each mode (in-process: exact mode in this\n"+
			"process; loopback: exact mode through the real service over TLS, one process per\n"+
			"side, cold and with a warm pool; private: private mode in this process;\n"+
			"private-loopback: private mode through the real service, one process per side;\n"+
			"epoch-loopback: an epoch's setup, then epoch sessions of several sizes against it,\n"+
			"through the real service, one process per side; records-loopback and\n"+
			"private-records-loopback: a record session of customers with an email and a\n"+
			"phone each, exact (mode 5, cold) or private (mode 6), and the two\n"+
			"identifier-level sessions it replaces, through the real service),\n"+
			"checks each count against the true overlap (a private release against the\n"+
			"noise's tail bound), and writes timings per phase, bytes on the\n"+
			"wire, peak memory, the lower bound from measured per-operation costs, and plots.\n"+
			"See bench/RESULTS.md.\n\n"+
			"With OVERLAP_BENCH_CPUPROFILE=DIR in the environment, every loopback child\n"+
			"writes a CPU profile of its run to DIR/ROLE-PID.pprof (go tool pprof).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: error: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	pairs, private, epoch, records, delta := Default, DefaultPrivate, DefaultEpoch, DefaultRecords, *epochDelta
	if *quick {
		pairs, private, epoch, records = Quick, QuickPrivate, QuickEpoch, QuickRecords
		if delta == 0 {
			delta = QuickEpochDelta
		}
	}
	if delta < 0 || delta >= 1 {
		fmt.Fprintf(stderr, "bench: error: --epoch-delta %v is not in [0, 1)\n", delta)
		return 2
	}
	if *grid != "" {
		var err error
		if pairs, err = parseGrid(*grid); err != nil {
			fmt.Fprintf(stderr, "bench: error: --grid: %v\n", err)
			return 2
		}
		private = pairs
	}
	if *privateGrid != "" {
		var err error
		if private, err = parseGrid(*privateGrid); err != nil {
			fmt.Fprintf(stderr, "bench: error: --private-grid: %v\n", err)
			return 2
		}
	}
	if *recordsGrid != "" {
		var err error
		if records, err = parseGrid(*recordsGrid); err != nil {
			fmt.Fprintf(stderr, "bench: error: --records-grid: %v\n", err)
			return 2
		}
	}
	if *epochGrid != "" {
		var err error
		if epoch, err = parseGrid(*epochGrid); err != nil {
			fmt.Fprintf(stderr, "bench: error: --epoch-grid: %v\n", err)
			return 2
		}
	}
	ms, err := parseModes(*modes)
	if err != nil {
		fmt.Fprintf(stderr, "bench: error: --modes: %v\n", err)
		return 2
	}
	var ps []string
	for _, p := range strings.Split(*pools, ",") {
		if p = strings.TrimSpace(p); p != "cold" && p != "warm" {
			fmt.Fprintf(stderr, "bench: error: --pools: %q is neither cold nor warm\n", p)
			return 2
		}
		ps = append(ps, p)
	}
	if *overlap < 0 || *overlap > 1 {
		fmt.Fprintf(stderr, "bench: error: --overlap %v is not in [0, 1]\n", *overlap)
		return 2
	}
	ss, err := psi.ParseSuiteList(*suites)
	if err != nil {
		fmt.Fprintf(stderr, "bench: error: --suites: %v\n", err)
		return 2
	}
	rep, err := Execute(Config{Pairs: pairs, PrivatePairs: private, EpochPairs: epoch, EpochDelta: delta, RecordsPairs: records, Modes: ms, Overlap: *overlap, Seed: *seed, Pools: ps, Suites: ss, Progress: stderr})
	if err != nil {
		fmt.Fprintf(stderr, "bench: error: %v\n", err)
		if rep != nil && (len(rep.Runs) > 0 || len(rep.EpochSetups) > 0) {
			rep.Command = strings.Join(args, " ")
			if _, werr := Write(rep, *out); werr != nil {
				fmt.Fprintf(stderr, "bench: error: writing the partial results: %v\n", werr)
			} else {
				fmt.Fprintf(stderr, "what was measured before the failure is in %s, marked as a failed run\n", *out)
			}
		}
		return 1
	}
	rep.Command = strings.Join(args, " ")
	md, err := Write(rep, *out)
	if err != nil {
		fmt.Fprintf(stderr, "bench: error: writing results: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, md)
	fmt.Fprintf(stderr, "results in %s (results.json, results.csv, phases.csv, results.md; plots as .png and .svg)\n", *out)
	return 0
}

func parseModes(s string) ([]string, error) {
	var ms []string
	for _, m := range strings.Split(s, ",") {
		m = strings.TrimSpace(m)
		if !slices.Contains(Modes, m) {
			return nil, fmt.Errorf("unknown mode %q (want %s)", m, strings.Join(Modes, ", "))
		}
		if !slices.Contains(ms, m) {
			ms = append(ms, m)
		}
	}
	return ms, nil
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
