package c25519

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"filippo.io/edwards25519"
	"github.com/cloudflare/circl/dh/x25519"
)

func mustHex32(t testing.TB, s string) [32]byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("bad hex %q", s)
	}
	return [32]byte(b)
}

func clamp(b [32]byte) [32]byte {
	b[0] &= 248
	b[31] = b[31]&127 | 64
	return b
}

// multOnlyKey is a Key for Mult and BaseMult only (its inverse is not set),
// from any 32 bytes, clamped as X25519 does: for the RFC 7748 vectors,
// whose scalars are not clamped and need not have a clamped inverse.
func multOnlyKey(b [32]byte) *Key {
	return &Key{k: x25519.Key(clamp(b))}
}

// TestRFC7748 runs the vectors of RFC 7748 §5.2 and §6.1 through the raw
// ladder and, where the input is a valid element, through Mult.
func TestRFC7748(t *testing.T) {
	for i, v := range []struct {
		k, u, out string
		valid     bool // whether u is a valid element (canonical, on the curve, not of low order)
	}{
		// §5.2, first vector: a point of the curve.
		{"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
			"e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
			"c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552", true},
		// §5.2, second vector: the top bit of u is set, which X25519 masks
		// and Valid refuses.
		{"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
			"e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
			"95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957", false},
		// §6.1: Alice's key and Bob's public key give the shared secret.
		{"77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
			"de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
			"4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", true},
		{"5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
			"8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
			"4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", true},
	} {
		k, u, want := mustHex32(t, v.k), mustHex32(t, v.u), mustHex32(t, v.out)
		var raw x25519.Key
		x25519.Shared(&raw, (*x25519.Key)(&k), (*x25519.Key)(&u))
		if [32]byte(raw) != want {
			t.Errorf("vector %d: ladder = %x, want %x", i, raw, want)
		}
		if Valid(&u) != v.valid {
			t.Errorf("vector %d: Valid = %v, want %v", i, !v.valid, v.valid)
		}
		var out [32]byte
		err := multOnlyKey(k).Mult(&out, &u)
		switch {
		case v.valid && (err != nil || out != want):
			t.Errorf("vector %d: Mult = %x, %v; want %x", i, out, err, want)
		case !v.valid && !errors.Is(err, ErrInvalidElement):
			t.Errorf("vector %d: Mult error = %v, want ErrInvalidElement", i, err)
		}
	}
	// §6.1: the public keys are BaseMult.
	for _, v := range [][2]string{
		{"77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"},
		{"5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"},
	} {
		var out [32]byte
		multOnlyKey(mustHex32(t, v[0])).BaseMult(&out)
		if out != mustHex32(t, v[1]) {
			t.Errorf("BaseMult(%s) = %x, want %s", v[0][:8], out, v[1])
		}
	}
}

// TestRFC7748Iterations runs the iterated vector of RFC 7748 §5.2 (1 and
// 1,000 iterations; the million is left out) through Mult: every input
// after the first is an earlier output, so a valid element.
func TestRFC7748Iterations(t *testing.T) {
	k := [32]byte{9}
	u := [32]byte{9}
	for i := 1; i <= 1000; i++ {
		var out [32]byte
		if err := multOnlyKey(k).Mult(&out, &u); err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		k, u = out, k
		switch i {
		case 1:
			if want := mustHex32(t, "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"); k != want {
				t.Fatalf("after 1 iteration: %x, want %x", k, want)
			}
		case 1000:
			if want := mustHex32(t, "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"); k != want {
				t.Fatalf("after 1,000 iterations: %x, want %x", k, want)
			}
		}
	}
}

// scalarOf is k mod ℓ as an edwards25519 scalar.
func scalarOf(t testing.TB, k [32]byte) *edwards25519.Scalar {
	var wide [64]byte
	copy(wide[:], k[:])
	s, err := edwards25519.NewScalar().SetUniformBytes(wide[:])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randScalar(t testing.TB, r io.Reader) *edwards25519.Scalar {
	var b [64]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		t.Fatal(err)
	}
	s, _ := edwards25519.NewScalar().SetUniformBytes(b[:])
	return s
}

func montU(p *edwards25519.Point) [32]byte { return [32]byte(p.BytesMontgomery()) }

// seeded returns a deterministic random source for a test.
func seeded(seed uint64) io.Reader { return mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}) }

