package idfile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
)

func TestDetectFormat(t *testing.T) {
	for name, want := range map[string]ListFormat{
		"list.csv":             FormatCSV,
		"LIST.CSV":             FormatCSV,
		"/tmp/a.b/list.jsonl":  FormatJSONL,
		"list.ndjson":          FormatJSONL,
		`C:\lists\emails.Csv`:  FormatCSV,
		"list.txt":             FormatTXT,
		"list":                 FormatTXT,
		"list.csv.gz":          FormatTXT,
		"":                     FormatTXT,
		"/tmp/csv/emails.json": FormatTXT,
	} {
		if got := DetectFormat(name); got != want {
			t.Errorf("DetectFormat(%q) = %q, want %q", name, got, want)
		}
	}
}

type listTest struct {
	name    string
	opts    ListOptions
	in      string
	want    []string // canonical values of Digests, in order
	rows    int
	dups    int
	rejects []rej
	err     string // substring of the error; empty for none
}

func sum(canonical string) [32]byte { return sha256.Sum256([]byte(canonical)) }

var (
	txtEmail   = ListOptions{Format: FormatTXT, Kind: psi.KindEmail}
	csvEmail   = ListOptions{Format: FormatCSV, Kind: psi.KindEmail}
	jsonlEmail = ListOptions{Format: FormatJSONL, Kind: psi.KindEmail}
	csvPhoneUS = ListOptions{Format: FormatCSV, Kind: psi.KindPhone, Ident: ident.Options{DefaultRegion: "US"}}
)

func with(o ListOptions, f func(*ListOptions)) ListOptions { f(&o); return o }

var bobHash = func() string { s := sum("bob@example.com"); return hex.EncodeToString(s[:]) }()

