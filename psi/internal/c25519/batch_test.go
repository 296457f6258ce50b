package c25519

import (
	"errors"
	"testing"
)

// batchInputs returns n elements of the subgroup (hash outputs).
func batchInputs(n int, tag byte) [][32]byte {
	h := NewHasher([]byte("batch test"))
	in := make([][32]byte, n)
	for i := range in {
		h.Hash(&in[i], []byte{tag, byte(i), byte(i >> 8)})
	}
	return in
}

// oneAtATime is what the batch functions must equal: Mult, MultOwn or
// InvMult element by element, stopping at the first error.
func oneAtATime(k *Key, name string, in [][32]byte) ([][32]byte, int, error) {
	out := make([][32]byte, len(in))
	for i := range in {
		var err error
		switch name {
		case "MultBatch":
			err = k.Mult(&out[i], &in[i])
		case "MultOwnBatch":
			err = k.MultOwn(&out[i], &in[i])
		default:
			err = k.InvMult(&out[i], &in[i])
		}
		if err != nil {
			return out[:i], i, err
		}
	}
	return out, 0, nil
}

func batchOf(k *Key, name string) func(out, in [][32]byte) (int, error) {
	switch name {
	case "MultBatch":
		return k.MultBatch
	case "MultOwnBatch":
		return k.MultOwnBatch
	}
	return k.InvMultBatch
}

// TestMultBatch: the batch functions give Mult's, MultOwn's and InvMult's
// results for batches around the group of eight, and, with one element
// they refuse at any position (non-canonical, low order, on the twist),
// the same error at the same index, with the results before it.
func TestMultBatch(t *testing.T) {
	key, err := NewKey(seeded(90))
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"MultBatch", "MultOwnBatch", "InvMultBatch"}
	for _, n := range []int{0, 1, 7, 8, 9, 17} {
		in := batchInputs(n, byte(n))
		for _, name := range names {
			want, _, err := oneAtATime(key, name, in)
			if err != nil {
				t.Fatal(err)
			}
			out := make([][32]byte, n)
			if i, err := batchOf(key, name)(out, in); err != nil {
				t.Fatalf("%s of %d: error at %d: %v", name, n, i, err)
			}
			for i := range out {
				if out[i] != want[i] {
					t.Fatalf("%s of %d, element %d: %x, one at a time %x", name, n, i, out[i], want[i])
				}
			}
			// In place.
			same := append([][32]byte(nil), in...)
			batchOf(key, name)(same, same)
			for i := range same {
				if same[i] != want[i] {
					t.Fatalf("%s of %d in place, element %d differs", name, n, i)
				}
			}
		}
	}
	for _, bad := range invalidElements(t) {
		for _, pos := range []int{0, 5, 7, 8, 12} {
			in := batchInputs(13, byte(pos))
			in[pos] = bad.u
			for _, name := range names {
				want, wantAt, wantErr := oneAtATime(key, name, in)
				out := make([][32]byte, len(in))
				at, err := batchOf(key, name)(out, in)
				if !errors.Is(err, wantErr) || (err != nil && at != wantAt) {
					t.Fatalf("%s, %s at %d: (%d, %v), one at a time (%d, %v)", name, bad.name, pos, at, err, wantAt, wantErr)
				}
				if name != "MultOwnBatch" && err == nil {
					t.Fatalf("%s accepted %s", name, bad.name)
				}
				for i := range want {
					if out[i] != want[i] {
						t.Fatalf("%s, %s at %d: result %d differs", name, bad.name, pos, i)
					}
				}
			}
		}
	}
	key.Erase()
	if _, err := key.MultBatch(make([][32]byte, 3), batchInputs(3, 0)); !errors.Is(err, ErrErased) {
		t.Fatalf("erased key: %v, want ErrErased", err)
	}
}

// TestKeysBatches: BaseMultBatch and MultKeys give what BaseMult and Mult
// give key by key, for batches around the group of eight; an erased key
// and a refused element give Mult's error at Mult's index.
func TestKeysBatches(t *testing.T) {
	r := seeded(94)
	p := batchInputs(1, 9)[0]
	for _, n := range []int{0, 1, 7, 8, 9, 17} {
		keys := make([]*Key, n)
		for i := range keys {
			var err error
			if keys[i], err = NewKey(r); err != nil {
				t.Fatal(err)
			}
		}
		base := make([][32]byte, n)
		BaseMultBatch(base, keys)
		prod := make([][32]byte, n)
		if i, err := MultKeys(prod, &p, keys); err != nil {
			t.Fatalf("MultKeys of %d: error at %d: %v", n, i, err)
		}
		for i, k := range keys {
			var wb, wp [32]byte
			k.BaseMult(&wb)
			if err := k.Mult(&wp, &p); err != nil {
				t.Fatal(err)
			}
			if base[i] != wb || prod[i] != wp {
				t.Fatalf("batch of %d, key %d: BaseMultBatch or MultKeys differs from BaseMult or Mult", n, i)
			}
		}
		if n < 9 {
			continue
		}
		keys[8].Erase()
		BaseMultBatch(base, keys)
		var wb [32]byte
		keys[8].BaseMult(&wb)
		if base[8] != wb {
			t.Fatal("BaseMultBatch of an erased key differs from its BaseMult")
		}
		if i, err := MultKeys(prod, &p, keys); !errors.Is(err, ErrErased) || i != 8 {
			t.Fatalf("MultKeys with key 8 erased: (%d, %v), want (8, ErrErased)", i, err)
		}
	}
	keys := []*Key{}
	for range 3 {
		k, _ := NewKey(r)
		keys = append(keys, k)
	}
	for _, bad := range invalidElements(t) {
		if i, err := MultKeys(make([][32]byte, 3), &bad.u, keys); !errors.Is(err, ErrInvalidElement) || i != 0 {
			t.Fatalf("MultKeys of %s: (%d, %v), want (0, ErrInvalidElement)", bad.name, i, err)
		}
	}
}
