// Package dp samples the noise of Overlap's private mode (SPEC.md §10.6)
// exactly, and describes the mechanism that adds it.
//
// Every sampler uses integer arithmetic only (uint64, and math/big where a
// product would not fit), never floating point, and draws its randomness
// from an io.Reader of uniform bytes: crypto/rand unless a caller supplies
// another. The algorithms are those of Canonne, Kamath and Steinke, "The
// Discrete Gaussian for Differential Privacy" (NeurIPS 2020):
//
//   - Algorithm 1: Bernoulli(exp(−γ)) for rational γ ≥ 0 from Bernoulli
//     trials with rational probabilities (BernoulliExp);
//   - Algorithm 2: the discrete Laplace distribution with rational scale
//     (DiscreteLaplace), through a geometric variable;
//   - Algorithm 3: the discrete Gaussian with rational variance
//     (DiscreteGaussian), by rejection from a discrete Laplace.
//
// Their outputs follow the target distributions exactly, given uniform input
// bytes: there is no rounding anywhere. A Mechanism (mechanism.go) names the
// distribution the protocol uses and computes its 95% interval.
//
// The package does no I/O beyond reading its random source.
package dp

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/bits"
)

// Errors a caller may branch on. They are wrapped with detail.
var (
	// ErrParam reports a parameter outside the domain of a sampler or
	// mechanism.
	ErrParam = errors.New("dp: invalid parameter")
	// ErrRange reports a sample that does not fit the result type. For the
	// parameters this package accepts it happens with probability below
	// exp(−2^31).
	ErrRange = errors.New("dp: sample out of range")
)

// A Sampler draws exact samples from a source of uniform random bytes. It
// reads the source in blocks and consumes the bits it needs, so a sample
// costs a few bytes of entropy, not a read per coin. It is not safe for
// concurrent use. Its buffer holds unused random bits; Erase clears it.
type Sampler struct {
	r    io.Reader
	buf  [256]byte
	off  int    // next unread byte of buf
	acc  uint64 // unused bits, most significant first
	nacc uint   // number of unused bits in acc
}

// NewSampler returns a Sampler reading r, or crypto/rand if r is nil. Tests
// pass a seeded deterministic reader (math/rand/v2's ChaCha8) to make
// samples reproducible; production code passes nil.
func NewSampler(r io.Reader) *Sampler {
	if r == nil {
		r = rand.Reader
	}
	s := &Sampler{r: r}
	s.off = len(s.buf)
	return s
}

// String never prints buffered randomness.
func (s *Sampler) String() string { return "dp.Sampler" }

// Format never prints buffered randomness.
func (s *Sampler) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// Erase clears the buffered random bits.
func (s *Sampler) Erase() {
	clear(s.buf[:])
	s.off = len(s.buf)
	s.acc, s.nacc = 0, 0
}

func (s *Sampler) refill() error {
	if s.off == len(s.buf) {
		if _, err := io.ReadFull(s.r, s.buf[:]); err != nil {
			return fmt.Errorf("dp: reading the random source: %w", err)
		}
		s.off = 0
	}
	s.acc = binary.BigEndian.Uint64(s.buf[s.off:])
	clear(s.buf[s.off : s.off+8])
	s.off += 8
	s.nacc = 64
	return nil
}

// bits returns k uniform random bits, 1 ≤ k ≤ 64, as the low bits of the
// result.
func (s *Sampler) bits(k uint) (uint64, error) {
	var out uint64
	for k > 0 {
		if s.nacc == 0 {
			if err := s.refill(); err != nil {
				return 0, err
			}
		}
		take := min(k, s.nacc)
		// Shifts by 64 give 0 for unsigned operands, which is what both
		// lines need when take == 64.
		out = out<<take | s.acc>>(64-take)
		s.acc <<= take
		s.nacc -= take
		k -= take
	}
	return out, nil
}

// Uniform returns a uniform integer in [0, n), n ≥ 1, by rejection: it
// draws bitlen(n−1) bits until they form a value below n (fewer than two
// draws on average).
func (s *Sampler) Uniform(n uint64) (uint64, error) {
	if n == 0 {
		return 0, fmt.Errorf("%w: Uniform(0)", ErrParam)
	}
	if n == 1 {
		return 0, nil
	}
	k := uint(bits.Len64(n - 1))
	for {
		x, err := s.bits(k)
		if err != nil {
			return 0, err
		}
		if x < n {
			return x, nil
		}
	}
}

