package service

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/store"
	"golang.org/x/sync/semaphore"
)

// The warm pool keeps prepared exact-mode sets ready ahead of sessions, so
// that a session's time depends on the client's list and not on the
// server's set (SPEC.md §4.4; SECURITY.md, "What every side checks"):
//
//   - each entry is a psi.PreparedSet with its own fresh key and salt, made
//     by psi.NewSet exactly as a cold session makes its own;
//   - an entry serves one session: the session takes it out of the pool,
//     and psi.Server destroys it when the session ends; nothing is ever put
//     back;
//   - every entry remembers the snapshot it was built from, and a session
//     takes it only if that snapshot is still the current set: the source's
//     ledger generation has not moved since (store.Store.Generation, one
//     single-row read; the session then records the entry's snapshot), or
//     a fresh snapshot, read when the session starts, has the same digest.
//     Otherwise the session prepares its set cold, and every entry of the
//     kind built from another snapshot is destroyed;
//   - Shutdown and Close stop the pool and destroy its entries.
//
// One goroutine per kind refills the pool. It holds its share of the CPU
// semaphore (the workers of one session) while it encodes, and only while
// the sessions in flight leave it room: with Workers = SessionWorkers (the
// default), it pauses whenever a session is in flight, at the next batch of
// poolYieldEvery digests, so precomputation uses idle time and never slows
// a session down by more than the batch then being encoded.

// poolYieldEvery is how many digests a refill adds between checks whether
// sessions need the workers (psi encodes a set in batches of this size).
const poolYieldEvery = 1 << 13

// poolPoll is how often a paused refill looks whether it may go on.
const poolPoll = 20 * time.Millisecond

type pool struct {
	env    poolEnv
	size   int
	kinds  []*kindPool // one per pooled kind and suite
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	hits, misses, discarded atomic.Int64
}

// kindPool is the pool of one kind in one suite.
type kindPool struct {
	kind    psi.Kind
	suite   psi.Suite
	mu      sync.Mutex
	entries []poolEntry
	latest  store.SnapshotInfo // the newest snapshot seen for the kind
	seen    bool
	closed  bool
	wake    chan struct{} // the refill goroutine's doorbell, buffered
	changed chan struct{} // closed and replaced when entries change
}

type poolEntry struct {
	set  *psi.PreparedSet
	snap store.SnapshotInfo
}

// poolEnv is what the pool needs from the server it fills: an encoder of
// fresh single-use sets, the set source it checks them against, the
// workers it shares with sessions, and metrics and log.
type poolEnv struct {
	// encode encodes the matchable set of kind from a fresh snapshot;
	// before runs before each digest is added (Server.encodeSet).
	encode func(ctx context.Context, kind psi.Kind, suite psi.Suite, before func() error) (*psi.PreparedSet, store.SnapshotInfo, error)
	sets   SetSource
	cpu    *semaphore.Weighted // the workers of all sessions
	share  int64               // a session's share of them
	// mayRun reports whether a refill may hold a share beside the
	// sessions in flight.
	mayRun func() bool
	met    *metrics
	log    *slog.Logger
}

// newPool returns a pool of size sets per kind and suite, or nil when size
// is 0. Its goroutines start with start.
func newPool(env poolEnv, size int, kinds []psi.Kind, suites []psi.Suite) *pool {
	if size == 0 {
		return nil
	}
	p := &pool{env: env, size: size}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	for _, su := range suites {
		for _, k := range kinds {
			p.kinds = append(p.kinds, &kindPool{kind: k, suite: su, wake: make(chan struct{}, 1), changed: make(chan struct{})})
		}
	}
	return p
}

// ready sets the gauge of kp's entries.
func (p *pool) ready(kp *kindPool, n int) {
	p.env.met.poolReady.WithLabelValues(kp.kind.String(), kp.suite.String()).Set(float64(n))
}

func (p *pool) start() {
	if p == nil {
		return
	}
	for _, kp := range p.kinds {
		p.ready(kp, 0)
		p.wg.Add(1)
		go p.refill(kp)
	}
}

// stop ends the refills, waits for them and destroys every entry. It is
// idempotent.
func (p *pool) stop() {
	if p == nil {
		return
	}
	p.once.Do(func() {
		p.cancel()
		p.wg.Wait()
		for _, kp := range p.kinds {
			kp.mu.Lock()
			kp.closed = true
			for _, e := range kp.entries {
				e.set.Destroy()
			}
			kp.entries = nil
			p.changedLocked(kp)
			kp.mu.Unlock()
		}
	})
}

