//go:build ignore

// fe8_gen writes fe8_amd64.s: multiplication and repeated squaring of eight
// field elements at once (type fe8) with AVX-512 IFMA. Run it with
// go generate in this directory.
//
// The arithmetic, for every lane independently. An element is five limbs
// a0..a4 in radix 2^51, each below 2^52 (a bit of slack over 2^51, so that
// a carry that is not propagated twice still fits). VPMADD52LUQ and
// VPMADD52HUQ add the low and the high 52 bits of the 104-bit product of
// the low 52 bits of two lanes: ai·bj = L + H·2^52 with L, H < 2^52, and
// since limb k weighs 2^(51k), L lands in column i+j and 2H in column
// i+j+1. So the product is c_k = lo_k + 2·hi_k, where lo_k sums the L of
// column k and hi_k the H of column k-1. With at most 5 terms in a column,
// c_k < 15·2^52 < 2^56. Columns 5..9 fold into 0..4 with 2^255 = 19
// (mod p): r_k = c_k + 19·c_(k+5) < 20·2^56 < 2^61. One carry step, all
// limbs at once, gives out_k = (r_k mod 2^51) + (r_(k-1) >> 51) for k ≥ 1
// and out_0 = (r_0 mod 2^51) + 19·(r_4 >> 51): the carries are below 2^11,
// 19 times one below 2^16, so every limb is below 2^51 + 2^16 < 2^52 again
// and the result can be multiplied in turn.
//
// A square adds each product ai·aj with i < j once, at twice the weight:
// its L at weight 2 (in the hi accumulator of its column) and its H at
// weight 4 (in an accumulator q of its own), so that c_k = lo_k + 2·(hi_k +
// 2·q_k). At most one term sits in lo_k, three in hi_k and two in q_k:
// c_k < (1 + 6 + 8)·2^52 < 2^56, the same bounds as the product.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
)

var b bytes.Buffer

func ins(format string, args ...any) { fmt.Fprintf(&b, "\t"+format+"\n", args...) }

func z(n int) string { return fmt.Sprintf("Z%d", n) }

// Registers: the input limbs in Z0..Z4 (and Z5..Z9 for the second factor),
// the constants 2^51-1 in Z28 and 19 in Z29. The result goes to Z0..Z4.
const (
	mask = "Z28"
	n19  = "Z29"
)

// reduce folds and carries the ten columns c(0..9) into Z0..Z4, using the
// registers of c(5..9) as scratch.
func reduce(c func(k int) string) {
	for k := range 5 {
		ins("VPMULLQ %s, %s, %s", n19, c(k+5), c(k+5))
		ins("VPADDQ %s, %s, %s", c(k+5), c(k), c(k))
	}
	for k := range 5 {
		ins("VPSRLQ $51, %s, %s", c(k), c(k+5))
	}
	for k := range 5 {
		ins("VPANDQ %s, %s, %s", mask, c(k), c(k))
	}
	ins("VPMULLQ %s, %s, %s", n19, c(9), c(9))
	ins("VPADDQ %s, %s, Z0", c(9), c(0))
	for k := 1; k < 5; k++ {
		ins("VPADDQ %s, %s, %s", c(k+4), c(k), z(k))
	}
}

// mul multiplies Z0..Z4 by Z5..Z9 into Z0..Z4. lo_k is Z(10+k), k = 0..8;
// hi_k is Z(18+k), k = 1..9.
func mul() {
	for r := 10; r <= 27; r++ {
		ins("VPXORQ %s, %s, %s", z(r), z(r), z(r))
	}
	for i := range 5 {
		for j := range 5 {
			ins("VPMADD52LUQ %s, %s, %s", z(5+j), z(i), z(10+i+j))
			ins("VPMADD52HUQ %s, %s, %s", z(5+j), z(i), z(18+i+j+1))
		}
	}
	for k := 1; k <= 9; k++ {
		ins("VPSLLQ $1, %s, %s", z(18+k), z(18+k))
		if k <= 8 {
			ins("VPADDQ %s, %s, %s", z(18+k), z(10+k), z(10+k))
		}
	}
	reduce(func(k int) string {
		if k == 9 {
			return z(27)
		}
		return z(10 + k)
	})
}

// sqr squares Z0..Z4 into Z0..Z4. lo_k (k even) is Z(10+k); hi_k is
// Z(18+k), k = 1..9; q_k, k = 2..8, is in qReg.
var qReg = map[int]string{2: "Z5", 3: "Z6", 4: "Z7", 5: "Z8", 6: "Z9", 7: "Z11", 8: "Z13"}

