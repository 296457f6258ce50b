package client

import (
	"errors"
	"time"

	"connectrpc.com/connect"

	"github.com/overlap-psi/overlap/psi"
)

// Metadata keys of a refusal: the limit that refused the session and, when
// it lifts with time, when.
const (
	MetaLimit    = "Overlap-Limit"
	MetaResetsAt = "Overlap-Resets-At"
)

// Limits named in MetaLimit; a refused session's audit row has the result
// "refused_" + its limit. Those of the hello are psi's check names.
const (
	LimitMinListSize        = psi.CheckMinListSize
	LimitMaxListSize        = psi.CheckMaxListSize
	LimitBudget             = "budget"
	LimitPrivacyBudget      = "privacy_budget"
	LimitAdvertiserSessions = "advertiser_sessions"
	LimitServerSessions     = "server_sessions"
	LimitKind               = psi.CheckKind
	LimitMode               = psi.CheckMode
	LimitCanonicalization   = psi.CheckCanonicalization
	// LimitAbandoned: the advertiser abandoned too many sessions after
	// admission lately (SPEC.md §10.8.2); Overlap-Resets-At says when the
	// next one is accepted.
	LimitAbandoned = "abandoned_sessions"
	// LimitEpoch: an epoch session named no usable epoch (unknown,
	// expired, another kind or another key, SPEC.md §10.12.2); make a new
	// setup.
	LimitEpoch = "epoch"
	// LimitEpochSetups: the advertiser made its allowed setups in the last
	// 24 hours (SPEC.md §10.12.5).
	LimitEpochSetups = "epoch_setups"
	// LimitSuite: the server serves none of the ciphersuites the client
	// offered, or the epoch is in one the session did not offer (SPEC.md
	// §12.1).
	LimitSuite = "suite"
)

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
