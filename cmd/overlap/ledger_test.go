//go:build !advertiser

package main

import (
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
