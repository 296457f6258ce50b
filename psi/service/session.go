package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"connectrpc.com/connect"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
	pb "github.com/overlap-psi/overlap/psi/service/gen/overlap/v1"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

// Result codes of the audit log beyond "refused_<limit>".
const (
	ResultOK               = "ok"
	ResultUnauthenticated  = "unauthenticated"
	ResultPermissionDenied = "permission_denied"
	ResultPeerError        = "peer_error" // a message broke the protocol
	ResultTruncated        = "truncated"  // the client stopped sending early
	ResultTimeout          = "timeout"    // the client was idle too long
	ResultCanceled         = "canceled"   // the client went away or canceled
	ResultAborted          = "aborted"    // the server shut down
	ResultInternal         = "internal_error"
	ResultDeviation        = "deviation"   // private mode: the ringer check failed (SPEC.md §10.5)
	ResultUnavailable      = "unavailable" // the store stayed busy past the session's deadline
	// ResultAbandoned: admitted (budget reserved, set being prepared), then
	// left by the client (canceled, truncated or idle) before it sent any
	// element. Counted against the advertiser (SPEC.md §10.8.2).
	ResultAbandoned = "abandoned"
	// ResultCrashed: the server stopped while the session was open;
	// written by reconciliation (store.ResultCrashed).
	ResultCrashed = store.ResultCrashed
)

// session is the server's record of one session, for the audit log.
type session struct {
	ctx    context.Context // the session's stream
	rec    store.SessionRecord
	result string
	detail string
	adv    store.Advertiser

	journaled  bool   // the store holds its reservation and journal row
	phase      string // store.PhaseAdmitted or store.PhaseElementsSent, once journaled
	clientSent bool   // the client sent an element (or its key) after the hello
}

func newSessionID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// fail records why the session ended and returns err for the client.
func (ss *session) fail(result string, err error) error {
	if ss.result == "" {
		ss.result = result
		var ce *connect.Error
		if errors.As(err, &ce) {
			ss.detail = ce.Message()
		} else {
			ss.detail = err.Error()
		}
	}
	return err
}

func (ss *session) refuse(err *connect.Error) error {
	return ss.fail("refused_"+err.Meta().Get(MetaLimit), err)
}

