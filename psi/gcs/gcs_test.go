package gcs

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func newRand(seed uint64) *rand.Rand {
	var s [32]byte
	copy(s[:], fmt.Sprint("gcs-test-", seed))
	return rand.New(rand.NewChaCha8(s))
}

// randomValues returns n sorted values uniform in [0, F), like the hashed
// tags of a real set.
func randomValues(rng *rand.Rand, n int, f Uint128) []Uint128 {
	v := make([]Uint128, n)
	for i := range v {
		v[i] = Reduce(Uint128{rng.Uint64(), rng.Uint64()}, f)
	}
	slices.SortFunc(v, Uint128.Cmp)
	return v
}

type chunk struct {
	count int
	data  []byte
}

func encodeChunks(t testing.TB, p Params, c int, v []Uint128) []chunk {
	t.Helper()
	var out []chunk
	err := Encode(p, c, v, func(count int, data []byte) error {
		out = append(out, chunk{count, bytes.Clone(data)})
		return nil
	})
	if err != nil {
		t.Fatalf("Encode(%+v, %d): %v", p, c, err)
	}
	return out
}

func decodeChunks(p Params, chunks []chunk) ([]Uint128, error) {
	d, err := NewDecoder(p)
	if err != nil {
		return nil, err
	}
	var got []Uint128
	for _, c := range chunks {
		if err := d.Chunk(c.count, c.data, func(v Uint128) { got = append(got, v) }); err != nil {
			return got, err
		}
	}
	return got, d.Finish()
}

// referenceEncode is a plain, bit-at-a-time encoder written from the format
// text in doc.go.
func referenceEncode(p Params, c int, v []Uint128) []chunk {
	var out []chunk
	var prev Uint128
	for len(v) > 0 {
		n := min(c, len(v))
		var sb strings.Builder
		for _, x := range v[:n] {
			d := x.Sub(prev)
			prev = x
			q := d.Rsh(uint(p.K)).Lo
			sb.WriteString(strings.Repeat("1", int(q)) + "0")
			for j := int(p.K) - 1; j >= 0; j-- {
				sb.WriteByte('0' + byte(d.Lo>>j&1))
			}
		}
		out = append(out, chunk{n, bitString(sb.String())})
		v = v[n:]
	}
	return out
}

// bitString packs a string of '0' and '1' (other characters are ignored)
// most significant bit first, padding with zero bits.
func bitString(s string) []byte {
	b := []byte{}
	n := 0
	for _, c := range s {
		if c != '0' && c != '1' {
			continue
		}
		if n%8 == 0 {
			b = append(b, 0)
		}
		if c == '1' {
			b[n/8] |= 0x80 >> (n % 8)
		}
		n++
	}
	return b
}

type roundTripCase struct {
	p      Params
	chunk  int
	values []Uint128
}

func checkRoundTrip(t testing.TB, tc roundTripCase) {
	t.Helper()
	chunks := encodeChunks(t, tc.p, tc.chunk, tc.values)
	total := 0
	for i, c := range chunks {
		if c.count < 1 || c.count > tc.chunk || i < len(chunks)-1 && c.count != tc.chunk {
			t.Fatalf("%+v: chunk %d has %d values, chunk size %d", tc.p, i, c.count, tc.chunk)
		}
		total += c.count
	}
	if total != len(tc.values) {
		t.Fatalf("%+v: chunks hold %d values, want %d", tc.p, total, len(tc.values))
	}
	if len(tc.values) <= 1<<14 {
		if want := referenceEncode(tc.p, tc.chunk, tc.values); !slices.EqualFunc(chunks, want, func(a, b chunk) bool {
			return a.count == b.count && bytes.Equal(a.data, b.data)
		}) {
			t.Fatalf("%+v chunk %d: encoding differs from reference", tc.p, tc.chunk)
		}
	}
	got, err := decodeChunks(tc.p, chunks)
	if err != nil {
		t.Fatalf("%+v chunk %d: decode: %v", tc.p, tc.chunk, err)
	}
	if !slices.Equal(got, tc.values) {
		t.Fatalf("%+v chunk %d: decoded values differ", tc.p, tc.chunk)
	}
}

