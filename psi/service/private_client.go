package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/wire"
)

// PrivateMatchResult is what a private-mode session tells the advertiser:
// the noised, thresholded release with its 95% interval (SPEC.md §10.6),
// never the exact count.
type PrivateMatchResult struct {
	Result    psi.PrivateResult
	SessionID string // the server's audit id of the session
	Snapshot  Snapshot
	Traffic   Traffic
	Elapsed   time.Duration
	// Params is when PrivateParams arrived, from the start of the call: the
	// time of TLS, the policy checks, the budget reservation and the
	// server's encoding of its set.
	Params time.Duration
}

// MatchPrivate runs one private-mode session (SPEC.md §10): the server
// counts and releases a differentially private count. The client's work
// and memory grow with the server's set: it raises each of the server's N
// elements to its key and holds the N results (32 bytes each) to shuffle
// them. Errors from the server are Connect errors; RefusalOf tells a
// policy refusal.
func (c *Client) MatchPrivate(ctx context.Context, req MatchRequest) (PrivateMatchResult, error) {
	start := time.Now()
	// MaxServerSize 0 takes psi.DefaultPrivateMaxServerSize.
	pc, err := psi.NewPrivateClient(psi.PrivateClientConfig{Kind: req.Kind, CanonVersion: ident.Version, CanonFlags: req.CanonFlags,
		MaxServerSize: c.cfg.MaxServerSize, Workers: c.cfg.Workers}, req.Digests)
	if err != nil {
		return PrivateMatchResult{}, err
	}
	defer pc.Close()
	progress := req.progress()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var res PrivateMatchResult
	tr := &res.Traffic

	st := c.open(ctx, tr)
	defer st.close()
	send, receive := st.send, st.receive
	peer := func(what string, err error) error { return fmt.Errorf("%w: %s: %v", psi.ErrPeer, what, err) }

	hello, _ := pc.Hello().MarshalBinary()
	m, err := st.start(hello)
	if err != nil {
		return res, err
	}
	res.SessionID, res.Snapshot = st.sessionID(), st.snap
	if t, _ := wire.PeekType(m.Frame); t == wire.TypeServerParams {
		return res, fmt.Errorf("%w: the server answered a private-mode hello in exact mode", psi.ErrPeer)
	}
	var params wire.PrivateParams
	if err := params.UnmarshalBinary(m.Frame); err != nil {
		return res, peer("PrivateParams", err)
	}
	if err := pc.ReceiveParams(&params); err != nil {
		return res, err
	}
	res.Params = time.Since(start)

	// The server's elements, each raised to the client's key.
	total := int(params.ServerSize)
	for got := 0; got < total; {
		m, err := receive()
		if err != nil {
			return res, err
		}
		var ch wire.ElementChunk
		if err := ch.UnmarshalBinary(m.Frame, wire.TypeServerElements); err != nil {
			return res, peer("server element chunk", err)
		}
		if err := pc.ReceiveServerElements(&ch); err != nil {
			return res, err
		}
		got += ch.Count()
		progress(Progress{Phase: "raising", Done: got, Total: total})
	}
	key, err := pc.ClientKey()
	if err != nil {
		return res, err
	}
	frame, _ := key.MarshalBinary()
	if err := send(frame); err != nil {
		return res, err
	}

	// The client's own list, blinded, then the returned elements.
	stream := func(phase string, n int, next func() (*wire.ElementChunk, bool, error)) error {
		done := 0
		var buf []byte
		for {
			ch, ok, err := next()
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if buf, err = ch.AppendBinary(buf[:0]); err != nil {
				return err
			}
			if err := send(buf); err != nil {
				return err
			}
			done += ch.Count()
			progress(Progress{Phase: phase, Done: done, Total: n})
		}
	}
	if err := stream("sending", pc.Size(), pc.NextBlinded); err != nil {
		return res, err
	}
	if err := stream("returning", total, pc.NextReturned); err != nil {
		return res, err
	}
	if err := st.st.CloseRequest(); err != nil {
		return res, err
	}
	m, err = receive()
	if err != nil {
		return res, err
	}
	var rel wire.PrivateRelease
	if err := rel.UnmarshalBinary(m.Frame); err != nil {
		return res, peer("PrivateRelease", err)
	}
	r, err := pc.ReceiveRelease(&rel)
	if err != nil {
		return res, err
	}
	if _, err := st.st.Receive(); err == nil {
		return res, fmt.Errorf("%w: a message after the release", psi.ErrPeer)
	} else if err = broken(err); !errors.Is(err, io.EOF) {
		return res, err
	}
	res.Result = r
	res.Elapsed = time.Since(start)
	st.countWire()
	return res, nil
}
