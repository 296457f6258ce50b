package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/overlap-psi/overlap/psi/dp"

	"connectrpc.com/connect"

	"github.com/overlap-psi/overlap/psi/store"
)

// The session journal (SPEC.md §8.6, store.Journal): a session's budget
// reservation and its journal row are written in one transaction, before
// any cryptographic work; the row records the phase the session reached
// and is replaced by the audit row at the end. While the server runs, a
// goroutine renews the leases of its open sessions (every Lease/3) and
// reconciles the sessions whose lease ended (at start and every Lease):
// those of a server that stopped without closing them.

// DefaultLease is the journal lease of a session when Config.Lease is 0.
const DefaultLease = 30 * time.Second

// busyBackoff bounds the wait between two tries of a store call that met a
// busy store.
const (
	busyBackoffMin = 50 * time.Millisecond
	busyBackoffMax = 2 * time.Second
)

// finishTimeout bounds the retries of a session's closing write.
const finishTimeout = 30 * time.Second

// newOwner names this server instance in the journal.
func newOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// retryBusy runs fn until it returns an error that is not store.IsBusy, or
// until deadline or ctx ends, with a growing backoff between tries.
func (s *Server) retryBusy(ctx context.Context, deadline time.Time, fn func(ctx context.Context) error) error {
	wait := busyBackoffMin
	for {
		err := fn(ctx)
		if err == nil || !store.IsBusy(err) {
			return err
		}
		s.met.busyRetries.Inc()
		if time.Now().Add(wait).After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, busyBackoffMax)
	}
}

// storeFailure fails the session on a store that stayed busy, or
// classifies and logs another store failure during what.
func (s *Server) storeFailure(ss *session, what string, err error) error {
	if ss.ctx.Err() != nil {
		return ss.ctx.Err()
	}
	if store.IsBusy(err) {
		s.log.Warn("store busy", "session", ss.rec.ID, "step", what, "err", err)
		return ss.fail(ResultUnavailable, connect.NewError(connect.CodeUnavailable,
			fmt.Errorf("the server's store is busy (%s); retry shortly", what)))
	}
	return ss.fail(ResultInternal, s.internal(ss, what, err))
}

// admit reserves the session's budget and journals it, retrying a busy
// store within the idle timeout. A refusal is returned as the store's
// *store.BudgetError.
func (s *Server) admit(ss *session, r store.BudgetRequest) error {
	now := s.cfg.now()
	e := store.JournalEntry{ID: ss.rec.ID, Advertiser: ss.adv.ID, Kind: ss.rec.Kind, Mode: ss.rec.Mode, ListSize: ss.rec.ListSize,
		Owner: s.owner, StartedAt: ss.rec.StartedAt, LeaseUntil: now.Add(s.cfg.Lease),
		EpochID: ss.rec.EpochID, EpochExpiresAt: ss.rec.EpochExpiresAt, Kinds: ss.rec.Kinds, Slots: ss.rec.Slots, Suite: ss.rec.Suite}
	err := s.retryBusy(ss.ctx, time.Now().Add(s.cfg.IdleTimeout), func(ctx context.Context) error {
		st, err := s.cfg.Store.BeginSession(ctx, r, e)
		s.reconciled(st.Reconciled)
		return err
	})
	if err != nil {
		return err
	}
	ss.journaled, ss.phase = true, store.PhaseAdmitted
	ss.rec.BudgetSpent, ss.rec.EpsilonSpent = r.Identifiers, r.Epsilon
	return nil
}

// elementsSent records, before the session sends its first element
// derived from the server's set, that its spend is final. A session whose
// journal row is gone (it was reconciled: its lease ended) must not send.
func (s *Server) elementsSent(ss *session) error {
	now := s.cfg.now()
	e := store.JournalEntry{ID: ss.rec.ID, Owner: s.owner, Phase: store.PhaseElementsSent, ServerSize: ss.rec.ServerSize,
		SnapshotVersion: ss.rec.SnapshotVersion, SnapshotDigest: ss.rec.SnapshotDigest, RenewedAt: now, LeaseUntil: now.Add(s.cfg.Lease)}
	err := s.retryBusy(ss.ctx, time.Now().Add(s.cfg.IdleTimeout), func(ctx context.Context) error {
		return s.cfg.Store.AdvanceSession(ctx, e)
	})
	if err != nil {
		return s.storeFailure(ss, "journaling the session", err)
	}
	ss.phase = store.PhaseElementsSent
	return nil
}

// pendingEnd is a closing write that failed; the lease loop retries it.
type pendingEnd struct {
	rec    store.SessionRecord
	refund bool
}

