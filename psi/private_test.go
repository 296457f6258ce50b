package psi

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"filippo.io/edwards25519"

	"github.com/overlap-psi/overlap/psi/dp"
	"github.com/overlap-psi/overlap/psi/internal/r255"
	"github.com/overlap-psi/overlap/psi/wire"
)

// unpadded makes a private set of exactly |Y| + R elements, so tests can
// use a few ringers and know the ringer fraction exactly. Production sets
// are padded to a bucket (SPEC.md §10.3).
func unpadded(n int) int { return n }

// preparePrivate encodes a private-mode server set. ringers == 0 means the
// default; size == nil means the bucket of SPEC.md §10.3.
func preparePrivate(t testing.TB, kind Kind, server [][32]byte, ringers int, size func(int) int) *PrivateSet {
	t.Helper()
	// Blocks of 8 elements, so that every test set spans several.
	set, err := NewPrivateSet(PrivateSetConfig{Kind: kind, Ringers: ringers, size: size, blockShift: 3})
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

// fixedNoise is the deterministic test-only sampler: it always returns z.
func fixedNoise(z int64) func(dp.Mechanism) (int64, error) {
	return func(dp.Mechanism) (int64, error) { return z, nil }
}

func runPrivate(t testing.TB, cc PrivateClientConfig, sc PrivateServerConfig, client [][32]byte, set *PrivateSet) (PrivateResult, error) {
	t.Helper()
	c, err := NewPrivateClient(cc, client)
	if err != nil {
		return PrivateResult{}, err
	}
	s, err := NewPrivateServer(sc, set)
	if err != nil {
		return PrivateResult{}, err
	}
	res, err := runLocalPrivate(c, s, nil)
	return res, err
}

// Exact and private mode give the same true count on the same inputs, with
// the noise fixed at 0 by the test-only sampler.
func TestPrivateMatchesExact(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(21, 22))
	cases := []struct {
		client, server, overlap int
		bucket                  bool // pad to the bucket with the default ringers
	}{
		{1, 1, 1, false}, {1, 1, 0, false},
		{50, 50, 50, false},   // Identical sets.
		{40, 60, 0, false},    // Disjoint sets.
		{300, 200, 137, true}, // Default ringers, padded to the bucket.
		{200, 900, 200, true}, // The whole list matches.
		{700, 400, 55, false}, // Several chunks each way.
		{rng.IntN(400) + 1, rng.IntN(400) + 1, 0, false},
	}
	cases[len(cases)-1].overlap = rng.IntN(min(cases[len(cases)-1].client, cases[len(cases)-1].server) + 1)
	for _, tc := range cases {
		client, server := sets(rng, tc.client, tc.server, tc.overlap)
		exact, err := run(t, ClientConfig{Kind: KindEmail}, ServerConfig{}, client, prepare(t, KindEmail, server), nil)
		if err != nil {
			t.Fatal(err)
		}
		ringers, size := 16, unpadded
		if tc.bucket {
			ringers, size = 0, nil
		}
		res, err := runPrivate(t, PrivateClientConfig{Kind: KindEmail},
			PrivateServerConfig{Threshold: 1, ChunkSize: 1 + rng.IntN(300), noise: fixedNoise(0)},
			client, preparePrivate(t, KindEmail, server, ringers, size))
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if exact.Overlap != tc.overlap || res.Count != exact.Overlap || res.Below != (exact.Overlap == 0) {
			t.Errorf("%+v: exact %d, private %d (below %v), want %d", tc, exact.Overlap, res.Count, res.Below, tc.overlap)
		}
		wantN := tc.server + 16
		if tc.bucket {
			wantN = int(Bucket(uint64(tc.server + DefaultRingers)))
		}
		if res.ServerSize != wantN || res.ClientSize != tc.client {
			t.Errorf("%+v: sizes n=%d N=%d, want %d and %d", tc, res.ClientSize, res.ServerSize, tc.client, wantN)
		}
	}
}

