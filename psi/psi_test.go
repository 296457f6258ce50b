package psi

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"github.com/overlap-psi/overlap/psi/internal/r255"
	"github.com/overlap-psi/overlap/psi/wire"
)

func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// sets returns a client list and a server set of the given sizes that share
// exactly overlap identifiers.
func sets(rng *mrand.Rand, nClient, nServer, overlap int) (client, server [][32]byte) {
	tag := rng.Uint64()
	for i := range overlap {
		d := digest(fmt.Sprintf("both-%d-%d", tag, i))
		client = append(client, d)
		server = append(server, d)
	}
	for i := overlap; i < nClient; i++ {
		client = append(client, digest(fmt.Sprintf("client-%d-%d", tag, i)))
	}
	for i := overlap; i < nServer; i++ {
		server = append(server, digest(fmt.Sprintf("server-%d-%d", tag, i)))
	}
	rng.Shuffle(len(client), func(i, j int) { client[i], client[j] = client[j], client[i] })
	return client, server
}

func prepare(t testing.TB, kind Kind, server [][32]byte) *PreparedSet {
	t.Helper()
	set, err := NewSet(SetConfig{Kind: kind})
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

// transcript records every message of a session, encoded.
type transcript struct {
	blinded, evaluated, set [][]byte
}

// run plays a whole session with runLocal and records its messages in tr.
func run(t testing.TB, cc ClientConfig, sc ServerConfig, client [][32]byte, set *PreparedSet, tr *transcript) (Result, error) {
	t.Helper()
	c, err := NewClient(cc, client)
	if err != nil {
		return Result{}, err
	}
	s, err := NewServer(sc, set)
	if err != nil {
		return Result{}, err
	}
	res, err := runLocal(c, s, func(_ Sender, b []byte) {
		if tr == nil {
			return
		}
		switch wire.Type(b[1]) {
		case wire.TypeBlinded:
			tr.blinded = append(tr.blinded, b)
		case wire.TypeEvaluated:
			tr.evaluated = append(tr.evaluated, b)
		case wire.TypeServerSet:
			tr.set = append(tr.set, b)
		}
	})
	return res, err
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestOverlapMatchesPlainIntersection is the property test of the protocol:
// the count it reports equals the size of the plain intersection.
func TestOverlapMatchesPlainIntersection(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	cases := []struct{ client, server, overlap int }{
		{1, 1, 0}, {1, 1, 1}, // One element.
		{1, 0, 0}, {5, 0, 0}, // Empty server set.
		{50, 50, 50}, // Identical sets.
		{40, 60, 0},  // Disjoint sets.
		{100, 3000, 37}, {3000, 100, 100}, {1500, 1500, 700},
	}
	for range 6 { // Random sizes and overlaps.
		nc, ns := 1+rng.IntN(2000), rng.IntN(3000)
		cases = append(cases, struct{ client, server, overlap int }{nc, ns, rng.IntN(min(nc, ns) + 1)})
	}
	for _, tc := range cases {
		client, server := sets(rng, tc.client, tc.server, tc.overlap)
		for _, kind := range []Kind{KindEmail, KindPhone} {
			// Small chunks exercise chunk boundaries on both sides.
			res, err := run(t, ClientConfig{Kind: kind}, ServerConfig{ChunkSize: 1 + rng.IntN(700)},
				client, prepare(t, kind, server), nil)
			if err != nil {
				t.Fatalf("%+v: %v", tc, err)
			}
			if res.Overlap != tc.overlap || res.ClientSize != tc.client {
				t.Errorf("%+v %v: got overlap %d of %d, want %d of %d", tc, kind, res.Overlap, res.ClientSize, tc.overlap, tc.client)
			}
			if res.ServerSize != int(Bucket(uint64(tc.server))) {
				t.Errorf("%+v: server size %d, want bucket %d", tc, res.ServerSize, Bucket(uint64(tc.server)))
			}
		}
	}
}

// An identifier of one kind never matches the same bytes of another kind:
// the kind is in the hash-to-group DST.
func TestKindsAreSeparated(t *testing.T) {
	client, server := sets(mrand.New(mrand.NewPCG(3, 4)), 100, 100, 100)
	s := prepare(t, KindPhone, server)
	if _, err := run(t, ClientConfig{Kind: KindEmail}, ServerConfig{}, client, s, nil); !errors.Is(err, ErrParams) {
		t.Fatalf("email client against a phone set: %v, want ErrParams", err)
	}
	if DST(KindEmail) == nil || bytes.Equal(DST(KindEmail), DST(KindPhone)) {
		t.Fatal("kinds share a DST")
	}
}

func TestDuplicatesInTheListCountOnce(t *testing.T) {
	client, server := sets(mrand.New(mrand.NewPCG(5, 6)), 30, 30, 10)
	client = append(client, client[:20]...)
	res, err := run(t, ClientConfig{Kind: KindEmail}, ServerConfig{}, client, prepare(t, KindEmail, server), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ClientSize != 30 || res.Overlap != 10 {
		t.Fatalf("got %d of %d, want 10 of 30", res.Overlap, res.ClientSize)
	}
}

// Two sessions over the same inputs share no encoded element: fresh keys
// and salts (SECURITY.md, "What every side checks").
func TestSessionsShareNoElement(t *testing.T) {
	client, server := sets(mrand.New(mrand.NewPCG(7, 8)), 200, 300, 50)
	var a, b transcript
	if _, err := run(t, ClientConfig{Kind: KindEmail}, ServerConfig{}, client, prepare(t, KindEmail, server), &a); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, ClientConfig{Kind: KindEmail}, ServerConfig{}, client, prepare(t, KindEmail, server), &b); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, msgs := range [][][]byte{a.blinded, a.evaluated} {
		for _, m := range msgs {
			var ch wire.ElementChunk
			ch.UnmarshalBinary(m, wire.Type(m[1]))
			for i := range ch.Count() {
				seen[string(ch.Element(i))] = true
			}
		}
	}
	for _, msgs := range [][][]byte{b.blinded, b.evaluated} {
		for _, m := range msgs {
			var ch wire.ElementChunk
			ch.UnmarshalBinary(m, wire.Type(m[1]))
			for i := range ch.Count() {
				if seen[string(ch.Element(i))] {
					t.Fatal("an element of session A reappears in session B")
				}
			}
		}
	}
	if bytes.Equal(bytes.Join(a.set, nil), bytes.Join(b.set, nil)) {
		t.Fatal("the encoded server set is the same in two sessions")
	}
}

// The server's evaluated elements come back shuffled: their order is not the
// order of the client's blinded elements.
func TestEvaluatedAreShuffled(t *testing.T) {
	client, server := sets(mrand.New(mrand.NewPCG(9, 10)), 500, 10, 0)
	c := must(NewClient(ClientConfig{Kind: KindEmail}, client))
	set := prepare(t, KindEmail, server)
	key := set.key.s1.k // the test plays the server and knows b
	s := must(NewServer(ServerConfig{}, set))
	c.ReceiveParams(must(s.ReceiveHello(c.Hello())))
	var blinded []byte
	for {
		ch, ok, _ := c.NextBlinded()
		if !ok {
			break
		}
		// Compute what an unshuffled server would return.
		for i := range ch.Count() {
			e := must(r255.NewElement().SetCanonicalBytes(ch.Element(i)))
			blinded = append(blinded, r255.NewElement().ScalarMult(key, e).Bytes()...)
		}
		if err := s.ReceiveBlinded(ch); err != nil {
			t.Fatal(err)
		}
	}
	var evaluated []byte
	for {
		ch, ok, _ := s.NextEvaluated()
		if !ok {
			break
		}
		evaluated = append(evaluated, ch.Elements...)
	}
	if bytes.Equal(blinded, evaluated) {
		t.Fatal("evaluated elements are in request order")
	}
	fixed := 0
	for i := 0; i < len(blinded); i += 32 {
		if bytes.Equal(blinded[i:i+32], evaluated[i:i+32]) {
			fixed++
		}
	}
	if fixed > 10 { // a uniform permutation of 500 has ~1 fixed point
		t.Fatalf("%d of 500 elements kept their position", fixed)
	}
}

// badElements are encodings every side must refuse.
var badElements = map[string][]byte{
	"identity":      make([]byte, 32),
	"non-canonical": must(hexBytes("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")),
	"negative":      must(hexBytes("0100000000000000000000000000000000000000000000000000000000000000")),
	"not on curve":  must(hexBytes("26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371")),
}

func TestServerRejectsBadRequests(t *testing.T) {
	_, server := sets(mrand.New(mrand.NewPCG(11, 12)), 0, 100, 0)
	start := func(n int) *Server {
		s := must(NewServer(ServerConfig{ChunkSize: 8}, prepare(t, KindEmail, server)))
		if _, err := s.ReceiveHello(&wire.ClientHello{Mode: wire.ModeExact, Kind: 1, ClientSize: uint32(n)}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := func(i int) []byte {
		return r255.NewHasher([]byte("x")).Hash(r255.NewElement(), []byte{byte(i)}).Bytes()
	}
	chunk := func(seq uint32, elems ...[]byte) *wire.ElementChunk {
		return &wire.ElementChunk{Type: wire.TypeBlinded, Seq: seq, Elements: bytes.Join(elems, nil)}
	}
	for name, bad := range badElements {
		s := start(3)
		err := s.ReceiveBlinded(chunk(0, good(1), bad, good(2)))
		if !errors.Is(err, ErrPeer) {
			t.Errorf("%s element: %v, want ErrPeer", name, err)
		}
		// Nothing is sent after a rejection.
		if _, _, err := s.NextEvaluated(); !errors.Is(err, ErrState) {
			t.Errorf("%s: evaluated elements available after a rejection", name)
		}
	}
	cases := []struct {
		name   string
		n      int
		chunks []*wire.ElementChunk
	}{
		// Duplicates, in one chunk and across chunks.
		{"duplicate in a chunk", 3, []*wire.ElementChunk{chunk(0, good(1), good(2), good(1))}},
		{"duplicate across chunks", 3, []*wire.ElementChunk{chunk(0, good(1), good(2)), chunk(1, good(2))}},
		// Sizes that disagree with the hello.
		{"more than announced", 2, []*wire.ElementChunk{chunk(0, good(1), good(2), good(3))}},
		{"chunk over the agreed size", 20, []*wire.ElementChunk{chunk(0, good(1), good(2), good(3), good(4), good(5), good(6), good(7), good(8), good(9))}},
		// Out of order and replayed chunks.
		{"skipped chunk", 4, []*wire.ElementChunk{chunk(1, good(1))}},
		{"replayed chunk", 4, []*wire.ElementChunk{chunk(0, good(1)), chunk(0, good(1))}},
		{"wrong type", 1, []*wire.ElementChunk{{Type: wire.TypeEvaluated, Elements: good(1)}}},
	}
	for _, tc := range cases {
		s := start(tc.n)
		var err error
		for _, ch := range tc.chunks {
			if err = s.ReceiveBlinded(ch); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrPeer) {
			t.Errorf("%s: %v, want ErrPeer", tc.name, err)
		}
	}
	// A server session evaluates one request only.
	s := start(1)
	if err := s.ReceiveBlinded(chunk(0, good(1))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReceiveHello(&wire.ClientHello{Mode: wire.ModeExact, Kind: 1, ClientSize: 1}); !errors.Is(err, ErrState) {
		t.Errorf("second hello: %v, want ErrState", err)
	}
	if err := s.ReceiveBlinded(chunk(1, good(2))); !errors.Is(err, ErrState) {
		t.Errorf("second request: %v, want ErrState", err)
	}
}

func TestServerPolicy(t *testing.T) {
	_, server := sets(mrand.New(mrand.NewPCG(13, 14)), 0, 10, 0)
	cfg := ServerConfig{MinClientSize: 100, MaxClientSize: 1000, CanonVersion: 1}
	for _, tc := range []struct {
		name  string
		hello wire.ClientHello
		want  string
		check string
	}{
		{"too small", wire.ClientHello{Mode: wire.ModeExact, Kind: 1, CanonVersion: 1, ClientSize: 99}, "below the minimum of 100", CheckMinListSize},
		{"too large", wire.ClientHello{Mode: wire.ModeExact, Kind: 1, CanonVersion: 1, ClientSize: 1001}, "above the maximum of 1000", CheckMaxListSize},
		{"wrong canon", wire.ClientHello{Mode: wire.ModeExact, Kind: 1, CanonVersion: 2, ClientSize: 500}, "canonicalization", CheckCanonicalization},
		{"private mode", wire.ClientHello{Mode: wire.ModePrivate, Kind: 1, CanonVersion: 1, ClientSize: 500}, "mode private", CheckMode},
		{"wrong kind", wire.ClientHello{Mode: wire.ModeExact, Kind: 2, CanonVersion: 1, ClientSize: 500}, "kind phone", CheckKind},
	} {
		s := must(NewServer(cfg, prepare(t, KindEmail, server)))
		_, err := s.ReceiveHello(&tc.hello)
		var he *HelloError
		if !errors.Is(err, ErrParams) || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &he) || he.Check != tc.check {
			t.Errorf("%s: %v, want ErrParams mentioning %q from check %q", tc.name, err, tc.want, tc.check)
		}
	}
	// A prepared set serves one session.
	set := prepare(t, KindEmail, server)
	must(NewServer(cfg, set))
	if _, err := NewServer(cfg, set); !errors.Is(err, ErrUsed) {
		t.Fatalf("second session on one set: %v, want ErrUsed", err)
	}
}

func TestClientRejectsBadResponses(t *testing.T) {
	client, server := sets(mrand.New(mrand.NewPCG(15, 16)), 6, 50, 3)
	start := func(sc ServerConfig) (*Client, *Server) {
		c := must(NewClient(ClientConfig{Kind: KindEmail}, client))
		s := must(NewServer(sc, prepare(t, KindEmail, server)))
		if err := c.ReceiveParams(must(s.ReceiveHello(c.Hello()))); err != nil {
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
		return c, s
	}
	evaluated := func(s *Server) []byte {
		ch, _, _ := s.NextEvaluated()
		return bytes.Clone(ch.Elements)
	}
	for name, bad := range badElements {
		c, s := start(ServerConfig{})
		els := evaluated(s)
		copy(els[32:], bad)
		if err := c.ReceiveEvaluated(&wire.ElementChunk{Type: wire.TypeEvaluated, Elements: els}); !errors.Is(err, ErrPeer) {
			t.Errorf("%s evaluated element: %v, want ErrPeer", name, err)
		}
		if _, err := c.Result(); err == nil {
			t.Errorf("%s: a result after a rejection", name)
		}
	}
	// A duplicated evaluated element.
	c, s := start(ServerConfig{})
	els := evaluated(s)
	copy(els[64:96], els[0:32])
	if err := c.ReceiveEvaluated(&wire.ElementChunk{Type: wire.TypeEvaluated, Elements: els}); !errors.Is(err, ErrPeer) {
		t.Errorf("duplicate evaluated element: %v, want ErrPeer", err)
	}
	// More elements than the client sent.
	c, s = start(ServerConfig{})
	els = evaluated(s)
	els = append(els, badElements["identity"]...)
	if err := c.ReceiveEvaluated(&wire.ElementChunk{Type: wire.TypeEvaluated, Elements: els}); !errors.Is(err, ErrPeer) {
		t.Errorf("extra evaluated element: %v, want ErrPeer", err)
	}
	// A truncated server set: the result is refused.
	c, s = start(ServerConfig{})
	c.ReceiveEvaluated(must2(s.NextEvaluated()))
	s.NextEvaluated()
	ch, _, _ := s.NextSetChunk()
	ch.Count--
	if err := c.ReceiveSetChunk(ch); err == nil {
		if _, err := c.Result(); !errors.Is(err, ErrPeer) {
			t.Errorf("truncated server set: %v, want ErrPeer", err)
		}
	}
}

func must2[T any](v T, _ bool, err error) T { return must(v, err) }

func TestClientRejectsWeakParams(t *testing.T) {
	client, _ := sets(mrand.New(mrand.NewPCG(17, 18)), 1000, 0, 0)
	base := wire.ServerParams{Mode: wire.ModeExact, Kind: 1, ClientSize: 1000, ServerSize: 1024,
		GCSM: 1 << 40, GCSK: 39, ChunkSize: 4096}
	for _, tc := range []struct {
		name string
		edit func(*wire.ServerParams)
	}{
		{"false-positive bound too weak", func(p *wire.ServerParams) { p.GCSM = 1 << 20; p.GCSK = 19 }},
		{"wrong echo of the client size", func(p *wire.ServerParams) { p.ClientSize = 999 }},
		{"other kind", func(p *wire.ServerParams) { p.Kind = 2 }},
		{"other mode", func(p *wire.ServerParams) { p.Mode = wire.ModePrivate }},
		{"server set over the client's limit", func(p *wire.ServerParams) { p.ServerSize = 1 << 21 }},
		{"K larger than M", func(p *wire.ServerParams) { p.GCSM = 1 << 40; p.GCSK = 60 }},
	} {
		c := must(NewClient(ClientConfig{Kind: KindEmail, MaxServerSize: 1 << 20}, client))
		p := base
		tc.edit(&p)
		if err := c.ReceiveParams(&p); !errors.Is(err, ErrParams) {
			t.Errorf("%s: %v, want ErrParams", tc.name, err)
		}
	}
}

// Keys never print, in either suite.
func TestSecretsDoNotPrint(t *testing.T) {
	for _, suite := range Suites {
		set := must(NewSet(SetConfig{Kind: KindEmail, Suite: suite}))
		set.Add(digest("a"))
		if err := set.Finish(); err != nil {
			t.Fatal(err)
		}
		c := must(NewClient(ClientConfig{Kind: KindEmail, Suites: Suites}, [][32]byte{digest("a")}))
		s := must(NewServer(ServerConfig{}, set))
		if err := c.ReceiveParams(must(s.ReceiveHello(c.Hello()))); err != nil {
			t.Fatal(err)
		}
		sk, ck := set.key.bytes(), c.key.bytes()
		secrets := [][]byte{sk[:], ck[:]}
		if suite == Suite1 {
			secrets = append(secrets, c.key.s1.inv.Bytes())
		}
		for _, v := range []any{set, c, s, set.key, c.key} {
			for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
				out := fmt.Sprintf(format, v)
				for _, k := range secrets {
					if strings.Contains(out, fmt.Sprintf("%x", k)) || strings.Contains(out, fmt.Sprint(k)) {
						t.Fatalf("suite %v: %s of %T prints a key: %s", suite, format, v, out)
					}
				}
			}
		}
	}
}

func TestBucket(t *testing.T) {
	for _, tc := range []struct{ n, want uint64 }{
		{0, 1024}, {1, 1024}, {1024, 1024}, {1025, 1152}, {1152, 1152}, {1153, 1280},
		{2048, 2048}, {2049, 2304}, {1_000_000, 1_048_576}, {1_048_577, 1_179_648},
	} {
		if got := Bucket(tc.n); got != tc.want {
			t.Errorf("Bucket(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
	for n := uint64(1); n < 1<<22; n = n*3/2 + 1 {
		b := Bucket(n)
		if b < n || (n > MinBucket && float64(b) > 1.125*float64(n)) {
			t.Fatalf("Bucket(%d) = %d is not within 12.5%% above", n, b)
		}
	}
}

// TestDestroyWhileBuilding: a set abandoned while a batch is still being
// encoded in the background (a store read that failed half way) can be
// destroyed at once, and serves no session.
func TestDestroyWhileBuilding(t *testing.T) {
	set, err := NewSet(SetConfig{Kind: KindEmail})
	if err != nil {
		t.Fatal(err)
	}
	for i := range setBatch + 10 { // one batch in flight
		var d [32]byte
		d[0], d[1], d[2] = byte(i), byte(i>>8), byte(i>>16)
		set.Add(d)
	}
	set.Destroy()
	if _, err := NewServer(ServerConfig{}, set); !errors.Is(err, ErrUsed) {
		t.Fatalf("NewServer on a destroyed set: %v, want ErrUsed", err)
	}
}
