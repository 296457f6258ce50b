package c25519

import (
	"errors"
	"testing"
)

// FuzzValid: Valid never panics, agrees with the math/big reference, and
// agrees with what Mult and InvMult accept; an accepted element gives a
// valid, non-identity result.
func FuzzValid(f *testing.F) {
	f.Add(make([]byte, 32))
	f.Add([]byte{9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	for _, c := range lowOrder {
		f.Add(c[:])
	}
	pPlus := leBytes(refP)
	f.Add(pPlus[:])
	key, err := NewKey(seeded(20))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 32 {
			return // the type holds 32 bytes; lengths are the caller's check
		}
		in := [32]byte(b)
		v := Valid(&in)
		if v != refValid(in) {
			t.Fatalf("Valid(%x) = %v, reference %v", in, v, refValid(in))
		}
		var out, back [32]byte
		err := key.Mult(&out, &in)
		if v != (err == nil) {
			t.Fatalf("Valid(%x) = %v but Mult error = %v", in, v, err)
		}
		if !v && !errors.Is(err, ErrInvalidElement) {
			t.Fatalf("Mult(%x) error %v, want ErrInvalidElement", in, err)
		}
		if err2 := key.InvMult(&back, &in); (err2 == nil) != v {
			t.Fatalf("Valid(%x) = %v but InvMult error = %v", in, v, err2)
		}
		if v && !Valid(&out) {
			t.Fatalf("Mult(%x) = %x is not valid", in, out)
		}
	})
}

// FuzzKeyFromBytes: never panics; accepts exactly the clamped scalars
// whose inverse has a clamped representative (the math/big reference),
// and an accepted key round-trips and keeps its invariants.
func FuzzKeyFromBytes(f *testing.F) {
	f.Add(make([]byte, 32))
	k, err := NewKey(seeded(21))
	if err != nil {
		f.Fatal(err)
	}
	b := k.Bytes()
	f.Add(b[:])
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) != 32 {
			return
		}
		b := [32]byte(in)
		key, err := KeyFromBytes(b)
		_, repOK := refInverseRep(b)
		want := clamped(&b) && repOK
		if (err == nil) != want {
			t.Fatalf("KeyFromBytes(%x) error %v, want accepted = %v", b, err, want)
		}
		if err != nil {
			if !errors.Is(err, ErrKey) || key != nil {
				t.Fatalf("KeyFromBytes(%x) = %v, %v", b, key, err)
			}
			return
		}
		if key.Bytes() != b {
			t.Fatal("Bytes() differs from the input")
		}
		checkKey(t, key)
	})
}