// The noise is added, clamped to [0, n], thresholded, and the interval is
// the mechanism's (SPEC.md §10.6; ε = 1/2 gives w = 6).
func TestPrivateRelease(t *testing.T) {
	client, server := sets(mrand.New(mrand.NewPCG(23, 24)), 200, 200, 150)
	for _, tc := range []struct {
		noise      int64
		below      bool
		count      int
		low, high  int
		threshold  uint32
		mechanism  dp.Mechanism
		wantString string
	}{
		{noise: 5, count: 155, low: 149, high: 161, wantString: "155 (95% interval 149–161; discrete Laplace (ε = 1/2, δ = 0, Δ = 1, scale 2))"},
		{noise: -7, count: 143, low: 137, high: 149},
		{noise: 48, count: 198, low: 192, high: 200},   // Interval clamped at n.
		{noise: 1000, count: 200, low: 194, high: 200}, // Count clamped at n.
		{noise: -51, below: true, low: 0, high: 105, wantString: "under 100 (95% interval 0–105; discrete Laplace (ε = 1/2, δ = 0, Δ = 1, scale 2))"},
		{noise: -1000, below: true, low: 0, high: 105}, // Clamped at 0, then below.
		{noise: 0, below: true, low: 0, high: 200, threshold: 196},
		{noise: 0, count: 150, low: 147, high: 153, mechanism: must(dp.NewDiscreteLaplace(big.NewRat(1, 1), 1))},
	} {
		res, err := runPrivate(t, PrivateClientConfig{Kind: KindEmail},
			PrivateServerConfig{noise: fixedNoise(tc.noise), Threshold: tc.threshold, Mechanism: tc.mechanism},
			client, preparePrivate(t, KindEmail, server, 8, unpadded))
		if err != nil {
			t.Fatal(err)
		}
		if res.Below != tc.below || res.Count != tc.count || res.Low != tc.low || res.High != tc.high {
			t.Errorf("noise %+d: got %+v, want below=%v count=%d [%d, %d]", tc.noise, res, tc.below, tc.count, tc.low, tc.high)
		}
		if tc.wantString != "" && res.String() != tc.wantString {
			t.Errorf("noise %+d: %q, want %q", tc.noise, res.String(), tc.wantString)
		}
	}
}

// With the exact sampler, the released count lands near the true count:
// |Z| > 40 has probability 2e^-20/(1+e^-1/2) ≈ 2.6·10^-9.
func TestPrivateReleaseWithRealNoise(t *testing.T) {
	client, server := sets(mrand.New(mrand.NewPCG(25, 26)), 400, 300, 250)
	res, err := runPrivate(t, PrivateClientConfig{Kind: KindPhone}, PrivateServerConfig{},
		client, preparePrivate(t, KindPhone, server, 0, nil))
	if err != nil {
		t.Fatal(err)
	}
	if res.Below || res.Count < 210 || res.Count > 290 || res.High-res.Low != 12 || res.Mechanism != dp.Default() || res.Threshold != 100 {
		t.Fatalf("release %v for a true overlap of 250", res)
	}
}

