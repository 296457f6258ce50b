package c25519

// A plain reference for the tests: RFC 9380's straight-line Elligator 2
// (§6.7.1) and curve25519 affine arithmetic in math/big, with circl's
// expand_message_xmd. It shares no code with the package but the
// constants' definitions, and is slow and variable-time: tests only.

import (
	"crypto"
	_ "crypto/sha512"
	"math/big"

	"github.com/cloudflare/circl/expander"
)

var (
	refP    = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	refA    = big.NewInt(486662)
	refL, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	bigOne  = big.NewInt(1)
)

func refMod(x *big.Int) *big.Int { return new(big.Int).Mod(x, refP) }

// refLegendre returns x^((p-1)/2) mod p as -1, 0 or 1.
func refLegendre(x *big.Int) int {
	e := new(big.Int).Rsh(new(big.Int).Sub(refP, bigOne), 1)
	r := new(big.Int).Exp(refMod(x), e, refP)
	switch {
	case r.Sign() == 0:
		return 0
	case r.Cmp(bigOne) == 0:
		return 1
	}
	return -1
}

// refSqrt returns a square root of a square x (p ≡ 5 mod 8).
func refSqrt(x *big.Int) *big.Int {
	x = refMod(x)
	e := new(big.Int).Rsh(new(big.Int).Add(refP, big.NewInt(3)), 3)
	c := new(big.Int).Exp(x, e, refP)
	if refMod(new(big.Int).Mul(c, c)).Cmp(x) == 0 {
		return c
	}
	i := new(big.Int).Exp(big.NewInt(2), new(big.Int).Rsh(new(big.Int).Sub(refP, bigOne), 2), refP)
	c = refMod(c.Mul(c, i))
	if refMod(new(big.Int).Mul(c, c)).Cmp(x) != 0 {
		panic("refSqrt of a non-square")
	}
	return c
}

func refG(x *big.Int) *big.Int {
	x2 := new(big.Int).Mul(x, x)
	g := new(big.Int).Mul(x2, x)
	g.Add(g, new(big.Int).Mul(refA, x2))
	g.Add(g, x)
	return refMod(g)
}

func refInv(x *big.Int) *big.Int { return new(big.Int).ModInverse(refMod(x), refP) }

// refPoint is an affine point of curve25519; nil is the point at infinity.
type refPoint struct{ x, y *big.Int }

// refElligator2 is map_to_curve_elligator2 of RFC 9380 §6.7.1, straight.
func refElligator2(u *big.Int) *refPoint {
	d := refMod(new(big.Int).Add(bigOne, new(big.Int).Mul(big.NewInt(2), new(big.Int).Mul(u, u))))
	var x1 *big.Int
	if d.Sign() == 0 {
		x1 = refMod(new(big.Int).Neg(refA))
	} else {
		x1 = refMod(new(big.Int).Mul(new(big.Int).Neg(refA), refInv(d)))
	}
	x2 := refMod(new(big.Int).Sub(new(big.Int).Neg(x1), refA))
	var x, y *big.Int
	var wantSign uint
	if refLegendre(refG(x1)) >= 0 {
		x, y, wantSign = x1, refSqrt(refG(x1)), 1
	} else {
		x, y, wantSign = x2, refSqrt(refG(x2)), 0
	}
	if y.Bit(0) != wantSign {
		y = refMod(new(big.Int).Neg(y))
	}
	return &refPoint{x, y}
}

