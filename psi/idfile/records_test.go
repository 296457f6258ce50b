package idfile

import (
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
)

// cellRej is a report of ReadRecords: Column is empty for a whole row.
type cellRej struct {
	Line   int
	Column string
	Reason string
}

type recordsTest struct {
	name    string
	opts    RecordOptions
	in      string
	want    [][]string // per record, "kind:canonical" of each identifier
	lines   []int      // line of each record; nil: not checked
	rows    int
	dups    int
	rejects []cellRej
	err     string // substring of the error; empty for none
	// cols checks columns by index: "use kind sha256 cells/used/shared/bad plain/hashed".
	cols map[int]string
}

var usRegion = RecordOptions{Ident: ident.Options{DefaultRegion: "US"}}

func hexSum(canonical string) string { s := sum(canonical); return hex.EncodeToString(s[:]) }

var recordsTests = []recordsTest{
	// Google Customer Match: several Email and Phone columns, Country as
	// the region of national numbers, names and Zip ignored.
	{name: "google", in: "Email,Phone,First Name,Last Name,Country,Zip,Email,Phone\n" +
		"Bob@Example.com,(415) 555-2671,Bob,Smith,us,94016,bob.work@example.com,\n" +
		"ann@example.org,020 7946 0958,Ann,Lee,GB,WC2H 8LG,,+1 415 555 2672\n" +
		",,Zoe,Perez,sg,12345,,\n" +
		"carl@example.net,(415) 555-2673,Carl,X,,1,,\n",
		opts: usRegion,
		want: [][]string{
			{"email:bob@example.com", "phone:+14155552671", "email:bob.work@example.com"},
			{"email:ann@example.org", "phone:+442079460958", "phone:+14155552672"},
			{"email:carl@example.net", "phone:+14155552673"},
		},
		lines: []int{2, 3, 5}, rows: 4, rejects: []cellRej{{4, "", "no_identifier"}},
		cols: map[int]string{0: "identifier email false 3/3/0/0 3/0", 1: "identifier phone false 3/3/0/0 3/0",
			2: "ignored", 4: "region", 5: "ignored", 6: "identifier email false 1/1/0/0 1/0", 7: "identifier phone false 1/1/0/0 1/0"}},
	// Google's Mobile Device ID template.
	{name: "google mobile device id", in: "Mobile Device ID\nAECE52E7-03EE-455A-B3C4-E57283966239\n\n aece52e7-03ee-455a-b3c4-e57283966239 \n",
		want: [][]string{{"id:AECE52E7-03EE-455A-B3C4-E57283966239"}, {"id:aece52e7-03ee-455a-b3c4-e57283966239"}}, rows: 2,
		cols: map[int]string{0: "identifier id false 2/2/0/0 2/0"}},
	// Meta Custom Audiences, plain: international phones, madid, and
	// every non-identifier column of Meta's list.
	{name: "meta plain", in: "email,phone,fn,ln,zip,ct,st,country,dob,doby,gen,age,madid,uid,extern_id,fi,dobm,dobd,value\n" +
		"a@example.com,+44 844 412 4653,a,b,1,c,s,GB,19900101,1990,m,34,BEBE52E7-03EE-455A-B3C4-E57283966239,123,x1,a,01,01,10\n" +
		"B@EXAMPLE.COM,1-234-567-8910,,,,,,,,,,,,,,,,,\n" +
		",,Only,Names,1,c,s,us,,,,,,999,x2,,,,\n",
		want: [][]string{
			{"email:a@example.com", "phone:+448444124653", "id:BEBE52E7-03EE-455A-B3C4-E57283966239"},
			{"email:b@example.com"},
		},
		rows: 3, rejects: []cellRej{{3, "phone", "needs_region"}, {4, "", "no_identifier"}},
		cols: map[int]string{0: "identifier email false 2/2/0/0 2/0", 1: "identifier phone false 2/1/0/1 1/0", 2: "ignored", 7: "region",
			12: "identifier id false 1/1/0/0 1/0", 13: "ignored", 14: "ignored", 18: "ignored"}},
	// Meta, hashed: SHA-256 hex in the plain columns, detected per value,
	// mixed with plain values; a hashed country is not a region.
	{name: "meta hashed", in: "email,phone,country\n" +
		hexSum("a@example.com") + "," + hexSum("+14155552671") + "," + hexSum("us") + "\n" +
		"a@example.com,,\n" +
		strings.ToUpper(hexSum("c@example.com")) + ",(415) 555-2672," + hexSum("us") + "\n",
		opts: usRegion,
		want: [][]string{{"email:a@example.com", "phone:+14155552671"}, {"email:c@example.com"}},
		rows: 3, dups: 1, rejects: []cellRej{{4, "phone", "bad_country"}},
		cols: map[int]string{0: "identifier email false 3/2/1/0 1/2", 1: "identifier phone false 2/1/0/1 0/1"}},
	// Ours: email, phone, id and the sha256 columns; customer_id unknown.
	{name: "ours", in: "customer_id,email,phone,id,email_sha256,phone_sha256\n" +
		"c1,bob@example.com,+14155552671,ID-1,,\n" +
		"c2,,,," + hexSum("ann@example.com") + "," + hexSum("+14155552672") + "\n" +
		"c3,carl@example.com,,," + hexSum("carl@example.com") + ",\n" + // the same email twice in a row
		"c4,,,," + hexSum("dan@example.com") + ",not-a-hash\n",
		want: [][]string{
			{"email:bob@example.com", "phone:+14155552671", "id:ID-1"},
			{"email:ann@example.com", "phone:+14155552672"},
			{"email:carl@example.com"},
			{"email:dan@example.com"},
		},
		rows: 4, rejects: []cellRej{{5, "phone_sha256", "not_sha256"}},
		cols: map[int]string{0: "unknown", 1: "identifier email false 2/2/0/0 2/0", 3: "identifier id false 1/1/0/0 1/0",
			4: "identifier email true 3/2/1/0 0/3", 5: "identifier phone true 2/1/0/1 0/1"}},
	// Header names: any case, surrounding white space, a byte order mark,
	// runs of spaces, '_' and '-'.
	{name: "header normalization", in: "\ufeff  EMAIL , Phone_SHA256 ,MOBILE-DEVICE  ID,\tFirst   Name\t\r\n" +
		"a@example.com," + hexSum("+14155552671") + ",X,Y\r\n",
		want: [][]string{{"email:a@example.com", "phone:+14155552671", "id:X"}}, rows: 1,
		cols: map[int]string{0: "identifier email false 1/1/0/0 1/0", 1: "identifier phone true 1/1/0/0 0/1", 2: "identifier id false 1/1/0/0 1/0", 3: "ignored"}},

	// Identifiers in several records: each stays with the first record
	// that holds it (SPEC.md §13.2).
	{name: "shared identifiers", in: "email,phone\n" +
		"a@example.com,+14155552671\n" +
		"b@example.com,+1 415 555 2671\n" + // shares the phone: keeps its email
		"A@EXAMPLE.COM,\n" + // a duplicate
		"a@example.com,+14155552671\n" + // a duplicate row
		"b@example.com,+14155552672\n", // keeps its new phone
		want:  [][]string{{"email:a@example.com", "phone:+14155552671"}, {"email:b@example.com"}, {"phone:+14155552672"}},
		lines: []int{2, 3, 6}, rows: 5, dups: 2,
		cols: map[int]string{0: "identifier email false 5/2/3/0 5/0", 1: "identifier phone false 4/2/2/0 4/0"}},
	{name: "repeated columns hold one identifier once", in: "email,Email,EMAIL\nx@example.com,X@example.com,y@example.com\n",
		want: [][]string{{"email:x@example.com", "email:y@example.com"}}, rows: 1,
		cols: map[int]string{0: "identifier email false 1/1/0/0 1/0", 1: "identifier email false 1/0/1/0 1/0"}},

	// Bad cells and rows.
	{name: "bad cells", in: "email,phone\n" +
		"Bob <bob@example.com>,+14155552671\n" + // bad email, good phone: used
		"bob@example.com,call me\n" + // good email, bad phone: used
		"mailto:x@example.com,555\n" + // both bad: rejected
		",\n" + // blank line: skipped
		" ,  \t\n" +
		"\"\",\"\"\n", // empty quoted cells: a row without identifier
		want: [][]string{{"phone:+14155552671"}, {"email:bob@example.com"}}, rows: 4,
		rejects: []cellRej{{2, "email", "display_name"}, {3, "phone", "letters"}, {4, "email", "mailto"}, {4, "phone", "needs_region"},
			{4, "", "no_identifier"}, {7, "", "no_identifier"}},
		cols: map[int]string{0: "identifier email false 3/1/0/2 1/0", 1: "identifier phone false 3/1/0/2 1/0"}},
	{name: "stray quote and ragged rows", in: "email,phone\n" +
		"a@example.com,+14155552671\n" +
		"\"b@example.com,+14155552672\n" + // unterminated quote: one row
		"c@example.com\n" + // too few fields
		"d@example.com,+14155552673,extra\n" + // too many
		"e\"x@example.com,\n" +
		"f@example.com,+14155552674\n",
		want: [][]string{{"email:a@example.com", "phone:+14155552671"}, {"email:f@example.com", "phone:+14155552674"}},
		rows: 6, rejects: []cellRej{{3, "", "unterminated_quote"}, {4, "", "field_count"}, {5, "", "field_count"}, {6, "", "bad_quote"}},
		cols: map[int]string{0: "identifier email false 2/2/0/0 2/0"}},
	{name: "hashed column with a non-hex value", in: "email_sha256\n" + strings.Repeat("g", 64) + "\n" + hexSum("a@example.com")[:63] + "\na@example.com\n",
		rows: 3, rejects: []cellRej{{2, "email_sha256", "not_sha256"}, {2, "", "no_identifier"}, {3, "email_sha256", "not_sha256"},
			{3, "", "no_identifier"}, {4, "email_sha256", "not_sha256"}, {4, "", "no_identifier"}}},
	{name: "country that is not a region", in: "phone,country\n(415) 555-2671,United States\n+1 415 555 2671,United States\n(415) 555-2672,\n",
		want: [][]string{{"phone:+14155552671"}}, rows: 3,
		rejects: []cellRej{{2, "phone", "bad_country"}, {2, "", "no_identifier"}, {4, "phone", "needs_region"}, {4, "", "no_identifier"}}},
	{name: "only a header", in: "email,phone\n"},
	{name: "max rejects stops at a cell", in: "email,phone\nbad,+14155552671\nbad2,+14155552672\n",
		opts: RecordOptions{MaxRejects: 1}, want: [][]string{{"phone:+14155552671"}}, rows: 1,
		rejects: []cellRej{{2, "email", "not_an_email"}}, err: "stopped at line 2: email: not_an_email"},

	// Headers that are refused.
	{name: "no identifier column", in: "name,mail\nBob,b@example.com\n", err: "no identifier column"},
	{name: "headerless file", in: "bob@example.com,+14155552671\n", err: "no identifier column"},
	{name: "two country columns", in: "phone,Country, country \n+14155552671,US,US\n", err: "two country columns (2 and 3)"},
	{name: "md5 column", in: "email,email_md5\n", err: "column 2 (email_md5) holds MD5"},
	{name: "hashed id column", in: "email,MADID_SHA256\n", err: "column 2 (madid_sha256) holds hashed ids"},
	{name: "too many identifier columns", in: strings.Repeat("email,", 8) + "phone\n", err: "9 identifier columns"},
	{name: "malformed header", in: "email,\"phone\n", err: "line 1: malformed customer file header (unterminated_quote)"},
	{name: "empty file", in: "\n \n", err: "empty"},
	{name: "utf-16", in: "\xff\xfee\x00", err: "UTF-16"},
	{name: "bad default region", opts: RecordOptions{Ident: ident.Options{DefaultRegion: "XX"}}, in: "email\n", err: "unknown default region"},
	{name: "negative max rejects", opts: RecordOptions{MaxRejects: -1}, in: "email\n", err: "negative"},
}

