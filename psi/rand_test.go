package psi

import (
	"bytes"
	mrand "math/rand/v2"
	"testing"
)

// A wiped generator keeps nothing of its seed: two generators seeded
// differently are equal, state and buffered output, once wiped.
func TestSeededWipe(t *testing.T) {
	a, wipeA, err := seeded(mrand.NewChaCha8([32]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	b, wipeB, err := seeded(mrand.NewChaCha8([32]byte{2}))
	if err != nil {
		t.Fatal(err)
	}
	a.Uint64()
	b.Uint64()
	sa, _ := a.MarshalBinary()
	sb, _ := b.MarshalBinary()
	if bytes.Equal(sa, sb) {
		t.Fatal("differently seeded generators have one state")
	}
	wipeA()
	wipeB()
	sa, _ = a.MarshalBinary()
	sb, _ = b.MarshalBinary()
	if !bytes.Equal(sa, sb) {
		t.Error("wiped generators still differ: their state depends on the seed")
	}
}
