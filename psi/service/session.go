package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"connectrpc.com/connect"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/dp"
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
	return ss.fail("refused_"+err.Meta().Get(client.MetaLimit), err)
}

// match runs one session on st: admission (authentication, the server's
// and the advertiser's session slots, the hello against the policy), then
// the mode's reservation, set and sequence. Every session, refused or not,
// ends in finish.
func (s *Server) match(ctx context.Context, st *connect.BidiStream[pb.MatchRequest, pb.MatchResponse]) (err error) {
	start := s.cfg.now()
	if !s.enter() {
		return connect.NewError(connect.CodeUnavailable, errors.New("the server is shutting down; retry shortly"))
	}
	defer s.wg.Done()
	ss, err := s.authenticated(ctx, st, start)
	if err != nil {
		return err
	}
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
	release, err := s.takeSlots(ss)
	if err != nil {
		return err
	}
	defer release()

	// The hello, and every policy check, before any scalar multiplication.
	conn := s.newStreamConn(ctx, ss, st)
	hello, records, err := psi.RecvOpening(conn)
	if err != nil {
		return s.sessionError(ss, err)
	}
	pol := s.cfg.Policy.For(ss.adv.Policy)
	if records != nil {
		if err := s.checkRecordsHello(ss, records, pol); err != nil {
			return err
		}
		return s.sessionError(ss, s.serveRecords(ctx, ss, conn, records, pol))
	}
	if err := s.checkHello(ss, hello, pol); err != nil {
		return err
	}
	run := s.serveExact
	switch hello.Mode {
	case wire.ModePrivate:
		run = s.servePrivate
	case wire.ModeEpochSetup:
		run = s.serveSetup
	case wire.ModeEpochSession:
		run = s.serveEpoch
	}
	return s.sessionError(ss, run(ctx, ss, conn, hello, pol))
}

// enter counts a session in, unless the server is shutting down.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return false
	}
	s.wg.Add(1) // under mu, so never after Shutdown's Wait began
	return true
}

// authenticated authenticates the stream's advertiser and starts the
// session's record. A refused revoked advertiser is audited.
func (s *Server) authenticated(ctx context.Context, st *connect.BidiStream[pb.MatchRequest, pb.MatchResponse], start time.Time) (*session, error) {
	adv, err := s.authenticate(ctx, st.RequestHeader())
	ss := &session{ctx: ctx, adv: adv, rec: store.SessionRecord{ID: newSessionID(), Advertiser: adv.ID, Mode: wire.ModeExact.String(), StartedAt: start}}
	if err == nil {
		return ss, nil
	}
	result := ResultUnauthenticated
	if connect.CodeOf(err) == connect.CodePermissionDenied {
		result = ResultPermissionDenied
	}
	s.met.sessions.WithLabelValues(result).Inc()
	s.log.LogAttrs(ctx, slog.LevelWarn, "session refused", slog.String("result", result),
		slog.String("reason", connect.CodeOf(err).String()), slog.String("peer", st.Peer().Addr))
	if adv.ID != 0 { // revoked: known advertiser, audited
		ss.fail(result, err)
		s.finish(ctx, ss)
	}
	return nil, err
}

// takeSlots takes one of the server's session slots and the advertiser's
// one, and returns what gives them back.
func (s *Server) takeSlots(ss *session) (release func(), err error) {
	select {
	case s.sessions <- struct{}{}:
	default:
		return nil, ss.refuse(refusal(connect.CodeResourceExhausted, client.LimitServerSessions, time.Time{},
			"the server is running its limit of %d sessions; retry later", s.cfg.MaxSessions))
	}
	if !s.claim(ss.adv.ID) {
		<-s.sessions
		return nil, ss.refuse(refusal(connect.CodeResourceExhausted, client.LimitAdvertiserSessions, time.Time{},
			"advertiser %q already has a session in flight; one at a time", ss.adv.Name))
	}
	return func() { s.release(ss.adv.ID); <-s.sessions }, nil
}

