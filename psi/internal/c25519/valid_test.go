package c25519

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/big"
	"testing"

	"filippo.io/edwards25519"
	"github.com/cloudflare/circl/dh/x25519"
)

func leBytes(x *big.Int) [32]byte {
	var out [32]byte
	x.FillBytes(out[:])
	reverse(out[:])
	return out
}

// TestLowOrderConstants checks the table against the u-coordinates derived
// in math/big (lowOrderRef), and that each point is of low order: X25519
// with any clamped key gives zero.
func TestLowOrderConstants(t *testing.T) {
	if len(lowOrderRef) != len(lowOrder) {
		t.Fatalf("%d derived low-order u, %d in the table", len(lowOrderRef), len(lowOrder))
	}
	for _, u := range lowOrderRef {
		b := leBytes(u)
		found := false
		for _, c := range lowOrder {
			found = found || c == b
		}
		if !found {
			t.Errorf("derived low-order u %x is not in the table", b)
		}
	}
	for _, c := range lowOrder {
		var out x25519.Key
		x25519.Shared(&out, (*x25519.Key)(&[32]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31}), (*x25519.Key)(&c))
		if out != (x25519.Key{}) {
			t.Errorf("u = %x: X25519 gives %x, not zero", c, out)
		}
	}
}

// invalidElements are the elements Valid must refuse, by group.
func invalidElements(t *testing.T) []struct {
	name string
	u    [32]byte
} {
	var out []struct {
		name string
		u    [32]byte
	}
	add := func(name string, u [32]byte) {
		out = append(out, struct {
			name string
			u    [32]byte
		}{name, u})
	}
	// Not canonical: p, p+1, ..., 2^255-1 (u ≥ p with the top bit clear).
	for d := int64(0); d < 19; d++ {
		add(fmt.Sprintf("p+%d", d), leBytes(new(big.Int).Add(refP, big.NewInt(d))))
	}
	// Not canonical: the top bit set, on an element that is otherwise
	// valid (X25519 would mask the bit and accept it).
	good := montU(new(edwards25519.Point).ScalarBaseMult(randScalar(t, seeded(9))))
	top := good
	top[31] |= 0x80
	add("valid u with bit 255 set", top)
	add("all ones", [32]byte{0: 0xff, 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff, 8: 0xff, 9: 0xff,
		10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff, 16: 0xff, 17: 0xff, 18: 0xff, 19: 0xff, 20: 0xff,
		21: 0xff, 22: 0xff, 23: 0xff, 24: 0xff, 25: 0xff, 26: 0xff, 27: 0xff, 28: 0xff, 29: 0xff, 30: 0xff, 31: 0xff})
	// Low order: every u of a point of order dividing 8 (and p-1, of the
	// twist).
	for i, c := range lowOrder {
		add(fmt.Sprintf("low order #%d", i), c)
	}
	// Points of the twist: the first few small u whose g(u) is not a
	// square, and a random one.
	n := 0
	for u := int64(2); n < 4; u++ {
		if refLegendre(refG(big.NewInt(u))) == -1 {
			add(fmt.Sprintf("twist u=%d", u), leBytes(big.NewInt(u)))
			n++
		}
	}
	r := seeded(10)
	for {
		var b [32]byte
		io.ReadFull(r, b[:])
		b[31] &= 0x7f
		u := refLE(b[:])
		if u.Cmp(refP) < 0 && refLegendre(refG(u)) == -1 {
			add("random twist point", b)
			break
		}
	}
	return out
}

func TestValidNegatives(t *testing.T) {
	key, err := NewKey(seeded(11))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range invalidElements(t) {
		u := c.u
		if Valid(&u) {
			t.Errorf("%s: Valid(%x) = true", c.name, u)
		}
		if refValid(u) {
			t.Errorf("%s: the reference accepts %x", c.name, u)
		}
		// MultOwn skips only the twist check.
		var own [32]byte
		ownErr := key.MultOwn(&own, &u)
		if twist := refLE(u[:]).Cmp(refP) < 0 && refLegendre(refG(refLE(u[:]))) == -1 && u != lowOrder[4]; twist {
			if ownErr != nil || Valid(&own) {
				t.Errorf("%s: MultOwn = %x, %v; want a twist point", c.name, own, ownErr)
			}
		} else if !errors.Is(ownErr, ErrInvalidElement) {
			t.Errorf("%s: MultOwn error %v, want ErrInvalidElement", c.name, ownErr)
		}
		out := [32]byte{1, 2, 3}
		for _, f := range []func(out, in *[32]byte) error{key.Mult, key.InvMult} {
			if err := f(&out, &u); !errors.Is(err, ErrInvalidElement) {
				t.Errorf("%s: multiplication error %v, want ErrInvalidElement", c.name, err)
			}
			if out != [32]byte{1, 2, 3} {
				t.Errorf("%s: a refused multiplication wrote its output", c.name)
			}
		}
	}
}

func TestValidPositives(t *testing.T) {
	r := seeded(12)
	T := torsion8(t)
	for i := range 200 {
		P := new(edwards25519.Point).ScalarBaseMult(randScalar(t, r))
		if i%2 == 1 {
			P.Add(P, T) // points of the curve outside the subgroup are valid
		}
		u := montU(P)
		if !Valid(&u) || !refValid(u) {
			t.Fatalf("Valid(%x) = %v, reference %v", u, Valid(&u), refValid(u))
		}
	}
	nine := [32]byte{9}
	if !Valid(&nine) {
		t.Fatal("the base point is not valid")
	}
}

