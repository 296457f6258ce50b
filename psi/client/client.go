package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
	pb "github.com/overlap-psi/overlap/psi/service/gen/overlap/v1"
	"github.com/overlap-psi/overlap/psi/service/gen/overlap/v1/overlapv1connect"
	"github.com/overlap-psi/overlap/psi/wire"
)

// Config configures a [Client].
type Config struct {
	Addr          string      // the server, HOST:PORT
	APIKey        string      // the advertiser's API key; "" to authenticate with a client certificate only
	TLS           *tls.Config // see TLSConfig; nil means TLS 1.3 with the system roots
	Workers       int         // scalar-multiplication workers; 0 means GOMAXPROCS
	MaxServerSize uint32      // largest padded server set accepted; 0 means the protocol's limit
	FalsePositive float64     // false-positive bound (SPEC.md §6.3); 0 means psi.DefaultFalsePositive
	DialTimeout   time.Duration
	// Suites are the ciphersuites offered (SPEC.md §12.1); the server
	// chooses. nil offers every suite (DefaultSuites). A setup offers them
	// too; an epoch session offers its epoch's suite.
	Suites []psi.Suite
}

// DefaultSuites is what a client offers when Config.Suites is nil: both
// suites; the server picks by its own preference.
var DefaultSuites = []psi.Suite{psi.Suite2, psi.Suite1}

// suites returns the suites the client offers.
func (c *Client) suites() []psi.Suite {
	if c.cfg.Suites == nil {
		return DefaultSuites
	}
	return c.cfg.Suites
}

// Client is the advertiser's side of the service. It is safe for
// concurrent use; each Match is one session.
type Client struct {
	cfg       Config
	transport *http.Transport
	rpc       overlapv1connect.MatchServiceClient
	wireOut   atomic.Int64 // TCP payload bytes written, TLS included
	wireIn    atomic.Int64
}

// maxResponseBytes is the largest valid server frame: a set chunk
// (SPEC.md §5.5), plus the envelope.
const maxResponseBytes = wire.SetChunkHeaderSize + wire.MaxSetChunkBytes + 64

// New returns a client of the server at cfg.Addr. It connects on the
// first call.
func New(cfg Config) (*Client, error) {
	if cfg.Addr == "" {
		return nil, errors.New("client: no server address")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("client: server address %q: want HOST:PORT", cfg.Addr)
	}
	if cfg.APIKey != "" {
		if _, err := ParseAPIKey(cfg.APIKey); err != nil {
			return nil, err
		}
	}
	tlsCfg := cfg.TLS
	if tlsCfg == nil {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS13}
	}
	tlsCfg = tlsCfg.Clone()
	if tlsCfg.MinVersion < tls.VersionTLS13 {
		tlsCfg.MinVersion = tls.VersionTLS13
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	c := &Client{cfg: cfg}
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	var protocols http.Protocols
	protocols.SetHTTP2(true) // bidirectional streams need HTTP/2
	c.transport = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: conn, in: &c.wireIn, out: &c.wireOut}, nil
		},
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: cfg.DialTimeout,
		ForceAttemptHTTP2:   true,
		Protocols:           &protocols,
		HTTP2: &http.HTTP2Config{
			// Backpressure: a few set chunks buffered, not the whole set.
			MaxReceiveBufferPerStream: 4 << 20,
			MaxReadFrameSize:          1 << 20,
		},
	}
	c.rpc = overlapv1connect.NewMatchServiceClient(&http.Client{Transport: c.transport}, "https://"+cfg.Addr,
		connect.WithAcceptCompression("gzip", nil, nil), // curve points do not compress
		connect.WithReadMaxBytes(maxResponseBytes),
		connect.WithSendMaxBytes(wire.ElementChunkHeaderSize+wire.ElementSize*wire.MaxChunkElements+16),
	)
	return c, nil
}

// Close closes idle connections.
func (c *Client) Close() { c.transport.CloseIdleConnections() }

func (c *Client) authorize(h http.Header) {
	if c.cfg.APIKey != "" {
		h.Set("Authorization", "Bearer "+c.cfg.APIKey)
	}
}

// PolicyInfo is what GetPolicy tells an advertiser of its limits.
type PolicyInfo struct {
	Advertiser   string
	MinListSize  int64
	MaxListSize  int64
	Budget       int64
	BudgetUsed   int64
	BudgetWindow time.Duration
	Kinds        []string
	Modes        []string // modes served to this advertiser
	// Private mode: ε per window, spent in the window ending now, and the
	// cost of one private session, in micro-units (10^-6).
	PrivacyBudget, PrivacyUsed, PrivacyCost int64
}