var listTests = []listTest{
	// TXT: comments, blank lines, duplicates, CRLF, BOM.
	{name: "txt basic", opts: txtEmail,
		in:   "\ufeff# exported 2024-05-01\r\n  # indented comment\nBob@Example.com\r\n\r\n  alice@example.com \r\n   \r\nbob@example.com\r\n" + bobHash + "\r\n",
		want: []string{"bob@example.com", "alice@example.com"}, rows: 4, dups: 2},
	{name: "txt no final newline", opts: txtEmail, in: "a@example.com\nb@example.com",
		want: []string{"a@example.com", "b@example.com"}, rows: 2},
	{name: "txt empty", opts: txtEmail, in: ""},
	{name: "txt only comments", opts: txtEmail, in: "# a\n#b@example.com\n\n"},
	{name: "zero format is txt", opts: ListOptions{Kind: psi.KindEmail}, in: "a@example.com\n",
		want: []string{"a@example.com"}, rows: 1},
	{name: "txt rejects", opts: txtEmail,
		in:   "Bob <bob@example.com>\nmailto:a@example.com\nc@example.com\n\"q\"@example.com\nx@[192.0.2.1]\n",
		want: []string{"c@example.com"}, rows: 5,
		rejects: []rej{{1, "display_name"}, {2, "mailto"}, {4, "quoted"}, {5, "ip_literal"}}},
	{name: "txt invalid utf8", opts: txtEmail, in: "a\xff@example.com\n",
		rows: 1, rejects: []rej{{1, "invalid_utf8"}}},
	{name: "txt long line", opts: txtEmail, in: "a@example.com\n" + strings.Repeat("x", MaxLineLen+10) + "\nb@example.com\n",
		want: []string{"a@example.com", "b@example.com"}, rows: 3, rejects: []rej{{2, "line_too_long"}}},
	{name: "txt phones without region", opts: ListOptions{Kind: psi.KindPhone},
		in:   "+1 415 555 2671\n(415) 555-2671\n0044 20 7946 0958\n1-800-FLOWERS\n",
		want: []string{"+14155552671", "+442079460958"}, rows: 4,
		rejects: []rej{{2, "needs_region"}, {4, "letters"}}},
	{name: "txt gmail option", opts: with(txtEmail, func(o *ListOptions) { o.Ident.GmailNormalize = true }),
		in: "b.o.b+x@gmail.com\nbob@googlemail.com\n", want: []string{"bob@gmail.com"}, rows: 2, dups: 1},

	// MaxRejects.
	{name: "max rejects reached", opts: with(txtEmail, func(o *ListOptions) { o.MaxRejects = 2 }),
		in:   "a@example.com\nbad\nbad\nc@example.com\n",
		want: []string{"a@example.com"}, rows: 3,
		rejects: []rej{{2, "not_an_email"}, {3, "not_an_email"}}, err: "stopped at line 3: not_an_email (2 rows rejected)"},
	{name: "max rejects 1 stops at the first", opts: with(csvEmail, func(o *ListOptions) { o.MaxRejects = 1 }),
		in:   "email\na@example.com\n\"b@example.com\n\"\nc@example.com\n",
		want: []string{"a@example.com"}, rows: 2,
		rejects: []rej{{3, "unterminated_quote"}}, err: "stopped at line 3: unterminated_quote"},
	{name: "max rejects not reached", opts: with(txtEmail, func(o *ListOptions) { o.MaxRejects = 2 }),
		in: "a@example.com\nbad\n", want: []string{"a@example.com"}, rows: 2, rejects: []rej{{2, "not_an_email"}}},

	// CSV: headers and column choice.
	{name: "csv header by kind", opts: csvEmail,
		in:   "name,Email,phone\nBob,Bob@Example.com,1\n\"Smith, Alice\",\"alice@example.com\",2\n",
		want: []string{"bob@example.com", "alice@example.com"}, rows: 2},
	{name: "csv single column no header", opts: csvEmail, in: "bob@example.com\nalice@example.com\n",
		want: []string{"bob@example.com", "alice@example.com"}, rows: 2},
	{name: "csv single column header", opts: csvEmail, in: "\ufeffEMAIL\nbob@example.com\n",
		want: []string{"bob@example.com"}, rows: 1},
	{name: "csv column by name", opts: with(csvEmail, func(o *ListOptions) { o.Column = "Work Email" }),
		in:   "email,work email\na@example.com,b@example.com\n",
		want: []string{"b@example.com"}, rows: 1},
	{name: "csv column by number", opts: with(csvEmail, func(o *ListOptions) { o.Column = "2" }),
		in:   "x,a@example.com\ny,b@example.com\n",
		want: []string{"a@example.com", "b@example.com"}, rows: 2},
	{name: "csv column by number with header", opts: with(csvEmail, func(o *ListOptions) { o.Column = "2" }),
		in:   "email,backup\nx@example.com,b@example.com\n",
		want: []string{"b@example.com"}, rows: 1},
	{name: "csv phones", opts: csvPhoneUS,
		in:   "phone\n(415) 555-2671\n\"+1 (415) 555-2671\"\n+44 20 7946 0958\n555-2671\n",
		want: []string{"+14155552671", "+442079460958"}, rows: 4, dups: 1, rejects: []rej{{5, "invalid_phone"}}},
	{name: "csv blank rows", opts: csvEmail,
		in:   "email,name\n\n , \n,\na@example.com,A\n,B\n",
		want: []string{"a@example.com"}, rows: 2, rejects: []rej{{6, "empty"}}},
	{name: "csv quoted fields", opts: csvEmail,
		in:   "email,note\n\"a@example.com\",\"x, \"\"y\"\"\"\n\"\",x\n\"b@example.com\"\r\n",
		want: []string{"a@example.com", "b@example.com"}, rows: 3, rejects: []rej{{3, "empty"}}},
	// A record is one line: a newline inside quotes is an unterminated
	// quote, and the next line is a row of its own.
	{name: "csv quoted newline", opts: csvEmail,
		in:   "email,note\na@example.com,\"two\nlines\"\nbad,x\nc@example.com,\n",
		want: []string{"c@example.com"}, rows: 4, rejects: []rej{{2, "unterminated_quote"}, {3, "bad_quote"}, {4, "not_an_email"}}},

	// CSV: negative cases.
	{name: "csv bad quoting", opts: csvEmail,
		in:   "email\na@example.com\n\"b@example.com\"x\nc\"d@example.com\nd@example.com\n",
		want: []string{"a@example.com", "d@example.com"}, rows: 4,
		rejects: []rej{{3, "bad_quote"}, {4, "bad_quote"}}},
	{name: "csv unterminated quote at end", opts: csvEmail,
		in:   "email\na@example.com\n\"b@example.com\n",
		want: []string{"a@example.com"}, rows: 2, rejects: []rej{{3, "unterminated_quote"}}},
	{name: "csv short row", opts: csvEmail, in: "name,email\nBob\nAl,a@example.com\n",
		want: []string{"a@example.com"}, rows: 2, rejects: []rej{{2, "missing_column"}}},
	{name: "csv wrong column name", opts: with(csvEmail, func(o *ListOptions) { o.Column = "mail" }),
		in: "email\na@example.com\n", err: `no column named "mail"`},
	{name: "csv no kind column", opts: csvEmail, in: "name,mail\nBob,b@example.com\n",
		err: `2 columns and none is named "email"`},
	{name: "csv two kind columns", opts: csvEmail, in: "email,Email\na@example.com,b@example.com\n",
		err: `two columns named "email"`},
	{name: "csv column zero", opts: with(csvEmail, func(o *ListOptions) { o.Column = "0" }),
		in: "a@example.com\n", err: "out of range"},
	{name: "csv column beyond rows", opts: with(csvEmail, func(o *ListOptions) { o.Column = "3" }),
		in: "a@example.com,x\n", rows: 1, rejects: []rej{{1, "missing_column"}}},
	// The bug of issue 15: one stray quote swallowed the rest of the file.
	{name: "csv stray quote loses one row", opts: csvEmail,
		in:   "email\na@example.com\n\"b@example.com\n" + strings.Repeat("c@example.com\n", 5) + "d@example.com\"\ne@example.com\n",
		want: []string{"a@example.com", "c@example.com", "e@example.com"}, rows: 9, dups: 4,
		rejects: []rej{{3, "unterminated_quote"}, {9, "bad_quote"}}},
	{name: "csv quote in unquoted field", opts: csvEmail, in: "email\na\"b@example.com\nx@example.com,\"\n",
		rows: 2, rejects: []rej{{2, "bad_quote"}, {3, "unterminated_quote"}}},
	{name: "csv text after closing quote", opts: csvEmail, in: "email\n\"a@example.com\" \n\"a\"\"\n",
		rows: 2, rejects: []rej{{2, "bad_quote"}, {3, "unterminated_quote"}}},
	{name: "csv long line skipped", opts: csvEmail,
		in:   "email\na@example.com\n\"" + strings.Repeat("x", MaxLineLen) + "\nb@example.com\n",
		want: []string{"a@example.com", "b@example.com"}, rows: 3, rejects: []rej{{3, "line_too_long"}}},
	{name: "csv long line first", opts: csvEmail,
		in:   strings.Repeat("x", MaxLineLen+1) + "\r\nemail\nb@example.com\n",
		want: []string{"b@example.com"}, rows: 2, rejects: []rej{{1, "line_too_long"}}},
	{name: "csv line of MaxLineLen", opts: csvEmail,
		in:   "email\n" + strings.Repeat("x", MaxLineLen) + "\r\n",
		rows: 1, rejects: []rej{{2, "too_long"}}}, // ident's reason, not the reader's
	{name: "jsonl long line skipped", opts: jsonlEmail,
		in:   strings.Repeat(" ", MaxLineLen+1) + "\n{\"email\":\"a@example.com\"}",
		want: []string{"a@example.com"}, rows: 2, rejects: []rej{{1, "line_too_long"}}},

	// JSONL.
	{name: "jsonl basic", opts: jsonlEmail,
		in:   "{\"email\": \"Bob@Example.com\", \"n\": 1}\n\n{\"email\":\"bob@example.com\"}\r\n{\"n\":{\"x\":[1]},\"email\":\"a@example.com\"}\n",
		want: []string{"bob@example.com", "a@example.com"}, rows: 3, dups: 1},
	{name: "jsonl column", opts: with(jsonlEmail, func(o *ListOptions) { o.Column = "work_email" }),
		in: `{"email":"a@example.com","work_email":"b@example.com"}`, want: []string{"b@example.com"}, rows: 1},
	{name: "jsonl negatives", opts: jsonlEmail,
		in: strings.Join([]string{
			`{"email": 42}`,
			`{"email": null}`,
			`{"email": ["a@example.com"]}`,
			`{"mail": "a@example.com"}`,
			`{"email": "a@example.com"`,
			`["a@example.com"]`,
			`"a@example.com"`,
			`a@example.com`,
			`{"email":"a@example.com","email":"b@example.com"}`,
			`{"email":"a@example.com"} {"email":"b@example.com"}`,
			"{\"email\":\"a\xff@example.com\"}",
			`{"email":"c@example.com"}`,
		}, "\n"),
		want: []string{"c@example.com"}, rows: 12,
		rejects: []rej{{1, "not_a_string"}, {2, "not_a_string"}, {3, "not_a_string"}, {4, "missing_field"},
			{5, "bad_json"}, {6, "not_an_object"}, {7, "not_an_object"}, {8, "bad_json"}, {9, "duplicate_key"},
			{10, "bad_json"}, {11, "invalid_utf8"}}},

	// Options.
	{name: "txt with column", opts: with(txtEmail, func(o *ListOptions) { o.Column = "email" }), err: "not txt"},
	{name: "bad format", opts: with(txtEmail, func(o *ListOptions) { o.Format = "xlsx" }), err: "unknown list format"},
	{name: "bad kind", opts: ListOptions{Format: FormatTXT}, err: "unknown identifier kind"},
	{name: "bad region", opts: ListOptions{Kind: psi.KindPhone, Ident: ident.Options{DefaultRegion: "XX"}}, err: "unknown default region"},
	{name: "utf-16", opts: txtEmail, in: "\xff\xfea\x00@\x00", err: "UTF-16"},
}

