package main

import (
	"errors"
	"strings"
	"testing"
)

// Each value parseEpsilon refuses gets its own hint (dp.ParseEpsilon's
// tests cover the parsing itself).
func TestParseEpsilonHints(t *testing.T) {
	if got, err := parseEpsilon("privacy-budget", "0.5"); err != nil || got != 500_000 {
		t.Fatalf("parseEpsilon(0.5) = %d, %v", got, err)
	}
	for in, hint := range map[string]string{
		"-1":        "at least 0",
		"0.0000001": "round it to at most 6 decimals",
		"1e400":     "a few units of ε",
		"lots":      "--privacy-budget 2",
	} {
		_, err := parseEpsilon("privacy-budget", in)
		var h *hintError
		if !errors.As(err, &h) || !strings.Contains(h.hint, hint) {
			t.Errorf("parseEpsilon(%q): %v, want a hint with %q", in, err, hint)
		}
	}
}
