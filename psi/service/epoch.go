package service

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

// epochCache keeps the epochs this server has loaded: each serves every
// session of its epoch, concurrently, and holds 8 bytes per kept tag. When
// they hold more than max bytes, the least recently used are dropped (a
// later session loads its epoch from the store again: about 0.6 s per
// 10^7 tags). An epoch also leaves it when it ends.
type epochCache struct {
	mu     sync.Mutex
	max    int64 // bytes of tags; 0 means no limit
	bytes  int64
	tick   int64
	epochs map[[16]byte]*cachedEpoch
}

type cachedEpoch struct {
	ep   *psi.Epoch
	used int64 // tick of the last use
}

func epochBytes(ep *psi.Epoch) int64 { return 8 * int64(ep.Meta().Size) }

func (c *epochCache) get(id [16]byte) *psi.Epoch {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.epochs[id]
	if e == nil {
		return nil
	}
	c.tick++
	e.used = c.tick
	return e.ep
}

func (c *epochCache) put(ep *psi.Epoch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epochs == nil {
		c.epochs = map[[16]byte]*cachedEpoch{}
	}
	id := ep.Meta().ID
	if old := c.epochs[id]; old != nil {
		c.bytes -= epochBytes(old.ep)
	}
	c.tick++
	c.epochs[id] = &cachedEpoch{ep: ep, used: c.tick}
	c.bytes += epochBytes(ep)
	for c.max > 0 && c.bytes > c.max && len(c.epochs) > 1 {
		var lru [16]byte
		oldest := int64(-1)
		for k, e := range c.epochs {
			if k != id && (oldest < 0 || e.used < oldest) {
				lru, oldest = k, e.used
			}
		}
		c.bytes -= epochBytes(c.epochs[lru].ep)
		delete(c.epochs, lru)
	}
}

// drop forgets an epoch that is no longer stored. Its key is not erased
// here: a session that started before may still be using it (it will not
// release after the epoch's end, SPEC.md §10.12.6); the garbage collector
// takes it.
func (c *epochCache) drop(id [16]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.epochs[id]; e != nil {
		c.bytes -= epochBytes(e.ep)
		delete(c.epochs, id)
	}
}

// expire drops the epochs that ended at now, as drop does.
func (c *epochCache) expire(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.epochs {
		if !now.Before(e.ep.Meta().ExpiresAt) {
			c.bytes -= epochBytes(e.ep)
			delete(c.epochs, id)
		}
	}
}

// serveSetup runs a setup (SPEC.md §10.12.1): the advertiser's setup limit
// and a journal row (no budget: nothing is released, no list is sent), the
// private-mode snapshot encoded under a fresh epoch key with the ringers of
// SPEC.md §10.12.4, then psi's sequence; the epoch is stored before the
// client is told it is ready.
func (s *Server) serveSetup(ctx context.Context, ss *session, conn *streamConn, hello *wire.ClientHello, pol Policy) error {
	ss.rec.ListSize = 0
	now := s.cfg.now()
	if err := s.beginSetup(ss, pol, now); err != nil {
		return err
	}
	set, snap, err := s.preparePrivateSet(ctx, ss.rec.Kind, ss.rec.Suite, pol, true)
	if err != nil {
		return s.prepareFailure(ctx, ss, err)
	}
	srv, err := psi.NewEpochSetupServer(psi.EpochSetupConfig{CanonVersion: ident.Version, ChunkSize: s.cfg.ChunkSize,
		Workers: int(s.workers), ExpiresAt: now.Add(pol.EpochLifetime).Truncate(time.Second)}, set)
	if err != nil {
		set.Destroy()
		return ss.fail(ResultInternal, s.internal(ss, "starting the setup", err))
	}
	defer srv.Close()
	s.useSnapshot(ss, conn, snap)
	keep := func(ep *psi.Epoch) error {
		rec := store.EpochRecord{Meta: ep.Meta(), Advertiser: ss.adv.ID, SnapshotVersion: snap.Version,
			SnapshotDigest: snap.Digest, CreatedAt: now}
		err := s.retryBusy(ss.ctx, time.Now().Add(s.cfg.IdleTimeout), func(ctx context.Context) error {
			return s.cfg.Store.SaveEpoch(ctx, rec, ep)
		})
		if err != nil {
			return s.storeFailure(ss, "storing the epoch", err)
		}
		s.epochs.put(ep)
		return nil
	}
	return srv.Serve(conn, hello, keep, s.hooks(ctx))
}

// beginSetup journals a setup, unless the store's admission refuses it
// (the advertiser's session in flight on any server, its abandoned
// sessions) or the advertiser made its limit of setups in the last 24
// hours: one store transaction checks them under the advertiser's lock and
// writes the journal row (no budget is reserved).
func (s *Server) beginSetup(ss *session, pol Policy, now time.Time) error {
	e := store.JournalEntry{ID: ss.rec.ID, Advertiser: ss.adv.ID, Kind: ss.rec.Kind, Mode: ss.rec.Mode,
		Owner: s.owner, StartedAt: ss.rec.StartedAt, LeaseUntil: now.Add(s.cfg.Lease), Suite: ss.rec.Suite}
	var st store.SetupStatus
	err := s.retryBusy(ss.ctx, time.Now().Add(s.cfg.IdleTimeout), func(ctx context.Context) error {
		var err error
		st, err = s.cfg.Store.BeginSetup(ctx, e, now.Add(-24*time.Hour), pol.SetupsPerDay, s.admission(now))
		return err
	})
	var ae *store.AdmissionError
	switch {
	case errors.As(err, &ae):
		return s.notAdmitted(ss, ae)
	case errors.Is(err, store.ErrSetupLimit):
		return ss.refuse(refusal(connect.CodeResourceExhausted, client.LimitEpochSetups, st.Oldest.Add(24*time.Hour),
			"advertiser %q made %d setups in the last 24 hours, its limit; its current epoch serves sessions until it ends", ss.adv.Name, st.Used))
	case err != nil:
		return s.storeFailure(ss, "journaling the setup", err)
	}
	ss.journaled, ss.phase = true, store.PhaseAdmitted
	return nil
}

