package idfile

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
)

// MaxRecordColumns is the most identifier columns a customer file may have:
// the most slots of a record (SPEC.md §13.2).
const MaxRecordColumns = 8

// ColumnUse says what [ReadRecords] does with a column of a customer file.
type ColumnUse uint8

// The uses of a column.
const (
	ColumnUnknown    ColumnUse = iota // a header ReadRecords does not know: not used
	ColumnIgnored                     // a known column that holds no identifier (names, zip, dates): not used
	ColumnIdentifier                  // identifiers of one kind, one per cell
	ColumnRegion                      // the region of the row's national phone numbers (country)
)

func (u ColumnUse) String() string {
	switch u {
	case ColumnIgnored:
		return "ignored"
	case ColumnIdentifier:
		return "identifier"
	case ColumnRegion:
		return "region"
	}
	return "unknown"
}

// Column is one column of a customer file's header, with what was read from
// it. The counts are of data rows that were split into fields: a line
// rejected as a whole before its cells were read (a stray quote, a field
// count that differs from the header's) counts in no column.
type Column struct {
	Index int // 0-based position in the header
	// Name is the header field as written, trimmed. For an identifier or
	// region column it is one of the names ReadRecords knows, in some
	// case and spacing; for an unknown column it is whatever the header
	// holds, for the operator's eyes, not for logs.
	Name string
	Use  ColumnUse
	// Kind is the identifiers' kind, for a ColumnIdentifier.
	Kind psi.Kind
	// SHA256 reports a column whose every value must be SHA-256 hex
	// (email_sha256, phone_sha256). In other email and phone columns, a
	// value of 64 hex digits is pre-hashed too (SPEC.md §7.5), value by
	// value.
	SHA256 bool

	// Counts, for identifier columns. Cells = Used + Shared + Bad and
	// Used + Shared = Plain + Hashed.
	Cells  int // non-empty cells
	Used   int // identifiers that went into a record
	Shared int // valid identifiers already held by an earlier record or an earlier column of the row, dropped (SPEC.md §13.2)
	Bad    int // cells that are not a valid identifier, each reported to onReject
	Plain  int // valid values given in the clear
	Hashed int // valid values given as SHA-256 hex
}

// Describe returns a short description of an identifier column for an
// operator, such as "Email (email, plain)", "Phone (phone, plain 12,
// sha256 3)" or "email_sha256 (email, sha256)": its name as written, its
// kind and how its values were given. Other columns describe as their
// name.
func (c Column) Describe() string {
	if c.Use != ColumnIdentifier {
		return c.Name
	}
	form := "plain"
	switch {
	case c.Kind == psi.KindID:
		return fmt.Sprintf("%s (%s)", c.Name, c.Kind)
	case c.SHA256 || c.Plain == 0 && c.Hashed > 0:
		form = "sha256"
	case c.Hashed > 0:
		form = fmt.Sprintf("plain %d, sha256 %d", c.Plain, c.Hashed)
	}
	return fmt.Sprintf("%s (%s, %s)", c.Name, c.Kind, form)
}

// RecordID is one identifier of a record: its kind and digest (SPEC.md
// §3.1), the input of a record session (psi.NewRecordsClient). It never
// prints its digest: every fmt verb gives the kind only.
type RecordID = psi.RecordID

// Record is one customer: the identifiers of one row of a customer file.
type Record struct {
	Line int // 1-based line of the row
	// IDs holds the row's identifiers that no earlier record holds, in
	// column order, each once; never empty.
	IDs []RecordID
}

// RecordOptions configures [ReadRecords].
type RecordOptions struct {
	// Ident configures canonicalization (SPEC.md §7). Its DefaultRegion
	// reads national phone numbers of rows whose country cell is empty,
	// and of every row when the file has no country column.
	Ident ident.Options
	// MaxRejects stops the reader with a *StopError (wrapping
	// ErrTooManyRejects) at the report, of a rejected row or a bad cell,
	// that brings the count of reports to it; 0 means no limit. The
	// onReject callback can stop the reader too, with Reject.Stop.
	MaxRejects int
}

// RecordsResult is what [ReadRecords] found.
//
// The result keeps about 53 bytes per identifier of a file of two
// identifiers per customer (BenchmarkReadRecords); while reading, the
// reader also holds the set of identifiers seen (SPEC.md §13.2), dropped
// when it returns.
type RecordsResult struct {
	// Columns describes every column of the header, in order.
	Columns []Column
	// Records are the customers, in file order.
	Records []Record
	// Rows counts data rows: the header and blank lines excluded.
	// Rows = len(Records) + Duplicates + Rejected.
	Rows       int
	Duplicates int // rows whose every identifier an earlier record holds
	Rejected   int // rows reported to onReject: no usable identifier, or a malformed line
	BadCells   int // cells reported to onReject, in rows that were used or rejected
}