// Under the threshold the release is the same bytes, but for the session
// id, whatever the true count and the noise: there is no field the noised
// value could be in.
func TestPrivateBelowThresholdRevealsNothing(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(27, 28))
	var first []byte
	var firstRes PrivateResult
	for _, tc := range []struct {
		overlap int
		noise   int64
	}{{0, 0}, {0, 99}, {5, -3}, {50, 40}, {99, 0}, {120, -21}, {30, -100}} {
		client, server := sets(rng, 150, 150, tc.overlap)
		c := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail}, client))
		s := must(NewPrivateServer(PrivateServerConfig{noise: fixedNoise(tc.noise)}, preparePrivate(t, KindEmail, server, 8, unpadded)))
		var release []byte
		res, err := runLocalPrivate(c, s, func(from Sender, b []byte) {
			if wire.Type(b[1]) == wire.TypePrivateRelease {
				release = bytes.Clone(b)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Below || res.Count != 0 {
			t.Fatalf("overlap %d, noise %+d: %+v, want below the threshold", tc.overlap, tc.noise, res)
		}
		clear(release[2:18]) // the session id
		res.SessionID = [16]byte{}
		if first == nil {
			first, firstRes = release, res
			continue
		}
		if !bytes.Equal(release, first) || res != firstRes {
			t.Errorf("overlap %d, noise %+d: release %x / %+v differs from %x / %+v", tc.overlap, tc.noise, release, res, first, firstRes)
		}
	}
}

// deviation rewrites the elements a client returns (N·32 bytes, after its
// honest computation and shuffle). ringers holds the encodings of the
// ringer images A^(r_j), which only the test knows.
type deviation func(rng *mrand.Rand, out []byte, ringers map[[32]byte]bool)

// positions returns k distinct random positions of n, avoiding those for
// which skip is true.
func positions(rng *mrand.Rand, n, k int, skip func(int) bool) []int {
	var out []int
	for _, i := range rng.Perm(n) {
		if len(out) == k {
			break
		}
		if skip == nil || !skip(i) {
			out = append(out, i)
		}
	}
	return out
}

func elemAt(out []byte, i int) []byte { return out[32*i : 32*i+32] }

func raiseTo(b []byte, k *edwards25519.Scalar) []byte {
	e := must(r255.NewElement().SetCanonicalBytes(b))
	return e.ScalarMult(k, e).Bytes()
}

func randomScalar(rng *mrand.Rand) *edwards25519.Scalar {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	return must(r255.RandomScalar(mrand.NewChaCha8(seed)))
}

func isRinger(out []byte, ringers map[[32]byte]bool) func(int) bool {
	return func(i int) bool { return ringers[[32]byte(elemAt(out, i))] }
}

var deviations = map[string]struct {
	dev  deviation
	want error
}{
	// A second exponent for half of the server's elements.
	"second exponent on half": {func(rng *mrand.Rand, out []byte, _ map[[32]byte]bool) {
		k := randomScalar(rng)
		n := len(out) / 32
		for _, i := range positions(rng, n, n/2, nil) {
			copy(elemAt(out, i), raiseTo(elemAt(out, i), k))
		}
	}, ErrDeviation},
	// Half of the elements replaced by duplicates of others under a second
	// exponent, so that no two returned elements are equal.
	"disguised duplicates of half": {func(rng *mrand.Rand, out []byte, _ map[[32]byte]bool) {
		k := randomScalar(rng)
		n := len(out) / 32
		p := positions(rng, n, n, nil)
		for j, i := range p[:n/2] {
			copy(elemAt(out, i), raiseTo(elemAt(out, p[n/2+j]), k))
		}
	}, ErrDeviation},
	// Plain duplicates are caught before the ringers are looked at.
	"plain duplicates": {func(rng *mrand.Rand, out []byte, _ map[[32]byte]bool) {
		n := len(out) / 32
		p := positions(rng, n, 4, nil)
		copy(elemAt(out, p[0]), elemAt(out, p[1]))
		copy(elemAt(out, p[2]), elemAt(out, p[3]))
	}, ErrPeer},
	// Half of the elements dropped and replaced with fresh random elements.
	"half dropped for random elements": {func(rng *mrand.Rand, out []byte, _ map[[32]byte]bool) {
		h := r255.NewHasher([]byte("test-random"))
		n := len(out) / 32
		for _, i := range positions(rng, n, n/2, nil) {
			copy(elemAt(out, i), h.Hash(r255.NewElement(), []byte(fmt.Sprint(rng.Uint64()))).Bytes())
		}
	}, ErrDeviation},
	// A deviation on exactly one ringer, which the test knows: caught with
	// certainty, because every ringer is checked.
	"second exponent on one ringer": {func(rng *mrand.Rand, out []byte, ringers map[[32]byte]bool) {
		n := len(out) / 32
		isR := isRinger(out, ringers)
		i := positions(rng, n, 1, func(i int) bool { return !isR(i) })[0]
		copy(elemAt(out, i), raiseTo(elemAt(out, i), randomScalar(rng)))
	}, ErrDeviation},
	// The control: the same deviation on real elements only, which a real
	// client cannot target, passes the ringer check.
	"control: second exponent on real elements only": {func(rng *mrand.Rand, out []byte, ringers map[[32]byte]bool) {
		k := randomScalar(rng)
		for _, i := range positions(rng, len(out)/32, 3, isRinger(out, ringers)) {
			copy(elemAt(out, i), raiseTo(elemAt(out, i), k))
		}
	}, nil},
}

// deviate plays a private-mode session in which the client returns the
// server's elements rewritten by dev, and returns the server's verdict.
func deviate(t *testing.T, rng *mrand.Rand, client, server [][32]byte, dev deviation) error {
	t.Helper()
	set := preparePrivate(t, KindEmail, server, len(server), unpadded) // half the elements are ringers
	ringerKeys := make([]edwards25519.Scalar, len(set.ringers))
	for j := range set.ringers { // the test plays the server and knows them
		ringerKeys[j].Set(set.ringers[j].s1.k)
	}
	c := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail}, client))
	s := must(NewPrivateServer(PrivateServerConfig{ChunkSize: 7, noise: fixedNoise(0)}, set))
	if err := c.ReceiveParams(must(s.ReceiveHello(c.Hello()))); err != nil {
		t.Fatal(err)
	}
	return deviateAfterHello(t, rng, c, s, ringerKeys, dev)
}

