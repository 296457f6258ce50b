//go:build !advertiser

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// testSchemaDSN creates a schema in the database OVERLAP_TEST_POSTGRES
// names, dropped when the test ends, and returns a DSN that uses it.
func testSchemaDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("OVERLAP_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	schema := "overlap_cli_" + strings.ToLower(rand.Text())
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if conn, err := pgx.Connect(ctx, dsn); err == nil {
			conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			conn.Close(ctx)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestConsentImportBulk runs consent import on one file without and with
// --bulk, each into a store holding the same identifiers: the same
// summary, the same rejected lines with the same reasons, exit status 3
// for both, and the same consent ledger, event by event in order.
func TestConsentImportBulk(t *testing.T) {
	a, b := testSchemaDSN(t), testSchemaDSN(t)
	dir := t.TempDir()
	ids := filepath.Join(dir, "ids.csv")
	var w strings.Builder
	w.WriteString("subject,kind,value,collected_for\n")
	for i := range 300 {
		fmt.Fprintf(&w, "s%d,email,user%d@example.com,signup\ns%d,phone,+447%09d,profile\n", i, i, i, i)
	}
	if err := os.WriteFile(ids, []byte(w.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(2 * time.Minute).UTC().Format(time.RFC3339)
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	w.Reset()
	w.WriteString("subject,kind,value,purpose,action,at,source,text_version\n")
	for i := range 300 {
		at := time.Date(2025, 1, 1, 0, 0, i, 0, time.UTC).Format(time.RFC3339)
		fmt.Fprintf(&w, "s%d,,,ad_matching,grant,%s,form,v1\n", i, at)
		switch i % 10 {
		case 1: // a scoped withdrawal, written another way than imported
			fmt.Fprintf(&w, "s%d,email,USER%d@Example.COM,ad_matching,withdraw,2025-02-01T00:00:00Z,settings,\n", i, i)
		case 2: // the same grant again, and a blank line
			fmt.Fprintf(&w, "s%d,,,ad_matching,grant,%s,form,v1\n\n", i, at)
		case 3:
			fmt.Fprintf(&w, "nobody%d,,,ad_matching,grant,%s,form,v1\n", i, at)
		case 4:
			fmt.Fprintf(&w, "s%d,email,other%d@example.com,ad_matching,grant,%s,form,v1\n", i, i, at)
		case 5:
			fmt.Fprintf(&w, "s%d,,,ad_matching,maybe,%s,form,v1\n", i, at)
		case 6:
			fmt.Fprintf(&w, "s%d,,,marketing,grant,%s,form,v1\n", i, at)
		case 7:
			fmt.Fprintf(&w, "s%d,,,ad_matching,withdraw,%s,form,\ns%d,,,ad_matching,grant,%s,form,v2\n", i, soon, i+1, later)
		case 8:
			fmt.Fprintf(&w, "s%d,phone,+44 7%09d,ad_matching,withdraw,2025-03-01T00:00:00Z,settings,\n", i, i)
		}
	}
	consent := filepath.Join(dir, "consent.csv")
	if err := os.WriteFile(consent, []byte(w.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"overlap"}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	for _, dsn := range []string{a, b} {
		if code, _, stderr := cli("ids", "import", "--db", dsn, ids); code != 0 {
			t.Fatalf("ids import: %d %s", code, stderr)
		}
	}
	rejA, rejB := filepath.Join(dir, "a.rejects"), filepath.Join(dir, "b.rejects")
	codeA, outA, errA := cli("consent", "import", "--db", a, "--rejects", rejA, consent)
	codeB, outB, errB := cli("consent", "import", "--db", b, "--bulk", "--rejects", rejB, consent)
	if codeA != exitRejected || codeB != exitRejected {
		t.Fatalf("exit status %d and %d, want %d\n%s\n%s", codeA, codeB, exitRejected, errA, errB)
	}
	secs := regexp.MustCompile(`\([0-9.]+s\)`)
	if sa, sb := secs.ReplaceAllString(outA, ""), secs.ReplaceAllString(outB, ""); sa != sb || !strings.Contains(sa, "rejected") {
		t.Errorf("summaries differ:\n%s\n%s", sa, sb)
	}
	// The rows the ledger refuses come last from --bulk (its merge), so
	// the first 100 on stderr may differ; --rejects has them all.
	rejected := func(path string) []string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		slices.Sort(lines)
		return lines
	}
	ra, rb := rejected(rejA), rejected(rejB)
	if !slices.Equal(ra, rb) || len(ra) < 100 {
		t.Errorf("rejected lines differ (%d and %d):\n%s\n--\n%s", len(ra), len(rb), strings.Join(ra, "\n"), strings.Join(rb, "\n"))
	}
	for _, reason := range []string{"unknown_subject", "unknown_identifier", "bad_action", "unknown_purpose", "future_at"} {
		if !slices.ContainsFunc(rb, func(l string) bool { return strings.HasSuffix(l, ","+reason) }) {
			t.Errorf("no %s among the bulk import's rejects", reason)
		}
	}
	dump := func(dsn string) string {
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(t.Context())
		r, err := conn.Query(t.Context(), `SELECT format('%s %s %s %s %s %s %s %s', row_number() OVER (ORDER BY e.id), s.subject,
				COALESCE(i.kind || ':' || i.value, '-'), e.purpose, e.granted, e.at, e.source, e.text_version)
			FROM consent_events e JOIN subjects s ON s.id = e.subject_id LEFT JOIN identifiers i ON i.id = e.identifier_id ORDER BY e.id`)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := pgx.CollectRows(r, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(rows, "\n")
	}
	if da, db := dump(a), dump(b); da != db || da == "" {
		t.Errorf("ledgers differ:\n%s\n--\n%s", da, db)
	}
	// Again with --bulk: nothing appended.
	code, out, _ := cli("consent", "import", "--db", b, "--bulk", consent)
	if code != exitRejected || !strings.Contains(out, " 0 appended") {
		t.Errorf("second --bulk run: %d %s", code, out)
	}
}
