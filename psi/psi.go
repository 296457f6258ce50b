// Package psi implements the Overlap private set intersection cardinality
// protocol: an advertiser (the client) learns how many of its identifiers an
// ad platform (the server) also holds, and nothing else about the platform's
// set; the platform learns only the size of the advertiser's list. The
// protocol is specified in SPEC.md at the root of this repository.
//
// Exact mode (SPEC.md §4), where the client counts:
//
//	Client (list X, key a)                    Server (set Y, key b, salt)
//	─────────────────────                     ───────────────────────────
//	ClientHello{kind, |X|}          ───────▶
//	                                ◀───────  ServerParams{session, salt, N, M, K}
//	BlindedChunk…  H(x)^a for x ∈ X ───────▶
//	                                          multiply by b, check, shuffle
//	                                ◀───────  EvaluatedChunk…  H(x)^ab, shuffled
//	                                ◀───────  ServerSetChunk…  GCS of tag(H(y)^b),
//	                                                           y ∈ Y, padded to N
//	unblind: H(x)^b = (H(x)^ab)^(1/a)
//	count tags found in the set
//
// What each party learns in exact mode: the client learns |X ∩ Y| and N, the
// size of Y rounded up to a public bucket (SPEC.md §4.5); the server learns
// |X|. Since the client chooses X, an exact count is a membership test of
// what X holds, and a client that deviates from the protocol learns which of
// its elements matched (SPEC.md §8.2). Private mode (SPEC.md §10,
// [PrivateClient] and [PrivateServer]), where the server counts and releases
// a differentially private count, is the mode that holds against such a
// client.
//
// The package does no I/O: the roles consume and produce the messages of
// package wire, and a transport moves them. Both roles work chunk by chunk,
// so neither holds a whole peer message twice, and they spread scalar
// multiplications over a worker pool sized to GOMAXPROCS.
package psi

//go:generate go run -tags overlap_vectors vectors_gen.go

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/overlap-psi/overlap/psi/internal/r255"
	"github.com/overlap-psi/overlap/psi/wire"
)

// Version is the protocol version (SPEC.md §5.1).
const Version = wire.Version

// DefaultFalsePositive is the default bound on the expected number of false
// matches in a whole session (SPEC.md §6.3).
const DefaultFalsePositive = 1e-6

// DefaultChunkSize is the default number of elements per element chunk.
const DefaultChunkSize = 4096

// DST returns the hash-to-group domain-separation tag for identifiers of
// kind k (SPEC.md §3.2).
func DST(k Kind) []byte {
	return []byte("OVERLAP-V1-" + k.String() + "-ristretto255_XMD:SHA-512_R255MAP_RO_")
}

// Errors a caller may branch on. They are wrapped with detail.
var (
	// ErrPeer reports a message from the peer that breaks the protocol: a
	// bad element, a duplicate, a size that disagrees with what was
	// announced. The session is over.
	ErrPeer = errors.New("psi: peer message rejected")
	// ErrParams reports session parameters this side does not accept.
	ErrParams = errors.New("psi: session parameters rejected")
	// ErrState reports a call out of protocol order, or on a finished or
	// failed session.
	ErrState = errors.New("psi: call out of protocol order")
	// ErrUsed reports a second use of a single-use value (SPEC.md §4.6).
	ErrUsed = errors.New("psi: single-use value already used")
)

var hashers = func() map[Kind]*r255.Hasher {
	m := make(map[Kind]*r255.Hasher)
	for _, k := range Kinds {
		m[k] = r255.NewHasher(DST(k))
	}
	return m
}()

func hasher(k Kind) (*r255.Hasher, error) {
	h, ok := hashers[k]
	if !ok {
		return nil, fmt.Errorf("%w: unknown identifier kind %d", ErrParams, uint8(k))
	}
	return h, nil
}

func workerCount(n int) int {
	if n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// parallel runs fn over [0, n) split into blocks that at most workers
// goroutines take in turn, so a slow worker does not hold the others up, and
// returns the first error.
func parallel(n, workers int, fn func(lo, hi int) error) error {
	if n == 0 {
		return nil
	}
	// A multiple of 8: suite 2 multiplies eight elements at a time.
	block := (max(16, n/(8*max(workers, 1))) + 7) &^ 7
	workers = min(workers, (n+block-1)/block)
	if workers <= 1 {
		return fn(0, n)
	}
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		once  sync.Once
		first error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(int64(block))) - block
				if lo >= n {
					return
				}
				if err := fn(lo, min(lo+block, n)); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