// deviateAfterHello plays the rest of a deviating session, from the
// server's elements on; ringerKeys are the set's ringer keys.
func deviateAfterHello(t *testing.T, rng *mrand.Rand, c *PrivateClient, s *PrivateServer, ringerKeys []edwards25519.Scalar, dev deviation) error {
	t.Helper()
	for {
		ch, ok, err := s.NextServerElements()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if err := c.ReceiveServerElements(ch); err != nil {
			t.Fatal(err)
		}
	}
	// The ringer images A^(r_j), as the test computes them from a and r_j.
	ringers := map[[32]byte]bool{}
	for j := range ringerKeys {
		e := r255.NewElement().ScalarBaseMult(&ringerKeys[j])
		ringers[[32]byte(e.ScalarMult(c.key.s1.k, e).Bytes())] = true
	}
	if len(ringers) != len(ringerKeys) {
		t.Fatalf("%d ringer images, want %d", len(ringers), len(ringerKeys))
	}
	dev(rng, c.out, ringers)
	if err := s.ReceiveClientKey(must(c.ClientKey())); err != nil {
		t.Fatal(err)
	}
	for {
		ch, ok, _ := c.NextBlinded()
		if !ok {
			break
		}
		if err := s.ReceiveBlinded(ch); err != nil {
			t.Fatal(err)
		}
	}
	for {
		ch, ok, _ := c.NextReturned()
		if !ok {
			break
		}
		if err := s.ReceiveReturned(ch); err != nil {
			if _, err2 := s.Release(); err2 == nil {
				t.Fatal("a release after a failed check")
			}
			return err
		}
	}
	_, err := s.Release()
	return err
}

// A client that does not raise every server element to the exponent of its
// key is caught in every run (SPEC.md §10.5). With 16 real elements and 16
// ringers, a deviation on half the elements escapes with probability
// 1/C(32, 16) ≈ 1.7·10^-9 per run; one on a ringer never does.
func TestPrivateDeviationIsCaught(t *testing.T) {
	const runs = 25
	rng := mrand.New(mrand.NewPCG(29, 30))
	for name, d := range deviations {
		for run := range runs {
			client, server := sets(rng, 20, 16, 8)
			err := deviate(t, rng, client, server, d.dev)
			switch {
			case d.want == nil && err != nil:
				t.Fatalf("%s, run %d: %v, want no error", name, run, err)
			case d.want != nil && !errors.Is(err, d.want):
				t.Fatalf("%s, run %d: %v, want %v", name, run, err, d.want)
			case errors.Is(err, ErrDeviation) && !errors.Is(err, ErrPeer):
				t.Fatalf("%s: ErrDeviation without ErrPeer", name)
			}
			if err != nil && strings.Contains(err.Error(), "16") {
				t.Fatalf("%s: the error reveals a ringer count: %v", name, err)
			}
		}
	}
}

// A client that drops elements, or sends more, gets no release.
func TestPrivateWrongNumberOfReturnedElements(t *testing.T) {
	client, server := sets(mrand.New(mrand.NewPCG(31, 32)), 10, 10, 5)
	start := func() (*PrivateClient, *PrivateServer) {
		c := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail}, client))
		s := must(NewPrivateServer(PrivateServerConfig{noise: fixedNoise(0)}, preparePrivate(t, KindEmail, server, 6, unpadded)))
		c.ReceiveParams(must(s.ReceiveHello(c.Hello())))
		c.ReceiveServerElements(must2(s.NextServerElements()))
		s.NextServerElements()
		if err := s.ReceiveClientKey(must(c.ClientKey())); err != nil {
			t.Fatal(err)
		}
		if err := s.ReceiveBlinded(must2(c.NextBlinded())); err != nil {
			t.Fatal(err)
		}
		c.NextBlinded()
		return c, s
	}
	// One element dropped: the server never reaches N and releases nothing.
	c, s := start()
	ch := must2(c.NextReturned())
	ch.Elements = ch.Elements[32:]
	if err := s.ReceiveReturned(ch); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(); !errors.Is(err, ErrState) {
		t.Errorf("release after N−1 returned elements: %v", err)
	}
	// One element too many.
	c, s = start()
	ch = must2(c.NextReturned())
	ch.Elements = append(bytes.Clone(ch.Elements), badElements["identity"]...)
	if err := s.ReceiveReturned(ch); !errors.Is(err, ErrPeer) {
		t.Errorf("N+1 returned elements: %v, want ErrPeer", err)
	}
}

