//go:build ignore

// This program generates the test vectors of SPEC.md §9 into
// ../testdata/vectors. Run it with `go generate ./psi/`.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"filippo.io/edwards25519/field"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/internal/c25519"
	"github.com/overlap-psi/overlap/psi/internal/r255"
	"github.com/overlap-psi/overlap/psi/wire"
)

type hashVector struct {
	Suite     int    `json:"suite,omitempty"` // absent: suite 1
	Kind      string `json:"kind"`
	Canonical string `json:"canonical"`
	Digest    string `json:"digest"`
	Element   string `json:"element"`
}

type sessionVector struct {
	Name          string   `json:"name"`
	Suite         int      `json:"suite,omitempty"` // absent: suite 1
	Kind          string   `json:"kind"`
	ClientSeed    string   `json:"client_seed"`
	SetSeed       string   `json:"set_seed"`
	ServerSeed    string   `json:"server_seed"`
	ChunkSize     int      `json:"chunk_size"`
	ClientDigests []string `json:"client_digests"`
	ServerDigests []string `json:"server_digests"`
	Overlap       int      `json:"overlap"`
	ClientHello   string   `json:"client_hello"`
	ServerParams  string   `json:"server_params"`
	Blinded       []string `json:"blinded"`
	Evaluated     []string `json:"evaluated"`
	ServerSet     []string `json:"server_set"`
}

// privateSessionVector is a whole private-mode session (SPEC.md §10.7).
type privateSessionVector struct {
	Name           string   `json:"name"`
	Suite          int      `json:"suite,omitempty"` // absent: suite 1
	Kind           string   `json:"kind"`
	ClientSeed     string   `json:"client_seed"`
	SetSeed        string   `json:"set_seed"`
	ServerSeed     string   `json:"server_seed"`
	Ringers        int      `json:"ringers"`
	ChunkSize      int      `json:"chunk_size"`
	Threshold      int      `json:"threshold"`
	ClientDigests  []string `json:"client_digests"`
	ServerDigests  []string `json:"server_digests"`
	Overlap        int      `json:"overlap"`
	ClientHello    string   `json:"client_hello"`
	PrivateParams  string   `json:"private_params"`
	ServerElements []string `json:"server_elements"`
	ClientKey      string   `json:"client_key"`
	Blinded        []string `json:"blinded"`
	Returned       []string `json:"returned"`
	Release        string   `json:"release"`
	Result         string   `json:"result"`
}

// epochVector is an epoch's setup (SPEC.md §10.12.1) followed by one epoch
// session against it (§10.12.2).
type epochVector struct {
	Name            string   `json:"name"`
	Suite           int      `json:"suite,omitempty"` // absent: suite 1
	Kind            string   `json:"kind"`
	EpochDelta      float64  `json:"epoch_delta"`
	SetSeed         string   `json:"set_seed"`
	SetupServerSeed string   `json:"setup_server_seed"`
	SetupClientSeed string   `json:"setup_client_seed"`
	ClientSeed      string   `json:"client_seed"`
	ServerSeed      string   `json:"server_seed"`
	ChunkSize       int      `json:"chunk_size"`
	Threshold       int      `json:"threshold"`
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

type negativeVector struct {
	Suite   int    `json:"suite,omitempty"` // absent: suite 1
	Name    string `json:"name"`
	Expect  string `json:"expect"`
	Hello   string `json:"hello"`
	Message string `json:"message"`
}

func seed(label string) [32]byte { return sha256.Sum256([]byte("overlap vectors " + label)) }

func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func hexs(b []byte) string { return hex.EncodeToString(b) }

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}

// offer is what a vector's client offers: nothing (suite 1 only, the
// 12-byte hello) for suite 1, and the suite itself otherwise.
func offer(suite psi.Suite) []psi.Suite {
	if suite == psi.Suite1 {
		return nil
	}
	return []psi.Suite{suite}
}

// suiteField is the vector's suite field: absent for suite 1.
func suiteField(suite psi.Suite) int {
	if suite == psi.Suite1 {
		return 0
	}
	return int(suite)
}

