package psi

import (
	"crypto/sha256"
	"time"

	"github.com/overlap-psi/overlap/psi/internal/r255"
)

// OpCosts is the single-core cost of the group operations that bound the
// protocol's work (SPEC.md §4, §12.9): hashing an identifier to the group,
// one scalar multiplication, and one fixed-base multiplication (private
// mode's ringers and client key), through the same code the roles use.
type OpCosts struct {
	HashToGroup time.Duration
	ScalarMult  time.Duration
	BaseMult    time.Duration // measured by MeasureSuiteOpCosts only
}

// MeasureOpCosts times n hash-to-group operations and n scalar
// multiplications of suite 1 on the calling goroutine and returns the mean
// of each. Benchmarks use it to state the lower bound their measurements
// are compared against.
func MeasureOpCosts(n int) OpCosts {
	h := hashers[KindEmail]
	e := r255.NewElement()
	key, err := r255.RandomScalar(entropy(nil))
	if err != nil {
		panic(err)
	}
	defer r255.Erase(key)
	d := sha256.Sum256([]byte("opcost"))
	start := time.Now()
	for i := range n {
		d[0] = byte(i)
		h.Hash(e, d[:])
	}
	hash := time.Since(start)
	start = time.Now()
	for range n {
		e.ScalarMult(key, e)
	}
	mult := time.Since(start)
	return OpCosts{HashToGroup: hash / time.Duration(n), ScalarMult: mult / time.Duration(n)}
}

// opBatch is how many digests MeasureSuiteOpCosts hashes per call, as the
// roles hash a block of a chunk at a time (suite 2 shares one field
// inversion per call, SPEC.md §12.3).
const opBatch = 64

// MeasureSuiteOpCosts times about n of each operation of suite s on the
// calling goroutine: hash to group (in blocks, as the roles hash), a
// multiplication of the party's own element (suite 1: ristretto255
// multiplication, as MeasureOpCosts; suite 2: the X25519 ladder with the
// checks the roles make on their own elements), and a fixed-base
// multiplication, and returns the mean of each.
func MeasureSuiteOpCosts(s Suite, n int) OpCosts {
	n = max(n, opBatch)
	if s.Or1() == Suite1 {
		oc := MeasureOpCosts(n)
		oc.BaseMult = measureBase(s, n)
		return oc
	}
	key, err := newKey(s, entropy(nil), false)
	if err != nil {
		panic(err)
	}
	defer key.erase()
	digests := make([][32]byte, opBatch)
	for i := range digests {
		digests[i] = sha256.Sum256([]byte{byte(i), 'o', 'p'})
	}
	var pts points
	pts.grow(s, opBatch)
	rounds := (n + opBatch - 1) / opBatch
	start := time.Now()
	for r := range rounds {
		digests[0][1] = byte(r)
		hashInto(s, KindEmail, digests, &pts, 0, opBatch)
	}
	hash := time.Since(start) / time.Duration(rounds*opBatch)
	out := make([]byte, elemSize*opBatch)
	start = time.Now()
	for range rounds {
		if err := key.multOwn(&pts, 0, opBatch, out, false); err != nil {
			panic(err)
		}
		for i := range opBatch {
			copy(pts.s2[i][:], out[elemSize*i:])
		}
	}
	mult := time.Since(start) / time.Duration(rounds*opBatch)
	return OpCosts{HashToGroup: hash, ScalarMult: mult, BaseMult: measureBase(s, n)}
}

// measureBase times n fixed-base multiplications of suite s.
func measureBase(s Suite, n int) time.Duration {
	keys := make([]*gkey, 16)
	for i := range keys {
		k, err := newKey(s, entropy(nil), false)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	start := time.Now()
	for i := range n {
		keys[i%len(keys)].baseMult()
	}
	d := time.Since(start) / time.Duration(n)
	for _, k := range keys {
		k.erase()
	}
	return d
}
