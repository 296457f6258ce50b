package main

import (
	"fmt"
	"math/big"
	"regexp"
	"strings"

	"github.com/overlap-psi/overlap/psi/store"
)

// Privacy budgets and costs (SPEC.md §10.8) are stored as integers in
// micro-ε (10^-6) and typed by people as decimals: 2, 0.5, 0.125.

const microPerEpsilon = store.MicrosPerEpsilon

// parseEpsilon converts a decimal ε (or a fraction such as 1/2) to micro-ε
// exactly. It refuses negative values, non-numbers, and values that are not
// a whole number of millionths (more than 6 decimals): rounding a privacy
// parameter silently would change what the platform promised.
func parseEpsilon(flag, s string) (int64, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-") {
		return 0, withHint(fmt.Errorf("--%s %s is negative", flag, s), "ε is at least 0 (0 takes the server's default)")
	}
	r, ok := ratOf(t)
	if !ok {
		return 0, withHint(fmt.Errorf("--%s %q is not a number", flag, s), "pass ε as a decimal, such as --%s 2 or --%s 0.5", flag, flag)
	}
	r.Mul(r, big.NewRat(microPerEpsilon, 1))
	if !r.IsInt() {
		return 0, withHint(fmt.Errorf("--%s %s has more than 6 decimals", flag, s), "ε is kept exactly in millionths: round it to at most 6 decimals, such as 0.333333")
	}
	if !r.Num().IsInt64() {
		return 0, withHint(fmt.Errorf("--%s %s is too large", flag, s), "a privacy budget is a few units of ε, such as 2")
	}
	return r.Num().Int64(), nil
}

var (
	decimalRE  = regexp.MustCompile(`^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3})?$`)
	fractionRE = regexp.MustCompile(`^([0-9]+)/([0-9]+)$`)
)

// ratOf parses a non-negative decimal (with an optional exponent, as YAML
// may print it: 1e-06) or a fraction of decimal integers, in base 10 only.
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
