package c25519

import (
	"crypto/sha512"
	"encoding"
	"hash"
	"math/big"

	"filippo.io/edwards25519/field"
)

// Constants of the map, computed and checked at package initialisation.
var (
	// sqrtM1 is 2^((p-1)/4), the square root of -1 that field.SqrtRatio
	// multiplies by when its argument is not a square.
	sqrtM1 = feDecimal("19681161376707505956807079304988542015446066515923890162744021073123829784752")
	// sqrtMinus486664 is the constant c1 = sqrt(-486664) of RFC 9380
	// Appendix D.1 (the rational map from curve25519 to edwards25519), the
	// root whose sgn0 is 0.
	sqrtMinus486664 = feSqrt(new(field.Element).Negate(new(field.Element).Mult32(feOne, 486664)))
	// sqrtMinus2SqrtM1 is a square root of -2·sqrtM1. When g(x1) is not a
	// square, SqrtRatio(g(x1)) gives r with r² = sqrtM1·g(x1), and then
	// y2 = u·r·sqrtMinus2SqrtM1 satisfies y2² = 2u²·g(x1) = g(x2).
	sqrtMinus2SqrtM1 = feSqrt(new(field.Element).Negate(new(field.Element).Add(sqrtM1, sqrtM1)))
)

// feDecimal parses a decimal constant; it runs only at initialisation.
func feDecimal(decimal string) *field.Element {
	n, ok := new(big.Int).SetString(decimal, 10)
	if !ok {
		panic("c25519: bad constant")
	}
	le := make([]byte, 32)
	n.FillBytes(le)
	reverse(le)
	v, err := new(field.Element).SetBytes(le)
	if err != nil {
		panic("c25519: bad constant")
	}
	return v
}

// feSqrt returns the non-negative square root of a square x; it runs only
// at initialisation.
func feSqrt(x *field.Element) *field.Element {
	r, wasSquare := new(field.Element).SqrtRatio(x, feOne)
	if wasSquare != 1 {
		panic("c25519: constant is not a square")
	}
	return r
}

func reverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

// Hasher hashes byte strings to elements with RFC 9380's
// curve25519_XMD:SHA-512_ELL2_RO_ under one domain-separation tag:
// expand_message_xmd with SHA-512 to 96 bytes, hash_to_field with count 2
// (48 bytes, big-endian, reduced mod p, each), the Elligator 2 map of each
// (§6.7.1, Z = 2), the sum of the two points, clear_cofactor (multiplication
// by 8), and the u-coordinate of the result.
//
// The maps are computed in fractions and carried to edwards25519 by the
// rational map of RFC 9380 Appendix D.1, where the sum and the three
// doublings are computed in extended coordinates with no inversion; the
// only field inversion is the final u = (1+y)/(1-y) (shared by a whole
// batch in HashBatch). The rational map is a group isomorphism except at
// its exceptional points, which are of order at most 2 and are removed by
// the cofactor clearing, so the result is the RFC's (the tests check it
// against the RFC's vectors and a plain math/big implementation of the
// RFC's straight-line map and Montgomery-form addition).
//
// A Hasher keeps scratch state: it is for one goroutine at a time.
type Hasher struct {
	h        hash.Hash
	zpad     []byte // the SHA-512 state after the 128 zero bytes of Z_pad
	dstPrime []byte
	b0, bi   [sha512.Size]byte
	uniform  [96]byte
	wide     [64]byte
	small    [3]byte
	num, den []field.Element // HashBatch scratch
}

// NewHasher returns a Hasher for the domain-separation tag dst. A tag
// longer than 255 bytes is first hashed as RFC 9380 §5.3.3 says.
func NewHasher(dst []byte) *Hasher {
	h := sha512.New()
	if len(dst) > 255 {
		h.Write([]byte("H2C-OVERSIZE-DST-"))
		h.Write(dst)
		dst = h.Sum(nil)
		h.Reset()
	}
	dp := make([]byte, 0, len(dst)+1)
	dp = append(dp, dst...)
	dp = append(dp, byte(len(dst)))
	var zpad [sha512.BlockSize]byte
	h.Write(zpad[:])
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic("c25519: internal error: SHA-512 state: " + err.Error())
	}
	return &Hasher{h: h, zpad: state, dstPrime: dp}
}

