package psi

import (
	mrand "math/rand/v2"
	"slices"
	"testing"
)

// all copies the elements out, for tests.
func (b *elemBlocks) all() [][32]byte {
	out := make([][32]byte, b.n)
	for i := range out {
		out[i] = *b.at(i)
	}
	return out
}

func elemOf(v uint16) (e [32]byte) {
	e[0], e[31] = byte(v>>8), byte(v)
	return e
}

// The blocks behave as one slice: sorting and dropping repeats across
// block boundaries, searching, and releasing what was read.
func TestElemBlocks(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 3, 4, 5, 17, 64, 1000} {
		b := newElemBlocks(2) // 4 elements a block
		var want [][32]byte
		b.extend(n)
		for i := range n {
			e := elemOf(uint16(rng.IntN(n/2 + 1))) // many repeats
			*b.at(i) = e
			want = append(want, e)
		}
		if b.Len() != n || len(b.blocks) != (n+3)/4 {
			t.Fatalf("n=%d: Len %d with %d blocks", n, b.Len(), len(b.blocks))
		}
		b.sortCompact()
		slices.SortFunc(want, compareElems)
		want = slices.Compact(want)
		if got := b.all(); !slices.Equal(got, want) {
			t.Fatalf("n=%d: sorted and compacted to %d elements, want %d", n, len(got), len(want))
		}
		if len(b.blocks) != (len(want)+3)/4 {
			t.Errorf("n=%d: %d blocks kept for %d elements", n, len(b.blocks), len(want))
		}
		for v := range n/2 + 2 {
			if got, want := b.search(b.Len(), elemOf(uint16(v))), slices.Contains(want, elemOf(uint16(v))); got != want {
				t.Errorf("n=%d: search(%d) = %v, want %v", n, v, got, want)
			}
		}
		// Releasing the first i elements drops exactly the blocks before i.
		i := b.Len() / 2
		b.release(i)
		for j, blk := range b.blocks {
			if (blk == nil) != (j < i/4) {
				t.Errorf("n=%d: after release(%d), block %d nil = %v", n, i, j, blk == nil)
			}
		}
		for j := i &^ 3; j < b.Len(); j++ {
			if *b.at(j) != want[j] {
				t.Fatalf("n=%d: element %d changed by release(%d)", n, j, i)
			}
		}
		b.truncate(0)
		if b.Len() != 0 || len(b.blocks) != 0 {
			t.Errorf("n=%d: truncate(0) left %d elements in %d blocks", n, b.Len(), len(b.blocks))
		}
	}
}

// The server drops each block of its set once the block is sent, and holds
// none of the set after the last chunk.
func TestPrivateServerReleasesSentElements(t *testing.T) {
	_, server := sets(mrand.New(mrand.NewPCG(3, 4)), 0, 100, 0)
	set := preparePrivate(t, KindEmail, server, 20, unpadded) // 120 elements, 15 blocks
	c := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail}, server[:5]))
	s := must(NewPrivateServer(PrivateServerConfig{ChunkSize: 20}, set))
	if _, err := s.ReceiveHello(c.Hello()); err != nil {
		t.Fatal(err)
	}
	for sent := 20; ; sent += 20 {
		_, ok, err := s.NextServerElements()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		for j, blk := range set.elems.blocks {
			if (blk == nil) != (j < sent/8) {
				t.Fatalf("after %d elements sent, block %d nil = %v", sent, j, blk == nil)
			}
		}
	}
	if set.elems.Len() != 0 || len(set.elems.blocks) != 0 {
		t.Errorf("after the last chunk the set still holds %d elements", set.elems.Len())
	}
}