func TestPrivateServerRejectsBadMessages(t *testing.T) {
	client, server := sets(mrand.New(mrand.NewPCG(33, 34)), 6, 10, 3)
	// through plays an honest session up to the step named.
	through := func(step string) (*PrivateClient, *PrivateServer) {
		c := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail}, client))
		s := must(NewPrivateServer(PrivateServerConfig{ChunkSize: 4}, preparePrivate(t, KindEmail, server, 6, unpadded)))
		c.ReceiveParams(must(s.ReceiveHello(c.Hello())))
		for {
			ch, ok, _ := s.NextServerElements()
			if !ok {
				break
			}
			if err := c.ReceiveServerElements(ch); err != nil {
				t.Fatal(err)
			}
		}
		if step == "key" {
			return c, s
		}
		if err := s.ReceiveClientKey(must(c.ClientKey())); err != nil {
			t.Fatal(err)
		}
		if step == "blinded" {
			return c, s
		}
		for {
			ch, ok, _ := c.NextBlinded()
			if !ok {
				break
			}
			if err := s.ReceiveBlinded(ch); err != nil {
				t.Fatal(err)
			}
		}
		return c, s
	}
	for name, bad := range badElements {
		// A bad client key.
		_, s := through("key")
		var k wire.ClientKey
		copy(k.Key[:], bad)
		if err := s.ReceiveClientKey(&k); !errors.Is(err, ErrPeer) {
			t.Errorf("%s client key: %v, want ErrPeer", name, err)
		}
		// A bad blinded identifier.
		c, s := through("blinded")
		ch := must2(c.NextBlinded())
		copy(ch.Elements[32:], bad)
		if err := s.ReceiveBlinded(ch); !errors.Is(err, ErrPeer) {
			t.Errorf("%s blinded element: %v, want ErrPeer", name, err)
		}
		// A bad returned element.
		c, s = through("returned")
		ch = must2(c.NextReturned())
		ch.Elements = bytes.Clone(ch.Elements)
		copy(ch.Elements[32:], bad)
		if err := s.ReceiveReturned(ch); !errors.Is(err, ErrPeer) {
			t.Errorf("%s returned element: %v, want ErrPeer", name, err)
		}
		if _, err := s.Release(); err == nil {
			t.Errorf("%s: a release after a rejection", name)
		}
	}
	// Duplicated blinded identifiers, within and across chunks.
	c, s := through("blinded")
	ch := must2(c.NextBlinded())
	copy(ch.Elements[64:96], ch.Elements[0:32])
	if err := s.ReceiveBlinded(ch); err != nil {
		t.Fatal(err) // found once the whole request is in
	}
	if err := s.ReceiveBlinded(must2(c.NextBlinded())); !errors.Is(err, ErrPeer) {
		t.Errorf("duplicate blinded element: %v, want ErrPeer", err)
	}
	// Chunks out of order, replayed, of the wrong type or over the size.
	for name, edit := range map[string]func(*wire.ElementChunk){
		"skipped chunk": func(ch *wire.ElementChunk) { ch.Seq = 1 },
		"wrong type":    func(ch *wire.ElementChunk) { ch.Type = wire.TypeBlinded },
		"over the size": func(ch *wire.ElementChunk) { ch.Elements = bytes.Repeat(ch.Elements[:32], 5) },
	} {
		c, s := through("returned")
		ch := must2(c.NextReturned())
		edit(ch)
		if err := s.ReceiveReturned(ch); !errors.Is(err, ErrPeer) {
			t.Errorf("returned %s: %v, want ErrPeer", name, err)
		}
	}
	c, s = through("returned")
	ch = must2(c.NextReturned())
	s.ReceiveReturned(ch)
	if err := s.ReceiveReturned(ch); !errors.Is(err, ErrPeer) {
		t.Errorf("replayed returned chunk: %v, want ErrPeer", err)
	}
	// Messages out of protocol order.
	c, s = through("key")
	if err := s.ReceiveBlinded(&wire.ElementChunk{Type: wire.TypeBlinded, Elements: make([]byte, 32)}); !errors.Is(err, ErrState) {
		t.Errorf("blinded before the key: %v, want ErrState", err)
	}
	if _, err := s.ReceiveHello(c.Hello()); !errors.Is(err, ErrState) {
		t.Errorf("second hello: %v, want ErrState", err)
	}
	if _, err := s.Release(); !errors.Is(err, ErrState) {
		t.Errorf("release before the request: %v, want ErrState", err)
	}
}