// TestKeyAgainstEdwards checks Mult, InvMult and BaseMult against
// filippo.io/edwards25519's scalar multiplication of the birationally
// equivalent edwards25519 point, and Mult against crypto/ecdh's X25519.
func TestKeyAgainstEdwards(t *testing.T) {
	r := seeded(1)
	for range 64 {
		key, err := NewKey(r)
		if err != nil {
			t.Fatal(err)
		}
		ks := scalarOf(t, key.Bytes())
		kinv := edwards25519.NewScalar().Invert(ks)

		// BaseMult: u(k·B).
		var base [32]byte
		key.BaseMult(&base)
		if want := montU(new(edwards25519.Point).ScalarBaseMult(ks)); base != want {
			t.Fatalf("BaseMult = %x, want %x", base, want)
		}

		// P = s·B, a random point of the prime-order subgroup.
		s := randScalar(t, r)
		P := new(edwards25519.Point).ScalarBaseMult(s)
		in := montU(P)
		if !Valid(&in) {
			t.Fatalf("a subgroup point is not Valid: %x", in)
		}
		var out, back [32]byte
		if err := key.Mult(&out, &in); err != nil {
			t.Fatal(err)
		}
		if want := montU(new(edwards25519.Point).ScalarMult(ks, P)); out != want {
			t.Fatalf("Mult = %x, want %x", out, want)
		}
		var own [32]byte
		if err := key.MultOwn(&own, &in); err != nil || own != out {
			t.Fatalf("MultOwn = %x, %v; Mult = %x", own, err, out)
		}
		if err := key.InvMult(&back, &in); err != nil {
			t.Fatal(err)
		}
		if want := montU(new(edwards25519.Point).ScalarMult(kinv, P)); back != want {
			t.Fatalf("InvMult = %x, want %x", back, want)
		}
		if err := key.InvMult(&back, &out); err != nil || back != in {
			t.Fatalf("InvMult(Mult(P)) = %x, %v; want P = %x", back, err, in)
		}

		// crypto/ecdh's X25519 agrees.
		priv, err := ecdh.X25519().NewPrivateKey(key.k[:])
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ecdh.X25519().NewPublicKey(in[:])
		if err != nil {
			t.Fatal(err)
		}
		shared, err := priv.ECDH(pub)
		if err != nil || !bytes.Equal(shared, out[:]) {
			t.Fatalf("crypto/ecdh = %x, %v; Mult = %x", shared, err, out)
		}
		if !bytes.Equal(priv.PublicKey().Bytes(), base[:]) {
			t.Fatalf("crypto/ecdh public key = %x, BaseMult = %x", priv.PublicKey().Bytes(), base)
		}
	}
}