func (s *Server) match(ctx context.Context, st *connect.BidiStream[pb.MatchRequest, pb.MatchResponse]) (err error) {
	start := s.cfg.now()
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		return connect.NewError(connect.CodeUnavailable, errors.New("the server is shutting down; retry shortly"))
	}
	s.wg.Add(1) // under mu, so never after Shutdown's Wait began
	s.mu.Unlock()
	defer s.wg.Done()
	adv, err := s.authenticate(ctx, st.RequestHeader())
	if err != nil {
		result := ResultUnauthenticated
		if connect.CodeOf(err) == connect.CodePermissionDenied {
			result = ResultPermissionDenied
		}
		s.met.sessions.WithLabelValues(result).Inc()
		s.log.LogAttrs(ctx, slog.LevelWarn, "session refused", slog.String("result", result),
			slog.String("reason", connect.CodeOf(err).String()), slog.String("peer", st.Peer().Addr))
		if adv.ID != 0 { // revoked: known advertiser, audited
			ss := &session{ctx: ctx, adv: adv, rec: store.SessionRecord{ID: newSessionID(), Advertiser: adv.ID, Mode: wire.ModeExact.String(), StartedAt: start}}
			ss.fail(result, err)
			s.finish(ctx, ss)
		}
		return err
	}
	ss := &session{ctx: ctx, adv: adv, rec: store.SessionRecord{ID: newSessionID(), Advertiser: adv.ID, Mode: wire.ModeExact.String(), StartedAt: start}}
	s.met.inFlight.Inc()
	defer func() {
		s.met.inFlight.Dec()
		if err == nil {
			ss.result = ResultOK
		} else if ss.result == "" {
			ss.fail(s.classify(ctx, err), err)
		}
		s.finish(ctx, ss)
	}()
	st.ResponseHeader().Set("Overlap-Session", ss.rec.ID)

	// Sessions in flight, over all advertisers and per advertiser.
	select {
	case s.sessions <- struct{}{}:
		defer func() { <-s.sessions }()
	default:
		return ss.refuse(refusal(connect.CodeResourceExhausted, LimitServerSessions, time.Time{},
			"the server is running its limit of %d sessions; retry later", s.cfg.MaxSessions))
	}
	if !s.claim(adv.ID) {
		return ss.refuse(refusal(connect.CodeResourceExhausted, LimitAdvertiserSessions, time.Time{},
			"advertiser %q already has a session in flight; one at a time", adv.Name))
	}
	defer s.release(adv.ID)

	// Each message in and out has IdleTimeout to arrive or be taken.
	ci := connInfoFrom(ctx)
	timedOut := func(deadline time.Time, err error) error {
		if err != nil && !errors.Is(err, io.EOF) && !time.Now().Before(deadline) {
			return ss.fail(ResultTimeout, connect.NewError(connect.CodeDeadlineExceeded,
				fmt.Errorf("the client was idle for %v", s.cfg.IdleTimeout)))
		}
		return err
	}
	recv := func() (*pb.MatchRequest, error) {
		deadline := time.Now().Add(s.cfg.IdleTimeout)
		if ci != nil {
			ci.rc.SetReadDeadline(deadline)
		}
		m, err := st.Receive()
		if ci != nil {
			// An HTTP/2 deadline resets the stream when it passes, also
			// while the handler is busy: clear it.
			ci.rc.SetReadDeadline(time.Time{})
		}
		if connect.CodeOf(err) == connect.CodeResourceExhausted {
			// Connect's read cap (SPEC.md §5.6): a frame larger than any valid one.
			return nil, ss.fail(ResultPeerError, connect.NewError(connect.CodeInvalidArgument,
				fmt.Errorf("%w: a message larger than the largest valid frame of %d bytes", psi.ErrPeer, s.maxRequestBytes())))
		}
		return m, timedOut(deadline, err)
	}
	send := func(frame []byte, snap *pb.Snapshot) error {
		deadline := time.Now().Add(s.cfg.IdleTimeout)
		if ci != nil {
			ci.rc.SetWriteDeadline(deadline)
		}
		err := st.Send(&pb.MatchResponse{Frame: frame, Snapshot: snap})
		if ci != nil {
			ci.rc.SetWriteDeadline(time.Time{})
		}
		return timedOut(deadline, err)
	}

	// The hello, and every policy check, before any scalar multiplication.
	msg, err := recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return ss.fail(ResultTruncated, connect.NewError(connect.CodeInvalidArgument, errors.New("the stream ended before the ClientHello")))
		}
		return err
	}
	var hello wire.ClientHello
	if err := hello.UnmarshalBinary(msg.Frame); err != nil {
		return ss.fail(ResultPeerError, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("ClientHello: %w", err)))
	}
	kind := psi.Kind(hello.Kind)
	n := int64(hello.ClientSize)
	ss.rec.ListSize = n
	pol := s.cfg.Policy.with(adv.Policy)
	switch {
	case !kind.Valid():
		return ss.refuse(refusal(connect.CodeInvalidArgument, LimitKind, time.Time{}, "unknown identifier kind %d", hello.Kind))
	case hello.Mode != wire.ModeExact && hello.Mode != wire.ModePrivate:
		return ss.refuse(refusal(connect.CodeUnimplemented, LimitMode, time.Time{}, "unknown mode %d; this server serves exact and private mode", uint8(hello.Mode)))
	case !adv.Policy.Modes.Has(uint8(hello.Mode)):
		return ss.refuse(refusal(connect.CodeFailedPrecondition, LimitMode, time.Time{},
			"%v mode is not served to advertiser %q, which is served %v mode", hello.Mode, adv.Name, adv.Policy.Modes))
	case hello.CanonVersion != ident.Version || hello.CanonFlags != 0:
		return ss.refuse(refusal(connect.CodeFailedPrecondition, LimitCanonicalization, time.Time{},
			"canonicalization v%d flags %#x; this server's set uses v%d without optional rules", hello.CanonVersion, hello.CanonFlags, ident.Version))
	case n < pol.MinListSize:
		return ss.refuse(refusal(connect.CodeFailedPrecondition, LimitMinListSize, time.Time{},
			"the list has %d identifiers, below the minimum of %d for advertiser %q", n, pol.MinListSize, adv.Name))
	case n > pol.MaxListSize:
		return ss.refuse(refusal(connect.CodeFailedPrecondition, LimitMaxListSize, time.Time{},
			"the list has %d identifiers, above the maximum of %d for advertiser %q", n, pol.MaxListSize, adv.Name))
	}
	ss.rec.Kind = kind
	ss.rec.Mode = hello.Mode.String()
	if err := s.throttle(ss); err != nil {
		return err
	}
	if hello.Mode == wire.ModePrivate {
		return s.matchPrivate(ctx, ss, &hello, pol, sessionIO{recv: recv, send: send})
	}
	if err := s.admit(ss, store.BudgetRequest{Advertiser: adv.ID, Session: ss.rec.ID,
		Identifiers: n, Limit: pol.Budget, Window: pol.BudgetWindow, At: s.cfg.now()}); err != nil {
		var be *store.BudgetError
		if errors.As(err, &be) {
			s.met.budgetRefusals.Inc()
			return ss.refuse(refusal(connect.CodeResourceExhausted, LimitBudget, be.ResetsAt, "%s", be.Error()))
		}
		return s.storeFailure(ss, "budget reservation", err)
	}

	// The session's set, from a fresh snapshot of the consent store.
	set, snap, err := s.prepare(ctx, kind)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return ss.fail(ResultInternal, s.internal(ss, "preparing the set", err))
	}
	ss.rec.SnapshotVersion, ss.rec.SnapshotDigest = snap.Version, snap.Digest
	srv, err := psi.NewServer(psi.ServerConfig{
		CanonVersion: ident.Version, MinClientSize: uint32(pol.MinListSize), MaxClientSize: uint32(pol.MaxListSize),
		ChunkSize: s.cfg.ChunkSize, Workers: int(s.workers),
	}, set)
	if err != nil {
		set.Destroy()
		return ss.fail(ResultInternal, s.internal(ss, "starting the session", err))
	}
	defer srv.Close()
	params, err := srv.ReceiveHello(&hello)
	if err != nil {
		return ss.fail(ResultPeerError, connect.NewError(connect.CodeInvalidArgument, err))
	}
	ss.rec.ServerSize = int64(params.ServerSize)
	frame, _ := params.MarshalBinary()
	if err := send(frame, &pb.Snapshot{Version: snap.Version, Digest: snap.Digest[:], TakenAtUnixMicros: snap.TakenAt.UnixMicro()}); err != nil {
		return err
	}

	// The blinded request, chunk by chunk; then nothing more.
	var got int64
	for got < n {
		msg, err := recv()
		if errors.Is(err, io.EOF) {
			return ss.fail(ResultTruncated, connect.NewError(connect.CodeInvalidArgument,
				fmt.Errorf("the stream ended after %d of %d blinded elements", got, n)))
		}
		if err != nil {
			return err
		}
		var ch wire.ElementChunk
		if err := ch.UnmarshalBinary(msg.Frame, wire.TypeBlinded); err != nil {
			return ss.fail(ResultPeerError, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("blinded chunk: %w", err)))
		}
		if err := s.cpu.Acquire(ctx, s.workers); err != nil {
			return err
		}
		err = srv.ReceiveBlinded(&ch)
		s.cpu.Release(s.workers)
		if err != nil {
			return ss.fail(ResultPeerError, connect.NewError(connect.CodeInvalidArgument, err))
		}
		got += int64(ch.Count())
		ss.clientSent = true
		s.met.elements.Add(float64(ch.Count()))
	}
	if _, err := recv(); !errors.Is(err, io.EOF) {
		if err == nil {
			return ss.fail(ResultPeerError, connect.NewError(connect.CodeInvalidArgument,
				fmt.Errorf("%w: a message after the last blinded chunk (a session evaluates one request)", psi.ErrPeer)))
		}
		return err
	}

	// The evaluated elements, shuffled, then the Golomb-coded set; from
	// here on the spend is final.
	if err := s.elementsSent(ss); err != nil {
		return err
	}
	if err := s.sendChunks(ss, srv.NextEvaluated, send); err != nil {
		return err
	}
	for {
		ch, ok, err := srv.NextSetChunk()
		if err != nil {
			return ss.fail(ResultInternal, s.internal(ss, "sending", err))
		}
		if !ok {
			break
		}
		frame, err := ch.MarshalBinary()
		if err != nil {
			return ss.fail(ResultInternal, s.internal(ss, "encoding", err))
		}
		if err := send(frame, nil); err != nil {
			return err
		}
	}
	if !srv.Done() {
		return ss.fail(ResultInternal, s.internal(ss, "finishing", errors.New("session not done")))
	}
	return nil
}

