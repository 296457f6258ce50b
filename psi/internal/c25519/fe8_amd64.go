//go:build !purego

package c25519

import (
	"filippo.io/edwards25519/field"
	"github.com/cloudflare/circl/dh/x25519"
	"golang.org/x/sys/cpu"
)

// hasVector reports whether mul8 and sqr8 can run here: they use AVX-512F,
// AVX-512DQ (VPMULLQ) and AVX-512 IFMA (VPMADD52LUQ, VPMADD52HUQ), and
// x/sys/cpu reports a feature only when the OS saves the registers.
var hasVector = cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512IFMA

// useVector is hasVector unless a test turns it off.
var useVector = hasVector

// mul8 sets out = a·b, lane by lane. out may alias a or b.
//
//go:noescape
func mul8(out, a, b *fe8)

// sqr8 sets out = a^(2^n), lane by lane, for n ≥ 1. out may alias a.
//
//go:noescape
func sqr8(out, a *fe8, n int)

// pow22523x8 sets out[j] = in[j]^((p-5)/8) for j < n (n ≤ 8), as
// field.Element.Pow22523 does, and may set the other lanes too; out may
// alias in. With AVX-512 IFMA it computes the eight at once, in constant
// time as the field's code is; without, only the n.
func pow22523x8(out, in *[8]field.Element, n int) {
	if useVector {
		pow22523x8Vector(out, in)
		return
	}
	pow22523x8Generic(out, in, n)
}

// pow22523x8Vector is field.Element.Pow22523, x^((p-5)/8), of eight
// elements at once with mul8 and sqr8: the same chain of 252 squarings
// and 11 multiplications.
func pow22523x8Vector(out, in *[8]field.Element) {
	var x, t0, t1, t2 fe8
	x.pack(in)
	sqr8(&t0, &x, 1)    // x^2
	sqr8(&t1, &t0, 2)   // x^8
	mul8(&t1, &x, &t1)  // x^9
	mul8(&t0, &t0, &t1) // x^11
	sqr8(&t0, &t0, 1)   // x^22
	mul8(&t0, &t1, &t0) // x^31
	sqr8(&t1, &t0, 5)   // x^992
	mul8(&t0, &t1, &t0) // 2^10 - 1
	sqr8(&t1, &t0, 10)  // 2^20 - 2^10
	mul8(&t1, &t1, &t0) // 2^20 - 1
	sqr8(&t2, &t1, 20)  // 2^40 - 2^20
	mul8(&t1, &t2, &t1) // 2^40 - 1
	sqr8(&t1, &t1, 10)  // 2^50 - 2^10
	mul8(&t0, &t1, &t0) // 2^50 - 1
	sqr8(&t1, &t0, 50)  // 2^100 - 2^50
	mul8(&t1, &t1, &t0) // 2^100 - 1
	sqr8(&t2, &t1, 100) // 2^200 - 2^100
	mul8(&t1, &t2, &t1) // 2^200 - 1
	sqr8(&t1, &t1, 50)  // 2^250 - 2^50
	mul8(&t0, &t1, &t0) // 2^250 - 1
	sqr8(&t0, &t0, 2)   // 2^252 - 4
	mul8(&t0, &t0, &x)  // 2^252 - 3
	t0.unpack(out)
}

// ladderState is the state of eight X25519 ladders run together by
// ladder8: the fields in the order, and at the offsets, that
// fe8_gen.go gives them.
type ladderState struct {
	x1, x2, z2, x3, z3, a24          fe8
	A, AA, B, BB, E, C, D, DA, CB, T fe8
}

// ladder8 runs the Montgomery ladder of RFC 7748 §5 over bits 254 to 0 of
// a scalar per lane, given as the swap masks that ladderMasks computes, on
// the eight lanes of st, which must hold x1 (the input u-coordinates),
// x2 = 1, z2 = 0, x3 = x1, z3 = 1 and a24 = 121665; it leaves x2/z2, the
// u-coordinate of k·x1, in every lane. In constant time with respect to the
// scalars and the lanes.
//
//go:noescape
func ladder8(st *ladderState, masks *[256][8]uint64)

