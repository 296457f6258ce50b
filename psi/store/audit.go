package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/overlap-psi/overlap/psi"
)

// SessionRecord is one row of the session audit log. It holds what the
// platform may know of a session: who, which kind and mode, the list size,
// the snapshot its set came from, the budget spent and how it ended; never
// an identifier, an element, a key or a count the mode keeps from the
// platform.
type SessionRecord struct {
	ID              string // random, 32 hex digits
	Advertiser      int64
	AdvertiserName  string // filled by Sessions; ignored by RecordSession
	Kind            psi.Kind
	Mode            string // wire.Mode.String(): "exact", "private", "epoch-setup" or "epoch-session"
	ListSize        int64  // n, as the client announced it; 0 if refused before
	ServerSize      int64  // N, the padded set size sent; 0 if none was
	SnapshotVersion int64  // 0: no snapshot taken
	SnapshotDigest  [32]byte
	BudgetSpent     int64  // identifiers
	EpsilonSpent    int64  // privacy budget, micro-ε; 0 for exact mode
	Result          string // "ok", or what ended it: "refused_min_list_size", "peer_error", "aborted", …
	Detail          string // a short reason, without identifiers or elements
	StartedAt       time.Time
	EndedAt         time.Time
	// EpochID is the epoch of an epoch setup or session (SPEC.md
	// §10.12.5), 32 lower-case hex digits; "" for none.
	EpochID string
	// EpochExpiresAt is that epoch's expires_at (µs, UTC); zero for none.
	EpochExpiresAt time.Time
	// Suite is the session's ciphersuite (SPEC.md §12.1); zero when the
	// session ended before one was chosen (a refusal, a crashed session
	// reconciled from its journal row) or the row is from before suites
	// (all of which were suite 1).
	Suite psi.Suite
	// Kinds is a record session's kind set (SPEC.md §13.3), 0 for an
	// identifier-level session. Kind is then the set's first kind, and
	// SnapshotVersion and SnapshotDigest name that kind's snapshot.
	Kinds psi.KindSet
	// Slots is a record session's s, its elements per record; 0 for an
	// identifier-level session. ListSize counts records and BudgetSpent
	// the n·s elements (SPEC.md §13.3).
	Slots int
	// Snapshots is the snapshot of each kind of a record session's set,
	// in kind order; nil for an identifier-level session.
	Snapshots []KindSnapshot
}

// KindSnapshot is the snapshot one kind of a record session's set was
// built from (SPEC.md §13.3).
type KindSnapshot struct {
	Kind    psi.Kind
	Version int64
	Digest  [32]byte
}

// MaxDetailLen bounds SessionRecord.Detail, in bytes.
const MaxDetailLen = 512

func validateSession(r *SessionRecord) error {
	if err := validName("session id", r.ID); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := validName("result", r.Result); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if r.Kind != 0 && !r.Kind.Valid() {
		return fmt.Errorf("store: invalid kind %d", uint8(r.Kind))
	}
	if r.Mode == "" {
		return errors.New("store: session without a mode")
	}
	if r.Suite != 0 && !r.Suite.Known() {
		return fmt.Errorf("store: invalid ciphersuite %d", uint8(r.Suite))
	}
	if err := validateRecordsRef(r.Kinds, r.Slots); err != nil {
		return err
	}
	for _, ks := range r.Snapshots {
		if !r.Kinds.Has(ks.Kind) || ks.Version <= 0 {
			return fmt.Errorf("store: a snapshot of kind %d, version %d, for a session of kinds %v", uint8(ks.Kind), ks.Version, r.Kinds)
		}
	}
	if r.BudgetSpent < 0 || r.EpsilonSpent < 0 {
		return errors.New("store: session with a negative budget spend")
	}
	if len(r.Detail) > MaxDetailLen {
		r.Detail = r.Detail[:MaxDetailLen]
	}
	r.StartedAt, r.EndedAt = microTime(r.StartedAt), microTime(r.EndedAt)
	if r.EndedAt.Before(r.StartedAt) {
		return errors.New("store: session ends before it starts")
	}
	return validateEpochRef(r.EpochID, &r.EpochExpiresAt)
}

