package idfile

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
)

var fuzzFormats = []ListFormat{FormatCSV, FormatTXT, FormatJSONL}

// quoteSeeds are inputs of the kind that found the bug of issue 15 (a stray
// quote made encoding/csv swallow every line up to the next quote): stray,
// unterminated and doubled quotes, quotes at line ends, CRLF, a quoted
// newline, long lines. Each is read with every header the readers need.
var quoteSeeds = []string{
	"\"a@example.com\nb@example.com\nc@example.com\n",
	"a@example.com\n\"b@example.com\nc@example.com\"\nd@example.com\n",
	"a\"b@example.com\nc@example.com\n",
	"\"a@example.com\"x\nb@example.com\"\n\"\"\n\"\n",
	"a@example.com,\"\r\nb@example.com,\"x\"\"\"\r\n\"c@example.com\"\r\n",
	"\"two\nlines\",a@example.com\n,\n , ,\n\"\",\"\"\n",
	"x\r\r\n\r\n\"\r\n\n\"\"\"\n",
	"\ufeff\"a@example.com\n\"",
}

// longSeed has lines over MaxLineLen; it is kept out of the fuzz corpus,
// where mutating megabytes stalls the fuzzer, and read by
// TestEveryLineCounted.
var longSeed = "\"" + strings.Repeat("x", MaxLineLen) + "\nb@example.com\n" + strings.Repeat(",", MaxLineLen+1) + "\r\nc@example.com"

// TestEveryLineCounted reads the quote seeds with every reader and checks
// that each data line is one row, accepted or rejected, exactly once.
func TestEveryLineCounted(t *testing.T) {
	opts := ident.Options{DefaultRegion: "US"}
	for _, seed := range append(slices.Clone(quoteSeeds), longSeed) {
		for _, h := range seedHeaders {
			in := h + seed
			for _, format := range []ListFormat{FormatCSV, FormatJSONL} {
				var used []int
				onReject := func(r Reject) { used = append(used, r.Line) }
				res, err := ReadRows(strings.NewReader(in), format, opts, func(r Row) error { used = append(used, r.Line); return nil }, onReject)
				if err == nil {
					checkEveryLine(t, in, format, format == FormatCSV, used)
				} else if h == "subject,kind,value,collected_for\n" || format == FormatJSONL {
					t.Errorf("ReadRows %s %q: %v", format, in[:min(len(in), 40)], err)
				}
				if err == nil && res.Rows != len(used) {
					t.Errorf("ReadRows: %d rows, %d lines used", res.Rows, len(used))
				}
				used = nil
				if _, err := ReadConsent(strings.NewReader(in), format, opts, func(r ConsentRow) error { used = append(used, r.Line); return nil }, onReject); err == nil {
					checkEveryLine(t, in, format, format == FormatCSV, used)
				} else if h == consentHeader || format == FormatJSONL {
					t.Errorf("ReadConsent %s %q: %v", format, in[:min(len(in), 40)], err)
				}
			}
			for _, format := range fuzzFormats {
				var rejected []int
				res, err := ReadList(strings.NewReader(in), ListOptions{Format: format, Kind: psi.KindEmail, Ident: opts},
					func(r Reject) { rejected = append(rejected, r.Line) })
				if err != nil {
					if h == "email\n" { // other headers name no email column
						t.Errorf("ReadList %s %q: %v", format, in[:min(len(in), 40)], err)
					}
					continue
				}
				lines := dataLines(in, format)
				if res.Rows != len(lines) && !(format == FormatCSV && res.Rows == len(lines)-1) || res.Rows != res.Accepted+res.Duplicates+res.Rejected {
					t.Errorf("ReadList %s %q: %+v from %d data lines", format, in[:min(len(in), 40)], res, len(lines))
				}
			}
		}
	}
}

// seedHeaders prefix the seeds for the readers with a header.
var seedHeaders = []string{"", "email\n", consentHeader, "subject,kind,value,collected_for\n"}

// dataLines returns the numbers of the lines of in that a reader of format
// must count as rows (accepted or rejected): every line but blank ones
// (and, for txt, comments), as the package documentation defines them, and
// every line longer than MaxLineLen.
func dataLines(in string, format ListFormat) []int {
	in = strings.TrimPrefix(in, "\ufeff")
	in = strings.TrimSuffix(in, "\n")
	if in == "" {
		return nil
	}
	var lines []int
	for i, l := range strings.Split(in, "\n") {
		l = strings.TrimSuffix(l, "\r")
		t := ident.TrimSpace(l)
		switch {
		case len(l) > MaxLineLen:
		case format == FormatCSV && ident.TrimSpace(strings.ReplaceAll(l, ",", "")) == "":
			continue
		case t == "" || format == FormatTXT && t[0] == '#':
			continue
		}
		lines = append(lines, i+1)
	}
	return lines
}

// checkEveryLine checks that the lines a reader used (accepted or rejected)
// are the data lines of in, each once, after skipping a header line.
func checkEveryLine(t *testing.T, in string, format ListFormat, header bool, used []int) {
	t.Helper()
	want := dataLines(in, format)
	if header && len(want) > 0 {
		want = want[1:]
	}
	slices.Sort(used)
	if !slices.Equal(used, want) {
		t.Fatalf("lines used %v, want each data line once: %v", short(used), short(want))
	}
}

func short(l []int) []int {
	if len(l) > 20 {
		return l[:20]
	}
	return l
}

// checkRejects checks that rejects have positive, non-decreasing line
// numbers and a reason code.
func checkRejects(t *testing.T, rejects []Reject) {
	t.Helper()
	for i, r := range rejects {
		if r.Line < 1 || i > 0 && r.Line < rejects[i-1].Line || r.Reason == "" || strings.ContainsAny(r.Reason, " @+") {
			t.Fatalf("bad reject %v after %v", r, rejects[:i])
		}
	}
}

func FuzzReadList(f *testing.F) {
	for _, tt := range listTests {
		if len(tt.in) < 4096 {
			f.Add(tt.in, uint8(0), uint8(tt.opts.Kind), tt.opts.Column)
		}
	}
	for _, in := range quoteSeeds {
		for i := range fuzzFormats {
			f.Add(in, uint8(i), uint8(psi.KindEmail), "")
			f.Add("email\n"+in, uint8(i), uint8(psi.KindEmail), "")
		}
	}
	f.Fuzz(func(t *testing.T, in string, format, kind uint8, column string) {
		opts := ListOptions{
			Format: fuzzFormats[int(format)%len(fuzzFormats)],
			Kind:   psi.Kind(kind%3 + 1),
			Ident:  ident.Options{DefaultRegion: "US"},
		}
		if opts.Format != FormatTXT {
			opts.Column = column
		}
		var rejects []Reject
		res, err := ReadList(strings.NewReader(in), opts, func(r Reject) { rejects = append(rejects, r) })
		checkRejects(t, rejects)
		if res.Rows != res.Accepted+res.Duplicates+res.Rejected || res.Accepted != len(res.Digests) || res.Rejected != len(rejects) {
			t.Fatalf("inconsistent counts %+v with %d digests, %d rejects (err %v)", res, len(res.Digests), len(rejects), err)
		}
		// Every data line is one row, bar a CSV header line; each rejected
		// row is a distinct data line.
		if err == nil && !strings.HasPrefix(in, "\xff\xfe") && !strings.HasPrefix(in, "\xfe\xff") {
			lines := dataLines(in, opts.Format)
			if res.Rows != len(lines) && !(opts.Format == FormatCSV && res.Rows == len(lines)-1) {
				t.Fatalf("%d rows read from %d data lines", res.Rows, len(lines))
			}
			for i, r := range rejects {
				if !slices.Contains(lines, r.Line) || i > 0 && r.Line == rejects[i-1].Line {
					t.Fatalf("reject %v is not a data line of its own", r)
				}
			}
		}
		seen := make(map[[32]byte]bool)
		for _, d := range res.Digests {
			if seen[d] {
				t.Fatal("duplicate digest")
			}
			seen[d] = true
		}
		// Errors may quote the Column option, never the input.
		if err != nil && !strings.Contains(column, "@") && strings.Contains(err.Error(), "@") {
			t.Fatalf("error may contain a value: %v", err)
		}
	})
}

func FuzzReadRows(f *testing.F) {
	for _, tt := range rowsTests {
		f.Add(tt.in, tt.format == FormatJSONL)
	}
	for _, in := range quoteSeeds {
		for _, h := range seedHeaders {
			f.Add(h+in, false)
			f.Add(h+in, true)
		}
	}
	f.Fuzz(func(t *testing.T, in string, jsonl bool) {
		format := FormatCSV
		if jsonl {
			format = FormatJSONL
		}
		var rejects []Reject
		var used []int
		n := 0
		res, err := ReadRows(strings.NewReader(in), format, ident.Options{DefaultRegion: "US"}, func(r Row) error {
			used = append(used, r.Line)
			n++
			if r.Identifier.Prehashed || r.Identifier.Kind != r.Kind || !r.Kind.Valid() || r.Subject == "" ||
				len(r.Subject) > MaxSubjectLen || !r.CollectedFor.Valid() || r.Line < 1 {
				t.Fatalf("invalid row passed: line %d", r.Line)
			}
			return nil
		}, func(r Reject) { rejects = append(rejects, r) })
		checkRejects(t, rejects)
		if res.Accepted != n || res.Rejected != len(rejects) || err == nil && res.Rows != res.Accepted+res.Rejected {
			t.Fatalf("inconsistent counts %+v, %d rows passed, %d rejects (err %v)", res, n, len(rejects), err)
		}
		if err == nil {
			for _, r := range rejects {
				used = append(used, r.Line)
			}
			checkEveryLine(t, in, format, format == FormatCSV, used)
		}
		// The concurrent reader shows the same rows and rejects, in order.
		if seq, con := readTrace(in, format, false, 1, 3), readTrace(in, format, false, 3, 3); !reflect.DeepEqual(seq, con) {
			t.Fatalf("concurrent reader differs: %+v against %+v", con, seq)
		}
	})
}

