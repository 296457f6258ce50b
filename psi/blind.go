package psi

import (
	"time"

	"filippo.io/edwards25519"

	"github.com/overlap-psi/overlap/psi/internal/r255"
)

// blindChunk hashes a chunk of a client's digests to the group and raises
// them to the client's key, H(x)^a (SPEC.md §4.2, §10.4), the step both
// modes' clients share, and returns their encodings. points is scratch of
// at least len(batch) elements. It adds the time of each pass to hash and
// blind (the roles' Timings). kinds, when not nil, gives each digest's
// kind, 0 for a record's dummy (SPEC.md §13.2), and h is then not used.
func blindChunk(h *r255.Hasher, kinds []Kind, key *edwards25519.Scalar, batch [][32]byte, points []r255.Element, workers int, hash, blind *time.Duration) []byte {
	k := len(batch)
	buf := make([]byte, k*r255.ElementSize)
	points = points[:k]
	// Two passes, so the cost of hashing and of blinding can be reported
	// separately.
	t0 := time.Now()
	parallel(k, workers, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			if kinds != nil {
				slotHasher(kinds[i]).Hash(&points[i], batch[i][:])
				continue
			}
			h.Hash(&points[i], batch[i][:])
		}
		return nil
	})
	t1 := time.Now()
	parallel(k, workers, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			points[i].ScalarMult(key, &points[i])
			points[i].AppendBytes(buf[i*r255.ElementSize : i*r255.ElementSize])
		}
		return nil
	})
	*hash += t1.Sub(t0)
	*blind += time.Since(t1)
	return buf
}
