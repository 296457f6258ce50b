package psi

import (
	"errors"
	"fmt"
	"io"

	"github.com/overlap-psi/overlap/psi/wire"
)

// Suite names a ciphersuite (SPEC.md §12.1): the group, its encoding, its
// hash to the group and its keys. Everything else in the protocol is the
// same in every suite.
type Suite = wire.Suite

// The ciphersuites of SPEC.md §12.1.
const (
	// Suite1 is ristretto255 (SPEC.md §1, §3).
	Suite1 = wire.SuiteRistretto255
	// Suite2 is the prime-order subgroup of curve25519 with every
	// multiplication an X25519 Montgomery ladder (SPEC.md §12).
	Suite2 = wire.SuiteCurve25519
)

// Suites lists every suite, in code order.
var Suites = wire.Suites

// ParseSuite parses a suite number ("1" or "2").
func ParseSuite(s string) (Suite, error) { return wire.ParseSuite(s) }

// ParseSuiteList parses a comma-separated preference list of suites.
func ParseSuiteList(s string) ([]Suite, error) { return wire.ParseSuiteList(s) }

// SuiteError reports a ciphersuite one side does not serve or did not offer
// (SPEC.md §12.1). It is an [ErrParams].
type SuiteError struct {
	Offered wire.SuiteSet // what the client offered (zero: suite 1 only)
	Chosen  Suite         // what the server chose or serves; zero if none
	msg     string
}

func (e *SuiteError) Error() string { return ErrParams.Error() + ": " + e.msg }

// Is makes a SuiteError match ErrParams.
func (e *SuiteError) Is(target error) bool { return target == ErrParams }

// Detail says what is wrong, without the error's prefix.
func (e *SuiteError) Detail() string { return e.msg }

// ChooseSuite returns the first suite of the server's preference list prefs
// that the client offers, or a *SuiteError if there is none (SPEC.md
// §12.1). An empty prefs serves suite 1 only.
func ChooseSuite(offered wire.SuiteSet, prefs []Suite) (Suite, error) {
	if len(prefs) == 0 {
		prefs = []Suite{Suite1}
	}
	for _, s := range prefs {
		if offered.Has(s) {
			return s.Or1(), nil
		}
	}
	return 0, &SuiteError{Offered: offered, msg: fmt.Sprintf("the client offers ciphersuites %v, the server serves %v",
		offered.Or1(), wire.SuitesOf(prefs...))}
}

// offerSet returns the set a client offers for its configured suites (nil:
// suite 1 only), refusing unknown suites.
func offerSet(suites []Suite) (wire.SuiteSet, error) {
	for _, s := range suites {
		if !s.Or1().Known() {
			return 0, fmt.Errorf("psi: unknown ciphersuite %d", uint8(s))
		}
	}
	m := wire.SuitesOf(suites...)
	if m == wire.SuitesOf(Suite1) {
		m = 0 // the 12-byte hello of SPEC.md §5.2
	}
	return m, nil
}

// checkChosen checks the suite a server named in its parameters against
// what the client offered.
func checkChosen(offered wire.SuiteSet, chosen Suite) error {
	if !offered.Has(chosen) {
		return &SuiteError{Offered: offered, Chosen: chosen,
			msg: fmt.Sprintf("the server chose ciphersuite %v, which the client did not offer (%v)", chosen, offered.Or1())}
	}
	return nil
}

// checkSuite checks that the client offers the suite s a server's set was
// encoded in.
// offered is the hello's suites: a ClientHello's or a RecordsHello's.
func checkSuite(offered wire.SuiteSet, s Suite) error {
	if !offered.Has(s) {
		return &SuiteError{Offered: offered, Chosen: s,
			msg: fmt.Sprintf("the client offers ciphersuites %v, this session's set is in suite %v", offered.Or1(), s.Or1())}
	}
	return nil
}

// errSuite is returned for a suite the group code does not know; every
// public entry point checks the suite before it gets here.
var errSuite = errors.New("psi: unknown ciphersuite")

// gkey is a secret scalar of either suite (SPEC.md §3.3, §12.4). It never
// prints its value.
type gkey struct {
	suite Suite
	s1    *s1Key
	s2    *s2Key
}

func (gkey) String() string               { return "psi.key{REDACTED}" }
func (k gkey) GoString() string           { return k.String() }
func (k gkey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }
func (k *gkey) isSuite2() bool            { return k.suite == Suite2 }
func suiteKnown(s Suite) bool             { return s.Or1().Known() }
func elemErr(what string, i int, err error) error {
	return fmt.Errorf("%w: %s %d: %v", ErrPeer, what, i, err)
}