func session(suite psi.Suite, name string, kind psi.Kind, chunk int, client, server []string, overlap int) sessionVector {
	v := sessionVector{Name: name, Suite: suiteField(suite), Kind: kind.String(), ChunkSize: chunk, Overlap: overlap}
	cs, ss, vs := seed(name+" client"), seed(name+" set"), seed(name+" server")
	v.ClientSeed, v.SetSeed, v.ServerSeed = hexs(cs[:]), hexs(ss[:]), hexs(vs[:])
	var cd, sd [][32]byte
	for _, s := range client {
		d := digest(s)
		cd = append(cd, d)
		v.ClientDigests = append(v.ClientDigests, hexs(d[:]))
	}
	for _, s := range server {
		d := digest(s)
		sd = append(sd, d)
		v.ServerDigests = append(v.ServerDigests, hexs(d[:]))
	}
	set := must(psi.NewSet(psi.VectorSetConfig(psi.SetConfig{Kind: kind, Suite: suite, Workers: 1}, ss)))
	for _, d := range sd {
		set.Add(d)
	}
	if err := set.Finish(); err != nil {
		log.Fatal(err)
	}
	c := must(psi.NewClient(psi.VectorClientConfig(psi.ClientConfig{Kind: kind, CanonVersion: 1, Workers: 1, Suites: offer(suite)}, cs), cd))
	s := must(psi.NewServer(psi.VectorServerConfig(psi.ServerConfig{CanonVersion: 1, ChunkSize: chunk, Workers: 1}, vs), set))
	hello := c.Hello()
	v.ClientHello = hexs(must(hello.MarshalBinary()))
	params := must(s.ReceiveHello(hello))
	v.ServerParams = hexs(must(params.MarshalBinary()))
	if err := c.ReceiveParams(params); err != nil {
		log.Fatal(err)
	}
	pump(&v.Blinded, c.NextBlinded, s.ReceiveBlinded)
	pump(&v.Evaluated, s.NextEvaluated, c.ReceiveEvaluated)
	pump(&v.ServerSet, s.NextSetChunk, c.ReceiveSetChunk)
	res := must(c.Result())
	if res.Overlap != overlap {
		log.Fatalf("%s: overlap %d, want %d", name, res.Overlap, overlap)
	}
	return v
}

func privateSession(suite psi.Suite, name string, kind psi.Kind, ringers, chunk, threshold int, client, server []string, overlap int) privateSessionVector {
	v := privateSessionVector{Name: name, Suite: suiteField(suite), Kind: kind.String(), Ringers: ringers, ChunkSize: chunk, Threshold: threshold, Overlap: overlap}
	cs, ss, vs := seed(name+" client"), seed(name+" set"), seed(name+" server")
	v.ClientSeed, v.SetSeed, v.ServerSeed = hexs(cs[:]), hexs(ss[:]), hexs(vs[:])
	var cd [][32]byte
	for _, s := range client {
		d := digest(s)
		cd = append(cd, d)
		v.ClientDigests = append(v.ClientDigests, hexs(d[:]))
	}
	set := must(psi.NewPrivateSet(psi.VectorPrivateSetConfig(psi.PrivateSetConfig{Kind: kind, Suite: suite, Ringers: ringers, Workers: 1}, ss)))
	for _, s := range server {
		d := digest(s)
		set.Add(d)
		v.ServerDigests = append(v.ServerDigests, hexs(d[:]))
	}
	if err := set.Finish(); err != nil {
		log.Fatal(err)
	}
	c := must(psi.NewPrivateClient(psi.VectorPrivateClientConfig(psi.PrivateClientConfig{Kind: kind, CanonVersion: 1, Workers: 1, Suites: offer(suite)}, cs), cd))
	s := must(psi.NewPrivateServer(psi.VectorPrivateServerConfig(psi.PrivateServerConfig{CanonVersion: 1,
		ChunkSize: chunk, Threshold: uint32(threshold), Workers: 1}, vs), set))
	hello := c.Hello()
	v.ClientHello = hexs(must(hello.MarshalBinary()))
	params := must(s.ReceiveHello(hello))
	v.PrivateParams = hexs(must(params.MarshalBinary()))
	if err := c.ReceiveParams(params); err != nil {
		log.Fatal(err)
	}
	pump(&v.ServerElements, s.NextServerElements, c.ReceiveServerElements)
	key := must(c.ClientKey())
	v.ClientKey = hexs(must(key.MarshalBinary()))
	if err := s.ReceiveClientKey(key); err != nil {
		log.Fatal(err)
	}
	pump(&v.Blinded, c.NextBlinded, s.ReceiveBlinded)
	pump(&v.Returned, c.NextReturned, s.ReceiveReturned)
	rel := must(s.Release())
	v.Release = hexs(must(rel.MarshalBinary()))
	v.Result = must(c.ReceiveRelease(rel)).String()
	return v
}

