package service

import (
	"context"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/store"
)

// SetSource is where the server reads the matchable set of each kind
// (Config.Sets). Every store.Store is one; benchmarks and tests supply
// synthetic ones.
type SetSource interface {
	// Snapshot streams the matchable set of kind to fn, each digest
	// (SPEC.md §3.1) once, and returns the snapshot it read: a Version and
	// a Digest that identifies the set's content, so that two snapshots
	// with equal digests hold the same set (SPEC.md §8.5). The order of the
	// digests is free: the server sorts what it encodes (store.Store
	// streams them in ascending order). An error from fn stops it; a
	// snapshot that returns an error was not read. fn must not call back
	// into the source.
	//
	// The Version must name a snapshot the server's store holds: every
	// session's audit row references the snapshot it counted against. A
	// source other than the store records each snapshot it serves with
	// store.Store.RecordSnapshot. (A version the store does not hold fails
	// the session's audit row, and its journal row then holds the
	// advertiser's one session in flight until its lease ends.)
	Snapshot(ctx context.Context, kind psi.Kind, fn func(digest [32]byte) error) (store.SnapshotInfo, error)
}

var _ SetSource = store.Store(nil)

// generationSource is a set source that can tell, with one cheap read,
// whether its sets may have changed since a snapshot: the snapshot's
// Generation equals the current one only if nothing changed
// (store.Store.Generation). The warm pool uses it to skip re-reading the
// set at the start of a session.
type generationSource interface {
	Generation(ctx context.Context) (int64, error)
}

var _ generationSource = store.Store(nil)
