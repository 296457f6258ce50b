package idfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
)

var prehashed = strings.Repeat("ab", 32)

type rowsTest struct {
	name    string
	format  ListFormat
	in      string
	want    []string // "subject kind canonical collected_for" per accepted row
	rejects []rej
	err     string
}

var rowsTests = []rowsTest{
	// Valid rows, in both formats.
	{name: "csv", format: FormatCSV,
		in: "subject,kind,value,collected_for\n" +
			"u1,email,Bob@Example.com,signup\n" +
			"u1,phone,+1 415 555 2671,two_factor\n" +
			" u2 ,Phone,+1 (415) 555-2671,recovery\n" +
			"u3,id,Opaque-ID,imported\n",
		want: []string{"u1 email bob@example.com signup", "u1 phone +14155552671 two_factor",
			"u2 phone +14155552671 recovery", "u3 id Opaque-ID imported"}},
	{name: "csv header order and case", format: FormatCSV,
		in:   "\ufeffValue, Collected_For ,SUBJECT,kind\r\nbob@example.com,profile,u1,email\r\n\r\n",
		want: []string{"u1 email bob@example.com profile"}},
	{name: "jsonl", format: FormatJSONL,
		in:   `{"subject":"u1","kind":"email","value":"bob@example.com","collected_for":"login_alert"}` + "\n\n",
		want: []string{"u1 email bob@example.com login_alert"}},

	// Invalid rows.
	{name: "csv rejects", format: FormatCSV,
		in: "subject,kind,value,collected_for\n" +
			",email,a@example.com,signup\n" +
			strings.Repeat("s", 129) + ",email,a@example.com,signup\n" +
			"u1,fax,a@example.com,signup\n" +
			"u1,email,a@example.com,marketing\n" +
			"u1,email,a@example.com,\n" +
			"u1,email," + prehashed + ",signup\n" +
			"u1,email,Bob <bob@example.com>,signup\n" +
			"u1,phone,555-2671,signup\n" +
			"u1,email,a@example.com\n" +
			"u1,email,\"a@example.com\"x,signup\n" +
			"u1,email,a@example.com,signup,extra\n" +
			"u\x01,email,a@example.com,signup\n" +
			"u1,email,ok@example.com,signup\n",
		want: []string{"u1 email ok@example.com signup"},
		rejects: []rej{{2, "missing_subject"}, {3, "bad_subject"}, {4, "bad_kind"}, {5, "bad_collected_for"},
			{6, "bad_collected_for"}, {7, "prehashed_not_allowed"}, {8, "display_name"}, {9, "needs_region"},
			{10, "field_count"}, {11, "bad_quote"}, {12, "field_count"}, {13, "bad_subject"}}},
	{name: "jsonl rejects", format: FormatJSONL,
		in: strings.Join([]string{
			`{"subject":"u1","kind":"email","value":"a@example.com"}`,
			`{"subject":"u1","kind":"email","value":"a@example.com","collected_for":"signup","extra":"x"}`,
			`{"subject":1,"kind":"email","value":"a@example.com","collected_for":"signup"}`,
			`{"subject":"u1","kind":"email","value":"a@example.com","collected_for":"signup"`,
			`{"subject":"u1","kind":"id","value":"` + prehashed + `","collected_for":"signup"}`,
		}, "\n"),
		want:    []string{"u1 id " + prehashed + " signup"},
		rejects: []rej{{1, "bad_collected_for"}, {2, "unknown_field"}, {3, "not_a_string"}, {4, "bad_json"}}},

	// Header errors.
	{name: "missing header field", format: FormatCSV, in: "subject,kind,value\nu1,email,a@example.com\n",
		err: `lacks column "collected_for"`},
	{name: "unknown header field", format: FormatCSV, in: "subject,kind,value,collected_for,note\n",
		err: "unknown column 5"},
	{name: "duplicate header field", format: FormatCSV, in: "subject,kind,value,collected_for,kind\n",
		err: `names column "kind" twice`},
	{name: "no header", format: FormatCSV, in: "", err: "no header"},
	{name: "data instead of header", format: FormatCSV, in: "u1,email,secret@example.com,signup\n",
		err: "unknown column 1"},
	{name: "malformed header", format: FormatCSV, in: "\"subject,kind\n", err: "line 1: malformed csv header (unterminated_quote)"},
	{name: "header too long", format: FormatCSV, in: strings.Repeat("s", MaxLineLen+1) + "\n", err: "line 1: malformed csv header (line_too_long)"},
	// The bug of issue 15: a stray quote costs one row, with its line.
	{name: "csv stray quote", format: FormatCSV,
		in: "subject,kind,value,collected_for\n" +
			"u1,email,a@example.com,signup\n" +
			"u2,email,\"b@example.com,signup\n" +
			"u3,email,c@example.com,signup\n" +
			"u4,email,d@example.com,\"signup\"\n" +
			"u5,\"email\"x,e@example.com,signup\n" +
			"u6,email,f@example.com,\"sign\"\"up\"\n" +
			"u7,email,g@example.com,signup\"\r\n" +
			"\"u8\",\"email\",\"h@example.com\",\"signup\"\r\n",
		want: []string{"u1 email a@example.com signup", "u3 email c@example.com signup", "u4 email d@example.com signup",
			"u8 email h@example.com signup"},
		rejects: []rej{{3, "unterminated_quote"}, {6, "bad_quote"}, {7, "bad_collected_for"}, {8, "bad_quote"}}},
	{name: "jsonl long line", format: FormatJSONL,
		in:      strings.Repeat("{", MaxLineLen+1) + "\n" + `{"subject":"u1","kind":"email","value":"a@example.com","collected_for":"signup"}`,
		want:    []string{"u1 email a@example.com signup"},
		rejects: []rej{{1, "line_too_long"}}},
	{name: "txt", format: FormatTXT, err: "want csv or jsonl"},
}

