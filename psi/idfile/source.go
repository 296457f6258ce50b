package idfile

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/overlap-psi/overlap/psi/ident"
)

// MaxLineLen bounds the memory a reader spends on one line or CSV record, in
// bytes. A longer txt or jsonl line is rejected ("line_too_long") and
// skipped; a longer CSV record, which cannot be skipped reliably (it is
// usually an unterminated quote), stops the reader with an error.
const MaxLineLen = 1 << 20

// ErrTooManyRejects is returned, wrapped, when the number of rejected rows of
// a list reaches ListOptions.MaxRejects.
var ErrTooManyRejects = errors.New("idfile: too many rejected rows")

// Reject reports a row that was not used.
type Reject struct {
	Line   int    // 1-based line number where the row starts
	Reason string // a reason code (see the package documentation); never contains the row's values
}

func (r Reject) String() string { return fmt.Sprintf("line %d: %s", r.Line, r.Reason) }

// Reason codes other than the ident ones. See the package documentation.
const (
	reasonBadCSV             = "bad_csv"
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

// lineReader reads lines of at most MaxLineLen bytes.
type lineReader struct {
	br   *bufio.Reader
	buf  []byte
	line int // number of the line last returned
}

// next returns the next line without its line ending, or io.EOF. The line is
// valid until the next call. When the line is longer than MaxLineLen,
// tooLong is set and the line's bytes are discarded.
func (lr *lineReader) next() (line []byte, tooLong bool, err error) {
	lr.buf = lr.buf[:0]
	for {
		frag, err := lr.br.ReadSlice('\n')
		if !tooLong {
			if len(lr.buf)+len(frag) > MaxLineLen+2 { // +2 for "\r\n"
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
		return b, tooLong, nil
	}
}

// isBlank reports whether s holds nothing but the characters ident trims.
func isBlank(s string) bool { return ident.TrimSpace(s) == "" }

var errRecordTooLong = fmt.Errorf("idfile: csv record longer than %d bytes (an unterminated quote?)", MaxLineLen)

// recordLimiter fails reads once more than max bytes were read since the
// last reset. It bounds the memory encoding/csv spends on one record: the
// csv.Reader buffers at most 4 KiB ahead, so a record may use about max.
type recordLimiter struct {
	r   io.Reader
	n   int
	max int
}

func (l *recordLimiter) Read(p []byte) (int, error) {
	if l.n >= l.max {
		return 0, errRecordTooLong
	}
	if len(p) > l.max-l.n {
		p = p[:l.max-l.n]
	}
	n, err := l.r.Read(p)
	l.n += n
	return n, err
}

// csvReader reads CSV records, reporting malformed ones instead of stopping.
type csvReader struct {
	cr       *csv.Reader
	lim      *recordLimiter
	lastLine int
}

func newCSVReader(br *bufio.Reader) *csvReader {
	lim := &recordLimiter{r: br, max: MaxLineLen}
	cr := csv.NewReader(lim)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return &csvReader{cr: cr, lim: lim}
}

// next returns the next record that is not blank, with the line it starts
// on. A malformed record is returned as bad, with its line and no fields;
// the caller rejects it. The record is valid until the next call.
func (c *csvReader) next() (rec []string, line int, bad bool, err error) {
	for {
		c.lim.n = 0
		rec, err := c.cr.Read()
		switch {
		case err == nil:
			line, _ = c.cr.FieldPos(0)
			c.lastLine = line
			if blankRecord(rec) {
				continue
			}
			return rec, line, false, nil
		case err == io.EOF:
			return nil, 0, false, io.EOF
		case errors.Is(err, errRecordTooLong):
			return nil, 0, false, fmt.Errorf("idfile: after line %d: %w", c.lastLine, errRecordTooLong)
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			c.lastLine = pe.Line
			return nil, pe.StartLine, true, nil
		}
		return nil, 0, false, fmt.Errorf("idfile: reading input: %w", err)
	}
}

func blankRecord(rec []string) bool {
	for _, f := range rec {
		if !isBlank(f) {
			return false
		}
	}
	return true
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
