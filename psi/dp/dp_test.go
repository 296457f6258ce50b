package dp

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"testing"
)

// The goodness-of-fit tests draw from a seeded ChaCha8 stream, a fast
// unbiased source, so they are deterministic; crypto/rand is only faster to
// exhaust, not different in kind. They draw 10^6 samples per distribution
// by default; OVERLAP_DP_DRAWS sets another number.
func draws(t testing.TB) int {
	if s := os.Getenv("OVERLAP_DP_DRAWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1000 {
			t.Fatalf("OVERLAP_DP_DRAWS=%q: want an integer ≥ 1000", s)
		}
		return n
	}
	if testing.Short() {
		return 200_000
	}
	return 1_000_000
}

func seeded(seed uint64) *Sampler {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return NewSampler(mrand.NewChaCha8(s))
}

// chiSquare compares observed counts with a probability mass function over
// the integers. Cells are the integers whose expected count is at least 5,
// with everything else pooled into the two tails. It returns the statistic
// and the degrees of freedom.
func chiSquare(counts map[int64]int, pmf func(int64) float64, total int) (stat float64, dof int) {
	// Cells: [lo, hi], plus a left tail (< lo) and a right tail (> hi).
	var lo, hi int64
	for pmf(lo-1)*float64(total) >= 5 {
		lo--
	}
	for pmf(hi+1)*float64(total) >= 5 {
		hi++
	}
	var inside float64
	var obsInside int
	for z := lo; z <= hi; z++ {
		e := pmf(z) * float64(total)
		o := float64(counts[z])
		stat += (o - e) * (o - e) / e
		inside += pmf(z)
		obsInside += counts[z]
		dof++
	}
	// The tails, split as the PMF splits them (symmetric here).
	tail := (1 - inside) / 2
	var left, right int
	for z, c := range counts {
		if z < lo {
			left += c
		} else if z > hi {
			right += c
		}
	}
	for _, o := range []int{left, right} {
		e := tail * float64(total)
		if e > 0 {
			stat += (float64(o) - e) * (float64(o) - e) / e
			dof++
		} else if o > 0 {
			return math.Inf(1), dof
		}
	}
	return stat, dof - 1
}

// chiSquareCritical is the upper 10^-4 quantile of the chi-square
// distribution with k degrees of freedom (Wilson–Hilferty).
func chiSquareCritical(k int) float64 {
	const z = 3.719 // upper 10^-4 quantile of the standard normal
	f := float64(k)
	c := 1 - 2/(9*f) + z*math.Sqrt(2/(9*f))
	return f * c * c * c
}

func laplacePMF(scale float64) func(int64) float64 {
	q := math.Exp(-1 / scale)
	return func(z int64) float64 { return (1 - q) / (1 + q) * math.Pow(q, math.Abs(float64(z))) }
}

func gaussianPMF(sigma2 float64) func(int64) float64 {
	var norm float64
	for z := -2000; z <= 2000; z++ {
		norm += math.Exp(-float64(z*z) / (2 * sigma2))
	}
	return func(z int64) float64 { return math.Exp(-float64(z*z)/(2*sigma2)) / norm }
}

func fit(t *testing.T, name string, n int, pmf func(int64) float64, sample func() (int64, error)) {
	t.Helper()
	counts := map[int64]int{}
	var sum, sumSq float64
	for range n {
		z, err := sample()
		if err != nil {
			t.Fatal(err)
		}
		counts[z]++
		sum += float64(z)
		sumSq += float64(z) * float64(z)
	}
	stat, dof := chiSquare(counts, pmf, n)
	crit := chiSquareCritical(dof)
	t.Logf("%s: %d draws, chi-square %.1f with %d degrees of freedom (10^-4 critical value %.1f), mean %.4f, variance %.4f",
		name, n, stat, dof, crit, sum/float64(n), sumSq/float64(n)-(sum/float64(n))*(sum/float64(n)))
	if stat > crit {
		t.Errorf("%s: chi-square %.1f exceeds %.1f", name, stat, crit)
	}
}

