package service

import (
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

// Policy is the session policy of an advertiser: the server's defaults,
// overridden per advertiser in the store ([store.Policy]).
type Policy struct {
	MinListSize  int64         // smallest list, in distinct identifiers
	MaxListSize  int64         // largest list
	Budget       int64         // identifiers per advertiser per window
	BudgetWindow time.Duration // the rolling budget window
}

// DefaultPolicy is the policy of a server that sets none.
func DefaultPolicy() Policy {
	return Policy{MinListSize: 100, MaxListSize: 10_000_000, Budget: 50_000_000, BudgetWindow: 30 * 24 * time.Hour}
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
	}
	return nil
}

// with applies an advertiser's overrides.
func (p Policy) with(o store.Policy) Policy {
	if o.MinListSize > 0 {
		p.MinListSize = o.MinListSize
	}
	if o.MaxListSize > 0 {
		p.MaxListSize = min(o.MaxListSize, wire.MaxClientSize)
	}
	if o.Budget > 0 {
		p.Budget = o.Budget
	}
	return p
}

// Metadata keys of a refusal: the limit that refused the session and, when
// it lifts with time, when.
const (
	MetaLimit    = "Overlap-Limit"
	MetaResetsAt = "Overlap-Resets-At"
)

// Limits named in MetaLimit, and result codes of the audit log.
const (
	LimitMinListSize        = "min_list_size"
	LimitMaxListSize        = "max_list_size"
	LimitBudget             = "budget"
	LimitAdvertiserSessions = "advertiser_sessions"
	LimitServerSessions     = "server_sessions"
	LimitKind               = "kind"
	LimitMode               = "mode"
	LimitCanonicalization   = "canonicalization"
)

// refusal builds the error of a refused session.
func refusal(code connect.Code, limit string, resets time.Time, format string, args ...any) *connect.Error {
	e := connect.NewError(code, fmt.Errorf(format, args...))
	e.Meta().Set(MetaLimit, limit)
	if !resets.IsZero() {
		e.Meta().Set(MetaResetsAt, resets.UTC().Format(time.RFC3339))
	}
	return e
}

// Refusal describes a session the server refused by policy.
type Refusal struct {
	Limit    string    // one of the Limit constants
	ResetsAt time.Time // when it lifts; zero when time does not lift it
}

// RefusalOf reports whether err is a policy refusal from the server, and
// which limit refused it.
func RefusalOf(err error) (Refusal, bool) {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return Refusal{}, false
	}
	limit := ce.Meta().Get(MetaLimit)
	if limit == "" {
		return Refusal{}, false
	}
	r := Refusal{Limit: limit}
	if s := ce.Meta().Get(MetaResetsAt); s != "" {
		r.ResetsAt, _ = time.Parse(time.RFC3339, s)
	}
	return r, true
}
