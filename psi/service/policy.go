package service

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"time"

	"connectrpc.com/connect"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/dp"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

// Policy is the session policy of an advertiser: the server's defaults,
// overridden per advertiser in the store ([store.Policy]).
//
// Which modes an advertiser is served is the advertiser's own setting in
// the store ([store.Policy.Modes]; new advertisers get private mode only),
// not a server default.
type Policy struct {
	MinListSize  int64         // smallest list, in distinct identifiers
	MaxListSize  int64         // largest list
	Budget       int64         // identifiers per advertiser per window
	BudgetWindow time.Duration // the rolling window of both budgets

	// Private mode (SPEC.md §10).
	PrivacyBudget int64  // ε per advertiser per window, in micro-units (10^-6)
	PrivacyCost   int64  // ε of one private session, the mechanism's ε, in micro-units
	Ringers       int    // least number of ringers R (SPEC.md §10.3)
	Threshold     uint32 // release threshold T (SPEC.md §10.6)
	Sensitivity   uint32 // Δ: digests one subject may contribute to a private-mode set (SPEC.md §10.9)

	// Epochs (SPEC.md §10.12).
	EpochLifetime time.Duration // how long an epoch serves sessions; withdrawals count until it ends
	SetupsPerDay  int           // setups per advertiser in any 24 hours
	// EpochDelta bounds δ_E of a setup (SPEC.md §10.12.4), which sets its
	// ringers; 0 means psi.EpochDelta, 10^-6. A larger bound (fewer
	// ringers) is for tests.
	EpochDelta float64
}

// MaxEpochLifetime is the longest epoch a server may set (SPEC.md
// §10.12.6).
const MaxEpochLifetime = 7 * 24 * time.Hour

// DefaultPolicy is the policy of a server that sets none.
func DefaultPolicy() Policy {
	return Policy{MinListSize: 100, MaxListSize: 10_000_000, Budget: 50_000_000, BudgetWindow: 30 * 24 * time.Hour,
		PrivacyBudget: 2 * int64(dp.OneEpsilon), PrivacyCost: int64(dp.OneEpsilon) / 2, Ringers: psi.DefaultRingers, Threshold: psi.DefaultThreshold, Sensitivity: 1,
		EpochLifetime: 24 * time.Hour, SetupsPerDay: 2}
}

// withDefaults fills the private-mode fields a policy leaves zero, so that
// a Policy written before private mode existed keeps working.
func (p Policy) withDefaults() Policy {
	d := DefaultPolicy()
	if p.PrivacyBudget == 0 {
		p.PrivacyBudget = d.PrivacyBudget
	}
	if p.PrivacyCost == 0 {
		p.PrivacyCost = d.PrivacyCost
	}
	if p.Ringers == 0 {
		p.Ringers = d.Ringers
	}
	if p.Threshold == 0 {
		p.Threshold = d.Threshold
	}
	if p.Sensitivity == 0 {
		p.Sensitivity = d.Sensitivity
	}
	if p.EpochLifetime == 0 {
		p.EpochLifetime = d.EpochLifetime
	}
	if p.SetupsPerDay == 0 {
		p.SetupsPerDay = d.SetupsPerDay
	}
	return p
}

// Mechanism is the noise of this policy's private sessions: discrete
// Laplace with ε = PrivacyCost·10^-6 and Δ = Sensitivity.
func (p Policy) Mechanism() (dp.Mechanism, error) {
	m, err := dp.NewDiscreteLaplace(big.NewRat(p.PrivacyCost, int64(dp.OneEpsilon)), p.Sensitivity)
	if err != nil {
		return dp.Mechanism{}, fmt.Errorf("service: private-mode mechanism: %w", err)
	}
	return m, nil
}

func (p Policy) validate() error {
	switch {
	case p.MinListSize < 1:
		return errors.New("service: the minimum list size must be at least 1")
	case p.MaxListSize < p.MinListSize:
		return errors.New("service: the maximum list size is below the minimum")
	case p.MaxListSize > wire.MaxClientSize:
		return fmt.Errorf("service: the maximum list size exceeds the protocol's %d", wire.MaxClientSize)
	case p.Budget < 1 || p.BudgetWindow <= 0:
		return errors.New("service: the budget and its window must be positive")
	case p.PrivacyBudget < 1 || p.PrivacyCost < 1:
		return errors.New("service: the privacy budget and the cost of a private session must be positive")
	case p.PrivacyCost > p.PrivacyBudget:
		return fmt.Errorf("service: a private session costs ε %s, more than the whole privacy budget of ε %s",
			dp.Epsilon(p.PrivacyCost).String(), dp.Epsilon(p.PrivacyBudget).String())
	case p.Ringers < 1 || p.Ringers > 1<<24:
		return fmt.Errorf("service: %d ringers is outside [1, 2^24]", p.Ringers)
	case p.Threshold < 1:
		return errors.New("service: the release threshold must be at least 1")
	case p.Sensitivity < 1 || p.Sensitivity > 1<<16:
		return fmt.Errorf("service: sensitivity %d is outside [1, 65536]", p.Sensitivity)
	case p.EpochLifetime < time.Minute || p.EpochLifetime > MaxEpochLifetime:
		return fmt.Errorf("service: an epoch lifetime of %v is outside [1m, %v]", p.EpochLifetime, MaxEpochLifetime)
	case p.SetupsPerDay < 1:
		return errors.New("service: at least one setup per day must be allowed")
	case p.EpochDelta < 0 || p.EpochDelta >= 1:
		return fmt.Errorf("service: an epoch δ bound of %g is outside (0, 1)", p.EpochDelta)
	}
	if _, err := p.Mechanism(); err != nil {
		return err
	}
	return nil
}

// For is the policy in force for an advertiser with overrides o: p's
// values where o leaves 0. The server resolves every session's policy with
// it, and the CLI shows what it resolves.
func (p Policy) For(o store.Policy) Policy {
	if o.MinListSize > 0 {
		p.MinListSize = o.MinListSize
	}
	if o.MaxListSize > 0 {
		p.MaxListSize = min(o.MaxListSize, wire.MaxClientSize)
	}
	if o.Budget > 0 {
		p.Budget = o.Budget
	}
	if o.PrivacyBudget > 0 {
		p.PrivacyBudget = o.PrivacyBudget
	}
	if o.PrivacyCost > 0 {
		p.PrivacyCost = o.PrivacyCost
	}
	return p
}

// helloLimits is what the policy accepts in h's mode and kind: the
// server's canonicalization without optional rules, and the advertiser's
// list sizes.
func (p Policy) helloLimits(h *wire.ClientHello) psi.HelloLimits {
	if h.Mode == wire.ModeEpochSetup { // a setup carries no list: n = 1 (SPEC.md §10.12.1)
		return psi.HelloLimits{Mode: h.Mode, Kind: h.Kind, CanonVersion: ident.Version, MinClientSize: 1, MaxClientSize: 1}
	}
	return psi.HelloLimits{Mode: h.Mode, Kind: h.Kind, CanonVersion: ident.Version,
		MinClientSize: uint32(min(p.MinListSize, math.MaxUint32)), MaxClientSize: uint32(min(p.MaxListSize, math.MaxUint32))}
}

// refusal builds the error of a refused session.
func refusal(code connect.Code, limit string, resets time.Time, format string, args ...any) *connect.Error {
	e := connect.NewError(code, fmt.Errorf(format, args...))
	e.Meta().Set(client.MetaLimit, limit)
	if !resets.IsZero() {
		e.Meta().Set(client.MetaResetsAt, resets.UTC().Format(time.RFC3339))
	}
	return e
}