func epochSession(suite psi.Suite, name string, kind psi.Kind, delta float64, chunk, threshold int, client, server []string, overlap int) epochVector {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := epochVector{Name: name, Suite: suiteField(suite), Kind: kind.String(), EpochDelta: delta, ChunkSize: chunk, Threshold: threshold,
		Now: now.Unix(), ExpiresAt: now.Add(24 * time.Hour).Unix(), Overlap: overlap}
	ss, es, ec, cs, vs := seed(name+" set"), seed(name+" setup server"), seed(name+" setup client"), seed(name+" client"), seed(name+" server")
	v.SetSeed, v.SetupServerSeed, v.SetupClientSeed, v.ClientSeed, v.ServerSeed = hexs(ss[:]), hexs(es[:]), hexs(ec[:]), hexs(cs[:]), hexs(vs[:])
	var cd [][32]byte
	for _, s := range client {
		d := digest(s)
		cd = append(cd, d)
		v.ClientDigests = append(v.ClientDigests, hexs(d[:]))
	}
	set := must(psi.NewPrivateSet(psi.VectorPrivateSetConfig(psi.PrivateSetConfig{Kind: kind, Suite: suite, Epoch: true, EpochDelta: delta, Workers: 1}, ss)))
	for _, s := range server {
		d := digest(s)
		set.Add(d)
		v.ServerDigests = append(v.ServerDigests, hexs(d[:]))
	}
	if err := set.Finish(); err != nil {
		log.Fatal(err)
	}
	// The setup.
	ss1 := must(psi.NewEpochSetupServer(psi.VectorEpochSetupConfig(psi.EpochSetupConfig{CanonVersion: 1, ChunkSize: chunk, Workers: 1,
		ExpiresAt: time.Unix(v.ExpiresAt, 0)}, es), set))
	sc := must(psi.NewEpochSetupClient(psi.VectorEpochSetupClientConfig(psi.EpochSetupClientConfig{Kind: kind, CanonVersion: 1, Workers: 1,
		Now: func() time.Time { return now }, Suites: offer(suite)}, ec)))
	hello := sc.Hello()
	v.SetupHello = hexs(must(hello.MarshalBinary()))
	params := must(ss1.ReceiveHello(hello))
	v.EpochParams = hexs(must(params.MarshalBinary()))
	if err := sc.ReceiveParams(params); err != nil {
		log.Fatal(err)
	}
	pump(&v.ServerElements, ss1.NextServerElements, sc.ReceiveServerElements)
	key := must(sc.ClientKey())
	v.ClientKey = hexs(must(key.MarshalBinary()))
	if err := ss1.ReceiveClientKey(key); err != nil {
		log.Fatal(err)
	}
	pump(&v.Tags, sc.NextTags, ss1.ReceiveTags)
	ep, ready, err := ss1.Epoch()
	if err != nil {
		log.Fatal(err)
	}
	v.EpochReady = hexs(must(ready.MarshalBinary()))
	ek := must(sc.ReceiveReady(ready))
	// One session against the epoch.
	c := must(psi.NewEpochClient(psi.VectorPrivateClientConfig(psi.PrivateClientConfig{Kind: kind, CanonVersion: 1, Workers: 1}, cs), ek, cd))
	s := must(psi.NewEpochServer(psi.VectorPrivateServerConfig(psi.PrivateServerConfig{CanonVersion: 1, ChunkSize: chunk,
		Threshold: uint32(threshold), Workers: 1}, vs), ep))
	v.SessionHello = hexs(must(c.Hello().MarshalBinary()))
	v.EpochTicket = hexs(must(c.Ticket().MarshalBinary()))
	pp := must(s.ReceiveHello(c.Hello(), c.Ticket(), now))
	v.PrivateParams = hexs(must(pp.MarshalBinary()))
	if err := c.ReceiveParams(pp); err != nil {
		log.Fatal(err)
	}
	pump(&v.Blinded, c.NextBlinded, s.ReceiveBlinded)
	rel := must(s.Release())
	v.Release = hexs(must(rel.MarshalBinary()))
	v.Result = must(c.ReceiveRelease(rel)).String()
	return v
}

// pump moves every chunk next yields to receive, recording its bytes in
// out.
func pump[C interface{ MarshalBinary() ([]byte, error) }](out *[]string, next func() (C, bool, error), receive func(C) error) {
	for {
		ch, ok, err := next()
		if err != nil {
			log.Fatal(err)
		}
		if !ok {
			return
		}
		*out = append(*out, hexs(must(ch.MarshalBinary())))
		if err := receive(ch); err != nil {
			log.Fatal(err)
		}
	}
}

