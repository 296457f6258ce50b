package service

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/internal/r255"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

// randomElements returns k distinct valid encoded elements.
func randomElements(k int) []byte {
	h := r255.NewHasher([]byte("overlap service test"))
	e := r255.NewElement()
	out := make([]byte, 0, 32*k)
	for range k {
		var m [16]byte
		rand.Read(m[:])
		out = h.Hash(e, m[:]).AppendBytes(out)
	}
	return out
}

func chunk(seq uint32, elems []byte) []byte {
	b, err := (&wire.ElementChunk{Type: wire.TypeBlinded, Seq: seq, Elements: elems}).MarshalBinary()
	if err != nil {
		panic(err)
	}
	return b
}

// TestMaliciousClients speaks raw frames that break the protocol. Each is
// rejected with InvalidArgument and audited, nothing is evaluated back, and
// the server keeps serving correct counts.
func TestMaliciousClients(t *testing.T) {
	t.Parallel()
	const n, c = 100, 50 // two chunks
	ts := startServer(t, seedStore(t, 300), func(cfg *Config) { cfg.ChunkSize = c })
	key := ts.addAdvertiser(t, "mallory", store.Policy{})
	cl := ts.client(t, key)
	good := randomElements(n)
	identity := make([]byte, 32)
	nonCanonical := bytes.Repeat([]byte{0xff}, 32)
	with := func(at int, e []byte) []byte {
		b := bytes.Clone(good[:32*c])
		copy(b[32*at:], e)
		return b
	}

	for _, tc := range []struct {
		name   string
		frames [][]byte // after the hello
		hello  []byte   // nil: a valid hello for n
		result string
		want   string
	}{
		// Bad elements.
		{name: "IdentityElement", frames: [][]byte{chunk(0, with(7, identity))}, result: ResultPeerError, want: "identity"},
		{name: "NonCanonical", frames: [][]byte{chunk(0, with(3, nonCanonical))}, result: ResultPeerError, want: "canonical"},
		{name: "DuplicateInChunk", frames: [][]byte{chunk(0, with(9, good[0:32])), chunk(1, good[32*c:])}, result: ResultPeerError, want: "duplicate"},
		{name: "DuplicateAcrossChunks", frames: [][]byte{chunk(0, good[:32*c]), chunk(1, append(bytes.Clone(good[:32]), good[32*(c+1):]...))}, result: ResultPeerError, want: "duplicate"},
		// Framing.
		{name: "OversizedFrame", frames: [][]byte{chunk(0, randomElements(c+20))}, result: ResultPeerError, want: "larger than the largest valid frame"},
		{name: "ChunkOverC", frames: [][]byte{chunk(0, randomElements(c+1))}, result: ResultPeerError, want: "larger than the largest valid frame"},
		{name: "Garbage", frames: [][]byte{[]byte("not a frame")}, result: ResultPeerError, want: "wire"},
		{name: "LengthMismatch", frames: [][]byte{chunk(0, good[:32*c])[:100]}, result: ResultPeerError, want: "wire"},
		{name: "BadHello", hello: []byte{1, 1, 1}, result: ResultPeerError, want: "ClientHello"},
		{name: "WrongVersion", hello: append([]byte{2}, hello(n)[1:]...), result: ResultPeerError, want: "version"},
		// Order.
		{name: "WrongOrder", frames: [][]byte{chunk(1, good[32*c:]), chunk(0, good[:32*c])}, result: ResultPeerError, want: "want 0"},
		{name: "ReplayedChunk", frames: [][]byte{chunk(0, good[:32*c]), chunk(0, good[:32*c])}, result: ResultPeerError},
		{name: "SecondHello", frames: [][]byte{hello(n)}, result: ResultPeerError, want: "type"},
		{name: "AfterLastChunk", frames: [][]byte{chunk(0, good[:32*c]), chunk(1, good[32*c:]), chunk(2, randomElements(1))}, result: ResultPeerError, want: "after the last"},
		{name: "Truncated", frames: [][]byte{chunk(0, good[:32*c])}, result: ResultTruncated, want: "ended after 50 of 100"},
		{name: "NoHello", frames: nil, hello: []byte{}, result: ResultTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(ts.sessions(t))
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			r := raw(cl, ctx)
			defer r.abort()
			h := tc.hello
			if h == nil {
				h = hello(n)
			}
			var err error
			if len(h) > 0 {
				err = r.send(h)
			}
			if err == nil && tc.hello == nil {
				if _, err = r.st.Receive(); err != nil {
					t.Fatalf("ServerParams: %v", err)
				}
			}
			for _, f := range tc.frames {
				if err = r.send(f); err != nil {
					break
				}
			}
			r.st.CloseRequest()
			var evaluated int
			for {
				m, rerr := r.st.Receive()
				if rerr != nil {
					err = rerr
					break
				}
				if t, _ := wire.PeekType(m.Frame); t == wire.TypeEvaluated {
					evaluated++
				}
			}
			if errors.Is(err, context.DeadlineExceeded) || connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("err = %v (%v), want invalid_argument", err, connect.CodeOf(err))
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
			if evaluated > 0 {
				t.Errorf("the server sent %d evaluated chunks", evaluated)
			}
			rec := ts.lastSession(t, before+1)
			if rec.Result != tc.result || rec.Detail == "" {
				t.Errorf("audit row %s %q, want %s", rec.Result, rec.Detail, tc.result)
			}
		})
	}

	// The server still serves, and the store is intact.
	res, err := match(t, cl, emails(250, 400))
	if err != nil || res.Overlap != 50 {
		t.Fatalf("after the attacks: overlap %d, %v", res.Overlap, err)
	}
	if stats, err := ts.st.Stats(t.Context()); err != nil || stats[0].Matchable != 300 {
		t.Errorf("stats %+v, %v", stats, err)
	}
}