// expand is expand_message_xmd (RFC 9380 §5.3.1) with SHA-512 and
// len_in_bytes = 96, into h.uniform. It is written out here, not taken
// from circl's expander as r255 does, because it starts from the SHA-512
// state saved after Z_pad and allocates nothing: measured in one run
// (go test -bench Hash -benchtime 3000x -count 5), circl's expander made a
// hash 0.8 µs slower (12.0 against 11.2 µs) and a batched one 1.0 µs
// slower (9.5 against 8.5 µs per element), with 12 allocations a hash.
// The RFC 9380 vectors pin it, the long-DST case included.
func (h *Hasher) expand(msg []byte) {
	// b_0 = H(Z_pad || msg || I2OSP(96, 2) || I2OSP(0, 1) || DST_prime),
	// starting from the saved state after Z_pad.
	if err := h.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(h.zpad); err != nil {
		panic("c25519: internal error: SHA-512 state: " + err.Error())
	}
	h.h.Write(msg)
	h.small = [3]byte{0, 96, 0}
	h.h.Write(h.small[:])
	h.h.Write(h.dstPrime)
	h.h.Sum(h.b0[:0])

	// b_1 = H(b_0 || I2OSP(1, 1) || DST_prime)
	h.h.Reset()
	h.h.Write(h.b0[:])
	h.small[0] = 1
	h.h.Write(h.small[:1])
	h.h.Write(h.dstPrime)
	h.h.Sum(h.bi[:0])
	copy(h.uniform[:64], h.bi[:])

	// b_2 = H(strxor(b_0, b_1) || I2OSP(2, 1) || DST_prime)
	for i := range h.bi {
		h.bi[i] ^= h.b0[i]
	}
	h.h.Reset()
	h.h.Write(h.bi[:])
	h.small[0] = 2
	h.h.Write(h.small[:1])
	h.h.Write(h.dstPrime)
	h.h.Sum(h.bi[:0])
	copy(h.uniform[64:], h.bi[:32])
}

// hashToField sets u0, u1 to hash_to_field(msg, 2) (RFC 9380 §5.2, L = 48).
func (h *Hasher) hashToField(u0, u1 *field.Element, msg []byte) {
	h.expand(msg)
	for i, u := range [2]*field.Element{u0, u1} {
		clear(h.wide[48:])
		copy(h.wide[:48], h.uniform[48*i:48*i+48])
		reverse(h.wide[:48]) // OS2IP is big-endian; SetWideBytes little-endian
		if _, err := u.SetWideBytes(h.wide[:]); err != nil {
			panic("c25519: internal error: SetWideBytes input is not 64 bytes")
		}
	}
}

// hashGroup is how many messages hashFractions takes at once: two
// map_to_curve each, so that their square roots fill the eight lanes of
// pow22523x8.
const hashGroup = 4

// hashFractions sets num[i]/den[i] to the u-coordinate of
// hash_to_curve(msgs[i]) for up to hashGroup messages: num = Z + Y and
// den = Z - Y for the edwards25519 point (X:Y:Z:T) that corresponds to it
// (den is zero only for the identity). The exponentiations of the maps'
// square roots run together, in pow22523x8.
func (h *Hasher) hashFractions(num, den []field.Element, msgs [][]byte) {
	if len(msgs) > hashGroup {
		panic("c25519: internal error: hashFractions of more than hashGroup messages")
	}
	var maps [2 * hashGroup]mapper
	var in, pow [2 * hashGroup]field.Element
	for i, msg := range msgs {
		var u0, u1 field.Element
		h.hashToField(&u0, &u1, msg)
		maps[2*i].begin(&in[2*i], &u0)
		maps[2*i+1].begin(&in[2*i+1], &u1)
	}
	pow22523x8(&pow, &in, 2*len(msgs))
	for i := range msgs {
		var p, q extended
		maps[2*i].finish(&p, &pow[2*i])
		maps[2*i+1].finish(&q, &pow[2*i+1])
		p.add(&p, &q)
		p.double(&p)
		p.double(&p)
		p.double(&p)
		num[i].Add(&p.Z, &p.Y)
		den[i].Subtract(&p.Z, &p.Y)
	}
}

// Hash sets out to the u-coordinate of hash_to_curve(msg) (suite
// curve25519_XMD:SHA-512_ELL2_RO_). The result is in the prime-order
// subgroup; it is all zero only if the RFC's result is the identity, which
// happens with probability about 2^-252 (and which Valid refuses).
func (h *Hasher) Hash(out *[32]byte, msg []byte) {
	var num, den [1]field.Element
	h.hashFractions(num[:], den[:], [][]byte{msg})
	den[0].Invert(&den[0]) // Invert(0) = 0: the identity gives u = 0
	num[0].Multiply(&num[0], &den[0])
	copy(out[:], num[0].Bytes())
}