func TestReadList(t *testing.T) {
	for _, tt := range listTests {
		t.Run(tt.name, func(t *testing.T) {
			var rejects []rej
			res, err := ReadList(strings.NewReader(tt.in), tt.opts, func(r Reject) { rejects = append(rejects, rej{r.Line, r.Reason}) })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			var want [][32]byte
			for _, c := range tt.want {
				want = append(want, sum(c))
			}
			if !reflect.DeepEqual(res.Digests, want) {
				t.Errorf("Digests: got %d, want %d (%q)", len(res.Digests), len(want), tt.want)
			}
			if !reflect.DeepEqual(rejects, tt.rejects) {
				t.Errorf("rejects = %v, want %v", rejects, tt.rejects)
			}
			if res.Rows != tt.rows || res.Accepted != len(tt.want) || res.Duplicates != tt.dups || res.Rejected != len(tt.rejects) {
				t.Errorf("counts = rows %d accepted %d dups %d rejected %d, want %d %d %d %d",
					res.Rows, res.Accepted, res.Duplicates, res.Rejected, tt.rows, len(tt.want), tt.dups, len(tt.rejects))
			}
		})
	}
}

func TestReadListTooManyRejectsIs(t *testing.T) {
	_, err := ReadList(strings.NewReader("x\n"), ListOptions{Kind: psi.KindEmail, MaxRejects: 1}, nil)
	var se *StopError
	if !errors.Is(err, ErrTooManyRejects) || !errors.As(err, &se) || se.Reject.Line != 1 || se.Reject.Reason != "not_an_email" || se.Rejected != 1 {
		t.Fatalf("error = %v, want a StopError at line 1", err)
	}
}

