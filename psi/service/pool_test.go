package service

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

func waitPool(t testing.TB, ts *testServer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := ts.WaitPool(ctx); err != nil {
		t.Fatalf("WaitPool: %v", err)
	}
}

func latestSnapshot(t testing.TB, ts *testServer) store.SnapshotInfo {
	t.Helper()
	snaps, err := ts.st.Snapshots(t.Context(), psi.KindEmail, 1)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("Snapshots: %v, %v", snaps, err)
	}
	return snaps[0]
}

func snapshotByVersion(t testing.TB, ts *testServer, v int64) store.SnapshotInfo {
	t.Helper()
	snaps, err := ts.st.Snapshots(t.Context(), psi.KindEmail, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		if s.Version == v {
			return s
		}
	}
	t.Fatalf("no snapshot v%d among %d", v, len(snaps))
	return store.SnapshotInfo{}
}

// A session served from the warm pool counts correctly and records the
// snapshot its set came from. While the store's ledger generation has not
// moved, that is the snapshot the pooled set was built from, and the
// session reads no set; after a change that leaves the set as it was, the
// session reads a fresh snapshot, finds the same digest and records the
// fresh one.
func TestPoolWarmSession(t *testing.T) {
	t.Parallel()
	ts := startServer(t, seedStore(t, 2000), func(c *Config) { c.PoolSize = 1; c.PoolKinds = []psi.Kind{psi.KindEmail} })
	c := ts.client(t, ts.addAdvertiser(t, "acme", store.Policy{}))
	waitPool(t, ts)
	built := latestSnapshot(t, ts) // the snapshot the pooled set was built from

	res, err := match(t, c, emails(1300, 2800))
	if err != nil {
		t.Fatal(err)
	}
	if res.Overlap != 700 || res.ServerSize != int(psi.Bucket(2000)) {
		t.Errorf("overlap %d, bucket %d; want 700, %d", res.Overlap, res.ServerSize, psi.Bucket(2000))
	}
	if res.Snapshot.Version != built.Version || res.Snapshot.Digest != built.Digest {
		t.Errorf("session used snapshot v%d %x, pooled set built from v%d %x; want that one, the ledger being unchanged",
			res.Snapshot.Version, res.Snapshot.Digest[:4], built.Version, built.Digest[:4])
	}
	if got := snapshotByVersion(t, ts, res.Snapshot.Version); got.Digest != res.Snapshot.Digest || got.Size != 2000 {
		t.Errorf("store's snapshot v%d is %+v", res.Snapshot.Version, got)
	}
	rec := ts.lastSession(t, 1)
	if rec.Result != ResultOK || rec.SnapshotVersion != res.Snapshot.Version || rec.SnapshotDigest != res.Snapshot.Digest {
		t.Errorf("audit row %+v", rec)
	}
	if st := ts.PoolStats(); st.Hits != 1 || st.Misses != 0 {
		t.Errorf("pool stats %+v, want 1 hit", st)
	}
	// Phones are not pooled: neither a hit nor a miss.
	if _, err := c.Match(t.Context(), client.MatchRequest{Kind: psi.KindPhone, Digests: emails(0, 200)}); err != nil {
		t.Fatal(err)
	}
	m := httptestGet(t, ts.AdminHandler(), "/metrics")
	for _, want := range []string{"overlap_pool_hits_total 1", "overlap_pool_misses_total 0"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(m, "overlap_pool"))
		}
	}
	// The pool refills after the session.
	waitPool(t, ts)

	// A grant to a subject who had granted already moves the generation
	// but leaves the set as it was.
	refilled := latestSnapshot(t, ts)
	if _, err := ts.st.AppendConsent(t.Context(), slices.Values([]store.ConsentEvent{{Subject: "u1500", Purpose: store.AdMatching,
		Granted: true, At: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), Source: "settings", TextVersion: "v1"}}), store.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err = match(t, c, emails(1300, 2800))
	if err != nil || res.Overlap != 700 {
		t.Fatalf("after a redundant grant: overlap %d, %v; want 700", res.Overlap, err)
	}
	if res.Snapshot.Version <= refilled.Version || res.Snapshot.Digest != built.Digest {
		t.Errorf("session used snapshot v%d %x, pooled set built from v%d; want a fresher one with the same digest",
			res.Snapshot.Version, res.Snapshot.Digest[:4], refilled.Version)
	}
	if got := snapshotByVersion(t, ts, res.Snapshot.Version); got.Generation <= refilled.Generation {
		t.Errorf("fresh snapshot v%d saw generation %d, the pooled set's %d", got.Version, got.Generation, refilled.Generation)
	}
	if st := ts.PoolStats(); st.Hits != 2 || st.Misses != 0 {
		t.Errorf("pool stats %+v, want 2 hits", st)
	}
}

