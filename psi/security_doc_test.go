package psi

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// SECURITY.md backs every property it states with a named test. This test
// fails when a name there no longer exists, so the document cannot quietly
// point at a test that was renamed or removed.
func TestSecurityDocNamesRealTests(t *testing.T) {
	doc, err := os.ReadFile("../SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	var sources strings.Builder
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sources.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	src := sources.String()
	names := regexp.MustCompile("`((?:Test|Fuzz)[A-Za-z0-9_]+)(?:/([A-Za-z0-9_]+))?`").FindAllStringSubmatch(string(doc), -1)
	if len(names) < 30 {
		t.Fatalf("SECURITY.md names only %d tests; the pattern or the document changed", len(names))
	}
	for _, m := range names {
		if !strings.Contains(src, "func "+m[1]+"(") {
			t.Errorf("SECURITY.md names %s, which no test file declares", m[0])
		}
		if m[2] != "" && !strings.Contains(src, `t.Run("`+m[2]+`"`) {
			t.Errorf("SECURITY.md names %s, whose subtest %q no test file runs", m[0], m[2])
		}
	}
}
