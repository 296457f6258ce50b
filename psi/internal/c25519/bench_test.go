package c25519

import (
	"testing"
)

func BenchmarkHash(b *testing.B) {
	h := NewHasher([]byte("OVERLAP-V1-email-curve25519_XMD:SHA-512_ELL2_RO_"))
	var msg [32]byte
	var out [32]byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		msg[0], msg[1] = byte(i), byte(i>>8)
		h.Hash(&out, msg[:])
	}
}
