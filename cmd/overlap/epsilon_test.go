package main

import (
	"testing"

	"github.com/overlap-psi/overlap/psi/store"
)

func TestParseEpsilon(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		// Decimals, kept exactly in millionths.
		{"2", 2_000_000, true},
		{"0.5", 500_000, true},
		{".25", 250_000, true},
		{"1.", 1_000_000, true},
		{"0.000001", 1, true},
		{"0.1234560", 123_456, true},
		{" 3 ", 3_000_000, true},
		{"0", 0, true},
		// Exponents, as YAML prints small floats, and fractions.
		{"1e-06", 1, true},
		{"5E-1", 500_000, true},
		{"1/2", 500_000, true},
		{"3/4", 750_000, true},
		// More than 6 decimals, or not a whole number of millionths.
		{"0.0000001", 0, false},
		{"1/3", 0, false},
		{"1e-7", 0, false},
		// Negative, not a number, other bases, too large.
		{"-1", 0, false},
		{"-0.5", 0, false},
		{"", 0, false},
		{"lots", 0, false},
		{"NaN", 0, false},
		{"Inf", 0, false},
		{"0x10", 0, false},
		{"010/2", 5_000_000, true}, // decimal, not octal
		{"1/0", 0, false},
		{"1,5", 0, false},
		{"1e400", 0, false},
		{"9223372036854.775808", 0, false},
	} {
		got, err := parseEpsilon("privacy-budget", tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseEpsilon(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestEpsilonRoundTrip: what the CLI prints, it reads back exactly.
func TestEpsilonRoundTrip(t *testing.T) {
	for micro, want := range map[int64]string{
		0: "0", 1: "0.000001", 500_000: "0.5", 2_000_000: "2", 1_250_000: "1.25", 123_456_789: "123.456789", -500_000: "-0.5",
	} {
		if got := store.FormatEpsilon(micro); got != want {
			t.Errorf("store.FormatEpsilon(%d) = %q, want %q", micro, got, want)
		}
		if micro >= 0 {
			if back, err := parseEpsilon("x", want); err != nil || back != micro {
				t.Errorf("parseEpsilon(store.FormatEpsilon(%d)) = %d, %v", micro, back, err)
			}
		}
	}
}
