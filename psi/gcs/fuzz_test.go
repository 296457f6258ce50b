package gcs

import (
	"bytes"
	"math/bits"
	"testing"
)

// fuzzParams maps arbitrary integers to valid parameters.
func fuzzParams(n uint32, m uint64, k uint8) Params {
	p := Params{N: uint64(n) + 1, M: max(m, 1)}
	p.K = k % uint8(min(63, bits.Len64(p.M))+1)
	return p
}

// FuzzDecoder decodes arbitrary bytes as two chunks. No input may panic, make
// a chunk yield more than count values, or yield a value out of order or
// range. A set that decodes re-encodes to the same bytes: the format is
// canonical.
func FuzzDecoder(f *testing.F) {
	f.Add(uint32(3), uint64(3), uint8(1), int32(4), int32(0), uint16(9), []byte{0x4d, 0xd0})
	f.Add(uint32(3), uint64(3), uint8(1), int32(2), int32(2), uint16(1), []byte{0x40, 0xdd})
	f.Add(uint32(1<<32-1), uint64(1<<64-1), uint8(63), int32(1), int32(1), uint16(8),
		[]byte{0xbf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0x40, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint32(0), uint64(16), uint8(0), int32(1), int32(1), uint16(3), bytes.Repeat([]byte{0xff}, 100))
	f.Add(uint32(100), uint64(1000), uint8(9), int32(3), int32(5), uint16(5), []byte("arbitrary bytes here"))
	f.Fuzz(func(t *testing.T, n uint32, m uint64, k uint8, c1, c2 int32, split uint16, data []byte) {
		p := fuzzParams(n, m, k)
		fp := p.F()
		s := int(split) % (len(data) + 1)
		chunks := []chunk{{int(c1), data[:s]}, {int(c2), data[s:]}}
		d, err := NewDecoder(p)
		if err != nil {
			t.Fatal(err)
		}
		var got [][]Uint128
		var prev Uint128
		for _, c := range chunks {
			var vs []Uint128
			err = d.Chunk(c.count, c.data, func(v Uint128) {
				if v.Less(prev) || !v.Less(fp) {
					t.Fatalf("value %v after %v, F = %v", v, prev, fp)
				}
				prev = v
				vs = append(vs, v)
			})
			if len(vs) > max(c.count, 0) || err == nil && len(vs) != c.count {
				t.Fatalf("chunk of %d values yielded %d, err %v", c.count, len(vs), err)
			}
			if err != nil {
				return
			}
			got = append(got, vs)
		}
		// Re-encode with the same chunk counts.
		var re [][]byte
		e, err := NewEncoder(p, 1<<31-1, func(_ int, b []byte) error {
			re = append(re, bytes.Clone(b))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		last := Uint128{}
		for _, vs := range got {
			for _, v := range vs {
				if q := v.Sub(last).Rsh(uint(p.K)); q.Hi != 0 || q.Lo > maxQuotient {
					t.Skip("quotient beyond the encoder's limit")
				}
				last = v
				if err := e.Add(v); err != nil {
					t.Fatalf("re-encoding a decoded value: %v", err)
				}
			}
			if err := e.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		for i := range chunks {
			if !bytes.Equal(re[i], chunks[i].data) {
				t.Fatalf("chunk %d re-encodes to %x, was %x", i, re[i], chunks[i].data)
			}
		}
	})
}

// FuzzRoundTrip encodes random sets, with duplicates and the extreme values
// 0 and F−1, and checks that they decode to themselves and match the
// reference encoder.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint64(1), uint16(100), uint64(1000), uint8(0), uint16(7), uint8(5), true)
	f.Add(uint64(2), uint16(1), uint64(1<<64-1), uint8(63), uint16(1), uint8(0), true)
	f.Add(uint64(3), uint16(4095), uint64(1e11), uint8(36), uint16(1000), uint8(0), false)
	f.Fuzz(func(t *testing.T, seed uint64, n uint16, m uint64, k uint8, c uint16, dupEvery uint8, extremes bool) {
		rng := newRand(seed)
		p := Params{N: uint64(n)%4096 + 1, M: max(m, 1)}
		// K ≥ bitlen(M) − 8 keeps every quotient within the encoder's limit.
		bl := bits.Len64(p.M)
		lo, hi := max(0, bl-8), min(63, bl)
		p.K = uint8(lo + int(k)%(hi-lo+1))
		v := randomValues(rng, int(p.N), p.F())
		if extremes {
			v = withExtremes(rng, p, v, int(dupEvery))
		}
		checkRoundTrip(t, roundTripCase{p, int(c)%(1<<16) + 1, v})
	})
}
