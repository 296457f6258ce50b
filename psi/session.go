package psi

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/overlap-psi/overlap/psi/wire"
)

// This file holds the one sequence of each session shape (SPEC.md §5.8,
// §10.1): which message goes when, and what ends the session. A transport
// only carries frames; the in-process runner of the tests, the service's
// client and its server all play sessions through these functions.

// Conn carries the frames of one session between the two roles: each frame
// is one encoded message of SPEC.md §5 or §10.7. It is what a transport
// provides.
//
// Send may keep the frame only until it returns. Recv returns io.EOF once
// the peer has closed its sending side (CloseSend), and the transport's
// own error when it broke; the sequences return such errors unchanged, so
// a transport can tell its errors from the protocol's.
type Conn interface {
	Send(frame []byte) error
	Recv() ([]byte, error)
	CloseSend() error
}

// ErrTruncated reports a peer that stopped sending before its part of the
// session was complete: it closed its side early.
var ErrTruncated = errors.New("psi: the peer ended the session early")

// Hooks let the party that runs a session watch and pace it. Every field
// may be nil.
type Hooks struct {
	// Progress is told how far a phase got, after each chunk: "params"
	// (1 of 1, once the parameters are accepted) and then, in exact mode,
	// the client's "sending", "receiving" and "counting" (total 0: the
	// set's chunk count is not announced), and in private mode the
	// client's "raising", "sending" and "returning".
	Progress func(phase string, done, total int)
	// Work runs fn, one batch of scalar multiplications of a server; a
	// service uses it to hold a share of its CPU workers meanwhile.
	Work func(fn func() error) error
	// Elements is told how many elements a server has just received and
	// processed.
	Elements func(n int)
}

func (h *Hooks) progress(phase string, done, total int) {
	if h != nil && h.Progress != nil {
		h.Progress(phase, done, total)
	}
}

func (h *Hooks) work(fn func() error) error {
	if h == nil || h.Work == nil {
		return fn()
	}
	return h.Work(fn)
}

func (h *Hooks) elements(n int) {
	if h != nil && h.Elements != nil {
		h.Elements(n)
	}
}

type marshaler interface {
	AppendBinary([]byte) ([]byte, error)
}

func send(conn Conn, m marshaler) error {
	b, err := m.AppendBinary(nil)
	if err != nil {
		return err
	}
	return conn.Send(b)
}

// recv receives the next frame, which must exist: io.EOF becomes
// ErrTruncated with what was expected.
func recv(conn Conn, what string) ([]byte, error) {
	b, err := conn.Recv()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: the stream ended before %s", ErrTruncated, what)
	}
	return b, err
}

// recvEnd expects the peer to close its side now: a session evaluates one
// request.
func recvEnd(conn Conn, after string) error {
	_, err := conn.Recv()
	switch {
	case err == nil:
		return fmt.Errorf("%w: a message after %s (a session evaluates one request)", ErrPeer, after)
	case errors.Is(err, io.EOF):
		return nil
	}
	return err
}

// sendChunks sends every chunk next yields, reusing one buffer, and reports
// the elements sent to progress.
func sendChunks(conn Conn, next func() (*wire.ElementChunk, bool, error), progress func(done int)) error {
	var buf []byte
	done := 0
	for {
		ch, ok, err := next()
		if err != nil || !ok {
			return err
		}
		if buf, err = ch.AppendBinary(buf[:0]); err != nil {
			return err
		}
		if err := conn.Send(buf); err != nil {
			return err
		}
		done += ch.Count()
		progress(done)
	}
}

