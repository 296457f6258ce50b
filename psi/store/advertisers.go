package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Registry is the part of the store the match service uses: advertisers,
// their budgets and the session audit log (migrations 2 and 3).
//
//	advertisers     id, name, key_id, api_key_hash (SHA-256 of the API key), cert_name,
//	                created_at, revoked_at, min_list_size, max_list_size, budget,
//	                modes (a [ModeSet]), privacy_budget, privacy_cost (micro-ε); 0: server default
//	budget_spend    append-only: advertiser, session, at, identifiers, epsilon_micros
//	budget_refunds  append-only: session, advertiser, at; the session's spend no longer counts
//	sessions        append-only audit: id, advertiser, kind, mode, list_size, server_size,
//	                snapshot_version, snapshot_digest, budget_spent, epsilon_spent, result,
//	                detail, started_at, ended_at, duration_us, epoch_id, epoch_expires_at
//	session_journal the open sessions (migration 6, [Journal]): mutable, one row from the
//	                budget reservation to the audit row; phase and lease
//
// Migration 7 adds mode epoch to modes and the epoch columns of sessions
// and session_journal; the epochs themselves are in epochs.go.
//
// Privacy budgets (SPEC.md §10.8) are integers in micro-ε (ε·10^6; a spend
// is rounded up, [dp.EpsilonOf]). Both budgets are checked over the same
// rolling window in one transaction, and one budget_spend row holds both
// amounts. A refund (a session of either mode that ended before its first
// element derived from the server's set, SPEC.md §8.6 and §10.8 point 2)
// appends to budget_refunds rather than deleting the
// spend, so the history stays.
//
// Triggers refuse UPDATE and DELETE on budget_spend, budget_refunds and
// sessions (and TRUNCATE on PostgreSQL), as on consent_events; the journal
// is the one mutable table of this part, and a session's row there leaves
// in the transaction that appends its audit row. No table of
// this part holds an identifier, a digest of one, or an API key: only the
// key's hash.
type Registry interface {
	// AddAdvertiser records a new advertiser; ID and CreatedAt are set by
	// the store. A name, key id or certificate name already in use is
	// [ErrAdvertiserExists].
	AddAdvertiser(ctx context.Context, a Advertiser) (Advertiser, error)
	// AdvertiserByName, AdvertiserByKeyID and AdvertiserByCertName find one
	// advertiser, revoked or not, or return [ErrUnknownAdvertiser].
	AdvertiserByName(ctx context.Context, name string) (Advertiser, error)
	AdvertiserByKeyID(ctx context.Context, keyID string) (Advertiser, error)
	AdvertiserByCertName(ctx context.Context, certName string) (Advertiser, error)
	// Advertisers lists every advertiser by name.
	Advertisers(ctx context.Context) ([]Advertiser, error)
	// RevokeAdvertiser marks the advertiser revoked at at; its key and
	// certificate stop working. Revoking twice keeps the first time.
	RevokeAdvertiser(ctx context.Context, name string, at time.Time) (Advertiser, error)
	// SetAdvertiserPolicy replaces the advertiser's policy overrides, its
	// modes included: p.Modes must name at least one mode.
	SetAdvertiserPolicy(ctx context.Context, name string, p Policy) (Advertiser, error)
	// RotateAdvertiserKey gives the advertiser a new API key (its id and
	// hash): the old key stops working at once; the advertiser keeps its
	// id, so its budgets, policy and audit rows. A key id in use is
	// [ErrAdvertiserExists]. Revocation stays as it was.
	RotateAdvertiserKey(ctx context.Context, name, keyID string, keyHash [32]byte) (Advertiser, error)

	// ReserveBudget atomically checks both of the advertiser's budgets over
	// the window r.Window ending at r.At, refunded sessions excluded: the
	// identifiers spent plus r.Identifiers must stay within r.Limit, and the
	// micro-ε spent plus r.Epsilon within r.EpsilonLimit (when r.Epsilon >
	// 0). If both fit it records one spend holding both amounts. Otherwise
	// it records nothing and returns a *[BudgetError] naming the budget that
	// does not fit. Concurrent reservations never overspend.
	ReserveBudget(ctx context.Context, r BudgetRequest) (BudgetStatus, error)
	// RefundBudget refunds the session's spend of the advertiser's budgets
	// (both of them): from then on it no longer counts. It appends to
	// budget_refunds; refunding a session again is a no-op, and a session
	// without a spend of that advertiser is [ErrNoBudgetSpend].
	RefundBudget(ctx context.Context, advertiser int64, session string, at time.Time) error
	// BudgetUsed returns the identifiers the advertiser spent in the window
	// ending at at, refunded sessions excluded.
	BudgetUsed(ctx context.Context, advertiser int64, window time.Duration, at time.Time) (int64, error)
	// EpsilonUsed returns the privacy budget, in micro-ε, the advertiser
	// spent in the window ending at at, refunded sessions excluded.
	EpsilonUsed(ctx context.Context, advertiser int64, window time.Duration, at time.Time) (int64, error)

	// RecordSession appends one row to the session audit log.
	RecordSession(ctx context.Context, s SessionRecord) error
	// Sessions lists audit rows, most recent first: of one advertiser, or
	// of all when advertiser is 0; at most limit (<= 0: all).
	Sessions(ctx context.Context, advertiser int64, limit int) ([]SessionRecord, error)
	// SessionsEnded counts the advertiser's audit rows with result that
	// ended after since, and returns the latest end among them (since if
	// none).
	SessionsEnded(ctx context.Context, advertiser int64, result string, since time.Time) (int64, time.Time, error)

	// Journal: the open sessions and crash recovery (journal.go).
	Journal
}

