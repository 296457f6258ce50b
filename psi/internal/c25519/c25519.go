// Package c25519 implements the group of Overlap's second ciphersuite:
// the prime-order subgroup of curve25519 (RFC 7748), with elements encoded
// as the 32-byte little-endian u-coordinate, hash-to-group by RFC 9380's
// curve25519_XMD:SHA-512_ELL2_RO_, and every scalar multiplication an X25519
// Montgomery ladder (circl's dh/x25519, MULX/ADX assembly on amd64).
//
// A key is a clamped X25519 scalar k (RFC 7748 §5, decodeScalar25519) whose
// inverse modulo ℓ also has a clamped representative, so that blinding
// (Key.Mult) and unblinding (Key.InvMult) are both X25519 multiplications.
// Received elements are checked by Valid: canonical, on the curve and not
// on its twist, and not of low order. The reasons, and why no explicit
// prime-order-subgroup check is needed, are in SPEC.md §12.5 and
// §12.6.
//
// Everything here is constant time with respect to keys and elements,
// except where a public yes/no is returned (whether an element is valid,
// whether a drawn key is usable).
package c25519

import (
	"crypto/subtle"
	"encoding/binary"
	"math/bits"

	"filippo.io/edwards25519/field"
)

// ElementSize is the length of an encoded element: the little-endian
// u-coordinate of a point of curve25519 in the prime-order subgroup.
const ElementSize = 32

// KeySize is the length of an encoded key: a clamped X25519 scalar.
const KeySize = 32

// curveA is the coefficient A of curve25519, v² = u³ + A·u² + u.
const curveA = 486662

// pLimbs is p = 2^255 - 19 as little-endian 64-bit limbs.
var pLimbs = [4]uint64{0xffffffffffffffed, 0xffffffffffffffff, 0xffffffffffffffff, 0x7fffffffffffffff}

// lowOrder holds the canonical u-coordinates of the points of curve25519 of
// order dividing 8 (the identity, at infinity, has no u-coordinate; its
// X25519 encoding is u = 0, the same as the point of order 2): 0 (order 2),
// 1 (order 4) and the two u-coordinates of the points of order 8. p-1 (the
// points of order 4 of the twist) is refused as a twist point; it is listed
// as well so that Valid refuses it even without the twist check.
var lowOrder = [5][32]byte{
	{},
	{1},
	{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
		0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
	{0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
		0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
}

// canonical reports, in constant time, whether in is the canonical encoding
// of a field element: the top bit is clear and the value is below p. A
// non-canonical encoding is refused, never reduced or masked.
func canonical(in *[32]byte) int {
	// in < p exactly when in - p borrows; this also covers the top bit,
	// since every value with bit 255 set is above p.
	var borrow uint64
	for i := range 4 {
		_, borrow = bits.Sub64(binary.LittleEndian.Uint64(in[8*i:]), pLimbs[i], borrow)
	}
	return int(borrow)
}

// onCurve reports, in constant time, whether the canonical u is the
// u-coordinate of a point of curve25519 rather than of its quadratic twist:
// whether g(u) = u³ + A·u² + u = u·(u·(u + A) + 1) is a square (or zero) in
// GF(p). It computes the Legendre symbol g^((p-1)/2) by one exponentiation,
// g^((p-1)/2) = (g^((p-5)/8))^4 · g^2, and accepts 1 or 0 (g = 0 only for
// u = 0, which lowOrder refuses).
func onCurve(in *[32]byte) int {
	var g, t field.Element
	curveRHS(&g, in)
	t.Pow22523(&g)
	return squareFromPow(&g, &t)
}

// curveRHS sets g = g(u) for the u-coordinate in (its top bit ignored).
func curveRHS(g *field.Element, in *[32]byte) {
	var u field.Element
	if _, err := u.SetBytes(in[:]); err != nil {
		panic("c25519: internal error: SetBytes of 32 bytes")
	}
	g.Add(&u, feA)
	g.Multiply(g, &u)
	g.Add(g, feOne)
	g.Multiply(g, &u)
}

// squareFromPow returns 1 if g is a square or zero and 0 if it is not,
// given pow = g^((p-5)/8): the Legendre symbol is pow^4 · g^2.
func squareFromPow(g, pow *field.Element) int {
	var t, g2 field.Element
	t.Square(pow)
	t.Square(&t)
	g2.Square(g)
	t.Multiply(&t, &g2)
	return 1 - t.Equal(feMinusOne)
}

// notLowOrder reports, in constant time, whether in is none of lowOrder.
func notLowOrder(in *[32]byte) int {
	bad := 0
	for i := range lowOrder {
		bad |= subtle.ConstantTimeCompare(in[:], lowOrder[i][:])
	}
	return 1 - bad
}

// Valid reports whether in is a valid element received from a peer (SPEC.md
// §12.5): the canonical encoding of a field element
// (top bit clear, below p; refused, not masked or reduced), the
// u-coordinate of a point of curve25519 and not of its twist, and not one
// of the points of order dividing 8. The length is the caller's: in is
// exactly ElementSize bytes by type. It runs in constant time and returns
// the one public bit.
func Valid(in *[32]byte) bool {
	return canonical(in)&onCurve(in)&notLowOrder(in) == 1
}

var (
	feOne      = new(field.Element).One()
	feMinusOne = new(field.Element).Negate(feOne)
	feA        = new(field.Element).Mult32(feOne, curveA)
)