// Bernoulli returns true with probability num/den, 0 ≤ num ≤ den, den ≥ 1.
func (s *Sampler) Bernoulli(num, den uint64) (bool, error) {
	if den == 0 || num > den {
		return false, fmt.Errorf("%w: Bernoulli(%d/%d)", ErrParam, num, den)
	}
	if num == 0 {
		return false, nil
	}
	if num == den {
		return true, nil
	}
	u, err := s.Uniform(den)
	return u < num, err
}

// BernoulliExp returns true with probability exp(−num/den), num ≥ 0,
// den ≥ 1 (CKS 2020, Algorithm 1).
func (s *Sampler) BernoulliExp(num, den uint64) (bool, error) {
	if den == 0 {
		return false, fmt.Errorf("%w: BernoulliExp(%d/0)", ErrParam, num)
	}
	// exp(−γ) = exp(−1)^floor(γ) · exp(−(γ − floor(γ))): one
	// Bernoulli(exp(−1)) per whole unit, stopping at the first failure.
	for num > den {
		ok, err := s.bernoulliExpUnit(1, 1)
		if err != nil || !ok {
			return false, err
		}
		num -= den
	}
	return s.bernoulliExpUnit(num, den)
}

// bernoulliExpUnit returns true with probability exp(−num/den) for
// 0 ≤ num ≤ den: the number K of successes of Bernoulli(γ/k) for
// k = 1, 2, … up to the first failure satisfies P(K odd) = exp(−γ).
func (s *Sampler) bernoulliExpUnit(num, den uint64) (bool, error) {
	for k := uint64(1); ; k++ {
		hi, d := bits.Mul64(den, k)
		if hi != 0 {
			// den·k no longer fits in 64 bits, after about 2^64/den
			// consecutive successes of probability 1/k each: continue
			// with big integers rather than approximate.
			return s.bernoulliExpUnitBig(new(big.Int).SetUint64(num), new(big.Int).SetUint64(den), new(big.Int).SetUint64(k))
		}
		a, err := s.Bernoulli(num, d)
		if err != nil {
			return false, err
		}
		if !a {
			return k%2 == 1, nil
		}
	}
}

// uniformBig returns a uniform integer in [0, n), n ≥ 1.
func (s *Sampler) uniformBig(n *big.Int) (*big.Int, error) {
	if n.Sign() <= 0 {
		return nil, fmt.Errorf("%w: uniform below %v", ErrParam, n)
	}
	if n.IsUint64() {
		u, err := s.Uniform(n.Uint64())
		return new(big.Int).SetUint64(u), err
	}
	k := n.BitLen()
	x := new(big.Int)
	for {
		x.SetUint64(0)
		for left := k; left > 0; left -= 64 {
			take := uint(min(left, 64))
			v, err := s.bits(take)
			if err != nil {
				return nil, err
			}
			x.Lsh(x, take)
			x.Or(x, new(big.Int).SetUint64(v))
		}
		if x.Cmp(n) < 0 {
			return x, nil
		}
	}
}

// bernoulliBig returns true with probability num/den, 0 ≤ num ≤ den.
func (s *Sampler) bernoulliBig(num, den *big.Int) (bool, error) {
	if den.Sign() <= 0 || num.Sign() < 0 || num.Cmp(den) > 0 {
		return false, fmt.Errorf("%w: Bernoulli(%v/%v)", ErrParam, num, den)
	}
	if num.Sign() == 0 {
		return false, nil
	}
	u, err := s.uniformBig(den)
	if err != nil {
		return false, err
	}
	return u.Cmp(num) < 0, nil
}

// bernoulliExpBig is BernoulliExp for big numerators and denominators.
func (s *Sampler) bernoulliExpBig(num, den *big.Int) (bool, error) {
	if num.IsUint64() && den.IsUint64() {
		return s.BernoulliExp(num.Uint64(), den.Uint64())
	}
	if den.Sign() <= 0 || num.Sign() < 0 {
		return false, fmt.Errorf("%w: BernoulliExp(%v/%v)", ErrParam, num, den)
	}
	whole, frac := new(big.Int).QuoRem(num, den, new(big.Int))
	for i := new(big.Int); i.Cmp(whole) < 0; i.Add(i, big.NewInt(1)) {
		ok, err := s.bernoulliExpUnit(1, 1)
		if err != nil || !ok {
			return false, err
		}
	}
	return s.bernoulliExpUnitBig(frac, den, big.NewInt(1))
}