// withExtremes sets the first value to 0 and the last to F−1, and repeats
// about one value in dupEvery (gap 0).
func withExtremes(rng *rand.Rand, p Params, v []Uint128, dupEvery int) []Uint128 {
	v[0] = Uint128{}
	v[len(v)-1] = p.F().Sub(Uint128{0, 1})
	for i := 1; dupEvery > 0 && i < len(v); i++ {
		if rng.IntN(dupEvery) == 0 {
			v[i] = v[i-1]
		}
	}
	return v
}

// randomParams returns parameters with K ≥ bitlen(M) − 8, so that no gap
// below F has a quotient above 2^9·N.
func randomParams(rng *rand.Rand, n int) Params {
	m := rng.Uint64() >> rng.IntN(64)
	m = max(m, 1)
	bl := bits.Len64(m)
	lo, hi := max(0, bl-8), min(63, bl)
	return Params{N: uint64(n), M: m, K: uint8(lo + rng.IntN(hi-lo+1))}
}

func TestRoundTrip(t *testing.T) {
	rng := newRand(1)
	const maxU = math.MaxUint64
	var cases []roundTripCase
	add := func(p Params, v []Uint128) {
		for _, c := range []int{1, 7, 1 << 16} {
			cases = append(cases, roundTripCase{p, c, v})
		}
	}
	// Edge parameters.
	add(Params{N: 1, M: 1, K: 0}, []Uint128{{}})
	add(Params{N: 1, M: 1, K: 1}, []Uint128{{}})
	add(Params{N: 5, M: 1, K: 0}, []Uint128{{0, 0}, {0, 1}, {0, 1}, {0, 3}, {0, 4}})
	add(Params{N: 3, M: 200, K: 0}, []Uint128{{0, 0}, {0, 300}, {0, 599}})
	add(Params{N: 4, M: 3, K: 1}, []Uint128{{0, 1}, {0, 1}, {0, 6}, {0, 11}})
	add(Params{N: 1, M: maxU, K: 63}, []Uint128{{0, maxU - 1}})
	for _, p := range []Params{
		{N: 1000, M: 1 << 63, K: 63},
		{N: 1000, M: maxU, K: 63},
		{N: 1000, M: maxU, K: 57}, // remainders straddle the 56-bit refill
		{N: 1000, M: 1 << 57, K: 56},
		{N: 1000, M: 255, K: 0},
		{N: 1000, M: 1 << 40, K: 32},
	} {
		add(p, withExtremes(rng, p, randomValues(rng, int(p.N), p.F()), 10))
	}
	// All values equal: one long unary run (F−1 >> 32 = 256000 bits), then
	// zero gaps; and all zero.
	p := Params{N: 1000, M: 1 << 40, K: 32}
	add(p, slices.Repeat([]Uint128{p.F().Sub(Uint128{0, 1})}, 1000))
	add(p, make([]Uint128, 1000))
	// Random parameters and sizes up to 10^5, with duplicates and extremes.
	for i := range 24 {
		n := 1 + int(math.Pow(1e5, rng.Float64()))
		if i == 0 {
			n = 1e5
		}
		p := randomParams(rng, n)
		v := randomValues(rng, n, p.F())
		if i%2 == 0 {
			v = withExtremes(rng, p, v, 1+rng.IntN(20))
		}
		cases = append(cases, roundTripCase{p, []int{1, 7, 1 << 16}[i%3], v})
	}
	for _, tc := range cases {
		checkRoundTrip(t, tc)
	}
}