func (c Column) summary() string {
	if c.Use != ColumnIdentifier {
		return c.Use.String()
	}
	return fmt.Sprintf("%v %v %v %d/%d/%d/%d %d/%d", c.Use, c.Kind, c.SHA256, c.Cells, c.Used, c.Shared, c.Bad, c.Plain, c.Hashed)
}

func recordID(t *testing.T, s string) RecordID {
	k, v, _ := strings.Cut(s, ":")
	kind, err := psi.ParseKind(k)
	if err != nil {
		t.Fatal(err)
	}
	return RecordID{Kind: kind, Digest: sum(v)}
}

func TestReadRecords(t *testing.T) {
	for _, tt := range recordsTests {
		t.Run(tt.name, func(t *testing.T) {
			var rejects []cellRej
			var all []Reject
			res, err := ReadRecords(strings.NewReader(tt.in), tt.opts, func(r Reject) {
				rejects = append(rejects, cellRej{r.Line, r.Column, r.Reason})
				all = append(all, r)
			})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			var want [][]RecordID
			for _, r := range tt.want {
				var ids []RecordID
				for _, s := range r {
					ids = append(ids, recordID(t, s))
				}
				want = append(want, ids)
			}
			var got [][]RecordID
			var lines []int
			for _, r := range res.Records {
				got = append(got, r.IDs)
				lines = append(lines, r.Line)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("records: got %d (%v), want %q", len(got), got, tt.want)
			}
			if tt.lines != nil && !reflect.DeepEqual(lines, tt.lines) {
				t.Errorf("record lines %v, want %v", lines, tt.lines)
			}
			if !reflect.DeepEqual(rejects, tt.rejects) {
				t.Errorf("rejects = %v, want %v", rejects, tt.rejects)
			}
			if res.Rows != tt.rows || res.Duplicates != tt.dups {
				t.Errorf("rows %d, duplicates %d; want %d, %d", res.Rows, res.Duplicates, tt.rows, tt.dups)
			}
			for i, w := range tt.cols {
				if i >= len(res.Columns) || res.Columns[i].summary() != w {
					t.Errorf("column %d: %v, want %s", i, res.Columns, w)
				}
			}
			checkRecordCounts(t, res, all, err)
		})
	}
}