// sendChunksAhead is sendChunks with the next chunk computed while the
// previous one is being sent: next does the scalar multiplications, Send
// waits on the network.
func sendChunksAhead(conn Conn, next func() (*wire.ElementChunk, bool, error), progress func(done int)) error {
	type item struct {
		frame []byte
		count int
		err   error
	}
	items := make(chan item, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(items)
		for {
			ch, ok, err := next()
			if err != nil || !ok {
				if err != nil {
					items <- item{err: err}
				}
				return
			}
			b, err := ch.MarshalBinary()
			select {
			case items <- item{frame: b, count: ch.Count(), err: err}:
			case <-stop:
				return
			}
		}
	}()
	defer wg.Wait()
	done := 0
	for it := range items {
		err := it.err
		if err == nil {
			err = conn.Send(it.frame)
		}
		if err != nil {
			close(stop)
			for range items { // let the producer see stop and finish
			}
			return err
		}
		done += it.count
		progress(done)
	}
	return nil
}

// recvChunks receives element chunks of type typ until want elements
// arrived, passing each to receive under h.Work.
func recvChunks(conn Conn, h *Hooks, typ wire.Type, what string, want int, receive func(*wire.ElementChunk) error, progress func(done int)) error {
	for got := 0; got < want; {
		b, err := conn.Recv()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: the stream ended after %d of %d %s", ErrTruncated, got, want, what)
		}
		if err != nil {
			return err
		}
		var ch wire.ElementChunk
		if err := ch.UnmarshalBinary(b, typ); err != nil {
			return fmt.Errorf("%w: %v: %v", ErrPeer, typ, err)
		}
		if err := h.work(func() error { return receive(&ch) }); err != nil {
			return err
		}
		got += ch.Count()
		h.elements(ch.Count())
		progress(got)
	}
	return nil
}

// RecvHello receives a session's first message, the ClientHello (SPEC.md
// §5.2). The server checks it against its policy before it creates the
// role for the hello's mode and calls Serve.
func RecvHello(conn Conn) (*wire.ClientHello, error) {
	b, err := recv(conn, "the ClientHello")
	if err != nil {
		return nil, err
	}
	var h wire.ClientHello
	if err := h.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("%w: ClientHello: %v", ErrPeer, err)
	}
	return &h, nil
}

// Run plays the client's side of an exact-mode session over conn (SPEC.md
// §4, §5.8), of identifiers or of records (§13.4): the hello, the server's parameters, the blinded list (the next
// chunk blinded while the previous one is sent), then the evaluated
// elements and the server's set until the server closes its side.
func (c *Client) Run(conn Conn, h *Hooks) (Result, error) {
	if err := send(conn, c.opening()); err != nil {
		return Result{}, err
	}
	b, err := recv(conn, "the ServerParams")
	if err != nil {
		return Result{}, err
	}
	var p wire.ServerParams
	if err := p.UnmarshalBinary(b); err != nil {
		return Result{}, c.fail(fmt.Errorf("%w: ServerParams: %v", ErrPeer, err))
	}
	if err := c.ReceiveParams(&p); err != nil {
		return Result{}, err
	}
	h.progress("params", 1, 1)
	n := c.Size()
	if err := sendChunksAhead(conn, c.NextBlinded, func(done int) { h.progress("sending", done, n) }); err != nil {
		return Result{}, err
	}
	if err := conn.CloseSend(); err != nil {
		return Result{}, err
	}
	for got := 0; ; {
		b, err := conn.Recv()
		if errors.Is(err, io.EOF) {
			return c.Result()
		}
		if err != nil {
			return Result{}, err
		}
		switch t, _ := wire.PeekType(b); t {
		case wire.TypeEvaluated:
			var ch wire.ElementChunk
			if err := ch.UnmarshalBinary(b, wire.TypeEvaluated); err != nil {
				return Result{}, c.fail(fmt.Errorf("%w: %v", ErrPeer, err))
			}
			if err := c.ReceiveEvaluated(&ch); err != nil {
				return Result{}, err
			}
			got += ch.Count()
			h.progress("receiving", got, n)
		case wire.TypeServerSet:
			var ch wire.SetChunk
			if err := ch.UnmarshalBinary(b); err != nil {
				return Result{}, c.fail(fmt.Errorf("%w: %v", ErrPeer, err))
			}
			if err := c.ReceiveSetChunk(&ch); err != nil {
				return Result{}, err
			}
			h.progress("counting", int(ch.Seq)+1, 0)
		default:
			return Result{}, c.fail(fmt.Errorf("%w: unexpected message of type %v", ErrPeer, t))
		}
	}
}

