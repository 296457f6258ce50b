package psi

import (
	"fmt"
	mrand "math/rand/v2"
	"testing"

	"filippo.io/edwards25519"

	"github.com/overlap-psi/overlap/psi/gcs"
	"github.com/overlap-psi/overlap/psi/internal/r255"
	"github.com/overlap-psi/overlap/psi/wire"
)

// The limits of exact mode, shown rather than claimed (SPEC.md §8.2,
// SECURITY.md "Exact mode"). These tests pass because exact mode leaks: if
// one of them fails, the protocol changed and the documents that fence exact
// mode must be re-read.

// An advertiser running the unmodified client learns whether one chosen
// person is in the platform's set, in one session, by padding that person's
// digest with made-up ones up to the minimum list size: the count is 1 or 0.
func TestExactModeUnmodifiedClientTestsOnePerson(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(3, 4))
	_, server := sets(rng, 0, 2000, 0)
	for i, onPlatform := range []bool{true, false, true, false} {
		target := digest(fmt.Sprintf("target-%d", i))
		if onPlatform {
			target = server[rng.IntN(len(server))]
		}
		list := [][32]byte{target}
		for j := range 99 { // made-up digests: nobody's identifier
			list = append(list, digest(fmt.Sprintf("made-up-%d-%d-%d", i, j, rng.Uint64())))
		}
		res, err := run(t, ClientConfig{Kind: KindEmail}, ServerConfig{}, list, prepare(t, KindEmail, server), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Overlap == 1; got != onPlatform {
			t.Errorf("target %d: overlap %d, but on platform = %t: the one-person membership test no longer works; update SPEC.md §8.2 and SECURITY.md", i, res.Overlap, onPlatform)
		}
	}
}

// A modified client that blinds each identifier with its own exponent learns
// exactly which of its identifiers are in the platform's set, whatever the
// server's shuffle, in one session of any list size the server accepts.
func TestExactModeModifiedClientLearnsWhichMatched(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(5, 6))
	const n = 60
	list, server := sets(rng, n, 3000, 17)
	inServer := make(map[[32]byte]bool, len(server))
	for _, d := range server {
		inServer[d] = true
	}

	// The honest client supplies the hello and checks the parameters; the
	// blinded elements are the attacker's own.
	c, err := NewClient(ClientConfig{Kind: KindEmail}, list)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := NewServer(ServerConfig{}, prepare(t, KindEmail, server))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	params, err := s.ReceiveHello(c.Hello())
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]*edwards25519.Scalar, n)
	inverses := make([]*edwards25519.Scalar, n)
	blinded := make([]byte, 0, n*r255.ElementSize)
	h := hashers[KindEmail]
	for i, d := range list {
		keys[i] = randomScalar(rng)
		inverses[i] = edwards25519.NewScalar().Invert(keys[i])
		e := h.Hash(r255.NewElement(), d[:])
		blinded = e.ScalarMult(keys[i], e).AppendBytes(blinded)
	}
	if err := s.ReceiveBlinded(&wire.ElementChunk{Type: wire.TypeBlinded, Elements: blinded}); err != nil {
		t.Fatal(err)
	}
	var evaluated [][]byte
	for {
		ch, ok, err := s.NextEvaluated()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		for i := range ch.Count() {
			evaluated = append(evaluated, ch.Element(i))
		}
	}
	gp := gcs.Params{N: uint64(params.ServerSize), M: params.GCSM, K: params.GCSK}
	dec, err := gcs.NewDecoder(gp)
	if err != nil {
		t.Fatal(err)
	}
	inSet := make(map[gcs.Uint128]bool)
	for {
		ch, ok, err := s.NextSetChunk()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if err := dec.Chunk(int(ch.Count), ch.Data, func(v gcs.Uint128) { inSet[v] = true }); err != nil {
			t.Fatal(err)
		}
	}

	// For every returned element, try every identifier's inverse exponent:
	// the one that gives a tag in the set names a matched identifier.
	matched := make(map[int]bool)
	enc := make([]byte, r255.ElementSize)
	for _, b := range evaluated {
		e := must(r255.NewElement().SetCanonicalBytes(b))
		for i := range list {
			p := []r255.Element{*r255.NewElement().ScalarMult(inverses[i], e)}
			r255.CofactorBytes(p, enc)
			if inSet[gcs.Reduce(tagOf(&params.Salt, enc), gp.F())] {
				matched[i] = true
			}
		}
	}
	for i, d := range list {
		if matched[i] != inServer[d] {
			t.Errorf("identifier %d: learned matched = %t, truth %t", i, matched[i], inServer[d])
		}
	}
	if len(matched) != 17 {
		t.Errorf("learned %d matches, want the 17 of the overlap", len(matched))
	}
}
