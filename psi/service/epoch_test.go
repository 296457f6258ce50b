package service

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

var epochModes = store.Policy{Modes: store.ModesPrivate | store.ModesEpoch}

// testClock is the real clock, moved forward by add.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// startEpochServer starts a server whose setups use few ringers (δ_E of
// 10^-2 instead of 10^-6: the protocol's count, 10^6 elements for a small
// set, is for the benchmarks) on a settable clock.
func startEpochServer(t *testing.T, st store.Store, setupsPerDay int) (*testServer, *testClock) {
	clock := &testClock{}
	ts := startServer(t, st, func(c *Config) {
		p := DefaultPolicy()
		p.EpochDelta, p.SetupsPerDay = 1e-2, setupsPerDay
		c.Policy, c.now = p, clock.now
	})
	return ts, clock
}

func setup(t *testing.T, c *client.Client) (client.SetupResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	return c.Setup(ctx, client.SetupRequest{Kind: psi.KindEmail})
}

func matchEpoch(t *testing.T, c *client.Client, key *psi.EpochKey, digests [][32]byte) (client.PrivateMatchResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	return c.MatchEpoch(ctx, key, client.MatchRequest{Kind: psi.KindEmail, Digests: digests})
}

// withdraw appends withdrawals of ad matching for subjects u<lo>…u<hi−1>.
func withdraw(t *testing.T, st store.Store, lo, hi int) {
	t.Helper()
	_, err := st.AppendConsent(t.Context(), func(yield func(store.ConsentEvent) bool) {
		for i := lo; i < hi; i++ {
			if !yield(store.ConsentEvent{Subject: fmt.Sprint("u", i), Purpose: store.AdMatching, Granted: false,
				At: time.Now().Add(-time.Minute), Source: "test", TextVersion: "v1"}) {
				return
			}
		}
	}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// TestEpochMatch runs a setup and epoch sessions end to end through the
// service: counts near the truth, audit rows that name the epoch and its
// snapshot, the consent rule of SPEC.md §10.12.6 (a withdrawal counts until
// the epoch ends, and not after a new setup), and an expired epoch refused.
func TestEpochMatch(t *testing.T) {
	st := seedStore(t, 2000)
	ts, clock := startEpochServer(t, st, 4)
	c := ts.client(t, ts.addAdvertiser(t, "acme", epochModes))

	su, err := setup(t, c)
	if err != nil {
		t.Fatal(err)
	}
	key := su.Key
	rec := ts.lastSession(t, 1)
	if rec.Mode != "epoch-setup" || rec.Result != ResultOK || rec.EpochID != hex.EncodeToString(key.ID[:]) ||
		rec.BudgetSpent != 0 || rec.EpsilonSpent != 0 || rec.SnapshotVersion != su.Snapshot.Version || rec.ServerSize != int64(key.ServerSize) ||
		!rec.EpochExpiresAt.Equal(key.ExpiresAt) {
		t.Errorf("setup audit row %+v", rec)
	}
	if d := key.ExpiresAt.Sub(clock.now()); d < 23*time.Hour || d > 24*time.Hour {
		t.Errorf("the epoch ends in %v, want 24h", d)
	}

	list := emails(1400, 2400) // 600 of the 1000 are the platform's
	check := func(sessions int, want int) client.PrivateMatchResult {
		t.Helper()
		res, err := matchEpoch(t, c, key, list)
		if err != nil {
			t.Fatal(err)
		}
		// Discrete Laplace of scale 2: |Z| > 60 has probability about e^-30.
		if r := res.Result; r.Below || r.Count < want-60 || r.Count > want+60 || r.ClientSize != 1000 {
			t.Fatalf("released %v; the true overlap is %d", r, want)
		}
		rec := ts.lastSession(t, sessions)
		if rec.Mode != "epoch-session" || rec.Result != ResultOK || rec.EpochID != hex.EncodeToString(key.ID[:]) ||
			rec.EpsilonSpent != 500_000 || rec.BudgetSpent != 1000 || rec.SnapshotVersion != su.Snapshot.Version ||
			!rec.EpochExpiresAt.Equal(key.ExpiresAt) || res.Snapshot.Version != su.Snapshot.Version {
			t.Errorf("session audit row %+v", rec)
		}
		return res
	}
	first := check(2, 600)
	if first.Traffic.FrameBytesReceived > 200 || first.Traffic.FrameBytesSent > 1000*33+200 {
		t.Errorf("an epoch session moved %d bytes up and %d down: more than its list", first.Traffic.FrameBytesSent, first.Traffic.FrameBytesReceived)
	}

	// 100 of the list's platform users withdraw: the epoch counts its
	// setup's snapshot until it ends (SPEC.md §10.12.6).
	withdraw(t, st, 1400, 1500)
	check(3, 600)

	// After the end of the epoch its ticket is refused, and the expired
	// epoch is deleted.
	clock.add(24 * time.Hour)
	_, err = matchEpoch(t, c, key, list)
	if ref, ok := client.RefusalOf(err); !ok || ref.Limit != client.LimitEpoch {
		t.Fatalf("a session of an expired epoch: %v", err)
	}
	ts.expireEpochs(t.Context())
	if eps, err := st.Epochs(t.Context(), 0); err != nil || len(eps) != 0 {
		t.Errorf("after expiry the store holds %d epochs (%v)", len(eps), err)
	}
	// A new setup counts the withdrawals.
	su2, err := setup(t, c)
	if err != nil {
		t.Fatal(err)
	}
	key, su = su2.Key, su2
	check(6, 500)
}

// TestEpochRefusals: a mode not served, the setup limit, another
// advertiser's epoch and a forged key are refused before any work, and
// audited.
func TestEpochRefusals(t *testing.T) {
	st := seedStore(t, 300)
	ts, _ := startEpochServer(t, st, 1)
	a := ts.client(t, ts.addAdvertiser(t, "a", epochModes))
	b := ts.client(t, ts.addAdvertiser(t, "b", epochModes))
	p := ts.client(t, ts.addAdvertiser(t, "p", privateOnly))

	if _, err := setup(t, p); !isRefusal(err, client.LimitMode) {
		t.Errorf("setup without epoch mode: %v", err)
	}
	su, err := setup(t, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setup(t, a); !isRefusal(err, client.LimitEpochSetups) {
		t.Errorf("a second setup in a day with a limit of 1: %v", err)
	}
	if rec := ts.lastSession(t, 3); rec.Result != "refused_"+client.LimitEpochSetups {
		t.Errorf("audit row %+v", rec)
	}
	list := emails(100, 400)
	if _, err := matchEpoch(t, b, su.Key, list); !isRefusal(err, client.LimitEpoch) {
		t.Errorf("advertiser b with a's epoch: %v", err)
	}
	// The right epoch id with another client key.
	other, err := setup(t, b)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := su.Key.MarshalBinary()
	good, _ := other.Key.MarshalBinary()
	copy(forged[len(forged)-32:], good[len(good)-32:])
	var fk psi.EpochKey
	if err := fk.UnmarshalBinary(forged); err != nil {
		t.Fatal(err)
	}
	if _, err := matchEpoch(t, a, &fk, list); !isRefusal(err, client.LimitEpoch) {
		t.Errorf("a ticket with another key: %v", err)
	}
	if _, err := matchEpoch(t, a, su.Key, list); err != nil {
		t.Errorf("the right epoch and key: %v", err)
	}
}

func isRefusal(err error, limit string) bool {
	ref, ok := client.RefusalOf(err)
	return ok && ref.Limit == limit
}

// Two concurrent sessions of one advertiser's epoch cannot run at once, so
// they cannot share a reservation or double-spend: while one is admitted,
// the other is refused, and the budget holds exactly the sessions that
// completed.
func TestEpochConcurrentSessionsOfOneAdvertiser(t *testing.T) {
	st := seedStore(t, 300)
	ts, _ := startEpochServer(t, st, 4)
	c := ts.client(t, ts.addAdvertiser(t, "acme", epochModes))
	su, err := setup(t, c)
	if err != nil {
		t.Fatal(err)
	}
	list := emails(100, 400)

	// Session one, admitted and left open.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := raw(c, ctx)
	h, _ := (&wire.ClientHello{Mode: wire.ModeEpochSession, Kind: psi.KindEmail, CanonVersion: ident.Version, ClientSize: 300,
		Suites: wire.SuitesOf(su.Key.Suite)}).MarshalBinary() // the epoch's suite
	tk, _ := (&wire.EpochTicket{Epoch: su.Key.ID, Key: su.Key.Public()}).MarshalBinary()
	if err := r.send(h); err != nil {
		t.Fatal(err)
	}
	if err := r.send(tk); err != nil {
		t.Fatal(err)
	}
	m, err := r.st.Receive()
	if err != nil {
		t.Fatal(err)
	}
	var p wire.PrivateParams
	if err := p.UnmarshalBinary(m.Frame); err != nil || p.Mode != wire.ModeEpochSession || p.ServerSize != su.Key.ServerSize {
		t.Fatalf("params %+v, %v", p, err)
	}
	// Session two, meanwhile.
	if _, err := matchEpoch(t, c, su.Key, list); !isRefusal(err, client.LimitAdvertiserSessions) {
		t.Errorf("a second session while one is open: %v", err)
	}
	r.abort() // session one leaves before its list: refunded
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := matchEpoch(t, c, su.Key, list); err == nil {
			break
		} else if !isRefusal(err, client.LimitAdvertiserSessions) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	used, err := st.EpsilonUsed(t.Context(), ts.lastSession(t, 1).Advertiser, 30*24*time.Hour, time.Now())
	if err != nil || used != 500_000 {
		t.Errorf("ε used %d (%v), want exactly the one completed session's 500000", used, err)
	}
}

// The epoch cache keeps at most its bytes of tags, dropping the least
// recently used epoch, never the one just added.
func TestEpochCacheBound(t *testing.T) {
	mk := func(b byte, size int) *psi.Epoch {
		ep, err := psi.LoadEpoch(psi.EpochMeta{ID: [16]byte{b}, Kind: psi.KindEmail, ServerSize: uint32(size + 1), Size: size,
			ExpiresAt: time.Now().Add(time.Hour)}, [32]byte{7}, func(add func(int, []byte) error) error {
			return add(size, make([]byte, 8*size))
		})
		if err != nil {
			t.Fatal(err)
		}
		return ep
	}
	c := epochCache{max: 8 * 250}
	c.put(mk(1, 100))
	c.put(mk(2, 100))
	c.get([16]byte{1}) // 1 is now the more recently used
	c.put(mk(3, 100))
	if c.get([16]byte{2}) != nil || c.get([16]byte{1}) == nil || c.get([16]byte{3}) == nil || c.bytes != 8*200 {
		t.Errorf("after a third epoch: 1 %v, 2 %v, 3 %v, %d bytes", c.get([16]byte{1}) != nil, c.get([16]byte{2}) != nil, c.get([16]byte{3}) != nil, c.bytes)
	}
	c.put(mk(4, 1000)) // larger than the bound alone: kept, the others go
	if c.get([16]byte{4}) == nil || len(c.epochs) != 1 {
		t.Errorf("a large epoch: %d epochs kept", len(c.epochs))
	}
	c.expire(time.Now().Add(2 * time.Hour))
	if len(c.epochs) != 0 || c.bytes != 0 {
		t.Errorf("after expiry: %d epochs, %d bytes", len(c.epochs), c.bytes)
	}
}