// Serve plays the server's side of an exact-mode session over conn after
// its hello (RecvHello) passed the caller's admission: the parameters, the
// blinded request and then nothing more from the client, the evaluated
// elements and the Golomb-coded set. The caller closes the stream when
// Serve returns.
func (s *Server) Serve(conn Conn, hello *wire.ClientHello, h *Hooks) error {
	return s.serve(conn, func() (*wire.ServerParams, error) { return s.ReceiveHello(hello) }, h)
}

// ServeRecords plays the server's side of a record session in exact mode
// (SPEC.md §13.4) after its hello (RecvOpening) passed the caller's
// admission: the sequence of Serve.
func (s *Server) ServeRecords(conn Conn, hello *wire.RecordsHello, h *Hooks) error {
	return s.serve(conn, func() (*wire.ServerParams, error) { return s.ReceiveRecordsHello(hello) }, h)
}

// serve is the sequence of an exact-mode session, of identifiers or of
// records, once the hello has been received.
func (s *Server) serve(conn Conn, receiveHello func() (*wire.ServerParams, error), h *Hooks) error {
	p, err := receiveHello()
	if err != nil {
		return err
	}
	if err := send(conn, p); err != nil {
		return err
	}
	if err := recvChunks(conn, h, wire.TypeBlinded, "blinded elements", s.n, s.ReceiveBlinded, func(int) {}); err != nil {
		return err
	}
	if err := recvEnd(conn, "the last blinded chunk"); err != nil {
		return err
	}
	if err := sendChunks(conn, s.NextEvaluated, func(int) {}); err != nil {
		return err
	}
	for {
		ch, ok, err := s.NextSetChunk()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := send(conn, ch); err != nil {
			return err
		}
	}
	if !s.Done() {
		return fmt.Errorf("%w: server did not finish", ErrState)
	}
	return nil
}

// Run plays the client's side of a private-mode session over conn (SPEC.md
// §10.1): the hello, the parameters, the server's elements raised to the
// client's key, the client key, the blinded list and the returned elements,
// then the release, after which the server must close its side.
func (c *PrivateClient) Run(conn Conn, h *Hooks) (PrivateResult, error) {
	if err := send(conn, c.opening()); err != nil {
		return PrivateResult{}, err
	}
	b, err := recv(conn, "the PrivateParams")
	if err != nil {
		return PrivateResult{}, err
	}
	if t, _ := wire.PeekType(b); t == wire.TypeServerParams {
		return PrivateResult{}, c.fail(fmt.Errorf("%w: the server answered a private-mode hello in exact mode", ErrPeer))
	}
	var p wire.PrivateParams
	if err := p.UnmarshalBinary(b); err != nil {
		return PrivateResult{}, c.fail(fmt.Errorf("%w: PrivateParams: %v", ErrPeer, err))
	}
	if err := c.ReceiveParams(&p); err != nil {
		return PrivateResult{}, err
	}
	h.progress("params", 1, 1)
	total := int(p.ServerSize)
	if err := recvChunks(conn, nil, wire.TypeServerElements, "server elements", total, c.ReceiveServerElements,
		func(done int) { h.progress("raising", done, total) }); err != nil {
		return PrivateResult{}, err
	}
	key, err := c.ClientKey()
	if err != nil {
		return PrivateResult{}, err
	}
	if err := send(conn, key); err != nil {
		return PrivateResult{}, err
	}
	n := c.Size()
	if err := sendChunks(conn, c.NextBlinded, func(done int) { h.progress("sending", done, n) }); err != nil {
		return PrivateResult{}, err
	}
	if err := sendChunks(conn, c.NextReturned, func(done int) { h.progress("returning", done, total) }); err != nil {
		return PrivateResult{}, err
	}
	if err := conn.CloseSend(); err != nil {
		return PrivateResult{}, err
	}
	return c.recvRelease(conn)
}

