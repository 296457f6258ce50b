package psi

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi/gcs"
	"github.com/overlap-psi/overlap/psi/wire"
)

var epochNow = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// prepareEpochSet encodes a server set for a setup with r ringers (the
// production count, EpochRingers, is about 10^6 for small sets).
func prepareEpochSet(t testing.TB, kind Kind, server [][32]byte, r int) *PrivateSet {
	t.Helper()
	set, err := NewPrivateSet(PrivateSetConfig{Kind: kind, Epoch: true, blockShift: 3,
		epochRingers: func(int) int { return r }})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range server {
		set.Add(d)
	}
	if err := set.Finish(); err != nil {
		t.Fatal(err)
	}
	return set
}

// setupEpoch runs a whole setup through a Pipe. deviate, if not nil, may
// alter the client's T values after it raised the server's elements, as a
// modified client would.
func setupEpoch(t testing.TB, set *PrivateSet, deviate func(ts []gcs.Uint128)) (*EpochKey, *Epoch, error) {
	t.Helper()
	s, err := NewEpochSetupServer(EpochSetupConfig{ChunkSize: 64, ExpiresAt: epochNow.Add(24 * time.Hour)}, set)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := NewEpochSetupClient(EpochSetupClientConfig{Kind: set.Kind(), Now: func() time.Time { return epochNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var kept *Epoch
	cc, sc := Pipe()
	errc := serveLocal(sc, nil, func(conn Conn, h *wire.ClientHello) error {
		return s.Serve(conn, h, func(e *Epoch) error { kept = e; return nil }, nil)
	})
	var ek *EpochKey
	if deviate == nil {
		ek, err = c.Run(cc, nil)
	} else {
		ek, err = runDeviatingSetup(c, cc, deviate)
	}
	if err != nil {
		cc.Close()
	}
	if serr := <-errc; serr != nil {
		return nil, nil, serr
	}
	return ek, kept, err
}

// runDeviatingSetup is EpochSetupClient.Run with deviate applied to the T
// values before they are sorted and sent.
func runDeviatingSetup(c *EpochSetupClient, conn Conn, deviate func(ts []gcs.Uint128)) (*EpochKey, error) {
	hooked := &Hooks{Progress: func(phase string, done, total int) {
		if phase == "raising" && done == total {
			deviate(c.ts)
			// Sort again, as the client does before sending.
			slices.SortFunc(c.ts, gcs.Uint128.Cmp)
		}
	}}
	return c.Run(conn, hooked)
}

func epochSession(t testing.TB, ek *EpochKey, ep *Epoch, list [][32]byte, sc PrivateServerConfig, now time.Time) (PrivateResult, error) {
	t.Helper()
	return epochSessionWith(t, PrivateClientConfig{Kind: ek.Kind}, ek, ep, list, sc, now)
}

// epochSessionWith is epochSession with the client's configuration cc.
func epochSessionWith(t testing.TB, cfg PrivateClientConfig, ek *EpochKey, ep *Epoch, list [][32]byte, sc PrivateServerConfig, now time.Time) (PrivateResult, error) {
	t.Helper()
	c, err := NewEpochClient(cfg, ek, list)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := NewEpochServer(sc, ep)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cc, pc := Pipe()
	errc := make(chan error, 1)
	go func() {
		hello, err := RecvHello(pc)
		if err == nil {
			var ticket *wire.EpochTicket
			if ticket, err = RecvEpochTicket(pc); err == nil {
				err = s.Serve(pc, hello, ticket, func() time.Time { return now }, nil)
			}
		}
		if err != nil {
			pc.Close()
		} else {
			pc.CloseSend()
		}
		errc <- err
	}()
	res, err := c.Run(cc, nil)
	if err != nil {
		cc.Close()
	}
	if serr := <-errc; serr != nil {
		return PrivateResult{}, serr
	}
	return res, err
}

// exactRelease makes the release carry the true count: no noise and a
// threshold of 1.
func exactRelease() PrivateServerConfig {
	return PrivateServerConfig{Threshold: 1, noise: fixedNoise(0)}
}

// A setup then several sessions of one epoch count exactly what mode 2
// counts, for lists that share the epoch's key; the epoch's stored form
// counts the same.
func TestEpochCountsTheOverlap(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(71, 72))
	_, server := sets(rng, 1, 900, 0)
	ek, ep, err := setupEpoch(t, prepareEpochSet(t, KindEmail, server, 300), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := ep.Meta()
	if m.Size != 900 || m.ServerSize != uint32(Bucket(1200)) || ek.ServerSize != m.ServerSize || ek.ID != m.ID ||
		!m.ExpiresAt.Equal(epochNow.Add(24*time.Hour)) || ek.Public() != m.ClientKey {
		t.Fatalf("epoch %+v, key %v", m, ek)
	}
	// The stored form: Golomb-coded tags, the key, the description.
	var chunks [][]byte
	var counts []int
	if err := ep.EncodeTags(100, func(n int, b []byte) error {
		counts, chunks = append(counts, n), append(chunks, bytes.Clone(b))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stored, err := LoadEpoch(m, ep.ExportKey(), func(add func(int, []byte) error) error {
		for i := range chunks {
			if err := add(counts[i], chunks[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, overlap := range []int{0, 1, 137, 400} {
		list := append([][32]byte{}, server[:overlap]...)
		for i := overlap; i < 400; i++ {
			list = append(list, digest(fmt.Sprintf("not-on-platform-%d", i)))
		}
		for _, e := range []*Epoch{ep, stored} {
			res, err := epochSession(t, ek, e, list, exactRelease(), epochNow)
			if err != nil {
				t.Fatal(err)
			}
			if want := max(overlap, 0); res.Count != want || res.Below != (want < 1) || res.ClientSize != 400 || res.ServerSize != int(m.ServerSize) {
				t.Errorf("overlap %d: release %+v", overlap, res)
			}
		}
	}
}

// An epoch session downloads nothing of the server's set, so the limit on
// N of a mode-2 client (PrivateClientConfig.MaxServerSize) does not apply
// to it: its N must be the epoch's, which the setup accepted under the
// setup's own limit (SPEC.md §10.12.2 step 3). A 10^8 epoch's sessions were
// refused by the default limit of 2^25 before.
func TestEpochSessionLargerThanPrivateLimit(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(73, 74))
	_, server := sets(rng, 1, 900, 0)
	ek, ep, err := setupEpoch(t, prepareEpochSet(t, KindEmail, server, 300), nil)
	if err != nil {
		t.Fatal(err)
	}
	limit := ek.ServerSize / 2
	res, err := epochSessionWith(t, PrivateClientConfig{Kind: KindEmail, MaxServerSize: limit}, ek, ep, server[:200], exactRelease(), epochNow)
	if err != nil || res.Count != 200 {
		t.Fatalf("epoch session of N = %d with a mode-2 limit of %d: %+v, %v; want a count of 200", ek.ServerSize, limit, res, err)
	}
	// The same limit still bounds a mode-2 session.
	c := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail, MaxServerSize: limit}, server[:200]))
	defer c.Close()
	err = c.ReceiveParams(&wire.PrivateParams{Mode: wire.ModePrivate, Kind: KindEmail, ClientSize: 200, ServerSize: ek.ServerSize,
		ChunkSize: 64, Threshold: 1})
	if !errors.Is(err, ErrParams) || !strings.Contains(err.Error(), "limit") {
		t.Errorf("mode-2 client with N = %d above its limit %d: %v", ek.ServerSize, limit, err)
	}
}

// Sessions of one epoch may run concurrently against one Epoch.
func TestEpochConcurrentSessions(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(73, 74))
	client, server := sets(rng, 300, 500, 120)
	ek, ep, err := setupEpoch(t, prepareEpochSet(t, KindPhone, server, 100), nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := epochSession(t, ek, ep, client, exactRelease(), epochNow)
			if err == nil && res.Count != 120 {
				err = fmt.Errorf("count %d, want 120", res.Count)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// A client that does not raise every element to a_E is caught by the
// ringers (SPEC.md §10.12.1 step 5), and nothing is kept.
func TestEpochSetupDeviationIsCaught(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(75, 76))
	_, server := sets(rng, 1, 400, 0)
	for name, deviate := range map[string]func([]gcs.Uint128){
		// Every other element under another exponent: a ringer among them
		// is all but certain (200 ringers of 600).
		"half under another key": func(ts []gcs.Uint128) {
			for i := 0; i < len(ts); i += 2 {
				ts[i] = gcs.Uint128{Hi: rng.Uint64(), Lo: rng.Uint64()}
			}
		},
		// One element dropped and another sent twice: the count stays N.
		"all but one ringer": func(ts []gcs.Uint128) {
			for i := range ts {
				ts[i] = ts[0]
			}
		},
	} {
		_, ep, err := setupEpoch(t, prepareEpochSet(t, KindEmail, server, 200), deviate)
		if !errors.Is(err, ErrDeviation) || !errors.Is(err, ErrPeer) || ep != nil {
			t.Errorf("%s: %v, epoch kept: %v", name, err, ep != nil)
		}
	}
}

// Tickets that name no usable epoch are refused before any work; elements
// under another epoch's key count nothing.
func TestEpochSessionRefusals(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(77, 78))
	client, server := sets(rng, 200, 300, 150)
	ek, ep, err := setupEpoch(t, prepareEpochSet(t, KindEmail, server, 50), nil)
	if err != nil {
		t.Fatal(err)
	}
	ek2, ep2, err := setupEpoch(t, prepareEpochSet(t, KindEmail, server, 50), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := epochSession(t, ek, ep, client, exactRelease(), ep.Meta().ExpiresAt); !errors.Is(err, ErrEpoch) {
		t.Errorf("expired epoch: %v", err)
	}
	if _, err := epochSession(t, ek, ep2, client, exactRelease(), epochNow); !errors.Is(err, ErrEpoch) {
		t.Errorf("ticket for another epoch: %v", err)
	}
	// The right epoch id with another client key.
	forged := *ek2
	forged.ID = ek.ID
	if _, err := epochSession(t, &forged, ep, client, exactRelease(), epochNow); !errors.Is(err, ErrEpoch) {
		t.Errorf("another client key: %v", err)
	}
	// Elements under epoch 2's key, counted against epoch 1 (the ticket
	// check passed with epoch 1's credentials): nothing matches.
	c, err := NewEpochClient(PrivateClientConfig{Kind: KindEmail}, ek, client)
	if err != nil {
		t.Fatal(err)
	}
	c.c.key = ek2.key.clone()
	s, _ := NewEpochServer(exactRelease(), ep)
	cc, pc := Pipe()
	go func() {
		h, _ := RecvHello(pc)
		tk, _ := RecvEpochTicket(pc)
		if s.Serve(pc, h, tk, func() time.Time { return epochNow }, nil) == nil {
			pc.CloseSend()
		}
	}()
	res, err := c.Run(cc, nil)
	if err != nil || !res.Below {
		t.Errorf("elements under another epoch's key: %+v, %v", res, err)
	}
	if res, err := epochSession(t, ek, ep, client, exactRelease(), epochNow); err != nil || res.Count != 150 {
		t.Errorf("the right epoch: %+v, %v", res, err)
	}
}

// The release of an epoch session is the release of SPEC.md §10.6: with
// the exact sampler, count − c is discrete-Laplace with scale Δ/ε = 2
// (variance 2q/(1−q)², q = e^(−1/2), about 7.84).
func TestEpochSessionNoiseIsTheMechanism(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(79, 80))
	client, server := sets(rng, 100, 120, 60)
	ek, ep, err := setupEpoch(t, prepareEpochSet(t, KindEmail, server, 20), nil)
	if err != nil {
		t.Fatal(err)
	}
	const sessions = 300
	var sum, sum2 float64
	for range sessions {
		res, err := epochSession(t, ek, ep, client, PrivateServerConfig{Threshold: 1}, epochNow)
		if err != nil {
			t.Fatal(err)
		}
		z := float64(res.Count - 60)
		sum, sum2 = sum+z, sum2+z*z
	}
	mean, variance := sum/sessions, sum2/sessions-(sum/sessions)*(sum/sessions)
	q := math.Exp(-0.5)
	want := 2 * q / ((1 - q) * (1 - q))
	// Standard errors over 300 draws: mean ±0.16, variance about ±1.2;
	// the bounds are over 4 of them.
	if math.Abs(mean) > 0.65 || math.Abs(variance-want) > 4.8 {
		t.Errorf("noise mean %.2f variance %.2f, want 0 and %.2f", mean, variance, want)
	}
}

// δ_E of SPEC.md §10.12.4 is at most 10^-6 for every set size, with the
// ringer count EpochRingers gives, and the counts the SPEC quotes hold.
func TestEpochRingersBound(t *testing.T) {
	for _, y := range []int{1, 2, 10, 1000, 54321, 1e5, 1e6, 1e7, 3e7, 1e8, 1e9} {
		r := EpochRingers(y)
		n := int(Bucket(uint64(y + r)))
		if d := epochDelta(y, n-y); d > EpochDelta {
			t.Errorf("|Y| = %d: R = %d, N = %d gives δ = %.3g", y, r, n, d)
		}
		// One ringer fewer would not do: R is the least.
		if r > 1 && epochDelta(y, int(Bucket(uint64(y+r-1)))-y) <= EpochDelta*0.99 {
			t.Errorf("|Y| = %d: R = %d is not the least", y, r)
		}
	}
	if n := Bucket(uint64(1e7 + EpochRingers(1e7))); n != 10485760 {
		t.Errorf("N at 10^7 = %d, SPEC.md §10.12.3 says 10,485,760", n)
	}
	// epochDelta against the product computed exactly for a small case.
	y, r := 50, 30
	best := 0.0
	for k := 1; k <= y; k++ {
		p := 1.0
		for i := range k {
			p *= float64(y-i) / float64(y+r-i)
		}
		best = max(best, float64(k)/float64(y)*p)
	}
	if got := epochDelta(y, r); math.Abs(got-best) > 1e-12 {
		t.Errorf("epochDelta(50, 30) = %v, want %v", got, best)
	}
}

// The client's epoch key survives its encoding, and no form of it prints
// the secret.
func TestEpochKeyEncoding(t *testing.T) {
	ek := &EpochKey{ID: [16]byte{1, 2}, Kind: KindEmail, CanonVersion: 1, ServerSize: 4096,
		ExpiresAt: epochNow, key: testKey(Suite1)}
	b, err := ek.MarshalBinary()
	if err != nil || len(b) != EpochKeySize {
		t.Fatal(len(b), err)
	}
	var back EpochKey
	if err := back.UnmarshalBinary(b); err != nil || back.Public() != ek.Public() || back.ID != ek.ID || !back.ExpiresAt.Equal(ek.ExpiresAt) {
		t.Fatalf("round trip: %v %v", back, err)
	}
	secret := fmt.Sprintf("%x", ek.key.bytes())
	for _, s := range []string{ek.String(), fmt.Sprintf("%v %+v %#v %s", ek, ek, ek, ek)} {
		if bytes.Contains([]byte(s), []byte(secret)) || bytes.Contains([]byte(s), []byte(secret[:16])) {
			t.Errorf("the key printed: %s", s)
		}
	}
	for name, bad := range map[string][]byte{
		"short": b[:len(b)-1], "magic": append([]byte("XVLEPK1\x00"), b[8:]...),
		"zero key": append(bytes.Clone(b[:EpochKeySize-32]), make([]byte, 32)...),
		"kind 9":   func() []byte { x := bytes.Clone(b); x[25] = 9; return x }(),
	} {
		if err := new(EpochKey).UnmarshalBinary(bad); err == nil {
			t.Errorf("%s: accepted", name)
		} else if bytes.Contains([]byte(err.Error()), []byte(secret[:16])) {
			t.Errorf("%s: the error prints the key", name)
		}
	}
}

func FuzzEpochKey(f *testing.F) {
	b, _ := (&EpochKey{Kind: KindEmail, ServerSize: 1, ExpiresAt: epochNow, key: testKey(Suite1)}).MarshalBinary()
	f.Add(b)
	f.Add(append([]byte("OVLEPK1\x00"), b[9:]...)) // version 1, suite 1
	b2, _ := (&EpochKey{Kind: KindEmail, ServerSize: 1, ExpiresAt: epochNow, Suite: Suite2, key: testKey(Suite2)}).MarshalBinary()
	f.Add(b2)
	f.Fuzz(func(t *testing.T, b []byte) {
		var k EpochKey
		if k.UnmarshalBinary(b) != nil {
			return
		}
		want := b
		if bytes.HasPrefix(b, []byte("OVLEPK1\x00")) { // re-encoded as version 2
			want = append([]byte("OVLEPK2\x00\x01"), b[8:]...)
		}
		if out, err := k.MarshalBinary(); err != nil || !bytes.Equal(out, want) {
			t.Fatalf("re-encoding differs: %x vs %x", out, b)
		}
	})
}

// A setup client refuses parameters it must not accept (SPEC.md §10.12.8):
// echoes, its limit on N, a tag range or Rice parameter other than the
// protocol's (a small K would make its code huge), and an epoch that has
// already ended.
func TestEpochSetupClientChecksParams(t *testing.T) {
	good := func() *wire.EpochParams {
		gp, _ := epochGCS(4096)
		return &wire.EpochParams{Mode: wire.ModeEpochSetup, Kind: KindEmail, ServerSize: 4096, ChunkSize: 64,
			GCSM: gp.M, GCSK: gp.K, ExpiresAt: uint64(epochNow.Add(time.Hour).Unix())}
	}
	for name, mut := range map[string]func(*wire.EpochParams){
		"mode 2":           func(p *wire.EpochParams) { p.Mode = wire.ModePrivate },
		"kind":             func(p *wire.EpochParams) { p.Kind = KindPhone },
		"canonicalization": func(p *wire.EpochParams) { p.CanonVersion = 9 },
		"N over the limit": func(p *wire.EpochParams) { p.ServerSize = 1 << 29 },
		"M = 2^32":         func(p *wire.EpochParams) { p.GCSM = 1 << 32 },
		"K = 0":            func(p *wire.EpochParams) { p.GCSK = 0 },
		"expired":          func(p *wire.EpochParams) { p.ExpiresAt = uint64(epochNow.Unix()) },
	} {
		c, _ := NewEpochSetupClient(EpochSetupClientConfig{Kind: KindEmail, Now: func() time.Time { return epochNow }})
		p := good()
		mut(p)
		if err := c.ReceiveParams(p); !errors.Is(err, ErrParams) {
			t.Errorf("%s: %v", name, err)
		}
	}
	c, _ := NewEpochSetupClient(EpochSetupClientConfig{Kind: KindEmail, Now: func() time.Time { return epochNow }})
	if err := c.ReceiveParams(good()); err != nil {
		t.Errorf("good parameters: %v", err)
	}
}

// A stored epoch whose tags are cut, unsorted or of the wrong count does
// not load.
func TestLoadEpochRejectsBadTags(t *testing.T) {
	meta := EpochMeta{Kind: KindEmail, ServerSize: 1024, Size: 3, ExpiresAt: epochNow}
	key := [32]byte{7}
	for name, chunks := range map[string][][]byte{
		"unsorted":  {{0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3}},
		"short":     {{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2}},
		"cut chunk": {{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}},
	} {
		_, err := LoadEpoch(meta, key, func(add func(int, []byte) error) error {
			for _, c := range chunks {
				if err := add(max(len(c)/8, 1), c); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	if _, err := LoadEpoch(meta, [32]byte{}, func(func(int, []byte) error) error { return nil }); err == nil {
		t.Error("a zero key loaded")
	}
}

// What epochs tell the platform beyond mode 2 (SPEC.md §10.12.7): within an
// epoch an identifier has the same blinded element in every session, so
// the platform links lists; across epochs (and in mode 2) nothing links.
func TestEpochSessionsAreLinkableWithinAnEpoch(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(81, 82))
	a, _ := sets(rng, 300, 1, 0)
	b := append(append([][32]byte{}, a[:120]...), digest("only-in-b-1"), digest("only-in-b-2"))
	blinded := func(ek *EpochKey, list [][32]byte) map[[32]byte]bool {
		c, err := NewEpochClient(PrivateClientConfig{Kind: KindEmail}, ek, list)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.ReceiveParams(&wire.PrivateParams{Mode: wire.ModeEpochSession, Kind: KindEmail, ClientSize: uint32(c.Size()),
			ServerSize: ek.ServerSize, ChunkSize: 64, Mechanism: 1, EpsNum: 1, EpsDen: 2, Sensitivity: 1, Threshold: 1}); err != nil {
			t.Fatal(err)
		}
		out := map[[32]byte]bool{}
		for {
			ch, ok, err := c.NextBlinded()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return out
			}
			for i := range ch.Count() {
				out[[32]byte(ch.Element(i))] = true
			}
		}
	}
	key := func() *EpochKey {
		return &EpochKey{Kind: KindEmail, ServerSize: 1024, ExpiresAt: epochNow, key: testKey(Suite1)}
	}
	shared := func(x, y map[[32]byte]bool) int {
		n := 0
		for e := range x {
			if y[e] {
				n++
			}
		}
		return n
	}
	e1, e2 := key(), key()
	if n := shared(blinded(e1, a), blinded(e1, b)); n != 120 {
		t.Errorf("two sessions of one epoch share %d blinded elements, want the 120 shared identifiers", n)
	}
	if n := shared(blinded(e1, a), blinded(e2, b)); n != 0 {
		t.Errorf("sessions of two epochs share %d blinded elements, want 0", n)
	}
}
