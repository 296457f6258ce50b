package gcs

import (
	"math/big"
	"math/rand/v2"
	"testing"
)

var two128 = new(big.Int).Lsh(big.NewInt(1), 128)

func toBig(u Uint128) *big.Int {
	b := u.Bytes()
	return new(big.Int).SetBytes(b[:])
}

// edge128 are inputs at the edges of 64- and 128-bit arithmetic.
var edge128 = []Uint128{
	{0, 0}, {0, 1}, {0, 2}, {0, 1<<64 - 1}, {1, 0}, {1, 1},
	{1 << 31, 0}, {1<<32 - 1, 1<<64 - 1}, // 2^95, 2^96−1
	{1 << 63, 0}, {1<<63 - 1, 1<<64 - 1}, // 2^127, 2^127−1
	{1<<64 - 1, 1<<64 - 1}, {1<<64 - 1, 0}, // 2^128−1, 2^128−2^64
}

func testInputs(n int) []Uint128 {
	rng := rand.New(rand.NewChaCha8([32]byte{'u', '1', '2', '8'}))
	in := append([]Uint128(nil), edge128...)
	for range n {
		in = append(in, Uint128{rng.Uint64(), rng.Uint64()})
		in = append(in, Uint128{0, rng.Uint64()}.Rsh(uint(rng.IntN(64))))
	}
	return in
}

func TestReduce(t *testing.T) {
	in := testInputs(200)
	for _, h := range in {
		for _, f := range in {
			want := new(big.Int).Mul(toBig(h), toBig(f))
			want.Rsh(want, 128)
			if got := Reduce(h, f); toBig(got).Cmp(want) != 0 {
				t.Fatalf("Reduce(%v, %v) = %v, want %#x", h, f, got, want)
			}
		}
	}
}

func TestReduceMonotone(t *testing.T) {
	in := testInputs(100)
	for _, f := range in {
		for i := 1; i < len(in); i++ {
			a, b := in[i-1], in[i]
			if b.Less(a) {
				a, b = b, a
			}
			if Reduce(b, f).Less(Reduce(a, f)) {
				t.Fatalf("Reduce not monotone: f=%v h=%v<%v", f, a, b)
			}
			if !f.IsZero() && !Reduce(b, f).Less(f) {
				t.Fatalf("Reduce(%v, %v) ≥ f", b, f)
			}
		}
	}
}

func TestUint128(t *testing.T) {
	in := testInputs(50)
	for _, u := range in {
		if FromBytes(u.Bytes()) != u {
			t.Fatalf("FromBytes(%v.Bytes()) = %v", u, FromBytes(u.Bytes()))
		}
		if u.IsZero() != (toBig(u).Sign() == 0) {
			t.Fatalf("%v.IsZero() = %v", u, u.IsZero())
		}
		for n := uint(0); n <= 130; n++ {
			l := new(big.Int).Lsh(toBig(u), n)
			if got := u.Lsh(n); toBig(got).Cmp(l.Mod(l, two128)) != 0 {
				t.Fatalf("%v.Lsh(%d) = %v", u, n, got)
			}
			if got := u.Rsh(n); toBig(got).Cmp(new(big.Int).Rsh(toBig(u), n)) != 0 {
				t.Fatalf("%v.Rsh(%d) = %v", u, n, got)
			}
		}
		for _, v := range in {
			s := new(big.Int).Add(toBig(u), toBig(v))
			if got := u.Add(v); toBig(got).Cmp(s.Mod(s, two128)) != 0 {
				t.Fatalf("%v.Add(%v) = %v", u, v, got)
			}
			d := new(big.Int).Sub(toBig(u), toBig(v))
			if got := u.Sub(v); toBig(got).Cmp(d.Mod(d, two128)) != 0 {
				t.Fatalf("%v.Sub(%v) = %v", u, v, got)
			}
			c := toBig(u).Cmp(toBig(v))
			if u.Cmp(v) != c || u.Less(v) != (c < 0) {
				t.Fatalf("%v.Cmp(%v) = %d, Less = %v, want %d", u, v, u.Cmp(v), u.Less(v), c)
			}
		}
	}
	if got := (Uint128{1, 0xab}).String(); got != "0x000000000000000100000000000000ab" {
		t.Errorf("String() = %q", got)
	}
}