// Serve plays the server's side of a private-mode session over conn after
// its hello (RecvHello) passed the caller's admission, with the privacy
// budget reserved (SPEC.md §10.8): the parameters, the server's elements,
// then the client key, the blinded list and the returned elements and
// nothing more, then the release. Disclosed tells, when Serve returns,
// whether anything derived from the set was sent.
func (s *PrivateServer) Serve(conn Conn, hello *wire.ClientHello, h *Hooks) error {
	return s.serve(conn, func() (*wire.PrivateParams, error) { return s.ReceiveHello(hello) }, h)
}

// ServeRecords plays the server's side of a record session in private mode
// (SPEC.md §13.5) after its hello (RecvOpening) passed the caller's
// admission, with the privacy budget reserved: the sequence of Serve.
func (s *PrivateServer) ServeRecords(conn Conn, hello *wire.RecordsHello, h *Hooks) error {
	return s.serve(conn, func() (*wire.PrivateParams, error) { return s.ReceiveRecordsHello(hello) }, h)
}

// serve is the sequence of a private-mode session, of identifiers or of
// records, once the hello has been received.
func (s *PrivateServer) serve(conn Conn, receiveHello func() (*wire.PrivateParams, error), h *Hooks) error {
	p, err := receiveHello()
	if err != nil {
		return err
	}
	if err := send(conn, p); err != nil {
		return err
	}
	if err := sendChunks(conn, s.NextServerElements, func(int) {}); err != nil {
		return err
	}
	b, err := recv(conn, "the ClientKey")
	if err != nil {
		return err
	}
	var key wire.ClientKey
	if err := key.UnmarshalBinary(b); err != nil {
		return s.fail(fmt.Errorf("%w: ClientKey: %v", ErrPeer, err))
	}
	if err := h.work(func() error { return s.ReceiveClientKey(&key) }); err != nil {
		return err
	}
	if err := recvChunks(conn, h, wire.TypeBlinded, "blinded elements", s.n, s.ReceiveBlinded, func(int) {}); err != nil {
		return err
	}
	if err := recvChunks(conn, h, wire.TypeReturned, "returned elements", int(p.ServerSize), s.ReceiveReturned, func(int) {}); err != nil {
		return err
	}
	if err := recvEnd(conn, "the last returned chunk"); err != nil {
		return err
	}
	rel, err := s.Release()
	if err != nil {
		return err
	}
	return send(conn, rel)
}

// recvRelease receives and checks the PrivateRelease that ends a private or
// epoch session, and then the end of the server's side.
func (c *PrivateClient) recvRelease(conn Conn) (PrivateResult, error) {
	b, err := recv(conn, "the PrivateRelease")
	if err != nil {
		return PrivateResult{}, err
	}
	var rel wire.PrivateRelease
	if err := rel.UnmarshalBinary(b); err != nil {
		return PrivateResult{}, c.fail(fmt.Errorf("%w: PrivateRelease: %v", ErrPeer, err))
	}
	res, err := c.ReceiveRelease(&rel)
	if err != nil {
		return PrivateResult{}, err
	}
	if err := recvEnd(conn, "the release"); err != nil {
		return PrivateResult{}, err
	}
	return res, nil
}

// Pipe returns the two ends of an in-memory Conn, for running both roles
// in one process (tests, examples, demos). Each frame is copied, as a
// transport would; the ends may be used from two goroutines. Close breaks
// both ends with io.ErrClosedPipe, for a side that fails and will not
// read on.
func Pipe() (client, server *PipeConn) {
	a, b := make(chan []byte, 4), make(chan []byte, 4)
	done := make(chan struct{})
	var once sync.Once
	closer := func() { once.Do(func() { close(done) }) }
	return &PipeConn{in: b, out: a, done: done, close: closer}, &PipeConn{in: a, out: b, done: done, close: closer}
}

// PipeConn is one end of a [Pipe].
type PipeConn struct {
	in     <-chan []byte
	out    chan<- []byte
	done   chan struct{}
	close  func()
	closed bool // CloseSend was called
}