func negatives() []negativeVector {
	hello := func(n uint32) string {
		return hexs(must((&wire.ClientHello{Mode: wire.ModeExact, Kind: 1, CanonVersion: 1, ClientSize: n}).MarshalBinary()))
	}
	h := r255.NewHasher([]byte("overlap negative vectors"))
	good := func(i byte) []byte { return h.Hash(r255.NewElement(), []byte{i}).Bytes() }
	chunk := func(seq uint32, elems ...[]byte) []byte {
		var all []byte
		for _, e := range elems {
			all = append(all, e...)
		}
		return must((&wire.ElementChunk{Type: wire.TypeBlinded, Seq: seq, Elements: all}).MarshalBinary())
	}
	raw := func(b []byte, edit func([]byte) []byte) string { return hexs(edit(append([]byte(nil), b...))) }
	nonCanonical := must(hex.DecodeString("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"))
	notOnCurve := must(hex.DecodeString("26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371"))
	three := chunk(0, good(1), good(2), good(3))
	return []negativeVector{
		{0, "identity element", "psi.ErrPeer", hello(3), hexs(chunk(0, good(1), make([]byte, 32), good(3)))},
		{0, "non-canonical encoding", "psi.ErrPeer", hello(3), hexs(chunk(0, good(1), nonCanonical, good(3)))},
		{0, "not a point", "psi.ErrPeer", hello(3), hexs(chunk(0, good(1), notOnCurve, good(3)))},
		{0, "31-byte element", "wire.ErrLength", hello(3), raw(three, func(b []byte) []byte { return b[:len(b)-1] })},
		{0, "33-byte element", "wire.ErrLength", hello(3), raw(three, func(b []byte) []byte { return append(b, 0) })},
		{0, "duplicate element", "psi.ErrPeer", hello(3), hexs(chunk(0, good(1), good(2), good(1)))},
		{0, "count disagrees with the data", "wire.ErrLength", hello(3), raw(three, func(b []byte) []byte { b[9] = 4; return b })},
		{0, "more elements than announced", "psi.ErrPeer", hello(2), hexs(three)},
		{0, "wrong version", "wire.ErrVersion", hello(3), raw(three, func(b []byte) []byte { b[0] = 2; return b })},
		{0, "wrong message type", "wire.ErrType", hello(3), raw(three, func(b []byte) []byte { b[1] = byte(wire.TypeEvaluated); return b })},
		{0, "out-of-order chunk", "psi.ErrPeer", hello(3), hexs(chunk(1, good(1), good(2), good(3)))},
		{0, "oversized request", "wire.ErrLimit", hello(3), raw(three, func(b []byte) []byte { b[6] = 0xFF; return b })},
		{0, "request over the policy maximum", "psi.ErrParams", hello(1 << 20), ""},
		{0, "hello over the protocol maximum", "wire.ErrLimit", raw(must(hex.DecodeString(hello(3))), func(b []byte) []byte { b[8] = 0x7F; return b }), ""},
	}
}

// negativesSuite2 are suite 2's elements that MUST be refused (SPEC.md
// §12.5 and §12.6), each in a BlindedChunk of three with two valid ones.
func negativesSuite2() []negativeVector {
	hello := hexs(must((&wire.ClientHello{Mode: wire.ModeExact, Kind: 1, CanonVersion: 1, ClientSize: 3,
		Suites: wire.SuitesOf(psi.Suite2)}).MarshalBinary()))
	h := c25519.NewHasher([]byte("overlap negative vectors"))
	good := func(i byte) [32]byte {
		var e [32]byte
		h.Hash(&e, []byte{i})
		return e
	}
	chunk := func(elems ...[32]byte) string {
		var all []byte
		for _, e := range elems {
			all = append(all, e[:]...)
		}
		return hexs(must((&wire.ElementChunk{Type: wire.TypeBlinded, Elements: all}).MarshalBinary()))
	}
	le := func(h string) [32]byte { return [32]byte(must(hex.DecodeString(h))) }
	// The first u ≥ 2 whose point is on the twist: small, so canonical
	// and not of low order, and refused only by the curve check.
	var twist [32]byte
	for u := byte(2); ; u++ {
		twist = [32]byte{u}
		if !c25519.Valid(&twist) {
			break
		}
	}
	// P + (0, 0), the point of order 2, has u-coordinate 1/u: a valid
	// encoding, distinct from P, whose products equal P's (§12.6).
	p := good(1)
	fu := must(new(field.Element).SetBytes(p[:]))
	torsioned := [32]byte(new(field.Element).Invert(fu).Bytes())
	top := good(1)
	top[31] |= 0x80
	v := func(name string, bad [32]byte) negativeVector {
		return negativeVector{2, name, "psi.ErrPeer", hello, chunk(good(2), bad, good(3))}
	}
	return []negativeVector{
		v("zero: the identity, order 2", [32]byte{}),
		v("one: order 4", [32]byte{1}),
		v("order 8 (first)", le("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")),
		v("order 8 (second)", le("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157")),
		v("p − 1: the twist's order 4", le("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")),
		v("p: non-canonical zero", le("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")),
		v("p + 9: non-canonical base point", le("f6ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")),
		v("bit 255 set", top),
		v(fmt.Sprintf("on the twist (u = %d)", twist[0]), twist),
		{2, "torsion variant: P and P + (0, 0), equal products", "psi.ErrPeer", hello, chunk(good(2), p, torsioned)},
		{2, "duplicate element", "psi.ErrPeer", hello, chunk(good(2), p, good(2))},
		{2, "valid: three distinct elements", "", hello, chunk(good(2), p, good(3))},
	}
}