// newKey draws a fresh key of suite s from r (SPEC.md §3.3, §12.4). With
// inverse, it also prepares the key's inverse for invMult.
func newKey(s Suite, r io.Reader, inverse bool) (*gkey, error) {
	switch s.Or1() {
	case Suite1:
		k, err := newS1Key(r, inverse)
		if err != nil {
			return nil, err
		}
		return &gkey{suite: Suite1, s1: k}, nil
	case Suite2:
		k, err := newS2Key(r)
		if err != nil {
			return nil, err
		}
		return &gkey{suite: Suite2, s2: k}, nil
	}
	return nil, errSuite
}

// keyFromBytes decodes a stored key of suite s (an epoch key, SPEC.md
// §10.12, §12.4), refusing bytes that are not a usable key of the suite.
func keyFromBytes(s Suite, b [32]byte) (*gkey, error) {
	switch s.Or1() {
	case Suite1:
		k, err := s1KeyFromBytes(b)
		if err != nil {
			return nil, err
		}
		return &gkey{suite: Suite1, s1: k}, nil
	case Suite2:
		k, err := s2KeyFromBytes(b)
		if err != nil {
			return nil, err
		}
		return &gkey{suite: Suite2, s2: k}, nil
	}
	return nil, errSuite
}

// bytes returns the key's canonical encoding, for the epoch key file.
func (k *gkey) bytes() [32]byte {
	if k.isSuite2() {
		return k.s2.bytes()
	}
	return k.s1.bytes()
}

// erase overwrites the key. A nil key is a no-op.
func (k *gkey) erase() {
	if k == nil {
		return
	}
	if k.s1 != nil {
		k.s1.erase()
	}
	if k.s2 != nil {
		k.s2.erase()
	}
}

// baseMult returns Enc(B^k), B the suite's generator.
func (k *gkey) baseMult() [32]byte {
	if k.isSuite2() {
		return k.s2.baseMult()
	}
	return k.s1.baseMult()
}

// peerElem is an element received from the peer, decoded and checked once
// (SPEC.md §3.4, §12.5) for repeated multiplications.
type peerElem struct {
	s1 s1Elem
	s2 [32]byte
}

// decodePeerElem checks a peer's element b of suite s.
func decodePeerElem(s Suite, e *peerElem, b []byte) error {
	if s == Suite2 {
		return s2Decode(&e.s2, b)
	}
	return decodePeer(&e.s1, b)
}

// validPeer checks a peer's element b of suite s without multiplying it
// (SPEC.md §3.4, §12.5).
func validPeer(s Suite, b []byte) error {
	var e peerElem
	return decodePeerElem(s, &e, b)
}

// multDecoded sets out = Enc(e^k) for a checked peer element.
func (k *gkey) multDecoded(out *[32]byte, e *peerElem) error {
	if k.isSuite2() {
		return k.s2.mult(out, &e.s2)
	}
	k.s1.multDecoded(out, &e.s1)
	return nil
}

// multPeer sets out = Enc(P^k) for the element P a peer sent as in,
// checking it first (SPEC.md §3.4, §12.5).
func (k *gkey) multPeer(out *[32]byte, in []byte) error {
	if k.isSuite2() {
		return k.s2.multPeer(out, in)
	}
	return k.s1.multPeer(out, in)
}

// multPeers raises the peer's elements elem(lo) to elem(hi-1) to k, each
// checked first (SPEC.md §3.4, §12.5), and hands each result to emit, in
// order. On a bad element it returns its index and the reason. Suite 2
// multiplies a group of elements at a time (c25519's batches).
func (k *gkey) multPeers(lo, hi int, elem func(int) []byte, emit func(int, *[32]byte)) (int, error) {
	if k.isSuite2() {
		return k.s2.multPeers(lo, hi, elem, emit)
	}
	var enc [32]byte
	for i := lo; i < hi; i++ {
		if err := k.s1.multPeer(&enc, elem(i)); err != nil {
			return i, err
		}
		emit(i, &enc)
	}
	return 0, nil
}

// baseMults sets out[j] = Enc(B^(keys[j])) for keys of one suite (the
// ringers, SPEC.md §10.3); suite 2 takes eight keys at a time.
func baseMults(keys []*gkey, out [][32]byte) {
	if len(keys) > 0 && keys[0].isSuite2() {
		s2BaseMults(keys, out)
		return
	}
	for j := range keys {
		out[j] = keys[j].baseMult()
	}
}

