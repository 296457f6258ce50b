package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"

	"github.com/overlap-psi/overlap/psi"
)

// The session journal (migration 6, SPEC.md §8.6) holds one mutable row
// per open session, from the budget reservation, in the same transaction,
// to the session's audit row, in the same transaction as the row's
// removal:
//
//	session_journal  id, advertiser, kind, mode, list_size, identifiers and
//	                 epsilon_micros reserved, phase, server_size, snapshot,
//	                 owner, started_at, renewed_at, lease_until, and (migration
//	                 7) epoch_id, epoch_expires_at
//
// The server that runs the session owns the row and renews its lease while
// the session lives. A row whose lease has ended belongs to a server that
// stopped without writing the audit row (a crash, a kill -9, a lost
// machine): [Journal.Reconcile] turns it into an audit row with result
// [ResultCrashed], refunding the reservation if the session had not reached
// [PhaseElementsSent], keeping it otherwise.

// Phases of a journaled session.
const (
	// PhaseAdmitted: the budget is reserved and nothing derived from the
	// server's set has been sent. A session that ends here is refunded.
	PhaseAdmitted = "admitted"
	// PhaseElementsSent: the server is sending, or has sent, elements
	// derived from its set (exact mode: EvaluatedChunks; private mode:
	// ServerElementChunks). The spend is final. The server records the
	// phase before it sends the first such element.
	PhaseElementsSent = "elements_sent"
)

// ResultCrashed is the audit result of a session that Reconcile closed:
// its server stopped while it was open.
const ResultCrashed = "crashed"

// ErrSessionLost reports a journal update for a session that has no open
// journal row of this owner: it was closed already, or reconciled as
// crashed because its lease ended. The session must stop.
var ErrSessionLost = errors.New("store: the session is no longer open in the journal (its lease ended and it was reconciled)")

// JournalEntry is one open session of the journal.
type JournalEntry struct {
	ID         string
	Advertiser int64
	Kind       psi.Kind
	Mode       string // as SessionRecord.Mode
	ListSize   int64
	// Identifiers and Epsilon (micro-ε) are what the session reserved.
	Identifiers, Epsilon int64
	Phase                string // PhaseAdmitted or PhaseElementsSent
	ServerSize           int64
	SnapshotVersion      int64 // 0: none yet
	SnapshotDigest       [32]byte
	Owner                string // the server instance that runs it
	StartedAt            time.Time
	RenewedAt            time.Time // its last sign of life
	LeaseUntil           time.Time
	// EpochID and EpochExpiresAt name the epoch of an epoch session, as
	// in SessionRecord, for the audit row Reconcile writes; set by
	// BeginSession only.
	EpochID        string
	EpochExpiresAt time.Time
	// Kinds and Slots are a record session's kind set and slots per
	// record (SPEC.md §13.3), 0 and 0 otherwise, as in SessionRecord. A
	// crashed record session's audit row names its first kind's snapshot
	// only: the journal keeps one.
	Kinds psi.KindSet
	Slots int
	// Suite is the session's ciphersuite (SPEC.md §12.1), zero if none
	// was chosen yet, for the audit row Reconcile writes.
	Suite psi.Suite
}

// Journal is the session journal. Both engines implement it; see the
// package doc and SPEC.md §8.6.
type Journal interface {
	// BeginSession reserves the budget of r (as ReserveBudget) and writes
	// e, in phase PhaseAdmitted, in one transaction: a session that holds
	// a reservation always has a journal row. e.ID must be r.Session, and
	// e's reserved amounts are taken from r.
	BeginSession(ctx context.Context, r BudgetRequest, e JournalEntry) (BudgetStatus, error)
	// AdvanceSession records e's phase, server size and snapshot, and
	// renews its lease to e.LeaseUntil. It is [ErrSessionLost] if the
	// session has no open row owned by e.Owner.
	AdvanceSession(ctx context.Context, e JournalEntry) error
	// RenewLeases extends to until the lease of every open session owner
	// runs, and returns how many there are.
	RenewLeases(ctx context.Context, owner string, at, until time.Time) (int64, error)
	// EndSession closes the journaled session rec.ID: in one transaction
	// it removes the journal row, refunds the session's reservation when
	// refund is true, and appends rec to the audit log. It is
	// [ErrSessionLost], and writes nothing, if the row is gone (the session
	// was reconciled: its audit row exists already).
	EndSession(ctx context.Context, rec SessionRecord, refund bool) error
	// OpenSessions lists the journal, oldest first.
	OpenSessions(ctx context.Context) ([]JournalEntry, error)
	// Reconcile closes every open session whose lease ended before at:
	// for each, in one transaction, it refunds the reservation if the
	// session was in PhaseAdmitted (and keeps it in PhaseElementsSent),
	// appends an audit row with result ResultCrashed, and removes the
	// journal row. Concurrent reconcilers (several servers on one
	// database) close each session once. It returns the audit rows it
	// wrote.
	Reconcile(ctx context.Context, at time.Time) ([]SessionRecord, error)
}