// Reject.Stop stops every reader at the row, with a StopError naming it.
func TestRejectStop(t *testing.T) {
	stopAt := func(line int) func(Reject) {
		return func(r Reject) {
			if r.Line == line {
				r.Stop()
			}
		}
	}
	check := func(name string, err error, rows, rejected int, gotRows, gotRejected int) {
		t.Helper()
		var se *StopError
		if !errors.As(err, &se) || se.Reject.Line != 3 || se.Rejected != rejected || gotRows != rows || gotRejected != rejected {
			t.Errorf("%s: error %v, rows %d, rejected %d; want a stop at line 3 after %d rows, %d rejected", name, err, gotRows, gotRejected, rows, rejected)
		}
	}
	list, err := ReadList(strings.NewReader("a\nb\nc\nd\n"), txtEmail, stopAt(3))
	check("list", err, 3, 3, list.Rows, list.Rejected)
	called := 0
	rows, err := ReadRows(strings.NewReader("subject,kind,value,collected_for\nu1,email,a@example.com,signup\nu2,fax,x,signup\nu3,email,c@example.com,signup\n"),
		FormatCSV, ident.Options{}, func(Row) error { called++; return nil }, stopAt(3))
	check("rows", err, 2, 1, rows.Rows, rows.Rejected)
	if called != 1 {
		t.Errorf("rows: %d rows passed, want 1: the reader went on after the stop", called)
	}
	consent, err := ReadConsent(strings.NewReader(`{}`+"\n"+`{}`+"\n"+`{"x":1}`+"\n"+`{}`), FormatJSONL, ident.Options{}, nil, stopAt(3))
	check("consent", err, 3, 3, consent.Rows, consent.Rejected)
}

