package service

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/store"
)

// syntheticSource serves the emails e0…e(n−1) as every kind's set, as a
// benchmark's synthetic source does, and records each snapshot it serves
// in the store (store.Store.RecordSnapshot), as SetSource asks.
type syntheticSource struct {
	st store.Store
	n  int
}

func (s syntheticSource) Snapshot(ctx context.Context, kind psi.Kind, fn func([32]byte) error) (store.SnapshotInfo, error) {
	return s.SnapshotPerSubject(ctx, kind, 0, fn)
}

func (s syntheticSource) SnapshotPerSubject(ctx context.Context, kind psi.Kind, maxPerSubject int, fn func([32]byte) error) (store.SnapshotInfo, error) {
	for _, d := range emails(0, s.n) {
		if err := fn(d); err != nil {
			return store.SnapshotInfo{}, err
		}
	}
	return s.st.RecordSnapshot(ctx, store.SnapshotInfo{Kind: kind, TakenAt: time.Now(), Size: int64(s.n),
		Digest: sha256.Sum256([]byte("synthetic")), MaxPerSubject: maxPerSubject})
}

// TestSyntheticSourceBackToBack: with a set source other than the store,
// sessions of one advertiser run one after the other in every mode: each
// is audited against the snapshot the source recorded, and so ends, and
// frees the advertiser's one slot in flight (store.Admission), before the
// client gets its result. (A source whose versions the store did not hold
// failed every audit row, so the second session was refused as in flight.)
func TestSyntheticSourceBackToBack(t *testing.T) {
	st := seedStore(t, 10)
	ts := startServer(t, st, func(c *Config) {
		p := DefaultPolicy()
		p.EpochDelta = 1e-2
		c.Policy, c.Sets = p, syntheticSource{st: st, n: 2000}
	})
	c := ts.client(t, ts.addAdvertiser(t, "acme", store.Policy{Modes: store.ModesExact | store.ModesPrivate | store.ModesEpoch}))
	list := emails(1400, 2400) // 600 in the synthetic set

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for i := range 2 {
		res, err := c.Match(ctx, client.MatchRequest{Kind: psi.KindEmail, Digests: list})
		if err != nil {
			t.Fatalf("exact session %d: %v", i+1, err)
		}
		if res.Result.Overlap != 600 {
			t.Errorf("exact session %d counted %d, want 600", i+1, res.Result.Overlap)
		}
	}
	for i := range 2 {
		if _, err := c.MatchPrivate(ctx, client.MatchRequest{Kind: psi.KindEmail, Digests: list}); err != nil {
			t.Fatalf("private session %d: %v", i+1, err)
		}
	}
	su, err := c.Setup(ctx, client.SetupRequest{Kind: psi.KindEmail})
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	for i := range 2 {
		if _, err := c.MatchEpoch(ctx, su.Key, client.MatchRequest{Kind: psi.KindEmail, Digests: list}); err != nil {
			t.Fatalf("epoch session %d: %v", i+1, err)
		}
	}
	snaps, err := st.Snapshots(ctx, psi.KindEmail, 0)
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[int64]bool{}
	for _, sn := range snaps {
		recorded[sn.Version] = true
	}
	recs := ts.sessions(t)
	if len(recs) != 7 {
		t.Fatalf("%d audit rows, want 7", len(recs))
	}
	for _, r := range recs {
		if r.Result != ResultOK || !recorded[r.SnapshotVersion] {
			t.Errorf("session %s (%s): %s, snapshot %d: %s", r.ID, r.Mode, r.Result, r.SnapshotVersion, r.Detail)
		}
	}
}