// IsBusy reports whether err is the store being busy rather than broken:
// SQLite's SQLITE_BUSY or SQLITE_LOCKED (another writer held the lock past
// the busy timeout), or a PostgreSQL serialization failure, deadlock or
// lock timeout. The operation may succeed if retried.
func IsBusy(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return true
		}
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", "55P03": // serialization_failure, deadlock_detected, lock_not_available
			return true
		}
	}
	return false
}

func validateEntry(r BudgetRequest, e *JournalEntry) error {
	switch {
	case e.ID == "" || e.ID != r.Session:
		return errors.New("store: journal entry and budget request name different sessions")
	case e.Advertiser != r.Advertiser:
		return errors.New("store: journal entry and budget request name different advertisers")
	case !e.Kind.Valid():
		return fmt.Errorf("store: journal entry of invalid kind %d", uint8(e.Kind))
	case e.Mode == "" || e.Owner == "":
		return errors.New("store: journal entry without a mode or an owner")
	case e.Suite != 0 && !e.Suite.Known():
		return fmt.Errorf("store: journal entry of invalid ciphersuite %d", uint8(e.Suite))
	}
	if err := validateRecordsRef(e.Kinds, e.Slots); err != nil {
		return err
	}
	e.Identifiers, e.Epsilon, e.Phase = r.Identifiers, r.Epsilon, PhaseAdmitted
	e.StartedAt, e.RenewedAt, e.LeaseUntil = microTime(e.StartedAt), microTime(r.At), microTime(e.LeaseUntil)
	return validateEpochRef(e.EpochID, &e.EpochExpiresAt)
}

func validPhase(p string) error {
	if p != PhaseAdmitted && p != PhaseElementsSent {
		return fmt.Errorf("store: unknown session phase %q", p)
	}
	return nil
}

// crashedRecord is the audit row Reconcile writes for e; refunded says
// whether its reservation was refunded.
func crashedRecord(e JournalEntry) (rec SessionRecord, refund bool) {
	refund = e.Phase == PhaseAdmitted
	rec = SessionRecord{
		ID: e.ID, Advertiser: e.Advertiser, Kind: e.Kind, Mode: e.Mode, ListSize: e.ListSize, ServerSize: e.ServerSize,
		SnapshotVersion: e.SnapshotVersion, SnapshotDigest: e.SnapshotDigest,
		BudgetSpent: e.Identifiers, EpsilonSpent: e.Epsilon, Result: ResultCrashed,
		StartedAt: e.StartedAt, EndedAt: e.RenewedAt, EpochID: e.EpochID, EpochExpiresAt: e.EpochExpiresAt,
		Kinds: e.Kinds, Slots: e.Slots, Suite: e.Suite,
	}
	if refund {
		rec.BudgetSpent, rec.EpsilonSpent = 0, 0
		rec.Detail = "the server stopped before it sent any element derived from its set (phase admitted): the reservation was refunded"
	} else {
		rec.Detail = "the server stopped after it began sending elements derived from its set (phase elements_sent): the spend stands"
	}
	if rec.EndedAt.Before(rec.StartedAt) {
		rec.EndedAt = rec.StartedAt
	}
	return rec, refund
}