func TestPrivateServerPolicy(t *testing.T) {
	_, server := sets(mrand.New(mrand.NewPCG(35, 36)), 0, 10, 0)
	cfg := PrivateServerConfig{MinClientSize: 100, MaxClientSize: 1000, CanonVersion: 1}
	for _, tc := range []struct {
		name  string
		hello wire.ClientHello
		want  string
		check string
	}{
		{"exact mode", wire.ClientHello{Mode: wire.ModeExact, Kind: 1, CanonVersion: 1, ClientSize: 500}, "mode exact", CheckMode},
		{"too small", wire.ClientHello{Mode: wire.ModePrivate, Kind: 1, CanonVersion: 1, ClientSize: 99}, "below the minimum of 100", CheckMinListSize},
		{"too large", wire.ClientHello{Mode: wire.ModePrivate, Kind: 1, CanonVersion: 1, ClientSize: 1001}, "above the maximum of 1000", CheckMaxListSize},
		{"wrong canon", wire.ClientHello{Mode: wire.ModePrivate, Kind: 1, CanonVersion: 2, ClientSize: 500}, "canonicalization", CheckCanonicalization},
		{"wrong kind", wire.ClientHello{Mode: wire.ModePrivate, Kind: 2, CanonVersion: 1, ClientSize: 500}, "kind phone", CheckKind},
	} {
		s := must(NewPrivateServer(cfg, preparePrivate(t, KindEmail, server, 4, unpadded)))
		_, err := s.ReceiveHello(&tc.hello)
		var he *HelloError
		if !errors.Is(err, ErrParams) || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &he) || he.Check != tc.check {
			t.Errorf("%s: %v, want ErrParams mentioning %q from check %q", tc.name, err, tc.want, tc.check)
		}
		if s.Disclosed() {
			t.Errorf("%s: a refused session disclosed elements", tc.name)
		}
	}
	// A set serves one session, and only once finished.
	set := preparePrivate(t, KindEmail, server, 4, unpadded)
	must(NewPrivateServer(cfg, set))
	if _, err := NewPrivateServer(cfg, set); !errors.Is(err, ErrUsed) {
		t.Errorf("second session on one set: %v, want ErrUsed", err)
	}
	unfinished := must(NewPrivateSet(PrivateSetConfig{Kind: KindEmail}))
	if _, err := NewPrivateServer(cfg, unfinished); !errors.Is(err, ErrState) {
		t.Errorf("unfinished set: %v, want ErrState", err)
	}
	if _, err := NewPrivateSet(PrivateSetConfig{Kind: KindEmail, Ringers: -1}); err == nil {
		t.Error("negative ringer count accepted")
	}
	// Disclosed turns true with the first server element chunk (SPEC.md §10.8).
	s := must(NewPrivateServer(PrivateServerConfig{}, preparePrivate(t, KindEmail, server, 4, unpadded)))
	must(s.ReceiveHello(&wire.ClientHello{Mode: wire.ModePrivate, Kind: 1, ClientSize: 5}))
	if s.Disclosed() {
		t.Error("disclosed before any element was sent")
	}
	s.NextServerElements()
	if !s.Disclosed() {
		t.Error("not disclosed after an element chunk")
	}
}

