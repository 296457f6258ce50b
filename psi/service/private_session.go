package service

import (
	"context"
	"errors"
	"fmt"
	"io"

	"connectrpc.com/connect"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
	pb "github.com/overlap-psi/overlap/psi/service/gen/overlap/v1"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

// sessionIO is one session's stream: each call waits at most the idle
// timeout.
type sessionIO struct {
	recv func() (*pb.MatchRequest, error)
	send func(frame []byte, snap *pb.Snapshot) error
}

// privateSource is a set source that can cap what one subject contributes
// (SPEC.md §10.9); the store is one.
type privateSource interface {
	SnapshotPerSubject(ctx context.Context, kind psi.Kind, maxPerSubject int, fn func(digest [32]byte) error) (store.SnapshotInfo, error)
}

// matchPrivate runs the rest of a private-mode session (SPEC.md §10) after
// the hello has passed the checks every mode shares. The server counts; the
// client gets only the noised, thresholded release.
//
// The budgets (identifiers and ε) are reserved together, with the
// session's journal row, before any scalar multiplication, and refunded
// only when the session fails before the server sent any element derived
// from its set (SPEC.md §10.8.2; Server.settle).
func (s *Server) matchPrivate(ctx context.Context, ss *session, hello *wire.ClientHello, pol Policy, sio sessionIO) (err error) {
	kind := psi.Kind(hello.Kind)
	n := int64(hello.ClientSize)
	mech, err := pol.Mechanism()
	if err != nil {
		return ss.fail(ResultInternal, s.internal(ss, "choosing the mechanism", err))
	}
	if err := s.admit(ss, store.BudgetRequest{Advertiser: ss.adv.ID, Session: ss.rec.ID,
		Identifiers: n, Limit: pol.Budget, Epsilon: pol.PrivacyCost, EpsilonLimit: pol.PrivacyBudget,
		Window: pol.BudgetWindow, At: s.cfg.now()}); err != nil {
		var be *store.BudgetError
		if errors.As(err, &be) {
			s.met.budgetRefusals.Inc()
			limit := LimitBudget
			if be.Budget == "privacy" {
				limit = LimitPrivacyBudget
			}
			return ss.refuse(refusal(connect.CodeResourceExhausted, limit, be.ResetsAt, "%s", be.Error()))
		}
		return s.storeFailure(ss, "budget reservation", err)
	}

	var srv *psi.PrivateServer
	set, snap, err := s.preparePrivate(ctx, kind, pol)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return ss.fail(ResultInternal, s.internal(ss, "preparing the set", err))
	}
	ss.rec.SnapshotVersion, ss.rec.SnapshotDigest = snap.Version, snap.Digest
	srv, err = psi.NewPrivateServer(psi.PrivateServerConfig{
		CanonVersion: ident.Version, MinClientSize: uint32(pol.MinListSize), MaxClientSize: uint32(pol.MaxListSize),
		ChunkSize: s.cfg.ChunkSize, Mechanism: mech, Threshold: pol.Threshold, Workers: int(s.workers),
	}, set)
	if err != nil {
		set.Destroy()
		return ss.fail(ResultInternal, s.internal(ss, "starting the session", err))
	}
	defer srv.Close()
	params, err := srv.ReceiveHello(hello)
	if err != nil {
		return ss.fail(ResultPeerError, connect.NewError(connect.CodeInvalidArgument, err))
	}
	ss.rec.ServerSize = int64(params.ServerSize)
	frame, _ := params.MarshalBinary()
	if err := sio.send(frame, &pb.Snapshot{Version: snap.Version, Digest: snap.Digest[:], TakenAtUnixMicros: snap.TakenAt.UnixMicro()}); err != nil {
		return err
	}

	// The server's elements, ringers among them; from here on the spend
	// is final.
	if err := s.elementsSent(ss); err != nil {
		return err
	}
	if err := s.sendChunks(ss, srv.NextServerElements, sio.send); err != nil {
		return err
	}

	// The client's key, its blinded list, then the returned elements.
	peer := func(err error) error {
		return ss.fail(ResultPeerError, connect.NewError(connect.CodeInvalidArgument, err))
	}
	next := func(what string, got, want int64) (*pb.MatchRequest, error) {
		msg, err := sio.recv()
		if errors.Is(err, io.EOF) {
			return nil, ss.fail(ResultTruncated, connect.NewError(connect.CodeInvalidArgument,
				fmt.Errorf("the stream ended after %d of %d %s", got, want, what)))
		}
		return msg, err
	}
	msg, err := next("messages before the client key", 0, 1)
	if err != nil {
		return err
	}
	var key wire.ClientKey
	if err := key.UnmarshalBinary(msg.Frame); err != nil {
		return peer(fmt.Errorf("ClientKey: %w", err))
	}
	ss.clientSent = true
	if err := s.withCPU(ctx, func() error { return srv.ReceiveClientKey(&key) }); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return peer(err)
	}
	stream := func(typ wire.Type, what string, want int64, receive func(*wire.ElementChunk) error) error {
		for got := int64(0); got < want; {
			msg, err := next(what, got, want)
			if err != nil {
				return err
			}
			var ch wire.ElementChunk
			if err := ch.UnmarshalBinary(msg.Frame, typ); err != nil {
				return peer(fmt.Errorf("%v: %w", typ, err))
			}
			if err := s.withCPU(ctx, func() error { return receive(&ch) }); err != nil {
				if ctx.Err() != nil {
					return err
				}
				if errors.Is(err, psi.ErrDeviation) {
					return ss.fail(ResultDeviation, connect.NewError(connect.CodeInvalidArgument,
						errors.New("the returned elements failed the ringer check (SPEC.md §10.5): the client did not raise every element to one exponent; nothing is released and the session's budget is spent")))
				}
				return peer(err)
			}
			got += int64(ch.Count())
			s.met.elements.Add(float64(ch.Count()))
		}
		return nil
	}
	if err := stream(wire.TypeBlinded, "blinded elements", n, srv.ReceiveBlinded); err != nil {
		return err
	}
	if err := stream(wire.TypeReturned, "returned elements", int64(params.ServerSize), srv.ReceiveReturned); err != nil {
		return err
	}
	if _, err := sio.recv(); !errors.Is(err, io.EOF) {
		if err == nil {
			return peer(fmt.Errorf("%w: a message after the last returned chunk (a session evaluates one request)", psi.ErrPeer))
		}
		return err
	}
	rel, err := srv.Release()
	if err != nil {
		return ss.fail(ResultInternal, s.internal(ss, "releasing", err))
	}
	frame, err = rel.MarshalBinary()
	if err != nil {
		return ss.fail(ResultInternal, s.internal(ss, "encoding", err))
	}
	return sio.send(frame, nil)
}

// withCPU runs fn holding the session's share of the CPU workers.
func (s *Server) withCPU(ctx context.Context, fn func() error) error {
	if err := s.cpu.Acquire(ctx, s.workers); err != nil {
		return err
	}
	defer s.cpu.Release(s.workers)
	return fn()
}

// preparePrivate encodes the matchable set of kind for one private-mode
// session: at most pol.Sensitivity digests per subject (SPEC.md §10.9), a
// fresh key, at least pol.Ringers ringers.
func (s *Server) preparePrivate(ctx context.Context, kind psi.Kind, pol Policy) (*psi.PrivateSet, store.SnapshotInfo, error) {
	var src privateSource = s.cfg.Store
	if ps, ok := any(s.cfg.Sets).(privateSource); ok && s.cfg.Sets != nil {
		src = ps
	}
	var set *psi.PrivateSet
	var snap store.SnapshotInfo
	err := s.withCPU(ctx, func() error {
		var err error
		set, err = psi.NewPrivateSet(psi.PrivateSetConfig{Kind: kind, Ringers: pol.Ringers, Workers: int(s.workers)})
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