func (p *pool) of(kind psi.Kind, suite psi.Suite) *kindPool {
	if p == nil {
		return nil
	}
	for _, kp := range p.kinds {
		if kp.kind == kind && kp.suite == suite {
			return kp
		}
	}
	return nil
}

// warm returns a pooled set for a session of kind in suite and the fresh
// snapshot the session uses, or ok == false when the session must prepare
// its set cold: the kind or the suite is not pooled (Config.PoolSuites),
// the pool is empty, or its entries came from another snapshot (they are
// then destroyed).
func (p *pool) warm(ctx context.Context, kind psi.Kind, suite psi.Suite) (set *psi.PreparedSet, snap store.SnapshotInfo, ok bool, err error) {
	kp := p.of(kind, suite)
	if kp == nil {
		return nil, snap, false, nil
	}
	kp.mu.Lock()
	empty := len(kp.entries) == 0
	kp.mu.Unlock()
	if empty {
		p.miss()
		return nil, snap, false, nil
	}
	// The session must use the set the current consent state defines, and
	// record which snapshot that was. When the source has a ledger
	// generation (a store.Store has) and it has not moved since an entry's
	// snapshot, that snapshot is still the current set: one single-row
	// read instead of the whole set.
	if gs, ok := p.env.sets.(generationSource); ok {
		g, err := gs.Generation(ctx)
		if err != nil {
			return nil, store.SnapshotInfo{}, false, err
		}
		if set, snap, ok := p.takeCurrent(kp, g); ok {
			return set, snap, true, nil
		}
	}
	// A fresh snapshot, streamed without hashing.
	snap, err = p.env.sets.Snapshot(ctx, kind, func([32]byte) error { return nil })
	if err != nil {
		return nil, store.SnapshotInfo{}, false, err
	}
	kp.mu.Lock()
	defer kp.mu.Unlock()
	p.seeLocked(kp, snap)
	defer p.wakeLocked(kp)
	for i, e := range kp.entries {
		if e.snap.Digest == snap.Digest {
			kp.entries = slices.Delete(kp.entries, i, i+1)
			p.changedLocked(kp)
			p.hits.Add(1)
			p.env.met.poolHits.Inc()
			return e.set, snap, true, nil
		}
	}
	p.miss()
	return nil, snap, false, nil
}

// takeCurrent takes an entry whose snapshot saw ledger generation g, the
// current one, if there is such an entry.
func (p *pool) takeCurrent(kp *kindPool, g int64) (*psi.PreparedSet, store.SnapshotInfo, bool) {
	if g == 0 {
		return nil, store.SnapshotInfo{}, false // no generation recorded (or an empty ledger)
	}
	kp.mu.Lock()
	defer kp.mu.Unlock()
	for i, e := range kp.entries {
		if e.snap.Generation == g {
			kp.entries = slices.Delete(kp.entries, i, i+1)
			p.changedLocked(kp)
			p.wakeLocked(kp)
			p.hits.Add(1)
			p.env.met.poolHits.Inc()
			return e.set, e.snap, true
		}
	}
	return nil, store.SnapshotInfo{}, false
}

func (p *pool) miss() {
	p.misses.Add(1)
	p.env.met.poolMisses.Inc()
}

// observe tells the pool of a snapshot a cold session read, so that entries
// of the kind, in every suite, from an older one are dropped and the
// refills use the new one.
func (p *pool) observe(kind psi.Kind, snap store.SnapshotInfo) {
	if p == nil {
		return
	}
	for _, kp := range p.kinds {
		if kp.kind != kind {
			continue
		}
		kp.mu.Lock()
		p.seeLocked(kp, snap)
		p.wakeLocked(kp)
		kp.mu.Unlock()
	}
}

// seeLocked records snap as the kind's latest snapshot unless a newer one
// was seen, and destroys the entries it supersedes. It reports whether snap
// is the latest.
func (p *pool) seeLocked(kp *kindPool, snap store.SnapshotInfo) bool {
	if kp.seen && snap.Version < kp.latest.Version {
		return false
	}
	kp.latest, kp.seen = snap, true
	kept := kp.entries[:0]
	for _, e := range kp.entries {
		if e.snap.Digest == snap.Digest {
			kept = append(kept, e)
			continue
		}
		e.set.Destroy()
		p.discarded.Add(1)
		p.env.met.poolDiscarded.Inc()
	}
	clear(kp.entries[len(kept):])
	if len(kept) != len(kp.entries) {
		kp.entries = kept
		p.changedLocked(kp)
	}
	return true
}

