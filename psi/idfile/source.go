package idfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/overlap-psi/overlap/psi/ident"
)

// MaxLineLen bounds the memory a reader spends on one line, in bytes, line
// ending excluded. A longer line is rejected ("line_too_long") and skipped,
// in every format.
const MaxLineLen = 1 << 20

// ErrTooManyRejects is returned, wrapped in a [*StopError], when a reader
// stops at a rejected row: ListOptions.MaxRejects was reached, or the
// onReject callback called [Reject.Stop].
var ErrTooManyRejects = errors.New("idfile: too many rejected rows")

// Reject reports a row that was not used.
type Reject struct {
	Line   int    // 1-based line number of the row
	Reason string // a reason code (see the package documentation); never contains the row's values
	// Column is set when one cell of a row that was otherwise used is
	// reported (ReadRecords): the header name of the cell's column, one
	// of the identifier names of ReadRecords, as written in the header.
	// It is empty when the report is about the whole row.
	Column string

	row  string // the line as read; see Row
	stop *bool  // set by Stop; nil when the reader cannot stop
}

// String reads "line 3: bad_quote", or "line 3: Phone: invalid_phone" for
// a cell; it never contains the row's values.
func (r Reject) String() string {
	if r.Column != "" {
		return fmt.Sprintf("line %d: %s: %s", r.Line, r.Column, r.Reason)
	}
	return fmt.Sprintf("line %d: %s", r.Line, r.Reason)
}

// GoString is String, so that no fmt verb prints the row's values.
func (r Reject) GoString() string { return r.String() }

// Row returns the rejected line as read, without its line ending (empty for
// "line_too_long"). It holds the row's values, identifiers included: write it
// only where the operator asked for them, never to a log.
func (r Reject) Row() string { return r.row }

// Stop asks the reader that reported r to stop after it: the reader returns
// a [*StopError] for r without reading further. Call it from the onReject
// callback only, to stop at the first rejected row (a "strict" read).
func (r Reject) Stop() {
	if r.stop != nil {
		*r.stop = true
	}
}

// StopError is the error of a reader that stopped at a rejected row. It
// wraps [ErrTooManyRejects]. The counts of the result returned with it
// include the row.
type StopError struct {
	Reject   Reject // the row the reader stopped at
	Rejected int    // rows (and, for ReadRecords, cells) rejected up to and including it
}

func (e *StopError) Error() string {
	n := "1 row"
	if e.Rejected != 1 {
		n = fmt.Sprintf("%d rows", e.Rejected)
	}
	if e.Reject.Column != "" {
		return fmt.Sprintf("idfile: stopped at line %d: %s: %s (%s or cells rejected)", e.Reject.Line, e.Reject.Column, e.Reject.Reason, n)
	}
	return fmt.Sprintf("idfile: stopped at line %d: %s (%s rejected)", e.Reject.Line, e.Reject.Reason, n)
}

func (e *StopError) Unwrap() error { return ErrTooManyRejects }

// rejecter reports rejected rows to a caller's callback and tells the reader
// when to stop.
type rejecter struct {
	onReject   func(Reject)
	maxRejects int // 0: no limit
	n          int
	stop       bool
}

// reject counts and reports one rejected row and returns a *StopError when
// the reader must stop.
func (rj *rejecter) reject(line int, reason string, row []byte) error {
	return rj.rejectCell(line, "", reason, row)
}

// rejectCell is reject for one cell of a row, in the named column; an
// empty column is the whole row.
func (rj *rejecter) rejectCell(line int, column, reason string, row []byte) error {
	rj.n++
	r := Reject{Line: line, Reason: reason, Column: column}
	if rj.onReject != nil {
		r.row, r.stop = string(row), &rj.stop
		rj.onReject(r)
	}
	if rj.stop || rj.maxRejects > 0 && rj.n >= rj.maxRejects {
		return &StopError{Reject: Reject{Line: line, Reason: reason, Column: column}, Rejected: rj.n}
	}
	return nil
}