// sendChunks sends the element chunks next returns until it has no more.
func (s *Server) sendChunks(ss *session, next func() (*wire.ElementChunk, bool, error), send func([]byte, *pb.Snapshot) error) error {
	buf := make([]byte, 0, wire.ElementChunkHeaderSize+wire.ElementSize*s.cfg.ChunkSize)
	for {
		ch, ok, err := next()
		if err != nil {
			return ss.fail(ResultInternal, s.internal(ss, "sending", err))
		}
		if !ok {
			return nil
		}
		if buf, err = ch.AppendBinary(buf[:0]); err != nil {
			return ss.fail(ResultInternal, s.internal(ss, "encoding", err))
		}
		if err := send(buf, nil); err != nil {
			return err
		}
	}
}

// prepare returns the set of kind for one session and the snapshot it
// came from: a prepared set from the warm pool if its snapshot is still
// the current set (pool.go), else the matchable set
// encoded now from a fresh snapshot, holding the session's share of the
// CPU workers.
func (s *Server) prepare(ctx context.Context, kind psi.Kind) (*psi.PreparedSet, store.SnapshotInfo, error) {
	if set, snap, ok, err := s.pool.warm(ctx, kind); err != nil || ok {
		return set, snap, err
	}
	if err := s.cpu.Acquire(ctx, s.workers); err != nil {
		return nil, store.SnapshotInfo{}, err
	}
	defer s.cpu.Release(s.workers)
	set, snap, err := s.encodeSet(ctx, kind, nil)
	if err != nil {
		return nil, store.SnapshotInfo{}, err
	}
	s.pool.observe(kind, snap)
	return set, snap, nil
}

