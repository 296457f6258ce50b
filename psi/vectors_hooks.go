//go:build overlap_vectors

package psi

import mrand "math/rand/v2"

// This file exists only in builds with the overlap_vectors tag, which only
// the vector generator (vectors_gen.go) uses: production builds have no way
// to fix a key, salt or shuffle.

// VectorClientConfig returns cfg drawing its randomness from ChaCha8(seed).
func VectorClientConfig(cfg ClientConfig, seed [32]byte) ClientConfig {
	cfg.rand = mrand.NewChaCha8(seed)
	return cfg
}

// VectorServerConfig returns cfg drawing its randomness from ChaCha8(seed).
func VectorServerConfig(cfg ServerConfig, seed [32]byte) ServerConfig {
	cfg.rand = mrand.NewChaCha8(seed)
	return cfg
}

// VectorSetConfig returns cfg drawing its randomness from ChaCha8(seed).
func VectorSetConfig(cfg SetConfig, seed [32]byte) SetConfig {
	cfg.rand = mrand.NewChaCha8(seed)
	return cfg
}