// bernoulliExpUnitBig continues Algorithm 1 for 0 ≤ num ≤ den from trial k.
func (s *Sampler) bernoulliExpUnitBig(num, den, k *big.Int) (bool, error) {
	k = new(big.Int).Set(k)
	d := new(big.Int)
	for {
		a, err := s.bernoulliBig(num, d.Mul(den, k))
		if err != nil {
			return false, err
		}
		if !a {
			return k.Bit(0) == 1, nil
		}
		k.Add(k, big.NewInt(1))
	}
}

// DiscreteLaplace returns a sample of the discrete Laplace distribution with
// the given rational scale τ > 0, P(Z = z) ∝ exp(−|z|/τ) (CKS 2020,
// Algorithm 2). The numerator and denominator of τ, in lowest terms, must
// each be below 2^63.
func (s *Sampler) DiscreteLaplace(scale *big.Rat) (int64, error) {
	if scale == nil || scale.Sign() <= 0 || !fitsInt63(scale.Num()) || !fitsInt63(scale.Denom()) {
		return 0, fmt.Errorf("%w: discrete Laplace scale %v", ErrParam, scale)
	}
	return s.laplace(scale.Denom().Uint64(), scale.Num().Uint64())
}

func fitsInt63(x *big.Int) bool { return x.Sign() >= 0 && x.BitLen() <= 63 }

// laplace samples the discrete Laplace distribution of scale t/s, s, t ≥ 1
// (CKS 2020, Algorithm 2).
func (s *Sampler) laplace(sn, t uint64) (int64, error) {
	for {
		// X = U + t·V is geometric with P(X = x) ∝ exp(−x/t): U is uniform
		// in [0, t) kept with probability exp(−U/t), V counts successes of
		// Bernoulli(exp(−1)).
		u, err := s.Uniform(t)
		if err != nil {
			return 0, err
		}
		d, err := s.BernoulliExp(u, t)
		if err != nil {
			return 0, err
		}
		if !d {
			continue
		}
		var v uint64
		for {
			a, err := s.bernoulliExpUnit(1, 1)
			if err != nil {
				return 0, err
			}
			if !a {
				break
			}
			v++
		}
		hi, lo := bits.Mul64(t, v)
		x, carry := bits.Add64(lo, u, 0)
		if hi != 0 || carry != 0 {
			return 0, fmt.Errorf("%w: geometric sample above 2^64", ErrRange)
		}
		// Y = floor(X/s) is geometric with P(Y = y) ∝ exp(−y·s/t).
		y := x / sn
		if y > math.MaxInt64 {
			return 0, fmt.Errorf("%w: discrete Laplace sample above 2^63", ErrRange)
		}
		neg, err := s.bits(1)
		if err != nil {
			return 0, err
		}
		// A negative zero is rejected, so 0 is not counted twice.
		if neg == 1 {
			if y == 0 {
				continue
			}
			return -int64(y), nil
		}
		return int64(y), nil
	}
}

// DiscreteGaussian returns a sample of the discrete Gaussian distribution
// with the given rational variance parameter σ² > 0, P(Z = z) ∝
// exp(−z²/(2σ²)) (CKS 2020, Algorithm 3). The numerator and denominator of
// σ², in lowest terms, must each be below 2^63.
func (s *Sampler) DiscreteGaussian(sigma2 *big.Rat) (int64, error) {
	if sigma2 == nil || sigma2.Sign() <= 0 || !fitsInt63(sigma2.Num()) || !fitsInt63(sigma2.Denom()) {
		return 0, fmt.Errorf("%w: discrete Gaussian variance %v", ErrParam, sigma2)
	}
	p, q := sigma2.Num(), sigma2.Denom() // σ² = p/q
	// t = floor(σ) + 1; floor(sqrt(p/q)) = isqrt(floor(p/q)).
	tb := new(big.Int).Quo(p, q)
	tb.Sqrt(tb).Add(tb, big.NewInt(1))
	t := tb.Uint64() // below 2^32
	// γ(y) = (|y| − σ²/t)² / (2σ²) = (|y|·q·t − p)² / (2·p·q·t²).
	den := new(big.Int).Mul(p, q)
	den.Mul(den, tb).Mul(den, tb).Lsh(den, 1)
	qt := new(big.Int).Mul(q, tb)
	num := new(big.Int)
	for {
		y, err := s.laplace(1, t)
		if err != nil {
			return 0, err
		}
		num.SetUint64(absInt64(y))
		num.Mul(num, qt).Sub(num, p)
		num.Mul(num, num)
		c, err := s.bernoulliExpBig(num, den)
		if err != nil {
			return 0, err
		}
		if c {
			return y, nil
		}
	}
}

func absInt64(y int64) uint64 {
	if y < 0 {
		return uint64(-y)
	}
	return uint64(y)
}
