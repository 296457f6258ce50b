package c25519

import (
	"crypto/ecdh"
	"crypto/rand"
	"testing"

	"filippo.io/edwards25519/field"
	"github.com/cloudflare/circl/dh/x25519"
	fp "github.com/cloudflare/circl/math/fp25519"

	"github.com/overlap-psi/overlap/psi/internal/r255"
)

// The benchmarks of this suite, then the same operations of version 1's
// ristretto255 (package r255) for a side-by-side in one run:
//
//	go test -run XXX -bench . ./psi/internal/c25519

func benchElement(b *testing.B) [32]byte {
	var u [32]byte
	NewHasher([]byte("bench")).Hash(&u, []byte("element"))
	return u
}

func BenchmarkHash(b *testing.B) {
	h := NewHasher([]byte("OVERLAP-V1-email-curve25519_XMD:SHA-512_ELL2_RO_"))
	var msg, out [32]byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		msg[0], msg[1] = byte(i), byte(i>>8)
		h.Hash(&out, msg[:])
	}
}

// BenchmarkHashBatch is the cost per element of HashBatch on batches of
// 256 (one shared inversion).
func BenchmarkHashBatch(b *testing.B) {
	h := NewHasher([]byte("OVERLAP-V1-email-curve25519_XMD:SHA-512_ELL2_RO_"))
	const n = 256
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = make([]byte, 32)
		msgs[i][0], msgs[i][1] = byte(i), byte(i>>8)
	}
	out := make([][32]byte, n)
	b.ReportAllocs()
	for b.Loop() {
		h.HashBatch(out, msgs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/element")
}

func BenchmarkMult(b *testing.B) {
	key, _ := NewKey(rand.Reader)
	u := benchElement(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := key.Mult(&u, &u); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMultOwn(b *testing.B) {
	key, _ := NewKey(rand.Reader)
	u := benchElement(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := key.MultOwn(&u, &u); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInvMult(b *testing.B) {
	key, _ := NewKey(rand.Reader)
	u := benchElement(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := key.InvMult(&u, &u); err != nil {
			b.Fatal(err)
		}
	}
}

// benchBatch is the cost per element of a batch function on batches of
// 256 (groups of eight on the vector unit, where there is one).
func benchBatch(b *testing.B, f func(*Key) func(out, in [][32]byte) (int, error)) {
	key, _ := NewKey(rand.Reader)
	const n = 256
	in := batchInputs(n, 1)
	out := make([][32]byte, n)
	mult := f(key)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := mult(out, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/element")
}

func BenchmarkMultBatch(b *testing.B) {
	benchBatch(b, func(k *Key) func(out, in [][32]byte) (int, error) { return k.MultBatch })
}

func BenchmarkMultOwnBatch(b *testing.B) {
	benchBatch(b, func(k *Key) func(out, in [][32]byte) (int, error) { return k.MultOwnBatch })
}

func BenchmarkInvMultBatch(b *testing.B) {
	benchBatch(b, func(k *Key) func(out, in [][32]byte) (int, error) { return k.InvMultBatch })
}

func BenchmarkBaseMult(b *testing.B) {
	key, _ := NewKey(rand.Reader)
	var u [32]byte
	b.ReportAllocs()
	for b.Loop() {
		key.BaseMult(&u)
	}
}

func BenchmarkValid(b *testing.B) {
	u := benchElement(b)
	b.ReportAllocs()
	for b.Loop() {
		if !Valid(&u) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkNewKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewKey(rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLadder compares the two X25519 implementations at hand on the
// bare variable-base multiplication (no validity check): circl's
// (dh/x25519, MULX/ADX assembly) and the standard library's crypto/ecdh.
func BenchmarkLadder(b *testing.B) {
	key, _ := NewKey(rand.Reader)
	u := benchElement(b)
	b.Run("circl", func(b *testing.B) {
		b.ReportAllocs()
		var out x25519.Key
		for b.Loop() {
			x25519.Shared(&out, &key.k, (*x25519.Key)(&u))
		}
	})
	b.Run("crypto-ecdh", func(b *testing.B) {
		priv, err := ecdh.X25519().NewPrivateKey(key.k[:])
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			pub, err := ecdh.X25519().NewPublicKey(u[:])
			if err != nil {
				b.Fatal(err)
			}
			if _, err := priv.ECDH(pub); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLegendre compares ways to decide whether g(u) is a square:
// the exponentiation of onCurve (filippo.io/edwards25519/field), and
// circl's fp25519.InvSqrt (an exponentiation with MULX/ADX assembly).
func BenchmarkLegendre(b *testing.B) {
	u := benchElement(b)
	b.Run("onCurve-field", func(b *testing.B) {
		for b.Loop() {
			if onCurve(&u) != 1 {
				b.Fatal("not on curve")
			}
		}
	})
	b.Run("circl-fp-InvSqrt", func(b *testing.B) {
		var x, g, t, one fp.Elt
		x = fp.Elt(u)
		fp.SetOne(&one)
		for b.Loop() {
			fp.Add(&g, &x, &fp.Elt{0x06, 0x6d, 0x07}) // u + A
			fp.Mul(&g, &g, &x)
			fp.Add(&g, &g, &one)
			fp.Mul(&g, &g, &x)
			if !fp.InvSqrt(&t, &g, &one) {
				b.Fatal("not on curve")
			}
		}
	})
	b.Run("field-Invert", func(b *testing.B) {
		var v field.Element
		v.SetBytes(u[:])
		for b.Loop() {
			v.Invert(&v)
		}
	})
}

// BenchmarkR255 runs version 1's operations in the same run.
func BenchmarkR255(b *testing.B) {
	h := r255.NewHasher([]byte("OVERLAP-V1-email-ristretto255_XMD:SHA-512_R255MAP_RO_"))
	var msg [32]byte
	e := h.Hash(r255.NewElement(), msg[:])
	s, _ := r255.RandomScalar(rand.Reader)
	enc := e.Bytes()
	b.Run("Hash", func(b *testing.B) {
		b.ReportAllocs()
		out := r255.NewElement()
		for i := 0; b.Loop(); i++ {
			msg[0], msg[1] = byte(i), byte(i>>8)
			h.Hash(out, msg[:])
		}
	})
	b.Run("ScalarMult", func(b *testing.B) {
		b.ReportAllocs()
		out := r255.NewElement()
		for b.Loop() {
			out.ScalarMult(s, e)
		}
	})
	// What Mult does in version 1: decode a received element, multiply,
	// encode the result.
	b.Run("DecodeMultEncode", func(b *testing.B) {
		b.ReportAllocs()
		out := r255.NewElement()
		buf := make([]byte, 0, 32)
		for b.Loop() {
			if _, err := out.SetCanonicalBytes(enc); err != nil {
				b.Fatal(err)
			}
			out.ScalarMult(s, out)
			buf = out.AppendBytes(buf[:0])
		}
	})
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		out := r255.NewElement()
		for b.Loop() {
			if _, err := out.SetCanonicalBytes(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("RandomScalar", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r255.RandomScalar(rand.Reader); err != nil {
				b.Fatal(err)
			}
		}
	})
}
