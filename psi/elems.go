package psi

import "sort"

// defaultBlockShift sets the block size of an elemBlocks: 2^13 elements,
// 256 KiB, the size of one encoding batch.
const defaultBlockShift = 13

// elemBlocks holds a private-mode server set's N encoded elements in blocks
// of a fixed size. One flat slice of 10^7 elements would be copied each
// time it grew, with the old and the new array alive together (about 2.25
// times the set at the last growth), and would stay whole until the last
// element was sent. Blocks grow without copying, and release drops each
// block as soon as the session has sent it.
type elemBlocks struct {
	shift  uint
	blocks [][][32]byte
	n      int
}

func newElemBlocks(shift uint) *elemBlocks {
	if shift == 0 {
		shift = defaultBlockShift
	}
	return &elemBlocks{shift: shift}
}

// Len returns the number of elements.
func (b *elemBlocks) Len() int { return b.n }

// at returns element i.
func (b *elemBlocks) at(i int) *[32]byte {
	return &b.blocks[i>>b.shift][i&(1<<b.shift-1)]
}

// extend adds k zero elements at the end.
func (b *elemBlocks) extend(k int) {
	size := 1 << b.shift
	for b.n+k > len(b.blocks)*size {
		b.blocks = append(b.blocks, make([][32]byte, size))
	}
	b.n += k
}

// truncate keeps the first n elements and drops the blocks past them.
func (b *elemBlocks) truncate(n int) {
	keep := (n + 1<<b.shift - 1) >> b.shift
	clear(b.blocks[keep:])
	b.blocks = b.blocks[:keep]
	b.n = n
}

// release drops the blocks that hold only elements before i. Those
// elements must not be read again.
func (b *elemBlocks) release(i int) {
	for j := range i >> b.shift {
		b.blocks[j] = nil
	}
}

// Less and Swap make b a sort.Interface in the order of compareElems.
func (b *elemBlocks) Less(i, j int) bool { return compareElems(*b.at(i), *b.at(j)) < 0 }
func (b *elemBlocks) Swap(i, j int)      { x, y := b.at(i), b.at(j); *x, *y = *y, *x }

// sortCompact sorts the elements and drops repeats.
func (b *elemBlocks) sortCompact() {
	sort.Sort(b)
	w := 0
	for i := range b.n {
		if w > 0 && *b.at(i) == *b.at(w - 1) {
			continue
		}
		*b.at(w) = *b.at(i)
		w++
	}
	b.truncate(w)
}

// search reports whether e is among the first n elements, which must be
// sorted.
func (b *elemBlocks) search(n int, e [32]byte) bool {
	i := sort.Search(n, func(i int) bool { return compareElems(*b.at(i), e) >= 0 })
	return i < n && *b.at(i) == e
}
