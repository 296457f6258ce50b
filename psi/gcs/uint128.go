package gcs

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Uint128 is an unsigned 128-bit integer, Hi·2^64 + Lo.
// Arithmetic wraps modulo 2^128.
type Uint128 struct{ Hi, Lo uint64 }

// FromBytes interprets b as a big-endian 128-bit integer.
func FromBytes(b [16]byte) Uint128 {
	return Uint128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// Bytes returns u as 16 big-endian bytes.
func (u Uint128) Bytes() [16]byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.Hi)
	binary.BigEndian.PutUint64(b[8:], u.Lo)
	return b
}

// IsZero reports whether u == 0.
func (u Uint128) IsZero() bool { return u.Hi|u.Lo == 0 }

// Cmp returns -1, 0 or +1 as u is less than, equal to or greater than v.
func (u Uint128) Cmp(v Uint128) int {
	switch {
	case u.Hi < v.Hi || u.Hi == v.Hi && u.Lo < v.Lo:
		return -1
	case u == v:
		return 0
	}
	return 1
}

// Less reports whether u < v.
func (u Uint128) Less(v Uint128) bool {
	return u.Hi < v.Hi || u.Hi == v.Hi && u.Lo < v.Lo
}

// Add returns u + v mod 2^128.
func (u Uint128) Add(v Uint128) Uint128 {
	lo, c := bits.Add64(u.Lo, v.Lo, 0)
	hi, _ := bits.Add64(u.Hi, v.Hi, c)
	return Uint128{hi, lo}
}

// Sub returns u − v mod 2^128.
func (u Uint128) Sub(v Uint128) Uint128 {
	lo, b := bits.Sub64(u.Lo, v.Lo, 0)
	hi, _ := bits.Sub64(u.Hi, v.Hi, b)
	return Uint128{hi, lo}
}

// Lsh returns u << n mod 2^128 (0 for n ≥ 128).
func (u Uint128) Lsh(n uint) Uint128 {
	switch {
	case n >= 128:
		return Uint128{}
	case n >= 64:
		return Uint128{u.Lo << (n - 64), 0}
	}
	return Uint128{u.Hi<<n | u.Lo>>(64-n), u.Lo << n}
}

// Rsh returns u >> n (0 for n ≥ 128).
func (u Uint128) Rsh(n uint) Uint128 {
	switch {
	case n >= 128:
		return Uint128{}
	case n >= 64:
		return Uint128{0, u.Hi >> (n - 64)}
	}
	return Uint128{u.Hi >> n, u.Lo>>n | u.Hi<<(64-n)}
}

// String formats u as 32 hexadecimal digits with a 0x prefix.
func (u Uint128) String() string { return fmt.Sprintf("0x%016x%016x", u.Hi, u.Lo) }

// Reduce maps h into [0, f): it returns ⌊h·f / 2^128⌋, the high half of the
// 256-bit product. It is non-decreasing in h, and when h is uniform on
// [0, 2^128) every value in [0, f) has probability within 2^-128 of 1/f.
// Reduce(h, 0) is 0.
func Reduce(h, f Uint128) Uint128 {
	a1, _ := bits.Mul64(h.Lo, f.Lo)
	b1, b0 := bits.Mul64(h.Lo, f.Hi)
	c1, c0 := bits.Mul64(h.Hi, f.Lo)
	d1, d0 := bits.Mul64(h.Hi, f.Hi)
	// Word 1 (bits 64..127) only contributes its carries.
	w1, x := bits.Add64(a1, b0, 0)
	_, y := bits.Add64(w1, c0, 0)
	w2, x2 := bits.Add64(b1, c1, 0)
	w2, y2 := bits.Add64(w2, d0, 0)
	w2, z2 := bits.Add64(w2, x+y, 0)
	return Uint128{d1 + x2 + y2 + z2, w2}
}
