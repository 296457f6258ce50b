package gcs

import (
	"encoding/binary"
	"fmt"
)

// DefaultChunkValues is a chunk size that keeps chunks well under a megabyte
// for any practical M.
const DefaultChunkValues = 1 << 16

// maxQuotient bounds the unary part of one code word the encoder writes
// (2 MiB of one-bits). With K from ChooseParams and values from Reduce, a
// larger quotient has probability far below 2^-1000; it means K is much too
// small for the data, and writing it could exhaust memory. Decoders accept any
// quotient the format allows.
const maxQuotient = 1 << 24

// An Encoder writes a sorted sequence of exactly N values as chunks
// (SPEC.md §6). The zero Encoder is not usable; see NewEncoder.
type Encoder struct {
	k     uint
	f     Uint128
	n     uint64 // values wanted
	limit int    // values per chunk
	emit  func(count int, data []byte) error

	prev  Uint128
	total uint64 // values added
	count int    // values in the current chunk
	buf   []byte // whole 64-bit words of the current chunk
	acc   uint64 // nacc pending bits, most significant first
	nacc  uint   // < 64
	err   error  // sticky
}

// NewEncoder returns an Encoder for a set with parameters p that cuts chunks
// of chunkValues values (the last one may be shorter) and hands each to emit.
// The data slice passed to emit is reused after emit returns. An error from
// emit stops the Encoder and is returned by Add, Flush and Close.
func NewEncoder(p Params, chunkValues int, emit func(count int, data []byte) error) (*Encoder, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if chunkValues < 1 {
		return nil, fmt.Errorf("%w: chunk size %d is less than 1", ErrParams, chunkValues)
	}
	if emit == nil {
		return nil, fmt.Errorf("%w: nil emit function", ErrParams)
	}
	// Preallocate about one chunk, assuming K ≈ log2(M).
	c := min(uint64(chunkValues), p.N)
	capBytes := min(c*(uint64(p.K)+3)/8+8, 1<<24)
	return &Encoder{
		k: uint(p.K), f: p.F(), n: p.N, limit: chunkValues, emit: emit,
		buf: make([]byte, 0, capBytes),
	}, nil
}

// Add appends v, which must be at least the previous value and less than F.
// It emits the chunk when it holds chunkValues values. Add returns an error
// wrapping ErrRange, ErrOrder or ErrCount (more than N values) and leaves the
// Encoder unchanged if v is not acceptable; it returns ErrRange also if the
// gap's quotient exceeds 2^24, which means K is far too small for the data.
func (e *Encoder) Add(v Uint128) error {
	if e.err != nil {
		return e.err
	}
	if e.total >= e.n {
		return fmt.Errorf("%w: more than N = %d values", ErrCount, e.n)
	}
	if !v.Less(e.f) {
		return fmt.Errorf("%w: value %d is not less than F", ErrRange, e.total)
	}
	if v.Less(e.prev) {
		return fmt.Errorf("%w: value %d is less than value %d", ErrOrder, e.total, e.total-1)
	}
	d := v.Sub(e.prev)
	q := d.Rsh(e.k)
	if q.Hi != 0 || q.Lo > maxQuotient {
		return fmt.Errorf("%w: gap before value %d needs more than 2^24 unary bits; K is too small", ErrRange, e.total)
	}
	e.writeGap(q.Lo, d.Lo&(1<<e.k-1))
	e.prev = v
	e.total++
	e.count++
	if e.count == e.limit {
		return e.flush()
	}
	return nil
}

// Flush emits the current chunk now if it holds any values, so that the next
// value starts a new chunk.
func (e *Encoder) Flush() error {
	if e.err != nil {
		return e.err
	}
	if e.count == 0 {
		return nil
	}
	return e.flush()
}

// Close emits the last chunk. It returns an error wrapping ErrCount, and emits
// nothing more, if fewer than N values were added. Later calls to Add, Flush
// and Close return ErrClosed.
func (e *Encoder) Close() error {
	if e.err != nil {
		return e.err
	}
	if e.total != e.n {
		e.err = fmt.Errorf("%w: %d values added, N = %d", ErrCount, e.total, e.n)
		return e.err
	}
	if e.count > 0 {
		if err := e.flush(); err != nil {
			return err
		}
	}
	e.err = ErrClosed
	return nil
}

// Encode encodes sorted, which must hold exactly p.N values, with an Encoder.
func Encode(p Params, chunkValues int, sorted []Uint128, emit func(count int, data []byte) error) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if uint64(len(sorted)) != p.N {
		return fmt.Errorf("%w: %d values, N = %d", ErrCount, len(sorted), p.N)
	}
	e, err := NewEncoder(p, chunkValues, emit)
	if err != nil {
		return err
	}
	for _, v := range sorted {
		if err := e.Add(v); err != nil {
			return err
		}
	}
	return e.Close()
}

func (e *Encoder) flush() error {
	for n := e.nacc; n > 0; n -= min(n, 8) {
		e.buf = append(e.buf, byte(e.acc>>56))
		e.acc <<= 8
	}
	err := e.emit(e.count, e.buf)
	e.buf, e.acc, e.nacc, e.count = e.buf[:0], 0, 0, 0
	if err != nil {
		e.err = err
	}
	return err
}

// writeGap writes q one-bits, a zero-bit and the K-bit remainder r.
func (e *Encoder) writeGap(q, r uint64) {
	if q+1+uint64(e.k) <= 64 {
		// 1<<64 is 0 in Go, so the unary word is right for q = 63 too.
		e.write((1<<(q+1)-2)<<e.k|r, uint(q)+1+e.k)
		return
	}
	for ; q >= 64; q -= 64 {
		e.write(^uint64(0), 64)
	}
	e.write(1<<(q+1)-2, uint(q)+1)
	if e.k > 0 {
		e.write(r, e.k)
	}
}

// write appends the n low bits of x, 1 ≤ n ≤ 64, x < 2^n.
func (e *Encoder) write(x uint64, n uint) {
	free := 64 - e.nacc
	if n < free {
		e.acc |= x << (free - n)
		e.nacc += n
		return
	}
	n -= free
	e.buf = binary.BigEndian.AppendUint64(e.buf, e.acc|x>>n)
	e.acc = x << (64 - n) // 0 when n == 0
	e.nacc = n
}
