package c25519_test

import (
	"crypto/rand"
	"fmt"

	"github.com/overlap-psi/overlap/psi/internal/c25519"
)

// The exact-mode round trip of SPEC.md §4 in this suite: the client blinds
// H(x) with a, the server raises it to b, the client unblinds with a's
// inverse and holds H(x)^b, which equals the server's own H(x)^b.
func Example() {
	h := c25519.NewHasher([]byte("OVERLAP-V1-email-curve25519_XMD:SHA-512_ELL2_RO_"))
	a, _ := c25519.NewKey(rand.Reader) // the client's key
	b, _ := c25519.NewKey(rand.Reader) // the server's key

	var hx, blinded, evaluated, unblinded [c25519.ElementSize]byte
	h.Hash(&hx, []byte("a digest of 32 bytes, say......."))
	if err := a.MultOwn(&blinded, &hx); err != nil { // the client's own element
		panic(err)
	}
	if err := b.Mult(&evaluated, &blinded); err != nil { // received: checked
		panic(err)
	}
	if err := a.InvMult(&unblinded, &evaluated); err != nil {
		panic(err)
	}

	var serverSide [c25519.ElementSize]byte
	if err := b.MultOwn(&serverSide, &hx); err != nil {
		panic(err)
	}
	fmt.Println(unblinded == serverSide)
	fmt.Println(a) // keys never print
	// Output:
	// true
	// c25519.Key{REDACTED}
}

// Valid refuses what a peer must not send: here the low-order point u = 1
// and a point of the twist, u = 2.
func ExampleValid() {
	fmt.Println(c25519.Valid(&[32]byte{9}), c25519.Valid(&[32]byte{1}), c25519.Valid(&[32]byte{2}))
	// Output: true false false
}