// torsion8 is a point of edwards25519 of order 8 (its RFC 8032 encoding).
func torsion8(t testing.TB) *edwards25519.Point {
	b, _ := hex.DecodeString("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	T, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	id := edwards25519.NewIdentityPoint()
	T4 := new(edwards25519.Point).Add(T, T)
	T4.Add(T4, T4)
	if T4.Equal(id) == 1 || new(edwards25519.Point).MultByCofactor(T).Equal(id) != 1 {
		t.Fatal("torsion8 is not of order 8")
	}
	return T
}

// TestTorsionedInput checks that for P = P0 + T, T of order dividing 8,
// Mult gives k·P0 and InvMult gives k^-1·P0 (both clamped scalars are
// multiples of 8), so InvMult(Mult(P)) = P0, not P.
func TestTorsionedInput(t *testing.T) {
	r := seeded(2)
	T := torsion8(t)
	for i := range 32 {
		key, err := NewKey(r)
		if err != nil {
			t.Fatal(err)
		}
		ks := scalarOf(t, key.Bytes())
		kinv := edwards25519.NewScalar().Invert(ks)
		P0 := new(edwards25519.Point).ScalarBaseMult(randScalar(t, r))
		Ti := new(edwards25519.Point).Set(T)
		for range i % 8 { // T, 2T, …, 7T and the identity
			Ti.Add(Ti, T)
		}
		P := new(edwards25519.Point).Add(P0, Ti)
		in, p0 := montU(P), montU(P0)
		if !Valid(&in) {
			t.Fatalf("P0 + %dT is not Valid", i%8+1)
		}
		var out, back [32]byte
		if err := key.Mult(&out, &in); err != nil {
			t.Fatal(err)
		}
		if want := montU(new(edwards25519.Point).ScalarMult(ks, P0)); out != want {
			t.Fatalf("Mult(P0 + T) = %x, want k·P0 = %x", out, want)
		}
		if err := key.InvMult(&back, &in); err != nil {
			t.Fatal(err)
		}
		if want := montU(new(edwards25519.Point).ScalarMult(kinv, P0)); back != want {
			t.Fatalf("InvMult(P0 + T) = %x, want k^-1·P0 = %x", back, want)
		}
		if err := key.InvMult(&back, &out); err != nil || back != p0 {
			t.Fatalf("InvMult(Mult(P0 + T)) = %x, %v; want P0 = %x", back, err, p0)
		}
		if (i%8+1)%8 != 0 && back == in {
			t.Fatal("the torsion component survived")
		}
	}
}

// TestNegatedInput: P and -P share u, and k·(-P) = -(k·P) has the u of k·P.
func TestNegatedInput(t *testing.T) {
	r := seeded(3)
	key, err := NewKey(r)
	if err != nil {
		t.Fatal(err)
	}
	P := new(edwards25519.Point).ScalarBaseMult(randScalar(t, r))
	N := new(edwards25519.Point).Negate(P)
	if montU(P) != montU(N) {
		t.Fatal("P and -P have different u")
	}
	if P.Equal(N) == 1 {
		t.Fatal("P = -P")
	}
	ks := scalarOf(t, key.Bytes())
	kP := montU(new(edwards25519.Point).ScalarMult(ks, P))
	kN := montU(new(edwards25519.Point).ScalarMult(ks, N))
	in := montU(P)
	var out [32]byte
	if err := key.Mult(&out, &in); err != nil || out != kP || out != kN {
		t.Fatalf("Mult(u(±P)) = %x, %v; u(k·P) = %x, u(k·(-P)) = %x", out, err, kP, kN)
	}
}

func TestNewKey(t *testing.T) {
	// Counting the bytes drawn gives the acceptance rate: about one key in
	// two has a clamped inverse.
	cr := &countingReader{r: seeded(4)}
	const n = 2000
	for range n {
		key, err := NewKey(cr)
		if err != nil {
			t.Fatal(err)
		}
		checkKey(t, key)
	}
	draws := float64(cr.n/32) / n
	if draws < 1.8 || draws > 2.2 {
		t.Errorf("%.3f draws per key, want about 2", draws)
	}
	t.Logf("%.3f draws per key", draws)

	// A failing source fails NewKey, with the source's error.
	wantErr := errors.New("no entropy")
	if _, err := NewKey(&failingReader{err: wantErr}); !errors.Is(err, wantErr) {
		t.Errorf("NewKey(failing) = %v", err)
	}
	// A source of zeros: the clamped zero scalar 2^254 has no clamped
	// inverse, so every draw is refused.
	if k, err := NewKey(zeroReader{}); err == nil {
		t.Errorf("NewKey(zeros) = %v, want an error", k)
	}
	if _, err := NewKey(rand.Reader); err != nil {
		t.Error(err)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

type failingReader struct{ err error }

func (f *failingReader) Read([]byte) (int, error) { return 0, f.err }

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// checkKey checks a key's invariants in math/big: both scalars clamped,
// their product 1 mod ℓ.
func checkKey(t testing.TB, key *Key) {
	t.Helper()
	k, inv := [32]byte(key.k), [32]byte(key.inv)
	if !clamped(&k) || !clamped(&inv) {
		t.Fatalf("a scalar is not clamped")
	}
	prod := new(big.Int).Mul(refLE(k[:]), refLE(inv[:]))
	if prod.Mod(prod, refL).Cmp(bigOne) != 0 {
		t.Fatal("k·inv ≠ 1 mod ℓ")
	}
}

// refInverseRep is inverseRep in math/big: the clamped representative of
// k^-1 mod ℓ, searched over every candidate i + j·ℓ.
func refInverseRep(k [32]byte) ([32]byte, bool) {
	i := new(big.Int).ModInverse(new(big.Int).Mod(refLE(k[:]), refL), refL)
	if i == nil { // k ≡ 0 mod ℓ
		return [32]byte{}, false
	}
	lo := new(big.Int).Lsh(bigOne, 254)
	hi := new(big.Int).Lsh(bigOne, 255)
	for j := range int64(16) {
		c := new(big.Int).Add(i, new(big.Int).Mul(big.NewInt(j), refL))
		if c.Cmp(lo) >= 0 && c.Cmp(hi) < 0 && c.Bit(0)|c.Bit(1)|c.Bit(2) == 0 {
			var out [32]byte
			c.FillBytes(out[:])
			reverse(out[:])
			return out, true
		}
	}
	return [32]byte{}, false
}

func TestInverseRepAgainstBig(t *testing.T) {
	r := seeded(5)
	accepted := 0
	for range 4000 {
		var k [32]byte
		io.ReadFull(r, k[:])
		k = clamp(k)
		var got x25519.Key
		ok := inverseRep(&got, (*x25519.Key)(&k)) == 1
		want, wantOK := refInverseRep(k)
		if ok != wantOK || (ok && [32]byte(got) != want) {
			t.Fatalf("inverseRep(%x) = %x, %v; want %x, %v", k, got, ok, want, wantOK)
		}
		if ok {
			accepted++
		}
	}
	t.Logf("%d of 4000 clamped scalars have a clamped inverse", accepted)
}

func TestKeyFromBytes(t *testing.T) {
	r := seeded(6)
	key, err := NewKey(r)
	if err != nil {
		t.Fatal(err)
	}
	b := key.Bytes()
	again, err := KeyFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if again.k != key.k || again.inv != key.inv {
		t.Fatal("KeyFromBytes(Bytes()) is another key")
	}

	// A clamped scalar whose inverse has no clamped representative.
	var noInverse [32]byte
	for {
		io.ReadFull(r, noInverse[:])
		noInverse = clamp(noInverse)
		if _, ok := refInverseRep(noInverse); !ok {
			break
		}
	}
	for _, c := range []struct {
		name string
		b    [32]byte
	}{
		{"zero", [32]byte{}},
		{"low bit 0 set", func() [32]byte { x := b; x[0] |= 1; return x }()},
		{"low bit 2 set", func() [32]byte { x := b; x[0] |= 4; return x }()},
		{"bit 255 set", func() [32]byte { x := b; x[31] |= 0x80; return x }()},
		{"bit 254 clear", func() [32]byte { x := b; x[31] &^= 0x40; return x }()},
		{"all ones", func() (x [32]byte) {
			for i := range x {
				x[i] = 0xff
			}
			return x
		}()},
		{"inverse not representable", noInverse},
	} {
		if k, err := KeyFromBytes(c.b); !errors.Is(err, ErrKey) {
			t.Errorf("%s: KeyFromBytes = %v, %v; want ErrKey", c.name, k, err)
		}
	}
}

func TestErase(t *testing.T) {
	key, err := NewKey(seeded(7))
	if err != nil {
		t.Fatal(err)
	}
	in := [32]byte{9}
	var out [32]byte
	key.Erase()
	if key.k != (x25519.Key{}) || key.inv != (x25519.Key{}) {
		t.Fatal("Erase left key material")
	}
	if err := key.Mult(&out, &in); !errors.Is(err, ErrErased) {
		t.Errorf("Mult after Erase: %v", err)
	}
	if err := key.InvMult(&out, &in); !errors.Is(err, ErrErased) {
		t.Errorf("InvMult after Erase: %v", err)
	}
	if err := key.MultOwn(&out, &in); !errors.Is(err, ErrErased) {
		t.Errorf("MultOwn after Erase: %v", err)
	}
}

func TestKeyDoesNotPrint(t *testing.T) {
	key, err := NewKey(seeded(8))
	if err != nil {
		t.Fatal(err)
	}
	b := key.Bytes()
	secrets := []string{hex.EncodeToString(b[:]), hex.EncodeToString(key.inv[:]), fmt.Sprint(b[:4])}
	for _, s := range []string{
		fmt.Sprintf("%v %+v %#v %s %x %X %d %q", key, key, key, key, key, key, key, key),
		fmt.Sprintf("%v %+v %#v %s %x %d", *key, *key, *key, *key, *key, *key),
		fmt.Sprint(key, *key, []*Key{key}, struct{ K *Key }{key}),
		fmt.Sprintf("%v", struct{ K Key }{*key}),
		fmt.Errorf("wrapped: %v", key).Error(),
	} {
		for _, secret := range secrets {
			if strings.Contains(s, secret) {
				t.Fatalf("printed a key: %s", s)
			}
		}
		if !strings.Contains(s, "REDACTED") {
			t.Fatalf("not redacted: %s", s)
		}
	}
}

// TestTorsionVariantsCollide shows why the suite needs the rule of
// SPEC.md §12.6 that the party that multiplies a received batch checks its
// results, not only its inputs, for duplicates: P0 + T for the eight T of
// order dividing 8 are eight distinct valid encodings, and Mult maps all
// of them to the one element k·P0.
func TestTorsionVariantsCollide(t *testing.T) {
	r := seeded(16)
	key, err := NewKey(r)
	if err != nil {
		t.Fatal(err)
	}
	T := torsion8(t)
	P := new(edwards25519.Point).ScalarBaseMult(randScalar(t, r))
	seen := map[[32]byte]bool{}
	var first [32]byte
	for i := range 8 {
		in := montU(P)
		if !Valid(&in) {
			t.Fatalf("P0 + %dT is not valid", i)
		}
		seen[in] = true
		var out [32]byte
		if err := key.Mult(&out, &in); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = out
		} else if out != first {
			t.Fatalf("Mult(P0 + %dT) ≠ Mult(P0)", i)
		}
		P.Add(P, T)
	}
	if len(seen) != 8 {
		t.Fatalf("%d distinct encodings, want 8", len(seen))
	}
}
