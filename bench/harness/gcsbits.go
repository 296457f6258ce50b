package harness

import "github.com/overlap-psi/overlap/psi/gcs"

func optimumBits(m uint64) float64 { return gcs.OptimalBits(m) }
