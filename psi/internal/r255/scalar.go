package r255

import (
	"errors"
	"io"

	"filippo.io/edwards25519"
)

// RandomScalar returns a uniformly random non-zero scalar read from rand.
// It draws 64 bytes and reduces them (negligible bias) and retries on zero.
func RandomScalar(rand io.Reader) (*edwards25519.Scalar, error) {
	var buf [64]byte
	zero := edwards25519.NewScalar()
	for range 16 {
		if _, err := io.ReadFull(rand, buf[:]); err != nil {
			return nil, err
		}
		s, err := edwards25519.NewScalar().SetUniformBytes(buf[:])
		clear(buf[:])
		if err != nil {
			return nil, err
		}
		if s.Equal(zero) == 0 {
			return s, nil
		}
	}
	return nil, errors.New("r255: random source returned zero scalars repeatedly")
}

// Erase overwrites s with zero.
func Erase(s *edwards25519.Scalar) {
	if s != nil {
		s.Set(edwards25519.NewScalar())
	}
}