// encodeSet encodes the matchable set of kind from a fresh snapshot into
// a new single-use prepared set. before, if not nil, runs before each
// digest is added; an error from it stops the encoding (the pool yields
// the workers to sessions there).
func (s *Server) encodeSet(ctx context.Context, kind psi.Kind, before func() error) (*psi.PreparedSet, store.SnapshotInfo, error) {
	set, err := psi.NewSet(psi.SetConfig{Kind: kind, Workers: int(s.workers)})
	if err != nil {
		return nil, store.SnapshotInfo{}, err
	}
	snap, err := s.cfg.Sets.Snapshot(ctx, kind, func(d [32]byte) error {
		if before != nil {
			if err := before(); err != nil {
				return err
			}
		}
		set.Add(d)
		return nil
	})
	if err == nil {
		err = set.Finish()
	}
	if err != nil {
		set.Destroy()
		return nil, store.SnapshotInfo{}, err
	}
	s.met.setElements.Add(float64(snap.Size))
	return set, snap, nil
}

// internal logs an internal failure and returns an error that tells the
// client no more than that. When the session's stream is done (the client
// went away, or the server is shutting down) the failure is that, not an
// internal error: it returns the stream's error, for classify.
func (s *Server) internal(ss *session, what string, err error) error {
	if ss.ctx != nil && ss.ctx.Err() != nil {
		return ss.ctx.Err()
	}
	s.log.Error("session failed", "session", ss.rec.ID, "step", what, "err", err)
	return connect.NewError(connect.CodeInternal, fmt.Errorf("internal error while %s", what))
}