// checkRecordCounts checks the invariants of a RecordsResult against the
// reports a reader made: the counts add up, every record has identifiers
// that no other record holds, and every report has a line number.
func checkRecordCounts(t *testing.T, res RecordsResult, rejects []Reject, err error) {
	t.Helper()
	rows, cells := 0, 0
	for i, r := range rejects {
		if r.Line < 1 || r.Reason == "" || strings.ContainsAny(r.Reason, " @+") || i > 0 && r.Line < rejects[i-1].Line {
			t.Fatalf("bad reject %v after %v", r, rejects[:i])
		}
		if r.Column == "" {
			rows++
		} else {
			cells++
		}
	}
	// A reader stopped at a report has counted the report's row wholly,
	// the reports it did not make included.
	stopped := errors.Is(err, ErrTooManyRejects)
	if res.Rows != len(res.Records)+res.Duplicates+res.Rejected ||
		!stopped && (res.Rejected != rows || res.BadCells != cells) ||
		stopped && (res.Rejected-rows < 0 || res.Rejected-rows > 1 || res.BadCells < cells) {
		t.Fatalf("counts %d rows = %d records + %d duplicates + %d rejected, %d bad cells; %d row and %d cell reports (err %v)",
			res.Rows, len(res.Records), res.Duplicates, res.Rejected, res.BadCells, rows, cells, err)
	}
	used, bad := 0, 0
	for _, c := range res.Columns {
		if c.Cells != c.Used+c.Shared+c.Bad || c.Used+c.Shared != c.Plain+c.Hashed || c.Use != ColumnIdentifier && c.Cells != 0 ||
			c.SHA256 && c.Plain != 0 || c.Kind == psi.KindID && c.Hashed != 0 {
			t.Fatalf("column %d: %+v", c.Index, c)
		}
		used += c.Used
		bad += c.Bad
	}
	if bad != res.BadCells {
		t.Fatalf("%d bad cells in columns, %d in all", bad, res.BadCells)
	}
	seen := map[RecordID]bool{}
	ids, line := 0, 0
	for _, r := range res.Records {
		if len(r.IDs) == 0 || len(r.IDs) > res.Slots() || r.Line <= line {
			t.Fatalf("record at line %d after line %d with %d identifiers of %d slots", r.Line, line, len(r.IDs), res.Slots())
		}
		line = r.Line
		for _, id := range r.IDs {
			if seen[id] || !id.Kind.Valid() {
				t.Fatalf("identifier %v held twice", id)
			}
			seen[id] = true
			ids++
		}
	}
	if ids != used {
		t.Fatalf("%d identifiers in records, %d used in columns", ids, used)
	}
}

