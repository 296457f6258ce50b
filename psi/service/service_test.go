package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/ident"
	pb "github.com/overlap-psi/overlap/psi/service/gen/overlap/v1"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

// email returns the i-th synthetic address and its digest.
func email(i int) (string, [32]byte) {
	v := fmt.Sprintf("user%d@example.com", i)
	return v, sha256.Sum256([]byte(v))
}

// emails returns the digests of addresses lo..hi-1.
func emails(lo, hi int) [][32]byte {
	out := make([][32]byte, 0, hi-lo)
	for i := lo; i < hi; i++ {
		_, d := email(i)
		out = append(out, d)
	}
	return out
}

// seedStore opens a SQLite store whose matchable email set is addresses
// 0..n-1, each of its own subject with a subject-wide grant.
func seedStore(t testing.TB, n int) store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "platform.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if n == 0 {
		return st
	}
	_, err = st.ImportIdentifiers(t.Context(), func(yield func(store.Identifier) bool) {
		for i := range n {
			v, d := email(i)
			if !yield(store.Identifier{Subject: fmt.Sprint("u", i), Kind: psi.KindEmail, Value: v, Digest: d, CollectedFor: store.Signup}) {
				return
			}
		}
	}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = st.AppendConsent(t.Context(), func(yield func(store.ConsentEvent) bool) {
		for i := range n {
			if !yield(store.ConsentEvent{Subject: fmt.Sprint("u", i), Purpose: store.AdMatching, Granted: true, At: at, Source: "test", TextVersion: "v1"}) {
				return
			}
		}
	}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// testServer is a server on a loopback port with a development certificate.
type testServer struct {
	*Server
	st     store.Store
	addr   string
	caFile string
	logs   *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func startServer(t testing.TB, st store.Store, mod func(*Config)) *testServer {
	t.Helper()
	dir := t.TempDir()
	dc, err := WriteDevCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	return startServerTLS(t, st, dc.CertFile, dc.KeyFile, "", mod)
}

func startServerTLS(t testing.TB, st store.Store, certFile, keyFile, clientCA string, mod func(*Config)) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	cfg := Config{Store: st, Logger: slog.New(slog.NewJSONHandler(logs, nil)), IdleTimeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := ServerTLS(certFile, keyFile, clientCA)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, st: st, addr: ln.Addr().String(), caFile: certFile, logs: logs, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ln, tlsCfg) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ts
}

// addAdvertiser registers an advertiser and returns its key. A policy
// that names no mode serves exact mode, which most tests exercise (the
// store's default for new advertisers is private mode).
func (ts *testServer) addAdvertiser(t testing.TB, name string, pol store.Policy) string {
	t.Helper()
	if pol.Modes == 0 {
		pol.Modes = store.ModesExact
	}
	key, err := client.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.st.AddAdvertiser(t.Context(), store.Advertiser{Name: name, KeyID: key.ID, KeyHash: key.Hash(), Policy: pol}); err != nil {
		t.Fatal(err)
	}
	return key.Reveal()
}

func (ts *testServer) client(t testing.TB, apiKey string) *client.Client {
	t.Helper()
	tlsCfg, err := client.TLSConfig(ts.caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Addr: ts.addr, APIKey: apiKey, TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func (ts *testServer) sessions(t testing.TB) []store.SessionRecord {
	t.Helper()
	recs, err := ts.st.Sessions(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// lastSession waits briefly for the audit row of the latest session: the
// server writes it after the client has seen the stream end.
func (ts *testServer) lastSession(t testing.TB, count int) store.SessionRecord {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs := ts.sessions(t)
		if len(recs) >= count {
			return recs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d audit rows, want %d", len(recs), count)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func match(t testing.TB, c *client.Client, digests [][32]byte) (client.MatchResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	return c.Match(ctx, client.MatchRequest{Kind: psi.KindEmail, Digests: digests})
}

func TestMatch(t *testing.T) {
	t.Parallel()
	ts := startServer(t, seedStore(t, 2000), nil)
	key := ts.addAdvertiser(t, "acme", store.Policy{})
	c := ts.client(t, key)

	// 1500 addresses, 700 of them the platform's; duplicates are sent once.
	list := append(emails(1300, 2800), emails(1300, 1310)...)
	res, err := match(t, c, list)
	if err != nil {
		t.Fatal(err)
	}
	if res.Overlap != 700 || res.ClientSize != 1500 || res.ServerSize != int(psi.Bucket(2000)) {
		t.Errorf("overlap %d of %d, bucket %d; want 700 of 1500, bucket %d", res.Overlap, res.ClientSize, res.ServerSize, psi.Bucket(2000))
	}
	snaps, err := ts.st.Snapshots(t.Context(), psi.KindEmail, 1)
	if err != nil || len(snaps) != 1 || snaps[0].Version != res.Snapshot.Version || snaps[0].Digest != res.Snapshot.Digest || snaps[0].Size != 2000 {
		t.Errorf("client saw snapshot %+v, store has %+v (%v)", res.Snapshot, snaps, err)
	}
	if res.Traffic.WireBytesSent < res.Traffic.FrameBytesSent || res.Traffic.FrameBytesSent < 1500*32 {
		t.Errorf("traffic %+v", res.Traffic)
	}
	rec := ts.lastSession(t, 1)
	if rec.Result != ResultOK || rec.ID != res.SessionID || rec.ListSize != 1500 || rec.BudgetSpent != 1500 ||
		rec.SnapshotVersion != res.Snapshot.Version || rec.SnapshotDigest != res.Snapshot.Digest || rec.AdvertiserName != "acme" {
		t.Errorf("audit row %+v", rec)
	}

	// The policy shows the spend.
	pol, err := c.Policy(t.Context())
	if err != nil || pol.Advertiser != "acme" || pol.BudgetUsed != 1500 || pol.MinListSize != 100 || pol.Budget != DefaultPolicy().Budget {
		t.Errorf("Policy = %+v, %v", pol, err)
	}

	// A withdrawal shows in the next session.
	if _, err := ts.st.AppendConsent(t.Context(), slices.Values([]store.ConsentEvent{{Subject: "u1500", Purpose: store.AdMatching,
		At: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), Source: "settings"}}), store.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	res2, err := match(t, c, list)
	if err != nil || res2.Overlap != 699 || res2.Snapshot.Version <= res.Snapshot.Version {
		t.Errorf("after a withdrawal: overlap %d, snapshot %d, %v", res2.Overlap, res2.Snapshot.Version, err)
	}
	// Metrics.
	rec2 := httptestGet(t, ts.AdminHandler(), "/metrics")
	if !strings.Contains(rec2, `overlap_sessions_total{result="ok"} 2`) || !strings.Contains(rec2, "overlap_elements_evaluated_total 3000") {
		t.Errorf("metrics:\n%s", grepLines(rec2, "overlap_"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

type recorder struct {
	h    http.Header
	code int
	b    bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(p []byte) (int, error) { return r.b.Write(p) }
func (r *recorder) WriteHeader(code int)        { r.code = code }

func httptestGet(t testing.TB, h http.Handler, path string) string {
	req, _ := http.NewRequestWithContext(t.Context(), "GET", path, nil)
	rec := &recorder{h: http.Header{}, code: 200}
	h.ServeHTTP(rec, req)
	return rec.b.String()
}

// rawSession opens a Match stream with the client's transport and
// credentials, for tests that speak frames themselves.
type rawSession struct {
	st *connect.BidiStreamForClient[pb.MatchRequest, pb.MatchResponse]
}

func raw(c *client.Client, ctx context.Context) *rawSession {
	return &rawSession{st: c.OpenStream(ctx)}
}

func (r *rawSession) send(b []byte) error { return r.st.Send(&pb.MatchRequest{Frame: b}) }

// abort resets the stream, as a client that goes away does.
func (r *rawSession) abort() { r.st.CloseResponse() }

// finish closes the request side and reads to the end, returning the
// stream's error.
func (r *rawSession) finish() error {
	r.st.CloseRequest()
	for {
		if _, err := r.st.Receive(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func hello(n int) []byte {
	b, _ := (&wire.ClientHello{Mode: wire.ModeExact, Kind: psi.KindEmail, CanonVersion: ident.Version, ClientSize: uint32(n)}).MarshalBinary()
	return b
}

// openSession sends a hello for n elements and reads ServerParams.
func openSession(t testing.TB, c *client.Client, ctx context.Context, n int) (*rawSession, wire.ServerParams) {
	t.Helper()
	r := raw(c, ctx)
	t.Cleanup(func() { r.st.CloseResponse() })
	if err := r.send(hello(n)); err != nil {
		t.Fatal(err)
	}
	m, err := r.st.Receive()
	if err != nil {
		t.Fatalf("opening a session: %v", err)
	}
	var p wire.ServerParams
	if err := p.UnmarshalBinary(m.Frame); err != nil {
		t.Fatal(err)
	}
	return r, p
}

// ctxShutdown stops the test server gracefully.
func ctxShutdown(t testing.TB, ts *testServer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