// Slots is the number of identifier columns, the slots per record of a
// record session (SPEC.md §13.2).
func (r *RecordsResult) Slots() int {
	n := 0
	for _, c := range r.Columns {
		if c.Use == ColumnIdentifier {
			n++
		}
	}
	return n
}

// Kinds lists the kinds of the identifier columns, each once, in wire-code
// order: the kind set of a record session (SPEC.md §13.1).
func (r *RecordsResult) Kinds() []psi.Kind {
	var kinds []psi.Kind
	for _, k := range psi.Kinds {
		for _, c := range r.Columns {
			if c.Use == ColumnIdentifier && c.Kind == k {
				kinds = append(kinds, k)
				break
			}
		}
	}
	return kinds
}

// columnSpec is what a header name means.
type columnSpec struct {
	use    ColumnUse
	kind   psi.Kind
	sha256 bool
	refuse string // non-empty: the header is refused, for this reason
}

// recordColumnNames maps normalized header names (see normalizeHeader) to
// their use: Google Customer Match, Meta Custom Audiences and ours (SPEC.md
// §13.8).
var recordColumnNames = map[string]columnSpec{
	// Identifiers.
	"email":            {use: ColumnIdentifier, kind: psi.KindEmail},
	"email_sha256":     {use: ColumnIdentifier, kind: psi.KindEmail, sha256: true},
	"phone":            {use: ColumnIdentifier, kind: psi.KindPhone},
	"phone_sha256":     {use: ColumnIdentifier, kind: psi.KindPhone, sha256: true},
	"id":               {use: ColumnIdentifier, kind: psi.KindID},
	"madid":            {use: ColumnIdentifier, kind: psi.KindID}, // Meta
	"mobile_device_id": {use: ColumnIdentifier, kind: psi.KindID}, // Google
	// The region of national phone numbers.
	"country": {use: ColumnRegion},
	// Known columns that hold no identifier of SPEC.md §3.2. Google:
	"first_name": {use: ColumnIgnored},
	"last_name":  {use: ColumnIgnored},
	"zip":        {use: ColumnIgnored}, // Meta's too
	// Meta:
	"fn": {use: ColumnIgnored}, "ln": {use: ColumnIgnored}, "fi": {use: ColumnIgnored},
	"ct": {use: ColumnIgnored}, "st": {use: ColumnIgnored},
	"dob": {use: ColumnIgnored}, "doby": {use: ColumnIgnored}, "dobm": {use: ColumnIgnored}, "dobd": {use: ColumnIgnored},
	"gen": {use: ColumnIgnored}, "age": {use: ColumnIgnored}, "value": {use: ColumnIgnored},
	"uid":       {use: ColumnIgnored}, // an app-scoped user id, not in the platform's id set
	"extern_id": {use: ColumnIgnored}, // the advertiser's own id, not in the platform's id set
}

// refusedColumn returns why a normalized header name that is not in
// recordColumnNames is refused, or "": hashed ids and MD5 hashes of
// identifiers, which nothing could match.
func refusedColumn(name string) string {
	if base, ok := strings.CutSuffix(name, "_md5"); ok && isIdentifierName(base) {
		return "holds MD5 hashes, which cannot be matched (SPEC.md §7.5)"
	}
	if base, ok := strings.CutSuffix(name, "_sha256"); ok && isIdentifierName(base) {
		return "holds hashed ids, which cannot be matched: ids are never pre-hashed (SPEC.md §7.5)"
	}
	return ""
}

// isIdentifierName reports whether a normalized header name names
// identifiers: a plain identifier column, or TikTok's maid.
func isIdentifierName(name string) bool {
	return recordColumnNames[name].use == ColumnIdentifier && !recordColumnNames[name].sha256 || name == "maid"
}

// normalizeHeader trims a header field, lowercases it and reads each run of
// spaces, '_' and '-' as one '_'.
func normalizeHeader(field string) string {
	var b strings.Builder
	sep := false
	for _, r := range strings.ToLower(ident.TrimSpace(field)) {
		if r == ' ' || r == '_' || r == '-' || r == '\t' {
			sep = true
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('_')
		}
		sep = false
		b.WriteRune(r)
	}
	return b.String()
}