const (
	sqlInsertJournal = `INSERT INTO session_journal (id, advertiser_id, kind, mode, list_size, identifiers, epsilon_micros, phase,
		owner, started_at, renewed_at, lease_until, epoch_id, epoch_expires_at, kinds, slots, suite)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`
	sqlAdvanceJournal = `UPDATE session_journal SET phase = $3, server_size = $4, snapshot_version = $5, snapshot_digest = $6,
		renewed_at = $7, lease_until = $8 WHERE id = $1 AND owner = $2`
	sqlRenewJournal  = `UPDATE session_journal SET renewed_at = $2, lease_until = $3 WHERE owner = $1`
	sqlDeleteJournal = `DELETE FROM session_journal WHERE id = $1`
	journalColumns   = `id, advertiser_id, kind, mode, list_size, identifiers, epsilon_micros, phase, server_size,
		snapshot_version, snapshot_digest, owner, started_at, renewed_at, lease_until, epoch_id, epoch_expires_at, kinds, slots, suite`
	sqlOpenSessions = `SELECT ` + journalColumns + ` FROM session_journal ORDER BY started_at, id`
	// sqlSnapshotKnown: the journal's snapshot version is a recorded
	// snapshot (a service reading its sets from another source records
	// versions the store does not have; the audit row then names none).
	sqlSnapshotKnown = `SELECT count(*) FROM snapshots WHERE version = $1`
	sqlExpired       = `SELECT id FROM session_journal WHERE lease_until < $1 ORDER BY started_at, id`
	// sqlRefundIfSpent refunds session $1 of advertiser $2 at $3 if it has
	// a spend and was not refunded yet.
	sqlRefundIfSpent = `INSERT INTO budget_refunds (session_id, advertiser_id, at)
		SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM budget_spend WHERE session_id = $1 AND advertiser_id = $2)
		ON CONFLICT (session_id) DO NOTHING`
)

func snapshotArgsOf(version int64, digest [32]byte) (any, any) {
	if version == 0 {
		return nil, nil
	}
	return version, digest[:]
}

// BeginSession implements [Journal].
func (c *core) BeginSession(ctx context.Context, r BudgetRequest, e JournalEntry) (BudgetStatus, error) {
	if err := validateBudget(&r); err != nil {
		return BudgetStatus{}, err
	}
	if err := validateEntry(r, &e); err != nil {
		return BudgetStatus{}, err
	}
	var st BudgetStatus
	var refusal error
	err := c.inTx(ctx, "begin session", func(tx q) error {
		var err error
		if st, err = c.reserve(ctx, tx, r); refused(err) {
			refusal = err
			return nil // commit the expired sessions it closed
		} else if err != nil {
			return err
		}
		ei, ee := c.epochRefArgs(e.EpochID, e.EpochExpiresAt)
		if _, err := tx.exec(ctx, sqlInsertJournal, e.ID, e.Advertiser, int64(e.Kind), e.Mode, e.ListSize, e.Identifiers, e.Epsilon,
			e.Phase, e.Owner, c.ts(e.StartedAt), c.ts(e.RenewedAt), c.ts(e.LeaseUntil), ei, ee, int64(e.Kinds), int64(e.Slots), suiteArg(e.Suite)); err != nil {
			return fmt.Errorf("store: begin session: %w", err)
		}
		return nil
	})
	if err != nil {
		return BudgetStatus{}, err
	}
	return st, refusal
}

// AdvanceSession implements [Journal].
func (c *core) AdvanceSession(ctx context.Context, e JournalEntry) error {
	if err := validPhase(e.Phase); err != nil {
		return err
	}
	v, d := snapshotArgsOf(e.SnapshotVersion, e.SnapshotDigest)
	res, err := c.writer.exec(ctx, sqlAdvanceJournal, e.ID, e.Owner, e.Phase, e.ServerSize, v, d,
		c.ts(microTime(e.RenewedAt)), c.ts(microTime(e.LeaseUntil)))
	if err != nil {
		return fmt.Errorf("store: advance session: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: advance session: %w", err)
	} else if n == 0 {
		return ErrSessionLost
	}
	return nil
}

// RenewLeases implements [Journal].
func (c *core) RenewLeases(ctx context.Context, owner string, at, until time.Time) (int64, error) {
	res, err := c.writer.exec(ctx, sqlRenewJournal, owner, c.ts(microTime(at)), c.ts(microTime(until)))
	if err != nil {
		return 0, fmt.Errorf("store: renew leases: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: renew leases: %w", err)
	}
	return n, nil
}

// EndSession implements [Journal].
func (c *core) EndSession(ctx context.Context, rec SessionRecord, refund bool) error {
	if err := validateSession(&rec); err != nil {
		return err
	}
	return c.inTx(ctx, "end session", func(tx q) error { return c.closeSession(ctx, tx, rec, refund) })
}

