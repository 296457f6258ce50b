package idfile

import (
	"bufio"
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
	return ReadRowsConcurrent(r, format, opts, 1, fn, onReject)
}

// ReadRowsConcurrent is [ReadRows] with the canonicalization of the values
// (SPEC.md §7; a phone number's costs several microseconds) spread over
// workers goroutines. Everything else is as ReadRows does it, in the same
// order: fn and onReject are called from the caller's goroutine, one row at
// a time, in line order, and a stop (an error from fn, a reject that stops)
// ends the reader at the same row. Up to a few thousand rows beyond that
// row may have been canonicalized, never passed on. workers ≤ 1 reads in
// the caller's goroutine only.
func ReadRowsConcurrent(r io.Reader, format ListFormat, opts ident.Options, workers int, fn func(Row) error, onReject func(Reject)) (RowsResult, error) {
	return readTable(r, format, opts, rowColumns, workers, onReject, func(line int, v []string) (Row, string) {
		row := Row{Line: line}
		var reason string
		if row.Subject, reason = text(v[0], MaxSubjectLen, reasonMissingSubject, reasonBadSubject); reason != "" {
			return row, reason
		}
		if row.Kind, reason = kind(v[1]); reason != "" {
			return row, reason
		}
		if row.CollectedFor = ident.Purpose(ident.TrimSpace(v[3])); !row.CollectedFor.Valid() {
			return row, reasonBadCollectedFor
		}
		if row.Identifier, reason = value(row.Kind, v[2], opts); reason != "" {
			return row, reason
		}
		return row, ""
	}, fn)
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
// objects whose keys are among columns, and hands each data row's values in
// the order of columns (a key missing from a JSONL object reads as "") to
// parse, which returns the row or a reject reason. Parsed rows go to emit
// (nil: none), whose error stops the reader; rejects go to onReject. With
// workers > 1, parse runs on that many goroutines over batches of rows
// (parse must be safe for that: it only reads v and its own arguments),
// and emit and onReject still run here, in line order (rowPipe).
func readTable[T any](r io.Reader, format ListFormat, opts ident.Options, columns []string, workers int, onReject func(Reject),
	parse func(line int, v []string) (T, string), emit func(T) error) (RowsResult, error) {
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
	// settle counts one row whose parse gave t or reason, and passes it on.
	settle := func(line int, t T, reason string, raw []byte) error {
		res.Rows++
		if reason == "" && emit != nil {
			if err := emit(t); err != nil {
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
	var handle func(line int, reason string, raw []byte) error
	if workers <= 1 {
		handle = func(line int, reason string, raw []byte) error {
			var t T
			if reason == "" {
				t, reason = parse(line, v)
			}
			return settle(line, t, reason, raw)
		}
	} else {
		p := newRowPipe(workers, parse, settle)
		defer p.close()
		handle = func(line int, reason string, raw []byte) error { return p.add(line, reason, v, raw) }
		err := readRecords(br, format, columns, v, handle)
		if p.err != nil { // the rows settled so far stopped the reader
			return res, p.err
		}
		// Rows read before a read error are settled, as without workers.
		if ferr := p.flush(); ferr != nil {
			return res, ferr
		}
		return res, err
	}
	return res, readRecords(br, format, columns, v, handle)
}

// readRecords splits the input into rows and calls handle with each data
// row's line, the reason it is malformed ("" if it is not) and its raw
// bytes; v holds the row's values during the call.
func readRecords(br *bufio.Reader, format ListFormat, columns []string, v []string, handle func(line int, reason string, raw []byte) error) error {
	if format == FormatJSONL {
		lr := &lineReader{br: br}
		raw := make([]json.RawMessage, len(columns))
		for {
			b, tooLong, err := lr.next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if !tooLong && isBlank(string(b)) {
				continue
			}
			reason := reasonLineTooLong
			if !tooLong {
				reason = jsonFields(b, columns, v, raw)
			}
			if err := handle(lr.line, reason, b); err != nil {
				return err
			}
		}
	}

	c := newCSVReader(br)
	var pos []int // pos[i] is the record index of columns[i]
	for {
		rec, line, b, reason, err := c.next()
		if err == io.EOF {
			if pos == nil {
				return fmt.Errorf("idfile: csv has no header (want %s)", strings.Join(columns, ","))
			}
			return nil
		}
		if err != nil {
			return err
		}
		if pos == nil {
			if reason != "" {
				return fmt.Errorf("idfile: line %d: malformed csv header (%s)", line, reason)
			}
			if pos, err = csvHeader(rec, columns); err != nil {
				return err
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
			return err
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
