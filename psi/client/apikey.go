package client

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// An API key authenticates an advertiser. It reads
//
//	ovl_<id>_<secret>
//
// where id is 12 lowercase hex digits (6 random bytes) that name the key in
// the store, in logs and in the admin commands, and secret is 32 random bytes
// in lowercase unpadded base32. The store keeps the id and SHA-256 of the
// whole key, never the key: a key with 256 bits of entropy cannot be guessed
// from its hash, so it needs no slow password hash (bcrypt, Argon2), which
// exists to protect low-entropy human passwords.
type APIKey struct {
	ID     string
	secret string
}

const (
	apiKeyPrefix   = "ovl_"
	apiKeyIDBytes  = 6
	apiKeySecBytes = 32
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewAPIKey draws a fresh key from crypto/rand.
func NewAPIKey() (APIKey, error) { return newAPIKey(rand.Reader) }

func newAPIKey(r io.Reader) (APIKey, error) {
	var id [apiKeyIDBytes]byte
	var sec [apiKeySecBytes]byte
	if _, err := io.ReadFull(r, id[:]); err != nil {
		return APIKey{}, fmt.Errorf("client: generating an API key: %w", err)
	}
	if _, err := io.ReadFull(r, sec[:]); err != nil {
		return APIKey{}, fmt.Errorf("client: generating an API key: %w", err)
	}
	return APIKey{ID: hex.EncodeToString(id[:]), secret: strings.ToLower(b32.EncodeToString(sec[:]))}, nil
}

// ErrAPIKeyFormat reports a string that is not an API key.
var ErrAPIKeyFormat = errors.New("client: malformed API key (want ovl_<id>_<secret>)")

// ParseAPIKey parses a key as NewAPIKey prints it.
func ParseAPIKey(s string) (APIKey, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), apiKeyPrefix)
	if !ok {
		return APIKey{}, ErrAPIKeyFormat
	}
	id, sec, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 2*apiKeyIDBytes || !isLowerHex(id) {
		return APIKey{}, ErrAPIKeyFormat
	}
	raw, err := b32.DecodeString(strings.ToUpper(sec))
	if err != nil || len(raw) != apiKeySecBytes || strings.ToLower(b32.EncodeToString(raw)) != sec {
		return APIKey{}, ErrAPIKeyFormat
	}
	return APIKey{ID: id, secret: sec}, nil
}

func isLowerHex(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Reveal returns the whole key, secret included. Print it once, to the
// person who created it.
func (k APIKey) Reveal() string { return apiKeyPrefix + k.ID + "_" + k.secret }

// Hash returns SHA-256 of the whole key, what the store keeps.
func (k APIKey) Hash() [32]byte { return sha256.Sum256([]byte(k.Reveal())) }

// Matches reports, in constant time, whether k hashes to h.
func (k APIKey) Matches(h []byte) bool {
	sum := k.Hash()
	return subtle.ConstantTimeCompare(sum[:], h) == 1
}

// String prints the key's id only.
func (k APIKey) String() string { return apiKeyPrefix + k.ID + "_[redacted]" }

// GoString is String, so %#v does not print the secret either.
func (k APIKey) GoString() string { return k.String() }

// Format prints String for every verb.
func (k APIKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }
