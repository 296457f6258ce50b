package idfile

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
)

var fuzzFormats = []ListFormat{FormatCSV, FormatTXT, FormatJSONL}

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
	f.Fuzz(func(t *testing.T, in string, jsonl bool) {
		format := FormatCSV
		if jsonl {
			format = FormatJSONL
		}
		var rejects []Reject
		n := 0
		res, err := ReadRows(strings.NewReader(in), format, ident.Options{DefaultRegion: "US"}, func(r Row) error {
			n++
			if r.Identifier.Prehashed || r.Identifier.Kind != r.Kind || !r.Kind.Valid() || r.Subject == "" ||
				len(r.Subject) > MaxSubjectLen || !validCollectedFor(r.CollectedFor) || r.Line < 1 {
				t.Fatalf("invalid row passed: line %d", r.Line)
			}
			return nil
		}, func(r Reject) { rejects = append(rejects, r) })
		checkRejects(t, rejects)
		if res.Accepted != n || res.Rejected != len(rejects) || err == nil && res.Rows != res.Accepted+res.Rejected {
			t.Fatalf("inconsistent counts %+v, %d rows passed, %d rejects (err %v)", res, n, len(rejects), err)
		}
	})
}

func FuzzReadConsent(f *testing.F) {
	for _, tt := range consentTests {
		f.Add(tt.in, tt.format == FormatJSONL)
	}
	f.Fuzz(func(t *testing.T, in string, jsonl bool) {
		format := FormatCSV
		if jsonl {
			format = FormatJSONL
		}
		var rejects []Reject
		n := 0
		res, err := ReadConsent(strings.NewReader(in), format, ident.Options{DefaultRegion: "US"}, func(r ConsentRow) error {
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