// TestValidAgainstReference compares Valid with the math/big reference on
// random u below 2^255, half of which are on the twist.
func TestValidAgainstReference(t *testing.T) {
	r := seeded(13)
	valid := 0
	for range 2000 {
		var u [32]byte
		io.ReadFull(r, u[:])
		u[31] &= 0x7f
		if Valid(&u) != refValid(u) {
			t.Fatalf("Valid(%x) = %v, reference %v", u, Valid(&u), refValid(u))
		}
		if Valid(&u) {
			valid++
		}
	}
	t.Logf("%d of 2000 random u are valid", valid)
	if valid < 900 || valid > 1100 {
		t.Errorf("%d of 2000 random u valid, want about half (the curve, not the twist)", valid)
	}
}

// TestHashAgainstReference compares Hash with the math/big reference of
// RFC 9380's straight-line map and affine addition, on random messages
// under several tags.
func TestHashAgainstReference(t *testing.T) {
	r := seeded(14)
	for _, dst := range []string{
		"OVERLAP-V1-email-curve25519_XMD:SHA-512_ELL2_RO_",
		"OVERLAP-V1-phone-curve25519_XMD:SHA-512_ELL2_RO_",
		rfc9380DST,
		string(make([]byte, 300)), // longer than 255: hashed first (RFC 9380 §5.3.3)
	} {
		h := NewHasher([]byte(dst))
		for i := range 40 {
			msg := make([]byte, i*7%150)
			io.ReadFull(r, msg)
			var got [32]byte
			h.Hash(&got, msg)
			if want := refHash([]byte(dst), msg); got != want {
				t.Fatalf("dst %.20q msg %x: Hash = %x, reference %x", dst, msg, got, want)
			}
			if !Valid(&got) {
				t.Fatalf("Hash output %x is not Valid", got)
			}
		}
	}
}

// TestHashInSubgroup: the hash output times ℓ is the identity (the
// result of clear_cofactor is in the prime-order subgroup). X25519 by ℓ
// is not possible with a clamped scalar, so it is checked on edwards25519:
// the point with the output's u (either sign) has order ℓ.
func TestHashInSubgroup(t *testing.T) {
	h := NewHasher([]byte("OVERLAP-V1-id-curve25519_XMD:SHA-512_ELL2_RO_"))
	for i := range 50 {
		var u [32]byte
		h.Hash(&u, []byte{byte(i)})
		// Edwards y = (u-1)/(u+1); decode with sign bit 0.
		uu := refLE(u[:])
		y := refMod(new(big.Int).Mul(new(big.Int).Sub(uu, bigOne), refInv(new(big.Int).Add(uu, bigOne))))
		enc := leBytes(y)
		P, err := new(edwards25519.Point).SetBytes(enc[:])
		if err != nil {
			t.Fatal(err)
		}
		// ℓ·P = 0 ⇔ (ℓ-1)·P = -P; scalars are mod ℓ, so compute
		// P·(ℓ-1) with the scalar -1.
		minusOne := edwards25519.NewScalar().Subtract(edwards25519.NewScalar(), scalarOne())
		Q := new(edwards25519.Point).ScalarMult(minusOne, P)
		Q.Add(Q, P)
		if Q.Equal(edwards25519.NewIdentityPoint()) != 1 {
			t.Fatalf("hash output %x is not in the prime-order subgroup", u)
		}
	}
	// The check can fail: a point with torsion is not in the subgroup.
	P := new(edwards25519.Point).Add(edwards25519.NewGeneratorPoint(), torsion8(t))
	minusOne := edwards25519.NewScalar().Subtract(edwards25519.NewScalar(), scalarOne())
	Q := new(edwards25519.Point).ScalarMult(minusOne, P)
	Q.Add(Q, P)
	if Q.Equal(edwards25519.NewIdentityPoint()) == 1 {
		t.Fatal("the subgroup check accepts a torsioned point")
	}
}

func scalarOne() *edwards25519.Scalar {
	var b [32]byte
	b[0] = 1
	s, _ := edwards25519.NewScalar().SetCanonicalBytes(b[:])
	return s
}

// TestProtocolVectors pins the hash for Overlap's tags (SPEC.md §12.3:
// DST(kind) = "OVERLAP-V1-" || name(kind) || "-curve25519_XMD:SHA-512_ELL2_RO_")
// on digests of fixed identifiers. Little-endian u, as on the wire.
func TestProtocolVectors(t *testing.T) {
	for _, v := range []struct {
		kind, msg, want string
	}{
		{"email", "alice@example.com", "9a54a259e86841a55d1cdd866d5082ba81926ff40c40ce4bc3e5685ef92d3a4c"},
		{"phone", "+14155550123", "beb5ea2c562ce87a38da5536df5092931a95a99fb728f88d8afddb029dec7021"},
		{"id", "customer-0001", "c1a1601a2e337743ff0aba4cb56891ee6ff9e088f93cda20d93e6acd1fbab044"},
	} {
		dst := []byte("OVERLAP-V1-" + v.kind + "-curve25519_XMD:SHA-512_ELL2_RO_")
		h := NewHasher(dst)
		d := sha256Sum([]byte(v.msg))
		if ref := refHash(dst, d[:]); fmt.Sprintf("%x", ref) != v.want {
			t.Errorf("%s %q: the reference gives %x, want %s", v.kind, v.msg, ref, v.want)
		}
		var u [32]byte
		h.Hash(&u, d[:])
		if got := fmt.Sprintf("%x", u); got != v.want {
			t.Errorf("%s %q: H = %s, want %s", v.kind, v.msg, got, v.want)
		}
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