// Policy asks the server for the limits that apply to this client.
func (c *Client) Policy(ctx context.Context) (PolicyInfo, error) {
	req := connect.NewRequest(&pb.GetPolicyRequest{})
	c.authorize(req.Header())
	resp, err := c.rpc.GetPolicy(ctx, req)
	if err != nil {
		return PolicyInfo{}, err
	}
	m := resp.Msg
	return PolicyInfo{Advertiser: m.Advertiser, MinListSize: m.MinListSize, MaxListSize: m.MaxListSize,
		Budget: m.Budget, BudgetUsed: m.BudgetUsed, BudgetWindow: time.Duration(m.BudgetWindowSeconds) * time.Second,
		Kinds: m.Kinds, Modes: m.Modes,
		PrivacyBudget: m.PrivacyBudgetMicros, PrivacyUsed: m.PrivacyUsedMicros, PrivacyCost: m.PrivacyCostMicros}, nil
}

// MatchRequest is one session's input.
type MatchRequest struct {
	Kind       psi.Kind
	CanonFlags uint16     // optional canonicalization rules applied to Digests (SPEC.md §7.4)
	Digests    [][32]byte // identifier digests (SPEC.md §3.1); duplicates are sent once
	// Records, when not nil, makes the session a record session (SPEC.md
	// §13): customer records of identifiers of any kinds, counted as
	// records. Kind and Digests are then not used.
	Records [][]psi.RecordID
	// RecordsConfig is what a record session announces: its kinds and
	// its slots per record.
	RecordsConfig psi.RecordsConfig
	// Progress, if not nil, is called as chunks go out and come back.
	Progress func(Progress)
}

// progress returns the request's progress callback, or one that does
// nothing.
func (r MatchRequest) progress() func(Progress) {
	if r.Progress == nil {
		return func(Progress) {}
	}
	return r.Progress
}

// Progress reports a session's progress.
type Progress struct {
	// Exact mode: "sending" (blinding and sending), "receiving"
	// (unblinding), "counting". Private mode: "raising" (the server's
	// elements raised to the client's key), "sending", "returning".
	Phase string
	Done  int // elements of this phase done
	Total int
}

// Snapshot identifies the consent snapshot the server's set came from
// (SPEC.md §8.5, §11).
type Snapshot struct {
	Kind    psi.Kind // the snapshot's kind, in a record session's Snapshots; 0 otherwise
	Version int64
	Digest  [32]byte
	TakenAt time.Time
}

// Traffic is what a session put on the wire.
type Traffic struct {
	FrameBytesSent     int64 // SPEC.md §5 messages, client → server
	FrameBytesReceived int64 // server → client
	Messages           int
	WireBytesSent      int64 // TCP payload (TLS, HTTP/2, envelopes) on this client's connections during the session
	WireBytesReceived  int64
}

// MatchResult is what the advertiser learns from a session.
type MatchResult struct {
	psi.Result
	SessionID string // the server's audit id of the session
	Snapshot  Snapshot
	Snapshots []Snapshot // a record session's snapshot of each kind (SPEC.md §13.3); nil otherwise
	Traffic   Traffic
	Elapsed   time.Duration
	// Phases of Elapsed: until ServerParams arrived (the server checks the
	// policy and encodes its set), blinding and sending the list, and
	// receiving, unblinding and counting.
	Phases struct{ Params, Send, Receive time.Duration }
}

// Match runs one exact-mode session. Errors from the server are Connect
// errors (connect.CodeOf); RefusalOf tells a policy refusal.
func (c *Client) Match(ctx context.Context, req MatchRequest) (MatchResult, error) {
	start := time.Now()
	cfg := psi.ClientConfig{Kind: req.Kind, CanonVersion: ident.Version, CanonFlags: req.CanonFlags,
		FalsePositive: c.cfg.FalsePositive, MaxServerSize: c.cfg.MaxServerSize, Workers: c.cfg.Workers, Suites: c.suites()}
	var pc *psi.Client
	var err error
	if req.Records != nil {
		pc, err = psi.NewRecordsClient(cfg, req.RecordsConfig, req.Records)
	} else {
		pc, err = psi.NewClient(cfg, req.Digests)
	}
	if err != nil {
		return MatchResult{}, err
	}
	defer pc.Close()
	var res MatchResult
	st := c.open(ctx, &res.Traffic)
	defer st.close()
	var sent time.Duration
	st.closed = func() { sent = time.Since(start) }
	r, err := pc.Run(st, req.hooks(func() { res.Phases.Params = time.Since(start) }))
	res.SessionID, res.Snapshot, res.Snapshots = st.sessionID(), st.snap, st.snaps
	if err != nil {
		return res, err
	}
	res.Result = r
	res.Elapsed = time.Since(start)
	res.Phases.Send = sent - res.Phases.Params
	res.Phases.Receive = res.Elapsed - sent
	st.countWire()
	return res, nil
}

// hooks returns the session hooks that report the request's progress and
// call params when the parameters are accepted.
func (r MatchRequest) hooks(params func()) *psi.Hooks {
	progress := r.progress()
	return &psi.Hooks{Progress: func(phase string, done, total int) {
		if phase == "params" {
			params()
			return
		}
		progress(Progress{Phase: phase, Done: done, Total: total})
	}}
}

