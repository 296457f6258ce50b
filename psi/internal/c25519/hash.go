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

// hashFraction sets num/den to the u-coordinate of hash_to_curve(msg):
// num = Z + Y and den = Z - Y for the edwards25519 point (X:Y:Z:T) that
// corresponds to it (den is zero only for the identity).
func (h *Hasher) hashFraction(num, den *field.Element, msg []byte) {
	var u0, u1 field.Element
	h.hashToField(&u0, &u1, msg)
	var p, q extended
	mapToEdwards(&p, &u0)
	mapToEdwards(&q, &u1)
	p.add(&p, &q)
	p.double(&p)
	p.double(&p)
	p.double(&p)
	num.Add(&p.Z, &p.Y)
	den.Subtract(&p.Z, &p.Y)
}

// Hash sets out to the u-coordinate of hash_to_curve(msg) (suite
// curve25519_XMD:SHA-512_ELL2_RO_). The result is in the prime-order
// subgroup; it is all zero only if the RFC's result is the identity, which
// happens with probability about 2^-252 (and which Valid refuses).
func (h *Hasher) Hash(out *[32]byte, msg []byte) {
	var num, den field.Element
	h.hashFraction(&num, &den, msg)
	den.Invert(&den) // Invert(0) = 0: the identity gives u = 0
	num.Multiply(&num, &den)
	copy(out[:], num.Bytes())
}

// HashBatch sets out[i] to Hash(msgs[i]) for every i; out and msgs must
// have the same length. It shares one field inversion among the batch
// (Montgomery's trick), which saves one of the three exponentiations of
// each hash.
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
	var zero, acc field.Element
	acc.One()
	for i, msg := range msgs {
		h.hashFraction(&num[i], &den[i], msg)
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

// elligator2 is map_to_curve_elligator2 of RFC 9380 §6.7.1 for curve25519
// (A = 486662, B = 1, Z = 2), in constant time. It returns the point (s, t)
// as s = xn/xd and t = y.
func elligator2(xn, xd, y, u *field.Element) {
	var tv1 field.Element
	tv1.Square(u)
	tv1.Add(&tv1, &tv1) // tv1 = Z·u²
	// e1: tv1 = -1 would make 1 + tv1 zero; it cannot happen for Z = 2
	// (-1/2 is not a square), but the RFC's CMOV is kept.
	var zero field.Element
	tv1.Select(&zero, &tv1, tv1.Equal(feMinusOne))

	// x1 = -A / (1 + tv1) = x1n / xd
	var x1n field.Element
	xd.Add(feOne, &tv1)
	x1n.Negate(feA)

	// g(x1) = x1³ + A·x1² + x1 = x1n·(x1n² + A·x1n·xd + xd²) / xd³
	var gn, gd, t0, t1 field.Element
	t0.Square(&x1n)
	t1.Multiply(feA, &x1n)
	t1.Multiply(&t1, xd)
	t0.Add(&t0, &t1)
	t1.Square(xd)
	t0.Add(&t0, &t1)
	gn.Multiply(&x1n, &t0)
	gd.Multiply(&t1, xd)

	// r² = g(x1) if g(x1) is a square (e2 = 1), else r² = sqrtM1·g(x1).
	var r field.Element
	_, e2 := r.SqrtRatio(&gn, &gd)

	// x2 = -x1 - A = tv1·x1, and g(x2) = tv1·g(x1) = 2u²·g(x1), so
	// y2 = u·r·sqrt(-2·sqrtM1) is a square root of g(x2).
	var x2n, y2 field.Element
	x2n.Multiply(&x1n, &tv1)
	y2.Multiply(u, &r)
	y2.Multiply(&y2, sqrtMinus2SqrtM1)

	xn.Select(&x1n, &x2n, e2)
	y.Select(&r, &y2, e2)

	// sgn0(y) must be 1 for x1 and 0 for x2 (RFC 9380 §6.7.1, steps 8-9).
	var negY field.Element
	negY.Negate(y)
	y.Select(&negY, y, y.IsNegative()^e2)
}

// mapToEdwards sets p to the edwards25519 point that corresponds, by the
// rational map of RFC 9380 Appendix D.1, to map_to_curve_elligator2(u):
// x = sqrt(-486664)·s/t, y = (s-1)/(s+1), or the identity where the map is
// not defined (t = 0 or s = -1).
func mapToEdwards(p *extended, u *field.Element) {
	var xn, xd, y field.Element
	elligator2(&xn, &xd, &y, u)

	var vn, vd, wn, wd field.Element
	vn.Multiply(sqrtMinus486664, &xn)
	vd.Multiply(&xd, &y)
	wn.Subtract(&xn, &xd)
	wd.Add(&xn, &xd)

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
