package c25519

import (
	"encoding/hex"
	"strings"
	"testing"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// rfc9380Vector is one vector of RFC 9380 Appendix J.7.1
// (curve25519_XMD:SHA-512_ELL2_RO_): big-endian hex, as the RFC prints them.
type rfc9380Vector struct {
	msg      string
	px, py   string
	u0, u1   string
	q0x, q0y string
	q1x, q1y string
}

const rfc9380DST = "QUUX-V01-CS02-with-curve25519_XMD:SHA-512_ELL2_RO_"

var rfc9380Vectors = []rfc9380Vector{
	{
		msg: "",
		px:  "2de3780abb67e861289f5749d16d3e217ffa722192d16bbd9d1bfb9d112b98c0",
		py:  "3b5dc2a498941a1033d176567d457845637554a2fe7a3507d21abd1c1bd6e878",
		u0:  "005fe8a7b8fef0a16c105e6cadf5a6740b3365e18692a9c05bfbb4d97f645a6a",
		u1:  "1347edbec6a2b5d8c02e058819819bee177077c9d10a4ce165aab0fd0252261a",
		q0x: "36b4df0c864c64707cbf6cf36e9ee2c09a6cb93b28313c169be29561bb904f98",
		q0y: "6cd59d664fb58c66c892883cd0eb792e52055284dac3907dd756b45d15c3983d",
		q1x: "3fa114783a505c0b2b2fbeef0102853c0b494e7757f2a089d0daae7ed9a0db2b",
		q1y: "76c0fe7fec932aaafb8eefb42d9cbb32eb931158f469ff3050af15cfdbbeff94",
	},
	{
		msg: "abc",
		px:  "2b4419f1f2d48f5872de692b0aca72cc7b0a60915dd70bde432e826b6abc526d",
		py:  "1b8235f255a268f0a6fa8763e97eb3d22d149343d495da1160eff9703f2d07dd",
		u0:  "49bed021c7a3748f09fa8cdfcac044089f7829d3531066ac9e74e0994e05bc7d",
		u1:  "5c36525b663e63389d886105cee7ed712325d5a97e60e140aba7e2ce5ae851b6",
		q0x: "16b3d86e056b7970fa00165f6f48d90b619ad618791661b7b5e1ec78be10eac1",
		q0y: "4ab256422d84c5120b278cbdfc4e1facc5baadffeccecf8ee9bf3946106d50ca",
		q1x: "7ec29ddbf34539c40adfa98fcb39ec36368f47f30e8f888cc7e86f4d46e0c264",
		q1y: "10d1abc1cae2d34c06e247f2141ba897657fb39f1080d54f09ce0af128067c74",
	},
	{
		msg: "abcdef0123456789",
		px:  "68ca1ea5a6acf4e9956daa101709b1eee6c1bb0df1de3b90d4602382a104c036",
		py:  "2a375b656207123d10766e68b938b1812a4a6625ff83cb8d5e86f58a4be08353",
		u0:  "6412b7485ba26d3d1b6c290a8e1435b2959f03721874939b21782df17323d160",
		u1:  "24c7b46c1c6d9a21d32f5707be1380ab82db1054fde82865d5c9e3d968f287b2",
		q0x: "71de3dadfe268872326c35ac512164850860567aea0e7325e6b91a98f86533ad",
		q0y: "26a08b6e9a18084c56f2147bf515414b9b63f1522e1b6c5649f7d4b0324296ec",
		q1x: "5704069021f61e41779e2ba6b932268316d6d2a6f064f997a22fef16d1eaeaca",
		q1y: "50483c7540f64fb4497619c050f2c7fe55454ec0f0e79870bb44302e34232210",
	},
	{
		msg: "q128_" + strings.Repeat("q", 128),
		px:  "096e9c8bae6c06b554c1ee69383bb0e82267e064236b3a30608d4ed20b73ac5a",
		py:  "1eb5a62612cafb32b16c3329794645b5b948d9f8ffe501d4e26b073fef6de355",
		u0:  "5e123990f11bbb5586613ffabdb58d47f64bb5f2fa115f8ea8df0188e0c9e1b5",
		u1:  "5e8553eb00438a0bb1e7faa59dec6d8087f9c8011e5fb8ed9df31cb6c0d4ac19",
		q0x: "7a94d45a198fb5daa381f45f2619ab279744efdd8bd8ed587fc5b65d6cea1df0",
		q0y: "67d44f85d376e64bb7d713585230cdbfafc8e2676f7568e0b6ee59361116a6e1",
		q1x: "30506fb7a32136694abd61b6113770270debe593027a968a01f271e146e60c18",
		q1y: "7eeee0e706b40c6b5174e551426a67f975ad5a977ee2f01e8e20a6d612458c3b",
	},
	{
		msg: "a512_" + strings.Repeat("a", 512),
		px:  "1bc61845a138e912f047b5e70ba9606ba2a447a4dade024c8ef3dd42b7bbc5fe",
		py:  "623d05e47b70e25f7f1d51dda6d7c23c9a18ce015fe3548df596ea9e38c69bf1",
		u0:  "20f481e85da7a3bf60ac0fb11ed1d0558fc6f941b3ac5469aa8b56ec883d6d7d",
		u1:  "017d57fd257e9a78913999a23b52ca988157a81b09c5442501d07fed20869465",
		q0x: "02d606e2699b918ee36f2818f2bc5013e437e673c9f9b9cdc15fd0c5ee913970",
		q0y: "29e9dc92297231ef211245db9e31767996c5625dfbf92e1c8107ef887365de1e",
		q1x: "38920e9b988d1ab7449c0fa9a6058192c0c797bb3d42ac345724341a1aa98745",
		q1y: "24dcc1be7c4d591d307e89049fd2ed30aae8911245a9d8554bf6032e5aa40d3d",
	},
}

// beHex is the big-endian hex of a field element, as RFC 9380 prints it.
func beHex(v *field.Element) string {
	b := v.Bytes()
	reverse(b)
	return hex.EncodeToString(b)
}

// leHex is the big-endian hex of a little-endian encoding.
func leHex(b []byte) string {
	c := append([]byte(nil), b...)
	reverse(c)
	return hex.EncodeToString(c)
}

// montgomeryXY returns the affine (u, v) of the curve25519 point that
// corresponds to the edwards25519 point p (RFC 7748 §4.1:
// u = (1+y)/(1-y), v = sqrt(-486664)·u/x).
func montgomeryXY(p *edwards25519.Point) (u, v *field.Element) {
	X, Y, Z, _ := p.ExtendedCoordinates()
	var zinv, x, y, n, d field.Element
	zinv.Invert(Z)
	x.Multiply(X, &zinv)
	y.Multiply(Y, &zinv)
	n.Add(feOne, &y)
	d.Subtract(feOne, &y)
	d.Invert(&d)
	u = new(field.Element).Multiply(&n, &d)
	x.Invert(&x)
	v = new(field.Element).Multiply(sqrtMinus486664, u)
	v.Multiply(v, &x)
	return u, v
}

func TestRFC9380Vectors(t *testing.T) {
	h := NewHasher([]byte(rfc9380DST))
	for _, v := range rfc9380Vectors {
		name := v.msg
		if len(name) > 16 {
			name = name[:16] + "…"
		}
		// hash_to_field
		var u0, u1 field.Element
		h.hashToField(&u0, &u1, []byte(v.msg))
		if got := beHex(&u0); got != v.u0 {
			t.Errorf("%q: u0 = %s, want %s", name, got, v.u0)
		}
		if got := beHex(&u1); got != v.u1 {
			t.Errorf("%q: u1 = %s, want %s", name, got, v.u1)
		}
		// map_to_curve, on curve25519
		for i, q := range []struct {
			u      *field.Element
			qx, qy string
		}{{&u0, v.q0x, v.q0y}, {&u1, v.q1x, v.q1y}} {
			var xn, xd, y, x field.Element
			elligator2(&xn, &xd, &y, q.u)
			x.Invert(&xd)
			x.Multiply(&x, &xn)
			if got := beHex(&x); got != q.qx {
				t.Errorf("%q: Q%d.x = %s, want %s", name, i, got, q.qx)
			}
			if got := beHex(&y); got != q.qy {
				t.Errorf("%q: Q%d.y = %s, want %s", name, i, got, q.qy)
			}
			// and through the rational map to edwards25519 and back
			p := mapPoint(t, q.u)
			mu, mv := montgomeryXY(p)
			if beHex(mu) != q.qx || beHex(mv) != q.qy {
				t.Errorf("%q: Q%d through edwards25519 = (%s, %s)", name, i, beHex(mu), beHex(mv))
			}
		}
		// the whole hash: u (the output) and the RFC's y
		var out [32]byte
		h.Hash(&out, []byte(v.msg))
		if got := leHex(out[:]); got != v.px {
			t.Errorf("%q: P.x = %s, want %s", name, got, v.px)
		}
		// P with filippo.io/edwards25519's own addition and cofactor
		// multiplication rather than extended.add and double.
		p := mapPoint(t, &u0)
		p.Add(p, mapPoint(t, &u1))
		p.MultByCofactor(p)
		pu, pv := montgomeryXY(p)
		if beHex(pu) != v.px || beHex(pv) != v.py {
			t.Errorf("%q: P = (%s, %s), want (%s, %s)", name, beHex(pu), beHex(pv), v.px, v.py)
		}
	}
}

// elligator2 is map_to_curve_elligator2(u) as the fraction xn/xd and y,
// through mapper with the field's own exponentiation.
func elligator2(xn, xd, y, u *field.Element) {
	var m mapper
	var x, pow field.Element
	m.begin(&x, u)
	pow.Pow22523(&x)
	m.montgomery(xn, y, &pow)
	xd.Set(&m.xd)
}

// mapToEdwards sets p to the edwards25519 point of map_to_curve(u),
// through mapper with the field's own exponentiation.
func mapToEdwards(p *extended, u *field.Element) {
	var m mapper
	var x, pow field.Element
	m.begin(&x, u)
	pow.Pow22523(&x)
	m.finish(p, &pow)
}

// mapPoint is mapToEdwards as an edwards25519.Point, whose
// SetExtendedCoordinates checks that the map's point is on the curve.
func mapPoint(t testing.TB, u *field.Element) *edwards25519.Point {
	var e extended
	mapToEdwards(&e, u)
	p, err := new(edwards25519.Point).SetExtendedCoordinates(&e.X, &e.Y, &e.Z, &e.T)
	if err != nil {
		t.Fatalf("the map's point is not on edwards25519: %v", err)
	}
	return p
}

// TestHashBatch: HashBatch gives what Hash gives, for batches of several
// sizes, including the empty batch.
func TestHashBatch(t *testing.T) {
	h := NewHasher([]byte("OVERLAP-V1-email-curve25519_XMD:SHA-512_ELL2_RO_"))
	for _, n := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 64} {
		msgs := make([][]byte, n)
		for i := range msgs {
			msgs[i] = []byte{byte(n), byte(i)}
		}
		out := make([][32]byte, n)
		h.HashBatch(out, msgs)
		for i := range msgs {
			var want [32]byte
			h.Hash(&want, msgs[i])
			if out[i] != want {
				t.Fatalf("batch of %d, element %d: %x, Hash gives %x", n, i, out[i], want)
			}
		}
	}
}

