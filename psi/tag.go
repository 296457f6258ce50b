package psi

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"

	"github.com/overlap-psi/overlap/psi/gcs"
)

var tagPrefix = []byte("OVERLAP-V1-tag")

// tagOf computes the session tag of an element from its cofactor encoding
// (r255.CofactorBytes, SPEC.md §4.4): the first 16 bytes of
// SHA-256("OVERLAP-V1-tag" || salt || encoding), read as a big-endian
// 128-bit integer.
func tagOf(salt *[32]byte, elem []byte) gcs.Uint128 {
	h := sha256.New()
	h.Write(tagPrefix)
	h.Write(salt[:])
	h.Write(elem)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return gcs.Uint128{Hi: binary.BigEndian.Uint64(sum[0:8]), Lo: binary.BigEndian.Uint64(sum[8:16])}
}

// MinBucket is the smallest padded server set size (SPEC.md §4.5).
const MinBucket = 1024

// Bucket returns the public size the server pads a set of n elements to
// (SPEC.md §4.5): at least MinBucket, and otherwise n rounded up to a
// multiple of 2^(bitlen(n−1)−4), so at most 12.5% above n with eight
// buckets per doubling.
func Bucket(n uint64) uint64 {
	if n <= MinBucket {
		return MinBucket
	}
	e := bits.Len64(n-1) - 4
	step := uint64(1) << e
	return (n + step - 1) / step * step
}
