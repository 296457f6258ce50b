package psi

import (
	"bytes"
	"encoding/hex"
	"errors"
	mrand "math/rand/v2"
	"testing"
	"time"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"

	"github.com/overlap-psi/overlap/psi/internal/c25519"
	"github.com/overlap-psi/overlap/psi/wire"
)

func prepareSuite(t testing.TB, suite Suite, server [][32]byte) *PreparedSet {
	t.Helper()
	set := must(NewSet(SetConfig{Kind: KindEmail, Suite: suite}))
	for _, d := range server {
		set.Add(d)
	}
	if err := set.Finish(); err != nil {
		t.Fatal(err)
	}
	return set
}

func preparePrivateSuite(t testing.TB, suite Suite, server [][32]byte, epoch bool) *PrivateSet {
	t.Helper()
	cfg := PrivateSetConfig{Kind: KindEmail, Suite: suite, Ringers: 16, blockShift: 3}
	if epoch {
		cfg.Epoch, cfg.epochRingers = true, func(int) int { return 40 }
	}
	set := must(NewPrivateSet(cfg))
	for _, d := range server {
		set.Add(d)
	}
	if err := set.Finish(); err != nil {
		t.Fatal(err)
	}
	return set
}

// Both suites count the overlap exactly in exact mode, whatever the client
// offers as long as it includes the set's suite; the server names the suite
// in its parameters.
func TestSuitesExact(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(121, 122))
	client, server := sets(rng, 300, 700, 123)
	for _, tc := range []struct {
		offer []Suite
		set   Suite
	}{
		{nil, Suite1}, {[]Suite{Suite1}, Suite1}, {[]Suite{Suite2, Suite1}, Suite1},
		{[]Suite{Suite2}, Suite2}, {[]Suite{Suite1, Suite2}, Suite2},
	} {
		c := must(NewClient(ClientConfig{Kind: KindEmail, Suites: tc.offer}, client))
		s := must(NewServer(ServerConfig{ChunkSize: 64}, prepareSuite(t, tc.set, server)))
		res, err := runLocal(c, s, nil)
		if err != nil || res.Overlap != 123 {
			t.Errorf("offer %v, set in suite %v: %+v, %v", tc.offer, tc.set, res, err)
		}
		if c.params.Suite.Or1() != tc.set {
			t.Errorf("offer %v: the server named suite %v, want %v", tc.offer, c.params.Suite, tc.set)
		}
	}
}

// A server refuses a hello that does not offer its set's suite, and a
// client refuses parameters naming a suite it did not offer, both with a
// SuiteError that is an ErrParams.
func TestSuiteRefusals(t *testing.T) {
	client := [][32]byte{digest("a"), digest("b")}
	for _, tc := range []struct {
		offer []Suite
		set   Suite
	}{{nil, Suite2}, {[]Suite{Suite1}, Suite2}, {[]Suite{Suite2}, Suite1}} {
		c := must(NewClient(ClientConfig{Kind: KindEmail, Suites: tc.offer}, client))
		s := must(NewServer(ServerConfig{}, prepareSuite(t, tc.set, client)))
		_, err := s.ReceiveHello(c.Hello())
		var se *SuiteError
		if !errors.As(err, &se) || !errors.Is(err, ErrParams) {
			t.Errorf("offer %v, set in suite %v: %v, want a SuiteError", tc.offer, tc.set, err)
		}
		pc := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail, Suites: tc.offer}, client))
		ps := must(NewPrivateServer(PrivateServerConfig{}, preparePrivateSuite(t, tc.set, client, false)))
		if _, err := ps.ReceiveHello(pc.Hello()); !errors.As(err, &se) {
			t.Errorf("private: offer %v, set in suite %v: %v, want a SuiteError", tc.offer, tc.set, err)
		}
	}
	// The client side: parameters naming a suite not offered.
	c := must(NewClient(ClientConfig{Kind: KindEmail}, client))
	s := must(NewServer(ServerConfig{}, prepareSuite(t, Suite1, client)))
	p := must(s.ReceiveHello(c.Hello()))
	p.Suite = Suite2
	var se *SuiteError
	if err := c.ReceiveParams(p); !errors.As(err, &se) {
		t.Errorf("exact client took a suite it did not offer: %v", err)
	}
	pc := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail, Suites: []Suite{Suite2}}, client))
	ps := must(NewPrivateServer(PrivateServerConfig{}, preparePrivateSuite(t, Suite2, client, false)))
	pp := must(ps.ReceiveHello(pc.Hello()))
	pp.Suite = 0 // suite 1
	if err := pc.ReceiveParams(pp); !errors.As(err, &se) {
		t.Errorf("private client took a suite it did not offer: %v", err)
	}
	// Unknown suites are refused before any message.
	if _, err := NewClient(ClientConfig{Kind: KindEmail, Suites: []Suite{3}}, client); err == nil {
		t.Error("client offering suite 3 made")
	}
	if _, err := NewSet(SetConfig{Kind: KindEmail, Suite: 3}); err == nil {
		t.Error("set in suite 3 made")
	}
	// ChooseSuite follows the server's preference.
	both := wire.SuitesOf(Suite1, Suite2)
	if s, err := ChooseSuite(both, []Suite{Suite2, Suite1}); err != nil || s != Suite2 {
		t.Errorf("ChooseSuite(both, 2,1) = %v, %v", s, err)
	}
	if s, err := ChooseSuite(both, []Suite{Suite1, Suite2}); err != nil || s != Suite1 {
		t.Errorf("ChooseSuite(both, 1,2) = %v, %v", s, err)
	}
	if s, err := ChooseSuite(0, []Suite{Suite2, Suite1}); err != nil || s != Suite1 {
		t.Errorf("ChooseSuite(old hello, 2,1) = %v, %v", s, err)
	}
	if _, err := ChooseSuite(0, []Suite{Suite2}); !errors.As(err, &se) {
		t.Errorf("ChooseSuite(old hello, 2) = %v, want a SuiteError", err)
	}
}