// HashBatch sets out[i] to Hash(msgs[i]) for every i; out and msgs must
// have the same length. It shares one field inversion among the batch
// (Montgomery's trick), which saves one of the three exponentiations of
// each hash, and computes the other two four messages at a time.
func (h *Hasher) HashBatch(out [][32]byte, msgs [][]byte) {
	n := len(msgs)
	if len(out) != n {
		panic("c25519: HashBatch with len(out) != len(msgs)")
	}
	if cap(h.num) < n {
		h.num = make([]field.Element, n)
		h.den = make([]field.Element, 2*n)
	}
	num, den, pre := h.num[:n], h.den[:n], h.den[n:2*n]
	for i := 0; i < n; i += hashGroup {
		j := min(i+hashGroup, n)
		h.hashFractions(num[i:j], den[i:j], msgs[i:j])
	}
	var zero, acc field.Element
	acc.One()
	for i := range n {
		// The identity (den = 0) gives u = 0, as in Hash: num := 0 and
		// den := 1, so that one zero does not void the shared inversion.
		isZero := den[i].Equal(&zero)
		num[i].Select(&zero, &num[i], isZero)
		den[i].Select(feOne, &den[i], isZero)
		pre[i].Set(&acc) // den_0 · … · den_{i-1}
		acc.Multiply(&acc, &den[i])
	}
	acc.Invert(&acc) // 1 / (den_0 · … · den_{n-1})
	var inv field.Element
	for i := n - 1; i >= 0; i-- {
		inv.Multiply(&acc, &pre[i]) // 1 / den_i
		acc.Multiply(&acc, &den[i]) // 1 / (den_0 · … · den_{i-1})
		num[i].Multiply(&num[i], &inv)
		copy(out[i][:], num[i].Bytes())
	}
}

// extended is a point of edwards25519 in extended coordinates
// (X:Y:Z:T), x = X/Z, y = Y/Z, x·y = T/Z.
type extended struct {
	X, Y, Z, T field.Element
}

// d2 is 2·d, d = -121665/121666 the edwards25519 constant.
var d2 = func() *field.Element {
	var n, d field.Element
	n.Mult32(feOne, 121665)
	n.Negate(&n)
	d.Mult32(feOne, 121666)
	d.Invert(&d)
	n.Multiply(&n, &d)
	return n.Add(&n, &n)
}()

// add sets v = p + q ("add-2008-hwcd-3" for a = -1: complete on
// edwards25519, so it needs no special cases).
func (v *extended) add(p, q *extended) {
	var a, b, c, d, t field.Element
	a.Subtract(&p.Y, &p.X)
	t.Subtract(&q.Y, &q.X)
	a.Multiply(&a, &t)
	b.Add(&p.Y, &p.X)
	t.Add(&q.Y, &q.X)
	b.Multiply(&b, &t)
	c.Multiply(&p.T, &q.T)
	c.Multiply(&c, d2)
	d.Multiply(&p.Z, &q.Z)
	d.Add(&d, &d)
	var e, f, g, hh field.Element
	e.Subtract(&b, &a)
	f.Subtract(&d, &c)
	g.Add(&d, &c)
	hh.Add(&b, &a)
	v.X.Multiply(&e, &f)
	v.Y.Multiply(&g, &hh)
	v.T.Multiply(&e, &hh)
	v.Z.Multiply(&f, &g)
}

// double sets v = 2p ("dbl-2008-hwcd" for a = -1). It reads only X, Y
// and Z, and leaves T unset: a doubled point is only doubled again here.
func (v *extended) double(p *extended) {
	var a, b, c, e, f, g, hh field.Element
	a.Square(&p.X)
	b.Square(&p.Y)
	c.Square(&p.Z)
	c.Add(&c, &c)
	e.Add(&p.X, &p.Y)
	e.Square(&e)
	e.Subtract(&e, &a)
	e.Subtract(&e, &b) // 2XY
	g.Subtract(&b, &a) // D + B with D = -A
	f.Subtract(&g, &c)
	hh.Add(&a, &b)
	hh.Negate(&hh) // D - B
	v.X.Multiply(&e, &f)
	v.Y.Multiply(&g, &hh)
	v.Z.Multiply(&f, &g)
}

// sqrtRatio is field.Element.SqrtRatio in two halves around its one
// exponentiation, so that the exponentiations of several can run at once
// (pow22523x8). begin takes u and v and sets x to the element to raise to
// (p-5)/8; finish takes that power and sets r to the non-negative square
// root of u/v and returns 1 if u/v is a square, or sets r to the root of
// sqrtM1·u/v and returns 0 if it is not (r = 0 when u or v is 0), exactly
// as field.Element.SqrtRatio (TestSqrtRatioHalves).
type sqrtRatio struct {
	u, v, uv3 field.Element
}

func (s *sqrtRatio) begin(x, u, v *field.Element) {
	// r = (u·v³)·(u·v⁷)^((p-5)/8)
	var v2, t field.Element
	s.u.Set(u)
	s.v.Set(v)
	v2.Square(v)
	s.uv3.Multiply(u, t.Multiply(&v2, v))
	x.Multiply(&s.uv3, t.Square(&v2))
}

