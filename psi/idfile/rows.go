package idfile

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
)

// Field limits, in bytes.
const (
	MaxSubjectLen     = 128
	MaxSourceLen      = 128
	MaxTextVersionLen = 64
	MaxPurposeLen     = 64
)

// Row is one identifier a subject gave the platform.
type Row struct {
	Line    int    // 1-based line the row starts on
	Subject string // the platform's pseudonymous user id, trimmed
	Kind    psi.Kind
	// Identifier is canonical; it is never pre-hashed.
	Identifier   ident.Identifier
	CollectedFor ident.Purpose // why it was collected; a valid ident.Purpose
}

// RowsResult counts what [ReadRows] or [ReadConsent] read. Rows counts data
// rows (header and blank lines excluded); after a nil error, Rows =
// Accepted + Rejected.
type RowsResult struct {
	Rows     int
	Accepted int // rows passed to fn, which returned nil
	Rejected int // rows reported to onReject
}

var rowColumns = []string{"subject", "kind", "value", "collected_for"}

// ReadRows reads the platform's identifier rows: CSV with the header
// subject,kind,value,collected_for (in any order, no other columns), or
// JSONL objects with those keys and string values. Each valid row is passed
// to fn (nil only checks the rows); an error from fn stops the reader and is
// returned. Invalid rows are reported to onReject, which may be nil.
//
// Values are canonicalized per SPEC.md §7 with opts; a pre-hashed value is
// rejected ("prehashed_not_allowed"), since the platform must hold the
// canonical value to check its digest and to honor consent per identifier.
func ReadRows(r io.Reader, format ListFormat, opts ident.Options, fn func(Row) error, onReject func(Reject)) (RowsResult, error) {
	return readTable(r, format, opts, rowColumns, onReject, func(line int, v []string) (string, error) {
		row := Row{Line: line}
		var reason string
		if row.Subject, reason = text(v[0], MaxSubjectLen, reasonMissingSubject, reasonBadSubject); reason != "" {
			return reason, nil
		}
		if row.Kind, reason = kind(v[1]); reason != "" {
			return reason, nil
		}
		if row.CollectedFor = ident.Purpose(ident.TrimSpace(v[3])); !row.CollectedFor.Valid() {
			return reasonBadCollectedFor, nil
		}
		if row.Identifier, reason = value(row.Kind, v[2], opts); reason != "" {
			return reason, nil
		}
		if fn == nil {
			return "", nil
		}
		return "", fn(row)
	})
}

// text checks a required free-text field: trimmed, non-empty, at most max
// bytes, valid UTF-8 without control characters.
func text(s string, max int, missing, bad string) (string, string) {
	s = ident.TrimSpace(s)
	switch {
	case s == "":
		return "", missing
	case len(s) > max || !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "", bad
	}
	return s, ""
}

func kind(s string) (psi.Kind, string) {
	k, err := psi.ParseKind(strings.ToLower(ident.TrimSpace(s)))
	if err != nil {
		return 0, reasonBadKind
	}
	return k, ""
}

// value canonicalizes a value the platform stores, refusing pre-hashed ones.
func value(k psi.Kind, s string, opts ident.Options) (ident.Identifier, string) {
	id, err := ident.Parse(k, s, opts)
	if err != nil {
		return ident.Identifier{}, identReason(err)
	}
	if id.Prehashed {
		return ident.Identifier{}, reasonPrehashed
	}
	return id, ""
}

// readTable reads CSV with a header naming exactly columns, or JSONL
// objects whose keys are among columns, and calls row with each data row's
// values in the order of columns (a key missing from a JSONL object reads as
// ""). row returns a reject reason, or an error that stops the reader.
func readTable(r io.Reader, format ListFormat, opts ident.Options, columns []string, onReject func(Reject), row func(line int, v []string) (string, error)) (RowsResult, error) {
	var res RowsResult
	if format != FormatCSV && format != FormatJSONL {
		return res, fmt.Errorf("idfile: format %q cannot hold %s rows (want csv or jsonl)", format, strings.Join(columns, ","))
	}
	if err := opts.Validate(); err != nil {
		return res, err
	}
	br, err := newInput(r)
	if err != nil {
		return res, err
	}
	v := make([]string, len(columns))
	rj := &rejecter{onReject: onReject}
	handle := func(line int, reason string, raw []byte) error {
		res.Rows++
		if reason == "" {
			var err error
			if reason, err = row(line, v); err != nil {
				return fmt.Errorf("idfile: line %d: %w", line, err)
			}
		}
		if reason != "" {
			res.Rejected++
			return rj.reject(line, reason, raw)
		}
		res.Accepted++
		return nil
	}

	if format == FormatJSONL {
		lr := &lineReader{br: br}
		raw := make([]json.RawMessage, len(columns))
		for {
			b, tooLong, err := lr.next()
			if err == io.EOF {
				return res, nil
			}
			if err != nil {
				return res, err
			}
			if !tooLong && isBlank(string(b)) {
				continue
			}
			reason := reasonLineTooLong
			if !tooLong {
				reason = jsonFields(b, columns, v, raw)
			}
			if err := handle(lr.line, reason, b); err != nil {
				return res, err
			}
		}
	}

	c := newCSVReader(br)
	var pos []int // pos[i] is the record index of columns[i]
	for {
		rec, line, b, reason, err := c.next()
		if err == io.EOF {
			if pos == nil {
				return res, fmt.Errorf("idfile: csv has no header (want %s)", strings.Join(columns, ","))
			}
			return res, nil
		}
		if err != nil {
			return res, err
		}
		if pos == nil {
			if reason != "" {
				return res, fmt.Errorf("idfile: line %d: malformed csv header (%s)", line, reason)
			}
			if pos, err = csvHeader(rec, columns); err != nil {
				return res, err
			}
			continue
		}
		switch {
		case reason != "":
		case len(rec) != len(columns):
			reason = reasonFieldCount
		default:
			for i, p := range pos {
				v[i] = rec[p]
			}
		}
		if err := handle(line, reason, b); err != nil {
			return res, err
		}
	}
}

// csvHeader maps each of columns to its index in header, which must name
// each exactly once and nothing else.
func csvHeader(header, columns []string) ([]int, error) {
	want := strings.Join(columns, ",")
	pos := make([]int, len(columns))
	for i := range pos {
		pos[i] = -1
	}
	for j, f := range header {
		known := false
		for i, c := range columns {
			if matchName(f, c) {
				if pos[i] >= 0 {
					return nil, fmt.Errorf("idfile: csv header names column %q twice", c)
				}
				pos[i], known = j, true
			}
		}
		if !known {
			return nil, fmt.Errorf("idfile: csv header has unknown column %d (want %s)", j+1, want)
		}
	}
	for i, p := range pos {
		if p < 0 {
			return nil, fmt.Errorf("idfile: csv header lacks column %q (want %s)", columns[i], want)
		}
	}
	return pos, nil
}

// jsonFields decodes a JSONL object into v, in the order of columns; raw is
// scratch space of the same length.
func jsonFields(line []byte, columns []string, v []string, raw []json.RawMessage) string {
	other, reason := objectFields(line, columns, raw)
	if reason != "" {
		return reason
	}
	for i, r := range raw {
		v[i] = ""
		if r == nil {
			continue
		}
		var ok bool
		if v[i], ok = jsonString(r); !ok {
			return reasonNotAString
		}
	}
	if other {
		return reasonUnknownField
	}
	return ""
}
