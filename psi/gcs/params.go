package gcs

import (
	"fmt"
	"math"
	"math/bits"
)

// MaxN is the largest number of values a set may hold.
const MaxN = 1 << 32

// Params are the public parameters of one encoded set (SPEC.md §6).
type Params struct {
	N uint64 // number of values, 1 ≤ N ≤ MaxN
	M uint64 // range per value, M ≥ 1: values lie in [0, F) with F = N·M
	K uint8  // Golomb-Rice parameter, K ≤ 63 and K ≤ bitlen(M)
}

// F returns the value range N·M (less than 2^96 for valid parameters).
func (p Params) F() Uint128 {
	hi, lo := bits.Mul64(p.N, p.M)
	return Uint128{hi, lo}
}

// Validate reports whether p are valid parameters. The error wraps ErrParams.
func (p Params) Validate() error {
	switch {
	case p.N < 1 || p.N > MaxN:
		return fmt.Errorf("%w: N = %d is outside [1, 2^32]", ErrParams, p.N)
	case p.M < 1:
		return fmt.Errorf("%w: M = 0", ErrParams)
	case p.K > 63:
		return fmt.Errorf("%w: K = %d is larger than 63", ErrParams, p.K)
	case int(p.K) > bits.Len64(p.M):
		return fmt.Errorf("%w: K = %d is larger than bitlen(M) = %d", ErrParams, p.K, bits.Len64(p.M))
	}
	return nil
}

// ChooseParams returns parameters for a set of n values queried by a client
// with clientQueries values in total, such that the expected number of false
// positives over all those queries is at most fpTotal.
//
// A query value independent of the set lies in it with probability at most
// N/F = 1/M, so M is the least integer M ≥ 1 with clientQueries/M ≤ fpTotal
// (evaluated in float64; this is ⌈clientQueries/fpTotal⌉ up to rounding).
// K is the K in [0, min(63, bitlen(M))] that minimizes ExpectedBits, the
// smallest one on a tie.
//
// It returns an error wrapping ErrParams if n is not in [1, MaxN], fpTotal is
// not in (0, 1), or M would not fit in 64 bits.
func ChooseParams(n, clientQueries uint64, fpTotal float64) (Params, error) {
	if n < 1 || n > MaxN {
		return Params{}, fmt.Errorf("%w: set size %d is outside [1, 2^32]", ErrParams, n)
	}
	if !(fpTotal > 0 && fpTotal < 1) { // also rejects NaN
		return Params{}, fmt.Errorf("%w: false-positive target %g is outside (0, 1)", ErrParams, fpTotal)
	}
	m := uint64(1)
	if clientQueries > 0 {
		q := float64(clientQueries)
		x := math.Ceil(q / fpTotal)
		if !(x < 1<<64) {
			return Params{}, fmt.Errorf("%w: %d queries at false-positive target %g need M ≥ 2^64", ErrParams, clientQueries, fpTotal)
		}
		m = max(uint64(x), 1)
		// Undo the rounding of q/fpTotal where integers are exact in float64.
		if m < 1<<53 {
			for m > 1 && q/float64(m-1) <= fpTotal {
				m--
			}
			for q/float64(m) > fpTotal {
				m++
			}
		}
	}
	return Params{N: n, M: m, K: chooseK(m)}, nil
}

// chooseK returns the K in [0, min(63, bitlen(m))] minimizing riceBits.
func chooseK(m uint64) uint8 {
	best, bestBits := 0, math.Inf(1)
	for k := 0; k <= min(63, bits.Len64(m)); k++ {
		if b := riceBits(m, k); b < bestBits {
			best, bestBits = k, b
		}
	}
	return uint8(best)
}

// ExpectedBits returns the expected number of bits per value of the Rice code
// with parameter K under the gap model of OptimalBits:
//
//	K + 1 + 1/(exp(2^K/M) − 1)
//
// (K remainder bits, the terminating zero, and E[q] = Σ_{t≥1} e^{−t·2^K/M}
// one-bits). It ignores the chunk padding, less than 8 bits per chunk.
// It returns +Inf for M = 0.
func ExpectedBits(p Params) float64 {
	if p.M == 0 {
		return math.Inf(1)
	}
	return riceBits(p.M, int(p.K))
}

func riceBits(m uint64, k int) float64 {
	return float64(k) + 1 + 1/math.Expm1(math.Ldexp(1, k)/float64(m))
}

// OptimalBits returns the expected bits per value of the best Golomb code
// (any integer parameter b ≥ 1, not only powers of two) for the gaps between
// N values uniform in [0, N·M). Gaps are modeled as geometric with
// P(d ≥ g) = θ^g, θ = e^{−1/M} (success probability 1 − e^{−1/M}, which is
// 1/M to within 1/(2M²)); the Golomb code with the best b is the optimal
// prefix code for such gaps.
//
// With parameter b, c = ⌈log2 b⌉ and u = 2^c − b, a gap costs ⌊d/b⌋ + 1 bits
// of unary code and c − 1 bits of truncated binary remainder if d mod b < u,
// c bits otherwise, so the expected length is
//
//	1 + θ^b/(1 − θ^b) + c − (1 − θ^u)/(1 − θ^b)
//
// which for b = 2^K is ExpectedBits. It is minimized at
// b = ⌈−ln(1 + θ)/ln θ⌉ (Gallager and Van Voorhis, 1975); OptimalBits
// evaluates b−1, b and b+1 to absorb rounding. It returns +Inf for M = 0.
func OptimalBits(M uint64) float64 {
	if M == 0 {
		return math.Inf(1)
	}
	m := float64(M)
	// −ln(1+θ)/ln θ = M·ln(1 + e^{−1/M}) = M·(ln 2 + log1p(expm1(−1/M)/2)).
	bf := math.Ceil(m * (math.Ln2 + math.Log1p(math.Expm1(-1/m)/2)))
	b := max(uint64(bf), 1)
	best := golombBits(m, b)
	if b > 1 {
		best = min(best, golombBits(m, b-1))
	}
	return min(best, golombBits(m, b+1))
}

// golombBits is the expected code length of the Golomb code with parameter
// b ≥ 1 under the gap model θ = e^{−1/m}.
func golombBits(m float64, b uint64) float64 {
	c := bits.Len64(b - 1) // ⌈log2 b⌉
	u := uint64(1)<<c - b
	bf := float64(b)
	pu := 0.0 // P(d mod b < u) = (1 − θ^u)/(1 − θ^b)
	if u > 0 {
		pu = math.Expm1(-float64(u)/m) / math.Expm1(-bf/m)
	}
	return 1 + 1/math.Expm1(bf/m) + float64(c) - pu
}