// recordHeader reads a customer file's header. Errors name columns by
// number and by the names of recordColumnNames only: a header field can
// be anything, an identifier included when a file has no header.
func recordHeader(header []string) ([]Column, error) {
	cols := make([]Column, len(header))
	ids, country := 0, -1
	for i, f := range header {
		name := normalizeHeader(f)
		spec, known := recordColumnNames[name]
		if why := refusedColumn(name); !known && why != "" {
			return nil, fmt.Errorf("idfile: customer file column %d (%s) %s", i+1, name, why)
		}
		cols[i] = Column{Index: i, Name: ident.TrimSpace(f), Use: spec.use, Kind: spec.kind, SHA256: spec.sha256}
		switch spec.use {
		case ColumnIdentifier:
			ids++
		case ColumnRegion:
			if country >= 0 {
				return nil, fmt.Errorf("idfile: customer file has two country columns (%d and %d); the region of a phone number would be ambiguous", country+1, i+1)
			}
			country = i
		}
	}
	switch {
	case ids == 0:
		return nil, errors.New("idfile: customer file has no identifier column (want a header naming email, phone, id, madid, Mobile Device ID, email_sha256 or phone_sha256)")
	case ids > MaxRecordColumns:
		return nil, fmt.Errorf("idfile: customer file has %d identifier columns, more than %d", ids, MaxRecordColumns)
	}
	return cols, nil
}

// Reason codes of ReadRecords.
const (
	reasonNoIdentifier = "no_identifier"
	reasonNotSHA256    = "not_sha256"
	reasonBadCountry   = "bad_country"
)

// ReadRecords reads a customer file: CSV with a header row, one customer
// per row, in the upload formats of Google Customer Match and Meta Custom
// Audiences or ours (SPEC.md §13.8). The header, the first non-blank line,
// is required; its columns are recognized by name (ignoring case,
// surrounding white space, and the difference between runs of spaces, '_'
// and '-'), and RecordsResult.Columns says what each was used for.
//
// Each non-empty identifier cell is canonicalized with [ident.Parse]
// (SPEC.md §7). Values of 64 hex digits in email and phone columns are
// pre-hashed (§7.5), value by value; email_sha256 and phone_sha256 columns
// must hold only such values ("not_sha256"). A national phone number is
// read in the row's country, when the file has a country column and the
// cell holds a region code; in opts.Ident.DefaultRegion when the column is
// absent or the cell empty; and is rejected ("bad_country") when the cell
// holds anything else.
//
// A cell that is not a valid identifier is reported to onReject (which
// may be nil) with its line, its column (Reject.Column) and a reason, and
// counted; the rest of its row is used. A row with no usable identifier
// is rejected ("no_identifier"), after its bad cells, as is a malformed
// line. An identifier that an earlier record, or an earlier column of the
// same row, already holds is dropped and counted as shared: each identifier
// is in at most one record (SPEC.md §13.2), and a row whose identifiers are
// all shared is a duplicate.
//
// On error, the result counts the rows read so far, each row wholly: a
// reader stopped at a bad cell has counted the cell's row.
func ReadRecords(r io.Reader, opts RecordOptions, onReject func(Reject)) (RecordsResult, error) {
	if err := opts.Ident.Validate(); err != nil {
		return RecordsResult{}, err
	}
	if opts.MaxRejects < 0 {
		return RecordsResult{}, errors.New("idfile: negative MaxRejects")
	}
	br, err := newInput(r)
	if err != nil {
		return RecordsResult{}, err
	}
	c := newCSVReader(br)
	rec, line, _, reason, err := c.next()
	switch {
	case err == io.EOF:
		return RecordsResult{}, errors.New("idfile: customer file is empty (want a header row)")
	case err != nil:
		return RecordsResult{}, err
	case reason != "":
		return RecordsResult{}, fmt.Errorf("idfile: line %d: malformed customer file header (%s)", line, reason)
	}
	cols, err := recordHeader(rec)
	if err != nil {
		return RecordsResult{}, err
	}
	rr := &recordReader{
		opts: opts,
		rj:   rejecter{onReject: onReject, maxRejects: opts.MaxRejects},
		seen: make(map[RecordID]struct{}),
		res:  RecordsResult{Columns: cols},
	}
	for i, col := range cols {
		switch col.Use {
		case ColumnIdentifier:
			rr.idCols = append(rr.idCols, i)
		case ColumnRegion:
			rr.country = i
			rr.hasCountry = true
		}
	}
	for {
		rec, line, raw, reason, err := c.next()
		if err == io.EOF {
			return rr.res, nil
		}
		if err != nil {
			return rr.res, err
		}
		rr.res.Rows++
		if reason == "" && len(rec) != len(cols) {
			reason = reasonFieldCount
		}
		if reason != "" {
			rr.res.Rejected++
			if err := rr.rj.reject(line, reason, raw); err != nil {
				return rr.res, err
			}
			continue
		}
		if err := rr.row(line, rec, raw); err != nil {
			return rr.res, err
		}
	}
}

type recordReader struct {
	opts       RecordOptions
	rj         rejecter
	idCols     []int // indexes of the identifier columns
	country    int   // index of the country column, if hasCountry
	hasCountry bool
	// seen holds every identifier of a record. Holding them is fine: they
	// are the advertiser's own, on the advertiser's side.
	seen  map[RecordID]struct{}
	arena []RecordID // the IDs of records are carved from it
	res   RecordsResult
	bad   []badCell // scratch: the current row's bad cells
}