// Reason codes other than the ident ones. See the package documentation.
const (
	reasonBadQuote           = "bad_quote"
	reasonUnterminatedQuote  = "unterminated_quote"
	reasonLineTooLong        = "line_too_long"
	reasonInvalidUTF8        = "invalid_utf8"
	reasonBadJSON            = "bad_json"
	reasonNotAnObject        = "not_an_object"
	reasonDuplicateKey       = "duplicate_key"
	reasonMissingField       = "missing_field"
	reasonNotAString         = "not_a_string"
	reasonUnknownField       = "unknown_field"
	reasonMissingColumn      = "missing_column"
	reasonFieldCount         = "field_count"
	reasonMissingSubject     = "missing_subject"
	reasonBadSubject         = "bad_subject"
	reasonBadKind            = "bad_kind"
	reasonBadCollectedFor    = "bad_collected_for"
	reasonPrehashed          = "prehashed_not_allowed"
	reasonKindWithoutValue   = "kind_without_value"
	reasonValueWithoutKind   = "value_without_kind"
	reasonBadPurpose         = "bad_purpose"
	reasonBadAction          = "bad_action"
	reasonBadTime            = "bad_time"
	reasonMissingSource      = "missing_source"
	reasonBadSource          = "bad_source"
	reasonMissingTextVersion = "missing_text_version"
	reasonBadTextVersion     = "bad_text_version"
)

// identReason returns the reason code of an ident.Parse error.
func identReason(err error) string {
	var e *ident.Error
	if errors.As(err, &e) {
		return string(e.Reason)
	}
	return "invalid"
}

// newInput buffers r, skips a UTF-8 byte order mark and refuses UTF-16.
func newInput(r io.Reader) (*bufio.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	b, _ := br.Peek(3)
	switch {
	case bytes.HasPrefix(b, []byte("\xef\xbb\xbf")):
		br.Discard(3)
	case bytes.HasPrefix(b, []byte("\xff\xfe")), bytes.HasPrefix(b, []byte("\xfe\xff")):
		return nil, errors.New("idfile: input is UTF-16; save it as UTF-8")
	}
	return br, nil
}

// lineReader reads physical lines of at most MaxLineLen bytes.
type lineReader struct {
	br   *bufio.Reader
	buf  []byte
	line int // number of the line last returned
}

