//go:build !advertiser

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A --bulk import that --strict stops leaves its staged rows; ids staged
// lists the batch, and --drop-older-than drops it. On SQLite it is an
// error that says why.
func TestIdsStaged(t *testing.T) {
	dsn := testSchemaDSN(t)
	cli := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"overlap"}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	file := filepath.Join(t.TempDir(), "ids.csv")
	var w strings.Builder
	w.WriteString("subject,kind,value,collected_for\n")
	for i := range 250 {
		fmt.Fprintf(&w, "s%d,email,user%d@example.com,signup\n", i, i)
	}
	w.WriteString("s250,email,not an email,signup\n") // line 252
	if err := os.WriteFile(file, []byte(w.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli("ids", "import", "--bulk", "--strict", "--db", dsn, file); code == 0 || !strings.Contains(stderr, "252") {
		t.Fatalf("strict bulk import of a file with a bad line 252: exit %d, %s", code, stderr)
	}
	code, out, stderr := cli("ids", "staged", "--db", dsn)
	if code != 0 || !strings.Contains(out, "rows staged") || !strings.Contains(out, file) || !strings.Contains(out, "ids") {
		t.Fatalf("ids staged: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := cli("ids", "staged", "--drop-older-than", "1h", "--db", dsn); code != 0 || !strings.Contains(out, "dropped 0 ") {
		t.Fatalf("ids staged --drop-older-than 1h: exit %d\n%s", code, out)
	}
	if code, out, _ := cli("ids", "staged", "--drop-older-than", "1ns", "--db", dsn); code != 0 || !strings.Contains(out, "dropped 1 ") || !strings.Contains(out, file) {
		t.Fatalf("ids staged --drop-older-than 1ns: exit %d\n%s", code, out)
	}
	if code, out, _ := cli("ids", "staged", "--db", dsn); code != 0 || !strings.Contains(out, "no bulk import is staged") {
		t.Fatalf("ids staged after the drop: exit %d\n%s", code, out)
	}
	sqlite := filepath.Join(t.TempDir(), "ledger.db")
	if code, _, stderr := cli("ids", "staged", "--db", sqlite); code == 0 || !strings.Contains(stderr, "PostgreSQL") {
		t.Fatalf("ids staged on SQLite: exit %d, %s", code, stderr)
	}
}
