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

// seeded returns a ChaCha8 generator keyed with 32 bytes from r, a
// cryptographically secure generator, and a function that wipes the
// generator's state (its key and buffered output): call it as soon as the
// generator is no longer needed, since its state determines every value
// it drew.
func seeded(r io.Reader) (g *mrand.ChaCha8, wipe func(), err error) {
	var seed [32]byte
	if _, err := io.ReadFull(r, seed[:]); err != nil {
		return nil, nil, err
	}
	g = mrand.NewChaCha8(seed)
	clear(seed[:])
	return g, func() { *g = mrand.ChaCha8{} }, nil
}

// shuffle permutes n items with a Fisher-Yates shuffle driven by ChaCha8
// seeded from r (SPEC.md §4.3), and wipes the generator afterwards.
func shuffle(r io.Reader, n int, swap func(i, j int)) error {
	g, wipe, err := seeded(r)
	if err != nil {
		return err
	}
	defer wipe()
	mrand.New(g).Shuffle(n, swap)
	return nil
}
