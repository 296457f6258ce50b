package harness

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExecuteSmall(t *testing.T) {
	rep, err := Execute(Config{Pairs: []Pair{{50, 500}, {300, 200}}, Overlap: 0.4, Seed: 7, OpSample: 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Runs {
		want := min(int(0.4*float64(r.Client)+0.5), r.Server)
		if r.Counted != want || r.TrueOverlap != want {
			t.Errorf("%d/%d: counted %d, true %d, want %d", r.Client, r.Server, r.Counted, r.TrueOverlap, want)
		}
		if r.BoundS <= 0 || r.Efficiency <= 0 || r.ClientBytes < int64(32*r.Client) {
			t.Errorf("%d/%d: implausible derived values %+v", r.Client, r.Server, r)
		}
	}
	dir := t.TempDir()
	md, err := Write(rep, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md, "| in-process | 50 | 500 | 20 | ") {
		t.Errorf("table lacks the first run:\n%s", md)
	}
	for _, f := range []string{"results.json", "results.csv", "results.md", "time.png", "time.svg", "efficiency.png", "bytes.svg"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// The harness fails loudly when a count is wrong.
func TestWrongCountFails(t *testing.T) {
	_, err := Execute(Config{Pairs: []Pair{{40, 100}}, Overlap: 0.5, Seed: 1, OpSample: 10,
		tamper: func(d *data) { d.overlap++ }})
	if !errors.Is(err, ErrWrongCount) {
		t.Fatalf("got %v, want ErrWrongCount", err)
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