func (s *sqrtRatio) finish(r, pow *field.Element) (wasSquare int) {
	var rr, check, uNeg, t, rPrime field.Element
	rr.Multiply(&s.uv3, pow)
	check.Multiply(&s.v, t.Square(&rr)) // check = v·r²
	uNeg.Negate(&s.u)
	correctSignSqrt := check.Equal(&s.u)
	flippedSignSqrt := check.Equal(&uNeg)
	flippedSignSqrtI := check.Equal(t.Multiply(&uNeg, sqrtM1))
	rPrime.Multiply(&rr, sqrtM1)
	rr.Select(&rPrime, &rr, flippedSignSqrt|flippedSignSqrtI)
	r.Absolute(&rr)
	return correctSignSqrt | flippedSignSqrt
}

// mapper is map_to_curve_elligator2 of RFC 9380 §6.7.1 for curve25519
// (A = 486662, B = 1, Z = 2), in constant time, followed by the rational
// map to edwards25519, in two halves around the exponentiation of its
// square root: begin(x, u) sets x to the element to raise to (p-5)/8, and
// finish(p, x^((p-5)/8)) sets p to the image of u.
type mapper struct {
	u, tv1, xd, x1n field.Element
	sqrt            sqrtRatio
}

func (m *mapper) begin(x, u *field.Element) {
	m.u.Set(u)
	m.tv1.Square(u)
	m.tv1.Add(&m.tv1, &m.tv1) // tv1 = Z·u²
	// e1: tv1 = -1 would make 1 + tv1 zero; it cannot happen for Z = 2
	// (-1/2 is not a square), but the RFC's CMOV is kept.
	var zero field.Element
	m.tv1.Select(&zero, &m.tv1, m.tv1.Equal(feMinusOne))

	// x1 = -A / (1 + tv1) = x1n / xd
	m.xd.Add(feOne, &m.tv1)
	m.x1n.Negate(feA)

	// g(x1) = x1³ + A·x1² + x1 = x1n·(x1n² + A·x1n·xd + xd²) / xd³
	var gn, gd, t0, t1 field.Element
	t0.Square(&m.x1n)
	t1.Multiply(feA, &m.x1n)
	t1.Multiply(&t1, &m.xd)
	t0.Add(&t0, &t1)
	t1.Square(&m.xd)
	t0.Add(&t0, &t1)
	gn.Multiply(&m.x1n, &t0)
	gd.Multiply(&t1, &m.xd)
	m.sqrt.begin(x, &gn, &gd)
}

// montgomery sets the map's point on curve25519, (s, t) = (xn/m.xd, y),
// from pow.
func (m *mapper) montgomery(xn, y, pow *field.Element) {
	// r² = g(x1) if g(x1) is a square (e2 = 1), else r² = sqrtM1·g(x1).
	var r field.Element
	e2 := m.sqrt.finish(&r, pow)

	// x2 = -x1 - A = tv1·x1, and g(x2) = tv1·g(x1) = 2u²·g(x1), so
	// y2 = u·r·sqrt(-2·sqrtM1) is a square root of g(x2).
	var x2n, y2 field.Element
	x2n.Multiply(&m.x1n, &m.tv1)
	y2.Multiply(&m.u, &r)
	y2.Multiply(&y2, sqrtMinus2SqrtM1)

	xn.Select(&m.x1n, &x2n, e2)
	y.Select(&r, &y2, e2)

	// sgn0(y) must be 1 for x1 and 0 for x2 (RFC 9380 §6.7.1, steps 8-9).
	var negY field.Element
	negY.Negate(y)
	y.Select(&negY, y, y.IsNegative()^e2)
}

func (m *mapper) finish(p *extended, pow *field.Element) {
	var xn, y field.Element
	m.montgomery(&xn, &y, pow)

	// The rational map of RFC 9380 Appendix D.1 from (s, t) = (xn/xd, y):
	// x = sqrt(-486664)·s/t, y = (s-1)/(s+1), or the identity where the
	// map is not defined (t = 0 or s = -1).
	var vn, vd, wn, wd field.Element
	vn.Multiply(sqrtMinus486664, &xn)
	vd.Multiply(&m.xd, &y)
	wn.Subtract(&xn, &m.xd)
	wd.Add(&xn, &m.xd)

	var zero, den field.Element
	den.Multiply(&vd, &wd)
	e := den.Equal(&zero)
	vn.Select(&zero, &vn, e)
	vd.Select(feOne, &vd, e)
	wn.Select(feOne, &wn, e)
	wd.Select(feOne, &wd, e)

	p.X.Multiply(&vn, &wd)
	p.Y.Multiply(&wn, &vd)
	p.Z.Multiply(&vd, &wd)
	p.T.Multiply(&vn, &wn)
}