func FuzzReadConsent(f *testing.F) {
	for _, tt := range consentTests {
		f.Add(tt.in, tt.format == FormatJSONL)
	}
	for _, in := range quoteSeeds {
		for _, h := range seedHeaders {
			f.Add(h+in, false)
			f.Add(h+in, true)
		}
	}
	f.Fuzz(func(t *testing.T, in string, jsonl bool) {
		format := FormatCSV
		if jsonl {
			format = FormatJSONL
		}
		var rejects []Reject
		var used []int
		n := 0
		res, err := ReadConsent(strings.NewReader(in), format, ident.Options{DefaultRegion: "US"}, func(r ConsentRow) error {
			used = append(used, r.Line)
			n++
			if r.Identifier.Prehashed || r.Identifier.Kind != r.Kind || r.Kind != 0 && !r.Kind.Valid() ||
				r.Subject == "" || !validPurpose(r.Purpose) || r.Source == "" || r.Granted && r.TextVersion == "" ||
				r.At.Location() != time.UTC || r.Line < 1 {
				t.Fatalf("invalid consent row passed: line %d", r.Line)
			}
			return nil
		}, func(r Reject) { rejects = append(rejects, r) })
		checkRejects(t, rejects)
		if res.Accepted != n || res.Rejected != len(rejects) || err == nil && res.Rows != res.Accepted+res.Rejected {
			t.Fatalf("inconsistent counts %+v, %d rows passed, %d rejects (err %v)", res, n, len(rejects), err)
		}
		if err == nil {
			for _, r := range rejects {
				used = append(used, r.Line)
			}
			checkEveryLine(t, in, format, format == FormatCSV, used)
		}
		// The concurrent reader shows the same rows and rejects, in order.
		if seq, con := readTrace(in, format, true, 1, 3), readTrace(in, format, true, 3, 3); !reflect.DeepEqual(seq, con) {
			t.Fatalf("concurrent reader differs: %+v against %+v", con, seq)
		}
	})
}

// FuzzObjectFields checks the JSONL object scanner against encoding/json.
func FuzzObjectFields(f *testing.F) {
	f.Add([]byte(`{"email":"a@example.com","n":{"x":[1,"}"]},"e\u006dail2":"b"}`))
	f.Add([]byte(` {"a" : [ "\"" ] , "email" : null } `))
	f.Add([]byte(`["email"]`))
	keys := []string{"email", "email2", "n"}
	f.Fuzz(func(t *testing.T, line []byte) {
		vals := make([]json.RawMessage, len(keys))
		other, reason := objectFields(line, keys, vals)
		var m map[string]json.RawMessage
		err := json.Unmarshal(line, &m)
		if reason == reasonInvalidUTF8 || reason == reasonDuplicateKey {
			return
		}
		if (reason == "") != (err == nil && m != nil) {
			t.Fatalf("reason %q, encoding/json: %v", reason, err)
		}
		if reason != "" {
			return
		}
		n := 0
		for i, k := range keys {
			want, ok := m[k]
			if ok != (vals[i] != nil) || ok && !bytes.Equal(bytes.TrimSpace(vals[i]), want) {
				t.Fatalf("key %q: got %q, want %q", k, vals[i], want)
			}
			if ok {
				n++
			}
			if s, ok := jsonString(vals[i]); ok {
				var w string
				if json.Unmarshal(want, &w) != nil || w != s {
					t.Fatalf("key %q: string %q, want %q", k, s, w)
				}
			}
		}
		if other != (len(m) > n) {
			t.Fatalf("other = %v with %d keys, %d known", other, len(m), n)
		}
	})
}

// FuzzSplitCSVLine checks the one-line CSV parser against encoding/csv on
// lines without line breaks: the same fields when both accept the line, and
// a reason exactly when encoding/csv fails.
func FuzzSplitCSVLine(f *testing.F) {
	for _, s := range []string{`a,b`, `"a,b",c`, `"a""b",`, `a"b`, `"a"b`, `"a`, `"a""`, `""`, `,`, `"",""`, `x,"y"`, `"é",ü`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if line == "" || strings.ContainsAny(line, "\r\n") {
			return
		}
		got, reason := splitCSVLine([]byte(line), nil)
		cr := csv.NewReader(strings.NewReader(line))
		cr.FieldsPerRecord = -1
		want, err := cr.Read()
		if (reason != "") != (err != nil) {
			t.Fatalf("reason %q, encoding/csv: %v", reason, err)
		}
		if err == nil && !slices.Equal(got, want) {
			t.Fatalf("fields %q, encoding/csv %q", got, want)
		}
	})
}
