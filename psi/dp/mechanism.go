package dp

import (
	"fmt"
	"math/big"
)

// CodeDiscreteLaplace is the wire code of the discrete Laplace mechanism
// (SPEC.md §10.6, §10.7.1). Other codes are reserved.
const CodeDiscreteLaplace uint8 = 1

// MaxEpsilon is the largest ε a Mechanism accepts. Larger values give no
// meaningful privacy and would only stretch the arithmetic.
const MaxEpsilon = 64

// MaxSensitivity is the largest sensitivity a Mechanism accepts.
const MaxSensitivity = 1 << 16

// precision is the number of bits at which the interval is decided
// (SPEC.md §10.6 asks for at least 256).
const precision = 320

// A Mechanism is the noise of a private-mode release (SPEC.md §10.6): the
// discrete Laplace mechanism with privacy parameter ε = EpsNum/EpsDen (a
// fraction in lowest terms) and sensitivity Δ, whose noise has scale
// τ = Δ/ε, P(Z = z) ∝ exp(−|z|/τ). It is ε-differentially private with
// δ = 0 for a count of sensitivity Δ.
//
// The zero Mechanism is not valid; IsZero reports it, and configurations
// use it to mean Default(). The discrete Gaussian sampler of this package
// is not offered as a Mechanism: its privacy is stated in concentrated
// differential privacy, which the per-advertiser ε budget of SPEC.md §10.8
// does not account.
type Mechanism struct {
	epsNum, epsDen uint32
	sens           uint32
}

// Default returns the default mechanism of SPEC.md §10.6: discrete Laplace
// with ε = 1/2 and Δ = 1 (scale 2).
func Default() Mechanism { return Mechanism{epsNum: 1, epsDen: 2, sens: 1} }

// NewDiscreteLaplace returns the discrete Laplace mechanism for privacy
// parameter epsilon and the given sensitivity. epsilon must be in
// (0, MaxEpsilon] with numerator and denominator below 2^32, and
// 1 ≤ sensitivity ≤ MaxSensitivity.
func NewDiscreteLaplace(epsilon *big.Rat, sensitivity uint32) (Mechanism, error) {
	if epsilon == nil || !epsilon.Num().IsUint64() || !epsilon.Denom().IsUint64() ||
		epsilon.Num().Uint64() > 1<<32-1 || epsilon.Denom().Uint64() > 1<<32-1 {
		return Mechanism{}, fmt.Errorf("%w: ε = %v needs a numerator and denominator below 2^32", ErrParam, epsilon)
	}
	return FromWire(CodeDiscreteLaplace, uint32(epsilon.Num().Uint64()), uint32(epsilon.Denom().Uint64()), sensitivity)
}

// FromWire returns the mechanism a PrivateParams message describes
// (SPEC.md §10.7.1), or an error if the code is unknown or the parameters
// are invalid: ε must be a fraction in lowest terms in (0, MaxEpsilon], and
// 1 ≤ sensitivity ≤ MaxSensitivity.
func FromWire(code uint8, epsNum, epsDen, sensitivity uint32) (Mechanism, error) {
	switch {
	case code != CodeDiscreteLaplace:
		return Mechanism{}, fmt.Errorf("%w: unknown mechanism code %d", ErrParam, code)
	case epsNum == 0 || epsDen == 0:
		return Mechanism{}, fmt.Errorf("%w: ε = %d/%d", ErrParam, epsNum, epsDen)
	case gcd(epsNum, epsDen) != 1:
		return Mechanism{}, fmt.Errorf("%w: ε = %d/%d is not in lowest terms", ErrParam, epsNum, epsDen)
	case uint64(epsNum) > MaxEpsilon*uint64(epsDen):
		return Mechanism{}, fmt.Errorf("%w: ε = %d/%d is above %d", ErrParam, epsNum, epsDen, MaxEpsilon)
	case sensitivity == 0 || sensitivity > MaxSensitivity:
		return Mechanism{}, fmt.Errorf("%w: sensitivity %d is outside [1, %d]", ErrParam, sensitivity, MaxSensitivity)
	}
	return Mechanism{epsNum: epsNum, epsDen: epsDen, sens: sensitivity}, nil
}

func gcd(a, b uint32) uint32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// IsZero reports whether m is the zero Mechanism.
func (m Mechanism) IsZero() bool { return m == Mechanism{} }

// Code returns the mechanism's wire code.
func (m Mechanism) Code() uint8 { return CodeDiscreteLaplace }

// Name returns the mechanism's name.
func (m Mechanism) Name() string { return "discrete Laplace" }

// Epsilon returns ε.
func (m Mechanism) Epsilon() *big.Rat { return big.NewRat(int64(m.epsNum), int64(m.epsDen)) }

// EpsilonFraction returns the numerator and denominator of ε, in lowest
// terms, as the wire carries them.
func (m Mechanism) EpsilonFraction() (num, den uint32) { return m.epsNum, m.epsDen }

// Delta returns δ, which is 0 for the discrete Laplace mechanism.
func (m Mechanism) Delta() *big.Rat { return new(big.Rat) }

// Sensitivity returns Δ, the most one person can change the count by
// (SPEC.md §10.9).
func (m Mechanism) Sensitivity() uint32 { return m.sens }

// Scale returns τ = Δ/ε.
func (m Mechanism) Scale() *big.Rat {
	return big.NewRat(int64(m.sens)*int64(m.epsDen), int64(m.epsNum))
}

