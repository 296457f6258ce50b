package psi

import (
	"errors"
	"io"
	mrand "math/rand/v2"
	"slices"
	"testing"

	"github.com/overlap-psi/overlap/psi/wire"
)

// The sequences end a session the way SPEC.md §5.8 and §10.1 say: a peer
// that stops early is ErrTruncated, one that sends more than one request is
// ErrPeer, and a transport's own error comes back unchanged.
func TestSessionSequenceEnds(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(41, 42))
	client, server := sets(rng, 120, 300, 40)

	t.Run("no hello", func(t *testing.T) {
		cc, sc := Pipe()
		cc.CloseSend()
		if _, err := RecvHello(sc); !errors.Is(err, ErrTruncated) {
			t.Fatalf("RecvHello on a closed stream: %v, want ErrTruncated", err)
		}
	})

	// A client that sends its hello and half its list, then closes.
	t.Run("exact request cut short", func(t *testing.T) {
		c := must(NewClient(ClientConfig{Kind: KindEmail}, client))
		defer c.Close()
		s := must(NewServer(ServerConfig{ChunkSize: 40}, prepare(t, KindEmail, server)))
		defer s.Close()
		cc, sc := Pipe()
		errc := serveLocal(sc, nil, func(conn Conn, h *wire.ClientHello) error { return s.Serve(conn, h, nil) })
		must(0, send(cc, c.Hello()))
		var p wire.ServerParams
		must(0, p.UnmarshalBinary(must(cc.Recv())))
		must(0, c.ReceiveParams(&p))
		ch, _, err := c.NextBlinded()
		must(0, err)
		must(0, send(cc, ch))
		cc.CloseSend()
		if err := <-errc; !errors.Is(err, ErrTruncated) {
			t.Fatalf("server: %v, want ErrTruncated", err)
		}
	})

	// A client that sends a second request after its list.
	t.Run("exact second request", func(t *testing.T) {
		c := must(NewClient(ClientConfig{Kind: KindEmail}, client))
		defer c.Close()
		s := must(NewServer(ServerConfig{}, prepare(t, KindEmail, server)))
		defer s.Close()
		cc, sc := Pipe()
		errc := serveLocal(sc, nil, func(conn Conn, h *wire.ClientHello) error { return s.Serve(conn, h, nil) })
		must(0, send(cc, c.Hello()))
		var p wire.ServerParams
		must(0, p.UnmarshalBinary(must(cc.Recv())))
		must(0, c.ReceiveParams(&p))
		ch, _, err := c.NextBlinded()
		must(0, err)
		must(0, send(cc, ch))
		must(0, send(cc, c.Hello()))
		if err := <-errc; !errors.Is(err, ErrPeer) {
			t.Fatalf("server: %v, want ErrPeer", err)
		}
	})

	// A server that stops after the parameters: the client's Run fails
	// with ErrTruncated, and a broken transport with its own error.
	t.Run("private server stops", func(t *testing.T) {
		for _, broken := range []bool{false, true} {
			c := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail}, client))
			s := must(NewPrivateServer(PrivateServerConfig{}, preparePrivate(t, KindEmail, server, 8, unpadded)))
			cc, sc := Pipe()
			go func() {
				hello := must(RecvHello(sc))
				p := must(s.ReceiveHello(hello))
				must(0, send(sc, p))
				if broken {
					sc.Close()
				} else {
					sc.CloseSend()
				}
			}()
			_, err := c.Run(cc, nil)
			want := ErrTruncated
			if broken {
				want = io.ErrClosedPipe
			}
			if !errors.Is(err, want) {
				t.Errorf("broken=%t: client: %v, want %v", broken, err, want)
			}
			c.Close()
			s.Close()
		}
	})

	// Hooks see the phases in order and the server's elements.
	t.Run("hooks", func(t *testing.T) {
		c := must(NewPrivateClient(PrivateClientConfig{Kind: KindEmail}, client))
		defer c.Close()
		s := must(NewPrivateServer(PrivateServerConfig{ChunkSize: 64}, preparePrivate(t, KindEmail, server, 8, unpadded)))
		defer s.Close()
		cc, sc := Pipe()
		var elements, works int
		errc := serveLocal(sc, nil, func(conn Conn, h *wire.ClientHello) error {
			return s.Serve(conn, h, &Hooks{
				Elements: func(n int) { elements += n },
				Work:     func(fn func() error) error { works++; return fn() },
			})
		})
		var phases []string
		res, err := c.Run(cc, &Hooks{Progress: func(phase string, done, total int) {
			if len(phases) == 0 || phases[len(phases)-1] != phase {
				phases = append(phases, phase)
			}
		}})
		if err != nil || <-errc != nil {
			t.Fatal(err)
		}
		if want := []string{"params", "raising", "sending", "returning"}; !slices.Equal(phases, want) {
			t.Errorf("phases %v, want %v", phases, want)
		}
		if want := len(client) + res.ServerSize; elements != want || works < 3 {
			t.Errorf("server hooks saw %d elements in %d batches, want %d elements", elements, works, want)
		}
	})
}
