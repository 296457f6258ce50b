package psi

// Epochs (SPEC.md §10.12): private mode whose sessions cost what the
// advertiser's list costs. A setup (mode 3) sends the server's set once per
// epoch; the client raises it under an epoch key a_E and returns it as
// sorted, Golomb-coded 64-bit tags, which the server keeps (an Epoch). An
// epoch session (mode 4) sends only H(x)^(a_E); the server raises each to
// its epoch key b_E, looks the tag up among the kept ones, and releases a
// noised count as in mode 2.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/overlap-psi/overlap/psi/gcs"
	"github.com/overlap-psi/overlap/psi/wire"
)

// Epoch constants (SPEC.md §10.12).
const (
	// EpochTagRange is M, the range per value of a setup's tag set: large
	// enough that a client cannot find, by trying exponents offline, an
	// element whose tag equals a kept one (SPEC.md §10.12.7).
	EpochTagRange = 1 << 56
	// EpochDelta is the bound on δ_E that EpochRingers keeps a setup
	// under (SPEC.md §10.12.4).
	EpochDelta = 1e-6
	// DefaultEpochMaxServerSize is the largest N a setup client accepts by
	// default: it holds 8 bytes per element.
	DefaultEpochMaxServerSize = 1 << 28
)

// ErrEpoch reports an epoch session whose ticket names no usable epoch: an
// unknown, expired or other advertiser's epoch, another kind, or another
// client key (SPEC.md §10.12.2 step 2). The session is refused before any
// work.
var ErrEpoch = errors.New("psi: no such epoch")

var epochTagPrefix = []byte("OVERLAP-V1-epoch-tag")

// epochT is T of SPEC.md §10.12.1: the first 16 bytes of
// SHA-256("OVERLAP-V1-epoch-tag" || epoch || Enc(P)), a big-endian u128.
func epochT(epoch *[16]byte, enc []byte) gcs.Uint128 {
	h := sha256.New()
	h.Write(epochTagPrefix)
	h.Write(epoch[:])
	h.Write(enc)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return gcs.Uint128{Hi: binary.BigEndian.Uint64(sum[0:8]), Lo: binary.BigEndian.Uint64(sum[8:16])}
}

var epochFPPrefix = []byte("OVERLAP-V1-epoch-fp")

// fingerprinter maps a kept tag to the 64 bits the server holds in memory:
// the first 8 bytes of AES-128 under a key derived from b_E, so that a
// client, which does not know b_E, cannot aim at a fingerprint collision
// (SPEC.md §10.12.5).
type fingerprinter struct{ block cipher.Block }

func newFingerprinter(b *gkey) fingerprinter {
	h := sha256.New()
	h.Write(epochFPPrefix)
	kb := b.bytes()
	h.Write(kb[:])
	clear(kb[:])
	var k [sha256.Size]byte
	h.Sum(k[:0])
	block, err := aes.NewCipher(k[:16])
	if err != nil {
		panic("psi: internal error: AES-128 key: " + err.Error())
	}
	clear(k[:])
	return fingerprinter{block}
}

func (f fingerprinter) of(t gcs.Uint128) uint64 {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], t.Hi)
	binary.BigEndian.PutUint64(b[8:], t.Lo)
	f.block.Encrypt(b[:], b[:])
	return binary.BigEndian.Uint64(b[:8])
}

// epochGCS returns the tag set's Golomb parameters for N elements: M =
// EpochTagRange and the K of SPEC.md §6.3 for it.
func epochGCS(n uint32) (gcs.Params, error) {
	p, err := gcs.ChooseParams(uint64(n), 1, 1.0/EpochTagRange)
	if err == nil && p.M != EpochTagRange {
		err = fmt.Errorf("psi: internal error: tag range %d, want %d", p.M, uint64(EpochTagRange))
	}
	return p, err
}

