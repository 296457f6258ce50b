package store

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
)

func TestSQLiteRegistry(t *testing.T) {
	t.Parallel()
	runRegistrySuite(t, func(t *testing.T) Store { return openSQLiteTest(t) })
}

func TestPostgresRegistry(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	t.Parallel()
	runRegistrySuite(t, func(t *testing.T) Store { return openPostgresTest(t) })
}

func mustAdvertiser(t testing.TB, s Store, name string) Advertiser {
	t.Helper()
	a, err := s.AddAdvertiser(t.Context(), Advertiser{Name: name, KeyID: "id-" + name, KeyHash: sha256.Sum256([]byte("key " + name))})
	if err != nil {
		t.Fatalf("AddAdvertiser(%s): %v", name, err)
	}
	return a
}

// runRegistrySuite tests advertisers, budgets and the audit log against one
// engine; open returns a fresh, empty store.
func runRegistrySuite(t *testing.T, open func(t *testing.T) Store) {
	t.Run("Advertisers", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		a := mustAdvertiser(t, s, "acme")
		if a.ID == 0 || a.CreatedAt.IsZero() || a.Revoked() {
			t.Fatalf("added %v", a)
		}
		b, err := s.AddAdvertiser(ctx, Advertiser{Name: "globex", CertName: "globex.example", Policy: Policy{MinListSize: 5, Budget: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		// Lookups by each name.
		for _, get := range []func() (Advertiser, error){
			func() (Advertiser, error) { return s.AdvertiserByName(ctx, "acme") },
			func() (Advertiser, error) { return s.AdvertiserByKeyID(ctx, "id-acme") },
		} {
			got, err := get()
			if err != nil || got.ID != a.ID || got.KeyHash != a.KeyHash || !got.CreatedAt.Equal(a.CreatedAt) {
				t.Errorf("lookup = %v, %v; want %v", got, err, a)
			}
		}
		got, err := s.AdvertiserByCertName(ctx, "globex.example")
		if err != nil || got.ID != b.ID || got.Policy != b.Policy || got.KeyID != "" {
			t.Errorf("AdvertiserByCertName = %v %+v, %v", got, got.Policy, err)
		}
		// Unknown names and conflicts.
		if _, err := s.AdvertiserByKeyID(ctx, "nope"); !errors.Is(err, ErrUnknownAdvertiser) {
			t.Errorf("unknown key id: %v", err)
		}
		for _, dup := range []Advertiser{
			{Name: "acme", CertName: "x"},
			{Name: "other", KeyID: "id-acme", KeyHash: [32]byte{1}},
			{Name: "other", CertName: "globex.example"},
		} {
			if _, err := s.AddAdvertiser(ctx, dup); !errors.Is(err, ErrAdvertiserExists) {
				t.Errorf("AddAdvertiser(%v) = %v, want ErrAdvertiserExists", dup, err)
			}
		}
		// Invalid advertisers.
		for _, bad := range []Advertiser{
			{Name: "", CertName: "x"},
			{Name: "no credentials"},
			{Name: " padded ", CertName: "x"},
			{Name: "ctl\x01", CertName: "x"},
			{Name: "nohash", KeyID: "k"},
			{Name: "neg", CertName: "y", Policy: Policy{Budget: -1}},
			{Name: "minmax", CertName: "y", Policy: Policy{MinListSize: 10, MaxListSize: 5}},
		} {
			if _, err := s.AddAdvertiser(ctx, bad); err == nil {
				t.Errorf("AddAdvertiser(%q) succeeded", bad.Name)
			}
		}
		// Policy and revocation.
		if got, err := s.SetAdvertiserPolicy(ctx, "acme", Policy{MaxListSize: 50, Modes: ModesExact}); err != nil || got.Policy.MaxListSize != 50 {
			t.Errorf("SetAdvertiserPolicy = %+v, %v", got.Policy, err)
		}
		at := t0.Add(time.Hour)
		got, err = s.RevokeAdvertiser(ctx, "acme", at)
		if err != nil || !got.RevokedAt.Equal(at) {
			t.Errorf("RevokeAdvertiser = %v at %v, %v", got, got.RevokedAt, err)
		}
		if got, _ := s.RevokeAdvertiser(ctx, "acme", at.Add(time.Hour)); !got.RevokedAt.Equal(at) {
			t.Errorf("second revocation moved the time to %v", got.RevokedAt)
		}
		if _, err := s.RevokeAdvertiser(ctx, "nobody", at); !errors.Is(err, ErrUnknownAdvertiser) {
			t.Errorf("revoking an unknown advertiser: %v", err)
		}
		list, err := s.Advertisers(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "acme" || !list[0].Revoked() || list[1].Revoked() {
			t.Errorf("Advertisers = %v, %v", list, err)
		}
		// The key hash never prints.
		if s := fmt.Sprintf("%v %+v %#v", a, a, a); strings.Contains(s, fmt.Sprintf("%x", a.KeyHash[:4])) || strings.Contains(s, "KeyHash") {
			t.Errorf("advertiser prints its key hash: %s", s)
		}
	})

	t.Run("Budget", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		a := mustAdvertiser(t, s, "acme")
		req := func(n int64, at time.Time) BudgetRequest {
			return BudgetRequest{Advertiser: a.ID, Session: "s", Identifiers: n, Limit: 100, Window: 24 * time.Hour, At: at}
		}
		if st, err := s.ReserveBudget(ctx, req(60, t0)); err != nil || st.Used != 60 {
			t.Fatalf("first reservation: %+v, %v", st, err)
		}
		if st, err := s.ReserveBudget(ctx, req(30, t0.Add(time.Hour))); err != nil || st.Used != 90 {
			t.Fatalf("second reservation: %+v, %v", st, err)
		}
		// 20 more do not fit until the first spend leaves the window.
		_, err := s.ReserveBudget(ctx, req(20, t0.Add(2*time.Hour)))
		var be *BudgetError
		if !errors.As(err, &be) || !errors.Is(err, ErrBudgetExhausted) || be.Used != 90 || !be.ResetsAt.Equal(t0.Add(24*time.Hour)) {
			t.Fatalf("over budget: %v (%+v)", err, be)
		}
		// A list larger than the whole budget never fits.
		if _, err := s.ReserveBudget(ctx, req(101, t0.Add(2*time.Hour))); !errors.As(err, &be) || !be.ResetsAt.IsZero() {
			t.Fatalf("list above the budget: %v", err)
		}
		if used, err := s.BudgetUsed(ctx, a.ID, 24*time.Hour, t0.Add(2*time.Hour)); err != nil || used != 90 {
			t.Errorf("BudgetUsed = %d, %v; refusals must spend nothing", used, err)
		}
		// At the reset time it fits.
		if st, err := s.ReserveBudget(ctx, req(20, t0.Add(24*time.Hour))); err != nil || st.Used != 50 {
			t.Errorf("after the reset: %+v, %v", st, err)
		}
		if _, err := s.ReserveBudget(ctx, BudgetRequest{Advertiser: a.ID + 99, Session: "s", Identifiers: 1, Limit: 10, Window: time.Hour, At: t0}); !errors.Is(err, ErrUnknownAdvertiser) {
			t.Errorf("unknown advertiser: %v", err)
		}
		if err := rawExec(t, s, "UPDATE budget_spend SET identifiers = 1"); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("UPDATE budget_spend: %v", err)
		}
		if err := rawExec(t, s, "DELETE FROM budget_spend"); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("DELETE FROM budget_spend: %v", err)
		}
	})

	t.Run("Modes", func(t *testing.T) { testModes(t, open(t)) })
	t.Run("PrivacyBudget", func(t *testing.T) { testPrivacyBudget(t, open(t)) })
	t.Run("PrivacyBudgetConcurrent", func(t *testing.T) { testPrivacyBudgetConcurrent(t, open(t)) })
	t.Run("Refunds", func(t *testing.T) { testRefunds(t, open(t)) })

	t.Run("BudgetConcurrent", func(t *testing.T) {
		s := open(t)
		a := mustAdvertiser(t, s, "acme")
		b := mustAdvertiser(t, s, "globex")
		const (
			workers = 24
			each    = 10
			limit   = 95
		)
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			granted = map[int64]int64{}
		)
		for i := range workers {
			adv := a.ID
			if i%2 == 1 {
				adv = b.ID
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.ReserveBudget(t.Context(), BudgetRequest{Advertiser: adv, Session: fmt.Sprint("s", i),
					Identifiers: each, Limit: limit / 2, Window: time.Hour, At: t0})
				switch {
				case err == nil:
					mu.Lock()
					granted[adv] += each
					mu.Unlock()
				case !errors.Is(err, ErrBudgetExhausted):
					t.Errorf("reservation %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		for _, adv := range []int64{a.ID, b.ID} {
			used, err := s.BudgetUsed(t.Context(), adv, time.Hour, t0)
			if err != nil {
				t.Fatal(err)
			}
			// 12 requests of 10 against 47: exactly 4 fit.
			if used != 40 || granted[adv] != 40 {
				t.Errorf("advertiser %d: used %d, granted %d; want 40 and 40", adv, used, granted[adv])
			}
		}
	})

	t.Run("Audit", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		a := mustAdvertiser(t, s, "acme")
		b := mustAdvertiser(t, s, "globex")
		mustImport(t, s, ident("u1", psi.KindEmail, "ana@example.com", Signup))
		mustAppend(t, s, wide("u1", true, t0))
		_, snapInfo := snap(t, s, psi.KindEmail)
		ok := SessionRecord{ID: "0001", Advertiser: a.ID, Kind: psi.KindEmail, Mode: "exact", ListSize: 200, ServerSize: 1024,
			SnapshotVersion: snapInfo.Version, SnapshotDigest: snapInfo.Digest, BudgetSpent: 200, Result: "ok",
			StartedAt: t0, EndedAt: t0.Add(1500 * time.Millisecond)}
		refused := SessionRecord{ID: "0002", Advertiser: b.ID, Mode: "exact", Result: "refused_min_list_size",
			Detail: "list of 3 identifiers is below the minimum of 100", StartedAt: t0.Add(time.Second), EndedAt: t0.Add(time.Second)}
		// A private-mode session records the privacy budget it spent.
		private := SessionRecord{ID: "0003", Advertiser: a.ID, Kind: psi.KindEmail, Mode: "private", ListSize: 300, ServerSize: 2048,
			SnapshotVersion: snapInfo.Version, SnapshotDigest: snapInfo.Digest, BudgetSpent: 300, EpsilonSpent: 500_000, Result: "ok",
			StartedAt: t0.Add(-time.Second), EndedAt: t0}
		for _, r := range []SessionRecord{ok, refused, private} {
			if err := s.RecordSession(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.RecordSession(ctx, ok); err == nil {
			t.Error("a session id was recorded twice")
		}
		bad := private
		bad.ID, bad.EpsilonSpent = "0004", -1
		if err := s.RecordSession(ctx, bad); err == nil {
			t.Error("a negative privacy spend was recorded")
		}
		all, err := s.Sessions(ctx, 0, 0)
		if err != nil || len(all) != 3 || all[0].ID != "0002" || all[1].ID != "0001" || all[2].ID != "0003" {
			t.Fatalf("Sessions = %+v, %v", all, err)
		}
		if got := all[2]; got.Mode != "private" || got.EpsilonSpent != 500_000 || got.BudgetSpent != 300 {
			t.Errorf("private session recorded as %+v", got)
		}
		if all[0].EpsilonSpent != 0 || all[1].EpsilonSpent != 0 {
			t.Errorf("exact-mode sessions spent ε: %d, %d", all[0].EpsilonSpent, all[1].EpsilonSpent)
		}
		got := all[1]
		if got.AdvertiserName != "acme" || got.SnapshotDigest != snapInfo.Digest || got.SnapshotVersion != snapInfo.Version ||
			!got.EndedAt.Equal(ok.EndedAt) || got.ListSize != 200 || got.Kind != psi.KindEmail {
			t.Errorf("recorded %+v", got)
		}
		if all[0].SnapshotVersion != 0 || all[0].Detail != refused.Detail {
			t.Errorf("refused session recorded as %+v", all[0])
		}
		if mine, err := s.Sessions(ctx, b.ID, 10); err != nil || len(mine) != 1 || mine[0].ID != "0002" {
			t.Errorf("Sessions(globex) = %+v, %v", mine, err)
		}
		for _, q := range []string{"UPDATE sessions SET result = 'ok'", "DELETE FROM sessions"} {
			if err := rawExec(t, s, q); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: %v, want the append-only trigger", q, err)
			}
		}
		if _, ok := s.(*Postgres); ok {
			for _, tbl := range []string{"sessions", "budget_spend", "budget_refunds"} {
				if err := rawExec(t, s, "TRUNCATE "+tbl); err == nil {
					t.Errorf("TRUNCATE %s succeeded", tbl)
				}
			}
		}
	})
}
