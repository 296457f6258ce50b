package idfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
)

// ListFormat is the format of an identifier file.
type ListFormat string

// The formats of the package documentation.
const (
	FormatCSV   ListFormat = "csv"
	FormatTXT   ListFormat = "txt"
	FormatJSONL ListFormat = "jsonl"
)

// DetectFormat picks a format from a file name's extension, ignoring case:
// ".csv" is CSV, ".jsonl" and ".ndjson" are JSONL, anything else is TXT.
func DetectFormat(filename string) ListFormat {
	switch strings.ToLower(path.Ext(strings.ReplaceAll(filename, `\`, "/"))) {
	case ".csv":
		return FormatCSV
	case ".jsonl", ".ndjson":
		return FormatJSONL
	}
	return FormatTXT
}

func (f ListFormat) valid() bool {
	return f == FormatCSV || f == FormatTXT || f == FormatJSONL
}

// ListOptions configures [ReadList].
type ListOptions struct {
	// Format is the file's format; empty means FormatTXT.
	Format ListFormat
	// Kind is the kind of every identifier in the list.
	Kind psi.Kind
	// Column selects the value in CSV and JSONL files. For CSV it is a
	// header name (matched ignoring case and surrounding whitespace) or a
	// 1-based column number such as "2"; for JSONL it is a key. By default
	// CSV uses the column whose header is the kind's name ("email",
	// "phone" or "id"), or the only column of a one-column file, and JSONL
	// uses the key equal to the kind's name. It must be empty for TXT.
	Column string
	// Ident configures canonicalization (SPEC.md §7).
	Ident ident.Options
	// MaxRejects stops the reader with a *StopError (wrapping
	// ErrTooManyRejects) at the rejected row that brings the count to it;
	// 0 means no limit, 1 stops at the first rejected row. The onReject
	// callback can stop the reader too, with Reject.Stop.
	MaxRejects int
}

// ListResult is what [ReadList] found.
//
// Digests holds each distinct identifier once; a set of seen digests is kept
// alongside, so a list costs 60 to 100 bytes of memory per distinct
// identifier, the more while the set grows: under 1 GB for 10^7.
type ListResult struct {
	// Digests are the distinct identifiers' digests, in first-seen order.
	// A pre-hashed value and the plain value it was computed from are the
	// same identifier.
	Digests [][32]byte
	// Rows counts data rows: header, blank and comment lines excluded.
	// Rows = Accepted + Duplicates + Rejected.
	Rows       int
	Accepted   int // = len(Digests)
	Duplicates int // rows whose identifier appeared on an earlier row
	Rejected   int // rows reported to onReject
}

// ReadList reads an advertiser's identifier list. Every value is
// canonicalized with [ident.Parse] per SPEC.md §7 and deduplicated by digest.
// Rows that cannot be used are reported to onReject, which may be nil, and
// counted. The header row, when a CSV file has one, is recognized as the
// first non-blank row if it contains the kind's name or opts.Column.
//
// On error, the result counts the rows read so far.
func ReadList(r io.Reader, opts ListOptions, onReject func(Reject)) (ListResult, error) {
	if opts.Format == "" {
		opts.Format = FormatTXT
	}
	if !opts.Format.valid() {
		return ListResult{}, fmt.Errorf("idfile: unknown list format %q (want csv, txt or jsonl)", opts.Format)
	}
	if !opts.Kind.Valid() {
		return ListResult{}, fmt.Errorf("idfile: unknown identifier kind %v", opts.Kind)
	}
	if opts.Format == FormatTXT && opts.Column != "" {
		return ListResult{}, errors.New("idfile: a column applies to csv and jsonl lists, not txt")
	}
	if err := opts.Ident.Validate(); err != nil {
		return ListResult{}, err
	}
	if opts.MaxRejects < 0 {
		return ListResult{}, errors.New("idfile: negative MaxRejects")
	}
	br, err := newInput(r)
	if err != nil {
		return ListResult{}, err
	}
	l := &listReader{opts: opts, rj: rejecter{onReject: onReject, maxRejects: opts.MaxRejects}, seen: make(map[[32]byte]struct{})}
	switch opts.Format {
	case FormatTXT:
		err = l.readTXT(&lineReader{br: br})
	case FormatJSONL:
		err = l.readJSONL(&lineReader{br: br})
	case FormatCSV:
		err = l.readCSV(newCSVReader(br))
	}
	return l.res, err
}

type listReader struct {
	opts ListOptions
	rj   rejecter
	// seen holds the digests of accepted identifiers. Holding them is
	// fine: they are the advertiser's own, on the advertiser's side.
	seen map[[32]byte]struct{}
	res  ListResult
}

// add canonicalizes one value from the given line; raw is the line.
func (l *listReader) add(line int, value string, raw []byte) error {
	l.res.Rows++
	id, err := ident.Parse(l.opts.Kind, value, l.opts.Ident)
	if err != nil {
		return l.reject(line, identReason(err), raw)
	}
	if _, dup := l.seen[id.Digest]; dup {
		l.res.Duplicates++
		return nil
	}
	l.seen[id.Digest] = struct{}{}
	l.res.Digests = append(l.res.Digests, id.Digest)
	l.res.Accepted++
	return nil
}

// rejectRow counts a data row and rejects it.
func (l *listReader) rejectRow(line int, reason string, raw []byte) error {
	l.res.Rows++
	return l.reject(line, reason, raw)
}

func (l *listReader) reject(line int, reason string, raw []byte) error {
	l.res.Rejected++
	return l.rj.reject(line, reason, raw)
}

func (l *listReader) readTXT(lr *lineReader) error {
	for {
		b, tooLong, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if tooLong {
			if err := l.rejectRow(lr.line, reasonLineTooLong, nil); err != nil {
				return err
			}
			continue
		}
		s := string(b)
		if t := ident.TrimSpace(s); t == "" || t[0] == '#' {
			continue // blank or a comment
		}
		if err := l.add(lr.line, s, b); err != nil {
			return err
		}
	}
}

func (l *listReader) readJSONL(lr *lineReader) error {
	key := l.opts.Column
	if key == "" {
		key = l.opts.Kind.String()
	}
	keys, vals := []string{key}, make([]json.RawMessage, 1)
	for {
		b, tooLong, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if tooLong {
			if err := l.rejectRow(lr.line, reasonLineTooLong, nil); err != nil {
				return err
			}
			continue
		}
		if isBlank(string(b)) {
			continue
		}
		_, reason := objectFields(b, keys, vals)
		if reason == "" {
			if vals[0] == nil {
				reason = reasonMissingField
			} else if s, ok := jsonString(vals[0]); !ok {
				reason = reasonNotAString
			} else {
				err = l.add(lr.line, s, b)
			}
		}
		if reason != "" {
			err = l.rejectRow(lr.line, reason, b)
		}
		if err != nil {
			return err
		}
	}
}

func (l *listReader) readCSV(c *csvReader) error {
	col := -1 // index of the value's column, once known
	for {
		rec, line, raw, reason, err := c.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if reason != "" {
			if err := l.rejectRow(line, reason, raw); err != nil {
				return err
			}
			continue
		}
		if col < 0 {
			var header bool
			if col, header, err = l.csvColumn(rec); err != nil {
				return err
			}
			if header {
				continue
			}
		}
		if col >= len(rec) {
			err = l.rejectRow(line, reasonMissingColumn, raw)
		} else {
			err = l.add(line, rec[col], raw)
		}
		if err != nil {
			return err
		}
	}
}

// csvColumn picks the value's column from the first non-blank record and
// reports whether that record is a header.
func (l *listReader) csvColumn(first []string) (col int, header bool, err error) {
	kindName := l.opts.Kind.String()
	find := func(name string) (int, error) {
		at := -1
		for i, f := range first {
			if matchName(f, name) {
				if at >= 0 {
					return 0, fmt.Errorf("idfile: csv header has two columns named %q", name)
				}
				at = i
			}
		}
		return at, nil
	}
	kindCol, err := find(kindName)
	switch {
	case err != nil && l.opts.Column == "":
		return 0, false, err
	case err != nil:
		header = true // the kind's name twice: a header, with Column choosing
	default:
		header = kindCol >= 0
	}
	switch {
	case l.opts.Column != "" && isNumber(l.opts.Column):
		n, err := strconv.Atoi(l.opts.Column)
		if err != nil || n < 1 {
			return 0, false, fmt.Errorf("idfile: column number %q out of range", l.opts.Column)
		}
		return n - 1, header, nil
	case l.opts.Column != "":
		at, err := find(l.opts.Column)
		if err != nil {
			return 0, false, err
		}
		if at < 0 {
			return 0, false, fmt.Errorf("idfile: csv has no column named %q in its first row (use a header name or a column number)", l.opts.Column)
		}
		return at, true, nil
	case header:
		return kindCol, true, nil
	case len(first) == 1:
		return 0, false, nil
	}
	return 0, false, fmt.Errorf("idfile: csv has %d columns and none is named %q (choose one by header name or number)", len(first), kindName)
}

func isNumber(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
