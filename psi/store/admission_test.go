package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
)

// Admission across servers (admission.go): two handles on one database
// stand for two replicas.

func TestSQLiteAdmission(t *testing.T) {
	t.Parallel()
	runAdmissionSuite(t, func(t *testing.T) (Store, Store) {
		path := filepath.Join(t.TempDir(), "ledger.db")
		var s [2]Store
		for i := range s {
			var err error
			if s[i], err = OpenSQLite(path); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s[i].Close() })
		}
		return s[0], s[1]
	})
}

func TestPostgresAdmission(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	t.Parallel()
	runAdmissionSuite(t, func(t *testing.T) (Store, Store) {
		dsn := postgresTestDSN(t)
		var s [2]Store
		for i := range s {
			var err error
			if s[i], err = OpenPostgres(t.Context(), dsn); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s[i].Close() })
		}
		return s[0], s[1]
	})
}

// admitted journals session id of adv through s as owner at at, under
// lease until at+lease, with the admission of one open session per
// advertiser and the abandoned-session rule of the service (3 free, then
// 30 s).
func admitted(t *testing.T, s Store, adv Advertiser, id, owner string, ids int64, at time.Time, lease time.Duration) (BudgetStatus, error) {
	t.Helper()
	adm := &Admission{MaxOpen: 1, Abandoned: "abandoned", AbandonedSince: at.Add(-time.Hour),
		AbandonWait: func(n int64) time.Duration {
			if n <= 3 {
				return 0
			}
			return 30 * time.Second
		}}
	return s.BeginSession(t.Context(),
		BudgetRequest{Advertiser: adv.ID, Session: id, Identifiers: ids, Limit: 1000, Window: time.Hour, At: at, Admission: adm},
		JournalEntry{ID: id, Advertiser: adv.ID, Kind: psi.KindEmail, Mode: "exact", ListSize: ids, Owner: owner, StartedAt: at, LeaseUntil: at.Add(lease)})
}