type badCell struct {
	col    int
	reason string
}

// arenaChunk is the number of identifiers per block of the arena.
const arenaChunk = 1 << 12

// row reads one data row of the header's width. It counts the row wholly
// before reporting anything, so that a reader stopped by a report has
// consistent counts.
func (rr *recordReader) row(line int, rec []string, raw []byte) error {
	opts, badRegion := rr.regionOptions(rec)
	if len(rr.arena)+len(rr.idCols) > cap(rr.arena) {
		rr.arena = make([]RecordID, 0, max(arenaChunk, len(rr.idCols)))
	}
	start := len(rr.arena)
	rr.bad = rr.bad[:0]
	shared := 0
	for _, i := range rr.idCols {
		col := &rr.res.Columns[i]
		v := rec[i]
		if isBlank(v) {
			continue
		}
		col.Cells++
		id, hashed, reason := parseCell(col, v, opts)
		if reason == string(ident.ReasonNeedsRegion) && badRegion {
			reason = reasonBadCountry
		}
		if reason != "" {
			col.Bad++
			rr.bad = append(rr.bad, badCell{i, reason})
			continue
		}
		if hashed {
			col.Hashed++
		} else {
			col.Plain++
		}
		if _, dup := rr.seen[id]; dup {
			col.Shared++
			shared++
			continue
		}
		rr.seen[id] = struct{}{}
		col.Used++
		rr.arena = append(rr.arena, id)
	}
	rr.res.BadCells += len(rr.bad)
	ids := rr.arena[start:len(rr.arena):len(rr.arena)]
	switch {
	case len(ids) > 0:
		rr.res.Records = append(rr.res.Records, Record{Line: line, IDs: ids})
	case shared > 0:
		rr.res.Duplicates++
	default:
		rr.res.Rejected++
	}
	for _, b := range rr.bad {
		if err := rr.rj.rejectCell(line, rr.res.Columns[b.col].Name, b.reason, raw); err != nil {
			return err
		}
	}
	if len(ids) == 0 && shared == 0 {
		return rr.rj.reject(line, reasonNoIdentifier, raw)
	}
	return nil
}

// regionOptions returns the canonicalization options of a row: the
// country cell's region when it holds one, the default region when it is
// empty or absent. badRegion reports a country cell that is neither.
func (rr *recordReader) regionOptions(rec []string) (opts ident.Options, badRegion bool) {
	opts = rr.opts.Ident
	if !rr.hasCountry {
		return opts, false
	}
	cc := ident.TrimSpace(rec[rr.country])
	if cc == "" {
		return opts, false
	}
	opts.DefaultRegion = cc
	if opts.Validate() != nil {
		opts.DefaultRegion = ""
		return opts, true
	}
	return opts, false
}

// parseCell canonicalizes one non-blank identifier cell of col. It returns
// the identifier and whether it was given as SHA-256 hex, or a reason.
func parseCell(col *Column, v string, opts ident.Options) (RecordID, bool, string) {
	if col.SHA256 {
		t := ident.TrimSpace(v)
		var id RecordID
		if len(t) != 2*len(id.Digest) {
			return RecordID{}, false, reasonNotSHA256
		}
		if _, err := hex.Decode(id.Digest[:], []byte(t)); err != nil {
			return RecordID{}, false, reasonNotSHA256
		}
		id.Kind = col.Kind
		return id, true, ""
	}
	p, err := ident.Parse(col.Kind, v, opts)
	if err != nil {
		return RecordID{}, false, identReason(err)
	}
	return RecordID{Kind: col.Kind, Digest: p.Digest}, p.Prehashed, ""
}

// RecordIDs returns the identifiers of each record, in order: the input of
// a record session (psi.NewRecordsClient, psi.NewPrivateRecordsClient).
func RecordIDs(records []Record) [][]psi.RecordID {
	out := make([][]psi.RecordID, len(records))
	for i, r := range records {
		out[i] = r.IDs
	}
	return out
}

// IsCustomerHeader reports whether the fields of a CSV header make a
// customer file to read as records (SPEC.md §13.8) rather than a list of
// one column: a header ReadRecords accepts with at least two identifier
// columns, or with a column of the upload formats that is not an
// identifier (Country, First Name, Meta's fn, …). A header of one
// identifier column and unknown columns, such as "email" alone, is a list.
func IsCustomerHeader(fields []string) bool {
	cols, err := recordHeader(fields)
	if err != nil {
		return false
	}
	ids, known := 0, false
	for _, c := range cols {
		switch c.Use {
		case ColumnIdentifier:
			ids++
		case ColumnIgnored, ColumnRegion:
			known = true
		}
	}
	return ids >= 2 || known
}