func sqr() {
	for k := 0; k <= 8; k += 2 {
		ins("VPXORQ %s, %s, %s", z(10+k), z(10+k), z(10+k))
	}
	for k := 1; k <= 9; k++ {
		ins("VPXORQ %s, %s, %s", z(18+k), z(18+k), z(18+k))
	}
	for k := 2; k <= 8; k++ {
		ins("VPXORQ %s, %s, %s", qReg[k], qReg[k], qReg[k])
	}
	for i := range 5 {
		ins("VPMADD52LUQ %s, %s, %s", z(i), z(i), z(10+2*i))
		ins("VPMADD52HUQ %s, %s, %s", z(i), z(i), z(18+2*i+1))
		for j := i + 1; j < 5; j++ {
			ins("VPMADD52LUQ %s, %s, %s", z(j), z(i), z(18+i+j))
			ins("VPMADD52HUQ %s, %s, %s", z(j), z(i), qReg[i+j+1])
		}
	}
	for k := 2; k <= 8; k++ {
		ins("VPSLLQ $1, %s, %s", qReg[k], qReg[k])
		ins("VPADDQ %s, %s, %s", qReg[k], z(18+k), z(18+k))
	}
	for k := 1; k <= 9; k++ {
		ins("VPSLLQ $1, %s, %s", z(18+k), z(18+k))
	}
	for k := 2; k <= 8; k += 2 {
		ins("VPADDQ %s, %s, %s", z(10+k), z(18+k), z(18+k))
	}
	reduce(func(k int) string {
		if k == 0 {
			return z(10)
		}
		return z(18 + k)
	})
}

func constants() {
	ins("MOVQ $0x7ffffffffffff, AX")
	ins("VPBROADCASTQ AX, %s", mask)
	ins("MOVQ $19, AX")
	ins("VPBROADCASTQ AX, %s", n19)
}

func load(ptr string, first int) {
	for i := range 5 {
		ins("VMOVDQU64 %d(%s), %s", 64*i, ptr, z(first+i))
	}
}

func store(ptr string) {
	for i := range 5 {
		ins("VMOVDQU64 Z%d, %d(%s)", i, 64*i, ptr)
	}
}

// The ladder's state, in memory: the offsets of the fields of ladderState
// (fe8 values of 320 bytes each), in their order there.
var ladderFields = []string{"x1", "x2", "z2", "x3", "z3", "a24", "A", "AA", "B", "BB", "E", "C", "D", "DA", "CB", "T"}

func off(name string) int {
	for i, f := range ladderFields {
		if f == name {
			return 320 * i
		}
	}
	panic("no field " + name)
}

func loadM(name string, first int) {
	for i := range 5 {
		ins("VMOVDQU64 %d(DI), %s", off(name)+64*i, z(first+i))
	}
}

func storeM(name string) {
	for i := range 5 {
		ins("VMOVDQU64 Z%d, %d(DI)", i, off(name)+64*i)
	}
}

// carry brings the limbs of Z0..Z4, each below 2^54, below 2^52 with one
// parallel carry step (scratch Z10..Z14): the carries are below 2^3, and
// 19 times the top one below 2^8.
func carry() {
	for k := range 5 {
		ins("VPSRLQ $51, %s, %s", z(k), z(10+k))
	}
	for k := range 5 {
		ins("VPANDQ %s, %s, %s", mask, z(k), z(k))
	}
	ins("VPMULLQ %s, Z14, Z14", n19)
	ins("VPADDQ Z14, Z0, Z0")
	for k := 1; k < 5; k++ {
		ins("VPADDQ %s, %s, %s", z(10+k-1), z(k), z(k))
	}
}

func opMul(dst, a, b string) {
	loadM(a, 0)
	loadM(b, 5)
	mul()
	storeM(dst)
}

func opSqr(dst, a string) {
	loadM(a, 0)
	sqr()
	storeM(dst)
}

func opAdd(dst, a, b string) {
	loadM(a, 0)
	loadM(b, 5)
	for k := range 5 {
		ins("VPADDQ %s, %s, %s", z(5+k), z(k), z(k))
	}
	carry()
	storeM(dst)
}

// opSub computes a + 4p - b, whose limbs are positive (those of 4p, in
// Z30 for limb 0 and Z31 for the others, are at least 2^53 - 76, and b's
// below 2^52) and below 2^54.
func opSub(dst, a, b string) {
	loadM(a, 0)
	loadM(b, 5)
	ins("VPADDQ Z30, Z0, Z0")
	for k := 1; k < 5; k++ {
		ins("VPADDQ Z31, %s, %s", z(k), z(k))
	}
	for k := range 5 {
		ins("VPSUBQ %s, %s, %s", z(5+k), z(k), z(k))
	}
	carry()
	storeM(dst)
}