// checkHello checks the hello against the advertiser's policy: a kind and
// mode the server knows, a mode served to the advertiser, then the limits
// every mode shares (psi.HelloLimits), each refusal naming its limit.
func (s *Server) checkHello(ss *session, hello *wire.ClientHello, pol Policy) error {
	kind := hello.Kind
	ss.rec.ListSize = int64(hello.ClientSize)
	if hello.Mode >= wire.ModeExact && hello.Mode <= wire.ModeEpochSession {
		ss.rec.Mode = hello.Mode.String() // also on the audit row of a refusal
	}
	switch {
	case !kind.Valid():
		return ss.refuse(refusal(connect.CodeInvalidArgument, client.LimitKind, time.Time{}, "unknown identifier kind %d", hello.Kind))
	case hello.Mode < wire.ModeExact || hello.Mode > wire.ModeEpochSession:
		return ss.refuse(refusal(connect.CodeUnimplemented, client.LimitMode, time.Time{}, "unknown mode %d; this server serves exact, private and epoch mode", uint8(hello.Mode)))
	case !ss.adv.Policy.Modes.Has(uint8(hello.Mode)):
		return ss.refuse(refusal(connect.CodeFailedPrecondition, client.LimitMode, time.Time{},
			"%v mode is not served to advertiser %q, which is served %v mode", hello.Mode, ss.adv.Name, ss.adv.Policy.Modes))
	}
	if err := pol.helloLimits(hello).Check(hello); err != nil {
		var he *psi.HelloError
		errors.As(err, &he)
		return ss.refuse(refusal(connect.CodeFailedPrecondition, he.Check, time.Time{}, "%s, for advertiser %q", he.Detail(), ss.adv.Name))
	}
	// An epoch session uses its epoch's suite, checked with its ticket
	// (serveEpoch); every other session the server's first choice that the
	// client offers (SPEC.md §12.1).
	if hello.Mode != wire.ModeEpochSession {
		suite, err := psi.ChooseSuite(hello.Suites, s.cfg.Suites)
		if err != nil {
			var se *psi.SuiteError
			errors.As(err, &se)
			return ss.refuse(refusal(connect.CodeFailedPrecondition, client.LimitSuite, time.Time{}, "%s", se.Detail()))
		}
		ss.rec.Suite = suite
	}
	ss.rec.Kind = kind
	ss.rec.Mode = hello.Mode.String()
	return nil
}

// serveExact runs an exact-mode session (SPEC.md §4) after admission: the
// identifier budget and the journal row, the session's set, then psi's
// sequence over conn.
func (s *Server) serveExact(ctx context.Context, ss *session, conn *streamConn, hello *wire.ClientHello, pol Policy) error {
	if err := s.reserve(ss, store.BudgetRequest{Identifiers: ss.rec.ListSize, Limit: pol.Budget}, pol); err != nil {
		return err
	}
	set, snap, err := s.prepare(ctx, ss.rec.Kind, ss.rec.Suite)
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
	s.useSnapshot(ss, conn, snap)
	return srv.Serve(conn, hello, s.hooks(ctx))
}

// reserve admits the session in the store and reserves its budgets with
// its journal row (r's amounts; the rest comes from the session and pol),
// and turns a refusal into the refusal of the limit that refused it. The
// store checks, in the reservation's transaction, the limits that hold
// across every server sharing it (journal.go): the advertiser's sessions
// in flight and its abandoned sessions, then the budgets.
func (s *Server) reserve(ss *session, r store.BudgetRequest, pol Policy) error {
	r.Advertiser, r.Session, r.Window, r.At = ss.adv.ID, ss.rec.ID, pol.BudgetWindow, s.cfg.now()
	r.Admission = s.admission(r.At)
	err := s.admit(ss, r)
	var be *store.BudgetError
	var ae *store.AdmissionError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae):
		return s.notAdmitted(ss, ae)
	case errors.As(err, &be):
		s.met.budgetRefusals.Inc()
		limit := client.LimitBudget
		if be.Budget == "privacy" {
			limit = client.LimitPrivacyBudget
		}
		return ss.refuse(refusal(connect.CodeResourceExhausted, limit, be.ResetsAt, "%s", be.Error()))
	}
	return s.storeFailure(ss, "budget reservation", err)
}

