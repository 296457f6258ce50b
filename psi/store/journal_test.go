package store

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/overlap-psi/overlap/psi"
)

func TestSQLiteJournal(t *testing.T) {
	t.Parallel()
	runJournalSuite(t, func(t *testing.T) Store { return openSQLiteTest(t) })
}

func TestPostgresJournal(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	t.Parallel()
	runJournalSuite(t, func(t *testing.T) Store { return openPostgresTest(t) })
}

var jt0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// begin journals a session of adv reserving ids identifiers and eps
// micro-ε at jt0, leased until lease.
func begin(t *testing.T, s Store, adv Advertiser, id, owner string, ids, eps int64, lease time.Time) error {
	t.Helper()
	mode := "exact"
	if eps > 0 {
		mode = "private"
	}
	_, err := s.BeginSession(t.Context(),
		BudgetRequest{Advertiser: adv.ID, Session: id, Identifiers: ids, Limit: 1000, Window: time.Hour, At: jt0, Epsilon: eps, EpsilonLimit: 2_000_000},
		JournalEntry{ID: id, Advertiser: adv.ID, Kind: psi.KindEmail, Mode: mode, ListSize: ids, Owner: owner, StartedAt: jt0, LeaseUntil: lease})
	return err
}

func used(t *testing.T, s Store, adv Advertiser) (int64, int64) {
	t.Helper()
	ids, err1 := s.BudgetUsed(t.Context(), adv.ID, time.Hour, jt0.Add(time.Minute))
	eps, err2 := s.EpsilonUsed(t.Context(), adv.ID, time.Hour, jt0.Add(time.Minute))
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	return ids, eps
}

func auditRow(t *testing.T, s Store, id string) (SessionRecord, bool) {
	t.Helper()
	rows, err := s.Sessions(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.ID == id {
			return r, true
		}
	}
	return SessionRecord{}, false
}

