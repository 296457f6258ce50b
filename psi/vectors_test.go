package psi

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi/internal/c25519"
	"github.com/overlap-psi/overlap/psi/internal/r255"
	"github.com/overlap-psi/overlap/psi/wire"
)

func loadVectors(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "vectors", name))
	if err != nil {
		t.Fatalf("%v (regenerate with go generate ./psi/)", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seedOf(t *testing.T, s string) [32]byte { return [32]byte(unhex(t, s)) }

// TestVectors replays testdata/vectors (SPEC.md §9).
func TestVectors(t *testing.T) {
	t.Run("hash_to_group", func(t *testing.T) {
		var vs, vs2 []struct {
			Suite                            Suite
			Kind, Canonical, Digest, Element string
		}
		loadVectors(t, "hash_to_group.json", &vs)
		loadVectors(t, "hash_to_group_suite2.json", &vs2)
		if len(vs2) == 0 {
			t.Fatal("no suite-2 hash vectors")
		}
		for _, v := range append(vs, vs2...) {
			kind, err := ParseKind(v.Kind)
			if err != nil {
				t.Fatal(err)
			}
			if d := digest(v.Canonical); hex.EncodeToString(d[:]) != v.Digest {
				t.Errorf("digest of %q: got %x, want %s", v.Canonical, d, v.Digest)
			}
			var got string
			switch v.Suite.Or1() {
			case Suite1:
				got = hex.EncodeToString(r255.NewHasher(DST(kind)).Hash(r255.NewElement(), unhex(t, v.Digest)).Bytes())
			case Suite2:
				var e [32]byte
				c25519.NewHasher(DST2(kind)).Hash(&e, unhex(t, v.Digest))
				got = hex.EncodeToString(e[:])
			default:
				t.Fatalf("suite %d", v.Suite)
			}
			if got != v.Element {
				t.Errorf("H(%s, %s) = %s, want %s", v.Kind, v.Digest, got, v.Element)
			}
		}
	})

	t.Run("session", func(t *testing.T) {
		var vs, vs2 []struct {
			Name, Kind                      string
			Suite                           Suite
			ClientSeed, SetSeed, ServerSeed string   `json:"-"`
			CS                              string   `json:"client_seed"`
			SS                              string   `json:"set_seed"`
			VS                              string   `json:"server_seed"`
			ChunkSize                       int      `json:"chunk_size"`
			ClientDigests                   []string `json:"client_digests"`
			ServerDigests                   []string `json:"server_digests"`
			Overlap                         int
			ClientHello                     string `json:"client_hello"`
			ServerParams                    string `json:"server_params"`
			Blinded, Evaluated              []string
			ServerSet                       []string `json:"server_set"`
		}
		loadVectors(t, "session.json", &vs)
		loadVectors(t, "session_suite2.json", &vs2)
		if len(vs2) == 0 {
			t.Fatal("no suite-2 session vectors")
		}
		for _, v := range append(vs, vs2...) {
			kind, _ := ParseKind(v.Kind)
			var cd [][32]byte
			for _, d := range v.ClientDigests {
				cd = append(cd, [32]byte(unhex(t, d)))
			}
			set, err := NewSet(SetConfig{Kind: kind, Suite: v.Suite, Workers: 1, rand: mrand.NewChaCha8(seedOf(t, v.SS))})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range v.ServerDigests {
				set.Add([32]byte(unhex(t, d)))
			}
			set.Finish()
			c := must(NewClient(ClientConfig{Kind: kind, CanonVersion: 1, Workers: 1, Suites: vectorOffer(v.Suite),
				rand: mrand.NewChaCha8(seedOf(t, v.CS))}, cd))
			s := must(NewServer(ServerConfig{CanonVersion: 1, ChunkSize: v.ChunkSize, Workers: 1, rand: mrand.NewChaCha8(seedOf(t, v.VS))}, set))

			check := func(what string, got []byte, want string) {
				t.Helper()
				if !bytes.Equal(got, unhex(t, want)) {
					t.Fatalf("%s: %s differs from the vector", v.Name, what)
				}
			}
			check("ClientHello", must(c.Hello().MarshalBinary()), v.ClientHello)
			var hello wire.ClientHello
			hello.UnmarshalBinary(unhex(t, v.ClientHello))
			params := must(s.ReceiveHello(&hello))
			check("ServerParams", must(params.MarshalBinary()), v.ServerParams)
			if err := c.ReceiveParams(params); err != nil {
				t.Fatal(err)
			}
			for i, want := range v.Blinded {
				ch, _, _ := c.NextBlinded()
				check("BlindedChunk", must(ch.MarshalBinary()), want)
				var in wire.ElementChunk
				if err := in.UnmarshalBinary(unhex(t, v.Blinded[i]), wire.TypeBlinded); err != nil {
					t.Fatal(err)
				}
				if err := s.ReceiveBlinded(&in); err != nil {
					t.Fatal(err)
				}
			}
			for _, want := range v.Evaluated {
				ch, _, _ := s.NextEvaluated()
				check("EvaluatedChunk", must(ch.MarshalBinary()), want)
				var in wire.ElementChunk
				in.UnmarshalBinary(unhex(t, want), wire.TypeEvaluated)
				if err := c.ReceiveEvaluated(&in); err != nil {
					t.Fatal(err)
				}
			}
			s.NextEvaluated()
			for _, want := range v.ServerSet {
				ch, _, _ := s.NextSetChunk()
				check("ServerSetChunk", must(ch.MarshalBinary()), want)
				var in wire.SetChunk
				in.UnmarshalBinary(unhex(t, want))
				if err := c.ReceiveSetChunk(&in); err != nil {
					t.Fatal(err)
				}
			}
			res, err := c.Result()
			if err != nil || res.Overlap != v.Overlap {
				t.Fatalf("%s: overlap %d (%v), want %d", v.Name, res.Overlap, err, v.Overlap)
			}
		}
	})

	t.Run("private_session", func(t *testing.T) {
		var vs, vs2 []struct {
			Name, Kind        string
			Suite             Suite
			CS                string   `json:"client_seed"`
			SS                string   `json:"set_seed"`
			VS                string   `json:"server_seed"`
			Ringers           int      `json:"ringers"`
			ChunkSize         int      `json:"chunk_size"`
			Threshold         uint32   `json:"threshold"`
			ClientDigests     []string `json:"client_digests"`
			ServerDigests     []string `json:"server_digests"`
			Overlap           int
			ClientHello       string   `json:"client_hello"`
			PrivateParams     string   `json:"private_params"`
			ServerElements    []string `json:"server_elements"`
			ClientKey         string   `json:"client_key"`
			Blinded, Returned []string
			Release, Result   string
		}
		loadVectors(t, "private_session.json", &vs)
		loadVectors(t, "private_session_suite2.json", &vs2)
		if len(vs) == 0 || len(vs2) == 0 {
			t.Fatal("no private-mode session vectors")
		}
		for _, v := range append(vs, vs2...) {
			pv := func() privateVector {
				kind, err := ParseKind(v.Kind)
				if err != nil {
					t.Fatal(err)
				}
				pv := privateVector{kind: kind, suite: v.Suite, overlap: v.Overlap, ringers: v.Ringers, chunk: v.ChunkSize, threshold: v.Threshold,
					cs: seedOf(t, v.CS), ss: seedOf(t, v.SS), vs: seedOf(t, v.VS),
					hello: unhex(t, v.ClientHello), params: unhex(t, v.PrivateParams), key: unhex(t, v.ClientKey),
					release: unhex(t, v.Release), result: v.Result}
				for _, d := range v.ClientDigests {
					pv.client = append(pv.client, [32]byte(unhex(t, d)))
				}
				for _, d := range v.ServerDigests {
					pv.server = append(pv.server, [32]byte(unhex(t, d)))
				}
				for _, l := range []struct {
					in  []string
					out *[][]byte
				}{{v.ServerElements, &pv.elements}, {v.Blinded, &pv.blinded}, {v.Returned, &pv.returned}} {
					for _, m := range l.in {
						*l.out = append(*l.out, unhex(t, m))
					}
				}
				return pv
			}()
			// One worker or several: the messages are the same.
			for _, workers := range []int{1, 3} {
				replayPrivate(t, v.Name, workers, pv)
			}
		}
	})

	t.Run("epoch", func(t *testing.T) {
		var vs, vs2 []epochVector
		loadVectors(t, "epoch.json", &vs)
		loadVectors(t, "epoch_suite2.json", &vs2)
		if len(vs) == 0 || len(vs2) == 0 {
			t.Fatal("no epoch vectors")
		}
		for _, v := range append(vs, vs2...) {
			// One worker or several: the messages are the same.
			for _, workers := range []int{1, 3} {
				replayEpoch(t, workers, v)
			}
		}
	})

	t.Run("negative", func(t *testing.T) {
		var vs, vs2 []struct {
			Suite                        Suite
			Name, Expect, Hello, Message string
		}
		loadVectors(t, "negative.json", &vs)
		loadVectors(t, "negative_suite2.json", &vs2)
		if len(vs2) == 0 {
			t.Fatal("no suite-2 negative vectors")
		}
		for _, v := range vs2 {
			if v.Suite != Suite2 {
				t.Fatalf("%s: suite %d in negative_suite2.json", v.Name, v.Suite)
			}
		}
		vs = append(vs, vs2...)
		sentinels := map[string]error{
			"psi.ErrPeer": ErrPeer, "psi.ErrParams": ErrParams,
			"wire.ErrLength": wire.ErrLength, "wire.ErrVersion": wire.ErrVersion,
			"wire.ErrType": wire.ErrType, "wire.ErrLimit": wire.ErrLimit,
		}
		for _, v := range vs {
			want, ok := sentinels[v.Expect]
			if !ok && v.Expect != "" {
				t.Fatalf("%s: unknown expectation %q", v.Name, v.Expect)
			}
			set := prepareSuite(t, v.Suite.Or1(), [][32]byte{digest("x")})
			s := must(NewServer(ServerConfig{CanonVersion: 1, ChunkSize: 3, MaxClientSize: 1000}, set))
			err := func() error {
				var hello wire.ClientHello
				if err := hello.UnmarshalBinary(unhex(t, v.Hello)); err != nil {
					return err
				}
				if _, err := s.ReceiveHello(&hello); err != nil {
					return err
				}
				var ch wire.ElementChunk
				if err := ch.UnmarshalBinary(unhex(t, v.Message), wire.TypeBlinded); err != nil {
					return err
				}
				return s.ReceiveBlinded(&ch)
			}()
			switch {
			case v.Expect == "" && err != nil:
				t.Errorf("suite %d, %s: refused (%v), want accepted", v.Suite.Or1(), v.Name, err)
			case v.Expect != "" && !errors.Is(err, want):
				t.Errorf("suite %d, %s: got %v, want %s", v.Suite.Or1(), v.Name, err, v.Expect)
			}
		}
	})
}

// vectorOffer is what a vector's client offers: suite 1 only (the
// 12-byte hello) when the vector has no suite, its suite otherwise.
func vectorOffer(s Suite) []Suite {
	if s.Or1() == Suite1 {
		return nil
	}
	return []Suite{s}
}

// privateVector is one private-mode session of testdata/vectors.
type privateVector struct {
	kind                        Kind
	suite                       Suite
	overlap, ringers, chunk     int
	threshold                   uint32
	cs, ss, vs                  [32]byte
	client, server              [][32]byte
	hello, params, key, release []byte
	elements, blinded, returned [][]byte
	result                      string
}

// replayPrivate runs a private-mode session from the vector's seeds and
// inputs, and checks every message, each side's parsing of the recorded
// messages, and the result against the vector.
func replayPrivate(t *testing.T, name string, workers int, v privateVector) {
	t.Helper()
	set := must(NewPrivateSet(PrivateSetConfig{Kind: v.kind, Suite: v.suite, Ringers: v.ringers, Workers: workers, rand: mrand.NewChaCha8(v.ss)}))
	for _, d := range v.server {
		set.Add(d)
	}
	if err := set.Finish(); err != nil {
		t.Fatal(err)
	}
	c := must(NewPrivateClient(PrivateClientConfig{Kind: v.kind, CanonVersion: 1, Workers: workers, Suites: vectorOffer(v.suite),
		rand: mrand.NewChaCha8(v.cs)}, v.client))
	s := must(NewPrivateServer(PrivateServerConfig{CanonVersion: 1, ChunkSize: v.chunk, Threshold: v.threshold,
		Workers: workers, rand: mrand.NewChaCha8(v.vs)}, set))
	check := func(what string, got, want []byte) {
		t.Helper()
		if !bytes.Equal(got, want) {
			t.Fatalf("%s (%d workers): %s differs from the vector", name, workers, what)
		}
	}
	// Each side reads the other's messages from the vector's bytes.
	chunk := func(b []byte, typ wire.Type) *wire.ElementChunk {
		t.Helper()
		var ch wire.ElementChunk
		if err := ch.UnmarshalBinary(b, typ); err != nil {
			t.Fatalf("%s: %v: %v", name, typ, err)
		}
		return &ch
	}
	check("ClientHello", must(c.Hello().MarshalBinary()), v.hello)
	var hello wire.ClientHello
	if err := hello.UnmarshalBinary(v.hello); err != nil {
		t.Fatal(err)
	}
	params := must(s.ReceiveHello(&hello))
	check("PrivateParams", must(params.MarshalBinary()), v.params)
	var p wire.PrivateParams
	if err := p.UnmarshalBinary(v.params); err != nil {
		t.Fatal(err)
	}
	if err := c.ReceiveParams(&p); err != nil {
		t.Fatal(err)
	}
	for _, want := range v.elements {
		ch, ok, err := s.NextServerElements()
		if !ok || err != nil {
			t.Fatalf("%s: the server sent fewer element chunks than the vector (%v)", name, err)
		}
		check("ServerElementChunk", must(ch.MarshalBinary()), want)
		if err := c.ReceiveServerElements(chunk(want, wire.TypeServerElements)); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := s.NextServerElements(); ok {
		t.Fatalf("%s: the server sent more element chunks than the vector", name)
	}
	key := must(c.ClientKey())
	check("ClientKey", must(key.MarshalBinary()), v.key)
	var k wire.ClientKey
	if err := k.UnmarshalBinary(v.key); err != nil {
		t.Fatal(err)
	}
	if err := s.ReceiveClientKey(&k); err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct {
		what    string
		typ     wire.Type
		want    [][]byte
		next    func() (*wire.ElementChunk, bool, error)
		receive func(*wire.ElementChunk) error
	}{
		{"BlindedChunk", wire.TypeBlinded, v.blinded, c.NextBlinded, s.ReceiveBlinded},
		{"ReturnedChunk", wire.TypeReturned, v.returned, c.NextReturned, s.ReceiveReturned},
	} {
		for _, want := range l.want {
			ch, ok, err := l.next()
			if !ok || err != nil {
				t.Fatalf("%s: the client sent fewer %ss than the vector (%v)", name, l.what, err)
			}
			check(l.what, must(ch.MarshalBinary()), want)
			if err := l.receive(chunk(want, l.typ)); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok, _ := l.next(); ok {
			t.Fatalf("%s: the client sent more %ss than the vector", name, l.what)
		}
	}
	rel := must(s.Release())
	check("PrivateRelease", must(rel.MarshalBinary()), v.release)
	var r wire.PrivateRelease
	if err := r.UnmarshalBinary(v.release); err != nil {
		t.Fatal(err)
	}
	res, err := c.ReceiveRelease(&r)
	if err != nil {
		t.Fatal(err)
	}
	if res.String() != v.result {
		t.Errorf("%s: result %q, want %q", name, res, v.result)
	}
	// The vector's session must mean what its name says: the true overlap
	// lies in the released interval.
	if v.overlap < res.Low || v.overlap > res.High {
		t.Errorf("%s: true overlap %d outside the released interval %d–%d", name, v.overlap, res.Low, res.High)
	}
}

// epochVector is an epoch's setup and one session against it, as
// testdata/vectors/epoch.json holds them (SPEC.md §9).
type epochVector struct {
	Suite           Suite `json:"suite"`
	Name            string
	Kind            string
	EpochDelta      float64  `json:"epoch_delta"`
	SetSeed         string   `json:"set_seed"`
	SetupServerSeed string   `json:"setup_server_seed"`
	SetupClientSeed string   `json:"setup_client_seed"`
	ClientSeed      string   `json:"client_seed"`
	ServerSeed      string   `json:"server_seed"`
	ChunkSize       int      `json:"chunk_size"`
	Threshold       uint32   `json:"threshold"`
	Now             int64    `json:"now"`
	ExpiresAt       int64    `json:"expires_at"`
	ClientDigests   []string `json:"client_digests"`
	ServerDigests   []string `json:"server_digests"`
	Overlap         int      `json:"overlap"`
	SetupHello      string   `json:"setup_hello"`
	EpochParams     string   `json:"epoch_params"`
	ServerElements  []string `json:"server_elements"`
	ClientKey       string   `json:"client_key"`
	Tags            []string `json:"tags"`
	EpochReady      string   `json:"epoch_ready"`
	SessionHello    string   `json:"session_hello"`
	EpochTicket     string   `json:"epoch_ticket"`
	PrivateParams   string   `json:"private_params"`
	Blinded         []string `json:"blinded"`
	Release         string   `json:"release"`
	Result          string   `json:"result"`
}

// replayEpoch runs an epoch's setup and one session from the vector's
// seeds and inputs, and checks every message byte for byte, each side's
// parsing of the recorded messages, and the result.
func replayEpoch(t *testing.T, workers int, v epochVector) {
	t.Helper()
	kind, err := ParseKind(v.Kind)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("%s (%d workers)", v.Name, workers)
	now, expires := time.Unix(v.Now, 0).UTC(), time.Unix(v.ExpiresAt, 0).UTC()
	check := func(what string, got, want []byte) {
		t.Helper()
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: %s differs from the vector", name, what)
		}
	}
	parse := func(what, h string, m interface{ UnmarshalBinary([]byte) error }) {
		t.Helper()
		if err := m.UnmarshalBinary(unhex(t, h)); err != nil {
			t.Fatalf("%s: %s: %v", name, what, err)
		}
	}
	set := must(NewPrivateSet(PrivateSetConfig{Kind: kind, Suite: v.Suite, Epoch: true, EpochDelta: v.EpochDelta, Workers: workers,
		rand: mrand.NewChaCha8(seedOf(t, v.SetSeed))}))
	for _, d := range v.ServerDigests {
		set.Add([32]byte(unhex(t, d)))
	}
	if err := set.Finish(); err != nil {
		t.Fatal(err)
	}
	ss := must(NewEpochSetupServer(EpochSetupConfig{CanonVersion: 1, ChunkSize: v.ChunkSize, Workers: workers, ExpiresAt: expires,
		rand: mrand.NewChaCha8(seedOf(t, v.SetupServerSeed))}, set))
	defer ss.Close()
	sc := must(NewEpochSetupClient(EpochSetupClientConfig{Kind: kind, CanonVersion: 1, Workers: workers, Suites: vectorOffer(v.Suite),
		Now: func() time.Time { return now }, rand: mrand.NewChaCha8(seedOf(t, v.SetupClientSeed))}))
	defer sc.Close()

	// The setup (SPEC.md §10.12.1).
	check("setup ClientHello", must(sc.Hello().MarshalBinary()), unhex(t, v.SetupHello))
	var hello wire.ClientHello
	parse("setup ClientHello", v.SetupHello, &hello)
	params := must(ss.ReceiveHello(&hello))
	check("EpochParams", must(params.MarshalBinary()), unhex(t, v.EpochParams))
	var p wire.EpochParams
	parse("EpochParams", v.EpochParams, &p)
	if err := sc.ReceiveParams(&p); err != nil {
		t.Fatal(err)
	}
	for _, want := range v.ServerElements {
		ch, ok, err := ss.NextServerElements()
		if !ok || err != nil {
			t.Fatalf("%s: the server sent fewer element chunks than the vector (%v)", name, err)
		}
		check("ServerElementChunk", must(ch.MarshalBinary()), unhex(t, want))
		var got wire.ElementChunk
		if err := got.UnmarshalBinary(unhex(t, want), wire.TypeServerElements); err != nil {
			t.Fatal(err)
		}
		if err := sc.ReceiveServerElements(&got); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := ss.NextServerElements(); ok {
		t.Fatalf("%s: the server sent more element chunks than the vector", name)
	}
	check("ClientKey", must(must(sc.ClientKey()).MarshalBinary()), unhex(t, v.ClientKey))
	var k wire.ClientKey
	parse("ClientKey", v.ClientKey, &k)
	if err := ss.ReceiveClientKey(&k); err != nil {
		t.Fatal(err)
	}
	for _, want := range v.Tags {
		ch, ok, err := sc.NextTags()
		if !ok || err != nil {
			t.Fatalf("%s: the client sent fewer tag chunks than the vector (%v)", name, err)
		}
		check("TagChunk", must(ch.MarshalBinary()), unhex(t, want))
		var got wire.TagChunk
		parse("TagChunk", want, &got)
		if err := ss.ReceiveTags(&got); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := sc.NextTags(); ok {
		t.Fatalf("%s: the client sent more tag chunks than the vector", name)
	}
	ep, ready, err := ss.Epoch()
	if err != nil {
		t.Fatal(err)
	}
	check("EpochReady", must(ready.MarshalBinary()), unhex(t, v.EpochReady))
	var r wire.EpochReady
	parse("EpochReady", v.EpochReady, &r)
	ek := must(sc.ReceiveReady(&r))

	// One session against the epoch (SPEC.md §10.12.2).
	var cd [][32]byte
	for _, d := range v.ClientDigests {
		cd = append(cd, [32]byte(unhex(t, d)))
	}
	c := must(NewEpochClient(PrivateClientConfig{Kind: kind, CanonVersion: 1, Workers: workers,
		rand: mrand.NewChaCha8(seedOf(t, v.ClientSeed))}, ek, cd))
	defer c.Close()
	s := must(NewEpochServer(PrivateServerConfig{CanonVersion: 1, ChunkSize: v.ChunkSize, Threshold: v.Threshold, Workers: workers,
		rand: mrand.NewChaCha8(seedOf(t, v.ServerSeed))}, ep))
	defer s.Close()
	check("session ClientHello", must(c.Hello().MarshalBinary()), unhex(t, v.SessionHello))
	check("EpochTicket", must(c.Ticket().MarshalBinary()), unhex(t, v.EpochTicket))
	var sh wire.ClientHello
	parse("session ClientHello", v.SessionHello, &sh)
	var ticket wire.EpochTicket
	parse("EpochTicket", v.EpochTicket, &ticket)
	pp := must(s.ReceiveHello(&sh, &ticket, now))
	check("PrivateParams", must(pp.MarshalBinary()), unhex(t, v.PrivateParams))
	var gotParams wire.PrivateParams
	parse("PrivateParams", v.PrivateParams, &gotParams)
	if err := c.ReceiveParams(&gotParams); err != nil {
		t.Fatal(err)
	}
	for _, want := range v.Blinded {
		ch, ok, err := c.NextBlinded()
		if !ok || err != nil {
			t.Fatalf("%s: the client sent fewer blinded chunks than the vector (%v)", name, err)
		}
		check("BlindedChunk", must(ch.MarshalBinary()), unhex(t, want))
		var got wire.ElementChunk
		if err := got.UnmarshalBinary(unhex(t, want), wire.TypeBlinded); err != nil {
			t.Fatal(err)
		}
		if err := s.ReceiveBlinded(&got); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := c.NextBlinded(); ok {
		t.Fatalf("%s: the client sent more blinded chunks than the vector", name)
	}
	rel := must(s.Release())
	check("PrivateRelease", must(rel.MarshalBinary()), unhex(t, v.Release))
	var gotRel wire.PrivateRelease
	parse("PrivateRelease", v.Release, &gotRel)
	res, err := c.ReceiveRelease(&gotRel)
	if err != nil {
		t.Fatal(err)
	}
	if res.String() != v.Result {
		t.Errorf("%s: result %q, want %q", name, res, v.Result)
	}
	if v.Overlap < res.Low || v.Overlap > res.High {
		t.Errorf("%s: true overlap %d outside the released interval %d–%d", name, v.Overlap, res.Low, res.High)
	}
}