// multDecodedKeys sets out[j] = Enc(e^(keys[j])) for a checked peer
// element and keys of one suite (the ringer images, SPEC.md §10.5 step 1);
// suite 2 takes eight keys at a time.
func multDecodedKeys(keys []*gkey, e *peerElem, out [][32]byte) error {
	if len(keys) > 0 && keys[0].isSuite2() {
		return s2MultKeys(keys, &e.s2, out)
	}
	for j := range keys {
		if err := keys[j].multDecoded(&out[j], e); err != nil {
			return err
		}
	}
	return nil
}

// points is a batch of hashed elements in a suite's internal form:
// ristretto255 points for suite 1, u-coordinates for suite 2.
type points struct {
	s1 []s1Elem
	s2 [][32]byte
}

// grow makes room for n points of suite s.
func (p *points) grow(s Suite, n int) {
	if s == Suite2 {
		if cap(p.s2) < n {
			p.s2 = make([][32]byte, n)
		}
		p.s2 = p.s2[:n]
		return
	}
	if cap(p.s1) < n {
		p.s1 = make([]s1Elem, n)
	}
	p.s1 = p.s1[:n]
}

// hashInto sets points lo to hi of p to H(kind, d) for the digests of the
// same indices (SPEC.md §3.2, §12.3). p must have room for hi points.
func hashInto(s Suite, kind Kind, digests [][32]byte, p *points, lo, hi int) {
	if s == Suite2 {
		s2HashBatch(kind, digests[lo:hi], p.s2[lo:hi])
		return
	}
	h := s1Hasher(kind)
	for i := lo; i < hi; i++ {
		h.Hash(&p.s1[i], digests[i][:])
	}
}

// hashSlots is hashInto for a record session's slots, each of its own kind
// (dummyKind for a dummy, SPEC.md §13.2).
func hashSlots(s Suite, kinds []Kind, digests [][32]byte, p *points, lo, hi int) {
	if s != Suite2 {
		for i := lo; i < hi; i++ {
			s1Hasher(kinds[i]).Hash(&p.s1[i], digests[i][:])
		}
		return
	}
	// Suite 2 hashes in batches (one field inversion per batch), so the
	// slots are gathered by kind and scattered back.
	byKind := make(map[Kind][]int)
	for i := lo; i < hi; i++ {
		byKind[kinds[i]] = append(byKind[kinds[i]], i)
	}
	for k, idx := range byKind {
		in := make([][32]byte, len(idx))
		out := make([][32]byte, len(idx))
		for j, i := range idx {
			in[j] = digests[i]
		}
		s2HashBatch(k, in, out)
		for j, i := range idx {
			p.s2[i] = out[j]
		}
	}
}

// multOwn raises points lo to hi of p, which this party computed, to k and
// writes their encodings to out, 32 bytes each: Enc for the wire, or, with
// tagEnc, the encoding that tags are computed from (SPEC.md §4.4: the
// cofactor encoding in suite 1, Enc itself in suite 2).
func (k *gkey) multOwn(p *points, lo, hi int, out []byte, tagEnc bool) error {
	if k.isSuite2() {
		return k.s2.multOwn(p.s2[lo:hi], out)
	}
	k.s1.multOwn(p.s1[lo:hi], out, tagEnc)
	return nil
}

// invMultPeerTags checks the peer's elements in (32 bytes each), raises
// each to 1/k and writes the tag encoding of each result to out. On a bad
// element it returns its index and the reason.
func (k *gkey) invMultPeerTags(in, out []byte) (int, error) {
	if k.isSuite2() {
		return k.s2.invMultPeer(in, out)
	}
	return k.s1.invMultPeerTags(in, out)
}

// hashOwn hashes and raises a batch of digests for a set the party encodes
// itself: out gets 32 bytes per digest, the wire encoding or with tagEnc
// the tag encoding. scratch is reused.
func (k *gkey) hashOwn(kind Kind, digests [][32]byte, scratch *points, out []byte, tagEnc bool) error {
	scratch.grow(k.suite, len(digests))
	hashInto(k.suite, kind, digests, scratch, 0, len(digests))
	return k.multOwn(scratch, 0, len(digests), out, tagEnc)
}

// elemSize is the size of an encoded element in every suite.
const elemSize = wire.ElementSize

// wireSuite is s as a parameters message carries it: zero for suite 1,
// whose messages have no suite byte.
func wireSuite(s Suite) Suite {
	if s.Or1() == Suite1 {
		return 0
	}
	return s
}

// clone returns a copy of the key, erased separately.
func (k *gkey) clone() *gkey {
	out := &gkey{suite: k.suite}
	if k.s1 != nil {
		out.s1 = k.s1.clone()
	}
	if k.s2 != nil {
		c := *k.s2.k
		out.s2 = &s2Key{k: &c}
	}
	return out
}