func runJournalSuite(t *testing.T, open func(t *testing.T) Store) {
	t.Run("BeginReservesAndJournals", func(t *testing.T) {
		s := open(t)
		a := mustAdvertiser(t, s, "acme")
		if err := begin(t, s, a, "s1", "me", 400, 500_000, jt0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		open, err := s.OpenSessions(t.Context())
		if err != nil || len(open) != 1 {
			t.Fatalf("journal: %v, %v", open, err)
		}
		e := open[0]
		if e.ID != "s1" || e.Phase != PhaseAdmitted || e.Identifiers != 400 || e.Epsilon != 500_000 || e.Owner != "me" || !e.LeaseUntil.Equal(jt0.Add(time.Minute)) {
			t.Errorf("journal row %+v", e)
		}
		if ids, eps := used(t, s, a); ids != 400 || eps != 500_000 {
			t.Errorf("budget used %d, %d after BeginSession", ids, eps)
		}
		// A refused reservation journals nothing.
		err = begin(t, s, a, "s2", "me", 700, 0, jt0.Add(time.Minute))
		if !errors.Is(err, ErrBudgetExhausted) {
			t.Fatalf("overspend: %v", err)
		}
		if open, _ := s.OpenSessions(t.Context()); len(open) != 1 {
			t.Errorf("a refused session left a journal row: %v", open)
		}
	})

	t.Run("EndSession", func(t *testing.T) {
		s := open(t)
		a := mustAdvertiser(t, s, "acme")
		for _, id := range []string{"kept", "refunded"} {
			if err := begin(t, s, a, id, "me", 100, 500_000, jt0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		rec := SessionRecord{ID: "kept", Advertiser: a.ID, Kind: psi.KindEmail, Mode: "private", ListSize: 100,
			BudgetSpent: 100, EpsilonSpent: 500_000, Result: "ok", StartedAt: jt0, EndedAt: jt0.Add(time.Second)}
		if err := s.EndSession(t.Context(), rec, false); err != nil {
			t.Fatal(err)
		}
		rec.ID, rec.Result, rec.BudgetSpent, rec.EpsilonSpent = "refunded", "canceled", 0, 0
		if err := s.EndSession(t.Context(), rec, true); err != nil {
			t.Fatal(err)
		}
		if ids, eps := used(t, s, a); ids != 100 || eps != 500_000 {
			t.Errorf("budget used %d, %d; want only the kept session's", ids, eps)
		}
		if open, _ := s.OpenSessions(t.Context()); len(open) != 0 {
			t.Errorf("journal after ending both: %v", open)
		}
		if r, ok := auditRow(t, s, "refunded"); !ok || r.Result != "canceled" {
			t.Errorf("audit row %+v, %v", r, ok)
		}
		// Ending it again writes nothing.
		if err := s.EndSession(t.Context(), rec, true); !errors.Is(err, ErrSessionLost) {
			t.Errorf("second EndSession: %v", err)
		}
	})

	t.Run("ReconcileRefundsByPhase", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		a := mustAdvertiser(t, s, "acme")
		b := mustAdvertiser(t, s, "globex")
		expired, live := jt0.Add(10*time.Second), jt0.Add(time.Hour)
		// a: a private session killed before any element and an exact one
		// killed after; b: an exact one killed before, and one still live.
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(begin(t, s, a, "p-admitted", "dead", 100, 500_000, expired))
		must(begin(t, s, a, "e-sent", "dead", 200, 0, expired))
		must(begin(t, s, b, "e-admitted", "dead", 300, 0, expired))
		must(begin(t, s, b, "live", "alive", 50, 0, live))
		must(s.AdvanceSession(ctx, JournalEntry{ID: "e-sent", Owner: "dead", Phase: PhaseElementsSent, ServerSize: 1024,
			RenewedAt: jt0.Add(5 * time.Second), LeaseUntil: expired}))
		if err := s.AdvanceSession(ctx, JournalEntry{ID: "e-sent", Owner: "other", Phase: PhaseElementsSent, LeaseUntil: live}); !errors.Is(err, ErrSessionLost) {
			t.Errorf("AdvanceSession by another owner: %v", err)
		}

		// Before the leases end, nothing is reconciled.
		if recs, err := s.Reconcile(ctx, jt0.Add(5*time.Second)); err != nil || len(recs) != 0 {
			t.Fatalf("early reconcile: %v, %v", recs, err)
		}
		recs, err := s.Reconcile(ctx, jt0.Add(time.Minute))
		if err != nil || len(recs) != 3 {
			t.Fatalf("reconcile: %d rows, %v", len(recs), err)
		}
		for id, want := range map[string][2]int64{"p-admitted": {0, 0}, "e-sent": {200, 0}, "e-admitted": {0, 0}} {
			r, ok := auditRow(t, s, id)
			if !ok || r.Result != ResultCrashed || r.BudgetSpent != want[0] || r.EpsilonSpent != want[1] {
				t.Errorf("%s: audit row %+v, %v; want crashed spending %v", id, r, ok, want)
			}
		}
		if r, _ := auditRow(t, s, "e-sent"); r.ServerSize != 1024 || !r.EndedAt.Equal(jt0.Add(5*time.Second)) {
			t.Errorf("e-sent: server size %d, ended %v; want what the journal last had", r.ServerSize, r.EndedAt)
		}
		if ids, eps := used(t, s, a); ids != 200 || eps != 0 {
			t.Errorf("acme spent %d, %d after reconcile; want the exact session that sent elements only", ids, eps)
		}
		if ids, _ := used(t, s, b); ids != 50 {
			t.Errorf("globex spent %d after reconcile; want the live session only", ids)
		}
		open, _ := s.OpenSessions(ctx)
		if len(open) != 1 || open[0].ID != "live" {
			t.Errorf("journal after reconcile: %v", open)
		}
		// Once is enough; the dead server's own EndSession finds nothing.
		if recs, err := s.Reconcile(ctx, jt0.Add(2*time.Minute)); err != nil || len(recs) != 0 {
			t.Errorf("second reconcile: %v, %v", recs, err)
		}
		late := SessionRecord{ID: "e-sent", Advertiser: a.ID, Kind: psi.KindEmail, Mode: "exact", Result: "ok", StartedAt: jt0, EndedAt: jt0}
		if err := s.EndSession(ctx, late, false); !errors.Is(err, ErrSessionLost) {
			t.Errorf("EndSession after reconcile: %v", err)
		}
		// Renewal keeps the live one out of reach.
		if n, err := s.RenewLeases(ctx, "alive", jt0.Add(time.Hour), jt0.Add(3*time.Hour)); n != 1 || err != nil {
			t.Errorf("RenewLeases: %d, %v", n, err)
		}
		if recs, err := s.Reconcile(ctx, jt0.Add(2*time.Hour)); err != nil || len(recs) != 0 {
			t.Errorf("reconcile of a renewed lease: %v, %v", recs, err)
		}
	})

	t.Run("ReconcileSnapshot", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		a := mustAdvertiser(t, s, "acme")
		_, known := snap(t, s, psi.KindEmail)
		for id, v := range map[string]int64{"known": known.Version, "elsewhere": known.Version + 1000} {
			if err := begin(t, s, a, id, "dead", 10, 0, jt0); err != nil {
				t.Fatal(err)
			}
			if err := s.AdvanceSession(ctx, JournalEntry{ID: id, Owner: "dead", Phase: PhaseElementsSent, SnapshotVersion: v,
				SnapshotDigest: known.Digest, RenewedAt: jt0, LeaseUntil: jt0}); err != nil {
				t.Fatal(err)
			}
		}
		if recs, err := s.Reconcile(ctx, jt0.Add(time.Minute)); err != nil || len(recs) != 2 {
			t.Fatalf("reconcile: %v, %v", recs, err)
		}
		// A snapshot the store recorded is kept; one it never had (a set
		// read from another source) is dropped rather than failing.
		if r, _ := auditRow(t, s, "known"); r.SnapshotVersion != known.Version || r.SnapshotDigest != known.Digest {
			t.Errorf("known snapshot: %+v", r)
		}
		if r, ok := auditRow(t, s, "elsewhere"); !ok || r.SnapshotVersion != 0 || r.BudgetSpent != 10 {
			t.Errorf("unknown snapshot: %+v, %v", r, ok)
		}
	})

	t.Run("ConcurrentReconcilers", func(t *testing.T) {
		s := open(t)
		a := mustAdvertiser(t, s, "acme")
		const n = 12
		for i := range n {
			if err := begin(t, s, a, fmt.Sprintf("s%02d", i), "dead", 10, 0, jt0); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		closed := map[string]int{}
		for range 3 {
			wg.Go(func() {
				recs, err := s.Reconcile(t.Context(), jt0.Add(time.Minute))
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				for _, r := range recs {
					closed[r.ID]++
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		if len(closed) != n {
			t.Errorf("%d sessions closed, want %d", len(closed), n)
		}
		for id, c := range closed {
			if c != 1 {
				t.Errorf("%s closed %d times", id, c)
			}
		}
		if rows, _ := s.Sessions(t.Context(), a.ID, 0); len(rows) != n {
			t.Errorf("%d audit rows, want %d", len(rows), n)
		}
		if ids, _ := used(t, s, a); ids != 0 {
			t.Errorf("%d identifiers still spent", ids)
		}
	})

	t.Run("SessionsEnded", func(t *testing.T) {
		s := open(t)
		a := mustAdvertiser(t, s, "acme")
		for i, at := range []time.Time{jt0, jt0.Add(time.Minute), jt0.Add(2 * time.Minute)} {
			r := SessionRecord{ID: fmt.Sprintf("a%d", i), Advertiser: a.ID, Mode: "exact", Result: "abandoned", StartedAt: at, EndedAt: at}
			if err := s.RecordSession(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		n, last, err := s.SessionsEnded(t.Context(), a.ID, "abandoned", jt0.Add(30*time.Second))
		if err != nil || n != 2 || !last.Equal(jt0.Add(2*time.Minute)) {
			t.Errorf("SessionsEnded = %d, %v, %v", n, last, err)
		}
		if n, _, err := s.SessionsEnded(t.Context(), a.ID, "ok", jt0.Add(-time.Hour)); n != 0 || err != nil {
			t.Errorf("ok sessions: %d, %v", n, err)
		}
	})
}

// TestIsBusySQLite holds the write lock of a database from one connection
// and meets it from another without a busy timeout.
func TestIsBusySQLite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "busy.db")
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	holder, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	tx, err := holder.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = other.BeginTx(t.Context(), nil)
	if err == nil || !IsBusy(fmt.Errorf("wrapped: %w", err)) {
		t.Errorf("a locked database: %v, IsBusy false", err)
	}
	if IsBusy(errors.New("store: something else")) || IsBusy(ErrBudgetExhausted) || IsBusy(nil) {
		t.Error("IsBusy of other errors")
	}
}

// TestIsBusyPostgres meets a row lock with a lock timeout.
func TestIsBusyPostgres(t *testing.T) {
	t.Parallel()
	dsn := postgresTestDSN(t)
	s, err := OpenPostgres(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := mustAdvertiser(t, s, "acme")
	holder, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(t.Context())
	tx, err := holder.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	if _, err := tx.Exec(t.Context(), `SELECT id FROM advertisers WHERE id = $1 FOR UPDATE`, a.ID); err != nil {
		t.Fatal(err)
	}
	other, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(t.Context())
	if _, err := other.Exec(t.Context(), `SET lock_timeout = '50ms'`); err != nil {
		t.Fatal(err)
	}
	_, err = other.Exec(t.Context(), `SELECT id FROM advertisers WHERE id = $1 FOR UPDATE`, a.ID)
	if err == nil || !IsBusy(err) {
		t.Errorf("a locked row: %v, IsBusy false", err)
	}
}