// next returns the next line without its line ending ("\n" or "\r\n"), or
// io.EOF. The line is valid until the next call. When the line is longer
// than MaxLineLen, tooLong is set and the line's bytes are discarded, so a
// line costs at most about MaxLineLen bytes of memory.
func (lr *lineReader) next() (line []byte, tooLong bool, err error) {
	lr.buf = lr.buf[:0]
	for {
		frag, err := lr.br.ReadSlice('\n')
		if !tooLong {
			if len(lr.buf)+len(frag) > MaxLineLen+2 { // room for "\r\n"
				tooLong = true
				lr.buf = lr.buf[:0]
			} else {
				lr.buf = append(lr.buf, frag...)
			}
		}
		switch err {
		case bufio.ErrBufferFull:
			continue
		case nil:
		case io.EOF:
			if len(lr.buf) == 0 && !tooLong {
				return nil, false, io.EOF
			}
		default:
			return nil, false, fmt.Errorf("idfile: reading input: %w", err)
		}
		lr.line++
		b := bytes.TrimSuffix(lr.buf, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		if len(b) > MaxLineLen {
			return nil, true, nil
		}
		return b, tooLong, nil
	}
}

// isBlank reports whether s holds nothing but the characters ident trims.
func isBlank(s string) bool { return ident.TrimSpace(s) == "" }

// csvReader reads CSV records of one physical line each. A malformed line
// is one rejected row: reading resumes at the next line, so a stray quote
// can never swallow the lines after it.
type csvReader struct {
	lr     lineReader
	fields []string
}

func newCSVReader(br *bufio.Reader) *csvReader { return &csvReader{lr: lineReader{br: br}} }

// next returns the next line that is not blank (blank: only whitespace and
// commas), with its number and its fields, or a reason code when the line
// is malformed. The fields are valid until the next call; raw is the line.
func (c *csvReader) next() (rec []string, line int, raw []byte, reason string, err error) {
	for {
		b, tooLong, err := c.lr.next()
		if err != nil {
			return nil, 0, nil, "", err
		}
		if tooLong {
			return nil, c.lr.line, nil, reasonLineTooLong, nil
		}
		if blankCSVLine(b) {
			continue
		}
		c.fields, reason = splitCSVLine(b, c.fields[:0])
		return c.fields, c.lr.line, b, reason, nil
	}
}

// blankCSVLine reports whether a line holds only whitespace and commas.
func blankCSVLine(b []byte) bool {
	for _, c := range b {
		if c < utf8.RuneSelf && c != ',' && c != ' ' && (c < '\t' || c > '\r') {
			return false // an ASCII byte that is neither a comma nor white space
		}
	}
	return isBlank(strings.ReplaceAll(string(b), ",", ""))
}

// splitCSVLine splits one line into fields per RFC 4180, within the line: a
// field is either unquoted, without any '"', or quoted from its first byte
// to a closing '"' followed by a comma or the end of the line, with '""' for
// a quote inside. It appends the fields to fields, or returns a reason code
// for a malformed line. The fields share one string allocation, as those
// of encoding/csv do.
func splitCSVLine(line []byte, fields []string) ([]string, string) {
	s := string(line)
	for {
		if len(s) == 0 || s[0] != '"' {
			i := strings.IndexByte(s, ',')
			f := s
			if i >= 0 {
				f = s[:i]
			}
			if strings.IndexByte(f, '"') >= 0 {
				return fields, reasonBadQuote
			}
			fields = append(fields, f)
			if i < 0 {
				return fields, ""
			}
			s = s[i+1:]
			continue
		}
		// A quoted field: s[1:i] up to its closing quote, with "" for ".
		i, doubled := 1, false
		for {
			j := strings.IndexByte(s[i:], '"')
			if j < 0 {
				return fields, reasonUnterminatedQuote
			}
			i += j
			if i+1 < len(s) && s[i+1] == '"' {
				i, doubled = i+2, true
				continue
			}
			break
		}
		f := s[1:i]
		if doubled {
			f = strings.ReplaceAll(f, `""`, `"`)
		}
		fields = append(fields, f)
		i++ // past the closing quote
		switch {
		case i == len(s):
			return fields, ""
		case s[i] != ',':
			return fields, reasonBadQuote // text after the closing quote
		}
		s = s[i+1:]
	}
}

// objectFields reads one JSONL line that must hold a JSON object, and sets
// vals[i] to the raw value of keys[i], or nil when the object lacks it. A key
// of keys may appear only once. other reports a key not in keys. On failure
// it returns a reason code.
func objectFields(line []byte, keys []string, vals []json.RawMessage) (other bool, reason string) {
	if !utf8.Valid(line) {
		// encoding/json would silently replace invalid bytes with U+FFFD.
		return false, reasonInvalidUTF8
	}
	if !json.Valid(line) {
		return false, reasonBadJSON
	}
	clear(vals)
	// line is valid JSON from here on, so the scan below needs no error
	// handling and cannot run past the end.
	i := skipSpace(line, 0)
	if line[i] != '{' {
		return false, reasonNotAnObject
	}
	i = skipSpace(line, i+1)
	for line[i] != '}' {
		end := endOfString(line, i)
		key := line[i:end]
		i = skipSpace(line, end) // at ':'
		i = skipSpace(line, i+1) // at the value
		end = endOfValue(line, i)
		val := line[i:end]
		i = skipSpace(line, end) // at ',' or '}'
		if line[i] == ',' {
			i = skipSpace(line, i+1)
		}
		k, _ := jsonString(key)
		found := false
		for j, want := range keys {
			if k == want {
				if vals[j] != nil {
					return false, reasonDuplicateKey
				}
				vals[j], found = val, true
			}
		}
		other = other || !found
	}
	return other, ""
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// endOfString returns the index after the JSON string starting at b[i].
func endOfString(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// endOfValue returns the index after the valid JSON value starting at b[i].
func endOfValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = endOfString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			i++
			if depth == 0 {
				return i
			}
		}
	}
	for i < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[i])) {
		i++
	}
	return i
}

// jsonString decodes a raw JSON value that must be a string.
func jsonString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true // valid JSON without escapes
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// matchName reports whether a header field names column name.
func matchName(field, name string) bool {
	return strings.EqualFold(ident.TrimSpace(field), name)
}