func TestPrivateClientRejectsBadMessages(t *testing.T) {
	client, server := sets(mrand.New(mrand.NewPCG(37, 38)), 6, 10, 3)
	start := func() (*PrivateClient, *PrivateServer) {
		c := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail}, client))
		s := must(NewPrivateServer(PrivateServerConfig{noise: fixedNoise(0), Threshold: 1}, preparePrivate(t, KindEmail, server, 6, unpadded)))
		if err := c.ReceiveParams(must(s.ReceiveHello(c.Hello()))); err != nil {
			t.Fatal(err)
		}
		return c, s
	}
	for name, bad := range badElements {
		c, s := start()
		ch := must2(s.NextServerElements())
		ch.Elements = bytes.Clone(ch.Elements)
		copy(ch.Elements[32:], bad)
		if err := c.ReceiveServerElements(ch); !errors.Is(err, ErrPeer) {
			t.Errorf("%s server element: %v, want ErrPeer", name, err)
		}
		if _, err := c.ClientKey(); err == nil {
			t.Errorf("%s: a client key after a rejection", name)
		}
	}
	// A repeated server element, and more elements than announced.
	c, s := start()
	ch := must2(s.NextServerElements())
	ch.Elements = bytes.Clone(ch.Elements)
	copy(ch.Elements[64:96], ch.Elements[0:32])
	if err := c.ReceiveServerElements(ch); !errors.Is(err, ErrPeer) {
		t.Errorf("repeated server element: %v, want ErrPeer", err)
	}
	c, s = start()
	ch = must2(s.NextServerElements())
	ch.Elements = append(bytes.Clone(ch.Elements), ch.Elements[:32]...)
	if err := c.ReceiveServerElements(ch); !errors.Is(err, ErrPeer) {
		t.Errorf("extra server element: %v, want ErrPeer", err)
	}

	// Parameters.
	base := func() wire.PrivateParams {
		return wire.PrivateParams{Mode: wire.ModePrivate, Kind: 1, ClientSize: 6, ServerSize: 1024, ChunkSize: 4096,
			Mechanism: 1, EpsNum: 1, EpsDen: 2, Sensitivity: 1, Threshold: 100}
	}
	for _, tc := range []struct {
		name string
		edit func(*wire.PrivateParams)
	}{
		{"exact mode", func(p *wire.PrivateParams) { p.Mode = wire.ModeExact }},
		{"other kind", func(p *wire.PrivateParams) { p.Kind = 2 }},
		{"wrong echo of the client size", func(p *wire.PrivateParams) { p.ClientSize = 7 }},
		{"server set over the client's limit", func(p *wire.PrivateParams) { p.ServerSize = 1<<20 + 1 }},
		{"unknown mechanism", func(p *wire.PrivateParams) { p.Mechanism = 2 }},
		{"ε not in lowest terms", func(p *wire.PrivateParams) { p.EpsNum, p.EpsDen = 2, 4 }},
		{"ε above 64", func(p *wire.PrivateParams) { p.EpsNum, p.EpsDen = 65, 1 }},
		{"threshold 0", func(p *wire.PrivateParams) { p.Threshold = 0 }},
	} {
		c := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail, MaxServerSize: 1 << 20}, client))
		p := base()
		tc.edit(&p)
		if err := c.ReceiveParams(&p); !errors.Is(err, ErrParams) {
			t.Errorf("%s: %v, want ErrParams", tc.name, err)
		}
	}

	// Releases that do not match the session.
	honest := func() (*PrivateClient, *wire.PrivateRelease) {
		c, s := start()
		for {
			ch, ok, _ := s.NextServerElements()
			if !ok {
				break
			}
			c.ReceiveServerElements(ch)
		}
		s.ReceiveClientKey(must(c.ClientKey()))
		for {
			ch, ok, _ := c.NextBlinded()
			if !ok {
				break
			}
			s.ReceiveBlinded(ch)
		}
		for {
			ch, ok, _ := c.NextReturned()
			if !ok {
				break
			}
			s.ReceiveReturned(ch)
		}
		return c, must(s.Release())
	}
	c, rel := honest()
	if res, err := c.ReceiveRelease(rel); err != nil || res.Count != 3 || res.Low != 0 || res.High != 6 {
		t.Fatalf("honest release: %+v, %v", res, err)
	}
	for _, tc := range []struct {
		name string
		edit func(*wire.PrivateRelease)
	}{
		{"another session", func(r *wire.PrivateRelease) { r.SessionID[0] ^= 1 }},
		{"another ε", func(r *wire.PrivateRelease) { r.EpsNum = 1; r.EpsDen = 3 }},
		{"another threshold", func(r *wire.PrivateRelease) { r.Threshold = 2 }},
		{"count above n", func(r *wire.PrivateRelease) { r.Count, r.High = 7, 6 }},
		{"a narrower interval", func(r *wire.PrivateRelease) { r.Low, r.High = 2, 4 }},
		{"below with a made-up interval", func(r *wire.PrivateRelease) { r.Outcome, r.Count, r.Low, r.High = wire.OutcomeBelow, 0, 0, 1 }},
	} {
		c, rel := honest()
		tc.edit(rel)
		if _, err := c.ReceiveRelease(rel); !errors.Is(err, ErrPeer) {
			t.Errorf("release with %s: %v, want ErrPeer", tc.name, err)
		}
	}
}