// record writes the session's audit row: for a journaled session, with
// its refund and the removal of its journal row, in one transaction. A
// busy store is retried; if it is still busy the journal keeps the
// session, leased, and the lease loop retries it (and, should this server
// stop first, reconciliation closes it as crashed). After another failure
// the journal keeps the session until this server stops.
func (s *Server) record(ctx context.Context, ss *session, refund bool) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	write := func(ctx context.Context) error {
		if ss.journaled {
			return s.cfg.Store.EndSession(ctx, ss.rec, refund)
		}
		return s.cfg.Store.RecordSession(ctx, ss.rec)
	}
	err := s.retryBusy(wctx, time.Now().Add(finishTimeout), write)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrSessionLost):
		s.log.Error("session was reconciled as crashed while it ran: its lease was not renewed in time", "session", ss.rec.ID)
	case ss.journaled && (store.IsBusy(err) || errors.Is(err, context.DeadlineExceeded)):
		s.log.Error("audit row not written yet; retrying", "session", ss.rec.ID, "err", err)
		s.jmu.Lock()
		s.pending = append(s.pending, pendingEnd{ss.rec, refund})
		s.jmu.Unlock()
	case ss.journaled:
		s.log.Error("audit row not written; the journal keeps the session, and reconciliation closes it as crashed once this server has stopped",
			"session", ss.rec.ID, "err", err)
	default:
		s.log.Error("audit row not written", "session", ss.rec.ID, "err", err)
	}
}

// leaseLoop renews the leases of this server's sessions and reconciles
// expired ones until ctx ends.
func (s *Server) leaseLoop(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	s.reconcile(ctx)
	s.expireEpochs(ctx)
	renew := time.NewTicker(s.cfg.Lease / 3)
	defer renew.Stop()
	rec := time.NewTicker(s.cfg.ReconcileInterval)
	defer rec.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-renew.C:
			s.renew(ctx)
			s.retryPending(ctx)
		case <-rec.C:
			s.reconcile(ctx)
			s.expireEpochs(ctx)
		}
	}
}

// renew extends the leases of this server's open sessions.
func (s *Server) renew(ctx context.Context) bool {
	now := s.cfg.now()
	if _, err := s.cfg.Store.RenewLeases(ctx, s.owner, now, now.Add(s.cfg.Lease)); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("session leases not renewed", "err", err)
		}
		return false
	}
	return true
}

func (s *Server) retryPending(ctx context.Context) {
	s.jmu.Lock()
	todo := s.pending
	s.pending = nil
	s.jmu.Unlock()
	for _, p := range todo {
		err := s.cfg.Store.EndSession(ctx, p.rec, p.refund)
		switch {
		case err == nil:
			s.log.Info("audit row written after a retry", "session", p.rec.ID)
		case errors.Is(err, store.ErrSessionLost):
		default:
			s.jmu.Lock()
			s.pending = append(s.pending, p)
			s.jmu.Unlock()
		}
	}
}

// reconcile closes the sessions whose lease ended: a server stopped
// without closing them. It first renews this server's own leases, so that
// a renewal delayed by a busy store never lets it close its own live
// sessions; when that fails it waits for the next round.
func (s *Server) reconcile(ctx context.Context) {
	if !s.renew(ctx) {
		return
	}
	recs, err := s.cfg.Store.Reconcile(ctx, s.cfg.now())
	if err != nil && ctx.Err() == nil {
		s.log.Warn("reconciling crashed sessions failed; will retry", "err", err)
	}
	s.reconciled(recs)
}

// reconciled logs and counts the crashed sessions this server closed: in
// its reconciliation, or in a reservation for the same advertiser.
func (s *Server) reconciled(recs []store.SessionRecord) {
	for _, r := range recs {
		refunded := r.BudgetSpent == 0 && r.EpsilonSpent == 0
		s.met.reconciled.WithLabelValues(fmt.Sprint(refunded)).Inc()
		s.log.Warn("crashed session reconciled", "session", r.ID, "advertiser_id", r.Advertiser, "mode", r.Mode,
			"list_size", r.ListSize, "budget_spent", r.BudgetSpent, "epsilon_spent", dp.Epsilon(r.EpsilonSpent).String(),
			"refunded", refunded, "result", r.Result)
	}
}

// admission is what the store checks when it admits a session at now,
// under the advertiser's row lock, so that it holds across every server on
// the store (store.Admission): one session in flight per advertiser, with
// a lease that has not ended, and the abandoned-session throttle (SPEC.md
// §10.8.2): past AbandonFree abandoned sessions in the last hour, each
// further one doubles the wait after the latest, from AbandonDelay up to
// an hour.
func (s *Server) admission(now time.Time) *store.Admission {
	a := &store.Admission{MaxOpen: 1}
	if s.cfg.AbandonDelay >= 0 {
		a.Abandoned, a.AbandonedSince = ResultAbandoned, now.Add(-abandonWindow)
		a.AbandonWait = func(n int64) time.Duration { return abandonWait(n, s.cfg.AbandonFree, s.cfg.AbandonDelay) }
	}
	return a
}

// abandonWindow is how far back abandoned sessions count.
const abandonWindow = time.Hour

// abandonWait is the wait after the latest of n abandoned sessions: none
// for the first free ones, then delay, 2·delay, 4·delay, … up to an hour.
func abandonWait(n int64, free int, delay time.Duration) time.Duration {
	over := n - int64(free)
	if over <= 0 {
		return 0
	}
	wait := delay
	for range over - 1 {
		if wait >= abandonWindow {
			break
		}
		wait *= 2
	}
	return min(wait, abandonWindow)
}