var _ Conn = (*PipeConn)(nil)

// Send implements [Conn].
func (p *PipeConn) Send(frame []byte) error {
	if p.closed {
		return fmt.Errorf("%w: send after CloseSend", ErrState)
	}
	select {
	case p.out <- slices.Clone(frame):
		return nil
	case <-p.done:
		return io.ErrClosedPipe
	}
}

// Recv implements [Conn].
func (p *PipeConn) Recv() ([]byte, error) {
	select {
	case b, ok := <-p.in:
		if !ok {
			return nil, io.EOF
		}
		return b, nil
	case <-p.done:
		return nil, io.ErrClosedPipe
	}
}

// CloseSend implements [Conn].
func (p *PipeConn) CloseSend() error {
	if !p.closed {
		p.closed = true
		close(p.out)
	}
	return nil
}

// Close breaks the pipe for both ends.
func (p *PipeConn) Close() { p.close() }

// Run plays the client's side of a setup over conn (SPEC.md §10.12.1): the
// hello, the epoch's parameters, the server's elements raised to a_E, the
// client key and the sorted tags, then the server's EpochReady, after which
// the server must close its side. Hooks.Progress sees "params", "raising"
// (of N) and "tags" (of N).
func (c *EpochSetupClient) Run(conn Conn, h *Hooks) (*EpochKey, error) {
	if err := send(conn, c.Hello()); err != nil {
		return nil, err
	}
	b, err := recv(conn, "the EpochParams")
	if err != nil {
		return nil, err
	}
	var p wire.EpochParams
	if err := p.UnmarshalBinary(b); err != nil {
		return nil, c.fail(fmt.Errorf("%w: EpochParams: %v", ErrPeer, err))
	}
	if err := c.ReceiveParams(&p); err != nil {
		return nil, err
	}
	h.progress("params", 1, 1)
	total := int(p.ServerSize)
	if err := recvChunks(conn, nil, wire.TypeServerElements, "server elements", total, c.ReceiveServerElements,
		func(done int) { h.progress("raising", done, total) }); err != nil {
		return nil, err
	}
	key, err := c.ClientKey()
	if err != nil {
		return nil, err
	}
	if err := send(conn, key); err != nil {
		return nil, err
	}
	for {
		ch, ok, err := c.NextTags()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if err := send(conn, ch); err != nil {
			return nil, err
		}
		done, _ := c.Progress()
		h.progress("tags", done, total)
	}
	if err := conn.CloseSend(); err != nil {
		return nil, err
	}
	if b, err = recv(conn, "the EpochReady"); err != nil {
		return nil, err
	}
	var r wire.EpochReady
	if err := r.UnmarshalBinary(b); err != nil {
		return nil, c.fail(fmt.Errorf("%w: EpochReady: %v", ErrPeer, err))
	}
	ek, err := c.ReceiveReady(&r)
	if err != nil {
		return nil, err
	}
	if err := recvEnd(conn, "the EpochReady"); err != nil {
		ek.Erase()
		return nil, err
	}
	return ek, nil
}