// rawExact runs an exact-mode session with the frames of blinded, as sent
// (so that two sessions can be sent the same elements), and returns the
// parameters, the evaluated elements and the bytes of the set chunks.
func rawExact(t *testing.T, c *client.Client, n int, blinded [][]byte) (wire.ServerParams, [][32]byte, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r, p := openSession(t, c, ctx, n)
	for _, b := range blinded {
		if err := r.send(b); err != nil {
			t.Fatal(err)
		}
	}
	r.st.CloseRequest()
	var evaluated [][32]byte
	var set []byte
	for {
		m, err := r.st.Receive()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		typ, err := wire.PeekType(m.Frame)
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case wire.TypeEvaluated:
			var ch wire.ElementChunk
			if err := ch.UnmarshalBinary(m.Frame, wire.TypeEvaluated); err != nil {
				t.Fatal(err)
			}
			for i := range ch.Count() {
				evaluated = append(evaluated, [32]byte(ch.Element(i)))
			}
		case wire.TypeServerSet:
			var ch wire.SetChunk
			if err := ch.UnmarshalBinary(m.Frame); err != nil {
				t.Fatal(err)
			}
			set = append(set, ch.Data...)
		}
	}
	if len(evaluated) != n {
		t.Fatalf("%d evaluated elements, want %d", len(evaluated), n)
	}
	return p, evaluated, set
}

// Two sessions served from the pool share no key, salt or encoded element:
// the same blinded elements sent to both come back as disjoint sets, and
// their server sets differ.
func TestPoolSessionsShareNothing(t *testing.T) {
	t.Parallel()
	// Suite 1 only: the raw sessions below send 12-byte hellos.
	ts := startServer(t, seedStore(t, 1500), func(c *Config) {
		c.PoolSize, c.PoolKinds, c.Suites = 2, []psi.Kind{psi.KindEmail}, []psi.Suite{psi.Suite1}
	})
	c := ts.client(t, ts.addAdvertiser(t, "acme", store.Policy{}))
	waitPool(t, ts)

	// One set of blinded elements, from a client that saw the parameters
	// of a third session (served cold or warm: it does not matter).
	list := emails(1000, 2000)
	pc, err := psi.NewClient(psi.ClientConfig{Kind: psi.KindEmail, CanonVersion: ident.Version}, list)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	params := wire.ServerParams{Mode: wire.ModeExact, Kind: psi.KindEmail, CanonVersion: ident.Version,
		ClientSize: uint32(len(list)), ServerSize: uint32(psi.Bucket(1500)), ChunkSize: psi.DefaultChunkSize}
	params.GCSM, params.GCSK = 1<<40, 40
	if err := pc.ReceiveParams(&params); err != nil {
		t.Fatal(err)
	}
	var blinded [][]byte
	for {
		ch, ok, err := pc.NextBlinded()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		b, _ := ch.MarshalBinary()
		blinded = append(blinded, b)
	}

	p1, ev1, set1 := rawExact(t, c, len(list), blinded)
	p2, ev2, set2 := rawExact(t, c, len(list), blinded)
	if st := ts.PoolStats(); st.Hits != 2 || st.Misses != 0 {
		t.Fatalf("pool stats %+v, want 2 hits", st)
	}
	if p1.Salt == p2.Salt || p1.SessionID == p2.SessionID {
		t.Error("two pooled sessions have the same salt or session id")
	}
	seen := map[[32]byte]bool{}
	for _, e := range ev1 {
		seen[e] = true
	}
	for _, e := range ev2 {
		if seen[e] {
			t.Fatal("an element evaluated in two sessions came back equal: the sets share a key")
		}
	}
	if len(set1) == 0 || bytes.Equal(set1, set2) {
		t.Error("two pooled sessions sent the same server set")
	}
}