// String describes the mechanism and its parameters.
func (m Mechanism) String() string {
	if m.IsZero() {
		return "dp.Mechanism{}"
	}
	return fmt.Sprintf("%s (ε = %v, δ = 0, Δ = %d, scale %v)", m.Name(), m.Epsilon().RatString(), m.sens, m.Scale().RatString())
}

// Sample draws the noise Z from s (CKS 2020, Algorithm 2 with s = EpsNum
// and t = Δ·EpsDen).
func (m Mechanism) Sample(s *Sampler) (int64, error) {
	if m.IsZero() {
		return 0, fmt.Errorf("%w: the zero Mechanism", ErrParam)
	}
	return s.laplace(uint64(m.epsNum), uint64(m.sens)*uint64(m.epsDen))
}

// rate returns 1/τ = ε/Δ.
func (m Mechanism) rate() *big.Rat {
	return big.NewRat(int64(m.epsNum), int64(m.sens)*int64(m.epsDen))
}

// PMF returns P(Z = z) = (1 − q)/(1 + q) · q^|z|, q = exp(−1/τ), to prec
// bits.
func (m Mechanism) PMF(z int64, prec uint) *big.Float {
	q := expNeg(m.rate(), prec+32)
	qz := expNeg(new(big.Rat).Mul(m.rate(), new(big.Rat).SetInt64(int64(absInt64(z)))), prec+32)
	one := new(big.Float).SetPrec(prec + 32).SetInt64(1)
	num := new(big.Float).SetPrec(prec+32).Sub(one, q)
	den := new(big.Float).SetPrec(prec+32).Add(one, q)
	num.Mul(num, qz)
	return num.Quo(num, den).SetPrec(prec)
}

// HalfWidth95 returns the half-width w of the mechanism's 95% interval
// (SPEC.md §10.6): the least w ≥ 0 with P(|Z| ≤ w) ≥ 95%.
func (m Mechanism) HalfWidth95() int64 {
	w, err := m.HalfWidth(big.NewRat(19, 20))
	if err != nil {
		panic(err) // 19/20 is a valid level
	}
	return w
}

// HalfWidth returns the least w ≥ 0 with P(|Z| ≤ w) ≥ level, for a level in
// (0, 1). From the PMF, P(|Z| ≤ w) = 1 − 2q^(w+1)/(1 + q), so the condition
// is 2q^(w+1) ≤ (1 − level)(1 + q). It is decided at 320 bits; it is never
// an equality, because q = exp(−ε/Δ) is transcendental (Lindemann).
func (m Mechanism) HalfWidth(level *big.Rat) (int64, error) {
	if m.IsZero() {
		return 0, fmt.Errorf("%w: the zero Mechanism", ErrParam)
	}
	if level == nil || level.Sign() <= 0 || level.Cmp(big.NewRat(1, 1)) >= 0 {
		return 0, fmt.Errorf("%w: level %v is outside (0, 1)", ErrParam, level)
	}
	rate := m.rate()
	q := expNeg(rate, precision)
	rhs := new(big.Float).SetPrec(precision).SetRat(new(big.Rat).Sub(big.NewRat(1, 1), level))
	rhs.Mul(rhs, new(big.Float).SetPrec(precision).Add(q, big.NewFloat(1)))
	covers := func(w int64) bool {
		lhs := expNeg(new(big.Rat).Mul(rate, big.NewRat(w+1, 1)), precision)
		lhs.Mul(lhs, big.NewFloat(2))
		return lhs.Cmp(rhs) <= 0
	}
	// covers is monotone in w: search upward by doubling, then bisect.
	hi := int64(1)
	for !covers(hi) {
		hi *= 2
	}
	lo := int64(-1) // covers(lo) is false or lo is below the domain
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if mid >= 0 && covers(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}

// expNeg returns exp(−x) for a rational x ≥ 0 to prec bits: exp(x) is the
// product of exp(1)^floor(x) and exp(frac(x)), each summed as a Taylor
// series of positive terms with 64 guard bits, and then inverted.
func expNeg(x *big.Rat, prec uint) *big.Float {
	wp := prec + 64
	whole := new(big.Int).Quo(x.Num(), x.Denom())
	frac := new(big.Rat).Sub(x, new(big.Rat).SetInt(whole))
	e := expSeries(frac, wp)
	if whole.Sign() > 0 {
		base := expSeries(big.NewRat(1, 1), wp)
		pow := new(big.Float).SetPrec(wp).SetInt64(1)
		for i := whole.BitLen() - 1; i >= 0; i-- {
			pow.Mul(pow, pow)
			if whole.Bit(i) == 1 {
				pow.Mul(pow, base)
			}
		}
		e.Mul(e, pow)
	}
	one := new(big.Float).SetPrec(wp).SetInt64(1)
	return one.Quo(one, e).SetPrec(prec)
}

// expSeries returns exp(f) for 0 ≤ f ≤ 1 at wp bits.
func expSeries(f *big.Rat, wp uint) *big.Float {
	x := new(big.Float).SetPrec(wp).SetRat(f)
	sum := new(big.Float).SetPrec(wp).SetInt64(1)
	term := new(big.Float).SetPrec(wp).SetInt64(1)
	for i := int64(1); ; i++ {
		term.Mul(term, x)
		term.Quo(term, new(big.Float).SetPrec(wp).SetInt64(i))
		if term.Sign() == 0 || term.MantExp(nil) < -int(wp) {
			return sum
		}
		sum.Add(sum, term)
	}
}
