package gcs_test

import (
	"fmt"

	"github.com/overlap-psi/overlap/psi/gcs"
)

// The example of the format in the package documentation.
func ExampleEncode() {
	p := gcs.Params{N: 4, M: 3, K: 1} // F = 12
	values := []gcs.Uint128{{Lo: 1}, {Lo: 1}, {Lo: 6}, {Lo: 11}}

	type chunk struct {
		count int
		data  []byte
	}
	var chunks []chunk
	err := gcs.Encode(p, gcs.DefaultChunkValues, values, func(count int, data []byte) error {
		fmt.Printf("chunk: count %d, data %x\n", count, data)
		chunks = append(chunks, chunk{count, append([]byte(nil), data...)})
		return nil
	})
	if err != nil {
		panic(err)
	}

	d, err := gcs.NewDecoder(p)
	if err != nil {
		panic(err)
	}
	for _, c := range chunks {
		if err := d.Chunk(c.count, c.data, func(v gcs.Uint128) { fmt.Println(v.Lo) }); err != nil {
			panic(err)
		}
	}
	fmt.Println(d.Finish())
	// Output:
	// chunk: count 4, data 4dd0
	// 1
	// 1
	// 6
	// 11
	// <nil>
}

func ExampleChooseParams() {
	// A set of 10^7 tags queried with 10^7 client values, at most 10^-4
	// expected false positives in the whole session.
	p, err := gcs.ChooseParams(1e7, 1e7, 1e-4)
	if err != nil {
		panic(err)
	}
	fmt.Printf("M = %d, K = %d, F = %d·M\n", p.M, p.K, p.N)
	fmt.Printf("%.2f bits/value (optimum %.2f)\n", gcs.ExpectedBits(p), gcs.OptimalBits(p.M))
	// Output:
	// M = 100000000000, K = 36, F = 10000000·M
	// 38.01 bits/value (optimum 38.01)
}