// classify names the result of a session that ended on a transport error:
// the server shutting down (aborted), a deadline (timeout), or else the
// client going away or canceling (canceled).
func (s *Server) classify(ctx context.Context, err error) string {
	switch {
	case s.base.Err() != nil:
		return ResultAborted
	case errors.Is(err, context.DeadlineExceeded):
		return ResultTimeout
	}
	return ResultCanceled
}

// settle decides, at the end of a session, whether it was abandoned and
// whether its reservation is refunded: a journaled session is refunded if
// it failed before it sent any element derived from the server's set
// (SPEC.md §10.8.2), whatever the reason, abandoned sessions included.
func (s *Server) settle(ss *session) (refund bool) {
	if !ss.journaled {
		return false
	}
	if !ss.clientSent {
		switch ss.result {
		case ResultCanceled, ResultTruncated, ResultTimeout:
			ss.detail = fmt.Sprintf("the client left after admission without sending any element (%s): %s", ss.result, ss.detail)
			ss.result = ResultAbandoned
			s.met.abandoned.Inc()
		}
	}
	if ss.result == ResultOK || ss.phase != store.PhaseAdmitted {
		return false
	}
	ss.rec.BudgetSpent, ss.rec.EpsilonSpent = 0, 0
	return true
}

func (s *Server) claim(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight[id] {
		return false
	}
	s.inFlight[id] = true
	return true
}

func (s *Server) release(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inFlight, id)
}

// finish writes the session's audit row and log line, whatever happened.
func (s *Server) finish(ctx context.Context, ss *session) {
	if ss.result == "" {
		ss.result = ResultInternal
	}
	refund := s.settle(ss)
	ss.rec.EndedAt = s.cfg.now()
	ss.rec.Result, ss.rec.Detail = ss.result, ss.detail
	s.record(ctx, ss, refund)
	d := ss.rec.EndedAt.Sub(ss.rec.StartedAt)
	s.met.sessions.WithLabelValues(ss.rec.Result).Inc()
	s.met.duration.WithLabelValues(ss.rec.Result).Observe(d.Seconds())
	level := slog.LevelInfo
	switch ss.rec.Result {
	case ResultOK, ResultCanceled, ResultAbandoned:
	default:
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("session", ss.rec.ID),
		slog.String("advertiser", ss.adv.Name),
		slog.Int64("advertiser_id", ss.adv.ID),
		slog.String("mode", ss.rec.Mode),
		slog.String("kind", kindName(ss.rec.Kind)),
		slog.Int64("list_size", ss.rec.ListSize),
		slog.Int64("server_set_bucket", ss.rec.ServerSize),
		slog.Int64("snapshot_version", ss.rec.SnapshotVersion),
		slog.Int64("budget_spent", ss.rec.BudgetSpent),
		slog.String("epsilon_spent", store.FormatEpsilon(ss.rec.EpsilonSpent)),
		slog.String("result", ss.rec.Result),
		slog.Float64("duration_s", d.Seconds()),
	}
	if ss.rec.Detail != "" {
		attrs = append(attrs, slog.String("reason", ss.rec.Detail))
	}
	s.log.LogAttrs(context.WithoutCancel(ctx), level, "session ended", attrs...)
}

func kindName(k psi.Kind) string {
	if k == 0 {
		return ""
	}
	return k.String()
}