func TestReadRecordsStopError(t *testing.T) {
	in := "email,phone\nbad,+14155552671\nx@example.com,+14155552672\n,\nbad,bad\n"
	// Stop at the row report after two cell reports.
	res, err := ReadRecords(strings.NewReader(in), RecordOptions{}, func(r Reject) {
		if r.Column == "" {
			r.Stop()
		}
	})
	var se *StopError
	if !errors.Is(err, ErrTooManyRejects) || !errors.As(err, &se) || se.Reject.Line != 5 || se.Reject.Reason != "no_identifier" ||
		se.Reject.Column != "" || se.Rejected != 4 {
		t.Fatalf("err = %v", err)
	}
	if res.Rows != 3 || len(res.Records) != 2 || res.Rejected != 1 || res.BadCells != 3 {
		t.Fatalf("result %+v", res)
	}
	if got := se.Error(); got != "idfile: stopped at line 5: no_identifier (4 rows rejected)" {
		t.Errorf("Error() = %q", got)
	}
}

// Nothing ReadRecords returns or reports prints an identifier or a digest.
func TestReadRecordsPrintsNoValues(t *testing.T) {
	secret := "secret.person@example.com"
	in := "Email,Phone,customer_id\n" + secret + ",+14155552671,c1\n" + secret + "x,bad,c2\n"
	var rejects []Reject
	res, err := ReadRecords(strings.NewReader(in), RecordOptions{}, func(r Reject) { rejects = append(rejects, r) })
	if err != nil {
		t.Fatal(err)
	}
	d := sum(secret)
	for _, s := range []string{
		fmt.Sprint(res), fmt.Sprintf("%+v %#v %v", res, res, res.Records), fmt.Sprintf("%x %s", res.Records[0].IDs[0], res.Records[0].IDs),
		fmt.Sprint(rejects), fmt.Sprintf("%+v %#v", rejects, rejects),
	} {
		if strings.Contains(s, "secret") || strings.Contains(s, hex.EncodeToString(d[:4])) || strings.Contains(s, fmt.Sprint(d[:4])) ||
			strings.Contains(s, fmt.Sprintf("%x", d[:4])) {
			t.Errorf("printed form holds a value: %.200s", s)
		}
	}
	if len(rejects) != 1 || rejects[0].String() != "line 3: Phone: letters" || !strings.Contains(rejects[0].Row(), "secret") {
		t.Errorf("rejects %v", rejects)
	}
}

