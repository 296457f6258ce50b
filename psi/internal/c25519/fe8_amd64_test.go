//go:build !purego

package c25519

import (
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/big"
	"testing"

	"filippo.io/edwards25519"
	"github.com/cloudflare/circl/dh/x25519"
)

// randFe8 fills v with limbs below 2^52, the largest mul8 and sqr8 take,
// a quarter of them at 2^52 - 1 exactly.
func randFe8(r io.Reader, v *fe8) {
	var b [8]byte
	for i := range v {
		for j := range v[i] {
			io.ReadFull(r, b[:])
			x := binary.LittleEndian.Uint64(b[:])
			if x%4 == 0 {
				v[i][j] = 1<<52 - 1
			} else {
				v[i][j] = x >> 12
			}
		}
	}
}

// checkLimbs fails unless every limb of v is below 2^52.
func checkLimbs(t *testing.T, v *fe8) {
	t.Helper()
	for i := range v {
		for j := range v[i] {
			if v[i][j] >= 1<<52 {
				t.Fatalf("limb %d of lane %d is %#x, not below 2^52", i, j, v[i][j])
			}
		}
	}
}

// TestMul8Sqr8 checks mul8 and sqr8 against math/big, from inputs at the
// bounds they assume, and that their outputs keep to those bounds.
func TestMul8Sqr8(t *testing.T) {
	if !hasVector {
		t.Skip("no AVX-512 IFMA on this machine: mul8 and sqr8 cannot run (pow22523x8 uses the field's own code)")
	}
	r := seeded(82)
	for round := range 500 {
		var a, b, out fe8
		randFe8(r, &a)
		randFe8(r, &b)
		if round == 0 { // every limb of both at the bound
			for i := range a {
				for j := range a[i] {
					a[i][j], b[i][j] = 1<<52-1, 1<<52-1
				}
			}
		}
		mul8(&out, &a, &b)
		checkLimbs(t, &out)
		for j := range 8 {
			want := new(big.Int).Mul(fe8Value(&a, j), fe8Value(&b, j))
			want.Mod(want, refP)
			if got := new(big.Int).Mod(fe8Value(&out, j), refP); got.Cmp(want) != 0 {
				t.Fatalf("mul8 lane %d: %x, want %x", j, got, want)
			}
		}
		for _, n := range []int{1, 2, 3} {
			sqr8(&out, &a, n)
			checkLimbs(t, &out)
			for j := range 8 {
				e := new(big.Int).Lsh(big.NewInt(1), uint(n))
				want := new(big.Int).Exp(fe8Value(&a, j), e, refP)
				if got := new(big.Int).Mod(fe8Value(&out, j), refP); got.Cmp(want) != 0 {
					t.Fatalf("sqr8(n=%d) lane %d: %x, want %x", n, j, got, want)
				}
			}
		}
	}
	// Aliasing: out = a.
	var a, b, want fe8
	randFe8(r, &a)
	randFe8(r, &b)
	mul8(&want, &a, &b)
	mul8(&a, &a, &b)
	if a != want {
		t.Fatal("mul8 with out = a differs")
	}
}

// TestHashVectorFallback checks that Hash and HashBatch give the same
// results with the vector unit as with the field's own exponentiation,
// for batches around the group of four messages.
func TestHashVectorFallback(t *testing.T) {
	if !hasVector {
		t.Skip("no AVX-512 IFMA: the fallback is the only path, and the RFC 9380 vectors cover it")
	}
	defer func() { useVector = true }()
	h := NewHasher([]byte("OVERLAP-V1-email-curve25519_XMD:SHA-512_ELL2_RO_"))
	for _, n := range []int{1, 3, 4, 5, 8, 9, 64} {
		msgs := make([][]byte, n)
		for i := range msgs {
			msgs[i] = []byte{byte(n), byte(i), 'v'}
		}
		fast, slow := make([][32]byte, n), make([][32]byte, n)
		useVector = true
		h.HashBatch(fast, msgs)
		useVector = false
		h.HashBatch(slow, msgs)
		for i := range msgs {
			var one, oneSlow [32]byte
			h.Hash(&oneSlow, msgs[i])
			useVector = true
			h.Hash(&one, msgs[i])
			useVector = false
			if fast[i] != slow[i] || one != slow[i] || oneSlow != slow[i] {
				t.Fatalf("batch of %d, element %d: %x with the vector unit, %x without; Hash %x and %x", n, i, fast[i], slow[i], one, oneSlow)
			}
		}
	}
}

