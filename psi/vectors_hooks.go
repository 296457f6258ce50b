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

// VectorPrivateClientConfig returns cfg drawing its randomness from
// ChaCha8(seed).
func VectorPrivateClientConfig(cfg PrivateClientConfig, seed [32]byte) PrivateClientConfig {
	cfg.rand = mrand.NewChaCha8(seed)
	return cfg
}

// VectorPrivateServerConfig returns cfg drawing its randomness (the session
// id, then the noise) from ChaCha8(seed).
func VectorPrivateServerConfig(cfg PrivateServerConfig, seed [32]byte) PrivateServerConfig {
	cfg.rand = mrand.NewChaCha8(seed)
	return cfg
}

// VectorPrivateSetConfig returns cfg drawing its randomness from
// ChaCha8(seed).
func VectorPrivateSetConfig(cfg PrivateSetConfig, seed [32]byte) PrivateSetConfig {
	cfg.rand = mrand.NewChaCha8(seed)
	return cfg
}

// VectorEpochSetupConfig returns cfg drawing its randomness (the epoch id)
// from ChaCha8(seed).
func VectorEpochSetupConfig(cfg EpochSetupConfig, seed [32]byte) EpochSetupConfig {
	cfg.rand = mrand.NewChaCha8(seed)
	return cfg
}

// VectorEpochSetupClientConfig returns cfg drawing its randomness (the
// epoch key) from ChaCha8(seed).
func VectorEpochSetupClientConfig(cfg EpochSetupClientConfig, seed [32]byte) EpochSetupClientConfig {
	cfg.rand = mrand.NewChaCha8(seed)
	return cfg
}
