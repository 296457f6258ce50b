package service

import (
	"context"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

// privateSource is a set source that can cap what one subject contributes
// (SPEC.md §10.9); the store is one.
type privateSource interface {
	SnapshotPerSubject(ctx context.Context, kind psi.Kind, maxPerSubject int, fn func(digest [32]byte) error) (store.SnapshotInfo, error)
}

// servePrivate runs a private-mode session (SPEC.md §10) after admission:
// the identifier and privacy budgets with the journal row, the session's
// set with its ringers, then psi's sequence over conn. The server counts;
// the client gets only the noised, thresholded release. The budgets are
// refunded only when the session fails before the server sent any element
// derived from its set (SPEC.md §10.8.2; Server.settle).
func (s *Server) servePrivate(ctx context.Context, ss *session, conn *streamConn, hello *wire.ClientHello, pol Policy) error {
	mech, err := pol.Mechanism()
	if err != nil {
		return ss.fail(ResultInternal, s.internal(ss, "choosing the mechanism", err))
	}
	if err := s.reserve(ss, store.BudgetRequest{Identifiers: ss.rec.ListSize, Limit: pol.Budget,
		Epsilon: pol.PrivacyCost, EpsilonLimit: pol.PrivacyBudget}, pol); err != nil {
		return err
	}
	set, snap, err := s.preparePrivateSet(ctx, ss.rec.Kind, ss.rec.Suite, pol, false)
	if err != nil {
		return s.prepareFailure(ctx, ss, err)
	}
	srv, err := psi.NewPrivateServer(psi.PrivateServerConfig{CanonVersion: ident.Version, MinClientSize: uint32(pol.MinListSize),
		MaxClientSize: uint32(pol.MaxListSize), ChunkSize: s.cfg.ChunkSize, Mechanism: mech, Threshold: pol.Threshold,
		Workers: int(s.workers)}, set)
	if err != nil {
		set.Destroy()
		return ss.fail(ResultInternal, s.internal(ss, "starting the session", err))
	}
	defer srv.Close()
	s.useSnapshot(ss, conn, snap)
	return srv.Serve(conn, hello, s.hooks(ctx))
}

// preparePrivateSet encodes the matchable set of kind for one private-mode
// session or setup: at most pol.Sensitivity digests per subject (SPEC.md
// §10.9), a fresh key, and at least pol.Ringers ringers, or for a setup
// (epoch) those of SPEC.md §10.12.4.
func (s *Server) preparePrivateSet(ctx context.Context, kind psi.Kind, suite psi.Suite, pol Policy, epoch bool) (*psi.PrivateSet, store.SnapshotInfo, error) {
	var src privateSource = s.cfg.Store
	if ps, ok := any(s.cfg.Sets).(privateSource); ok && s.cfg.Sets != nil {
		src = ps
	}
	var set *psi.PrivateSet
	var snap store.SnapshotInfo
	err := s.withCPU(ctx, func() error {
		var err error
		set, err = psi.NewPrivateSet(psi.PrivateSetConfig{Kind: kind, Suite: suite, Ringers: pol.Ringers, Epoch: epoch, EpochDelta: pol.EpochDelta, Workers: int(s.workers)})
		if err != nil {
			return err
		}
		snap, err = src.SnapshotPerSubject(ctx, kind, int(pol.Sensitivity), func(d [32]byte) error {
			set.Add(d)
			return nil
		})
		if err == nil {
			err = set.Finish()
		}
		if err != nil {
			set.Destroy()
		}
		return err
	})
	if err != nil {
		return nil, store.SnapshotInfo{}, err
	}
	s.met.setElements.Add(float64(snap.Size))
	return set, snap, nil
}