// stream is the Match stream of one session, with the session's traffic:
// the psi.Conn the session's sequence runs over.
type stream struct {
	st        *connect.BidiStreamForClient[pb.MatchRequest, pb.MatchResponse]
	tr        *Traffic
	snap      Snapshot
	snaps     []Snapshot // a record session's, one per kind
	received  bool       // the first response arrived
	closed    func()     // if not nil, told when the request side closes
	c         *Client
	in0, out0 int64 // the client's wire counters when the stream opened
}

var _ psi.Conn = (*stream)(nil)

func (c *Client) open(ctx context.Context, tr *Traffic) *stream {
	in0, out0 := c.wireIn.Load(), c.wireOut.Load()
	st := c.rpc.Match(ctx)
	c.authorize(st.RequestHeader())
	return &stream{st: st, tr: tr, c: c, in0: in0, out0: out0}
}

// OpenStream opens a raw Match stream with the client's transport and
// credentials, for tools and tests that speak SPEC.md frames themselves:
// each message carries one frame (SPEC.md §11). Match and MatchPrivate are
// the way to run a session.
func (c *Client) OpenStream(ctx context.Context) *connect.BidiStreamForClient[pb.MatchRequest, pb.MatchResponse] {
	st := c.rpc.Match(ctx)
	c.authorize(st.RequestHeader())
	return st
}

// countWire records in the traffic the TCP payload bytes each way since
// the stream opened.
func (s *stream) countWire() {
	s.tr.WireBytesSent, s.tr.WireBytesReceived = s.c.wireOut.Load()-s.out0, s.c.wireIn.Load()-s.in0
}

func (s *stream) close() { s.st.CloseResponse() }

func (s *stream) sessionID() string { return s.st.ResponseHeader().Get("Overlap-Session") }

// Send sends one frame. When the server has ended the stream, the error is
// the one the server sent.
func (s *stream) Send(frame []byte) error {
	s.tr.FrameBytesSent += int64(len(frame))
	s.tr.Messages++
	if err := s.st.Send(&pb.MatchRequest{Frame: frame}); err != nil {
		if errors.Is(err, io.EOF) {
			// The server ended the stream: its error is in the response.
			if _, rerr := s.st.Receive(); rerr != nil && !errors.Is(rerr, io.EOF) {
				return broken(rerr)
			}
		}
		return broken(err)
	}
	return nil
}

// Recv receives one frame. The first response must carry the consent
// snapshot (SPEC.md §11); it is kept in s.snap.
func (s *stream) Recv() ([]byte, error) {
	m, err := s.st.Receive()
	if err != nil {
		return nil, broken(err)
	}
	s.tr.FrameBytesReceived += int64(len(m.Frame))
	s.tr.Messages++
	if !s.received {
		s.received = true
		if m.Snapshot == nil || len(m.Snapshot.Digest) != 32 {
			return nil, fmt.Errorf("%w: the first response carries no consent snapshot (SPEC.md §11)", psi.ErrPeer)
		}
		s.snap = Snapshot{Version: m.Snapshot.Version, TakenAt: time.UnixMicro(m.Snapshot.TakenAtUnixMicros).UTC()}
		copy(s.snap.Digest[:], m.Snapshot.Digest)
		for _, ks := range m.Snapshots {
			k := psi.Kind(ks.Kind)
			if len(ks.Digest) != 32 || !k.Valid() || ks.Kind != int32(k) {
				return nil, fmt.Errorf("%w: a record session's snapshot is malformed (SPEC.md §13.3)", psi.ErrPeer)
			}
			snap := Snapshot{Kind: k, Version: ks.Version, TakenAt: time.UnixMicro(ks.TakenAtUnixMicros).UTC()}
			copy(snap.Digest[:], ks.Digest)
			s.snaps = append(s.snaps, snap)
		}
	}
	return m.Frame, nil
}

// CloseSend closes the request side.
func (s *stream) CloseSend() error {
	if s.closed != nil {
		s.closed()
	}
	return s.st.CloseRequest()
}

// ErrBroken reports a session whose connection broke before it finished:
// the server stopped or the network failed. No count was produced.
var ErrBroken = errors.New("client: the connection to the server broke during the session; no count was produced")

// broken marks transport failures (not errors the server sent on purpose)
// with ErrBroken.
func broken(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	var ce *connect.Error
	if errors.As(err, &ce) && ce.Meta().Get("Content-Type") == "" {
		switch ce.Code() {
		case connect.CodeUnavailable, connect.CodeUnknown, connect.CodeInternal, connect.CodeCanceled:
			if !strings.HasPrefix(ce.Message(), "internal error") {
				return fmt.Errorf("%w: %w", ErrBroken, err)
			}
		}
	}
	return err
}

// countingConn counts the bytes a connection carries.
type countingConn struct {
	net.Conn
	in, out *atomic.Int64
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.out.Add(int64(n))
	return n, err
}
