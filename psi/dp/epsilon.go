package dp

import (
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// Epsilon is a privacy parameter ε held exactly as an integer number of
// millionths (micro-ε): the unit of privacy budgets, costs and spends
// (SPEC.md §10.8, point 3). OneEpsilon is ε = 1.
type Epsilon int64

// OneEpsilon is ε = 1.
const OneEpsilon Epsilon = 1_000_000

// Errors of [ParseEpsilon], for a caller that gives a hint per case.
var (
	ErrEpsilonSyntax    = errors.New("dp: ε is not a number")
	ErrEpsilonNegative  = errors.New("dp: ε is negative")
	ErrEpsilonPrecision = errors.New("dp: ε has more than 6 decimals")
	ErrEpsilonRange     = errors.New("dp: ε is too large")
)

var (
	decimalRE  = regexp.MustCompile(`^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3})?$`)
	fractionRE = regexp.MustCompile(`^([0-9]+)/([0-9]+)$`)
)

// ParseEpsilon reads ε as people and configuration files write it: a
// non-negative decimal (2, 0.5, .25, and with an exponent as YAML prints
// small floats, 1e-06) or a fraction of decimal integers (1/2). It keeps ε
// exactly: a value that is not a whole number of millionths is refused, not
// rounded, since rounding a privacy parameter would change what was
// promised.
func ParseEpsilon(s string) (Epsilon, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-") {
		return 0, ErrEpsilonNegative
	}
	r, ok := ratOf(t)
	if !ok {
		return 0, ErrEpsilonSyntax
	}
	r.Mul(r, big.NewRat(int64(OneEpsilon), 1))
	if !r.IsInt() {
		return 0, ErrEpsilonPrecision
	}
	if !r.Num().IsInt64() {
		return 0, ErrEpsilonRange
	}
	return Epsilon(r.Num().Int64()), nil
}

// ratOf parses a non-negative decimal or a fraction of decimal integers,
// in base 10 only.
func ratOf(s string) (*big.Rat, bool) {
	if m := fractionRE.FindStringSubmatch(s); m != nil {
		num, ok1 := new(big.Int).SetString(m[1], 10)
		den, ok2 := new(big.Int).SetString(m[2], 10)
		if !ok1 || !ok2 || den.Sign() == 0 {
			return nil, false
		}
		return new(big.Rat).SetFrac(num, den), true
	}
	if !decimalRE.MatchString(s) {
		return nil, false
	}
	return new(big.Rat).SetString(s)
}

// EpsilonOf converts ε = num/den to micro-ε, rounded up: a spend is rounded
// up to the unit (SPEC.md §10.8, point 3), so ε = 1/3 spends 333 334.
func EpsilonOf(num, den uint32) (Epsilon, error) {
	if den == 0 {
		return 0, errors.New("dp: ε with a zero denominator")
	}
	n := int64(num) * int64(OneEpsilon) // at most 2^32·10^6 < 2^63
	d := int64(den)
	return Epsilon((n + d - 1) / d), nil
}

// Rat returns ε as an exact fraction.
func (e Epsilon) Rat() *big.Rat { return big.NewRat(int64(e), int64(OneEpsilon)) }

// String writes ε as a decimal without trailing zeros: 1.5, 2, 0.000001.
// ParseEpsilon reads it back exactly.
func (e Epsilon) String() string {
	sign := ""
	u := uint64(e)
	if e < 0 {
		sign, u = "-", -u
	}
	whole, frac := u/uint64(OneEpsilon), u%uint64(OneEpsilon)
	if frac == 0 {
		return sign + strconv.FormatUint(whole, 10)
	}
	return sign + strconv.FormatUint(whole, 10) + "." + strings.TrimRight(fmt.Sprintf("%06d", frac), "0")
}
