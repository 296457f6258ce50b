package main

import (
	"errors"
	"fmt"

	"github.com/overlap-psi/overlap/psi/dp"
)

// parseEpsilon reads the ε of flag (dp.ParseEpsilon: exact, in millionths)
// and says how to fix a value it refuses.
func parseEpsilon(flag, s string) (int64, error) {
	e, err := dp.ParseEpsilon(s)
	switch {
	case err == nil:
		return int64(e), nil
	case errors.Is(err, dp.ErrEpsilonNegative):
		return 0, withHint(fmt.Errorf("--%s %s is negative", flag, s), "ε is at least 0 (0 takes the server's default)")
	case errors.Is(err, dp.ErrEpsilonPrecision):
		return 0, withHint(fmt.Errorf("--%s %s has more than 6 decimals", flag, s), "ε is kept exactly in millionths: round it to at most 6 decimals, such as 0.333333")
	case errors.Is(err, dp.ErrEpsilonRange):
		return 0, withHint(fmt.Errorf("--%s %s is too large", flag, s), "a privacy budget is a few units of ε, such as 2")
	}
	return 0, withHint(fmt.Errorf("--%s %q is not a number", flag, s), "pass ε as a decimal, such as --%s 2 or --%s 0.5", flag, flag)
}
