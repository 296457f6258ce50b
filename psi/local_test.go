package psi

import "github.com/overlap-psi/overlap/psi/wire"

// observed is a Conn that shows every frame it sends to observe.
type observed struct {
	Conn
	from    Sender
	observe func(Sender, []byte)
}

func (o observed) Send(b []byte) error {
	if o.observe != nil {
		o.observe(o.from, b)
	}
	return o.Conn.Send(b)
}

// serveLocal runs a server's side of a session over sc in a goroutine: the
// hello, then serve. It closes its side when done and breaks the pipe when
// it fails, so the client never waits on it.
func serveLocal(sc *PipeConn, observe func(Sender, []byte), serve func(Conn, *wire.ClientHello) error) <-chan error {
	errc := make(chan error, 1)
	go func() {
		hello, err := RecvHello(sc)
		if err == nil {
			err = serve(observed{sc, FromServer, observe}, hello)
		}
		if err != nil {
			sc.Close()
		} else {
			sc.CloseSend()
		}
		errc <- err
	}()
	return errc
}

// runLocal plays a whole exact-mode session between c and s through a Pipe:
// every message goes through its wire encoding, and observe, if not nil,
// sees each one. The server's error wins, since a failed server breaks the
// pipe under the client.
func runLocal(c *Client, s *Server, observe func(Sender, []byte)) (Result, error) {
	return runPipe(c, s, observe)
}

// runLocalPrivate is runLocal for a private-mode session.
func runLocalPrivate(c *PrivateClient, s *PrivateServer, observe func(Sender, []byte)) (PrivateResult, error) {
	return runPipe(c, s, observe)
}

func runPipe[R any](c interface {
	Run(Conn, *Hooks) (R, error)
	Close()
}, s interface {
	Serve(Conn, *wire.ClientHello, *Hooks) error
	Close()
}, observe func(Sender, []byte)) (R, error) {
	return pipeSession(c, s.Close, func(sc *PipeConn) <-chan error {
		return serveLocal(sc, observe, func(conn Conn, h *wire.ClientHello) error { return s.Serve(conn, h, nil) })
	}, observe)
}

// pipeSession plays c against the server that serve starts on the server's
// end of a Pipe, and closes both.
func pipeSession[R any](c interface {
	Run(Conn, *Hooks) (R, error)
	Close()
}, closeServer func(), serve func(*PipeConn) <-chan error, observe func(Sender, []byte)) (R, error) {
	defer c.Close()
	defer closeServer()
	cc, sc := Pipe()
	errc := serve(sc)
	res, err := c.Run(observed{cc, FromClient, observe}, nil)
	if err != nil {
		cc.Close()
	}
	if serr := <-errc; serr != nil {
		var zero R
		return zero, serr
	}
	return res, err
}
