package idfile

import (
	"slices"
	"strings"
	"testing"

	"github.com/overlap-psi/overlap/psi/ident"
)

// recordHeaders prefix the quote seeds for FuzzReadRecords.
var recordHeaders = []string{
	"email\n",
	"Email,Phone,First Name,Last Name,Country,Zip\n",
	"email,phone,fn,ln,country,madid\n",
	"email_sha256,phone_sha256,id\n",
	"phone,country\n",
}

// FuzzReadRecords reads any input as a customer file: it never panics,
// the counts add up, every report has a line number of its own data line
// (bar the header), and errors never quote the input.
func FuzzReadRecords(f *testing.F) {
	for _, tt := range recordsTests {
		if len(tt.in) < 4096 {
			f.Add(tt.in, tt.opts.MaxRejects > 0)
		}
	}
	for _, in := range quoteSeeds {
		for _, h := range recordHeaders {
			f.Add(h+in, false)
		}
	}
	f.Fuzz(func(t *testing.T, in string, strict bool) {
		opts := RecordOptions{Ident: ident.Options{DefaultRegion: "US"}}
		if strict {
			opts.MaxRejects = 1
		}
		var rejects []Reject
		res, err := ReadRecords(strings.NewReader(in), opts, func(r Reject) { rejects = append(rejects, r) })
		checkRecordCounts(t, res, rejects, err)
		if strict && len(rejects) > 1 {
			t.Fatalf("%d reports with MaxRejects 1", len(rejects))
		}
		if err != nil && res.Rows == 0 && len(res.Columns) == 0 {
			// Refused before any row: the header or the options.
			if strings.Contains(err.Error(), "@") {
				t.Fatalf("error may contain a value: %v", err)
			}
			return
		}
		// Every row report is a distinct data line after the header, every
		// cell report a data line, and every data line is one row.
		lines := dataLines(in, FormatCSV)
		if len(lines) > 0 {
			lines = lines[1:]
		}
		if err == nil && !strings.HasPrefix(in, "\xff\xfe") && !strings.HasPrefix(in, "\xfe\xff") && res.Rows != len(lines) {
			t.Fatalf("%d rows read from %d data lines", res.Rows, len(lines))
		}
		row := 0
		for _, r := range rejects {
			if !slices.Contains(lines, r.Line) {
				t.Fatalf("report %v is not on a data line", r)
			}
			if r.Column == "" {
				if r.Line == row {
					t.Fatalf("two row reports on line %d", r.Line)
				}
				row = r.Line
			} else if ok := slices.ContainsFunc(res.Columns, func(c Column) bool { return c.Use == ColumnIdentifier && c.Name == r.Column }); !ok {
				t.Fatalf("cell report %v names no identifier column", r)
			}
		}
	})
}

// TestRecordsEveryLineCounted reads the quote seeds and the long lines of
// longSeed as customer files: every data line after the header is one row,
// used, a duplicate or rejected.
func TestRecordsEveryLineCounted(t *testing.T) {
	for _, seed := range append(slices.Clone(quoteSeeds), longSeed) {
		for _, h := range recordHeaders {
			in := h + seed
			var rejects []Reject
			res, err := ReadRecords(strings.NewReader(in), RecordOptions{Ident: ident.Options{DefaultRegion: "US"}},
				func(r Reject) { rejects = append(rejects, r) })
			if err != nil {
				t.Fatalf("%q: %v", in[:min(len(in), 40)], err)
			}
			checkRecordCounts(t, res, rejects, err)
			if lines := dataLines(in, FormatCSV); res.Rows != len(lines)-1 {
				t.Errorf("%q: %d rows from %d data lines after the header", in[:min(len(in), 40)], res.Rows, len(lines)-1)
			}
		}
	}
}