func runAdmissionSuite(t *testing.T, open func(t *testing.T) (Store, Store)) {
	t.Run("OneOpenSessionAcrossServers", func(t *testing.T) {
		s1, s2 := open(t)
		a, b := mustAdvertiser(t, s1, "acme"), mustAdvertiser(t, s1, "globex")
		if _, err := admitted(t, s1, a, "a1", "r1", 100, jt0, time.Minute); err != nil {
			t.Fatal(err)
		}
		_, err := admitted(t, s2, a, "a2", "r2", 100, jt0.Add(time.Second), time.Minute)
		var ae *AdmissionError
		if !errors.As(err, &ae) || !errors.Is(err, ErrNotAdmitted) || ae.Limit != AdmissionOpenSessions || ae.Count != 1 {
			t.Fatalf("second session of acme on another server: %v; want an open-sessions refusal", err)
		}
		// The refusal reserved and journaled nothing.
		if ids, _ := used(t, s2, a); ids != 100 {
			t.Errorf("acme used %d identifiers, want 100", ids)
		}
		if open, _ := s2.OpenSessions(t.Context()); len(open) != 1 {
			t.Errorf("journal %+v, want a1 only", open)
		}
		// Another advertiser is not held up.
		if _, err := admitted(t, s2, b, "b1", "r2", 100, jt0.Add(time.Second), time.Minute); err != nil {
			t.Errorf("globex: %v", err)
		}
		// Once a1 ends, acme is admitted on either server.
		rec := SessionRecord{ID: "a1", Advertiser: a.ID, Kind: psi.KindEmail, Mode: "exact", ListSize: 100, BudgetSpent: 100,
			Result: "ok", StartedAt: jt0, EndedAt: jt0.Add(2 * time.Second)}
		if err := s1.EndSession(t.Context(), rec, false); err != nil {
			t.Fatal(err)
		}
		if _, err := admitted(t, s2, a, "a2", "r2", 100, jt0.Add(3*time.Second), time.Minute); err != nil {
			t.Errorf("acme after a1 ended: %v", err)
		}
	})

	t.Run("ExpiredLeaseFreesSlotAndRefundsOnlyAdmitted", func(t *testing.T) {
		s1, s2 := open(t)
		a, b := mustAdvertiser(t, s1, "acme"), mustAdvertiser(t, s1, "globex")
		// r1 dies holding a session of each advertiser: acme's admitted,
		// globex's past elements_sent.
		if _, err := admitted(t, s1, a, "a1", "r1", 300, jt0, time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := admitted(t, s1, b, "b1", "r1", 200, jt0, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := s1.AdvanceSession(t.Context(), JournalEntry{ID: "b1", Owner: "r1", Phase: PhaseElementsSent,
			RenewedAt: jt0, LeaseUntil: jt0.Add(time.Second)}); err != nil {
			t.Fatal(err)
		}
		// Within the lease the slot is held.
		if _, err := admitted(t, s2, a, "a2", "r2", 100, jt0.Add(500*time.Millisecond), time.Minute); !errors.Is(err, ErrNotAdmitted) {
			t.Fatalf("acme within r1's lease: %v; want refused", err)
		}
		// After it, the next reservation closes the session: refunded in
		// phase admitted, kept in phase elements_sent.
		st, err := admitted(t, s2, a, "a2", "r2", 100, jt0.Add(2*time.Second), time.Minute)
		if err != nil || len(st.Reconciled) != 1 || st.Reconciled[0].ID != "a1" || st.Reconciled[0].BudgetSpent != 0 || st.Used != 100 {
			t.Fatalf("acme after r1's lease: %+v, %v; want a1 reconciled and refunded, 100 used", st, err)
		}
		st, err = admitted(t, s2, b, "b2", "r2", 100, jt0.Add(2*time.Second), time.Minute)
		if err != nil || len(st.Reconciled) != 1 || st.Reconciled[0].BudgetSpent != 200 || st.Used != 300 {
			t.Fatalf("globex after r1's lease: %+v, %v; want b1 reconciled with its spend kept, 300 used", st, err)
		}
		for id, spent := range map[string]int64{"a1": 0, "b1": 200} {
			r, ok := auditRow(t, s1, id)
			if !ok || r.Result != ResultCrashed || r.BudgetSpent != spent {
				t.Errorf("audit row of %s: %+v; want crashed spending %d", id, r, spent)
			}
		}
		// Nothing is left for a server's reconciliation: each session is
		// closed once.
		if recs, err := s1.Reconcile(t.Context(), jt0.Add(time.Hour)); err != nil || len(recs) != 2 {
			t.Errorf("Reconcile later closed %+v, %v; want a2 and b2 only", recs, err)
		}
		if rows, _ := s1.Sessions(t.Context(), 0, 0); len(rows) != 4 {
			t.Errorf("%d audit rows, want 4 (one per session)", len(rows))
		}
	})

	t.Run("RefusalKeepsWhatItReconciled", func(t *testing.T) {
		s1, s2 := open(t)
		a := mustAdvertiser(t, s1, "acme")
		if _, err := admitted(t, s1, a, "a1", "r1", 600, jt0, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := s1.AdvanceSession(t.Context(), JournalEntry{ID: "a1", Owner: "r1", Phase: PhaseElementsSent,
			RenewedAt: jt0, LeaseUntil: jt0.Add(time.Second)}); err != nil {
			t.Fatal(err)
		}
		// 600 of 1000 stay spent: a list of 500 is refused, and the
		// crashed session is closed all the same.
		st, err := admitted(t, s2, a, "a2", "r2", 500, jt0.Add(2*time.Second), time.Minute)
		var be *BudgetError
		if !errors.As(err, &be) || be.Used != 600 || len(st.Reconciled) != 1 {
			t.Fatalf("over budget: %+v, %v; want a budget refusal with a1 reconciled", st, err)
		}
		if r, ok := auditRow(t, s1, "a1"); !ok || r.Result != ResultCrashed {
			t.Errorf("audit row of a1: %+v, %v", r, ok)
		}
		if open, _ := s1.OpenSessions(t.Context()); len(open) != 0 {
			t.Errorf("journal %+v, want empty", open)
		}
	})

	t.Run("AbandonedAcrossServers", func(t *testing.T) {
		s1, s2 := open(t)
		a := mustAdvertiser(t, s1, "acme")
		// Four abandoned sessions, written by either server.
		var last time.Time
		for i := range 4 {
			s := []Store{s1, s2}[i%2]
			last = jt0.Add(time.Duration(i) * time.Minute)
			if err := s.RecordSession(t.Context(), SessionRecord{ID: fmt.Sprint("ab", i), Advertiser: a.ID, Kind: psi.KindEmail,
				Mode: "exact", ListSize: 100, Result: "abandoned", StartedAt: last, EndedAt: last}); err != nil {
				t.Fatal(err)
			}
		}
		_, err := admitted(t, s2, a, "a1", "r2", 100, last.Add(10*time.Second), time.Minute)
		var ae *AdmissionError
		if !errors.As(err, &ae) || ae.Limit != AdmissionAbandoned || ae.Count != 4 || !ae.ResetsAt.Equal(last.Add(30*time.Second)) {
			t.Fatalf("after 4 abandoned sessions: %v; want refused until %v", err, last.Add(30*time.Second))
		}
		if _, err := admitted(t, s1, a, "a1", "r1", 100, last.Add(30*time.Second), time.Minute); err != nil {
			t.Errorf("at the reset: %v", err)
		}
	})

	t.Run("ConcurrentServersAdmitOne", func(t *testing.T) {
		s1, s2 := open(t)
		a := mustAdvertiser(t, s1, "acme")
		const n = 16
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				s := []Store{s1, s2}[i%2]
				for {
					_, errs[i] = admitted(t, s, a, fmt.Sprint("c", i), fmt.Sprint("r", i%2), 10, jt0, time.Minute)
					if !IsBusy(errs[i]) {
						return
					}
				}
			})
		}
		wg.Wait()
		ok := 0
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrNotAdmitted):
				t.Errorf("session %d: %v", i, err)
			}
		}
		if ok != 1 {
			t.Errorf("%d of %d concurrent sessions of one advertiser admitted, want 1", ok, n)
		}
		if ids, _ := used(t, s1, a); ids != 10 {
			t.Errorf("acme used %d identifiers, want 10", ids)
		}
	})
}
