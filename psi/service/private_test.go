package service

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"filippo.io/edwards25519"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/internal/r255"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

var privateOnly = store.Policy{Modes: store.ModesPrivate}

func matchPrivate(t testing.TB, c *client.Client, digests [][32]byte) (client.PrivateMatchResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	return c.MatchPrivate(ctx, client.MatchRequest{Kind: psi.KindEmail, Digests: digests})
}

// TestPrivateMatch runs private-mode sessions end to end: the advertiser
// gets a noised count near the truth with its interval, the audit row
// records the ε spent and nothing of the count.
func TestPrivateMatch(t *testing.T) {
	st := seedStore(t, 2000)
	ts := startServer(t, st, nil)
	key := ts.addAdvertiser(t, "acme", privateOnly)
	c := ts.client(t, key)

	// 600 of the 1000 are the platform's.
	res, err := matchPrivate(t, c, emails(1400, 2400))
	if err != nil {
		t.Fatal(err)
	}
	r := res.Result
	// The noise is discrete Laplace with scale 2: |Z| > 60 has probability
	// about e^-30.
	if r.Below || r.Count < 540 || r.Count > 660 {
		t.Fatalf("released %v; the true overlap is 600", r)
	}
	if r.Low > r.Count || r.High < r.Count || r.ClientSize != 1000 || r.Threshold != 100 {
		t.Errorf("release %+v is inconsistent", r)
	}
	if r.ServerSize < 2000+psi.DefaultRingers {
		t.Errorf("N = %d, want at least |Y| + R = %d", r.ServerSize, 2000+psi.DefaultRingers)
	}
	if res.Snapshot.Version == 0 || res.SessionID == "" {
		t.Errorf("no snapshot or session id: %+v", res)
	}

	rec := ts.lastSession(t, 1)
	if rec.Mode != "private" || rec.Result != ResultOK || rec.EpsilonSpent != 500_000 || rec.BudgetSpent != 1000 ||
		rec.ServerSize != int64(r.ServerSize) || rec.SnapshotVersion != res.Snapshot.Version {
		t.Errorf("audit row %+v", rec)
	}
	used, err := st.EpsilonUsed(t.Context(), rec.Advertiser, 30*24*time.Hour, time.Now())
	if err != nil || used != 500_000 {
		t.Errorf("ε used = %d, %v; want 500000", used, err)
	}
	// The session's log line names the ε spent; no line carries a count.
	line := grepLines(ts.logs.String(), `"session ended"`)
	if !strings.Contains(line, `"epsilon_spent":"0.5"`) || !strings.Contains(line, `"mode":"private"`) {
		t.Errorf("log line %s", line)
	}
	for _, word := range []string{"count", "overlap", "noise"} {
		if strings.Contains(strings.ToLower(ts.logs.String()), word) {
			t.Errorf("the logs mention %q:\n%s", word, ts.logs.String())
		}
	}

	// GetPolicy tells the advertiser its modes and what is left.
	pol, err := c.Policy(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(pol.Modes, ",") != "private,private-records" || pol.PrivacyBudget != 2_000_000 || pol.PrivacyUsed != 500_000 || pol.PrivacyCost != 500_000 {
		t.Errorf("policy %+v", pol)
	}
}

// TestPrivateBelowThreshold: a small overlap is released as "under T" only.
func TestPrivateBelowThreshold(t *testing.T) {
	st := seedStore(t, 500)
	ts := startServer(t, st, nil)
	c := ts.client(t, ts.addAdvertiser(t, "acme", privateOnly))
	res, err := matchPrivate(t, c, emails(490, 690)) // true overlap 10
	if err != nil {
		t.Fatal(err)
	}
	r := res.Result
	if !r.Below || r.Count != 0 || r.Low != 0 || r.High != 99+6 {
		t.Errorf("release %+v, want below 100 with interval [0, 105]", r)
	}
}

// TestExactAndPrivateAgree: on the same inputs the exact count lies within
// the private release's noise.
func TestExactAndPrivateAgree(t *testing.T) {
	st := seedStore(t, 1500)
	ts := startServer(t, st, nil)
	c := ts.client(t, ts.addAdvertiser(t, "both", store.Policy{Modes: store.ModesExact | store.ModesPrivate}))
	list := emails(1000, 1800) // 500 overlap
	exact, err := match(t, c, list)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := matchPrivate(t, c, list)
	if err != nil {
		t.Fatal(err)
	}
	if exact.Result.Overlap != 500 {
		t.Fatalf("exact overlap %d, want 500", exact.Result.Overlap)
	}
	if d := priv.Result.Count - exact.Result.Overlap; d < -60 || d > 60 {
		t.Errorf("private release %d is far from the exact %d", priv.Result.Count, exact.Result.Overlap)
	}
}

// TestPrivateRefusals: modes an advertiser is not served and an exhausted
// privacy budget are refused before any work, and cost nothing.
func TestPrivateRefusals(t *testing.T) {
	st := seedStore(t, 300)
	ts := startServer(t, st, nil)
	exactOnly := ts.client(t, ts.addAdvertiser(t, "exact-only", store.Policy{Modes: store.ModesExact}))
	privOnly := ts.client(t, ts.addAdvertiser(t, "private-only", privateOnly))
	small := ts.client(t, ts.addAdvertiser(t, "small", store.Policy{Modes: store.ModesPrivate, PrivacyBudget: 1_000_000}))
	list := emails(0, 200)

	wantRefusal := func(err error, limit string) {
		t.Helper()
		r, ok := client.RefusalOf(err)
		if !ok || r.Limit != limit {
			t.Fatalf("err = %v, want a %s refusal", err, limit)
		}
	}
	_, err := matchPrivate(t, exactOnly, list)
	wantRefusal(err, client.LimitMode)
	_, err = match(t, privOnly, list)
	wantRefusal(err, client.LimitMode)
	if !strings.Contains(err.Error(), "exact mode is not served") {
		t.Errorf("refusal %q does not say which mode", err)
	}

	for range 2 {
		if _, err := matchPrivate(t, small, list); err != nil {
			t.Fatal(err)
		}
	}
	_, err = matchPrivate(t, small, list)
	wantRefusal(err, client.LimitPrivacyBudget)
	r, _ := client.RefusalOf(err)
	if r.ResetsAt.Before(time.Now().Add(29 * 24 * time.Hour)) {
		t.Errorf("resets at %v, want about 30 days from now", r.ResetsAt)
	}
	if connect.CodeOf(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "privacy budget") {
		t.Errorf("err = %v", err)
	}
	rec := ts.lastSession(t, 5)
	if rec.Result != "refused_"+client.LimitPrivacyBudget || rec.EpsilonSpent != 0 || rec.BudgetSpent != 0 || rec.SnapshotVersion != 0 {
		t.Errorf("refused session's audit row %+v", rec)
	}
	if used, _ := st.EpsilonUsed(t.Context(), rec.Advertiser, 30*24*time.Hour, time.Now()); used != 1_000_000 {
		t.Errorf("ε used = %d after the refusal, want 1000000", used)
	}
}

// rawPrivate opens a private-mode session by hand and returns the server's
// elements, for tests that play a modified client.
func rawPrivate(t *testing.T, c *client.Client, ctx context.Context, n int) (*rawSession, wire.PrivateParams, [][32]byte) {
	t.Helper()
	r := raw(c, ctx)
	t.Cleanup(r.abort)
	h, _ := (&wire.ClientHello{Mode: wire.ModePrivate, Kind: psi.KindEmail, CanonVersion: ident.Version, ClientSize: uint32(n)}).MarshalBinary()
	if err := r.send(h); err != nil {
		t.Fatal(err)
	}
	m, err := r.st.Receive()
	if err != nil {
		t.Fatal(err)
	}
	var p wire.PrivateParams
	if err := p.UnmarshalBinary(m.Frame); err != nil {
		t.Fatal(err)
	}
	var elems [][32]byte
	for len(elems) < int(p.ServerSize) {
		m, err := r.st.Receive()
		if err != nil {
			t.Fatal(err)
		}
		var ch wire.ElementChunk
		if err := ch.UnmarshalBinary(m.Frame, wire.TypeServerElements); err != nil {
			t.Fatal(err)
		}
		for i := range ch.Count() {
			elems = append(elems, [32]byte(ch.Element(i)))
		}
	}
	return r, p, elems
}

func randomScalar(t *testing.T) *edwards25519.Scalar {
	var b [64]byte
	rand.Read(b[:])
	s, err := edwards25519.NewScalar().SetUniformBytes(b[:])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPrivateDeviation plays a modified client that raises part of the
// server's elements to a second exponent: the ringer check catches it, the
// session releases nothing, is audited as a deviation and keeps its budget.
func TestPrivateDeviation(t *testing.T) {
	st := seedStore(t, 500)
	ts := startServer(t, st, nil)
	c := ts.client(t, ts.addAdvertiser(t, "mallory", privateOnly))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const n = 200
	r, p, elems := rawPrivate(t, c, ctx, n)

	a, a2 := randomScalar(t), randomScalar(t)
	e := r255.NewElement()
	raise := func(k *edwards25519.Scalar, in []byte) []byte {
		if _, err := e.SetCanonicalBytes(in); err != nil {
			t.Fatal(err)
		}
		return e.ScalarMult(k, e).AppendBytes(nil)
	}
	key := wire.ClientKey{}
	copy(key.Key[:], r255.NewElement().ScalarBaseMult(a).Bytes())
	kb, _ := key.MarshalBinary()
	if err := r.send(kb); err != nil {
		t.Fatal(err)
	}
	h := r255.NewHasher(psi.DST(psi.KindEmail))
	var blinded []byte
	for _, d := range emails(0, n) {
		h.Hash(e, d[:])
		blinded = append(blinded, e.ScalarMult(a, e).AppendBytes(nil)...)
	}
	if err := r.send(chunk(0, blinded)); err != nil {
		t.Fatal(err)
	}
	// A tenth of the elements under the second exponent.
	var returned []byte
	for i, el := range elems {
		k := a
		if i%10 == 0 {
			k = a2
		}
		returned = append(returned, raise(k, el[:])...)
	}
	for seq, off := uint32(0), 0; off < len(returned); seq++ {
		end := min(off+int(p.ChunkSize)*wire.ElementSize, len(returned))
		b, _ := (&wire.ElementChunk{Type: wire.TypeReturned, Seq: seq, Elements: returned[off:end]}).MarshalBinary()
		if err := r.send(b); err != nil {
			break // the server may end the stream at the first bad chunk
		}
		off = end
	}
	err := r.finish()
	if err == nil || !strings.Contains(err.Error(), "ringer check") {
		t.Fatalf("err = %v, want the ringer check to fail", err)
	}
	rec := ts.lastSession(t, 1)
	if rec.Result != ResultDeviation || rec.EpsilonSpent != 500_000 {
		t.Errorf("audit row %+v, want a deviation that spent ε 0.5", rec)
	}
	if used, _ := st.EpsilonUsed(t.Context(), rec.Advertiser, 30*24*time.Hour, time.Now()); used != 500_000 {
		t.Errorf("ε used = %d, want the deviation's 500000 kept", used)
	}
}

// TestPrivateSessionsShareNothing: two sessions over the same set send no
// element in common (each is under its own key, with its own ringers).
func TestPrivateSessionsShareNothing(t *testing.T) {
	st := seedStore(t, 300)
	ts := startServer(t, st, nil)
	c := ts.client(t, ts.addAdvertiser(t, "acme", privateOnly))
	seen := map[[32]byte]bool{}
	for i := range 2 {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		r, _, elems := rawPrivate(t, c, ctx, 150)
		for _, e := range elems {
			if seen[e] {
				t.Fatal("two sessions sent the same element")
			}
			seen[e] = true
		}
		r.abort()
		cancel()
		ts.lastSession(t, i+1) // one session in flight per advertiser
	}
}

// failingSource fails every snapshot read: a session that fails before it
// sent anything derived from the set.
type failingSource struct{}

var errSource = errors.New("test: the set source is down")

func (failingSource) Snapshot(context.Context, psi.Kind, func([32]byte) error) (store.SnapshotInfo, error) {
	return store.SnapshotInfo{}, errSource
}

func (failingSource) SnapshotPerSubject(context.Context, psi.Kind, int, func([32]byte) error) (store.SnapshotInfo, error) {
	return store.SnapshotInfo{}, errSource
}

// TestPrivateRefund: a session that fails before the server sent any
// element is refunded both budgets.
func TestPrivateRefund(t *testing.T) {
	st := seedStore(t, 300)
	ts := startServer(t, st, func(cfg *Config) { cfg.Sets = failingSource{} })
	c := ts.client(t, ts.addAdvertiser(t, "acme", privateOnly))
	_, err := matchPrivate(t, c, emails(0, 200))
	if connect.CodeOf(err) != connect.CodeInternal {
		t.Fatalf("err = %v, want an internal error", err)
	}
	rec := ts.lastSession(t, 1)
	if rec.Result != ResultInternal || rec.EpsilonSpent != 0 || rec.BudgetSpent != 0 {
		t.Errorf("audit row %+v, want a refunded failure", rec)
	}
	eps, _ := st.EpsilonUsed(t.Context(), rec.Advertiser, 30*24*time.Hour, time.Now())
	ids, _ := st.BudgetUsed(t.Context(), rec.Advertiser, 30*24*time.Hour, time.Now())
	if eps != 0 || ids != 0 {
		t.Errorf("after the refund ε used %d, identifiers used %d; want 0, 0", eps, ids)
	}
	if bytes.Contains([]byte(ts.logs.String()), []byte("budget refund failed")) {
		t.Error(ts.logs.String())
	}
}