// Policy holds an advertiser's overrides of the server's session policy;
// zero fields take the server's defaults, except Modes.
type Policy struct {
	MinListSize int64 // smallest list, in distinct identifiers
	MaxListSize int64 // largest list
	Budget      int64 // identifiers per budget window
	// Modes are the protocol modes served to the advertiser (ModesEpoch:
	// epoch setups and sessions, SPEC.md §10.12). In
	// AddAdvertiser, 0 means ModesPrivate (a new advertiser gets private
	// mode only); in SetAdvertiserPolicy, 0 is an error. Advertisers of a
	// database older than migration 3 have ModesExact.
	Modes         ModeSet
	PrivacyBudget int64 // micro-ε per budget window (SPEC.md §10.8)
	PrivacyCost   int64 // micro-ε per private-mode session
}

// ModeSet is a set of protocol modes (SPEC.md §2): bit 1<<m for mode m
// (wire.ModeExact = 1, wire.ModePrivate = 2, wire.ModeEpochSetup = 3,
// wire.ModeEpochSession = 4).
type ModeSet uint8

// The mode sets an advertiser is registered for.
const (
	ModesExact   ModeSet = 1 << 1
	ModesPrivate ModeSet = 1 << 2
	// ModesEpoch is mode epoch (SPEC.md §10.12): its setups (mode 3) and
	// its sessions (mode 4), always both.
	ModesEpoch ModeSet = 1<<3 | 1<<4
)

// modesKnown is every mode this version knows.
const modesKnown = ModesExact | ModesPrivate | ModesEpoch

// Has reports whether mode (a wire.Mode code) is in m.
func (m ModeSet) Has(mode uint8) bool { return mode < 8 && m&(ModeSet(1)<<mode) != 0 }

// Valid reports whether m names at least one mode and only known ones,
// the two modes of epoch both or neither.
func (m ModeSet) Valid() bool {
	return m != 0 && m&^modesKnown == 0 && (m&ModesEpoch == 0 || m&ModesEpoch == ModesEpoch)
}

// String joins "exact", "private" and "epoch" with commas, in that order
// ("exact,private", "private,epoch"); "none" for the empty set, and
// "modeN" for an unknown mode N or a mode of epoch without the other.
func (m ModeSet) String() string {
	if m == 0 {
		return "none"
	}
	var names []string
	epoch := m&ModesEpoch == ModesEpoch
	for mode := range uint8(8) {
		if !m.Has(mode) {
			continue
		}
		if epoch && ModeSet(1)<<mode&ModesEpoch != 0 {
			if mode == 3 { // one name for both bits
				names = append(names, "epoch")
			}
			continue
		}
		switch ModeSet(1) << mode {
		case ModesExact:
			names = append(names, "exact")
		case ModesPrivate:
			names = append(names, "private")
		default:
			names = append(names, fmt.Sprintf("mode%d", mode))
		}
	}
	return strings.Join(names, ",")
}

