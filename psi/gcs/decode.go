package gcs

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// A Decoder parses the chunks of one encoded set received from a peer
// (SPEC.md §6), checking every rule of the format. It never panics, and its
// work is linear in the bytes and values it is given, whatever they hold.
type Decoder struct {
	k     uint
	f     Uint128
	n     uint64
	prev  Uint128
	total uint64
	err   error // sticky
}

// NewDecoder returns a Decoder for a set with parameters p.
func NewDecoder(p Params) (*Decoder, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Decoder{k: uint(p.K), f: p.F(), n: p.N}, nil
}

// Chunk decodes the next chunk, which holds count values, and calls fn with
// each value in order (fn may be nil). The values passed to fn are
// non-decreasing across all chunks and less than F.
//
// It returns an error wrapping ErrCount if count < 1 or the total would
// exceed N, ErrRange if a value would reach F, ErrTruncated if data ends
// before count values, ErrPadding if a padding bit is set and ErrTrailing if
// whole bytes follow the last value. fn may have been called for some values
// of a chunk that turns out malformed: on any error the caller must discard
// everything it learned from the set. Errors are sticky: once Chunk fails,
// every later Chunk and Finish returns the same error.
func (d *Decoder) Chunk(count int, data []byte, fn func(v Uint128)) error {
	if d.err != nil {
		return d.err
	}
	if err := d.chunk(count, data, fn); err != nil {
		d.err = err
		return err
	}
	return nil
}

// Finish returns an error wrapping ErrCount if the chunks so far held fewer
// than N values, or the error of a failed Chunk.
func (d *Decoder) Finish() error {
	if d.err == nil && d.total != d.n {
		d.err = fmt.Errorf("%w: set has %d values, want N = %d", ErrCount, d.total, d.n)
	}
	return d.err
}

// bitReader reads bits most significant first. The top nbits bits of acc
// are the next bits of data; the bits below them are zero or the bits that
// follow in data, so that refilling with OR is idempotent.
type bitReader struct {
	data  []byte
	pos   int // next byte of data not yet in acc
	acc   uint64
	nbits uint
}

// refill makes nbits ≥ 56 or loads all of data.
func (r *bitReader) refill() {
	if r.nbits > 56 { // no room for a whole byte
		return
	}
	if r.pos+8 <= len(r.data) {
		r.acc |= binary.BigEndian.Uint64(r.data[r.pos:]) >> r.nbits
		r.pos += int(63-r.nbits) >> 3
		r.nbits |= 56
		return
	}
	for r.nbits <= 56 && r.pos < len(r.data) {
		r.acc |= uint64(r.data[r.pos]) << (56 - r.nbits)
		r.nbits += 8
		r.pos++
	}
}

func (d *Decoder) chunk(count int, data []byte, fn func(v Uint128)) error {
	if count < 1 {
		return fmt.Errorf("%w: chunk count %d is less than 1", ErrCount, count)
	}
	if uint64(count) > d.n-d.total {
		return fmt.Errorf("%w: chunk of %d values after %d takes the set past N = %d", ErrCount, count, d.total, d.n)
	}
	k := d.k
	// Every code word has at least K+1 bits (count ≤ 2^32, so no overflow).
	if uint64(count)*uint64(k+1) > 8*uint64(len(data)) {
		return fmt.Errorf("%w: %d bytes cannot hold %d values", ErrTruncated, len(data), count)
	}
	if fn == nil {
		fn = func(Uint128) {}
	}
	f, prev := d.f, d.prev
	r := bitReader{data: data}
	for i := range count {
		if r.nbits < 56 {
			r.refill()
		}
		// Unary quotient.
		var q uint64
		if ones := uint(bits.LeadingZeros64(^r.acc)); ones < r.nbits {
			q = uint64(ones)
			r.acc <<= ones + 1
			r.nbits -= ones + 1
		} else {
			var err error
			if q, err = d.longRun(&r, prev); err != nil {
				return fmt.Errorf("%w (value %d of chunk)", err, i)
			}
		}
		// Remainder.
		var rem uint64
		if k > 0 {
			if r.nbits < k {
				r.refill()
			}
			if r.nbits >= k {
				rem = r.acc >> (64 - k)
				r.acc <<= k
				r.nbits -= k
			} else { // only for K > 56: read what is left, then the rest
				hi, n := r.acc>>(64-r.nbits), k-r.nbits
				r.acc, r.nbits = 0, 0
				r.refill()
				if r.nbits < n {
					return fmt.Errorf("%w: remainder of value %d of chunk", ErrTruncated, i)
				}
				rem = hi<<n | r.acc>>(64-n)
				r.acc <<= n
				r.nbits -= n
			}
		}
		// v = prev + q·2^K + rem < 2^96 + 2^127: no overflow.
		v := prev.Add(Uint128{q >> (64 - k), q<<k | rem})
		if !v.Less(f) {
			return fmt.Errorf("%w: value %d of chunk is not less than F", ErrRange, i)
		}
		fn(v)
		prev = v
	}
	if left := 8*uint64(len(data)-r.pos) + uint64(r.nbits); left >= 8 {
		return fmt.Errorf("%w: %d bits left after %d values", ErrTrailing, left, count)
	}
	if r.nbits > 0 && r.acc>>(64-r.nbits) != 0 {
		return ErrPadding
	}
	d.prev = prev
	d.total += uint64(count)
	return nil
}

// longRun reads a unary quotient whose run of one-bits reaches past the
// bits in r.acc. It fails as soon as the run would put the value at or past F,
// so a stream of one-bits costs O(len(data)), not O(F).
func (d *Decoder) longRun(r *bitReader, prev Uint128) (uint64, error) {
	qmax := uint64(1<<64 - 1)
	if m := d.f.Sub(prev).Sub(Uint128{0, 1}).Rsh(d.k); m.Hi == 0 {
		qmax = m.Lo // largest quotient keeping the value below F
	}
	var q uint64
	for {
		if ones := uint(bits.LeadingZeros64(^r.acc)); ones < r.nbits {
			q += uint64(ones)
			r.acc <<= ones + 1
			r.nbits -= ones + 1
			break
		}
		q += uint64(r.nbits) // q ≤ 8·len(data): no overflow
		r.acc, r.nbits = 0, 0
		if q > qmax {
			return 0, fmt.Errorf("%w: unary run puts the value past F", ErrRange)
		}
		r.refill()
		if r.nbits == 0 {
			return 0, fmt.Errorf("%w: unterminated unary run", ErrTruncated)
		}
	}
	if q > qmax {
		return 0, fmt.Errorf("%w: unary run puts the value past F", ErrRange)
	}
	return q, nil
}
