package dp

import (
	"errors"
	"testing"
)

func TestParseEpsilon(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Epsilon
		err  error
	}{
		// Decimals, kept exactly in millionths.
		{"2", 2_000_000, nil},
		{"0.5", 500_000, nil},
		{".25", 250_000, nil},
		{"1.", 1_000_000, nil},
		{"0.000001", 1, nil},
		{"0.1234560", 123_456, nil},
		{" 3 ", 3_000_000, nil},
		{"0", 0, nil},
		// Exponents, as YAML prints small floats, and fractions.
		{"1e-06", 1, nil},
		{"5E-1", 500_000, nil},
		{"1/2", 500_000, nil},
		{"3/4", 750_000, nil},
		{"010/2", 5_000_000, nil}, // decimal, not octal
		// More than 6 decimals, or not a whole number of millionths.
		{"0.0000001", 0, ErrEpsilonPrecision},
		{"1/3", 0, ErrEpsilonPrecision},
		{"1e-7", 0, ErrEpsilonPrecision},
		// Negative, not a number, other bases, too large.
		{"-1", 0, ErrEpsilonNegative},
		{"-0.5", 0, ErrEpsilonNegative},
		{"", 0, ErrEpsilonSyntax},
		{"lots", 0, ErrEpsilonSyntax},
		{"NaN", 0, ErrEpsilonSyntax},
		{"Inf", 0, ErrEpsilonSyntax},
		{"0x10", 0, ErrEpsilonSyntax},
		{"1/0", 0, ErrEpsilonSyntax},
		{"1,5", 0, ErrEpsilonSyntax},
		{"1e400", 0, ErrEpsilonRange},
		{"9223372036854.775808", 0, ErrEpsilonRange},
	} {
		got, err := ParseEpsilon(tc.in)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("ParseEpsilon(%q) = %d, %v; want %d, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// What String prints, ParseEpsilon reads back exactly.
func TestEpsilonRoundTrip(t *testing.T) {
	for e, want := range map[Epsilon]string{
		0: "0", 1: "0.000001", 500_000: "0.5", 2_000_000: "2", 1_250_000: "1.25", 123_456_789: "123.456789", -500_000: "-0.5",
	} {
		if got := e.String(); got != want {
			t.Errorf("Epsilon(%d).String() = %q, want %q", int64(e), got, want)
		}
		if e < 0 {
			continue
		}
		if back, err := ParseEpsilon(want); err != nil || back != e {
			t.Errorf("ParseEpsilon(%q) = %d, %v; want %d", want, back, err, int64(e))
		}
	}
}

// A spend is rounded up to the unit.
func TestEpsilonOf(t *testing.T) {
	for _, tc := range []struct {
		num, den uint32
		want     Epsilon
	}{{1, 2, 500_000}, {1, 3, 333_334}, {2, 3, 666_667}, {64, 1, 64_000_000}, {1, 1_000_000, 1}, {1, 4_000_000, 1}, {1<<32 - 1, 1, (1<<32 - 1) * 1_000_000}} {
		if got, err := EpsilonOf(tc.num, tc.den); err != nil || got != tc.want {
			t.Errorf("EpsilonOf(%d/%d) = %d, %v; want %d", tc.num, tc.den, got, err, tc.want)
		}
	}
	if _, err := EpsilonOf(1, 0); err == nil {
		t.Error("EpsilonOf(1/0) succeeded")
	}
}