// ParseModeSet parses a comma-separated list of distinct modes among
// "exact", "private" and "epoch", in any order ("private,epoch"), and
// "both" (exact and private), the forms a flag or a config file gives.
func ParseModeSet(s string) (ModeSet, error) {
	if s == "both" {
		return ModesExact | ModesPrivate, nil
	}
	var m ModeSet
	for _, name := range strings.Split(s, ",") {
		var one ModeSet
		switch name {
		case "exact":
			one = ModesExact
		case "private":
			one = ModesPrivate
		case "epoch":
			one = ModesEpoch
		default:
			return 0, fmt.Errorf("store: unknown mode set %q: want a comma-separated list of exact, private and epoch, or both", truncate(s))
		}
		if m&one != 0 {
			return 0, fmt.Errorf("store: mode set %q names %s twice", truncate(s), one)
		}
		m |= one
	}
	return m, nil
}

// Advertiser is a party allowed to run match sessions.
type Advertiser struct {
	ID        int64
	Name      string
	KeyID     string   // public id of its API key; "" when it has none
	KeyHash   [32]byte // SHA-256 of its API key; never printed
	CertName  string   // client certificate CN or SAN that authenticates it; "" none
	CreatedAt time.Time
	RevokedAt time.Time // zero while active
	Policy    Policy
}

// Revoked reports whether the advertiser was revoked.
func (a Advertiser) Revoked() bool { return !a.RevokedAt.IsZero() }

// String describes the advertiser without its key hash.
func (a Advertiser) String() string {
	return fmt.Sprintf("store.Advertiser{ID:%d Name:%q KeyID:%q CertName:%q Revoked:%t}", a.ID, a.Name, a.KeyID, a.CertName, a.Revoked())
}

// GoString is String.
func (a Advertiser) GoString() string { return a.String() }

// Errors of the registry.
var (
	ErrUnknownAdvertiser = errors.New("store: unknown advertiser")
	ErrAdvertiserExists  = errors.New("store: advertiser name, key id or certificate name already in use")
)

// MaxAdvertiserNameLen bounds advertiser and certificate names, in bytes.
const MaxAdvertiserNameLen = 128

// validName accepts printable names without control characters or
// surrounding spaces.
func validName(field, s string) error {
	if err := validText(field, s, MaxAdvertiserNameLen); err != nil {
		return err
	}
	if strings.TrimSpace(s) != s {
		return fmt.Errorf("%s has surrounding spaces", field)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%s contains a non-printable character", field)
		}
	}
	return nil
}

func validateAdvertiser(a *Advertiser) error {
	if err := validName("advertiser name", a.Name); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if a.KeyID != "" {
		if err := validName("key id", a.KeyID); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if a.KeyHash == ([32]byte{}) {
			return errors.New("store: an advertiser with a key id needs its key hash")
		}
	}
	if a.CertName != "" {
		if err := validName("certificate name", a.CertName); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	if a.KeyID == "" && a.CertName == "" {
		return errors.New("store: an advertiser needs an API key or a certificate name")
	}
	if a.Policy.Modes == 0 {
		a.Policy.Modes = ModesPrivate
	}
	return validatePolicy(a.Policy)
}

func validatePolicy(p Policy) error {
	if p.MinListSize < 0 || p.MaxListSize < 0 || p.Budget < 0 || p.PrivacyBudget < 0 || p.PrivacyCost < 0 {
		return errors.New("store: negative policy value")
	}
	if p.MinListSize > 0 && p.MaxListSize > 0 && p.MinListSize > p.MaxListSize {
		return errors.New("store: minimum list size above the maximum")
	}
	if p.PrivacyBudget > 0 && p.PrivacyCost > p.PrivacyBudget {
		return errors.New("store: privacy cost per session above the privacy budget per window")
	}
	switch {
	case p.Modes == 0:
		return errors.New("store: an advertiser must be served at least one mode")
	case !p.Modes.Valid():
		return fmt.Errorf("store: unknown modes %s", p.Modes)
	}
	return nil
}

const advertiserColumns = `id, name, key_id, api_key_hash, cert_name, created_at, revoked_at, min_list_size, max_list_size, budget,
	modes, privacy_budget, privacy_cost`

// sqlInsertAdvertiser and sqlSetPolicy are shared by both engines.
const (
	sqlInsertAdvertiser = `INSERT INTO advertisers (name, key_id, api_key_hash, cert_name, created_at, min_list_size, max_list_size, budget,
		modes, privacy_budget, privacy_cost) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`
	sqlSetPolicy = `UPDATE advertisers SET min_list_size = $1, max_list_size = $2, budget = $3,
		modes = $4, privacy_budget = $5, privacy_cost = $6 WHERE name = $7`
)

// policyArgs are the policy columns in the order of both statements.
func policyArgs(p Policy) []any {
	return []any{p.MinListSize, p.MaxListSize, p.Budget, int64(p.Modes), p.PrivacyBudget, p.PrivacyCost}
}

// nullString maps "" to NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func scanAdvertiser(row scanner) (Advertiser, error) {
	var (
		a                Advertiser
		keyID, certName  sql.NullString
		hash             []byte
		created, revoked stamp
		modes            int64
	)
	err := row.Scan(&a.ID, &a.Name, &keyID, &hash, &certName, &created, &revoked, &a.Policy.MinListSize, &a.Policy.MaxListSize, &a.Policy.Budget,
		&modes, &a.Policy.PrivacyBudget, &a.Policy.PrivacyCost)
	if err != nil {
		return Advertiser{}, err
	}
	a.Policy.Modes = ModeSet(modes)
	a.KeyID, a.CertName = keyID.String, certName.String
	copy(a.KeyHash[:], hash)
	a.CreatedAt, a.RevokedAt = created.t, revoked.t
	return a, nil
}

