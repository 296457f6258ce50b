package psi

import (
	"time"
)

// blindChunk hashes a chunk of a client's digests to the group and raises
// them to the client's key, H(x)^a (SPEC.md §4.2, §10.4), the step both
// modes' clients share, and returns their encodings. pts is scratch,
// reused between chunks. It adds the time of each pass to hash and blind
// (the roles' Timings). kinds, when not nil, gives each digest's kind, 0
// for a record's dummy (SPEC.md §13.2), and kind is then not used.
func blindChunk(kind Kind, kinds []Kind, key *gkey, batch [][32]byte, pts *points, workers int, hash, blind *time.Duration) ([]byte, error) {
	k := len(batch)
	buf := make([]byte, k*elemSize)
	pts.grow(key.suite, k)
	// Two passes, so the cost of hashing and of blinding can be reported
	// separately.
	t0 := time.Now()
	parallel(k, workers, func(lo, hi int) error {
		if kinds != nil {
			hashSlots(key.suite, kinds, batch, pts, lo, hi)
			return nil
		}
		hashInto(key.suite, kind, batch, pts, lo, hi)
		return nil
	})
	t1 := time.Now()
	err := parallel(k, workers, func(lo, hi int) error {
		return key.multOwn(pts, lo, hi, buf[lo*elemSize:hi*elemSize], false)
	})
	*hash += t1.Sub(t0)
	*blind += time.Since(t1)
	return buf, err
}
