package psi

import (
	"crypto/sha256"
	"time"

	"github.com/overlap-psi/overlap/psi/internal/r255"
)

// OpCosts is the single-core cost of the two group operations that bound
// the protocol's work (SPEC.md §4): hashing an identifier to the group and
// one scalar multiplication, through the same code the roles use.
type OpCosts struct {
	HashToGroup time.Duration
	ScalarMult  time.Duration
}

// MeasureOpCosts times n hash-to-group operations and n scalar
// multiplications on the calling goroutine and returns the mean of each.
// Benchmarks use it to state the lower bound their measurements are
// compared against.
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
