package psi

import (
	"errors"
	"io"

	"filippo.io/edwards25519"

	"github.com/overlap-psi/overlap/psi/internal/r255"
)

// Suite 1: ristretto255 (SPEC.md §1, §3).

// s1Key is a suite-1 key: a nonzero scalar mod ℓ and, for a key that
// unblinds, its inverse.
type s1Key struct {
	k, inv *edwards25519.Scalar
}

// s1Elem is a suite-1 element in internal form.
type s1Elem = r255.Element

func newS1Key(r io.Reader, inverse bool) (*s1Key, error) {
	k, err := r255.RandomScalar(r)
	if err != nil {
		return nil, err
	}
	key := &s1Key{k: k}
	if inverse {
		key.inv = edwards25519.NewScalar().Invert(k)
	}
	return key, nil
}

func s1KeyFromBytes(b [32]byte) (*s1Key, error) {
	s, err := edwards25519.NewScalar().SetCanonicalBytes(b[:])
	clear(b[:])
	if err != nil || s.Equal(edwards25519.NewScalar()) == 1 {
		return nil, errors.New("psi: not a valid suite-1 scalar")
	}
	return &s1Key{k: s}, nil
}

func (k *s1Key) bytes() (b [32]byte) {
	copy(b[:], k.k.Bytes())
	return b
}

func (k *s1Key) erase() {
	r255.Erase(k.k)
	r255.Erase(k.inv)
}

func (k *s1Key) baseMult() (out [32]byte) {
	r255.NewElement().ScalarBaseMult(k.k).AppendBytes(out[:0])
	return out
}

func (k *s1Key) multDecoded(out *[32]byte, e *s1Elem) {
	var r r255.Element
	r.ScalarMult(k.k, e)
	r.AppendBytes(out[:0])
}

func (k *s1Key) multPeer(out *[32]byte, in []byte) error {
	var e r255.Element
	if err := decodePeer(&e, in); err != nil {
		return err
	}
	e.ScalarMult(k.k, &e)
	e.AppendBytes(out[:0])
	return nil
}

func (k *s1Key) multOwn(p []s1Elem, out []byte, tagEnc bool) {
	for i := range p {
		p[i].ScalarMult(k.k, &p[i])
	}
	if tagEnc {
		r255.CofactorBytes(p, out)
		return
	}
	for i := range p {
		p[i].AppendBytes(out[32*i : 32*i])
	}
}

func (k *s1Key) invMultPeerTags(in, out []byte) (int, error) {
	n := len(in) / 32
	p := make([]s1Elem, n)
	for i := range n {
		if err := decodePeer(&p[i], in[32*i:32*i+32]); err != nil {
			return i, err
		}
		p[i].ScalarMult(k.inv, &p[i])
	}
	r255.CofactorBytes(p, out)
	return 0, nil
}

func (k *s1Key) clone() *s1Key {
	out := &s1Key{k: edwards25519.NewScalar().Set(k.k)}
	if k.inv != nil {
		out.inv = edwards25519.NewScalar().Set(k.inv)
	}
	return out
}