// A consent withdrawal between the fill and the session makes the session
// prepare its set cold from the new snapshot, and count correctly; the
// pool then refills from the new snapshot.
func TestPoolWithdrawalGoesCold(t *testing.T) {
	t.Parallel()
	ts := startServer(t, seedStore(t, 2000), func(c *Config) { c.PoolSize = 1 })
	c := ts.client(t, ts.addAdvertiser(t, "acme", store.Policy{}))
	waitPool(t, ts)
	built := latestSnapshot(t, ts)
	if _, err := ts.st.AppendConsent(t.Context(), slices.Values([]store.ConsentEvent{{Subject: "u1500", Purpose: store.AdMatching,
		At: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), Source: "settings"}}), store.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	list := emails(1300, 2800)
	res, err := match(t, c, list)
	if err != nil || res.Overlap != 699 {
		t.Fatalf("after a withdrawal: overlap %d, %v; want 699", res.Overlap, err)
	}
	if res.Snapshot.Digest == built.Digest {
		t.Error("the session used the superseded snapshot")
	}
	if got := snapshotByVersion(t, ts, res.Snapshot.Version); got.Digest != res.Snapshot.Digest || got.Size != 1999 {
		t.Errorf("store's snapshot v%d is %+v", res.Snapshot.Version, got)
	}
	if st := ts.PoolStats(); st.Hits != 0 || st.Misses != 1 || st.Discarded < 1 {
		t.Errorf("pool stats %+v, want 1 miss and the stale set discarded", st)
	}
	m := httptestGet(t, ts.AdminHandler(), "/metrics")
	for _, want := range []string{"overlap_pool_hits_total 0", "overlap_pool_misses_total 1"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(m, "overlap_pool"))
		}
	}

	// Refilled from the new snapshot: the next session is warm.
	waitPool(t, ts)
	res2, err := match(t, c, list)
	if err != nil || res2.Overlap != 699 || res2.Snapshot.Digest != res.Snapshot.Digest {
		t.Fatalf("second session: overlap %d, %v", res2.Overlap, err)
	}
	if st := ts.PoolStats(); st.Hits != 1 || st.Misses != 1 {
		t.Errorf("pool stats %+v, want 1 hit and 1 miss", st)
	}
}

// countingSource counts the digests a source streams.
type countingSource struct {
	SetSource
	digests atomic.Int64
	reads   atomic.Int64
}

func (c *countingSource) Snapshot(ctx context.Context, kind psi.Kind, fn func([32]byte) error) (store.SnapshotInfo, error) {
	c.reads.Add(1)
	return c.SetSource.Snapshot(ctx, kind, func(d [32]byte) error {
		c.digests.Add(1)
		return fn(d)
	})
}

// Sessions read Config.Sets, not Config.Store, for their sets; Shutdown
// stops the pool and destroys its sets.
func TestPoolSourceAndShutdown(t *testing.T) {
	t.Parallel()
	st := seedStore(t, 500)
	src := &countingSource{SetSource: st}
	ts := startServer(t, st, func(c *Config) {
		c.Sets = src
		c.PoolSize = 2
		c.PoolKinds = []psi.Kind{psi.KindEmail, psi.KindEmail}
	})
	c := ts.client(t, ts.addAdvertiser(t, "acme", store.Policy{}))
	waitPool(t, ts)
	if got := src.reads.Load(); got != 2 {
		t.Errorf("the pool read %d snapshots to fill 2 sets", got)
	}
	if res, err := match(t, c, emails(0, 300)); err != nil || res.Overlap != 300 {
		t.Fatalf("overlap %d, %v", res.Overlap, err)
	}
	if got := src.reads.Load(); got < 3 {
		t.Errorf("the session did not read a fresh snapshot from Config.Sets (%d reads)", got)
	}
	ctxShutdown(t, ts)
	if st := ts.PoolStats(); st.Ready[psi.KindEmail] != 0 || len(st.Ready) != 1 {
		t.Errorf("after Shutdown the pool holds %+v", st)
	}
	if err := ts.WaitPool(t.Context()); err == nil {
		t.Error("WaitPool after Shutdown returned nil")
	}
}

func TestPoolConfig(t *testing.T) {
	st := seedStore(t, 0)
	if _, err := New(Config{Store: st, PoolSize: -1}); err == nil {
		t.Error("negative pool size accepted")
	}
	if _, err := New(Config{Store: st, PoolSize: 1, PoolKinds: []psi.Kind{9}}); err == nil {
		t.Error("unknown pool kind accepted")
	}
	s, err := New(Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.PoolStats().Size != 0 || s.WaitPool(t.Context()) != nil {
		t.Error("a server without a pool reports one")
	}
}