// The samplers' outputs match their probability mass functions.
func TestGoodnessOfFit(t *testing.T) {
	n := draws(t)
	// The default mechanism, ε = 1/2, Δ = 1: scale 2.
	s := seeded(1)
	m := Default()
	fit(t, "discrete Laplace, scale 2 (default mechanism)", n, laplacePMF(2), func() (int64, error) { return m.Sample(s) })
	// A scale whose numerator and denominator both matter (s, t > 1).
	s = seeded(2)
	fit(t, "discrete Laplace, scale 7/3", n/4, laplacePMF(7.0/3), func() (int64, error) { return s.DiscreteLaplace(big.NewRat(7, 3)) })
	// A small scale, where the geometric loop dominates.
	s = seeded(3)
	fit(t, "discrete Laplace, scale 1/5", n/4, laplacePMF(1.0/5), func() (int64, error) { return s.DiscreteLaplace(big.NewRat(1, 5)) })
	// The discrete Gaussian, through big-integer Bernoulli trials.
	s = seeded(4)
	fit(t, "discrete Gaussian, σ² = 5/2", n/4, gaussianPMF(2.5), func() (int64, error) { return s.DiscreteGaussian(big.NewRat(5, 2)) })
	s = seeded(5)
	fit(t, "discrete Gaussian, σ² = 16", n/8, gaussianPMF(16), func() (int64, error) { return s.DiscreteGaussian(big.NewRat(16, 1)) })
}

// Bernoulli trials with rational and exponential probabilities hit their
// probability within five standard deviations.
func TestBernoulli(t *testing.T) {
	const n = 200_000
	s := seeded(6)
	check := func(name string, p float64, trial func() (bool, error)) {
		t.Helper()
		k := 0
		for range n {
			ok, err := trial()
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				k++
			}
		}
		sd := math.Sqrt(p * (1 - p) / n)
		if got := float64(k) / n; math.Abs(got-p) > 5*sd+1e-12 {
			t.Errorf("%s: frequency %.5f, want %.5f ± %.5f", name, got, p, 5*sd)
		}
	}
	for _, tc := range []struct{ num, den uint64 }{{0, 1}, {1, 1}, {1, 3}, {2, 7}, {1, 1 << 40}, {5, 2}, {10, 1}, {123456789, 100000000}} {
		check(fmt.Sprintf("exp(−%d/%d)", tc.num, tc.den), math.Exp(-float64(tc.num)/float64(tc.den)),
			func() (bool, error) { return s.BernoulliExp(tc.num, tc.den) })
	}
	for _, tc := range []struct{ num, den uint64 }{{0, 5}, {5, 5}, {1, 3}, {3, 1000}, {1<<63 - 1, 1 << 63}} {
		check(fmt.Sprintf("%d/%d", tc.num, tc.den), float64(tc.num)/float64(tc.den),
			func() (bool, error) { return s.Bernoulli(tc.num, tc.den) })
	}
	// The big-integer paths agree with the same probabilities.
	check("big exp(−1/3)", math.Exp(-1.0/3), func() (bool, error) {
		return s.bernoulliExpUnitBig(big.NewInt(1), big.NewInt(3), big.NewInt(1))
	})
	huge := new(big.Int).Lsh(big.NewInt(1), 100)
	check("big exp(−(2^100+1)/2^100)", math.Exp(-1), func() (bool, error) {
		return s.bernoulliExpBig(new(big.Int).Add(huge, big.NewInt(1)), huge)
	})
	check("big 1/3 of 2^100", 1.0/3, func() (bool, error) {
		return s.bernoulliBig(new(big.Int).Div(huge, big.NewInt(3)), huge)
	})
}

func TestUniform(t *testing.T) {
	const n, k = 120_000, 12
	s := seeded(7)
	counts := make(map[int64]int)
	for range n {
		u, err := s.Uniform(k)
		if err != nil {
			t.Fatal(err)
		}
		counts[int64(u)]++
	}
	var stat float64
	for i := range int64(k) {
		e := float64(n) / k
		stat += (float64(counts[i]) - e) * (float64(counts[i]) - e) / e
	}
	if crit := chiSquareCritical(k - 1); stat > crit || len(counts) != k {
		t.Errorf("Uniform(%d): chi-square %.1f over %d cells, critical %.1f", k, stat, len(counts), crit)
	}
}