// TestX25519x8 checks the eight-lane ladder against circl's X25519 on
// random scalars and inputs (points of the curve and of its twist, low
// order points and 0 among them), and RFC 7748 §5.2's two vectors.
func TestX25519x8(t *testing.T) {
	if !hasVector {
		t.Skip("no AVX-512 IFMA on this machine: x25519x8 cannot run")
	}
	r := seeded(85)
	for round := range 40 {
		var k [32]byte
		io.ReadFull(r, k[:])
		k = clamp(k)
		var in, out [8][32]byte
		for j := range in {
			io.ReadFull(r, in[j][:])
			in[j][31] &= 127
		}
		if round%4 == 0 {
			in[1] = lowOrder[round/4%len(lowOrder)]
			in[2] = [32]byte{9}
		}
		x25519x8One(&out, &in, &k)
		for j := range in {
			var want x25519.Key
			x25519.Shared(&want, (*x25519.Key)(&k), (*x25519.Key)(&in[j]))
			if out[j] != [32]byte(want) {
				t.Fatalf("round %d lane %d: %x, circl gives %x", round, j, out[j], want)
			}
		}
	}
	// RFC 7748 §5.2 (scalars there are clamped by X25519; clamp first).
	for _, v := range []struct{ k, u, want string }{
		{"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
			"e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
			"c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"},
		{"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
			"e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
			"95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"},
	} {
		var k, u, in [32]byte
		hex.Decode(k[:], []byte(v.k))
		hex.Decode(u[:], []byte(v.u))
		k = clamp(k)
		var ins, outs [8][32]byte
		for j := range ins {
			in = u
			ins[j] = in
		}
		x25519x8One(&outs, &ins, &k)
		for j := range outs {
			if got := hex.EncodeToString(outs[j][:]); got != v.want {
				t.Fatalf("RFC 7748 vector, lane %d: %s, want %s", j, got, v.want)
			}
		}
	}
}

func BenchmarkX25519x8(b *testing.B) {
	if !hasVector {
		b.Skip("no AVX-512 IFMA")
	}
	r := seeded(86)
	var k [32]byte
	io.ReadFull(r, k[:])
	k = clamp(k)
	var in [8][32]byte
	for j := range in {
		in[j] = [32]byte{9, byte(j)}
	}
	for b.Loop() {
		x25519x8One(&in, &in, &k)
	}
}

// TestMultGroupTakesTheVectorPath: a group of valid elements is multiplied
// by the vector ladder (multGroup reports true), under both kinds of
// checks, so that TestMultBatch compares the vector path, not the
// fallback, with the one-at-a-time functions.
func TestMultGroupTakesTheVectorPath(t *testing.T) {
	if !hasVector {
		t.Skip("no AVX-512 IFMA on this machine")
	}
	key, err := NewKey(seeded(91))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 5, 8} {
		in := batchInputs(n, 7)
		for _, c := range []checks{checkPeer, checkOwn} {
			out := make([][32]byte, n)
			if !multGroup(out, in, &key.k, c) {
				t.Fatalf("multGroup of %d valid elements (checks %d) fell back", n, c)
			}
			for i := range in {
				var want [32]byte
				if err := key.Mult(&want, &in[i]); err != nil || out[i] != want {
					t.Fatalf("element %d differs from Mult", i)
				}
			}
		}
	}
}

// TestX25519x8PerLane checks eight ladders under eight clamped scalars
// against circl's X25519, on random inputs and the base point.
func TestX25519x8PerLane(t *testing.T) {
	if !hasVector {
		t.Skip("no AVX-512 IFMA on this machine")
	}
	r := seeded(93)
	for round := range 20 {
		var ks, in, out [8][32]byte
		for j := range ks {
			io.ReadFull(r, ks[j][:])
			ks[j] = clamp(ks[j])
			io.ReadFull(r, in[j][:])
			in[j][31] &= 127
		}
		if round%2 == 0 {
			in = [8][32]byte{}
			for j := range in {
				in[j][0] = 9
			}
		}
		x25519x8(&out, &in, &ks)
		for j := range in {
			var want x25519.Key
			x25519.Shared(&want, (*x25519.Key)(&ks[j]), (*x25519.Key)(&in[j]))
			if out[j] != [32]byte(want) {
				t.Fatalf("round %d lane %d: %x, circl gives %x", round, j, out[j], want)
			}
		}
	}
}

// TestLadder8AnyScalar runs the ladder on scalars that are not clamped
// (odd ones among them, which exercise the final conditional swap, a no-op
// for clamped keys) against edwards25519's multiplication by the scalar
// mod ℓ, on points of the prime-order subgroup. ladder8 takes bits 254 to
// 0 as they are; the package passes it clamped keys only.
func TestLadder8AnyScalar(t *testing.T) {
	if !hasVector {
		t.Skip("no AVX-512 IFMA on this machine")
	}
	r := seeded(92)
	for round := range 20 {
		var k [32]byte
		io.ReadFull(r, k[:])
		k[31] &= 0x7f // bit 255 is not read
		if round%2 == 0 {
			k[0] |= 1
		}
		ks := scalarOf(t, k)
		var in, out [8][32]byte
		var pts [8]*edwards25519.Point
		for j := range in {
			pts[j] = new(edwards25519.Point).ScalarBaseMult(randScalar(t, r))
			in[j] = montU(pts[j])
		}
		x25519x8One(&out, &in, &k)
		for j := range in {
			want := montU(new(edwards25519.Point).ScalarMult(ks, pts[j]))
			if out[j] != want {
				t.Fatalf("round %d lane %d: %x, edwards25519 gives %x", round, j, out[j], want)
			}
		}
		// A scalar per lane, and each lane's own point.
		var kss [8][32]byte
		for j := range kss {
			io.ReadFull(r, kss[j][:])
			kss[j][31] &= 0x7f
		}
		x25519x8(&out, &in, &kss)
		for j := range in {
			want := montU(new(edwards25519.Point).ScalarMult(scalarOf(t, kss[j]), pts[j]))
			if out[j] != want {
				t.Fatalf("round %d, a scalar per lane, lane %d: %x, edwards25519 gives %x", round, j, out[j], want)
			}
		}
	}
}
