//go:build !amd64 || purego

package c25519

import (
	"filippo.io/edwards25519/field"
	"github.com/cloudflare/circl/dh/x25519"
)

// hasVector and useVector: there is no vector code for this platform.
const hasVector, useVector = false, false

// pow22523x8 sets out[j] = in[j]^((p-5)/8) for j < n (n ≤ 8), as
// field.Element.Pow22523 does; out may alias in.
func pow22523x8(out, in *[8]field.Element, n int) { pow22523x8Generic(out, in, n) }

// multGroup reports false: without the vector unit, batches go one
// element at a time.
func multGroup(out, in [][32]byte, s *x25519.Key, c checks) bool { return false }

// keysGroup reports false: without the vector unit, batches go one key at
// a time.
func keysGroup(out [][32]byte, in *[32]byte, keys []*Key) bool { return false }