// validateEpochRef checks the epoch of an audit or journal row: id ""
// (and no expiry) or 32 lower-case hex digits, and normalizes the expiry.
func validateEpochRef(id string, expires *time.Time) error {
	if id == "" {
		if !expires.IsZero() {
			return errors.New("store: session with an epoch expiry but no epoch id")
		}
		return nil
	}
	if !validEpochHex(id) {
		return errors.New("store: session epoch id is not 32 lower-case hex digits")
	}
	if !expires.IsZero() {
		if expires.Before(minAt) || !expires.Before(maxAt) {
			return errors.New("store: session epoch expiry outside 1970..9999")
		}
		*expires = microTime(*expires)
	}
	return nil
}

func validEpochHex(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := range len(id) {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// epochRefArgs are the statement arguments of an epoch id and expiry:
// NULL for none.
func (c *core) epochRefArgs(id string, expires time.Time) (any, any) {
	var i, e any
	if id != "" {
		i = id
	}
	if !expires.IsZero() {
		e = c.ts(expires)
	}
	return i, e
}

func (r *SessionRecord) snapshotArgs() (version, digest any) {
	if r.SnapshotVersion == 0 {
		return nil, nil
	}
	return r.SnapshotVersion, r.SnapshotDigest[:]
}

const sessionColumns = `s.id, s.advertiser_id, a.name, s.kind, s.mode, s.list_size, s.server_size, s.snapshot_version, s.snapshot_digest,
	s.budget_spent, s.epsilon_spent, s.result, s.detail, s.started_at, s.ended_at, s.epoch_id, s.epoch_expires_at, s.suite, s.kinds, s.slots`

// sqlInsertSession is shared by both engines.
const sqlInsertSession = `INSERT INTO sessions (id, advertiser_id, kind, mode, list_size, server_size, snapshot_version, snapshot_digest,
	budget_spent, epsilon_spent, result, detail, started_at, ended_at, duration_us, epoch_id, epoch_expires_at, suite, kinds, slots)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`

// sqlInsertSessionSnapshot appends one kind's snapshot of a record session.
const sqlInsertSessionSnapshot = `INSERT INTO session_snapshots (session_id, kind, snapshot_version, snapshot_digest) VALUES ($1, $2, $3, $4)`

// sqlSessionSnapshots reads a record session's snapshots.
const sqlSessionSnapshots = `SELECT kind, snapshot_version, snapshot_digest FROM session_snapshots WHERE session_id = $1 ORDER BY kind`

// validateRecordsRef checks a row's kind set and slots: both 0, or a
// valid set and 1 ≤ s ≤ psi.MaxSlots.
func validateRecordsRef(kinds psi.KindSet, slots int) error {
	if kinds == 0 && slots == 0 || kinds.Valid() && slots >= 1 && slots <= psi.MaxSlots {
		return nil
	}
	return fmt.Errorf("store: session of kind set %#x and %d slots per record", uint8(kinds), slots)
}

// insertSession appends the audit row r and its per-kind snapshots in tx.
func (c *core) insertSession(ctx context.Context, tx q, r *SessionRecord) error {
	if _, err := tx.exec(ctx, sqlInsertSession, c.sessionArgs(r)...); err != nil {
		return err
	}
	for _, ks := range r.Snapshots {
		if _, err := tx.exec(ctx, sqlInsertSessionSnapshot, r.ID, int64(ks.Kind), ks.Version, ks.Digest[:]); err != nil {
			return err
		}
	}
	return nil
}

func sessionsQuery(limit int) string {
	q := `SELECT ` + sessionColumns + ` FROM sessions s JOIN advertisers a ON a.id = s.advertiser_id
		WHERE $1 = 0 OR s.advertiser_id = $1 ORDER BY s.started_at DESC, s.id`
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	return q
}

// RecordSession implements [Registry].
func (c *core) RecordSession(ctx context.Context, r SessionRecord) error {
	if err := validateSession(&r); err != nil {
		return err
	}
	if err := c.inTx(ctx, "record session", func(tx q) error { return c.insertSession(ctx, tx, &r) }); err != nil {
		return fmt.Errorf("store: record session: %w", err)
	}
	return nil
}

// suiteArg is a suite column's value: NULL for none.
func suiteArg(s psi.Suite) any {
	if s == 0 {
		return nil
	}
	return int64(s)
}

// sessionArgs are the arguments of sqlInsertSession for the validated r.
func (c *core) sessionArgs(r *SessionRecord) []any {
	v, d := r.snapshotArgs()
	ei, ee := c.epochRefArgs(r.EpochID, r.EpochExpiresAt)
	suite := suiteArg(r.Suite)
	return []any{r.ID, r.Advertiser, int64(r.Kind), r.Mode, r.ListSize, r.ServerSize, v, d, r.BudgetSpent, r.EpsilonSpent, r.Result, r.Detail,
		c.ts(r.StartedAt), c.ts(r.EndedAt), r.EndedAt.Sub(r.StartedAt).Microseconds(), ei, ee, suite, int64(r.Kinds), int64(r.Slots)}
}

// Sessions implements [Registry].
func (c *core) Sessions(ctx context.Context, advertiser int64, limit int) ([]SessionRecord, error) {
	rows, err := queryAll(ctx, c.reader, "sessions", scanSession, sessionsQuery(limit), advertiser)
	if err != nil {
		return nil, err
	}
	for i := range rows {
		if rows[i].Kinds == 0 {
			continue
		}
		if rows[i].Snapshots, err = queryAll(ctx, c.reader, "session snapshots", scanKindSnapshot, sqlSessionSnapshots, rows[i].ID); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

func scanKindSnapshot(row scanner) (KindSnapshot, error) {
	var (
		ks     KindSnapshot
		kind   int64
		digest []byte
	)
	if err := row.Scan(&kind, &ks.Version, &digest); err != nil {
		return KindSnapshot{}, err
	}
	ks.Kind = psi.Kind(kind)
	copy(ks.Digest[:], digest)
	return ks, nil
}

func scanSession(row scanner) (SessionRecord, error) {
	var (
		r              SessionRecord
		kind           int64
		version        sql.NullInt64
		digest         []byte
		started, ended stamp
		epochID        sql.NullString
		epochExpires   stamp
		suite          sql.NullInt64
		kinds, slots   int64
	)
	if err := row.Scan(&r.ID, &r.Advertiser, &r.AdvertiserName, &kind, &r.Mode, &r.ListSize, &r.ServerSize, &version, &digest,
		&r.BudgetSpent, &r.EpsilonSpent, &r.Result, &r.Detail, &started, &ended, &epochID, &epochExpires, &suite, &kinds, &slots); err != nil {
		return SessionRecord{}, err
	}
	r.Kinds, r.Slots = psi.KindSet(kinds), int(slots)
	r.EpochID, r.EpochExpiresAt = epochID.String, epochExpires.t
	r.Suite = psi.Suite(suite.Int64)
	r.Kind, r.SnapshotVersion = psi.Kind(kind), version.Int64
	copy(r.SnapshotDigest[:], digest)
	r.StartedAt, r.EndedAt = started.t, ended.t
	return r, nil
}

// sqlResultCount counts the audit rows of advertiser $1 with result $2
// that ended after $3, and the latest end among them.
const sqlResultCount = `SELECT count(*), COALESCE(MAX(ended_at), $3) FROM sessions WHERE advertiser_id = $1 AND result = $2 AND ended_at > $3`

// SessionsEnded implements [Registry].
func (c *core) SessionsEnded(ctx context.Context, advertiser int64, result string, since time.Time) (int64, time.Time, error) {
	var n int64
	var last stamp
	if err := c.reader.queryRow(ctx, sqlResultCount, advertiser, result, c.ts(microTime(since))).Scan(&n, &last); err != nil {
		return 0, time.Time{}, fmt.Errorf("store: sessions ended: %w", err)
	}
	return n, last.t, nil
}