func TestBadParameters(t *testing.T) {
	s := seeded(8)
	for name, f := range map[string]func() error{
		// Degenerate ranges and probabilities.
		"Uniform(0)":            func() error { _, err := s.Uniform(0); return err },
		"Bernoulli(1/0)":        func() error { _, err := s.Bernoulli(1, 0); return err },
		"Bernoulli(3/2)":        func() error { _, err := s.Bernoulli(3, 2); return err },
		"BernoulliExp(1/0)":     func() error { _, err := s.BernoulliExp(1, 0); return err },
		"bernoulliBig(−1/2)":    func() error { _, err := s.bernoulliBig(big.NewInt(-1), big.NewInt(2)); return err },
		"bernoulliExpBig(1/−1)": func() error { _, err := s.bernoulliExpBig(big.NewInt(1), big.NewInt(-1)); return err },
		// Scales and variances that are not positive or do not fit.
		"Laplace(nil)": func() error { _, err := s.DiscreteLaplace(nil); return err },
		"Laplace(0)":   func() error { _, err := s.DiscreteLaplace(new(big.Rat)); return err },
		"Laplace(−1)":  func() error { _, err := s.DiscreteLaplace(big.NewRat(-1, 1)); return err },
		"Laplace(2^70)": func() error {
			_, err := s.DiscreteLaplace(new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), 70)))
			return err
		},
		"Gaussian(0)":    func() error { _, err := s.DiscreteGaussian(new(big.Rat)); return err },
		"Gaussian(−3/2)": func() error { _, err := s.DiscreteGaussian(big.NewRat(-3, 2)); return err },
		"Gaussian(1/2^70)": func() error {
			_, err := s.DiscreteGaussian(new(big.Rat).SetFrac(big.NewInt(1), new(big.Int).Lsh(big.NewInt(1), 70)))
			return err
		},
		"zero Mechanism":      func() error { _, err := Mechanism{}.Sample(s); return err },
		"zero Mechanism's 95": func() error { _, err := Mechanism{}.HalfWidth(big.NewRat(19, 20)); return err },
	} {
		if err := f(); !errors.Is(err, ErrParam) {
			t.Errorf("%s: %v, want ErrParam", name, err)
		}
	}
}

// A failing random source is reported, never turned into a sample.
func TestSourceErrors(t *testing.T) {
	s := NewSampler(bytes.NewReader(make([]byte, 10)))
	var err error
	for range 100 {
		if _, err = Default().Sample(s); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("a 10-byte source gave 100 samples")
	}
}

func TestSamplerDoesNotPrint(t *testing.T) {
	s := NewSampler(bytes.NewReader(bytes.Repeat([]byte{0xab}, 256)))
	s.bits(3)
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		if out := fmt.Sprintf(f, s); out != "dp.Sampler" {
			t.Errorf("%s prints %q", f, out)
		}
	}
	s.Erase()
	if s.acc != 0 || !bytes.Equal(s.buf[:], make([]byte, len(s.buf))) {
		t.Error("Erase left random bits")
	}
}

func BenchmarkSample(b *testing.B) {
	var seed [32]byte
	for _, bc := range []struct {
		name string
		f    func(*Sampler) (int64, error)
	}{
		{"DiscreteLaplace/eps=1_2", Default().Sample},
		{"DiscreteLaplace/scale=100", func(s *Sampler) (int64, error) { return s.DiscreteLaplace(big.NewRat(100, 1)) }},
		{"DiscreteGaussian/sigma2=16", func(s *Sampler) (int64, error) { return s.DiscreteGaussian(big.NewRat(16, 1)) }},
	} {
		b.Run(bc.name+"/ChaCha8", func(b *testing.B) {
			b.ReportAllocs()
			s := NewSampler(mrand.NewChaCha8(seed))
			for b.Loop() {
				if _, err := bc.f(s); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/crypto-rand", func(b *testing.B) {
			b.ReportAllocs()
			s := NewSampler(nil)
			for b.Loop() {
				if _, err := bc.f(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
