package service

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"connectrpc.com/connect"

	"github.com/overlap-psi/overlap/psi"
	pb "github.com/overlap-psi/overlap/psi/service/gen/overlap/v1"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

// streamConn is the server's end of one Match stream as a psi.Conn: the
// session's sequence (psi's Serve) runs over it. Each frame in and out has
// IdleTimeout to arrive or be taken. It attaches the consent snapshot to
// the first response (SPEC.md §11), journals the session's spend as final
// before the first element derived from the set leaves (SPEC.md §8.6),
// and notes when the client sent anything after its hello.
type streamConn struct {
	s    *Server
	ss   *session
	st   *connect.BidiStream[pb.MatchRequest, pb.MatchResponse]
	ci   *connInfo
	snap *store.SnapshotInfo // set before the first Send
	// kindSnaps are a record session's snapshots, one per kind (SPEC.md
	// §13.3), sent with the first response; nil otherwise.
	kindSnaps []store.SnapshotInfo
	sent      int // frames sent
	recv      int // frames received
}

var _ psi.Conn = (*streamConn)(nil)

// streamError marks an error of the stream itself (the client went away,
// the server is shutting down): the session's result is decided by
// classify, not by the protocol.
type streamError struct{ err error }

func (e *streamError) Error() string { return e.err.Error() }
func (e *streamError) Unwrap() error { return e.err }

func (s *Server) newStreamConn(ctx context.Context, ss *session, st *connect.BidiStream[pb.MatchRequest, pb.MatchResponse]) *streamConn {
	return &streamConn{s: s, ss: ss, st: st, ci: connInfoFrom(ctx)}
}

// timedOut fails the session as idle when err came after the deadline.
func (c *streamConn) timedOut(deadline time.Time, err error) error {
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return err
	case !time.Now().Before(deadline):
		return c.ss.fail(ResultTimeout, connect.NewError(connect.CodeDeadlineExceeded,
			fmt.Errorf("the client was idle for %v", c.s.cfg.IdleTimeout)))
	}
	return &streamError{err}
}

// Recv implements psi.Conn.
func (c *streamConn) Recv() ([]byte, error) {
	deadline := time.Now().Add(c.s.cfg.IdleTimeout)
	if c.ci != nil {
		c.ci.rc.SetReadDeadline(deadline)
	}
	m, err := c.st.Receive()
	if c.ci != nil {
		// An HTTP/2 deadline resets the stream when it passes, also
		// while the handler is busy: clear it.
		c.ci.rc.SetReadDeadline(time.Time{})
	}
	if connect.CodeOf(err) == connect.CodeResourceExhausted {
		// Connect's read cap (SPEC.md §5.6): a frame larger than any valid one.
		return nil, fmt.Errorf("%w: a message larger than the largest valid frame of %d bytes", psi.ErrPeer, c.s.maxRequestBytes())
	}
	if err != nil {
		return nil, c.timedOut(deadline, err)
	}
	if c.recv++; c.recv > 1 {
		c.ss.clientSent = true
	}
	return m.Frame, nil
}

// Send implements psi.Conn.
func (c *streamConn) Send(frame []byte) error {
	m := &pb.MatchResponse{Frame: frame}
	if c.sent == 0 {
		if err := c.params(frame); err != nil {
			return err
		}
		m.Snapshot = &pb.Snapshot{Version: c.snap.Version, Digest: c.snap.Digest[:], TakenAtUnixMicros: c.snap.TakenAt.UnixMicro()}
		for _, ks := range c.kindSnaps {
			m.Snapshots = append(m.Snapshots, &pb.Snapshot{Version: ks.Version, Digest: ks.Digest[:],
				TakenAtUnixMicros: ks.TakenAt.UnixMicro(), Kind: int32(ks.Kind)})
		}
	}
	if t, _ := wire.PeekType(frame); c.ss.phase == store.PhaseAdmitted && derivedFromSet(t) {
		if err := c.s.elementsSent(c.ss); err != nil {
			return err
		}
	}
	c.sent++
	deadline := time.Now().Add(c.s.cfg.IdleTimeout)
	if c.ci != nil {
		c.ci.rc.SetWriteDeadline(deadline)
	}
	err := c.st.Send(m)
	if c.ci != nil {
		c.ci.rc.SetWriteDeadline(time.Time{})
	}
	return c.timedOut(deadline, err)
}

// CloseSend implements psi.Conn: the handler's return closes the stream.
func (c *streamConn) CloseSend() error { return nil }

// params records the server set size the session's parameters announce.
func (c *streamConn) params(frame []byte) error {
	t, _ := wire.PeekType(frame)
	switch t {
	case wire.TypeServerParams:
		var p wire.ServerParams
		if err := p.UnmarshalBinary(frame); err != nil {
			return err
		}
		c.ss.rec.ServerSize = int64(p.ServerSize)
	case wire.TypePrivateParams:
		var p wire.PrivateParams
		if err := p.UnmarshalBinary(frame); err != nil {
			return err
		}
		c.ss.rec.ServerSize = int64(p.ServerSize)
	case wire.TypeEpochParams:
		var p wire.EpochParams
		if err := p.UnmarshalBinary(frame); err != nil {
			return err
		}
		c.ss.rec.ServerSize = int64(p.ServerSize)
		c.ss.rec.EpochID = hex.EncodeToString(p.Epoch[:])
		c.ss.rec.EpochExpiresAt = time.Unix(int64(p.ExpiresAt), 0).UTC()
	}
	return nil
}

// derivedFromSet reports whether a message of type t carries elements
// derived from the server's set: once one is sent, the spend is final
// (SPEC.md §10.8.2).
func derivedFromSet(t wire.Type) bool {
	// An epoch session's release is the first such message it sends
	// (SPEC.md §10.12.2); in mode 2 the elements came before it.
	return t == wire.TypeEvaluated || t == wire.TypeServerSet || t == wire.TypeServerElements || t == wire.TypePrivateRelease
}

// sessionError names the result of a session that failed with err and
// returns the error for the client: the protocol's errors are the client's
// fault, the stream's are classified when the session ends, and anything
// else is internal.
func (s *Server) sessionError(ss *session, err error) error {
	var se *streamError
	switch {
	case err == nil || ss.result != "":
		return err
	case errors.As(err, &se):
		return se.err
	case ss.ctx.Err() != nil: // the stream ended under the session
		return err
	case errors.Is(err, psi.ErrDeviation) && ss.rec.Mode == wire.ModeEpochSetup.String():
		return ss.fail(ResultDeviation, connect.NewError(connect.CodeInvalidArgument,
			errors.New("the tags failed the ringer check (SPEC.md §10.12.1): the client did not raise every element to one exponent; nothing is kept, and the setup counts toward the advertiser's setup limit")))
	case errors.Is(err, psi.ErrDeviation):
		return ss.fail(ResultDeviation, connect.NewError(connect.CodeInvalidArgument,
			errors.New("the returned elements failed the ringer check (SPEC.md §10.5): the client did not raise every element to one exponent; nothing is released and the session's budget is spent")))
	case errors.Is(err, psi.ErrTruncated):
		return ss.fail(ResultTruncated, connect.NewError(connect.CodeInvalidArgument, err))
	case errors.Is(err, psi.ErrPeer), errors.Is(err, psi.ErrParams):
		return ss.fail(ResultPeerError, connect.NewError(connect.CodeInvalidArgument, err))
	}
	return ss.fail(ResultInternal, s.internal(ss, "running the session", err))
}