// closeSession removes the journal row of rec, refunds it if asked, and
// appends rec to the audit log, in tx.
func (c *core) closeSession(ctx context.Context, tx q, rec SessionRecord, refund bool) error {
	res, err := tx.exec(ctx, sqlDeleteJournal, rec.ID)
	if err != nil {
		return fmt.Errorf("store: end session: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: end session: %w", err)
	} else if n == 0 {
		return ErrSessionLost
	}
	if refund {
		if _, err := tx.exec(ctx, sqlRefundIfSpent, rec.ID, rec.Advertiser, c.ts(rec.EndedAt)); err != nil {
			return fmt.Errorf("store: end session: refund: %w", err)
		}
	}
	if err := c.insertSession(ctx, tx, &rec); err != nil {
		return fmt.Errorf("store: end session: %w", err)
	}
	return nil
}

func scanJournal(row scanner) (JournalEntry, error) {
	var (
		e                        JournalEntry
		kind                     int64
		version                  sql.NullInt64
		digest                   []byte
		started, renewed, leased stamp
		epochID                  sql.NullString
		epochExpires             stamp
		kinds, slots             int64
		suite                    sql.NullInt64
	)
	if err := row.Scan(&e.ID, &e.Advertiser, &kind, &e.Mode, &e.ListSize, &e.Identifiers, &e.Epsilon, &e.Phase, &e.ServerSize,
		&version, &digest, &e.Owner, &started, &renewed, &leased, &epochID, &epochExpires, &kinds, &slots, &suite); err != nil {
		return JournalEntry{}, err
	}
	e.Suite = psi.Suite(suite.Int64)
	e.Kinds, e.Slots = psi.KindSet(kinds), int(slots)
	e.EpochID, e.EpochExpiresAt = epochID.String, epochExpires.t
	e.Kind, e.SnapshotVersion = psi.Kind(kind), version.Int64
	copy(e.SnapshotDigest[:], digest)
	e.StartedAt, e.RenewedAt, e.LeaseUntil = started.t, renewed.t, leased.t
	return e, nil
}

// OpenSessions implements [Journal].
func (c *core) OpenSessions(ctx context.Context) ([]JournalEntry, error) {
	return queryAll(ctx, c.reader, "open sessions", scanJournal, sqlOpenSessions)
}

// Reconcile implements [Journal]. Each session is closed in its own
// transaction that re-reads its row and re-checks the lease: on SQLite the
// write connection serializes the transactions, on PostgreSQL the read
// locks the row (FOR UPDATE), so servers reconciling one database at once
// close each session once.
func (c *core) Reconcile(ctx context.Context, at time.Time) ([]SessionRecord, error) {
	at = microTime(at)
	// Read on the writer, as the transactions below.
	ids, err := queryAll(ctx, c.writer, "reconcile", scanID, sqlExpired, c.ts(at))
	if err != nil {
		return nil, err
	}
	var out []SessionRecord
	for _, id := range ids {
		var rec SessionRecord
		var ok bool
		err := c.inTx(ctx, "reconcile", func(tx q) error {
			var err error
			rec, ok, err = c.reconcileOne(ctx, tx, id, at)
			return err
		})
		if err != nil {
			return out, err
		}
		if ok {
			out = append(out, rec)
		}
	}
	return out, nil
}

func scanID(row scanner) (id string, err error) {
	err = row.Scan(&id)
	return id, err
}

// reconcileOne closes session id in tx if its lease still ended before
// at; ok is false when it was closed or renewed meanwhile.
func (c *core) reconcileOne(ctx context.Context, tx q, id string, at time.Time) (rec SessionRecord, ok bool, err error) {
	e, err := scanJournal(tx.queryRow(ctx, `SELECT `+journalColumns+` FROM session_journal WHERE id = $1 AND lease_until < $2`+c.forUpdate,
		id, c.ts(at)))
	if isNoRows(err) {
		return SessionRecord{}, false, nil // closed or renewed meanwhile
	}
	if err != nil {
		return SessionRecord{}, false, fmt.Errorf("store: reconcile: %w", err)
	}
	rec, refund := crashedRecord(e)
	if err := validateSession(&rec); err != nil {
		return SessionRecord{}, false, err
	}
	if rec.SnapshotVersion != 0 {
		var n int64
		if err := tx.queryRow(ctx, sqlSnapshotKnown, rec.SnapshotVersion).Scan(&n); err != nil {
			return SessionRecord{}, false, fmt.Errorf("store: reconcile: %w", err)
		}
		if n == 0 {
			rec.SnapshotVersion, rec.SnapshotDigest = 0, [32]byte{}
		}
	}
	if err := c.closeSession(ctx, tx, rec, refund); err != nil {
		return SessionRecord{}, false, err
	}
	return rec, true, nil
}