// epochDelta returns δ_E of SPEC.md §10.12.4 for y real elements and r
// ringers: the largest probability, over the number k of positions a client
// deviates on, that the deviation touches a given person's element and
// passes the ringer check.
func epochDelta(y, r int) float64 {
	if y <= 0 {
		return 0
	}
	n := float64(y + r)
	fy := float64(y)
	best, logp := 0.0, 0.0 // logp = log Π_{i<k} (y−i)/(n−i)
	for k := 1; k <= y; k++ {
		logp += math.Log((fy - float64(k-1)) / (n - float64(k-1)))
		f := float64(k) / fy * math.Exp(logp)
		best = max(best, f)
		// f(k+1)/f(k) = (k+1)/k · (y−k)/(n−k) decreases in k: past its
		// crossing of 1, f only falls.
		if float64(k+1)/float64(k)*(fy-float64(k))/(n-float64(k)) < 1 {
			break
		}
	}
	return best
}

// EpochRingers returns R_E(|Y_E|) of SPEC.md §10.12.4: the least R for
// which a setup of y real elements padded to N = Bucket(y + R) keeps δ_E
// at most EpochDelta (with a 1% margin for rounding).
func EpochRingers(y int) int { return EpochRingersFor(y, EpochDelta) }

// EpochRingersFor is EpochRingers for a bound delta other than EpochDelta,
// for a platform that accepts a larger δ_E (and for tests, which cannot
// afford 10^6 ringers per setup).
func EpochRingersFor(y int, delta float64) int {
	ok := func(r int) bool {
		n := int(Bucket(uint64(y + r)))
		return epochDelta(y, n-y) <= delta*0.99
	}
	lo, hi := 1, 1<<21
	for lo < hi {
		mid := (lo + hi) / 2
		if ok(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// EpochMeta describes an epoch: what the server stores beside its key and
// tags, and what `overlap advertisers` shows.
type EpochMeta struct {
	ID           [16]byte
	Kind         Kind
	Suite        Suite // the epoch's ciphersuite, fixed at setup (SPEC.md §12.1); zero means suite 1
	CanonVersion uint16
	CanonFlags   uint16
	ServerSize   uint32    // N, ringers included
	Size         int       // |Y_E|, the kept tags
	ExpiresAt    time.Time // whole seconds
	ClientKey    [32]byte  // A_E = Enc(B^(a_E))
}

// Epoch is the server's state of one epoch (SPEC.md §10.12.5): the kept
// tags K_E, sorted, and the epoch key b_E. It serves any number of
// sessions, concurrently; it is read-only once made.
type Epoch struct {
	meta EpochMeta
	key  *gkey // b_E
	fp   fingerprinter
	tags []uint64 // fingerprints of K_E, sorted
}

// String never prints the key.
func (e *Epoch) String() string {
	return fmt.Sprintf("psi.Epoch{kind=%v suite=%v N=%d kept=%d}", e.meta.Kind, e.meta.Suite.Or1(), e.meta.ServerSize, len(e.tags))
}

// Format never prints the key.
func (e *Epoch) Format(f fmt.State, _ rune) { io.WriteString(f, e.String()) }

// Meta returns the epoch's description.
func (e *Epoch) Meta() EpochMeta { return e.meta }

// ExportKey returns the epoch key b_E for the caller to store with the
// epoch. It is a secret: store it where the identifiers are, never log it.
func (e *Epoch) ExportKey() [32]byte {
	return e.key.bytes()
}

// Erase erases the epoch key and drops the tags. No session may be using
// the epoch.
func (e *Epoch) Erase() {
	e.key.erase()
	e.tags = nil
}

// EncodeTags writes the epoch's kept tags for storage, as their sorted
// 64-bit fingerprints (SPEC.md §10.12.5), 8 big-endian bytes each, in chunks
// of at most chunkValues. A store reads them back with LoadEpoch.
func (e *Epoch) EncodeTags(chunkValues int, emit func(count int, data []byte) error) error {
	if chunkValues < 1 {
		return fmt.Errorf("psi: chunks of %d tags", chunkValues)
	}
	buf := make([]byte, 0, 8*min(chunkValues, len(e.tags)))
	for i := 0; i < len(e.tags); i += chunkValues {
		part := e.tags[i:min(i+chunkValues, len(e.tags))]
		buf = buf[:0]
		for _, t := range part {
			buf = binary.BigEndian.AppendUint64(buf, t)
		}
		if err := emit(len(part), buf); err != nil {
			return err
		}
	}
	return nil
}

// LoadEpoch rebuilds an epoch from what a store kept: its description, its
// key and its tag chunks as EncodeTags wrote them, which chunks passes to
// the function it is given, in order.
func LoadEpoch(meta EpochMeta, key [32]byte, chunks func(add func(count int, data []byte) error) error) (*Epoch, error) {
	// A setup keeps fewer tags than it sent elements: at least one ringer.
	if meta.Size < 0 || uint64(meta.Size) >= uint64(meta.ServerSize) || meta.ServerSize > wire.MaxSetSize {
		return nil, fmt.Errorf("psi: a stored epoch of %d tags from %d elements", meta.Size, meta.ServerSize)
	}
	if !suiteKnown(meta.Suite) {
		return nil, fmt.Errorf("psi: a stored epoch of unknown ciphersuite %d", uint8(meta.Suite))
	}
	b, err := keyFromBytes(meta.Suite, key)
	if err != nil {
		return nil, fmt.Errorf("psi: the stored epoch key is not a valid key of suite %v", meta.Suite.Or1())
	}
	e := &Epoch{meta: meta, key: b, fp: newFingerprinter(b), tags: make([]uint64, 0, meta.Size)}
	err = chunks(func(count int, data []byte) error {
		if count < 1 || len(data) != 8*count || len(e.tags)+count > meta.Size {
			return fmt.Errorf("a chunk of %d tags in %d bytes, after %d of %d", count, len(data), len(e.tags), meta.Size)
		}
		for i := 0; i < len(data); i += 8 {
			t := binary.BigEndian.Uint64(data[i:])
			if n := len(e.tags); n > 0 && t < e.tags[n-1] {
				return fmt.Errorf("the tags are not sorted")
			}
			e.tags = append(e.tags, t)
		}
		return nil
	})
	if err == nil && len(e.tags) != meta.Size {
		err = fmt.Errorf("%d tags, want %d", len(e.tags), meta.Size)
	}
	if err != nil {
		return nil, fmt.Errorf("psi: the stored epoch tags: %w", err)
	}
	return e, nil
}

// newEpoch makes an epoch of a setup from its sorted kept tags.
func newEpoch(meta EpochMeta, key *gkey, kept []gcs.Uint128) *Epoch {
	e := &Epoch{meta: meta, key: key, fp: newFingerprinter(key), tags: make([]uint64, len(kept))}
	for i, t := range kept {
		e.tags[i] = e.fp.of(t)
	}
	slices.Sort(e.tags)
	return e
}

// CheckTicket makes the epoch checks of SPEC.md §10.12.2 step 2 that the
// epoch itself can make: the hello's kind and canonicalization, the ticket's
// epoch id and client key, and the expiry. The caller has checked that the
// epoch is the authenticated advertiser's. The error wraps ErrEpoch.
func (e *Epoch) CheckTicket(h *wire.ClientHello, t *wire.EpochTicket, now time.Time) error {
	m := &e.meta
	switch {
	case t.Epoch != m.ID:
		return fmt.Errorf("%w: the ticket names another epoch", ErrEpoch)
	case !now.Before(m.ExpiresAt):
		return fmt.Errorf("%w: the epoch expired at %s; make a new setup", ErrEpoch, m.ExpiresAt.UTC().Format(time.RFC3339))
	case h.Kind != m.Kind:
		return fmt.Errorf("%w: the epoch is for kind %v, the session for %v", ErrEpoch, m.Kind, h.Kind)
	case h.CanonVersion != m.CanonVersion || h.CanonFlags != m.CanonFlags:
		return fmt.Errorf("%w: the epoch uses canonicalization v%d flags %#x, the session v%d flags %#x",
			ErrEpoch, m.CanonVersion, m.CanonFlags, h.CanonVersion, h.CanonFlags)
	case t.Key != m.ClientKey:
		return fmt.Errorf("%w: the ticket's client key is not the epoch's", ErrEpoch)
	case !h.Suites.Has(m.Suite):
		return fmt.Errorf("%w: the epoch is in ciphersuite %v, the session offers %v", ErrEpoch, m.Suite.Or1(), h.Suites.Or1())
	}
	return nil
}

// contains reports whether t is among the kept tags (by fingerprint: a
// false match has probability |K_E|/2^64 per lookup).
func (e *Epoch) contains(t gcs.Uint128) bool {
	_, ok := slices.BinarySearch(e.tags, e.fp.of(t))
	return ok
}
