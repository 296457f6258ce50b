package idfile

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/overlap-psi/overlap/psi/ident"
)

// trace is everything a reader showed its caller: rows and rejects in the
// order they came, the result and the error.
type trace struct {
	events []string
	res    RowsResult
	err    string
}

// readTrace reads in with the given workers; the row or reject numbered
// stopAt (1-based, 0: never) stops the reader, by an error from fn or by
// Reject.Stop.
func readTrace(in string, format ListFormat, consent bool, workers, stopAt int) trace {
	var tr trace
	n := 0
	errStop := errors.New("stop here")
	onReject := func(r Reject) {
		n++
		tr.events = append(tr.events, fmt.Sprintf("reject %d %s %s %q", r.Line, r.Column, r.Reason, r.Row()))
		if n == stopAt {
			r.Stop()
		}
	}
	var res RowsResult
	var err error
	opts := ident.Options{DefaultRegion: "US"}
	if consent {
		res, err = ReadConsentConcurrent(strings.NewReader(in), format, opts, workers, func(r ConsentRow) error {
			n++
			tr.events = append(tr.events, fmt.Sprintf("row %+v", r))
			if n == stopAt {
				return errStop
			}
			return nil
		}, onReject)
	} else {
		res, err = ReadRowsConcurrent(strings.NewReader(in), format, opts, workers, func(r Row) error {
			n++
			tr.events = append(tr.events, fmt.Sprintf("row %+v", r))
			if n == stopAt {
				return errStop
			}
			return nil
		}, onReject)
	}
	tr.res = res
	if err != nil {
		tr.err = err.Error()
	}
	return tr
}

// bigRows is a file of n identifier rows, every 7th of them invalid in a
// different way (a bad kind, a bad phone, a malformed line).
func bigRows(n int) string {
	var b strings.Builder
	b.WriteString("subject,kind,value,collected_for\n")
	for i := range n {
		switch {
		case i%21 == 0:
			fmt.Fprintf(&b, "s%d,fax,%d,signup\n", i, i)
		case i%14 == 0:
			fmt.Fprintf(&b, "s%d,phone,+1 555 01,profile\n", i)
		case i%7 == 0:
			fmt.Fprintf(&b, "s%d,email,\"unterminated,signup\n", i)
		case i%2 == 0:
			fmt.Fprintf(&b, "s%d,phone,+1 650 253 %04d,two_factor\n", i/2, i%10000)
		default:
			fmt.Fprintf(&b, "s%d,email,User%d@Example.COM,signup\n", i/2, i)
		}
	}
	return b.String()
}

func bigConsent(n int) string {
	var b strings.Builder
	b.WriteString("subject,kind,value,purpose,action,at,source,text_version\n")
	for i := range n {
		switch {
		case i%11 == 0:
			fmt.Fprintf(&b, "s%d,phone,+1 650 253 %04d,ad_matching,withdraw,2025-01-01T00:00:00Z,settings,\n", i, i%10000)
		case i%13 == 0:
			fmt.Fprintf(&b, "s%d,,,ad_matching,grant,yesterday,signup_form,ads-v1\n", i)
		default:
			fmt.Fprintf(&b, "s%d,,,ad_matching,grant,2025-01-01T00:00:%02dZ,signup_form,ads-v1\n", i, i%60)
		}
	}
	return b.String()
}

// TestConcurrentAgrees: with any number of workers a reader shows its
// caller exactly what the sequential reader shows, in the same order, with
// the same counts, also when the caller stops it at a row or at a reject
// in the middle of a batch.
func TestConcurrentAgrees(t *testing.T) {
	rows, consent := bigRows(3000), bigConsent(3000)
	for _, tc := range []struct {
		name    string
		in      string
		format  ListFormat
		consent bool
	}{
		{"rows", rows, FormatCSV, false},
		{"consent", consent, FormatCSV, true},
		{"rows jsonl", `{"subject":"a","kind":"email","value":"A@x.org","collected_for":"signup"}` + "\n" +
			"{bad\n" + `{"subject":"b","kind":"phone","value":"+1 650 253 0000","collected_for":"profile"}` + "\n", FormatJSONL, false},
		{"no header", "", FormatCSV, false},
	} {
		for _, stopAt := range []int{0, 1, 300, 1001, 2500} {
			want := readTrace(tc.in, tc.format, tc.consent, 1, stopAt)
			for _, workers := range []int{2, 3, 8} {
				got := readTrace(tc.in, tc.format, tc.consent, workers, stopAt)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s, stop at %d, %d workers: %d events %+v %q, want %d events %+v %q",
						tc.name, stopAt, workers, len(got.events), got.res, got.err, len(want.events), want.res, want.err)
				}
			}
		}
	}
	// The file is big enough to fill the pipe many times over, and has
	// rows of each sort.
	if tr := readTrace(rows, FormatCSV, false, 1, 0); tr.res.Accepted < 2000 || tr.res.Rejected < 300 {
		t.Fatalf("test file has %+v", tr.res)
	}
}

// errAfter is a reader that fails after its data.
type errAfter struct{ r *strings.Reader }

func (e errAfter) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		return n, errors.New("disk on fire")
	}
	return n, nil
}

// TestConcurrentReadError: rows read before a read error are passed on
// before the error is returned, as the sequential reader does.
func TestConcurrentReadError(t *testing.T) {
	in := bigRows(1000)
	for _, workers := range []int{1, 4} {
		n := 0
		_, err := ReadRowsConcurrent(errAfter{strings.NewReader(in)}, FormatCSV, ident.Options{}, workers,
			func(Row) error { n++; return nil }, nil)
		if err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Fatalf("%d workers: err %v", workers, err)
		}
		if want := readTrace(in, FormatCSV, false, 1, 0).res.Accepted; n != want {
			t.Fatalf("%d workers: %d rows passed before the error, want %d", workers, n, want)
		}
	}
}
