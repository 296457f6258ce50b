package psi

import (
	"crypto/rand"
	"io"
	mrand "math/rand/v2"
)

// entropy is where a role draws its keys, salts, session ids, padding and
// shuffle seeds. It is crypto/rand except in tests and vector generation,
// which set it through unexported fields (SPEC.md §9 lists what the vectors
// fix).
func entropy(r io.Reader) io.Reader {
	if r != nil {
		return r
	}
	return rand.Reader
}

// shuffle permutes n items with a Fisher-Yates shuffle driven by ChaCha8
// seeded with 32 bytes from r, a cryptographically secure generator
// (SPEC.md §4.3).
func shuffle(r io.Reader, n int, swap func(i, j int)) error {
	var seed [32]byte
	if _, err := io.ReadFull(r, seed[:]); err != nil {
		return err
	}
	rng := mrand.New(mrand.NewChaCha8(seed))
	clear(seed[:])
	rng.Shuffle(n, swap)
	return nil
}