// cswap swaps a and b in the lanes where the mask in Z10 is all ones, and
// leaves them where it is zero.
func cswap(a, b string) {
	for i := range 5 {
		ins("VMOVDQU64 %d(DI), Z0", off(a)+64*i)
		ins("VMOVDQU64 %d(DI), Z1", off(b)+64*i)
		ins("VPXORQ Z0, Z1, Z2")
		ins("VPANDQ Z10, Z2, Z2")
		ins("VPXORQ Z2, Z0, Z0")
		ins("VPXORQ Z2, Z1, Z1")
		ins("VMOVDQU64 Z0, %d(DI)", off(a)+64*i)
		ins("VMOVDQU64 Z1, %d(DI)", off(b)+64*i)
	}
}

// ladder is the Montgomery ladder of RFC 7748 §5 over bits 254 down to 0,
// a scalar per lane. The scalars come as swap masks, computed in Go: at
// SI + 64·t, for t = 254 down to 0, the mask of each lane that is all ones
// where the ladder swaps before step t (bit t of its scalar differs from
// bit t+1, bit 255 taken as 0), and at SI + 64·255 the mask of the final
// swap (bit 0). R10 is t.
func ladder() {
	ins("MOVQ st+0(FP), DI")
	ins("MOVQ masks+8(FP), SI")
	constants()
	ins("MOVQ $0x1fffffffffffb4, AX") // 4p, limb 0: 2^53 - 76
	ins("VPBROADCASTQ AX, Z30")
	ins("MOVQ $0x1ffffffffffffc, AX") // 4p, limbs 1-4: 2^53 - 4
	ins("VPBROADCASTQ AX, Z31")
	ins("MOVQ $254, R10")
	b.WriteString("step:\n")
	ins("MOVQ R10, AX")
	ins("SHLQ $6, AX")
	ins("VMOVDQU64 (SI)(AX*1), Z10")
	cswap("x2", "x3")
	cswap("z2", "z3")
	opAdd("A", "x2", "z2")
	opSqr("AA", "A")
	opSub("B", "x2", "z2")
	opSqr("BB", "B")
	opSub("E", "AA", "BB")
	opAdd("C", "x3", "z3")
	opSub("D", "x3", "z3")
	opMul("DA", "D", "A")
	opMul("CB", "C", "B")
	opAdd("T", "DA", "CB")
	opSqr("x3", "T")
	opSub("T", "DA", "CB")
	opSqr("T", "T")
	opMul("z3", "x1", "T")
	opMul("x2", "AA", "BB")
	opMul("T", "a24", "E")
	opAdd("T", "AA", "T")
	opMul("z2", "E", "T")
	ins("DECQ R10")
	ins("JGE step")
	ins("VMOVDQU64 %d(SI), Z10", 64*255)
	cswap("x2", "x3")
	cswap("z2", "z3")
	ins("VZEROUPPER")
	ins("RET")
}

func main() {
	out := flag.String("out", "fe8_amd64.s", "output file")
	flag.Parse()

	b.WriteString("// Code generated by fe8_gen.go. DO NOT EDIT.\n\n//go:build !purego\n\n#include \"textflag.h\"\n\n")

	b.WriteString("// func mul8(out, a, b *fe8)\n")
	b.WriteString("TEXT ·mul8(SB), NOSPLIT, $0-24\n")
	ins("MOVQ out+0(FP), DI")
	ins("MOVQ a+8(FP), SI")
	ins("MOVQ b+16(FP), DX")
	constants()
	load("SI", 0)
	load("DX", 5)
	mul()
	store("DI")
	ins("VZEROUPPER")
	ins("RET")

	b.WriteString("\n// func sqr8(out, a *fe8, n int)\n")
	b.WriteString("TEXT ·sqr8(SB), NOSPLIT, $0-24\n")
	ins("MOVQ out+0(FP), DI")
	ins("MOVQ a+8(FP), SI")
	ins("MOVQ n+16(FP), CX")
	constants()
	load("SI", 0)
	b.WriteString("loop:\n")
	sqr()
	ins("DECQ CX")
	ins("JNZ loop")
	store("DI")
	ins("VZEROUPPER")
	ins("RET")

	b.WriteString("\n// func ladder8(st *ladderState, masks *[256][8]uint64)\n")
	b.WriteString("TEXT ·ladder8(SB), NOSPLIT, $0-16\n")
	ladder()

	if err := os.WriteFile(*out, b.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