// TestIdleClient: a client that opens a session and sends nothing more is
// cut off after the idle timeout, audited as abandoned (it sent no
// element after admission), and refunded.
func TestIdleClient(t *testing.T) {
	t.Parallel()
	ts := startServer(t, seedStore(t, 200), func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	cl := ts.client(t, ts.addAdvertiser(t, "sloth", store.Policy{}))
	r, _ := openSession(t, cl, t.Context(), 100)
	_, err := r.st.Receive()
	if err == nil {
		t.Fatal("an idle session got a message")
	}
	rec := ts.lastSession(t, 1)
	if rec.Result != ResultAbandoned || !strings.Contains(rec.Detail, "(timeout)") || rec.BudgetSpent != 0 {
		t.Errorf("audit row %s %q, spent %d; want abandoned after a timeout, refunded", rec.Result, rec.Detail, rec.BudgetSpent)
	}
}

// TestServerKilled stops the server in the middle of sessions: the clients
// get a clear error, each session has an audit row, and the store reopens
// consistent.
func TestServerKilled(t *testing.T) {
	t.Parallel()
	st := seedStore(t, 500)
	ts := startServer(t, st, func(c *Config) { c.ChunkSize = 64 })
	cl := ts.client(t, ts.addAdvertiser(t, "acme", store.Policy{}))

	// A real client, killed after its first chunk is sent.
	var once sync.Once
	closed := make(chan struct{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := cl.Match(ctx, client.MatchRequest{Kind: psi.KindEmail, Digests: emails(0, 1000), Progress: func(p client.Progress) {
		once.Do(func() { go func() { ts.Close(); close(closed) }() })
		time.Sleep(5 * time.Millisecond)
	}})
	if err == nil {
		t.Fatal("the session survived the server")
	}
	code := connect.CodeOf(err)
	if code != connect.CodeUnavailable && code != connect.CodeCanceled && code != connect.CodeInternal && code != connect.CodeUnknown {
		t.Errorf("err = %v (%v)", err, code)
	}
	t.Logf("client error: %v", err)
	// Serve returns when the listener closes; Close returns once every
	// session has ended and written its audit row.
	<-ts.done
	<-closed
	recs := ts.sessions(t)
	// Aborted by the server before it sent any evaluated element: refunded
	// (SPEC.md §10.8.2).
	if len(recs) != 1 || recs[0].Result != ResultAborted || recs[0].BudgetSpent != 0 {
		t.Fatalf("audit rows %+v", recs)
	}
	// The store is consistent: a new server on it serves.
	ts2 := startServer(t, st, nil)
	res, err := match(t, ts2.client(t, ts.addAdvertiser(t, "next", store.Policy{})), emails(400, 600))
	if err != nil || res.Overlap != 100 {
		t.Errorf("after the restart: overlap %d, %v", res.Overlap, err)
	}
}

// TestGracefulShutdown: Shutdown lets a session in flight finish, refuses
// new ones and reports not ready.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	ts := startServer(t, seedStore(t, 500), func(c *Config) { c.ChunkSize = 64 })
	cl := ts.client(t, ts.addAdvertiser(t, "acme", store.Policy{}))
	started := make(chan struct{})
	var once sync.Once
	type out struct {
		res client.MatchResult
		err error
	}
	done := make(chan out)
	go func() {
		res, err := cl.Match(t.Context(), client.MatchRequest{Kind: psi.KindEmail, Digests: emails(0, 1000), Progress: func(client.Progress) {
			once.Do(func() { close(started) })
			time.Sleep(2 * time.Millisecond)
		}})
		done <- out{res, err}
	}()
	<-started
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	o := <-done
	if o.err != nil || o.res.Overlap != 500 {
		t.Errorf("the session in flight: overlap %d, %v", o.res.Overlap, o.err)
	}
	if got := httptestGet(t, ts.AdminHandler(), "/readyz"); !strings.Contains(got, "shutting down") {
		t.Errorf("readyz = %q", got)
	}
	if recs := ts.sessions(t); len(recs) != 1 || recs[0].Result != ResultOK {
		t.Errorf("audit rows %+v", recs)
	}
}

// TestConcurrentAdvertisers runs sessions of several advertisers at once.
func TestConcurrentAdvertisers(t *testing.T) {
	t.Parallel()
	ts := startServer(t, seedStore(t, 1000), func(c *Config) { c.ChunkSize = 128 })
	var wg sync.WaitGroup
	for i := range 4 {
		cl := ts.client(t, ts.addAdvertiser(t, "adv"+string(rune('a'+i)), store.Policy{}))
		lo := 200 * i
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := match(t, cl, emails(lo, lo+700+10*i))
			want := min(1000, lo+700+10*i) - lo
			if err != nil || res.Overlap != want {
				t.Errorf("advertiser %d: overlap %d, %v; want %d", i, res.Overlap, err, want)
			}
		}()
	}
	wg.Wait()
	recs := ts.sessions(t)
	if len(recs) != 4 {
		t.Errorf("%d audit rows", len(recs))
	}
}
