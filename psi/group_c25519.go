package psi

import (
	"errors"
	"io"
	"sync"

	"github.com/overlap-psi/overlap/psi/internal/c25519"
)

// Suite 2: the prime-order subgroup of curve25519, X25519 ladder (SPEC.md
// §12).

// s2Key is a suite-2 key: a clamped scalar with a clamped inverse
// (SPEC.md §12.4).
type s2Key struct{ k *c25519.Key }

// errS2Element is the reason given for a suite-2 element that fails the
// checks of SPEC.md §12.5. It names no byte of the element.
var errS2Element = errors.New("not a valid curve25519 element (non-canonical, on the twist or of low order)")

func newS2Key(r io.Reader) (*s2Key, error) {
	k, err := c25519.NewKey(r)
	if err != nil {
		return nil, err
	}
	return &s2Key{k: k}, nil
}

func s2KeyFromBytes(b [32]byte) (*s2Key, error) {
	k, err := c25519.KeyFromBytes(b)
	if err != nil {
		return nil, errors.New("psi: not a valid suite-2 key")
	}
	return &s2Key{k: k}, nil
}

func (k *s2Key) bytes() [32]byte { return k.k.Bytes() }
func (k *s2Key) erase()          { k.k.Erase() }

func (k *s2Key) baseMult() (out [32]byte) {
	k.k.BaseMult(&out)
	return out
}

// s2Decode checks a peer's element (SPEC.md §12.5, checks 1–4).
func s2Decode(out *[32]byte, b []byte) error {
	if len(b) != c25519.ElementSize {
		return errS2Element
	}
	copy(out[:], b)
	if !c25519.Valid(out) {
		return errS2Element
	}
	return nil
}

// s2Err maps the c25519 errors to the reasons peers are given.
func s2Err(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, c25519.ErrInvalidElement):
		return errS2Element
	case errors.Is(err, c25519.ErrIdentity):
		return errors.New("is the identity element")
	}
	return err
}

func (k *s2Key) mult(out, in *[32]byte) error { return s2Err(k.k.Mult(out, in)) }

func (k *s2Key) multPeer(out *[32]byte, in []byte) error {
	var e [32]byte
	if err := s2Decode(&e, in); err != nil {
		return err
	}
	return s2Err(k.k.Mult(out, &e))
}

// s2Group is how many elements the suite-2 batches take at a time: the
// lanes of c25519's vector ladder.
const s2Group = 8

func (k *s2Key) multOwn(p [][32]byte, out []byte) error {
	var res [s2Group][32]byte
	for lo := 0; lo < len(p); lo += s2Group {
		hi := min(lo+s2Group, len(p))
		if _, err := k.k.MultOwnBatch(res[:hi-lo], p[lo:hi]); err != nil {
			return s2Err(err)
		}
		for j := range hi - lo {
			copy(out[32*(lo+j):], res[j][:])
		}
	}
	return nil
}

// multPeers raises the peer's elements elem(lo) to elem(hi-1) to k, each
// checked first (SPEC.md §12.5), and hands each result to emit in order.
// On a bad element it returns its index and the reason.
func (k *s2Key) multPeers(lo, hi int, elem func(int) []byte, emit func(int, *[32]byte)) (int, error) {
	return s2Batches(lo, hi, elem, emit, k.k.MultBatch)
}

func (k *s2Key) invMultPeer(in, out []byte) (int, error) {
	return s2Batches(0, len(in)/32, func(i int) []byte { return in[32*i : 32*i+32] },
		func(i int, e *[32]byte) { copy(out[32*i:], e[:]) }, k.k.InvMultBatch)
}

// s2Batches runs mult, a c25519 batch multiplication that checks its
// inputs, on the elements elem(lo..hi-1) a group at a time.
func s2Batches(lo, hi int, elem func(int) []byte, emit func(int, *[32]byte), mult func(out, in [][32]byte) (int, error)) (int, error) {
	var in, res [s2Group][32]byte
	for g := lo; g < hi; g += s2Group {
		n := min(s2Group, hi-g)
		for j := range n {
			b := elem(g + j)
			if len(b) != c25519.ElementSize {
				return g + j, errS2Element
			}
			in[j] = [32]byte(b)
		}
		bad, err := mult(res[:n], in[:n])
		if err != nil {
			n = bad // the results before the bad element are emitted, as one at a time
		}
		for j := range n {
			emit(g+j, &res[j])
		}
		if err != nil {
			return g + bad, s2Err(err)
		}
	}
	return 0, nil
}

// s2BaseMults and s2MultKeys are baseMults and multDecodedKeys in suite 2.
func s2BaseMults(keys []*gkey, out [][32]byte) {
	c25519.BaseMultBatch(out, s2Keys(keys))
}

func s2MultKeys(keys []*gkey, e *[32]byte, out [][32]byte) error {
	_, err := c25519.MultKeys(out, e, s2Keys(keys))
	return s2Err(err)
}

func s2Keys(keys []*gkey) []*c25519.Key {
	ks := make([]*c25519.Key, len(keys))
	for j, k := range keys {
		ks[j] = k.s2.k
	}
	return ks
}

// DST2 returns the suite-2 hash-to-group domain-separation tag for
// identifiers of kind k (SPEC.md §12.3).
func DST2(k Kind) []byte {
	if k == dummyKind {
		return dummyDST2
	}
	return []byte("OVERLAP-V1-" + k.String() + "-curve25519_XMD:SHA-512_ELL2_RO_")
}

// s2Hashers pools suite-2 hashers per kind: a c25519.Hasher keeps scratch
// and serves one goroutine at a time.
var s2Hashers = func() map[Kind]*sync.Pool {
	m := make(map[Kind]*sync.Pool)
	for _, k := range append([]Kind{dummyKind}, Kinds...) {
		dst := DST2(k)
		m[k] = &sync.Pool{New: func() any { return c25519.NewHasher(dst) }}
	}
	return m
}()

// s2HashBatch sets out[i] to the suite-2 hash of digests[i].
func s2HashBatch(kind Kind, digests, out [][32]byte) {
	pool := s2Hashers[kind]
	h := pool.Get().(*c25519.Hasher)
	defer pool.Put(h)
	msgs := make([][]byte, len(digests))
	for i := range digests {
		msgs[i] = digests[i][:]
	}
	h.HashBatch(out, msgs)
}