// ladderMasks sets m to the swap masks of ladder8 for the scalars ks, one
// per lane: m[t] (t = 254 down to 0) is all ones in the lanes whose bit t
// differs from bit t+1 (bit 255 read as 0: the ladder starts unswapped),
// and m[255] in the lanes whose bit 0 is set (the final swap). Bit 255 of
// a scalar is not read, as RFC 7748's clamping clears it. Constant time.
func ladderMasks(m *[256][8]uint64, ks *[8][32]byte) {
	for j := range ks {
		var prev uint64
		for t := 254; t >= 0; t-- {
			bit := uint64(ks[j][t>>3]>>(t&7)) & 1
			m[t][j] = -(bit ^ prev)
			prev = bit
		}
		m[255][j] = -prev
	}
}

// x25519x8 sets out[j] to X25519(ks[j], in[j]) for eight u-coordinates:
// the ladders eight at a time, then one shared exponentiation chain for
// the eight inversions. The scalars must be clamped (ladder8 does not
// clamp), and in[j] canonical (its top bit is ignored, as in RFC 7748).
// An input whose result is the identity (low order) gives u = 0, as
// X25519 does.
func x25519x8(out, in, ks *[8][32]byte) {
	var m [256][8]uint64
	ladderMasks(&m, ks)
	x25519x8Masks(out, in, &m)
	clear(m[:])
}

// x25519x8One is x25519x8 with one scalar k for every lane.
func x25519x8One(out, in *[8][32]byte, k *[32]byte) {
	var m [256][8]uint64
	var ks [8][32]byte
	ks[0] = *k
	ladderMasks(&m, &ks) // lane 0 only matters; copied to the others
	for t := range m {
		for j := 1; j < 8; j++ {
			m[t][j] = m[t][0]
		}
	}
	x25519x8Masks(out, in, &m)
	clear(m[:])
	clear(ks[:])
}

func x25519x8Masks(out, in *[8][32]byte, m *[256][8]uint64) {
	var st ladderState
	var u [8]field.Element
	for j := range in {
		if _, err := u[j].SetBytes(in[j][:]); err != nil {
			panic("c25519: internal error: SetBytes of 32 bytes")
		}
	}
	st.x1.pack(&u)
	st.x3 = st.x1
	for j := range 8 {
		st.x2[0][j] = 1
		st.z3[0][j] = 1
		st.a24[0][j] = 121665
	}
	ladder8(&st, m)
	// 1/z2 = z2^(p-2) = (z2^((p-5)/8))^8 · z2^3; 0 for z2 = 0.
	var z2, zinv [8]field.Element
	st.z2.unpack(&z2)
	pow22523x8(&zinv, &z2, 8)
	var inv, z3 fe8
	inv.pack(&zinv)
	sqr8(&inv, &inv, 3)
	sqr8(&z3, &st.z2, 1)
	mul8(&z3, &z3, &st.z2)
	mul8(&inv, &inv, &z3)
	mul8(&inv, &inv, &st.x2)
	inv.unpack(&u)
	for j := range out {
		copy(out[j][:], u[j].Bytes())
	}
}

// multGroup sets out[j] = s·in[j] for a group of at most eight elements
// with x25519x8, and reports true, if every element passes the checks c
// and no result is the identity; otherwise it reports false and the caller
// goes through the group one element at a time. s is clamped and not
// erased.
func multGroup(out, in [][32]byte, s *x25519.Key, c checks) bool {
	if !validGroup(in, c) {
		return false
	}
	var grp, res [8][32]byte
	for j := range grp {
		grp[j] = in[min(j, len(in)-1)] // the unused lanes repeat the last
	}
	x25519x8One(&res, &grp, (*[32]byte)(s))
	for j := range in {
		if isZero((*x25519.Key)(&res[j])) { // public: the identity is refused
			return false
		}
	}
	copy(out, res[:len(in)])
	return true
}

// keysGroup sets out[j] = keys[j]·in for a group of at most eight keys and
// one element in (already checked by the caller) with x25519x8, and
// reports true, unless a key is erased or a result is the identity; then
// it reports false and the caller goes one key at a time.
func keysGroup(out [][32]byte, in *[32]byte, keys []*Key) bool {
	var ks, grp, res [8][32]byte
	defer clear(ks[:])
	for j := range ks {
		k := keys[min(j, len(keys)-1)] // the unused lanes repeat the last
		if k.k[31]&0x40 == 0 {         // erased: public, the caller fails
			return false
		}
		ks[j] = k.k
		grp[j] = *in
	}
	x25519x8(&res, &grp, &ks)
	for j := range keys {
		if isZero((*x25519.Key)(&res[j])) { // public: the identity is refused
			return false
		}
	}
	copy(out, res[:len(keys)])
	return true
}