func TestEncoderErrors(t *testing.T) {
	p := Params{N: 3, M: 10, K: 2} // F = 30
	nop := func(int, []byte) error { return nil }
	e, err := NewEncoder(p, 2, nop)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Add(Uint128{0, 30}); !errors.Is(err, ErrRange) {
		t.Errorf("Add(F) = %v, want ErrRange", err)
	}
	if err := e.Add(Uint128{1, 0}); !errors.Is(err, ErrRange) {
		t.Errorf("Add(2^64) = %v, want ErrRange", err)
	}
	if err := e.Add(Uint128{0, 5}); err != nil {
		t.Fatal(err)
	}
	if err := e.Add(Uint128{0, 4}); !errors.Is(err, ErrOrder) {
		t.Errorf("Add(4 after 5) = %v, want ErrOrder", err)
	}
	if err := e.Close(); !errors.Is(err, ErrCount) {
		t.Errorf("Close after 1 of 3 values = %v, want ErrCount", err)
	}
	if err := e.Add(Uint128{0, 6}); !errors.Is(err, ErrCount) {
		t.Errorf("Add after failed Close = %v, want the sticky ErrCount", err)
	}

	// More than N values.
	e, _ = NewEncoder(p, 2, nop)
	for range 3 {
		if err := e.Add(Uint128{0, 7}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Add(Uint128{0, 7}); !errors.Is(err, ErrCount) {
		t.Errorf("Add of value N+1 = %v, want ErrCount", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}

	// An emit error stops the encoder.
	boom := errors.New("boom")
	e, _ = NewEncoder(p, 1, func(int, []byte) error { return boom })
	if err := e.Add(Uint128{}); err != boom {
		t.Errorf("Add = %v, want emit's error", err)
	}
	if err := e.Close(); err != boom {
		t.Errorf("Close = %v, want emit's error", err)
	}

	// A quotient over 2^24 (K far too small for M).
	q := Params{N: 1, M: 1 << 40, K: 0}
	e, _ = NewEncoder(q, 1, nop)
	if err := e.Add(Uint128{0, 1<<24 + 1}); !errors.Is(err, ErrRange) {
		t.Errorf("Add with quotient 2^24+1 = %v, want ErrRange", err)
	}
	if err := e.Add(Uint128{0, 1 << 24}); err != nil {
		t.Errorf("Add with quotient 2^24 = %v", err)
	}

	// Bad arguments.
	for _, tt := range []struct {
		p    Params
		c    int
		emit func(int, []byte) error
	}{
		{Params{N: 0, M: 1}, 1, nop},
		{p, 0, nop},
		{p, -1, nop},
		{p, 1, nil},
	} {
		if _, err := NewEncoder(tt.p, tt.c, tt.emit); !errors.Is(err, ErrParams) {
			t.Errorf("NewEncoder(%+v, %d) = %v, want ErrParams", tt.p, tt.c, err)
		}
	}
	if err := Encode(p, 1, []Uint128{{}, {}}, nop); !errors.Is(err, ErrCount) {
		t.Errorf("Encode of 2 values with N = 3 = %v, want ErrCount", err)
	}
	if _, err := NewDecoder(Params{N: 1, M: 1, K: 2}); !errors.Is(err, ErrParams) {
		t.Errorf("NewDecoder with K > bitlen(M) = %v, want ErrParams", err)
	}
}

func TestFlush(t *testing.T) {
	p := Params{N: 4, M: 3, K: 1}
	var got []chunk
	e, _ := NewEncoder(p, 10, func(count int, data []byte) error {
		got = append(got, chunk{count, bytes.Clone(data)})
		return nil
	})
	for i, v := range []uint64{1, 1, 6, 11} {
		if err := e.Add(Uint128{0, v}); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			e.Flush()
			e.Flush() // no empty chunk
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	want := []chunk{{2, bitString("01 00")}, {2, bitString("1101 1101")}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("chunks = %v, want %v", got, want)
	}
}

func ff(n int) []byte { return bytes.Repeat([]byte{0xff}, n) }

func TestDecoderErrors(t *testing.T) {
	small := Params{N: 4, M: 3, K: 1} // F = 12; values 1, 1, 6, 11 are 0x4d 0xd0
	for _, tt := range []struct {
		name   string
		p      Params
		chunks []chunk
		finish bool
		want   error // nil: valid
	}{
		// Valid inputs, for contrast.
		{"example", small, []chunk{{4, []byte{0x4d, 0xd0}}}, true, nil},
		{"two chunks", small, []chunk{{2, bitString("01 00")}, {2, bitString("1101 1101")}}, true, nil},
		{"value F-1", small, []chunk{{1, bitString("111110 1")}}, false, nil},
		{"long run to F-1", Params{N: 1, M: 1000, K: 0}, []chunk{{1, bitString(strings.Repeat("1", 999) + "0")}}, true, nil},
		{"K=63 value 2^64-2", Params{N: 1, M: math.MaxUint64, K: 63},
			[]chunk{{1, bitString("10" + strings.Repeat("1", 62) + "0")}}, true, nil},
		{"no padding needed", small, []chunk{{3, []byte{0x4d}}}, false, nil},

		// Truncated.
		{"empty data", small, []chunk{{1, nil}}, false, ErrTruncated},
		{"missing last value", small, []chunk{{4, []byte{0x4d}}}, false, ErrTruncated},
		{"unterminated run", Params{N: 1, M: 1 << 40, K: 0}, []chunk{{1, ff(2)}}, false, ErrTruncated},
		{"remainder cut", Params{N: 16, M: 1 << 20, K: 20},
			[]chunk{{2, bitString("1111111111 0" + strings.Repeat("0", 20) + "0" + strings.Repeat("1", 16))}}, false, ErrTruncated},
		{"K=63 remainder cut", Params{N: 4, M: 1 << 63, K: 63},
			[]chunk{{1, bitString("10" + strings.Repeat("0", 62))}}, false, ErrTruncated},
		{"K+1 bits per value", Params{N: 16, M: 1 << 20, K: 20}, []chunk{{4, make([]byte, 10)}}, false, ErrTruncated},

		// Bad padding.
		{"last padding bit", small, []chunk{{4, []byte{0x4d, 0xd1}}}, false, ErrPadding},
		{"first padding bit", small, []chunk{{4, []byte{0x4d, 0xd8}}}, false, ErrPadding},
		{"one value", Params{N: 1, M: 2, K: 1}, []chunk{{1, []byte{0x41}}}, false, ErrPadding},

		// Trailing bytes.
		{"zero byte", small, []chunk{{4, []byte{0x4d, 0xd0, 0x00}}}, false, ErrTrailing},
		{"after byte boundary", small, []chunk{{3, []byte{0x4d, 0x00}}}, false, ErrTrailing},
		{"a megabyte", small, []chunk{{4, append([]byte{0x4d, 0xd0}, make([]byte, 1<<20)...)}}, false, ErrTrailing},
		{"an extra value", small, []chunk{{3, []byte{0x4d, 0xd0}}}, false, ErrTrailing},

		// Count mismatch.
		{"count 0", small, []chunk{{0, []byte{0x4d, 0xd0}}}, false, ErrCount},
		{"count -1", small, []chunk{{-1, []byte{0x4d, 0xd0}}}, false, ErrCount},
		{"count past N", small, []chunk{{5, []byte{0x4d, 0xd0, 0}}}, false, ErrCount},
		{"total past N", small, []chunk{{2, bitString("01 00")}, {3, bitString("1101 1101 0")}}, false, ErrCount},
		{"total below N", small, []chunk{{2, bitString("01 00")}}, true, ErrCount},
		{"huge count", Params{N: MaxN, M: 1, K: 0}, []chunk{{1 << 40, []byte{0}}}, false, ErrCount},
		{"sticky", small, []chunk{{0, nil}, {4, []byte{0x4d, 0xd0}}}, true, ErrCount},

		// Value out of range.
		{"gap F", small, []chunk{{1, bitString("111111 0")}}, false, ErrRange},
		{"across chunks", small, []chunk{{1, bitString("11111 0 0")}, {1, bitString("1 0 0")}}, false, ErrRange},
		{"run one past F-1", Params{N: 1, M: 1000, K: 0}, []chunk{{1, bitString(strings.Repeat("1", 1000) + "0")}}, false, ErrRange},
		{"K=63 value 2^64-1", Params{N: 1, M: math.MaxUint64, K: 63},
			[]chunk{{1, bitString("10" + strings.Repeat("1", 63))}}, false, ErrRange},
		{"run beyond 2^64", Params{N: 2, M: math.MaxUint64, K: 63},
			[]chunk{{1, bitString("11110" + strings.Repeat("0", 63))}}, false, ErrRange},

		// Huge unary run: rejected after at most the range or the data.
		{"run past small F", Params{N: 1, M: 16, K: 0}, []chunk{{1, ff(1 << 20)}}, false, ErrRange},
		{"run past data", Params{N: MaxN, M: math.MaxUint64, K: 0}, []chunk{{1, ff(1 << 20)}}, false, ErrTruncated},
		{"run in second value", Params{N: MaxN, M: 1 << 30, K: 30}, []chunk{{2, append([]byte{0, 0, 0, 1}, ff(1<<20)...)}}, false, ErrTruncated},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDecoder(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			var prev Uint128
			for _, c := range tt.chunks {
				emitted := 0
				err = d.Chunk(c.count, c.data, func(v Uint128) {
					if v.Less(prev) || !v.Less(tt.p.F()) {
						t.Fatalf("value %v out of order or range", v)
					}
					prev = v
					emitted++
				})
				if emitted > max(c.count, 0) {
					t.Fatalf("%d values from a chunk of %d", emitted, c.count)
				}
				if err != nil {
					break
				}
			}
			if tt.finish || err != nil {
				if ferr := d.Finish(); err == nil {
					err = ferr
				} else if ferr != err {
					t.Errorf("Finish = %v after Chunk error %v", ferr, err)
				}
			}
			if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "gcs: ") {
				t.Errorf("error %q lacks the gcs: prefix", err)
			}
		})
	}
}

// TestFalsePositiveRate measures the rate at which random queries hit a set
// of N random values with M = 2^10 and compares it with 1/M.
func TestFalsePositiveRate(t *testing.T) {
	const n, m, queries = 1 << 14, 1 << 10, 1 << 20
	rng := newRand(2)
	p := Params{N: n, M: m, K: chooseK(m)}
	chunks := encodeChunks(t, p, DefaultChunkValues, randomValues(rng, n, p.F()))
	set, err := decodeChunks(p, chunks)
	if err != nil {
		t.Fatal(err)
	}
	q := randomValues(rng, queries, p.F())
	hits, j := 0, 0
	for _, x := range q { // both sorted: merge
		for j < len(set) && set[j].Less(x) {
			j++
		}
		if j < len(set) && set[j] == x {
			hits++
		}
	}
	// hits is binomial with mean ≤ queries/M = 1024 and sd ≈ 32; allow 6 sd.
	mean := float64(queries) / m
	if sd := math.Sqrt(mean); math.Abs(float64(hits)-mean) > 6*sd {
		t.Errorf("%d false positives in %d queries, expected %v ± %v", hits, queries, mean, 6*sd)
	}
	t.Logf("%d false positives in %d queries: rate %.3g, 1/M = %.3g", hits, queries, float64(hits)/queries, 1.0/m)
}

// TestBitsPerValue checks ChooseParams' Rice code against the Golomb optimum,
// and the measured size of encoded random sets against ExpectedBits.
func TestBitsPerValue(t *testing.T) {
	rng := newRand(3)
	for _, m := range []uint64{1 << 10, 1e6, 1e11, 1e13} {
		p, err := ChooseParams(1<<16, 1, 1/float64(m))
		if err != nil || p.M != m {
			t.Fatalf("ChooseParams for M = %d: %+v, %v", m, p, err)
		}
		exp, opt := ExpectedBits(p), OptimalBits(m)
		if exp > 1.03*opt {
			t.Errorf("M = %d, K = %d: %.4f bits/value, optimum %.4f", m, p.K, exp, opt)
		}
		size := 0
		for _, c := range encodeChunks(t, p, DefaultChunkValues, randomValues(rng, int(p.N), p.F())) {
			size += len(c.data)
		}
		got := float64(8*size) / float64(p.N)
		if math.Abs(got-exp) > 0.01*exp {
			t.Errorf("M = %d: measured %.4f bits/value, expected %.4f", m, got, exp)
		}
		t.Logf("M = %.3g: K = %d, measured %.4f, expected %.4f, Golomb optimum %.4f bits/value (+%.2f%%)",
			float64(m), p.K, got, exp, opt, 100*(exp/opt-1))
	}
}

func BenchmarkGCS(b *testing.B) {
	const n = 1e6
	p, err := ChooseParams(n, 1e7, 1e-4) // M = 10^11
	if err != nil {
		b.Fatal(err)
	}
	values := randomValues(newRand(4), n, p.F())
	chunks := encodeChunks(b, p, DefaultChunkValues, values)
	size := 0
	for _, c := range chunks {
		size += len(c.data)
	}
	b.Run("Encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(size))
		for b.Loop() {
			err := Encode(p, DefaultChunkValues, values, func(int, []byte) error { return nil })
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds()/1e6, "Mvalues/s")
	})
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(size))
		for b.Loop() {
			d, _ := NewDecoder(p)
			var last Uint128
			for _, c := range chunks {
				if err := d.Chunk(c.count, c.data, func(v Uint128) { last = v }); err != nil {
					b.Fatal(err)
				}
			}
			if err := d.Finish(); err != nil || last != values[n-1] {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds()/1e6, "Mvalues/s")
	})
}