// Two sessions over the same inputs share no server element: fresh keys
// and ringers (SECURITY.md, "What every side checks"). The server's elements are
// shuffled, ringers included, and so are the client's.
func TestPrivateSessionsAreFreshAndShuffled(t *testing.T) {
	_, server := sets(mrand.New(mrand.NewPCG(39, 40)), 0, 200, 0)
	a := preparePrivate(t, KindEmail, server, 200, unpadded)
	b := preparePrivate(t, KindEmail, server, 200, unpadded)
	seen := map[[32]byte]bool{}
	for _, e := range a.elems.all() {
		seen[e] = true
	}
	for _, e := range b.elems.all() {
		if seen[e] {
			t.Fatal("an element of session A reappears in session B")
		}
	}
	// Ringers are spread over the set: in each half, about half are
	// ringers (a fixed layout would put all 200 in one half).
	ringers := map[[32]byte]bool{}
	for j := range a.ringers {
		ringers[[32]byte(r255.NewElement().ScalarBaseMult(a.ringers[j].s1.k).Bytes())] = true
	}
	first := 0
	for _, e := range a.elems.all()[:200] {
		if ringers[e] {
			first++
		}
	}
	if len(ringers) != 200 || first < 60 || first > 140 {
		t.Errorf("%d of %d ringers in the first half", first, len(ringers))
	}
	// The client returns the elements in another order than it got them.
	c := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail}, server[:5]))
	s := must(NewPrivateServer(PrivateServerConfig{}, a))
	c.ReceiveParams(must(s.ReceiveHello(c.Hello())))
	var raised []byte
	for {
		ch, ok, _ := s.NextServerElements()
		if !ok {
			break
		}
		for i := range ch.Count() {
			raised = append(raised, raiseTo(ch.Element(i), c.key.s1.k)...)
		}
		c.ReceiveServerElements(ch)
	}
	fixed := 0
	for i := range len(raised) / 32 {
		if bytes.Equal(elemAt(raised, i), elemAt(c.out, i)) {
			fixed++
		}
	}
	if fixed > 10 {
		t.Errorf("%d of 400 returned elements kept their position", fixed)
	}
}

// Keys, counts and noise never print.
func TestPrivateSecretsDoNotPrint(t *testing.T) {
	client, server := sets(mrand.New(mrand.NewPCG(41, 42)), 30, 30, 20)
	set := preparePrivate(t, KindEmail, server, 8, unpadded)
	c := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail}, client))
	const noise = 987_654
	s := must(NewPrivateServer(PrivateServerConfig{noise: fixedNoise(noise)}, set))
	params := must(s.ReceiveHello(c.Hello()))
	c.ReceiveParams(params) // the client draws its key once the suite is known
	secrets := []string{fmt.Sprintf("%x", set.key.s1.k.Bytes()), fmt.Sprintf("%x", c.key.s1.k.Bytes()), fmt.Sprint(c.key.s1.k.Bytes()),
		fmt.Sprintf("%x", set.ringers[0].s1.k.Bytes()), fmt.Sprint(noise), fmt.Sprint(noise + 20)}
	check := func() {
		for _, v := range []any{set, c, s} {
			for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
				out := fmt.Sprintf(format, v)
				for _, k := range secrets {
					if strings.Contains(out, k) {
						t.Fatalf("%s of %T prints a secret: %s", format, v, out)
					}
				}
			}
		}
	}
	check()
	for {
		ch, ok, _ := s.NextServerElements()
		if !ok {
			break
		}
		c.ReceiveServerElements(ch)
	}
	s.ReceiveClientKey(must(c.ClientKey()))
	check()
	for {
		ch, ok, _ := c.NextBlinded()
		if !ok {
			break
		}
		s.ReceiveBlinded(ch)
	}
	for {
		ch, ok, _ := c.NextReturned()
		if !ok {
			break
		}
		if err := s.ReceiveReturned(ch); err != nil {
			t.Fatal(err)
		}
	}
	check() // the release is computed and waiting
}

// A private-mode session with both roles in one process, over a Pipe; a
// service runs the same Run and Serve over its network stream.
func ExamplePrivateClient_Run() {
	var list, users [][32]byte
	for i := range 500 {
		list = append(list, digest(fmt.Sprintf("customer-%d@example.com", i)))
	}
	for i := range 2000 {
		users = append(users, digest(fmt.Sprintf("customer-%d@example.com", i+495)))
	}
	// The platform prepares a single-use encoding of its set with ringers.
	set, _ := NewPrivateSet(PrivateSetConfig{Kind: KindEmail})
	for _, d := range users {
		set.Add(d)
	}
	set.Finish()
	server, _ := NewPrivateServer(PrivateServerConfig{}, set)
	defer server.Close()
	client, _ := NewPrivateClient(PrivateClientConfig{Kind: KindEmail}, list)
	defer client.Close()

	cc, sc := Pipe()
	go func() {
		// The platform reads the hello, checks its policy, then serves.
		hello, err := RecvHello(sc)
		if err == nil {
			err = server.Serve(sc, hello, nil)
		}
		if err != nil {
			sc.Close()
			return
		}
		sc.CloseSend()
	}()
	res, err := client.Run(cc, nil)
	if err != nil {
		panic(err)
	}
	// 5 identifiers overlap: the noised count is below the threshold of
	// 100, and only that is released.
	fmt.Println(res.Below, res.Count, res.Threshold, res.ServerSize)
	// Output: true 0 100 3072
}
