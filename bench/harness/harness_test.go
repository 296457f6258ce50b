package harness

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/store"
)

// TestMain runs the loopback mode's child roles: loopback runs re-execute
// the test binary with the same arguments (RunChild).
func TestMain(m *testing.M) {
	if ok, code := RunChild(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func TestExecuteSmall(t *testing.T) {
	rep, err := Execute(Config{Pairs: []Pair{{50, 500}, {300, 200}}, PrivatePairs: []Pair{{400, 600}},
		Modes: []string{ModeInProcess, ModeLoopback, ModePrivate, ModePrivateLoopback}, Overlap: 0.4, Seed: 7, OpSample: 20})
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]int{}
	for _, r := range rep.Runs {
		modes[r.label()]++
		want := min(int(0.4*float64(r.Client)+0.5), r.Server)
		if r.TrueOverlap != want || r.Private == nil && r.Counted != want {
			t.Errorf("%s %d/%d: counted %d, true %d, want %d", r.label(), r.Client, r.Server, r.Counted, r.TrueOverlap, want)
		}
		if r.BoundS <= 0 || r.Efficiency <= 0 || r.OnlineBoundS <= 0 || r.ClientBytes < int64(32*r.Client) || r.ServerBytes <= 0 {
			t.Errorf("%s %d/%d: implausible derived values %+v", r.label(), r.Client, r.Server, r)
		}
		switch r.Mode {
		case ModeLoopback:
			if r.ClientRSS == 0 || r.ServerRSS == 0 || r.ClientWire < r.ClientBytes || r.ServerWire < r.ServerBytes || len(r.Phases) != 5 {
				t.Errorf("loopback %s %d/%d: RSS %d/%d, wire %d/%d, %d phases", r.Pool, r.Client, r.Server,
					r.ClientRSS, r.ServerRSS, r.ClientWire, r.ServerWire, len(r.Phases))
			}
		case ModePrivate, ModePrivateLoopback:
			if r.Private == nil || r.Ringers < 1000 || r.ServerPadded != r.Server+r.Ringers || r.BaseMultNS <= 0 ||
				r.ClientBytes < int64(32*(r.Client+r.ServerPadded)) || r.OnlineS <= 0 || r.OnlineS > r.WallS {
				t.Errorf("%s %d/%d: %+v", r.Mode, r.Client, r.Server, r)
			}
		}
		if r.Mode == ModePrivateLoopback {
			var sum float64
			for _, p := range r.Phases {
				if p.WallS < 0 {
					t.Errorf("private-loopback phase %q: %v s", p.Name, p.WallS)
				}
				sum += p.WallS
			}
			if r.ClientRSS == 0 || r.ServerRSS == 0 || r.ClientWire < r.ClientBytes || r.ServerWire < r.ServerBytes || len(r.Phases) != 5 ||
				r.ClientCPUS <= 0 || r.ServerCPUS <= 0 || sum < 0.99*r.WallS || sum > 1.01*r.WallS {
				t.Errorf("private-loopback %d/%d: RSS %d/%d, wire %d/%d, CPU %v/%v, %d phases summing to %v of %v s", r.Client, r.Server,
					r.ClientRSS, r.ServerRSS, r.ClientWire, r.ServerWire, r.ClientCPUS, r.ServerCPUS, len(r.Phases), sum, r.WallS)
			}
		}
	}
	if modes["in-process"] != 2 || modes["loopback (cold)"] != 2 || modes["loopback (warm)"] != 2 || modes["private"] != 1 ||
		modes["private-loopback"] != 1 {
		t.Errorf("runs per mode: %v", modes)
	}
	dir := t.TempDir()
	md, err := Write(rep, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{"| in-process | 50 | 500 | 20 | ", "| loopback (cold) | 300 | 200 | 120 | ", "| loopback (warm) | 50 | 500 | 20 | ",
		"| private | 400 | 600 | ", "| private-loopback | 400 | 600 | "} {
		if !strings.Contains(md, row) {
			t.Errorf("table lacks %q:\n%s", row, md)
		}
	}
	for _, f := range []string{"results.json", "results.csv", "phases.csv", "results.md", "time-in-process.png", "time-loopback.svg",
		"time-private.png", "time-private-loopback.svg", "efficiency.png", "bytes.svg", "memory.png", "memory.svg"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// The harness fails loudly when a count is wrong, in every mode. A private
// release is noised, so its truth is moved by more than the noise's tail
// bound.
func TestWrongCountFails(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		shift int
	}{{ModeInProcess, 1}, {ModeLoopback, 1}, {ModePrivate, 200}, {ModePrivateLoopback, 200}, {ModeEpochLoopback, 200}} {
		t.Run(tc.mode, func(t *testing.T) {
			_, err := Execute(Config{Pairs: []Pair{{400, 1000}}, Modes: []string{tc.mode}, Overlap: 0.5, Seed: 1, OpSample: 10,
				EpochDelta: QuickEpochDelta,
				tamper:     func(d *data) { d.overlap += tc.shift }})
			if !errors.Is(err, ErrWrongCount) {
				t.Fatalf("got %v, want ErrWrongCount", err)
			}
		})
	}
}

// When an epoch session fails, the setup measured before it is kept in the
// report, which says that the run failed.
func TestEpochSetupKeptWhenASessionFails(t *testing.T) {
	rep, err := Execute(Config{EpochPairs: []Pair{{400, 1000}}, Modes: []string{ModeEpochLoopback}, Overlap: 0.5, Seed: 1, OpSample: 10,
		EpochDelta: QuickEpochDelta, tamper: func(d *data) { d.overlap += 200 }})
	if !errors.Is(err, ErrWrongCount) {
		t.Fatalf("got %v, want ErrWrongCount", err)
	}
	if rep == nil || len(rep.EpochSetups) != 1 || rep.EpochSetups[0].WallS <= 0 || rep.EpochSetups[0].Server != 1000 || len(rep.Runs) != 0 {
		t.Fatalf("report %+v, want the setup of 1000 and no session", rep)
	}
	if md := Markdown(rep); !strings.Contains(md, "**This run failed**") || !strings.Contains(md, ErrWrongCount.Error()) {
		t.Errorf("the report does not say the run failed:\n%s", md)
	}
	if _, err := Write(rep, t.TempDir()); err != nil {
		t.Errorf("writing the partial report: %v", err)
	}
}

// The command line, as CI runs it, with the loopback modes end to end
// (--grid is also the private grid).
func TestMainLoopback(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr strings.Builder
	code := Main([]string{"bench", "--quick", "--modes", "loopback,private-loopback", "--grid", "1000/10000", "--out", dir}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	for _, want := range []string{"| loopback (cold) | 1000 | 10000 | 500 | 500 |", "| loopback (warm) | 1000 | 10000 | 500 | 500 |",
		"| private-loopback | 1000 | 10000 | ", "| private-loopback | 1000 | 10000 | 1264 | discrete Laplace"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	// Each grid point runs in suite 1, then suite 2, and the ratio of
	// their times is reported.
	for _, want := range []string{"| mode | client | server | suite 1 wall s | suite 2 wall s | wall 2/1 |",
		"| loopback (cold) | 1000 | 10000 | ", "| private-loopback | 1000 | 10000 | ", "| 2/1 | "} {
		if strings.Count(stdout.String(), want) < 1 {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	for _, want := range []string{"[1/4] loopback suite 1, client 1000, server 10000… cold… ", "[2/4] loopback suite 2, client 1000, server 10000… cold… ",
		"[3/4] private-loopback suite 1, client 1000, server 10000… ", "[4/4] private-loopback suite 2, client 1000, server 10000… "} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("no progress line %q:\n%s", want, stderr.String())
		}
	}
}

func TestMainFlags(t *testing.T) {
	for _, args := range [][]string{{"--modes", "nope"}, {"--grid", "10"}, {"--private-grid", "x/y"}, {"--overlap", "2"}, {"extra"},
		{"--epoch-grid", "1e4"}, {"--records-grid", "1e5"}, {"--records-grid", "0/10"}, {"--epoch-delta", "1"}, {"--epoch-delta", "-0.1"}, {"--pools", "hot"}, {"--pools", "warm,"}} {
		var out strings.Builder
		if code := Main(append([]string{"bench"}, args...), &out, &out); code != 2 {
			t.Errorf("%v: exit %d, want 2:\n%s", args, code, out.String())
		}
	}
}

// TestMainWarmOnly runs only the warm loopback run of a grid point, as a
// run at a size where a cold session would double the time does.
func TestMainWarmOnly(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr strings.Builder
	code := Main([]string{"bench", "--quick", "--modes", "loopback", "--pools", "warm", "--grid", "1000/10000", "--out", dir}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	if want := "| loopback (warm) | 1000 | 10000 | 500 | 500 |"; !strings.Contains(stdout.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, stdout.String())
	}
	if strings.Contains(stdout.String(), "loopback (cold)") || strings.Contains(stderr.String(), "cold…") {
		t.Errorf("a cold run ran with --pools warm:\n%s\n%s", stdout.String(), stderr.String())
	}
}

// TestCPUProfiles: with OVERLAP_BENCH_CPUPROFILE set, the server and the
// client child each write a CPU profile (gzip-compressed protobuf, what
// go tool pprof reads).
func TestCPUProfiles(t *testing.T) {
	dir, prof := t.TempDir(), t.TempDir()
	t.Setenv(cpuProfileEnv, prof)
	var stdout, stderr strings.Builder
	if code := Main([]string{"bench", "--quick", "--modes", "loopback", "--pools", "cold", "--suites", "2", "--grid", "1000/10000", "--out", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	for _, role := range []string{"server", "client"} {
		files, err := filepath.Glob(filepath.Join(prof, role+"-*.pprof"))
		if err != nil || len(files) != 1 {
			t.Fatalf("%s profiles: %v, %v; want one", role, files, err)
		}
		b, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 100 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s: %d bytes, not a gzip-compressed profile", files[0], len(b))
		}
	}
}

func TestParseGrid(t *testing.T) {
	got, err := parseGrid("1000/1e4, 1e5/1000000")
	if err != nil || len(got) != 2 || got[0] != (Pair{1000, 10000}) || got[1] != (Pair{100000, 1000000}) {
		t.Fatalf("parseGrid: %v, %v", got, err)
	}
	for _, bad := range []string{"1000", "0/10", "1.5/10", "x/y", "1e9/10", "10/"} {
		if _, err := parseGrid(bad); err == nil {
			t.Errorf("parseGrid(%q) accepted", bad)
		}
	}
}

// Private-mode sessions read the synthetic set through SnapshotPerSubject:
// the same stream as Snapshot (one identifier per subject), the cap
// recorded, a cap outside the store's range refused.
func TestSeededSourcePerSubject(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src := &seededSource{st: st, seed: 3, n: 100}
	var all, capped [][32]byte
	a, err := src.Snapshot(context.Background(), psi.KindEmail, func(d [32]byte) error { all = append(all, d); return nil })
	if err != nil {
		t.Fatal(err)
	}
	b, err := src.SnapshotPerSubject(context.Background(), psi.KindEmail, 1, func(d [32]byte) error { capped = append(capped, d); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(all, capped) || a.Digest != b.Digest || b.Size != 100 || a.MaxPerSubject != 0 || b.MaxPerSubject != 1 || b.Version <= a.Version {
		t.Errorf("Snapshot %+v (%d digests), SnapshotPerSubject %+v (%d digests)", a, len(all), b, len(capped))
	}
	for _, bad := range []int{0, -1, store.MaxSnapshotPerSubject + 1} {
		if _, err := src.SnapshotPerSubject(context.Background(), psi.KindEmail, bad, func([32]byte) error { return nil }); err == nil {
			t.Errorf("cap %d accepted", bad)
		}
	}
}

func TestParseModes(t *testing.T) {
	got, err := parseModes(strings.Join(Modes, ","))
	if err != nil || !slices.Equal(got, []string{"in-process", "loopback", "private", "private-loopback", "epoch-loopback",
		"records-loopback", "private-records-loopback"}) {
		t.Fatalf("parseModes(default): %v, %v", got, err)
	}
	if got, err := parseModes("private-loopback, private-loopback"); err != nil || !slices.Equal(got, []string{ModePrivateLoopback}) {
		t.Errorf("parseModes: %v, %v", got, err)
	}
}

// Epoch-loopback at a tiny size, with the test-only δ_E bound: one setup
// per set size, a session of each list size against its epoch, each
// release checked, and every setup and session field filled.
func TestEpochLoopback(t *testing.T) {
	// Suite 2 only: the suites' side-by-side runs are TestMainLoopback's.
	rep, err := Execute(Config{EpochPairs: []Pair{{300, 2000}, {900, 2000}, {200, 500}}, Modes: []string{ModeEpochLoopback},
		EpochDelta: QuickEpochDelta, Overlap: 0.5, Seed: 5, OpSample: 20, Suites: []psi.Suite{psi.Suite2}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.EpochSetups) != 2 || len(rep.Runs) != 3 {
		t.Fatalf("%d setups, %d sessions; want 2 and 3", len(rep.EpochSetups), len(rep.Runs))
	}
	for i, s := range rep.EpochSetups {
		y := []int{2000, 500}[i]
		var sum float64
		for _, p := range s.Phases {
			if p.WallS < 0 {
				t.Errorf("setup %d: phase %q: %v s", y, p.Name, p.WallS)
			}
			sum += p.WallS
		}
		// N·32 bytes down; about 7.2 bytes per tag up (M = 2^56).
		if s.Server != y || s.ServerPadded <= y || s.Ringers != s.ServerPadded-y || s.DeltaBound != QuickEpochDelta ||
			s.WallS <= 0 || s.ClientCPUS <= 0 || s.ServerCPUS <= 0 || s.BoundS <= 0 || s.Efficiency <= 0 ||
			s.ServerBytes < int64(32*s.ServerPadded) || s.ClientBytes < int64(7*s.ServerPadded) || s.ClientBytes > int64(9*s.ServerPadded) ||
			s.ClientWire < s.ClientBytes || s.ServerWire < s.ServerBytes || s.ClientRSS == 0 || s.ServerRSS == 0 ||
			s.KeptTags != int64(y) || s.StoredTagBytes < int64(7*y) || s.HeapGrowth == 0 || len(s.Phases) != 4 ||
			sum < 0.99*s.WallS || sum > 1.01*s.WallS {
			t.Errorf("setup %d: %+v (phases sum to %v s)", y, s, sum)
		}
	}
	for i, r := range rep.Runs {
		want := []Pair{{300, 2000}, {900, 2000}, {200, 500}}[i]
		if r.Mode != ModeEpochLoopback || r.Client != want.Client || r.Server != want.Server || r.TrueOverlap != want.Client/2 ||
			r.Private == nil || r.ServerPadded != rep.EpochSetups[min(i/2, 1)].ServerPadded {
			t.Errorf("session %d: %+v", i, r)
			continue
		}
		if r.WallS <= 0 || r.OnlineS != r.WallS || r.ClientCPUS <= 0 || r.ServerCPUS < 0 || r.BoundS <= 0 || r.Efficiency <= 0 ||
			r.ClientBytes < int64(32*r.Client) || r.ClientBytes > int64(34*r.Client) || r.ServerBytes <= 0 || r.ServerBytes > 200 ||
			r.ClientWire < r.ClientBytes || r.ServerWire < r.ServerBytes || r.ClientRSS == 0 || r.ServerRSS == 0 || len(r.Phases) != 3 {
			t.Errorf("session %d/%d: %+v", r.Client, r.Server, r)
		}
	}
	dir := t.TempDir()
	md, err := Write(rep, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{"| 2000 | ", "| 500 | ", "| 2000 | 900 | ", "| 500 | 200 | "} {
		if !strings.Contains(md, row) {
			t.Errorf("table lacks %q:\n%s", row, md)
		}
	}
	for _, f := range []string{"epoch-setups.csv", "epoch-sessions.png", "epoch-setup.svg", "results.csv"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}