func TestRecordsResultSlotsAndKinds(t *testing.T) {
	res, err := ReadRecords(strings.NewReader("Phone,first name,madid,EMAIL,phone_sha256\n"), RecordOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Slots() != 4 || !reflect.DeepEqual(res.Kinds(), []psi.Kind{psi.KindEmail, psi.KindPhone, psi.KindID}) {
		t.Errorf("slots %d, kinds %v", res.Slots(), res.Kinds())
	}
	if res.Columns[1].Name != "first name" || res.Columns[1].Use != ColumnIgnored {
		t.Errorf("columns %+v", res.Columns)
	}
}

func TestNormalizeHeader(t *testing.T) {
	for in, want := range map[string]string{
		"Email":               "email",
		"  First Name ":       "first_name",
		"first__name":         "first_name",
		"First - Name":        "first_name",
		"_email_":             "email",
		"Mobile  Device  ID":  "mobile_device_id",
		"\u00a0EMAIL_SHA256 ": "email_sha256",
		"":                    "",
	} {
		if got := normalizeHeader(in); got != want {
			t.Errorf("normalizeHeader(%q) = %q, want %q", in, got, want)
		}
	}
}

// customerFile returns a customer file of n rows with two identifiers
// each: in the Google format, a plain email and a national phone number;
// otherwise, ours with an email and a mobile advertising id.
func customerFile(n int, google bool) string {
	var b strings.Builder
	if google {
		b.WriteString("Email,Phone,First Name,Last Name,Country,Zip\n")
	} else {
		b.WriteString("customer_id,email,madid\n")
	}
	for i := range n {
		if google {
			fmt.Fprintf(&b, "Customer.%d@Example.com,(212) %03d-%04d,Ann,Lee,US,10001\n", i, 200+i/10000%800, i%10000)
		} else {
			fmt.Fprintf(&b, "c%d,Customer.%d@Example.com,%08X-03EE-455A-B3C4-E57283966239\n", i, i, i)
		}
	}
	return b.String()
}

// BenchmarkReadRecords reads 10^5 customers of two identifiers each. It
// reports the time per customer and the heap the result keeps per
// identifier, measured once after a garbage collection.
func BenchmarkReadRecords(b *testing.B) {
	const n = 100_000
	for _, google := range []bool{true, false} {
		name := "ours-email-madid"
		if google {
			name = "google-email-phone"
		}
		b.Run(name, func(b *testing.B) {
			in := customerFile(n, google)
			read := func() RecordsResult {
				res, err := ReadRecords(strings.NewReader(in), RecordOptions{}, nil)
				if err != nil || len(res.Records) != n || res.BadCells != 0 {
					b.Fatalf("%d records, %d bad cells, %v", len(res.Records), res.BadCells, err)
				}
				return res
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			res := read()
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(res)
			retained := float64(after.HeapAlloc-before.HeapAlloc) / (2 * n)

			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				read()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/customer")
			b.ReportMetric(retained, "retained-B/identifier")
		})
	}
}

func TestIsCustomerHeader(t *testing.T) {
	for _, tc := range []struct {
		header []string
		want   bool
	}{
		{[]string{"email"}, false},
		{[]string{"email", "customer_id"}, false},
		{[]string{"phone"}, false},
		{[]string{"Email", "Phone"}, true},
		{[]string{"email", "email"}, true},
		{[]string{"Email", "First Name", "Last Name", "Country", "Zip"}, true},
		{[]string{"email", "fn"}, true},
		{[]string{"madid", "country"}, true},
		{[]string{"name", "city"}, false},       // no identifier column
		{[]string{"email", "email_md5"}, false}, // refused by ReadRecords
		{[]string{"country", "Country"}, false}, // two country columns
		{nil, false},
	} {
		if got := IsCustomerHeader(tc.header); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.header, got, tc.want)
		}
	}
}