func advertiserWhere(ctx context.Context, db q, where string, arg any) (Advertiser, error) {
	a, err := scanAdvertiser(db.queryRow(ctx, `SELECT `+advertiserColumns+` FROM advertisers WHERE `+where, arg))
	if isNoRows(err) {
		return Advertiser{}, ErrUnknownAdvertiser
	}
	if err != nil {
		return Advertiser{}, fmt.Errorf("store: advertiser: %w", err)
	}
	return a, nil
}

// AddAdvertiser implements [Registry].
func (c *core) AddAdvertiser(ctx context.Context, a Advertiser) (Advertiser, error) {
	if err := validateAdvertiser(&a); err != nil {
		return Advertiser{}, err
	}
	a.CreatedAt, a.RevokedAt = microTime(time.Now()), time.Time{}
	var hash any
	if a.KeyID != "" {
		hash = a.KeyHash[:]
	}
	args := append([]any{a.Name, nullString(a.KeyID), hash, nullString(a.CertName), c.ts(a.CreatedAt)}, policyArgs(a.Policy)...)
	err := c.writer.queryRow(ctx, sqlInsertAdvertiser, args...).Scan(&a.ID)
	if err != nil {
		if c.isUnique(err) {
			return Advertiser{}, ErrAdvertiserExists
		}
		return Advertiser{}, fmt.Errorf("store: add advertiser: %w", err)
	}
	return a, nil
}

// AdvertiserByName implements [Registry].
func (c *core) AdvertiserByName(ctx context.Context, name string) (Advertiser, error) {
	return advertiserWhere(ctx, c.reader, "name = $1", name)
}

// AdvertiserByKeyID implements [Registry].
func (c *core) AdvertiserByKeyID(ctx context.Context, keyID string) (Advertiser, error) {
	return advertiserWhere(ctx, c.reader, "key_id = $1", keyID)
}

// AdvertiserByCertName implements [Registry].
func (c *core) AdvertiserByCertName(ctx context.Context, certName string) (Advertiser, error) {
	return advertiserWhere(ctx, c.reader, "cert_name = $1", certName)
}

// Advertisers implements [Registry].
func (c *core) Advertisers(ctx context.Context) ([]Advertiser, error) {
	return queryAll(ctx, c.reader, "advertisers", scanAdvertiser, `SELECT `+advertiserColumns+` FROM advertisers ORDER BY name`)
}

// RevokeAdvertiser implements [Registry].
func (c *core) RevokeAdvertiser(ctx context.Context, name string, at time.Time) (Advertiser, error) {
	if _, err := c.writer.exec(ctx, `UPDATE advertisers SET revoked_at = COALESCE(revoked_at, $1) WHERE name = $2`,
		c.ts(microTime(at)), name); err != nil {
		return Advertiser{}, fmt.Errorf("store: revoke advertiser: %w", err)
	}
	return advertiserWhere(ctx, c.writer, "name = $1", name)
}

// SetAdvertiserPolicy implements [Registry].
func (c *core) SetAdvertiserPolicy(ctx context.Context, name string, p Policy) (Advertiser, error) {
	if err := validatePolicy(p); err != nil {
		return Advertiser{}, err
	}
	if _, err := c.writer.exec(ctx, sqlSetPolicy, append(policyArgs(p), name)...); err != nil {
		return Advertiser{}, fmt.Errorf("store: set advertiser policy: %w", err)
	}
	return advertiserWhere(ctx, c.writer, "name = $1", name)
}
