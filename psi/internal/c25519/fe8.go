package c25519

import (
	"encoding/binary"

	"filippo.io/edwards25519/field"
)

//go:generate go run fe8_gen.go -out fe8_amd64.s

// fe8 is eight field elements side by side, for the vector unit: limb i of
// element j is fe8[i][j], in radix 2^51, and each limb is below 2^52 (not
// necessarily below 2^51, and the value not necessarily below p). The
// arithmetic on it, and why every limb stays below 2^52, is in fe8_gen.go.
type fe8 [5][8]uint64

const mask51 = 1<<51 - 1

// pack sets v to the elements of in, limbs below 2^51.
func (v *fe8) pack(in *[8]field.Element) {
	for j := range in {
		b := in[j].Bytes() // canonical, little-endian
		v[0][j] = binary.LittleEndian.Uint64(b[0:8]) & mask51
		v[1][j] = binary.LittleEndian.Uint64(b[6:14]) >> 3 & mask51
		v[2][j] = binary.LittleEndian.Uint64(b[12:20]) >> 6 & mask51
		v[3][j] = binary.LittleEndian.Uint64(b[19:27]) >> 1 & mask51
		v[4][j] = binary.LittleEndian.Uint64(b[24:32]) >> 12 & mask51
	}
}

// unpack sets out to the elements of v, reduced.
func (v *fe8) unpack(out *[8]field.Element) {
	for j := range out {
		l := [5]uint64{v[0][j], v[1][j], v[2][j], v[3][j], v[4][j]}
		// Two carry passes bring every limb below 2^51 (see fe8Limbs).
		fe8Limbs(&l)
		fe8Limbs(&l)
		var b [32]byte
		binary.LittleEndian.PutUint64(b[0:8], l[0]|l[1]<<51)
		binary.LittleEndian.PutUint64(b[8:16], l[1]>>13|l[2]<<38)
		binary.LittleEndian.PutUint64(b[16:24], l[2]>>26|l[3]<<25)
		binary.LittleEndian.PutUint64(b[24:32], l[3]>>39|l[4]<<12)
		// Below 2^255, so SetBytes takes every bit and reduces mod p.
		if _, err := out[j].SetBytes(b[:]); err != nil {
			panic("c25519: internal error: SetBytes of 32 bytes")
		}
	}
}

// fe8Limbs carries the limbs l once, 2^255 folding to 19. With every limb
// below 2^52 on entry, every carry is at most 2, so one pass leaves
// l[0] < 2^51 + 38 and the others below 2^51. A second pass then leaves
// every limb below 2^51: its carries are at most 1, and one that leaves
// l[4] ran through every limb and left them zero, and l[0] < 38 + 19.
func fe8Limbs(l *[5]uint64) {
	var c uint64
	for i := range l {
		l[i] += c
		c = l[i] >> 51
		l[i] &= mask51
	}
	l[0] += 19 * c
}

// pow22523x8Generic is pow22523x8 one element at a time, for the first n.
func pow22523x8Generic(out, in *[8]field.Element, n int) {
	for j := range n {
		out[j].Pow22523(&in[j])
	}
}