// offer adds a freshly prepared set, unless the pool is stopped or its
// snapshot was superseded while it was built.
func (p *pool) offer(kp *kindPool, set *psi.PreparedSet, snap store.SnapshotInfo) {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	if kp.closed {
		set.Destroy()
		return
	}
	if !p.seeLocked(kp, snap) && snap.Digest != kp.latest.Digest {
		set.Destroy()
		p.discarded.Add(1)
		p.env.met.poolDiscarded.Inc()
		return
	}
	kp.entries = append(kp.entries, poolEntry{set: set, snap: snap})
	p.changedLocked(kp)
}

func (p *pool) changedLocked(kp *kindPool) {
	close(kp.changed)
	kp.changed = make(chan struct{})
	p.ready(kp, len(kp.entries))
}

func (p *pool) wakeLocked(kp *kindPool) {
	select {
	case kp.wake <- struct{}{}:
	default:
	}
}

func (p *pool) needs(kp *kindPool) bool {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	return !kp.closed && len(kp.entries) < p.size
}

// refill keeps the pool of one kind full until the pool stops.
func (p *pool) refill(kp *kindPool) {
	defer p.wg.Done()
	var backoff time.Duration
	for {
		if !p.needs(kp) {
			select {
			case <-p.ctx.Done():
				return
			case <-kp.wake:
			}
			continue
		}
		if backoff > 0 {
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		set, snap, err := p.prepareOne(kp.kind, kp.suite)
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, time.Second), time.Minute)
			p.env.log.Warn("pool: preparing a set failed", "kind", kp.kind.String(), "suite", kp.suite.String(), "err", err, "retry_in", backoff.String())
			continue
		}
		backoff = 0
		p.offer(kp, set, snap)
	}
}

// waitTurn waits until mayRun.
func (p *pool) waitTurn() error {
	if p.env.mayRun() {
		return nil
	}
	t := time.NewTicker(poolPoll)
	defer t.Stop()
	for !p.env.mayRun() {
		select {
		case <-p.ctx.Done():
			return p.ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// prepareOne encodes one set of kind in suite from a fresh snapshot, as a
// cold session does, but yields the workers to sessions between batches.
func (p *pool) prepareOne(kind psi.Kind, suite psi.Suite) (*psi.PreparedSet, store.SnapshotInfo, error) {
	env := p.env
	if err := p.waitTurn(); err != nil {
		return nil, store.SnapshotInfo{}, err
	}
	if err := env.cpu.Acquire(p.ctx, env.share); err != nil {
		return nil, store.SnapshotInfo{}, err
	}
	held := true
	defer func() {
		if held {
			env.cpu.Release(env.share)
		}
	}()
	n := 0
	return env.encode(p.ctx, kind, suite, func() error {
		if n++; n%poolYieldEvery == 0 && !env.mayRun() {
			env.cpu.Release(env.share)
			held = false
			if err := p.waitTurn(); err != nil {
				return err
			}
			if err := env.cpu.Acquire(p.ctx, env.share); err != nil {
				return err
			}
			held = true
		}
		return nil
	})
}

// WaitPool waits until the warm pool holds Config.PoolSize prepared sets of
// every pooled kind (Config.PoolKinds) in every pooled suite
// (Config.PoolSuites). It returns at once when the pool is
// disabled, and an error when the server stops first or ctx is done.
func (s *Server) WaitPool(ctx context.Context) error {
	p := s.pool
	if p == nil {
		return nil
	}
	for _, kp := range p.kinds {
		for {
			kp.mu.Lock()
			n, closed, ch := len(kp.entries), kp.closed, kp.changed
			kp.mu.Unlock()
			if closed {
				return errors.New("service: the server stopped before its pool was full")
			}
			if n >= p.size {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-ch:
			}
		}
	}
	return nil
}

// PoolStats describes the warm pool.
type PoolStats struct {
	Size      int              // Config.PoolSize: prepared sets kept per kind and suite; 0 when disabled
	Ready     map[psi.Kind]int // prepared sets ready now, per pooled kind, all pooled suites together
	Hits      int64            // sessions served from the pool
	Misses    int64            // sessions of a pooled kind that prepared their set cold
	Discarded int64            // sets destroyed unused: their snapshot was superseded
}

// PoolStats returns the state of the warm pool.
func (s *Server) PoolStats() PoolStats {
	p := s.pool
	if p == nil {
		return PoolStats{}
	}
	st := PoolStats{Size: p.size, Ready: map[psi.Kind]int{},
		Hits: p.hits.Load(), Misses: p.misses.Load(), Discarded: p.discarded.Load()}
	for _, kp := range p.kinds {
		kp.mu.Lock()
		st.Ready[kp.kind] += len(kp.entries)
		kp.mu.Unlock()
	}
	return st
}