// Serve plays the server's side of a setup over conn after its hello
// (RecvHello) passed the caller's admission: the parameters, the server's
// elements, then the client key and the tags and nothing more. Once the
// ringer check passed it hands the epoch to keep, which stores it, and only
// then confirms with EpochReady. A failed ringer check returns an error
// wrapping ErrDeviation.
func (s *EpochSetupServer) Serve(conn Conn, hello *wire.ClientHello, keep func(*Epoch) error, h *Hooks) error {
	p, err := s.ReceiveHello(hello)
	if err != nil {
		return err
	}
	if err := send(conn, p); err != nil {
		return err
	}
	if err := sendChunks(conn, s.NextServerElements, func(int) {}); err != nil {
		return err
	}
	b, err := recv(conn, "the ClientKey")
	if err != nil {
		return err
	}
	var key wire.ClientKey
	if err := key.UnmarshalBinary(b); err != nil {
		return s.fail(fmt.Errorf("%w: ClientKey: %v", ErrPeer, err))
	}
	if err := h.work(func() error { return s.ReceiveClientKey(&key) }); err != nil {
		return err
	}
	for got := 0; got < int(p.ServerSize); {
		b, err := recv(conn, fmt.Sprintf("the tags (%d of %d)", got, p.ServerSize))
		if err != nil {
			return err
		}
		var ch wire.TagChunk
		if err := ch.UnmarshalBinary(b); err != nil {
			return s.fail(fmt.Errorf("%w: TagChunk: %v", ErrPeer, err))
		}
		if err := s.ReceiveTags(&ch); err != nil {
			return err
		}
		got += int(ch.Count)
		h.elements(int(ch.Count))
	}
	if err := recvEnd(conn, "the last tag chunk"); err != nil {
		return err
	}
	ep, ready, err := s.Epoch()
	if err != nil {
		return err
	}
	if err := keep(ep); err != nil {
		return err
	}
	return send(conn, ready)
}

// RecvEpochTicket receives the EpochTicket that follows an epoch session's
// hello (SPEC.md §10.12.2). The server looks its epoch up before it creates
// the EpochServer.
func RecvEpochTicket(conn Conn) (*wire.EpochTicket, error) {
	b, err := recv(conn, "the EpochTicket")
	if err != nil {
		return nil, err
	}
	var t wire.EpochTicket
	if err := t.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("%w: EpochTicket: %v", ErrPeer, err)
	}
	return &t, nil
}

// Run plays the client's side of an epoch session over conn (SPEC.md
// §10.12.2): the hello and the ticket, the parameters, the blinded list,
// then the release, after which the server must close its side.
func (e *EpochClient) Run(conn Conn, h *Hooks) (PrivateResult, error) {
	c := e.c
	if err := send(conn, e.Hello()); err != nil {
		return PrivateResult{}, err
	}
	if err := send(conn, e.Ticket()); err != nil {
		return PrivateResult{}, err
	}
	b, err := recv(conn, "the PrivateParams")
	if err != nil {
		return PrivateResult{}, err
	}
	var p wire.PrivateParams
	if err := p.UnmarshalBinary(b); err != nil {
		return PrivateResult{}, c.fail(fmt.Errorf("%w: PrivateParams: %v", ErrPeer, err))
	}
	if err := e.ReceiveParams(&p); err != nil {
		return PrivateResult{}, err
	}
	h.progress("params", 1, 1)
	n := e.Size()
	if err := sendChunksAhead(conn, e.NextBlinded, func(done int) { h.progress("sending", done, n) }); err != nil {
		return PrivateResult{}, err
	}
	if err := conn.CloseSend(); err != nil {
		return PrivateResult{}, err
	}
	return c.recvRelease(conn)
}

// Serve plays the server's side of an epoch session over conn after its
// hello and ticket passed the caller's admission, with the privacy budget
// reserved (SPEC.md §10.8): the parameters, the blinded list and nothing
// more, then the release, which is never sent once the epoch has ended
// (SPEC.md §10.12.6); now is the server's clock.
func (s *EpochServer) Serve(conn Conn, hello *wire.ClientHello, ticket *wire.EpochTicket, now func() time.Time, h *Hooks) error {
	p, err := s.ReceiveHello(hello, ticket, now())
	if err != nil {
		return err
	}
	if err := send(conn, p); err != nil {
		return err
	}
	if err := recvChunks(conn, h, wire.TypeBlinded, "blinded elements", s.n, s.ReceiveBlinded, func(int) {}); err != nil {
		return err
	}
	if err := recvEnd(conn, "the last blinded chunk"); err != nil {
		return err
	}
	if end := s.ep.meta.ExpiresAt; !now().Before(end) {
		return s.fail(fmt.Errorf("%w: the epoch ended at %s, during the session; nothing is released", ErrEpoch, end.Format(time.RFC3339)))
	}
	rel, err := s.Release()
	if err != nil {
		return err
	}
	return send(conn, rel)
}
