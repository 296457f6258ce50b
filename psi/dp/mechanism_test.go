package dp

import (
	"errors"
	"math/big"
	"testing"
)

func TestMechanismDescribesItself(t *testing.T) {
	m := Default()
	num, den := m.EpsilonFraction()
	if m.Name() != "discrete Laplace" || m.Code() != CodeDiscreteLaplace || num != 1 || den != 2 ||
		m.Sensitivity() != 1 || m.Delta().Sign() != 0 || m.Scale().Cmp(big.NewRat(2, 1)) != 0 {
		t.Fatalf("default mechanism: %v", m)
	}
	if got, want := m.String(), "discrete Laplace (ε = 1/2, δ = 0, Δ = 1, scale 2)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	m2 := must(NewDiscreteLaplace(big.NewRat(3, 4), 2))
	if m2.Scale().Cmp(big.NewRat(8, 3)) != 0 {
		t.Errorf("scale of ε = 3/4, Δ = 2: %v, want 8/3", m2.Scale())
	}
	if !(Mechanism{}).IsZero() || m.IsZero() {
		t.Error("IsZero")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// The 95% half-widths of SPEC.md §10.6.
func TestHalfWidth95(t *testing.T) {
	for _, tc := range []struct {
		eps  *big.Rat
		sens uint32
		want int64
	}{
		{big.NewRat(1, 2), 1, 6}, // the default
		{big.NewRat(1, 4), 1, 12},
		{big.NewRat(1, 1), 1, 3},
		{big.NewRat(2, 1), 1, 1},
		{big.NewRat(1, 10), 1, 30},
		{big.NewRat(1, 1), 2, 6}, // Δ = 2 doubles the scale of ε = 1
		{big.NewRat(64, 1), 1, 0},
	} {
		m := must(NewDiscreteLaplace(tc.eps, tc.sens))
		if got := m.HalfWidth95(); got != tc.want {
			t.Errorf("%v: half-width %d, want %d", m, got, tc.want)
		}
	}
	// A tiny ε has a huge but finite interval.
	m := must(NewDiscreteLaplace(big.NewRat(1, 1<<32-1), MaxSensitivity))
	if w := m.HalfWidth95(); w < 8.43e14 || w > 8.44e14 { // τ·ln 20
		t.Errorf("%v: half-width %d", m, w)
	}
}

// The half-width is the least w whose interval holds 95% of the mass, with
// the mass summed term by term from the PMF.
func TestHalfWidthAgainstPMF(t *testing.T) {
	for _, eps := range []*big.Rat{big.NewRat(1, 2), big.NewRat(1, 3), big.NewRat(7, 5), big.NewRat(1, 20)} {
		m := must(NewDiscreteLaplace(eps, 1))
		w := m.HalfWidth95()
		mass := func(w int64) *big.Float {
			sum := new(big.Float).SetPrec(256)
			for z := -w; z <= w; z++ {
				sum.Add(sum, m.PMF(z, 256))
			}
			return sum
		}
		level := new(big.Float).SetPrec(256).SetRat(big.NewRat(19, 20))
		if mass(w).Cmp(level) < 0 {
			t.Errorf("%v: P(|Z| ≤ %d) = %v < 0.95", m, w, mass(w))
		}
		if w > 0 && mass(w-1).Cmp(level) >= 0 {
			t.Errorf("%v: P(|Z| ≤ %d) = %v already ≥ 0.95", m, w-1, mass(w-1))
		}
	}
}

// The PMF sums to 1.
func TestPMFSumsToOne(t *testing.T) {
	m := Default()
	sum := new(big.Float).SetPrec(256)
	for z := int64(-400); z <= 400; z++ {
		sum.Add(sum, m.PMF(z, 256))
	}
	if f, _ := sum.Float64(); f < 1-1e-15 || f > 1+1e-15 {
		t.Errorf("PMF sums to %v", sum)
	}
}

// The interval covers the noise in about 95% of draws (96.24% for the
// default).
func TestIntervalCoverage(t *testing.T) {
	const n = 200_000
	s := seeded(9)
	m := Default()
	w := m.HalfWidth95()
	in := 0
	for range n {
		z, err := m.Sample(s)
		if err != nil {
			t.Fatal(err)
		}
		if z >= -w && z <= w {
			in++
		}
	}
	if got := float64(in) / n; got < 0.9624-0.003 || got > 0.9624+0.003 {
		t.Errorf("coverage %.4f, want 0.9624", got)
	}
}

func TestMechanismParameters(t *testing.T) {
	for _, tc := range []struct {
		name                string
		code                uint8
		num, den, sensitive uint32
	}{
		// Unknown mechanisms.
		{"code 0", 0, 1, 2, 1},
		{"code 2 (reserved)", 2, 1, 2, 1},
		// ε that is zero, undefined, not canonical or too large.
		{"ε numerator 0", 1, 0, 2, 1},
		{"ε denominator 0", 1, 1, 0, 1},
		{"ε not in lowest terms", 1, 2, 4, 1},
		{"ε above 64", 1, 65, 1, 1},
		{"ε just above 64", 1, 64*3 + 1, 3, 1},
		// Sensitivities out of range.
		{"sensitivity 0", 1, 1, 2, 0},
		{"sensitivity above the maximum", 1, 1, 2, MaxSensitivity + 1},
	} {
		if _, err := FromWire(tc.code, tc.num, tc.den, tc.sensitive); !errors.Is(err, ErrParam) {
			t.Errorf("%s: %v, want ErrParam", tc.name, err)
		}
	}
	if _, err := NewDiscreteLaplace(nil, 1); !errors.Is(err, ErrParam) {
		t.Errorf("nil ε: %v", err)
	}
	if _, err := NewDiscreteLaplace(new(big.Rat).SetFrac64(1, 1<<40), 1); !errors.Is(err, ErrParam) {
		t.Errorf("ε = 2^-40: %v", err)
	}
	if _, err := NewDiscreteLaplace(big.NewRat(-1, 2), 1); !errors.Is(err, ErrParam) {
		t.Errorf("negative ε: %v", err)
	}
	if _, err := Default().HalfWidth(big.NewRat(1, 1)); !errors.Is(err, ErrParam) {
		t.Errorf("level 1: %v", err)
	}
	if m, err := FromWire(1, 64, 1, MaxSensitivity); err != nil || m.Sensitivity() != MaxSensitivity {
		t.Errorf("ε = 64 at the maximum sensitivity: %v", err)
	}
}
