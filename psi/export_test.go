package psi

import (
	"encoding/hex"
	"io"

	"github.com/overlap-psi/overlap/psi/internal/r255"
)

// Test hooks: deterministic randomness for the roles.
func withRand(r io.Reader) func(any) {
	return func(c any) {
		switch c := c.(type) {
		case *ClientConfig:
			c.rand = r
		case *ServerConfig:
			c.rand = r
		case *SetConfig:
			c.rand = r
		}
	}
}

func hexBytes(s string) ([]byte, error) {
	return hex.DecodeString(s)
}

func r255NewElement() *r255.Element { return r255.NewElement() }

// testKey draws a fresh key of suite s, for tests that build an EpochKey
// by hand.
func testKey(s Suite) *gkey {
	k, err := newKey(s, entropy(nil), true)
	if err != nil {
		panic(err)
	}
	return k
}

// FixNoise makes a private-mode server of another test package release
// its true count plus z: the deterministic test-only sampler.
func FixNoise(cfg *PrivateServerConfig, z int64) { cfg.noise = fixedNoise(z) }
