package service

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestDevCertPermissions: the folder is 0700 and the key 0600; a folder
// open to others is narrowed, and a key readable by others is replaced,
// with a warning each.
func TestDevCertPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	dc, err := WriteDevCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("folder mode %#o", m)
	}
	if m := mode(t, dc.KeyFile); m != 0o600 {
		t.Errorf("key mode %#o", m)
	}
	if len(dc.Warnings) != 0 {
		t.Errorf("warnings on a fresh folder: %v", dc.Warnings)
	}
	key, _ := os.ReadFile(dc.KeyFile)

	// Reused as is.
	if again, err := WriteDevCert(dir); err != nil || !again.Reused || len(again.Warnings) != 0 {
		t.Errorf("second call: %+v, %v", again, err)
	}

	// Opened up: fixed, and the exposed key is not reused.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dc.KeyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	fixed, err := WriteDevCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fixed.Reused || len(fixed.Warnings) != 2 || !strings.Contains(fixed.Warnings[0], "narrowed to 0700") || !strings.Contains(fixed.Warnings[1], "not reused") {
		t.Errorf("after opening up: %+v", fixed)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("folder mode %#o after the fix", m)
	}
	if m := mode(t, fixed.KeyFile); m != 0o600 {
		t.Errorf("key mode %#o after the fix", m)
	}
	if now, _ := os.ReadFile(fixed.KeyFile); bytes.Equal(now, key) {
		t.Error("the exposed key was kept")
	}
	for _, w := range fixed.Warnings {
		if strings.Contains(w, "PRIVATE KEY") {
			t.Errorf("a warning holds key material: %s", w)
		}
	}
}