// TestExtendedArithmetic checks add and double against
// filippo.io/edwards25519 on random points.
func TestExtendedArithmetic(t *testing.T) {
	r := seeded(15)
	for range 50 {
		P := new(edwards25519.Point).ScalarBaseMult(randScalar(t, r))
		Q := new(edwards25519.Point).ScalarBaseMult(randScalar(t, r))
		Q.Add(Q, torsion8(t))
		var p, q, s extended
		X, Y, Z, T := P.ExtendedCoordinates()
		p = extended{*X, *Y, *Z, *T}
		X, Y, Z, T = Q.ExtendedCoordinates()
		q = extended{*X, *Y, *Z, *T}
		s.add(&p, &q)
		s.double(&s)
		want := new(edwards25519.Point).Add(P, Q)
		want.Add(want, want)
		var x1, y1, x2, y2, zi field.Element
		zi.Invert(&s.Z)
		x1.Multiply(&s.X, &zi)
		y1.Multiply(&s.Y, &zi)
		X, Y, Z, _ = want.ExtendedCoordinates()
		zi.Invert(Z)
		x2.Multiply(X, &zi)
		y2.Multiply(Y, &zi)
		if x1.Equal(&x2) != 1 || y1.Equal(&y2) != 1 {
			t.Fatal("add/double disagree with edwards25519")
		}
	}
}
