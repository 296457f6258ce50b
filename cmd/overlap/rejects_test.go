package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/overlap-psi/overlap/psi/idfile"
)

// The summary line always shows rows read = the parts + rejected, and a
// summary whose counts do not add up is an error, not a quiet exit 0.
func TestPrintReadSummary(t *testing.T) {
	var b strings.Builder
	read := idfile.RowsResult{Rows: 1000, Accepted: 999, Rejected: 1}
	err := printReadSummary(&b, "w.csv", read, []summaryPart{{990, "appended"}, {9, "already present"}}, 1.25)
	if err != nil || b.String() != "w.csv: 1000 rows read, 990 appended, 9 already present, 1 rejected (1.2s)\n" {
		t.Errorf("got %q, %v", b.String(), err)
	}
	b.Reset()
	err = printReadSummary(&b, "w.csv", read, []summaryPart{{990, "appended"}}, 0)
	if err == nil || !strings.Contains(err.Error(), "1000 rows read, but the counts above add up to 991") {
		t.Errorf("a lost row went unreported: %q, %v", b.String(), err)
	}
}

// Rejected rows, with or without a hint, exit 3; every other error 1.
func TestExitCode(t *testing.T) {
	rej := &rejectedError{file: "w.csv", rejected: 2}
	for _, tt := range []struct {
		err  error
		want int
	}{
		{rej, exitRejected},
		{withHint(rej, "fix them"), exitRejected},
		{errors.New("cannot reach the server"), 1},
		{withHint(&idfile.StopError{Rejected: 1}, "--strict"), 1},
	} {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	if got := rej.Error(); got != "2 rows of w.csv rejected; the other rows were used" {
		t.Errorf("message %q", got)
	}
}