// Private mode counts the same in both suites, with the noise fixed at 0.
func TestSuitesPrivate(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(123, 124))
	client, server := sets(rng, 200, 500, 77)
	for _, suite := range Suites {
		res, err := runPrivate(t, PrivateClientConfig{Kind: KindEmail, Suites: []Suite{Suite2, Suite1}},
			PrivateServerConfig{ChunkSize: 50, Threshold: 1, noise: fixedNoise(0)},
			client, preparePrivateSuite(t, suite, server, false))
		if err != nil || res.Count != 77 {
			t.Errorf("suite %v: %+v, %v", suite, res, err)
		}
	}
}

// An epoch is set up in one suite and its sessions use it; its stored forms
// (server and client) keep the suite.
func TestSuitesEpoch(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(125, 126))
	client, server := sets(rng, 150, 400, 60)
	set := preparePrivateSuite(t, Suite2, server, true)
	s := must(NewEpochSetupServer(EpochSetupConfig{ChunkSize: 64, ExpiresAt: epochNow.Add(24 * time.Hour)}, set))
	defer s.Close()
	c := must(NewEpochSetupClient(EpochSetupClientConfig{Kind: KindEmail, Suites: []Suite{Suite1, Suite2},
		Now: func() time.Time { return epochNow }}))
	defer c.Close()
	var ep *Epoch
	cc, sc := Pipe()
	errc := serveLocal(sc, nil, func(conn Conn, h *wire.ClientHello) error {
		return s.Serve(conn, h, func(e *Epoch) error { ep = e; return nil }, nil)
	})
	ek, err := c.Run(cc, nil)
	if serr := <-errc; err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	if ek.Suite != Suite2 || ep.Meta().Suite != Suite2 {
		t.Fatalf("epoch suites %v / %v, want 2", ek.Suite, ep.Meta().Suite)
	}
	res, err := epochSession(t, ek, ep, client, exactRelease(), epochNow)
	if err != nil || res.Count != 60 {
		t.Errorf("suite-2 epoch session: %+v, %v", res, err)
	}
	// The client's key file and the server's stored epoch keep the suite.
	b := must(ek.MarshalBinary())
	var back EpochKey
	if err := back.UnmarshalBinary(b); err != nil || back.Suite != Suite2 || back.Public() != ek.Public() {
		t.Fatalf("suite-2 epoch key round trip: %v %v", back, err)
	}
	var chunks [][]byte
	ep.EncodeTags(100, func(_ int, data []byte) error { chunks = append(chunks, bytes.Clone(data)); return nil })
	loaded, err := LoadEpoch(ep.Meta(), ep.ExportKey(), func(add func(int, []byte) error) error {
		for _, d := range chunks {
			if err := add(len(d)/8, d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := epochSession(t, &back, loaded, client, exactRelease(), epochNow); err != nil || res.Count != 60 {
		t.Errorf("reloaded suite-2 epoch: %+v, %v", res, err)
	}
	// A suite-2 epoch loaded as suite 1 is refused: the key is not a
	// canonical ristretto255 scalar, or if it were, its tags would not match.
	m := ep.Meta()
	m.Suite = Suite1
	if _, err := LoadEpoch(m, ep.ExportKey(), func(func(int, []byte) error) error { return nil }); err == nil {
		t.Log("a suite-2 key happened to be a valid suite-1 scalar") // possible: the check below is the real one
	}
	// A session offering suite 1 only is refused by the suite-2 epoch.
	old := back
	old.Suite = 0
	ps := must(NewEpochServer(exactRelease(), ep))
	hc := must(NewEpochClient(PrivateClientConfig{Kind: KindEmail}, &old, client))
	var se *SuiteError
	if _, err := ps.ReceiveHello(hc.Hello(), hc.Ticket(), epochNow); !errors.As(err, &se) {
		t.Errorf("suite-1 session against a suite-2 epoch: %v, want a SuiteError", err)
	}
}

// A version-1 epoch key file (no suite byte) is read as suite 1.
func TestEpochKeyV1IsSuite1(t *testing.T) {
	ek := &EpochKey{ID: [16]byte{7}, Kind: KindEmail, CanonVersion: 1, ServerSize: 4096, ExpiresAt: epochNow, key: testKey(Suite1)}
	b := must(ek.MarshalBinary())
	if !bytes.HasPrefix(b, []byte("OVLEPK2\x00")) || b[8] != 1 {
		t.Fatalf("version-2 file starts %x", b[:9])
	}
	v1 := append([]byte("OVLEPK1\x00"), b[9:]...)
	var back EpochKey
	if err := back.UnmarshalBinary(v1); err != nil || back.Suite.Or1() != Suite1 || back.Public() != ek.Public() {
		t.Fatalf("version-1 file: %v, %v", back, err)
	}
	for name, bad := range map[string][]byte{
		"v2 suite 0":       func() []byte { x := bytes.Clone(b); x[8] = 0; return x }(),
		"v2 suite 3":       func() []byte { x := bytes.Clone(b); x[8] = 3; return x }(),
		"v1 with a suite":  append([]byte("OVLEPK1\x00"), b[8:]...),
		"v2 without suite": append([]byte("OVLEPK2\x00"), b[9:]...),
	} {
		if err := new(EpochKey).UnmarshalBinary(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A suite-2 key is refused under the suite-1 label unless it happens
	// to be canonical there, and vice versa: a suite-1 scalar is clamped
	// with a clamped inverse with probability about 2^-6, so try a few.
	k2 := &EpochKey{Kind: KindEmail, ServerSize: 4096, ExpiresAt: epochNow, Suite: Suite2, key: testKey(Suite2)}
	b2 := must(k2.MarshalBinary())
	b2[8] = 1
	var x EpochKey
	if err := x.UnmarshalBinary(b2); err == nil && x.Public() == k2.Public() {
		t.Error("a suite-2 key read as suite 1 has the same public key")
	}
}

// torsion returns the eight points of edwards25519 of order dividing 8.
func torsion(t testing.TB) []*edwards25519.Point {
	t.Helper()
	b, _ := hex.DecodeString("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	t8 := must(new(edwards25519.Point).SetBytes(b))
	out := []*edwards25519.Point{edwards25519.NewIdentityPoint()}
	for i := 1; i < 8; i++ {
		out = append(out, new(edwards25519.Point).Add(out[i-1], t8))
	}
	if new(edwards25519.Point).Add(out[7], t8).Equal(edwards25519.NewIdentityPoint()) != 1 || out[4].Equal(edwards25519.NewIdentityPoint()) == 1 {
		t.Fatal("not a point of order 8")
	}
	return out
}

// torsionVariants returns the u-coordinates of P + T for the eight T of
// order dividing 8, P the curve25519 point of u-coordinate u (with either
// sign: u does not fix it, and both signs give variants of ±P).
func torsionVariants(t testing.TB, u [32]byte) [][32]byte {
	t.Helper()
	one := new(field.Element).One()
	fu := must(new(field.Element).SetBytes(u[:]))
	// y = (u − 1)/(u + 1)
	num := new(field.Element).Subtract(fu, one)
	den := new(field.Element).Add(fu, one)
	y := new(field.Element).Multiply(num, den.Invert(den))
	p := must(new(edwards25519.Point).SetBytes(y.Bytes()))
	var out [][32]byte
	for _, tp := range torsion(t) {
		q := new(edwards25519.Point).Add(p, tp)
		yb := q.Bytes()
		yb[31] &= 0x7f
		qy := must(new(field.Element).SetBytes(yb))
		// u = (1 + y)/(1 − y)
		n := new(field.Element).Add(one, qy)
		d := new(field.Element).Subtract(one, qy)
		var enc [32]byte
		copy(enc[:], new(field.Element).Multiply(n, d.Invert(d)).Bytes())
		out = append(out, enc)
	}
	return out
}

// invalidS2 returns suite-2 encodings every party must refuse (SPEC.md
// §12.5): low order, non-canonical, on the twist.
func invalidS2(t testing.TB, valid [32]byte) map[string][32]byte {
	t.Helper()
	bad := map[string][32]byte{}
	lo := func(h string) [32]byte { b, _ := hex.DecodeString(h); return [32]byte(b) }
	bad["zero (order 2, identity)"] = [32]byte{}
	bad["one (order 4)"] = [32]byte{1}
	bad["order 8 (a)"] = lo("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
	bad["order 8 (b)"] = lo("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157")
	bad["p-1"] = lo("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
	bad["p (non-canonical zero)"] = lo("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
	bad["p+1 (non-canonical one)"] = lo("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
	top := valid
	top[31] |= 0x80
	bad["bit 255 set"] = top
	// A twist point: the first u ≥ 2 whose g(u) is not a square.
	for u := byte(2); ; u++ {
		var b [32]byte
		b[0] = u
		var tmp [32]byte
		k := must(newS2Key(entropy(nil)))
		if err := k.k.Mult(&tmp, &b); errors.Is(err, c25519.ErrInvalidElement) {
			bad["twist"] = b
			break
		}
	}
	return bad
}

// blindedChunk wraps encodings as a BlindedChunk.
func blindedChunk(elems ...[32]byte) *wire.ElementChunk {
	c := &wire.ElementChunk{Type: wire.TypeBlinded}
	for _, e := range elems {
		c.Elements = append(c.Elements, e[:]...)
	}
	return c
}

// hashS2 returns the suite-2 hash of d, a valid element.
func hashS2(d [32]byte) [32]byte {
	out := make([][32]byte, 1)
	s2HashBatch(KindEmail, [][32]byte{d}, out)
	return out[0]
}

// On the protocol path, suite 2's torsion cannot create a false match or
// an amplified count: the eight torsion variants of one element are valid
// encodings, all multiply to the same product, and every party that
// multiplies a received batch refuses it as a duplicate (SPEC.md §12.6).
// Low-order, twist and non-canonical inputs are refused outright.
func TestSuite2TorsionOnTheProtocolPath(t *testing.T) {
	p0 := hashS2(digest("torsion"))
	variants := torsionVariants(t, p0)
	distinct := map[[32]byte]bool{}
	for _, v := range variants {
		if !c25519.Valid(&v) {
			t.Fatalf("torsion variant %x is not a valid encoding", v)
		}
		distinct[v] = true
	}
	if len(distinct) != 8 || !distinct[p0] {
		t.Fatalf("%d distinct variants, want 8 including P0", len(distinct))
	}
	// Every variant multiplies to the product of P0.
	k := must(newKey(Suite2, entropy(nil), true))
	var want [32]byte
	if err := k.multPeer(&want, p0[:]); err != nil {
		t.Fatal(err)
	}
	for _, v := range variants {
		var got [32]byte
		if err := k.multPeer(&got, v[:]); err != nil || got != want {
			t.Fatalf("variant product %x, %v, want %x", got, err, want)
		}
	}
	others := make([][32]byte, 0, 8)
	for i := range 8 {
		others = append(others, hashS2(digest(string(rune('a'+i)))))
	}

	// Exact mode, server side: the variants among honest elements fail
	// the session as a duplicate.
	exactServer := func(n int) *Server {
		s := must(NewServer(ServerConfig{}, prepareSuite(t, Suite2, [][32]byte{digest("torsion")})))
		_, err := s.ReceiveHello(&wire.ClientHello{Mode: wire.ModeExact, Kind: KindEmail, ClientSize: uint32(n),
			Suites: wire.SuitesOf(Suite2)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	batch := append(append([][32]byte{}, others...), variants[1:3]...)
	if err := exactServer(len(batch)).ReceiveBlinded(blindedChunk(batch...)); !errors.Is(err, ErrPeer) {
		t.Errorf("exact server took two torsion variants: %v", err)
	}
	if err := exactServer(len(others)).ReceiveBlinded(blindedChunk(others...)); err != nil {
		t.Errorf("exact server refused honest elements: %v", err)
	}
	for name, bad := range invalidS2(t, p0) {
		if err := exactServer(1).ReceiveBlinded(blindedChunk(bad)); !errors.Is(err, ErrPeer) {
			t.Errorf("exact server took %s: %v", name, err)
		}
	}

	// Exact mode, client side: an evaluated chunk carrying two torsion
	// variants of one element unblinds to equal tags and is refused.
	{
		list := [][32]byte{digest("x"), digest("y"), digest("z")}
		c := must(NewClient(ClientConfig{Kind: KindEmail, Suites: []Suite{Suite2}}, list))
		s := must(NewServer(ServerConfig{}, prepareSuite(t, Suite2, list)))
		if err := c.ReceiveParams(must(s.ReceiveHello(c.Hello()))); err != nil {
			t.Fatal(err)
		}
		must2(c.NextBlinded())
		ev := torsionVariants(t, others[0])
		chunk := blindedChunk(ev[0], ev[3], others[1])
		chunk.Type = wire.TypeEvaluated
		if err := c.ReceiveEvaluated(chunk); !errors.Is(err, ErrPeer) {
			t.Errorf("exact client took two torsion variants: %v", err)
		}
	}

	// Private mode: the server on the blinded list, the client on the
	// server's elements.
	{
		list := [][32]byte{digest("x"), digest("y"), digest("z")}
		pc := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail, Suites: []Suite{Suite2}}, list))
		ps := must(NewPrivateServer(PrivateServerConfig{}, preparePrivateSuite(t, Suite2, [][32]byte{digest("x")}, false)))
		if err := pc.ReceiveParams(must(ps.ReceiveHello(pc.Hello()))); err != nil {
			t.Fatal(err)
		}
		for {
			ch, ok, err := ps.NextServerElements()
			if err != nil || !ok {
				break
			}
			if err := pc.ReceiveServerElements(ch); err != nil {
				t.Fatal(err)
			}
		}
		if err := ps.ReceiveClientKey(must(pc.ClientKey())); err != nil {
			t.Fatal(err)
		}
		if err := ps.ReceiveBlinded(blindedChunk(variants[0], variants[5], others[0])); !errors.Is(err, ErrPeer) {
			t.Errorf("private server took two torsion variants: %v", err)
		}
	}
	{
		pc := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail, Suites: []Suite{Suite2}}, [][32]byte{digest("x")}))
		ps := must(NewPrivateServer(PrivateServerConfig{}, preparePrivateSuite(t, Suite2, [][32]byte{digest("x")}, false)))
		if err := pc.ReceiveParams(must(ps.ReceiveHello(pc.Hello()))); err != nil {
			t.Fatal(err)
		}
		ch := must2(ps.NextServerElements())
		// Replace the second element by a torsion variant of the first.
		first := [32]byte(ch.Element(0))
		copy(ch.Elements[32:64], torsionVariants(t, first)[2][:])
		err := pc.ReceiveServerElements(ch)
		for err == nil {
			next, ok, nerr := ps.NextServerElements()
			if nerr != nil || !ok {
				t.Fatal("the private client took two torsion variants of one server element")
			}
			err = pc.ReceiveServerElements(next)
		}
		if !errors.Is(err, ErrPeer) {
			t.Errorf("private client: %v, want ErrPeer", err)
		}
	}
	// A client key of low order or on the twist is refused by the server.
	for name, bad := range invalidS2(t, p0) {
		pc := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail, Suites: []Suite{Suite2}}, [][32]byte{digest("x")}))
		ps := must(NewPrivateServer(PrivateServerConfig{}, preparePrivateSuite(t, Suite2, [][32]byte{digest("x")}, false)))
		pc.ReceiveParams(must(ps.ReceiveHello(pc.Hello())))
		for {
			ch, ok, err := ps.NextServerElements()
			if err != nil || !ok {
				break
			}
			pc.ReceiveServerElements(ch)
		}
		if err := ps.ReceiveClientKey(&wire.ClientKey{Key: bad}); !errors.Is(err, ErrPeer) {
			t.Errorf("private server took client key %s: %v", name, err)
		}
	}
}

// The per-operation costs of both suites measure something.
func TestMeasureSuiteOpCosts(t *testing.T) {
	for _, s := range Suites {
		oc := MeasureSuiteOpCosts(s, 64)
		if oc.HashToGroup <= 0 || oc.ScalarMult <= 0 || oc.BaseMult <= 0 {
			t.Errorf("suite %v: %+v", s, oc)
		}
	}
}