// refAdd adds two affine points of curve25519 (B = 1).
func refAdd(p, q *refPoint) *refPoint {
	if p == nil {
		return q
	}
	if q == nil {
		return p
	}
	var lambda *big.Int
	if p.x.Cmp(q.x) == 0 {
		if refMod(new(big.Int).Add(p.y, q.y)).Sign() == 0 {
			return nil // q = -p
		}
		// doubling: (3x² + 2Ax + 1) / 2y
		n := new(big.Int).Mul(big.NewInt(3), new(big.Int).Mul(p.x, p.x))
		n.Add(n, new(big.Int).Mul(big.NewInt(2), new(big.Int).Mul(refA, p.x)))
		n.Add(n, bigOne)
		lambda = refMod(n.Mul(n, refInv(new(big.Int).Mul(big.NewInt(2), p.y))))
	} else {
		lambda = refMod(new(big.Int).Mul(new(big.Int).Sub(q.y, p.y), refInv(new(big.Int).Sub(q.x, p.x))))
	}
	x3 := new(big.Int).Mul(lambda, lambda)
	x3.Sub(x3, refA)
	x3.Sub(x3, p.x)
	x3 = refMod(x3.Sub(x3, q.x))
	y3 := new(big.Int).Mul(lambda, new(big.Int).Sub(p.x, x3))
	y3 = refMod(y3.Sub(y3, p.y))
	return &refPoint{x3, y3}
}

// refHash is hash_to_curve with curve25519_XMD:SHA-512_ELL2_RO_; it
// returns the little-endian u of the result (all zero for infinity).
func refHash(dst, msg []byte) [32]byte {
	uniform := expander.NewExpanderMD(crypto.SHA512, dst).Expand(msg, 96)
	u0 := refMod(new(big.Int).SetBytes(uniform[:48]))
	u1 := refMod(new(big.Int).SetBytes(uniform[48:]))
	q := refAdd(refElligator2(u0), refElligator2(u1))
	for range 3 {
		q = refAdd(q, q)
	}
	var out [32]byte
	if q != nil {
		q.x.FillBytes(out[:])
		reverse(out[:])
	}
	return out
}

// refLE is the integer of a little-endian encoding.
func refLE(b []byte) *big.Int {
	c := append([]byte(nil), b...)
	reverse(c)
	return new(big.Int).SetBytes(c)
}

// refValid is Valid written plainly.
func refValid(in [32]byte) bool {
	u := refLE(in[:])
	if u.Cmp(refP) >= 0 {
		return false
	}
	if refLegendre(refG(u)) != 1 {
		return false // the twist, or u = 0
	}
	for _, lo := range lowOrderRef {
		if u.Cmp(lo) == 0 {
			return false
		}
	}
	return true
}

// lowOrderRef are the u of the points of curve25519 of order 4 and 8,
// computed rather than copied: u = 1 (order 4) and the two roots u of
// x-only doubling to 1 (order 8): 2·(u, v) has u-coordinate
// (u² - 1)² / (4u(u² + Au + 1)), and it is 1 for u² - 1 = ±... solved by
// trying both roots of the quadratics u² + 2u·c + 1 = 0 below. Plus p-1 and
// 0.
var lowOrderRef = func() []*big.Int {
	out := []*big.Int{big.NewInt(0), big.NewInt(1), new(big.Int).Sub(refP, bigOne)}
	// (u² - 1)² = 4u(u² + Au + 1)  ⇔  u⁴ - 4u³ - (4A + 2)u² - 4u + 1 = 0.
	// Divide by u² and set w = u + 1/u: w² - 4w - (4A + 4) = 0, so
	// w = 2 ± 2·sqrt(A + 2); then u² - w·u + 1 = 0.
	s := refSqrt(new(big.Int).Add(refA, big.NewInt(2)))
	for _, sign := range []int64{1, -1} {
		w := refMod(new(big.Int).Add(big.NewInt(2), new(big.Int).Mul(big.NewInt(2*sign), s)))
		disc := refMod(new(big.Int).Sub(new(big.Int).Mul(w, w), big.NewInt(4)))
		if refLegendre(disc) < 0 {
			continue
		}
		r := refSqrt(disc)
		inv2 := refInv(big.NewInt(2))
		for _, rs := range []*big.Int{r, new(big.Int).Neg(r)} {
			u := refMod(new(big.Int).Mul(new(big.Int).Add(w, rs), inv2))
			out = append(out, u)
		}
	}
	return out
}()
