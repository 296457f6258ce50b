package service

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

// personPhone returns the i-th synthetic phone number, canonical (E.164), and
// its digest.
func personPhone(i int) (string, [32]byte) {
	v := fmt.Sprintf("+1415555%04d", i)
	return v, sha256.Sum256([]byte(v))
}

// seedPersons opens a store of n subjects, each with email i (signup) and
// phone i (profile, but two-factor only for i < 100), all granted; the
// subjects from withdrawn on withdraw their consent.
func seedPersons(t testing.TB, n, withdrawn int) store.Store {
	t.Helper()
	st := seedStore(t, 0)
	_, err := st.ImportIdentifiers(t.Context(), func(yield func(store.Identifier) bool) {
		for i := range n {
			e, ed := email(i)
			p, pd := personPhone(i)
			purpose := store.Profile
			if i < 100 {
				purpose = store.TwoFactor
			}
			if !yield(store.Identifier{Subject: fmt.Sprint("u", i), Kind: psi.KindEmail, Value: e, Digest: ed, CollectedFor: store.Signup}) ||
				!yield(store.Identifier{Subject: fmt.Sprint("u", i), Kind: psi.KindPhone, Value: p, Digest: pd, CollectedFor: purpose}) {
				return
			}
		}
	}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = st.AppendConsent(t.Context(), func(yield func(store.ConsentEvent) bool) {
		for i := range n {
			if !yield(store.ConsentEvent{Subject: fmt.Sprint("u", i), Purpose: store.AdMatching, Granted: true, At: at, Source: "test", TextVersion: "v1"}) {
				return
			}
			if i >= withdrawn && !yield(store.ConsentEvent{Subject: fmt.Sprint("u", i), Purpose: store.AdMatching, At: at.Add(time.Hour), Source: "test"}) {
				return
			}
		}
	}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Record sessions through the real service (SPEC.md §13): mode 5 counts
// customers exactly, mode 6 releases a noised count of customers with the
// person-level sensitivity; both charge the identifier budget n·s, record
// the kinds, s and the snapshot of each kind, and follow the advertiser's
// exact and private modes.
func TestRecordSessions(t *testing.T) {
	t.Parallel()
	ts := startServer(t, seedPersons(t, 600, 500), nil)
	both := ts.addAdvertiser(t, "acme", store.Policy{Modes: store.ModesExact | store.ModesPrivate})
	c := ts.client(t, both)

	// Customers 300..899: an email each, a phone for the even ones. The
	// platform's matchable set: the emails of subjects 0..499 and their
	// phones but those of 0..99 (two-factor only).
	var records [][]psi.RecordID
	want := 0
	for i := 300; i < 900; i++ {
		_, ed := email(i)
		rec := []psi.RecordID{{Kind: psi.KindEmail, Digest: ed}}
		if i%2 == 0 {
			_, pd := personPhone(i)
			rec = append(rec, psi.RecordID{Kind: psi.KindPhone, Digest: pd})
		}
		records = append(records, rec)
		if i < 500 {
			want++
		}
	}
	kinds := wire.KindSetOf(psi.KindEmail, psi.KindPhone)
	req := client.MatchRequest{Records: records, RecordsConfig: psi.RecordsConfig{Kinds: kinds, Slots: 2}}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	res, err := c.Match(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Overlap != want || res.ClientSize != 600 || res.Slots != 2 {
		t.Errorf("exact: %d of %d customers in %d slots, want %d of 600 in 2", res.Overlap, res.ClientSize, res.Slots, want)
	}
	if len(res.Snapshots) != 2 || res.Snapshots[0].Kind != psi.KindEmail || res.Snapshots[1].Kind != psi.KindPhone ||
		res.Snapshot.Version != res.Snapshots[0].Version || res.Snapshot.Digest != res.Snapshots[0].Digest {
		t.Fatalf("snapshots %+v, snapshot %+v", res.Snapshots, res.Snapshot)
	}
	for _, s := range res.Snapshots {
		latest, err := ts.st.Snapshots(t.Context(), s.Kind, 1)
		if err != nil || len(latest) != 1 || latest[0].Version != s.Version || latest[0].Digest != s.Digest {
			t.Errorf("%v: the client saw snapshot %+v, the store has %+v (%v)", s.Kind, s, latest, err)
		}
	}
	rec := ts.lastSession(t, 1)
	if rec.Result != ResultOK || rec.Mode != "exact-records" || rec.Kinds != kinds || rec.Slots != 2 || rec.ListSize != 600 ||
		rec.BudgetSpent != 1200 || len(rec.Snapshots) != 2 || rec.Snapshots[1].Version != res.Snapshots[1].Version || rec.Kind != psi.KindEmail {
		t.Errorf("exact audit row %+v", rec)
	}

	priv, err := c.MatchPrivate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	r := priv.Result
	// Discrete Laplace of scale 4 (ε = 1/2, Δ = 2): |Z| > 80 has
	// probability about e^-20.
	if r.Mechanism.Sensitivity() != 2 || r.ClientSize != 600 || r.Slots != 2 || r.Below || r.Count < want-80 || r.Count > want+80 || r.High-r.Low > 24 {
		t.Errorf("private: %+v, want about %d with Δ = 2", r, want)
	}
	rec = ts.lastSession(t, 2)
	if rec.Result != ResultOK || rec.Mode != "private-records" || rec.Kinds != kinds || rec.Slots != 2 || rec.BudgetSpent != 1200 ||
		rec.EpsilonSpent != DefaultPolicy().PrivacyCost || len(rec.Snapshots) != 2 {
		t.Errorf("private audit row %+v", rec)
	}

	// An advertiser served exact mode only is refused mode 6, and one
	// served private mode only mode 5, before any work.
	exactOnly := ts.client(t, ts.addAdvertiser(t, "exact-only", store.Policy{Modes: store.ModesExact}))
	if _, err := exactOnly.MatchPrivate(ctx, req); !refusedFor(err, client.LimitMode) {
		t.Errorf("mode 6 for an exact-only advertiser: %v", err)
	}
	if rec := ts.lastSession(t, 3); rec.Result != "refused_mode" || rec.Mode != "private-records" || rec.BudgetSpent != 0 {
		t.Errorf("refusal audit row %+v", rec)
	}
	privateOnly := ts.client(t, ts.addAdvertiser(t, "private-only", store.Policy{Modes: store.ModesPrivate}))
	if _, err := privateOnly.Match(ctx, req); !refusedFor(err, client.LimitMode) {
		t.Errorf("mode 5 for a private-only advertiser: %v", err)
	}
	// Fewer customers than the minimum list size are refused.
	small := client.MatchRequest{Records: records[:50], RecordsConfig: req.RecordsConfig}
	if _, err := c.Match(ctx, small); !refusedFor(err, client.LimitMinListSize) {
		t.Errorf("50 customers: %v", err)
	}
}

func refusedFor(err error, limit string) bool {
	r, ok := client.RefusalOf(err)
	return ok && r.Limit == limit
}