// notAdmitted refuses a session the store's admission refused: the
// advertiser's abandoned sessions, or its session in flight.
func (s *Server) notAdmitted(ss *session, ae *store.AdmissionError) error {
	if ae.Limit == store.AdmissionAbandoned {
		s.met.throttled.Inc()
		return ss.refuse(refusal(connect.CodeResourceExhausted, client.LimitAbandoned, ae.ResetsAt,
			"advertiser %q abandoned %d sessions after admission in the last hour; the next one is accepted after %s",
			ss.adv.Name, ae.Count, ae.ResetsAt.UTC().Format(time.RFC3339)))
	}
	return ss.refuse(refusal(connect.CodeResourceExhausted, client.LimitAdvertiserSessions, time.Time{},
		"advertiser %q already has a session in flight on this service; one at a time", ss.adv.Name))
}

// prepareFailure fails a session whose set could not be prepared.
func (s *Server) prepareFailure(ctx context.Context, ss *session, err error) error {
	if ctx.Err() != nil {
		return err
	}
	return ss.fail(ResultInternal, s.internal(ss, "preparing the set", err))
}

// useSnapshot records the snapshot the session's set came from, and has
// conn send it with the parameters.
func (s *Server) useSnapshot(ss *session, conn *streamConn, snap store.SnapshotInfo) {
	ss.rec.SnapshotVersion, ss.rec.SnapshotDigest = snap.Version, snap.Digest
	conn.snap = &snap
}

// hooks paces a session's scalar multiplications by the server's CPU
// workers and counts the elements it evaluates.
func (s *Server) hooks(ctx context.Context) *psi.Hooks {
	return &psi.Hooks{
		Work:     func(fn func() error) error { return s.withCPU(ctx, fn) },
		Elements: func(n int) { s.met.elements.Add(float64(n)) },
	}
}

// withCPU runs fn holding the session's share of the CPU workers.
func (s *Server) withCPU(ctx context.Context, fn func() error) error {
	if err := s.cpu.Acquire(ctx, s.workers); err != nil {
		return err
	}
	defer s.cpu.Release(s.workers)
	return fn()
}

// prepare returns the set of kind for one session and the snapshot it
// came from: a prepared set from the warm pool if its snapshot is still
// the current set (pool.go), else the matchable set
// encoded now from a fresh snapshot, holding the session's share of the
// CPU workers.
func (s *Server) prepare(ctx context.Context, kind psi.Kind, suite psi.Suite) (*psi.PreparedSet, store.SnapshotInfo, error) {
	if set, snap, ok, err := s.pool.warm(ctx, kind, suite); err != nil || ok {
		return set, snap, err
	}
	if err := s.cpu.Acquire(ctx, s.workers); err != nil {
		return nil, store.SnapshotInfo{}, err
	}
	defer s.cpu.Release(s.workers)
	set, snap, err := s.encodeSet(ctx, kind, suite, nil)
	if err != nil {
		return nil, store.SnapshotInfo{}, err
	}
	s.pool.observe(kind, snap)
	return set, snap, nil
}

// encodeSet encodes the matchable set of kind from a fresh snapshot, in suite, into
// a new single-use prepared set. before, if not nil, runs before each
// digest is added; an error from it stops the encoding (the pool yields
// the workers to sessions there).
func (s *Server) encodeSet(ctx context.Context, kind psi.Kind, suite psi.Suite, before func() error) (*psi.PreparedSet, store.SnapshotInfo, error) {
	set, err := psi.NewSet(psi.SetConfig{Kind: kind, Suite: suite, Workers: int(s.workers)})
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
		slog.Int("kinds", int(ss.rec.Kinds)), // a record session's kind set (SPEC.md §13.3); 0 otherwise
		slog.Int("slots", ss.rec.Slots),
		slog.Int64("list_size", ss.rec.ListSize),
		slog.Int64("server_set_bucket", ss.rec.ServerSize),
		slog.Int64("snapshot_version", ss.rec.SnapshotVersion),
		slog.Int64("budget_spent", ss.rec.BudgetSpent),
		slog.String("epsilon_spent", dp.Epsilon(ss.rec.EpsilonSpent).String()),
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