// Reject.Row is the line as read; no fmt verb prints it.
func TestRejectRow(t *testing.T) {
	var got []Reject
	in := "email\r\n\"secret@example.com\r\n" + strings.Repeat("y", MaxLineLen+1) + "\nsecret2\n"
	if _, err := ReadList(strings.NewReader(in), csvEmail, func(r Reject) { got = append(got, r) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Row() != "\"secret@example.com" || got[1].Row() != "" || got[2].Row() != "secret2" {
		t.Fatalf("rows = %q", got)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		if s := fmt.Sprintf(verb, got[0]); strings.Contains(s, "secret") {
			t.Errorf("%s prints the row: %s", verb, s)
		}
	}
}

// Rejects and errors never carry the values they are about.
func TestListRejectsDoNotContainValues(t *testing.T) {
	const secret = "secret.person"
	in := "name,email\n" +
		secret + "," + secret + "@[192.0.2.1]\n" +
		"x,\"" + secret + "@example.com\"x\n" +
		secret + "\n"
	var msgs []string
	_, err := ReadList(strings.NewReader(in), csvEmail, func(r Reject) { msgs = append(msgs, r.String()) })
	if err != nil {
		msgs = append(msgs, err.Error())
	}
	_, err = ReadList(strings.NewReader(secret+","+secret+"@example.com\n"), csvEmail, nil)
	msgs = append(msgs, err.Error())
	if len(msgs) != 4 {
		t.Fatalf("got %d messages, want 4: %q", len(msgs), msgs)
	}
	for _, m := range msgs {
		if strings.Contains(m, "secret") {
			t.Errorf("message contains the value: %s", m)
		}
	}
}

func BenchmarkReadList(b *testing.B) {
	const n = 10000
	var txt, csv, jsonl strings.Builder
	csv.WriteString("name,email\n")
	for i := range n {
		e := "user" + strconv.Itoa(i) + "@example.com"
		txt.WriteString(e + "\n")
		csv.WriteString("User " + strconv.Itoa(i) + "," + e + "\n")
		jsonl.WriteString(`{"name":"User","email":"` + e + `"}` + "\n")
	}
	for _, bb := range []struct {
		format ListFormat
		in     string
	}{{FormatTXT, txt.String()}, {FormatCSV, csv.String()}, {FormatJSONL, jsonl.String()}} {
		b.Run(string(bb.format), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.in)))
			for b.Loop() {
				res, err := ReadList(strings.NewReader(bb.in), ListOptions{Format: bb.format, Kind: psi.KindEmail}, nil)
				if err != nil || res.Accepted != n {
					b.Fatal(err, res.Accepted)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
		})
	}
}

// rej is a Reject without its row, for comparing.
type rej struct {
	Line   int
	Reason string
}