func TestReadRows(t *testing.T) {
	for _, tt := range rowsTests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			var rejects []rej
			res, err := ReadRows(strings.NewReader(tt.in), tt.format, ident.Options{}, func(r Row) error {
				if r.Identifier.Kind != r.Kind || r.Identifier.Prehashed || r.Line < 2 && tt.format == FormatCSV {
					t.Errorf("bad row %+v", r)
				}
				got = append(got, strings.Join([]string{r.Subject, r.Kind.String(), r.Identifier.Canonical, string(r.CollectedFor)}, " "))
				return nil
			}, func(r Reject) { rejects = append(rejects, rej{r.Line, r.Reason}) })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error contains a value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("rows = %q, want %q", got, tt.want)
			}
			if !reflect.DeepEqual(rejects, tt.rejects) {
				t.Errorf("rejects = %v, want %v", rejects, tt.rejects)
			}
			if res.Accepted != len(tt.want) || res.Rejected != len(tt.rejects) || res.Rows != res.Accepted+res.Rejected {
				t.Errorf("counts = %+v, want %d accepted, %d rejected", res, len(tt.want), len(tt.rejects))
			}
		})
	}
}

func TestReadRowsOptions(t *testing.T) {
	in := "subject,kind,value,collected_for\nu1,phone,(415) 555-2671,signup\nu2,email,B.o.b+x@googlemail.com,signup\n"
	var got []string
	_, err := ReadRows(strings.NewReader(in), FormatCSV, ident.Options{DefaultRegion: "US", GmailNormalize: true},
		func(r Row) error { got = append(got, r.Identifier.Canonical); return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"+14155552671", "bob@gmail.com"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := ReadRows(strings.NewReader(in), FormatCSV, ident.Options{DefaultRegion: "XX"}, nil, nil); err == nil {
		t.Error("bad region accepted")
	}
}

func TestReadRowsCallbackError(t *testing.T) {
	in := "subject,kind,value,collected_for\nu1,email,a@example.com,signup\nu2,email,b@example.com,signup\n"
	stop := errors.New("store full")
	calls := 0
	res, err := ReadRows(strings.NewReader(in), FormatCSV, ident.Options{}, func(Row) error { calls++; return stop }, nil)
	if !errors.Is(err, stop) || !strings.Contains(err.Error(), "line 2") || calls != 1 || res.Accepted != 0 {
		t.Errorf("got %v after %d calls (%+v)", err, calls, res)
	}
}

type consentTest struct {
	name    string
	format  ListFormat
	in      string
	want    []ConsentRow // Identifier.Canonical and Kind are compared; Digest is checked separately
	rejects []rej
	err     string
}

const consentHeader = "subject,kind,value,purpose,action,at,source,text_version\n"

var consentTests = []consentTest{
	// Valid events.
	{name: "csv", format: FormatCSV,
		in: consentHeader +
			"u1,email,Bob@Example.com,ad_matching,grant,2024-05-01T12:00:00Z,settings_page,v3\n" +
			"u1,,,ad_matching,withdraw,2024-05-02T09:30:00.123456+02:00,support,\n",
		want: []ConsentRow{
			{Line: 2, Subject: "u1", Kind: psi.KindEmail, Identifier: ident.Identifier{Kind: psi.KindEmail, Canonical: "bob@example.com"},
				Purpose: "ad_matching", Granted: true, At: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC), Source: "settings_page", TextVersion: "v3"},
			{Line: 3, Subject: "u1", Purpose: "ad_matching", At: time.Date(2024, 5, 2, 7, 30, 0, 123456000, time.UTC), Source: "support"},
		}},
	{name: "jsonl", format: FormatJSONL,
		in: `{"subject":"u2","purpose":"ad_matching","action":"grant","at":"2024-05-01T00:00:00Z","source":"app","text_version":"v1"}` + "\n" +
			`{"subject":"u2","kind":"phone","value":"+44 20 7946 0958","purpose":"ad_matching","action":"withdraw","at":"2024-06-01T00:00:00Z","source":"app","text_version":""}`,
		want: []ConsentRow{
			{Line: 1, Subject: "u2", Purpose: "ad_matching", Granted: true, At: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), Source: "app", TextVersion: "v1"},
			{Line: 2, Subject: "u2", Kind: psi.KindPhone, Identifier: ident.Identifier{Kind: psi.KindPhone, Canonical: "+442079460958"},
				Purpose: "ad_matching", At: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), Source: "app"},
		}},

	// Invalid events.
	{name: "csv rejects", format: FormatCSV,
		in: consentHeader +
			",,,ad_matching,grant,2024-05-01T12:00:00Z,app,v1\n" +
			"u1,email,,ad_matching,grant,2024-05-01T12:00:00Z,app,v1\n" +
			"u1,,a@example.com,ad_matching,grant,2024-05-01T12:00:00Z,app,v1\n" +
			"u1,email,not-an-email,ad_matching,grant,2024-05-01T12:00:00Z,app,v1\n" +
			"u1,email," + prehashed + ",ad_matching,grant,2024-05-01T12:00:00Z,app,v1\n" +
			"u1,,,Ad Matching,grant,2024-05-01T12:00:00Z,app,v1\n" +
			"u1,,,,grant,2024-05-01T12:00:00Z,app,v1\n" +
			"u1,,,ad_matching,revoke,2024-05-01T12:00:00Z,app,v1\n" +
			"u1,,,ad_matching,GRANT,2024-05-01T12:00:00Z,app,v1\n" +
			"u1,,,ad_matching,grant,2024-05-01 12:00:00,app,v1\n" +
			"u1,,,ad_matching,grant,2024-05-01,app,v1\n" +
			"u1,,,ad_matching,grant,2024-13-01T12:00:00Z,app,v1\n" +
			"u1,,,ad_matching,grant,1714564800,app,v1\n" +
			"u1,,,ad_matching,grant,2024-05-01T12:00:00Z,,v1\n" +
			"u1,,,ad_matching,grant,2024-05-01T12:00:00Z,app,\n" +
			"u1,,,ad_matching,grant,2024-05-01T12:00:00Z,app," + strings.Repeat("v", 65) + "\n" +
			"u1,,,ad_matching,grant,2024-05-01T12:00:00Z,app\n" +
			"u1,fax,1,ad_matching,grant,2024-05-01T12:00:00Z,app,v1\n",
		rejects: []rej{{2, "missing_subject"}, {3, "kind_without_value"}, {4, "value_without_kind"}, {5, "not_an_email"},
			{6, "prehashed_not_allowed"}, {7, "bad_purpose"}, {8, "bad_purpose"}, {9, "bad_action"}, {10, "bad_action"},
			{11, "bad_time"}, {12, "bad_time"}, {13, "bad_time"}, {14, "bad_time"}, {15, "missing_source"},
			{16, "missing_text_version"}, {17, "bad_text_version"}, {18, "field_count"}, {19, "bad_kind"}}},
	{name: "jsonl rejects", format: FormatJSONL,
		in: strings.Join([]string{
			`{"subject":"u1","purpose":"ad_matching","action":"grant","at":"2024-05-01T00:00:00Z","source":"app","text_version":1}`,
			`{"subject":"u1","purpose":"ad_matching","action":"grant","at":"2024-05-01T00:00:00Z","source":"app","text_version":"v1","granted":"true"}`,
			`{"subject":"u1","purpose":"ad_matching","action":"grant","at":"yesterday","source":"app","text_version":"v1"}`,
			`not json`,
		}, "\n"),
		rejects: []rej{{1, "not_a_string"}, {2, "unknown_field"}, {3, "bad_time"}, {4, "bad_json"}}},

	// Header errors.
	{name: "missing header fields", format: FormatCSV, in: "subject,kind,value,purpose,action,at\n", err: `lacks column "source"`},
}

func TestReadConsent(t *testing.T) {
	for _, tt := range consentTests {
		t.Run(tt.name, func(t *testing.T) {
			var got []ConsentRow
			var rejects []rej
			res, err := ReadConsent(strings.NewReader(tt.in), tt.format, ident.Options{}, func(r ConsentRow) error {
				if r.Identifier.Canonical != "" && r.Identifier.Digest != sum(r.Identifier.Canonical) {
					t.Errorf("line %d: bad digest", r.Line)
				}
				r.Identifier.Digest = [32]byte{}
				got = append(got, r)
				return nil
			}, func(r Reject) { rejects = append(rejects, rej{r.Line, r.Reason}) })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("rows:\n got %+v\nwant %+v", got, tt.want)
			}
			if !reflect.DeepEqual(rejects, tt.rejects) {
				t.Errorf("rejects = %v, want %v", rejects, tt.rejects)
			}
			if res.Accepted != len(tt.want) || res.Rejected != len(tt.rejects) || res.Rows != res.Accepted+res.Rejected {
				t.Errorf("counts = %+v", res)
			}
		})
	}
}
