package c25519

import (
	"encoding/binary"
	"io"
	"math/big"
	"testing"

	"filippo.io/edwards25519/field"
)

// fe8Value is the integer the limbs of lane j of v stand for, not reduced.
func fe8Value(v *fe8, j int) *big.Int {
	x := new(big.Int)
	for i := 4; i >= 0; i-- {
		x.Lsh(x, 51)
		x.Add(x, new(big.Int).SetUint64(v[i][j]))
	}
	return x
}

func feBig(e *field.Element) *big.Int {
	b := e.Bytes()
	reverse(b)
	return new(big.Int).SetBytes(b)
}

// randElements fills in with random elements, and the edge values 0, 1,
// p-1 and 2^51-1 (a full limb) among them.
func randElements(t testing.TB, r io.Reader, in *[8]field.Element) {
	var b [32]byte
	for j := range in {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			t.Fatal(err)
		}
		if _, err := in[j].SetBytes(b[:]); err != nil {
			t.Fatal(err)
		}
	}
	var z field.Element
	in[0].Set(&z)
	in[1].One()
	in[2].Set(feMinusOne)
	binary.LittleEndian.PutUint64(b[:], mask51)
	clear(b[8:])
	in[3].SetBytes(b[:])
}

// TestPow22523x8 checks pow22523x8, on the vector unit where this machine
// has one, against field.Element.Pow22523, element by element.
func TestPow22523x8(t *testing.T) {
	if !hasVector {
		t.Log("no AVX-512 IFMA here: pow22523x8 is the field's own code, checked against itself")
	}
	r := seeded(80)
	for range 300 {
		var in, out [8]field.Element
		randElements(t, r, &in)
		pow22523x8(&out, &in, 8)
		for j := range in {
			var want field.Element
			want.Pow22523(&in[j])
			if out[j].Equal(&want) != 1 {
				t.Fatalf("lane %d: pow22523x8(%x) = %x, Pow22523 gives %x", j, in[j].Bytes(), out[j].Bytes(), want.Bytes())
			}
		}
	}
	// out aliasing in.
	var in, want [8]field.Element
	randElements(t, r, &in)
	pow22523x8Generic(&want, &in, 8)
	pow22523x8(&in, &in, 8)
	for j := range in {
		if in[j].Equal(&want[j]) != 1 {
			t.Fatalf("aliased, lane %d differs", j)
		}
	}
}

// TestFe8Unpack checks unpack on limbs up to the largest the arithmetic
// leaves (2^52 - 1 each) against math/big.
func TestFe8Unpack(t *testing.T) {
	r := seeded(81)
	var v fe8
	for round := range 200 {
		for i := range v {
			for j := range v[i] {
				var b [8]byte
				io.ReadFull(r, b[:])
				x := binary.LittleEndian.Uint64(b[:])
				switch (round + j) % 4 {
				case 0:
					v[i][j] = 1<<52 - 1
				case 1:
					v[i][j] = x & (1<<52 - 1)
				case 2:
					v[i][j] = x & mask51
				default:
					v[i][j] = mask51 + x%2
				}
			}
		}
		var out [8]field.Element
		v.unpack(&out)
		for j := range out {
			want := new(big.Int).Mod(fe8Value(&v, j), refP)
			if feBig(&out[j]).Cmp(want) != 0 {
				t.Fatalf("unpack of lane %d: %x, want %x", j, feBig(&out[j]), want)
			}
		}
	}
	var in, back [8]field.Element
	randElements(t, r, &in)
	v.pack(&in)
	v.unpack(&back)
	for j := range in {
		if in[j].Equal(&back[j]) != 1 {
			t.Fatalf("pack then unpack changed lane %d", j)
		}
	}
}

// BenchmarkPow22523x8 is the cost of eight exponentiations: on the vector
// unit where there is one (compare BenchmarkPow22523x8Field).
func BenchmarkPow22523x8(b *testing.B) {
	var in [8]field.Element
	randElements(b, seeded(83), &in)
	for b.Loop() {
		pow22523x8(&in, &in, 8)
	}
}

// BenchmarkPow22523x8Field is eight exponentiations with the field's code.
func BenchmarkPow22523x8Field(b *testing.B) {
	var in [8]field.Element
	randElements(b, seeded(83), &in)
	for b.Loop() {
		pow22523x8Generic(&in, &in, 8)
	}
}

// TestSqrtRatioHalves checks sqrtRatio's two halves, with the field's
// exponentiation and with pow22523x8, against field.Element.SqrtRatio:
// squares, non-squares, and u or v zero.
func TestSqrtRatioHalves(t *testing.T) {
	r := seeded(84)
	for round := range 100 {
		var us, vs [8]field.Element
		randElements(t, r, &us)
		randElements(t, r, &vs)
		if round%2 == 1 { // u = w², so that u/v is a square for v = 1
			for j := range us {
				us[j].Square(&us[j])
				vs[j].One()
			}
			vs[7].Set(&us[7]) // v = u
		}
		vs[5].Set(&vs[0]) // v = 0, u random
		var halves [8]sqrtRatio
		var x, pow [8]field.Element
		for j := range us {
			halves[j].begin(&x[j], &us[j], &vs[j])
		}
		pow22523x8(&pow, &x, 8)
		for j := range us {
			var want, got, got1, pow1 field.Element
			_, wantSquare := want.SqrtRatio(&us[j], &vs[j])
			if sq := halves[j].finish(&got, &pow[j]); sq != wantSquare || got.Equal(&want) != 1 {
				t.Fatalf("round %d lane %d: (%x, %d), SqrtRatio gives (%x, %d)", round, j, got.Bytes(), sq, want.Bytes(), wantSquare)
			}
			pow1.Pow22523(&x[j])
			if sq := halves[j].finish(&got1, &pow1); sq != wantSquare || got1.Equal(&want) != 1 {
				t.Fatalf("round %d lane %d, field exponentiation: differs from SqrtRatio", round, j)
			}
		}
	}
}

// FuzzPow22523x8: pow22523x8 agrees with field.Element.Pow22523 in every
// lane, for any 32-byte encodings (non-canonical ones reduced as SetBytes
// does).
func FuzzPow22523x8(f *testing.F) {
	f.Add(make([]byte, 32), byte(0))
	f.Add([]byte{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, byte(3))
	f.Fuzz(func(t *testing.T, b []byte, lane byte) {
		if len(b) != 32 {
			return
		}
		var in, out [8]field.Element
		randElements(t, seeded(uint64(lane)), &in)
		if _, err := in[lane%8].SetBytes(b); err != nil {
			t.Fatal(err)
		}
		pow22523x8(&out, &in, 8)
		for j := range in {
			var want field.Element
			want.Pow22523(&in[j])
			if out[j].Equal(&want) != 1 {
				t.Fatalf("lane %d of %x: differs from Pow22523", j, b)
			}
		}
	})
}
