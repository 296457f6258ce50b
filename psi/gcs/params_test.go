package gcs

import (
	"errors"
	"math"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		p  Params
		ok bool
	}{
		// Edges that are valid.
		{Params{N: 1, M: 1, K: 0}, true},
		{Params{N: 1, M: 1, K: 1}, true}, // K ≤ bitlen(1) = 1
		{Params{N: MaxN, M: math.MaxUint64, K: 63}, true},
		{Params{N: 1000, M: 1 << 62, K: 63}, true},
		// Bad N.
		{Params{N: 0, M: 1}, false},
		{Params{N: MaxN + 1, M: 1}, false},
		// Bad M.
		{Params{N: 1, M: 0}, false},
		// Bad K.
		{Params{N: 1, M: 1, K: 2}, false},
		{Params{N: 1, M: 1<<62 - 1, K: 63}, false},
		{Params{N: 1, M: math.MaxUint64, K: 64}, false},
		{Params{N: 1, M: math.MaxUint64, K: 255}, false},
	} {
		err := tt.p.Validate()
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrParams) {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tt.p, err, tt.ok)
		}
	}
	if f := (Params{N: MaxN, M: math.MaxUint64}).F(); f != (Uint128{1<<32 - 1, 1<<64 - 1<<32}) {
		t.Errorf("F() = %v", f)
	}
}

func TestChooseParams(t *testing.T) {
	for _, tt := range []struct {
		n, q uint64
		fp   float64
		m    uint64
	}{
		{1, 1, 1.0 / 1024, 1024},
		{1 << 20, 1e6, 1e-3, 1e9},
		{1e7, 1e7, 1e-4, 1e11},
		{1e7, 1e7, 1e-6, 1e13},
		{5, 3, 0.7, 5}, // ⌈4.29⌉
		{5, 0, 0.5, 1},
		{MaxN, 1 << 62, 0.5, 1 << 63},
	} {
		p, err := ChooseParams(tt.n, tt.q, tt.fp)
		if err != nil {
			t.Errorf("ChooseParams(%d, %d, %g): %v", tt.n, tt.q, tt.fp, err)
			continue
		}
		if p.N != tt.n || p.M != tt.m || p.Validate() != nil {
			t.Errorf("ChooseParams(%d, %d, %g) = %+v, want M = %d", tt.n, tt.q, tt.fp, p, tt.m)
		}
		// K is the minimizer of the expected length.
		for k := 0; k <= min(63, 64); k++ {
			if q := (Params{N: 1, M: p.M, K: uint8(k)}); q.Validate() == nil && ExpectedBits(q) < ExpectedBits(p) {
				t.Errorf("M = %d: K = %d beats chosen K = %d", p.M, k, p.K)
			}
		}
	}
	for _, tt := range []struct {
		n, q uint64
		fp   float64
	}{
		// Bad set size.
		{0, 1, 0.1}, {MaxN + 1, 1, 0.1},
		// Bad false-positive target.
		{1, 1, 0}, {1, 1, -1}, {1, 1, 1}, {1, 1, 2}, {1, 1, math.NaN()}, {1, 1, math.Inf(1)},
		// M overflows.
		{1, math.MaxUint64, 0.999}, {1, 1 << 63, 0.5}, {1, 1, 1e-20}, {1, 1, math.SmallestNonzeroFloat64},
	} {
		if p, err := ChooseParams(tt.n, tt.q, tt.fp); !errors.Is(err, ErrParams) {
			t.Errorf("ChooseParams(%d, %d, %g) = %+v, %v, want ErrParams", tt.n, tt.q, tt.fp, p, err)
		}
	}
}

// TestChooseParamsM checks that M is the least integer with q/M ≤ fp.
func TestChooseParamsM(t *testing.T) {
	for q := uint64(1); q < 2000; q += 37 {
		for _, fp := range []float64{0.5, 0.1, 0.01, 1e-3, 1e-4, 1.0 / 3, 0.999} {
			p, err := ChooseParams(1, q, fp)
			if err != nil {
				t.Fatal(err)
			}
			if float64(q)/float64(p.M) > fp || p.M > 1 && float64(q)/float64(p.M-1) <= fp {
				t.Fatalf("ChooseParams(1, %d, %g).M = %d", q, fp, p.M)
			}
		}
	}
}

// entropyBits is the entropy in bits of the gap model P(d = j) = (1−θ)θ^j,
// θ = e^{−1/M}: a lower bound on any prefix code.
func entropyBits(M float64) float64 {
	p := -math.Expm1(-1 / M) // 1 − θ
	theta := 1 - p
	return -math.Log2(p) + theta/p/(M*math.Ln2)
}

func TestOptimalBits(t *testing.T) {
	// Brute force over every Golomb parameter for small M.
	for M := uint64(1); M <= 300; M++ {
		best := math.Inf(1)
		for b := uint64(1); b <= 4*M; b++ {
			best = min(best, golombBits(float64(M), b))
		}
		if got := OptimalBits(M); math.Abs(got-best) > 1e-12 {
			t.Fatalf("OptimalBits(%d) = %v, brute force %v", M, got, best)
		}
	}
	for _, M := range []uint64{1, 2, 3, 10, 1 << 10, 1e6, 1e9, 1e11, 1e13, 1 << 62, math.MaxUint64} {
		opt, h := OptimalBits(M), entropyBits(float64(M))
		// Golomb codes are optimal prefix codes for geometric gaps: within one
		// bit of the entropy, and in fact within 0.1 bits.
		if opt < h-1e-9 || opt > h+0.1 {
			t.Errorf("OptimalBits(%d) = %v, entropy %v", M, opt, h)
		}
		// Rice codes are Golomb codes with b = 2^K.
		for k := 0; k <= min(63, 64); k++ {
			p := Params{N: 1, M: M, K: uint8(k)}
			if p.Validate() != nil {
				continue
			}
			if e, g := ExpectedBits(p), golombBits(float64(M), 1<<k); math.Abs(e-g) > 1e-9*e {
				t.Errorf("M = %d, K = %d: ExpectedBits %v, Golomb b = 2^K %v", M, k, e, g)
			}
			if ExpectedBits(p) < opt-1e-9 {
				t.Errorf("M = %d, K = %d: ExpectedBits %v below OptimalBits %v", M, k, ExpectedBits(p), opt)
			}
		}
	}
	// ChooseParams' K is never far from the optimum.
	for x := 1.0; x < 1.8e19; x *= 1.01 {
		m := uint64(x)
		if e, o := ExpectedBits(Params{N: 1, M: m, K: chooseK(m)}), OptimalBits(m); e > o+0.091 || e > 1.02*o {
			t.Errorf("M = %d: Rice %v bits, optimum %v", m, e, o)
		}
	}
	if !math.IsInf(OptimalBits(0), 1) || !math.IsInf(ExpectedBits(Params{N: 1}), 1) {
		t.Error("M = 0 should give +Inf")
	}
}