// serveEpoch runs an epoch session (SPEC.md §10.12.2): the ticket names
// the advertiser's epoch, checked before any work; then the budgets with
// the journal row, and psi's sequence against the epoch's kept tags. The
// session records the epoch's snapshot, the one it counts against.
func (s *Server) serveEpoch(ctx context.Context, ss *session, conn *streamConn, hello *wire.ClientHello, pol Policy) error {
	ticket, err := psi.RecvEpochTicket(conn)
	if err != nil {
		return err
	}
	ss.clientSent = false // the ticket is part of the opening, not an element
	now := s.cfg.now()
	ep, rec, err := s.loadEpoch(ctx, ss.adv.ID, ticket.Epoch)
	switch {
	case errors.Is(err, store.ErrNoEpoch):
		return ss.refuse(refusal(connect.CodeFailedPrecondition, client.LimitEpoch, time.Time{},
			"advertiser %q has no epoch %x on this server (it expired and was deleted, or never existed); make a new setup", ss.adv.Name, ticket.Epoch[:4]))
	case err != nil:
		return s.storeFailure(ss, "loading the epoch", err)
	}
	ss.rec.EpochID, ss.rec.EpochExpiresAt = hex.EncodeToString(rec.Meta.ID[:]), rec.Meta.ExpiresAt
	// The epoch's suite, fixed at its setup (SPEC.md §12.1).
	if !hello.Suites.Has(rec.Meta.Suite) {
		return ss.refuse(refusal(connect.CodeFailedPrecondition, client.LimitSuite, time.Time{},
			"epoch %x is in ciphersuite %v, which the session does not offer (%v)", ticket.Epoch[:4], rec.Meta.Suite.Or1(), hello.Suites.Or1()))
	}
	ss.rec.Suite = rec.Meta.Suite.Or1()
	if err := ep.CheckTicket(hello, ticket, now); err != nil {
		return ss.refuse(refusal(connect.CodeFailedPrecondition, client.LimitEpoch, time.Time{}, "%v", err))
	}
	mech, err := pol.Mechanism()
	if err != nil {
		return ss.fail(ResultInternal, s.internal(ss, "choosing the mechanism", err))
	}
	if err := s.reserve(ss, store.BudgetRequest{Identifiers: ss.rec.ListSize, Limit: pol.Budget,
		Epsilon: pol.PrivacyCost, EpsilonLimit: pol.PrivacyBudget}, pol); err != nil {
		return err
	}
	srv, err := psi.NewEpochServer(psi.PrivateServerConfig{CanonVersion: ident.Version, MinClientSize: uint32(pol.MinListSize),
		MaxClientSize: uint32(pol.MaxListSize), ChunkSize: s.cfg.ChunkSize, Mechanism: mech, Threshold: pol.Threshold,
		Workers: int(s.workers)}, ep)
	if err != nil {
		return ss.fail(ResultInternal, s.internal(ss, "starting the session", err))
	}
	defer srv.Close()
	s.useSnapshot(ss, conn, store.SnapshotInfo{Version: rec.SnapshotVersion, Digest: rec.SnapshotDigest, TakenAt: rec.CreatedAt})
	return srv.Serve(conn, hello, ticket, s.cfg.now, s.hooks(ctx))
}

// loadEpoch returns the advertiser's epoch id: its record from the store
// (one small read, so an epoch deleted by an operator or another replica
// stops serving at once), and its tags from memory, or from the store on
// this server's first session of the epoch.
func (s *Server) loadEpoch(ctx context.Context, adv int64, id [16]byte) (*psi.Epoch, store.EpochRecord, error) {
	var recs []store.EpochRecord
	err := s.retryBusy(ctx, time.Now().Add(s.cfg.IdleTimeout), func(ctx context.Context) error {
		var err error
		recs, err = s.cfg.Store.Epochs(ctx, adv)
		return err
	})
	if err != nil {
		return nil, store.EpochRecord{}, err
	}
	i := slices.IndexFunc(recs, func(r store.EpochRecord) bool { return r.Meta.ID == id })
	if i < 0 {
		s.epochs.drop(id)
		return nil, store.EpochRecord{}, store.ErrNoEpoch
	}
	if ep := s.epochs.get(id); ep != nil {
		return ep, recs[i], nil
	}
	var ep *psi.Epoch
	err = s.retryBusy(ctx, time.Now().Add(s.cfg.IdleTimeout), func(ctx context.Context) error {
		var err error
		ep, _, err = s.cfg.Store.LoadEpoch(ctx, adv, id)
		return err
	})
	if err != nil {
		return nil, store.EpochRecord{}, err
	}
	s.epochs.put(ep)
	return ep, recs[i], nil
}

// expireEpochs deletes the epochs that ended: their keys and tags, in the
// store and in memory (SPEC.md §10.12.5).
func (s *Server) expireEpochs(ctx context.Context) {
	now := s.cfg.now()
	s.epochs.expire(now)
	if n, err := s.cfg.Store.DeleteEpochs(ctx, 0, now); err != nil && ctx.Err() == nil {
		s.log.Warn("deleting expired epochs failed; will retry", "err", err)
	} else if n > 0 {
		s.log.Info("expired epochs deleted", "epochs", n)
	}
}
