//go:build !advertiser

package main

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		rows, done, size int64
		elapsed          time.Duration
		want             string
	}{
		// A quarter of the file in 10 s: 30 s left.
		{50000, 250, 1000, 10 * time.Second, "50000 rows so far, 5000 rows/s (10s), 25% of the file read, about 30s left"},
		// Standard input: no size, no estimate.
		{50000, 250, 0, 10 * time.Second, "50000 rows so far, 5000 rows/s (10s)"},
		// Nothing read yet.
		{0, 0, 1000, 10 * time.Second, "0 rows so far, 0 rows/s (10s)"},
	} {
		if got := progressLine(tc.rows, tc.done, tc.size, tc.elapsed); got != tc.want {
			t.Errorf("progressLine(%d, %d, %d, %v) = %q, want %q", tc.rows, tc.done, tc.size, tc.elapsed, got, tc.want)
		}
	}
}

// TestLineMap checks the map of rows to lines against a plain slice, on
// random files: runs of rows with blank or rejected lines between them,
// settled at random points (a settled map still knows the rows after the
// point).
func TestLineMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var m lineMap
		var lines []int
		line := 1 + r.IntN(3)
		for range r.IntN(500) {
			if r.IntN(10) == 0 {
				line += 1 + r.IntN(4) // skipped lines
			}
			m.add(line)
			lines = append(lines, line)
			line++
		}
		var settled int64
		for range 50 {
			if r.IntN(5) == 0 && len(lines) > 0 {
				settled = max(settled, int64(r.IntN(len(lines)))+1)
				m.settled(settled)
			}
			seq := int64(r.IntN(len(lines)+2)) - 1
			want := 0
			if seq >= 1 && seq <= int64(len(lines)) {
				want = lines[seq-1]
			}
			if got := m.line(seq); got != want && (seq >= settled || got != 0) {
				t.Fatalf("line(%d) = %d, want %d (settled at %d)", seq, got, want, settled)
			}
		}
	}
}
