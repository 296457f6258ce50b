package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Admission is what a session's reservation checks beyond the budgets, in
// the reservation's own transaction and under the advertiser's row lock
// (SPEC.md §8.6 point 7): so it holds for every server that shares the
// store, replicas on one PostgreSQL database as well as one process on
// SQLite.
//
// Before it counts anything, the reservation closes the advertiser's
// journal rows whose lease ended (as [Journal.Reconcile] does: refunded in
// phase admitted, kept in phase elements_sent, audited as crashed), so a
// session of a server that died holds neither a slot nor a reservation of
// its advertiser past its lease.
type Admission struct {
	// MaxOpen is how many sessions of the advertiser may be open in the
	// journal at once, with a lease that has not ended, the new one
	// included; 0 means no limit.
	MaxOpen int
	// Abandoned, when not empty, is the audit result of an abandoned
	// session (SPEC.md §10.8.2): the reservation counts the advertiser's
	// audit rows with that result that ended after AbandonedSince, and is
	// refused until AbandonWait(n) after the latest of them.
	Abandoned      string
	AbandonedSince time.Time
	AbandonWait    func(n int64) time.Duration
}

// The limits an [AdmissionError] can name.
const (
	AdmissionOpenSessions = "open_sessions"
	AdmissionAbandoned    = "abandoned_sessions"
)

// ErrNotAdmitted reports a reservation refused by its [Admission]. The
// error is an *AdmissionError.
var ErrNotAdmitted = errors.New("store: session not admitted")

// AdmissionError describes a reservation refused by its [Admission].
type AdmissionError struct {
	Limit string // AdmissionOpenSessions or AdmissionAbandoned
	// Count is the advertiser's open sessions with a live lease, or its
	// abandoned sessions since AbandonedSince.
	Count int64
	// ResetsAt is when an abandoned-sessions refusal lifts; zero for open
	// sessions, which lift when one of them ends.
	ResetsAt time.Time
}

func (e *AdmissionError) Error() string {
	if e.Limit == AdmissionAbandoned {
		return fmt.Sprintf("%d sessions abandoned after admission; the next one is admitted after %s", e.Count, e.ResetsAt.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("%d sessions open already", e.Count)
}

// Is makes errors.Is(err, ErrNotAdmitted) hold.
func (e *AdmissionError) Is(target error) bool { return target == ErrNotAdmitted }

const (
	// sqlExpiredOf lists the journal rows of advertiser $1 whose lease
	// ended before $2.
	sqlExpiredOf = `SELECT id FROM session_journal WHERE advertiser_id = $1 AND lease_until < $2 ORDER BY started_at, id`
	// sqlOpenOf counts the journal rows of advertiser $1 whose lease has
	// not ended at $2.
	sqlOpenOf = `SELECT count(*) FROM session_journal WHERE advertiser_id = $1 AND lease_until >= $2`
)

// admit checks a of request r in tx, which holds r's advertiser's row
// lock, and returns the audit rows of the expired sessions it closed.
func (c *core) admit(ctx context.Context, tx q, r BudgetRequest, a *Admission) ([]SessionRecord, error) {
	// Rows another server is reconciling now are locked: skip them rather
	// than wait (and deadlock) on them; their own transaction closes them.
	lock := ""
	if c.forUpdate != "" {
		lock = c.forUpdate + " SKIP LOCKED"
	}
	ids, err := queryAll(ctx, tx, "admission", scanID, sqlExpiredOf+lock, r.Advertiser, c.ts(r.At))
	if err != nil {
		return nil, err
	}
	var closed []SessionRecord
	for _, id := range ids {
		rec, ok, err := c.reconcileOne(ctx, tx, id, r.At)
		if err != nil {
			return nil, err
		}
		if ok {
			closed = append(closed, rec)
		}
	}
	if a.MaxOpen > 0 {
		var n int64
		if err := tx.queryRow(ctx, sqlOpenOf, r.Advertiser, c.ts(r.At)).Scan(&n); err != nil {
			return closed, fmt.Errorf("store: admission: %w", err)
		}
		if n >= int64(a.MaxOpen) {
			return closed, &AdmissionError{Limit: AdmissionOpenSessions, Count: n}
		}
	}
	// After the open sessions: a session that ends between the two reads
	// has its journal row removed and its audit row appended in one
	// transaction, so one of the two reads sees it.
	if a.Abandoned != "" && a.AbandonWait != nil {
		var n int64
		var last stamp
		if err := tx.queryRow(ctx, sqlResultCount, r.Advertiser, a.Abandoned, c.ts(microTime(a.AbandonedSince))).Scan(&n, &last); err != nil {
			return closed, fmt.Errorf("store: admission: %w", err)
		}
		if wait := a.AbandonWait(n); n > 0 && wait > 0 && r.At.Before(last.t.Add(wait)) {
			return closed, &AdmissionError{Limit: AdmissionAbandoned, Count: n, ResetsAt: last.t.Add(wait)}
		}
	}
	return closed, nil
}

// refused reports whether err refuses a reservation (a budget or the
// admission) rather than fails it: the transaction still commits what it
// did before the refusal (the expired sessions it closed).
func refused(err error) bool {
	return errors.Is(err, ErrBudgetExhausted) || errors.Is(err, ErrNotAdmitted)
}
