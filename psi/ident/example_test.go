package ident_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
)

func ExampleParse() {
	id, err := ident.Parse(psi.KindEmail, "  Jöran.Smith@Bücher.Example ", ident.Options{})
	if err != nil {
		panic(err)
	}
	fmt.Println(id.Canonical)
	fmt.Println(id) // an Identifier never prints its value
	// Output:
	// jöran.smith@xn--bcher-kva.example
	// ident.Identifier{kind=email}
}

func ExampleParse_phone() {
	opts := ident.Options{DefaultRegion: "US"}
	for _, raw := range []string{"(415) 555-2671", "+44 20 7946 0958", "0044 20 7946 0958"} {
		id, err := ident.Parse(psi.KindPhone, raw, opts)
		if err != nil {
			panic(err)
		}
		fmt.Println(id.Canonical)
	}
	// Output:
	// +14155552671
	// +442079460958
	// +442079460958
}

func ExampleParse_gmail() {
	for _, opts := range []ident.Options{{}, {GmailNormalize: true}} {
		id, _ := ident.Parse(psi.KindEmail, "Bob.Smith+ads@googlemail.com", opts)
		fmt.Println(id.Canonical)
	}
	// Output:
	// bob.smith+ads@googlemail.com
	// bobsmith@gmail.com
}

// A 64-digit hex value is the SHA-256 of a canonical value, as advertisers
// upload to ad platforms today. It matches the plain value.
func ExampleParse_prehashed() {
	sum := sha256.Sum256([]byte("bob@example.com"))
	pre, _ := ident.Parse(psi.KindEmail, hex.EncodeToString(sum[:]), ident.Options{})
	plain, _ := ident.Parse(psi.KindEmail, "Bob@Example.com", ident.Options{})
	fmt.Println(pre.Prehashed, pre.Digest == plain.Digest)
	// Output:
	// true true
}

// Errors say why a value was rejected, never what it was.
func ExampleError() {
	_, err := ident.Parse(psi.KindEmail, "Bob <bob@example.com>", ident.Options{})
	fmt.Println(err)
	var e *ident.Error
	if errors.As(err, &e) {
		fmt.Println(e.Reason)
	}
	_, err = ident.Parse(psi.KindPhone, "555-2671", ident.Options{})
	fmt.Println(err)
	// Output:
	// ident: email: has a display name or angle brackets
	// display_name
	// ident: phone: has no +country code and no default region is set
}