// hashInputs are the identifiers of the hash-to-group vectors.
var hashInputs = []struct {
	kind psi.Kind
	s    string
}{{psi.KindEmail, "alice@example.com"}, {psi.KindEmail, ""}, {psi.KindPhone, "+14155552671"}, {psi.KindID, "38400000-8cf0-11bd-b23e-10b96e40000d"}}

func write(dir, name string, v any) {
	b := must(json.MarshalIndent(v, "", "  "))
	if err := os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}

func main() {
	dir := filepath.Join("..", "testdata", "vectors")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	var hv []hashVector
	for _, c := range hashInputs {
		d := digest(c.s)
		e := r255.NewHasher(psi.DST(c.kind)).Hash(r255.NewElement(), d[:])
		hv = append(hv, hashVector{0, c.kind.String(), c.s, hexs(d[:]), hexs(e.Bytes())})
	}
	write(dir, "hash_to_group.json", hv)

	var client, server []string
	for i := range 20 {
		client = append(client, fmt.Sprintf("user%d@example.com", i))
	}
	for i := 12; i < 40; i++ {
		server = append(server, fmt.Sprintf("user%d@example.com", i))
	}
	// Suite 1's vectors, then suite 2's (SPEC.md §12) in files of their
	// own, with the same inputs.
	for _, suite := range psi.Suites {
		suffix := ""
		if suite != psi.Suite1 {
			suffix = fmt.Sprintf("_suite%d", suite)
		}
		if suite != psi.Suite1 {
			var hv2 []hashVector
			for _, c := range hashInputs {
				d := digest(c.s)
				var e [32]byte
				c25519.NewHasher(psi.DST2(c.kind)).Hash(&e, d[:])
				hv2 = append(hv2, hashVector{int(suite), c.kind.String(), c.s, hexs(d[:]), hexs(e[:])})
			}
			write(dir, "hash_to_group"+suffix+".json", hv2)
		}
		write(dir, "session"+suffix+".json", []sessionVector{
			session(suite, "email 20/28 overlap 8", psi.KindEmail, 6, client, server, 8),
			session(suite, "phone 1/1 overlap 1", psi.KindPhone, 4096, []string{"+14155552671"}, []string{"+14155552671"}, 1),
		})
		write(dir, "private_session"+suffix+".json", []privateSessionVector{
			privateSession(suite, "private email 20/28 overlap 8, threshold 1", psi.KindEmail, psi.DefaultRingers, 400, 1, client, server, 8),
			privateSession(suite, "private phone 1/1 overlap 1, under the threshold", psi.KindPhone, 4, 4096, psi.DefaultThreshold,
				[]string{"+14155552671"}, []string{"+14155552671"}, 1),
		})
		// Epochs use a δ_E bound of 10^-2 (a test-only setting) so that the
		// setup carries the minimum bucket of 1,024 elements, not the 2^20 of
		// the protocol's 10^-6 (SPEC.md §10.12.4).
		write(dir, "epoch"+suffix+".json", []epochVector{
			epochSession(suite, "epoch email 20/28 overlap 8, threshold 1", psi.KindEmail, 1e-2, 400, 1, client, server, 8),
		})
	}
	write(dir, "negative.json", negatives())
	write(dir, "negative_suite2.json", negativesSuite2())
}
