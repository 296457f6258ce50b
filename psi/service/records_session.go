package service

import (
	"context"
	"errors"
	"math"
	"time"

	"connectrpc.com/connect"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

// Record sessions (SPEC.md §13): the advertiser's list is customer records
// of several identifiers, and the count is of records. Mode 5 is served to
// an advertiser served exact mode, mode 6 to one served private mode: the
// modes keep what their identifier-level modes promise, and the advertiser
// policy names no separate mode. A record session's set is the union of
// the matchable sets of its kinds, encoded for the session (the warm pool
// keeps sets of one kind); its audit row records the kind set, the slots
// per record and each kind's snapshot.

// recordsModeServed is the identifier-level mode whose service a record
// mode follows.
func recordsModeServed(m wire.Mode) wire.Mode {
	if m == wire.ModePrivateRecords {
		return wire.ModePrivate
	}
	return wire.ModeExact
}

// checkRecordsHello checks a RecordsHello against the advertiser's policy,
// as checkHello does a ClientHello: a mode served to the advertiser, then
// the record count against its list sizes, each refusal naming its limit.
// The kinds were checked by the hello's decoding: every kind of SPEC.md
// §3.2 has a set here.
func (s *Server) checkRecordsHello(ss *session, h *wire.RecordsHello, pol Policy) error {
	ss.rec.Mode = h.Mode.String()
	ss.rec.ListSize = int64(h.Records)
	ss.rec.Kinds, ss.rec.Slots = h.Kinds, int(h.Slots)
	ss.rec.Kind = h.Kinds.Kinds()[0]
	if served := recordsModeServed(h.Mode); !ss.adv.Policy.Modes.Has(uint8(served)) {
		return ss.refuse(refusal(connect.CodeFailedPrecondition, client.LimitMode, time.Time{},
			"%v mode is not served to advertiser %q, which is served %v mode (record modes follow exact and private mode)",
			h.Mode, ss.adv.Name, ss.adv.Policy.Modes))
	}
	// The list sizes bound records (SPEC.md §13.3).
	limits := psi.RecordsLimits{Mode: h.Mode, Kinds: wire.AllKinds, CanonVersion: ident.Version,
		MinRecords: uint32(min(pol.MinListSize, math.MaxUint32)), MaxRecords: uint32(min(pol.MaxListSize, math.MaxUint32))}
	if err := limits.Check(h); err != nil {
		var he *psi.HelloError
		errors.As(err, &he)
		return ss.refuse(refusal(connect.CodeFailedPrecondition, he.Check, time.Time{}, "%s, for advertiser %q", he.Detail(), ss.adv.Name))
	}
	// The server's first choice that the client offers (SPEC.md §12.1,
	// §13.3).
	suite, err := psi.ChooseSuite(h.Suites, s.cfg.Suites)
	if err != nil {
		var se *psi.SuiteError
		errors.As(err, &se)
		return ss.refuse(refusal(connect.CodeFailedPrecondition, client.LimitSuite, time.Time{}, "%s", se.Detail()))
	}
	ss.rec.Suite = suite
	return nil
}

// serveRecords runs a record session after admission: the identifier
// budget, charged n·s (SPEC.md §13.3: the server cannot tell dummies from
// identifiers), and in mode 6 the privacy budget, once, with the journal
// row; the union set; then psi's sequence of the mode over conn.
func (s *Server) serveRecords(ctx context.Context, ss *session, conn *streamConn, h *wire.RecordsHello, pol Policy) error {
	elements := int64(h.Elements())
	if h.Mode == wire.ModeExactRecords {
		if err := s.reserve(ss, store.BudgetRequest{Identifiers: elements, Limit: pol.Budget}, pol); err != nil {
			return err
		}
		set, snaps, err := s.prepareRecordsSet(ctx, h.Kinds, ss.rec.Suite)
		if err != nil {
			return s.prepareFailure(ctx, ss, err)
		}
		srv, err := psi.NewServer(psi.ServerConfig{CanonVersion: ident.Version, MinClientSize: uint32(pol.MinListSize),
			MaxClientSize: uint32(pol.MaxListSize), ChunkSize: s.cfg.ChunkSize, Workers: int(s.workers)}, set)
		if err != nil {
			set.Destroy()
			return ss.fail(ResultInternal, s.internal(ss, "starting the session", err))
		}
		defer srv.Close()
		s.useSnapshots(ss, conn, snaps)
		return srv.ServeRecords(conn, h, s.hooks(ctx))
	}
	mech, err := pol.Mechanism()
	if err != nil {
		return ss.fail(ResultInternal, s.internal(ss, "choosing the mechanism", err))
	}
	if err := s.reserve(ss, store.BudgetRequest{Identifiers: elements, Limit: pol.Budget,
		Epsilon: pol.PrivacyCost, EpsilonLimit: pol.PrivacyBudget}, pol); err != nil {
		return err
	}
	set, snaps, err := s.preparePrivateRecordsSet(ctx, h.Kinds, ss.rec.Suite, pol)
	if err != nil {
		return s.prepareFailure(ctx, ss, err)
	}
	// The release's sensitivity is Σ_K Δ_K (SPEC.md §13.7): psi sets it
	// from the set's kinds and cap.
	srv, err := psi.NewPrivateServer(psi.PrivateServerConfig{CanonVersion: ident.Version, MinClientSize: uint32(pol.MinListSize),
		MaxClientSize: uint32(pol.MaxListSize), ChunkSize: s.cfg.ChunkSize, Mechanism: mech, Threshold: pol.Threshold,
		Workers: int(s.workers)}, set)
	if err != nil {
		set.Destroy()
		return ss.fail(ResultInternal, s.internal(ss, "starting the session", err))
	}
	defer srv.Close()
	s.useSnapshots(ss, conn, snaps)
	return srv.ServeRecords(conn, h, s.hooks(ctx))
}

// prepareRecordsSet encodes the union of the matchable sets of kinds from
// a fresh snapshot of each, for one mode-5 session, holding the session's
// share of the CPU workers.
func (s *Server) prepareRecordsSet(ctx context.Context, kinds psi.KindSet, suite psi.Suite) (*psi.PreparedSet, []store.SnapshotInfo, error) {
	set, err := psi.NewRecordsSet(psi.SetConfig{Workers: int(s.workers), Suite: suite}, kinds)
	if err != nil {
		return nil, nil, err
	}
	snaps, err := s.encodeKinds(ctx, kinds, set.Destroy, set.Finish, func(k psi.Kind, fn func([32]byte) error) (store.SnapshotInfo, error) {
		return s.cfg.Sets.Snapshot(ctx, k, fn)
	}, set.AddOf)
	return set, snaps, err
}

// preparePrivateRecordsSet encodes the union of the matchable sets of
// kinds for one mode-6 session: at most pol.Sensitivity digests per
// subject and kind (SPEC.md §10.9), a fresh key and at least pol.Ringers
// ringers.
func (s *Server) preparePrivateRecordsSet(ctx context.Context, kinds psi.KindSet, suite psi.Suite, pol Policy) (*psi.PrivateSet, []store.SnapshotInfo, error) {
	var src privateSource = s.cfg.Store
	if ps, ok := any(s.cfg.Sets).(privateSource); ok && s.cfg.Sets != nil {
		src = ps
	}
	set, err := psi.NewPrivateRecordsSet(psi.PrivateSetConfig{Ringers: pol.Ringers, Workers: int(s.workers), Suite: suite}, kinds, pol.Sensitivity)
	if err != nil {
		return nil, nil, err
	}
	snaps, err := s.encodeKinds(ctx, kinds, set.Destroy, set.Finish, func(k psi.Kind, fn func([32]byte) error) (store.SnapshotInfo, error) {
		return src.SnapshotPerSubject(ctx, k, int(pol.Sensitivity), fn)
	}, set.AddOf)
	return set, snaps, err
}

// encodeKinds adds the snapshot of each kind of kinds to a record set with
// add, then finishes it, holding the session's share of the CPU workers;
// on failure it destroys the set.
func (s *Server) encodeKinds(ctx context.Context, kinds psi.KindSet, destroy func(), finish func() error,
	snapshot func(psi.Kind, func([32]byte) error) (store.SnapshotInfo, error), add func(psi.Kind, [32]byte) error) ([]store.SnapshotInfo, error) {
	var snaps []store.SnapshotInfo
	err := s.withCPU(ctx, func() error {
		for _, k := range kinds.Kinds() {
			snap, err := snapshot(k, func(d [32]byte) error { return add(k, d) })
			if err != nil {
				return err
			}
			snaps = append(snaps, snap)
			s.met.setElements.Add(float64(snap.Size))
		}
		return finish()
	})
	if err != nil {
		destroy()
		return nil, err
	}
	return snaps, nil
}

// useSnapshots records the snapshot of each kind of a record session's
// set (SPEC.md §13.3) and has conn send them with the parameters; the
// first kind's is the session's snapshot, as in other sessions.
func (s *Server) useSnapshots(ss *session, conn *streamConn, snaps []store.SnapshotInfo) {
	s.useSnapshot(ss, conn, snaps[0])
	conn.kindSnaps = snaps
	ss.rec.Snapshots = make([]store.KindSnapshot, len(snaps))
	for i, snap := range snaps {
		ss.rec.Snapshots[i] = store.KindSnapshot{Kind: snap.Kind, Version: snap.Version, Digest: snap.Digest}
	}
}
