package service

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/semaphore"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	pb "github.com/overlap-psi/overlap/psi/service/gen/overlap/v1"
	"github.com/overlap-psi/overlap/psi/service/gen/overlap/v1/overlapv1connect"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

// DefaultSuites is the ciphersuite preference of a server whose
// Config.Suites is nil: suite 2 (curve25519, X25519), then suite 1
// (ristretto255) for clients that do not offer it (SPEC.md §12.1).
var DefaultSuites = []psi.Suite{psi.Suite2, psi.Suite1}

// Config configures a [Server].
type Config struct {
	// Store is the consent store: the matchable sets, the advertisers, the
	// budgets and the audit log. Required.
	Store store.Store
	// Logger receives one JSON-able line per session and lifecycle events;
	// nil means slog.Default(). Lines carry component=service.
	Logger *slog.Logger
	// Policy is the default session policy; the zero value means
	// DefaultPolicy().
	Policy Policy
	// MaxSessions caps concurrent sessions over all advertisers; 0 means 8.
	MaxSessions int
	// Workers caps scalar-multiplication workers over all sessions; 0 means
	// GOMAXPROCS.
	Workers int
	// SessionWorkers caps the workers of one session; 0 means Workers.
	SessionWorkers int
	// ChunkSize is the elements per element chunk; 0 means
	// psi.DefaultChunkSize.
	ChunkSize int
	// IdleTimeout bounds the wait for each client message and for the
	// client to take each server message; 0 means one minute.
	IdleTimeout time.Duration
	// Sets is where sessions read the matchable set of each kind, from a
	// fresh snapshot per session; nil means Store.
	Sets SetSource
	// PoolSize is how many prepared exact-mode sets the server keeps ready
	// per kind (the warm pool, pool.go): each under its own fresh key,
	// taken by one session and destroyed after it, and used only if the
	// session's fresh snapshot has the digest of the one it was built from.
	// A session that takes one skips encoding the set. Each set holds
	// 16 bytes per element of its bucket. 0 (the default) disables the
	// pool.
	PoolSize int
	// EpochCacheBytes bounds the memory of the epochs loaded for sessions
	// (8 bytes per kept tag; SPEC.md §10.12.5): past it the least recently
	// used are dropped and loaded again from the store when needed. 0
	// means 2 GiB; negative, no limit.
	EpochCacheBytes int64
	// PoolKinds lists the kinds kept warm; nil means every kind.
	PoolKinds []psi.Kind
	// PoolSuites lists the ciphersuites kept warm, each one of Suites:
	// the pool keeps PoolSize sets of every pooled kind in each, and a
	// session takes one only in its own suite. nil means the first of
	// Suites, the one every client that offers it uses.
	PoolSuites []psi.Suite
	// Suites is the server's ciphersuite preference list (SPEC.md §12.1):
	// a session uses the first one its client offers, and a client that
	// offers none of them is refused (Overlap-Limit: suite). nil means
	// DefaultSuites.
	Suites []psi.Suite
	// Lease is how long a session's journal row stays leased to this
	// server without renewal (SPEC.md §8.6): the server renews the leases
	// of its sessions every Lease/3, and another server reconciles a
	// session as crashed once its lease has ended. 0 means DefaultLease.
	Lease time.Duration
	// ReconcileInterval is how often the server reconciles sessions whose
	// lease ended (it also does at start); 0 means Lease.
	ReconcileInterval time.Duration
	// AbandonFree is how many sessions an advertiser may abandon after
	// admission within an hour before it is slowed down (SPEC.md §10.8.2);
	// 0 means 3.
	AbandonFree int
	// AbandonDelay is the wait imposed after the first abandoned session
	// beyond AbandonFree; it doubles with each further one, up to an hour.
	// 0 means 30 seconds; negative disables the throttle.
	AbandonDelay time.Duration

	now func() time.Time // tests
}

// Server is the platform's match service. Create it with New, serve with
// Serve, stop with Shutdown.
type Server struct {
	cfg      Config
	log      *slog.Logger
	met      *metrics
	sessions chan struct{} // one token per session in flight
	cpu      *semaphore.Weighted
	workers  int64 // per session

	mu       sync.Mutex
	inFlight map[int64]bool // advertisers with a session in flight
	wg       sync.WaitGroup // sessions

	draining   atomic.Bool
	base       context.Context
	cancelBase context.CancelFunc
	hs         *http.Server

	pool *pool // the warm pool (pool.go); nil when Config.PoolSize is 0

	epochs epochCache // epochs loaded for sessions (epoch.go)

	owner      string // this instance in the session journal (journal.go)
	jmu        sync.Mutex
	pending    []pendingEnd // closing writes to retry
	stopLeases context.CancelFunc
	leases     sync.WaitGroup
	stopOnce   sync.Once
}

// New checks cfg and returns a server. With Config.PoolSize > 0 it starts
// filling the warm pool at once; Shutdown or Close stops it.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("service: no store")
	}
	if cfg.Policy == (Policy{}) {
		cfg.Policy = DefaultPolicy()
	}
	cfg.Policy = cfg.Policy.withDefaults()
	if err := cfg.Policy.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 8
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.SessionWorkers <= 0 || cfg.SessionWorkers > cfg.Workers {
		cfg.SessionWorkers = cfg.Workers
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = psi.DefaultChunkSize
	}
	if cfg.ChunkSize < 1 || cfg.ChunkSize > wire.MaxChunkElements {
		return nil, fmt.Errorf("service: chunk size %d is outside [1, %d]", cfg.ChunkSize, wire.MaxChunkElements)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = time.Minute
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.Sets == nil {
		cfg.Sets = cfg.Store
	}
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Lease < 30*time.Millisecond {
		return nil, fmt.Errorf("service: lease %v is too short", cfg.Lease)
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = cfg.Lease
	}
	if cfg.AbandonFree <= 0 {
		cfg.AbandonFree = 3
	}
	if cfg.AbandonDelay == 0 {
		cfg.AbandonDelay = 30 * time.Second
	}
	if cfg.PoolSize < 0 {
		return nil, fmt.Errorf("service: pool size %d is negative", cfg.PoolSize)
	}
	if cfg.Suites == nil {
		cfg.Suites = DefaultSuites
	}
	for i, x := range cfg.Suites {
		if !x.Known() || slices.Contains(cfg.Suites[:i], x) {
			return nil, fmt.Errorf("service: ciphersuite list %v: unknown or repeated suite %d", cfg.Suites, uint8(x))
		}
	}
	if len(cfg.Suites) == 0 {
		return nil, errors.New("service: no ciphersuite to serve")
	}
	cfg.Suites = slices.Clone(cfg.Suites)
	if cfg.PoolSuites == nil {
		cfg.PoolSuites = cfg.Suites[:1]
	}
	for i, x := range cfg.PoolSuites {
		if !slices.Contains(cfg.Suites, x) || slices.Contains(cfg.PoolSuites[:i], x) {
			return nil, fmt.Errorf("service: pooled ciphersuites %v: suite %d is repeated or not among the suites served %v", cfg.PoolSuites, uint8(x), cfg.Suites)
		}
	}
	if cfg.PoolKinds == nil {
		cfg.PoolKinds = psi.Kinds
	}
	var poolKinds []psi.Kind
	for _, k := range cfg.PoolKinds {
		if !k.Valid() {
			return nil, fmt.Errorf("service: pool kind %v is not an identifier kind", k)
		}
		if !slices.Contains(poolKinds, k) {
			poolKinds = append(poolKinds, k)
		}
	}
	cfg.PoolKinds = poolKinds
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "service"),
		met:      newMetrics(),
		sessions: make(chan struct{}, cfg.MaxSessions),
		cpu:      semaphore.NewWeighted(int64(cfg.Workers)),
		workers:  int64(cfg.SessionWorkers),
		inFlight: map[int64]bool{},
		owner:    newOwner(),
	}
	switch {
	case cfg.EpochCacheBytes == 0:
		s.epochs.max = 2 << 30
	case cfg.EpochCacheBytes > 0:
		s.epochs.max = cfg.EpochCacheBytes
	}
	s.base, s.cancelBase = context.WithCancel(context.Background())
	s.pool = newPool(poolEnv{encode: s.encodeSet, sets: cfg.Sets, cpu: s.cpu, share: s.workers, met: s.met, log: s.log,
		// A refill holds a session's share only beside the sessions in flight.
		mayRun: func() bool { return int64(len(s.sessions)+1)*s.workers <= int64(cfg.Workers) }},
		cfg.PoolSize, cfg.PoolKinds, cfg.PoolSuites)
	s.pool.start()
	lctx, stop := context.WithCancel(context.Background())
	s.stopLeases = stop
	s.leases.Add(1)
	go s.leaseLoop(lctx, &s.leases)
	return s, nil
}

// stopLeaseLoop stops renewing and reconciling, once every session has
// ended.
func (s *Server) stopLeaseLoop() {
	s.stopOnce.Do(func() {
		s.stopLeases()
		s.leases.Wait()
		s.retryPending(context.Background())
	})
}

// maxRequestFrame is the largest valid client frame: an element chunk of C
// elements (SPEC.md §5.6); the protobuf envelope adds a few bytes.
func (s *Server) maxRequestBytes() int {
	return wire.ElementChunkHeaderSize + wire.ElementSize*s.cfg.ChunkSize + 16
}

// Handler returns the HTTP handler of the RPC service, with /healthz and
// /readyz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	path, h := overlapv1connect.NewMatchServiceHandler(&rpc{s},
		// Curve points do not compress: gzip only costs CPU.
		connect.WithCompression("gzip", nil, nil),
		connect.WithReadMaxBytes(s.maxRequestBytes()),
		connect.WithRecover(func(_ context.Context, spec connect.Spec, _ http.Header, r any) error {
			s.log.Error("handler panic", "procedure", spec.Procedure, "panic", fmt.Sprint(r))
			return connect.NewError(connect.CodeInternal, errors.New("internal error"))
		}),
	)
	mux.Handle(path, withConn(h))
	mux.HandleFunc("/healthz", s.healthz)
	mux.HandleFunc("/readyz", s.readyz)
	return mux
}

// AdminHandler serves /healthz, /readyz and /metrics (Prometheus).
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", s.healthz)
	mux.HandleFunc("/readyz", s.readyz)
	mux.Handle("/metrics", promhttp.HandlerFor(s.met.reg, promhttp.HandlerOpts{}))
	return mux
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }

// readyz reports whether the server takes sessions: not shutting down, and
// the store answers.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.cfg.Store.Snapshots(ctx, 0, 1); err != nil {
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

type connKey struct{}

// connInfo is what the handler needs of the HTTP request below Connect.
type connInfo struct {
	rc  *http.ResponseController // per-stream read and write deadlines
	tls *tls.ConnectionState
}

func withConn(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ci := &connInfo{rc: http.NewResponseController(w), tls: r.TLS}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), connKey{}, ci)))
	})
}

func connInfoFrom(ctx context.Context) *connInfo {
	ci, _ := ctx.Value(connKey{}).(*connInfo)
	return ci
}

// Serve accepts connections on ln, TLS 1.3 with tlsConfig (see ServerTLS),
// until Shutdown. It returns http.ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener, tlsConfig *tls.Config) error {
	if tlsConfig == nil || tlsConfig.MinVersion < tls.VersionTLS13 {
		return errors.New("service: Serve needs a TLS 1.3 configuration")
	}
	s.mu.Lock()
	if s.hs != nil {
		s.mu.Unlock()
		return errors.New("service: Serve called twice")
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true) // for /healthz with curl; RPCs need HTTP/2
	protocols.SetHTTP2(true)
	s.hs = &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         tlsConfig.Clone(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		Protocols:         &protocols,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: 4 * s.cfg.MaxSessions,
			// Backpressure (SPEC.md §5.8): about two request chunks
			// buffered per stream, not megabytes.
			MaxReceiveBufferPerStream: 2 * s.maxRequestBytes(),
			MaxReadFrameSize:          1 << 16,
		},
		BaseContext: func(net.Listener) context.Context { return s.base },
		ErrorLog:    log.New(newHTTPErrorLog(s.log, s.met, time.Minute, 5), "", 0),
	}
	hs := s.hs
	s.mu.Unlock()
	s.log.Info("serving", "addr", ln.Addr().String())
	return hs.ServeTLS(ln, "", "")
}

// Shutdown stops taking sessions, lets those in flight finish until ctx is
// done, then aborts the rest. Every session, finished or aborted, has its
// audit row written before Shutdown returns.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining.Store(true)
	hs := s.hs
	s.mu.Unlock()
	s.pool.stop()
	var err error
	if hs != nil {
		err = hs.Shutdown(ctx)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		s.log.Warn("shutdown timeout: aborting sessions in flight")
		s.cancelBase()
		if hs != nil {
			hs.Close()
		}
		<-done
	}
	s.cancelBase()
	s.stopLeaseLoop()
	s.log.Info("stopped")
	return err
}

// Close aborts every session at once and closes the listener.
func (s *Server) Close() error {
	s.mu.Lock()
	s.draining.Store(true)
	s.cancelBase()
	hs := s.hs
	s.mu.Unlock()
	s.pool.stop()
	var err error
	if hs != nil {
		err = hs.Close()
	}
	s.wg.Wait()
	s.stopLeaseLoop()
	return err
}

// rpc implements the generated service interface.
type rpc struct{ s *Server }

func (r *rpc) Match(ctx context.Context, st *connect.BidiStream[pb.MatchRequest, pb.MatchResponse]) error {
	return r.s.match(ctx, st)
}

func (r *rpc) GetPolicy(ctx context.Context, req *connect.Request[pb.GetPolicyRequest]) (*connect.Response[pb.GetPolicyResponse], error) {
	a, err := r.s.authenticate(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	pol := r.s.cfg.Policy.For(a.Policy)
	used, err := r.s.cfg.Store.BudgetUsed(ctx, a.ID, pol.BudgetWindow, r.s.cfg.now())
	if err != nil {
		r.s.log.Error("budget lookup failed", "advertiser", a.Name, "err", err)
		return nil, connect.NewError(connect.CodeInternal, errors.New("internal error"))
	}
	eps, err := r.s.cfg.Store.EpsilonUsed(ctx, a.ID, pol.BudgetWindow, r.s.cfg.now())
	if err != nil {
		r.s.log.Error("privacy budget lookup failed", "advertiser", a.Name, "err", err)
		return nil, connect.NewError(connect.CodeInternal, errors.New("internal error"))
	}
	resp := &pb.GetPolicyResponse{
		Advertiser: a.Name, MinListSize: pol.MinListSize, MaxListSize: pol.MaxListSize,
		Budget: pol.Budget, BudgetUsed: used, BudgetWindowSeconds: int64(pol.BudgetWindow / time.Second),
		PrivacyBudgetMicros: pol.PrivacyBudget, PrivacyUsedMicros: eps, PrivacyCostMicros: pol.PrivacyCost,
	}
	for _, m := range []wire.Mode{wire.ModeExact, wire.ModePrivate} {
		if a.Policy.Modes.Has(uint8(m)) {
			resp.Modes = append(resp.Modes, m.String())
		}
	}
	if a.Policy.Modes&store.ModesEpoch == store.ModesEpoch {
		resp.Modes = append(resp.Modes, "epoch") // setups and epoch sessions: match --mode epoch
	}
	// Record sessions (SPEC.md §13) follow the identifier-level modes:
	// a customer file with match --mode exact or private.
	for _, m := range []wire.Mode{wire.ModeExactRecords, wire.ModePrivateRecords} {
		if a.Policy.Modes.Has(uint8(recordsModeServed(m))) {
			resp.Modes = append(resp.Modes, m.String())
		}
	}
	for _, k := range psi.Kinds {
		resp.Kinds = append(resp.Kinds, k.String())
	}
	return connect.NewResponse(resp), nil
}

// authenticate maps the request's credentials to an active advertiser: an
// API key in "Authorization: Bearer", else a verified client certificate
// whose CN or a SAN is an advertiser's certificate name.
func (s *Server) authenticate(ctx context.Context, h http.Header) (store.Advertiser, error) {
	if auth := h.Get("Authorization"); auth != "" {
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok {
			return store.Advertiser{}, connect.NewError(connect.CodeUnauthenticated, errors.New("the Authorization header must read Bearer <API key>"))
		}
		key, err := client.ParseAPIKey(tok)
		if err != nil {
			return store.Advertiser{}, connect.NewError(connect.CodeUnauthenticated, errors.New("malformed API key (want ovl_<id>_<secret>)"))
		}
		a, err := s.cfg.Store.AdvertiserByKeyID(ctx, key.ID)
		if errors.Is(err, store.ErrUnknownAdvertiser) || err == nil && !key.Matches(a.KeyHash[:]) {
			return store.Advertiser{}, connect.NewError(connect.CodeUnauthenticated, errors.New("invalid API key"))
		}
		if err != nil {
			s.log.Error("advertiser lookup failed", "err", err)
			return store.Advertiser{}, connect.NewError(connect.CodeUnavailable, errors.New("the server cannot check credentials now"))
		}
		return a, checkRevoked(a)
	}
	if ci := connInfoFrom(ctx); ci != nil && ci.tls != nil && len(ci.tls.VerifiedChains) > 0 {
		leaf := ci.tls.VerifiedChains[0][0]
		names := []string{leaf.Subject.CommonName}
		names = append(names, leaf.DNSNames...)
		names = append(names, leaf.EmailAddresses...)
		for _, u := range leaf.URIs {
			names = append(names, u.String())
		}
		for _, n := range names {
			if n == "" {
				continue
			}
			a, err := s.cfg.Store.AdvertiserByCertName(ctx, n)
			if err == nil {
				return a, checkRevoked(a)
			}
			if !errors.Is(err, store.ErrUnknownAdvertiser) {
				s.log.Error("advertiser lookup failed", "err", err)
				return store.Advertiser{}, connect.NewError(connect.CodeUnavailable, errors.New("the server cannot check credentials now"))
			}
		}
		return store.Advertiser{}, connect.NewError(connect.CodePermissionDenied,
			fmt.Errorf("the client certificate %q maps to no advertiser", leaf.Subject.CommonName))
	}
	return store.Advertiser{}, connect.NewError(connect.CodeUnauthenticated,
		errors.New("no credentials: send an API key (Authorization: Bearer ovl_…) or a client certificate"))
}

func checkRevoked(a store.Advertiser) error {
	if a.Revoked() {
		return connect.NewError(connect.CodePermissionDenied,
			fmt.Errorf("the credentials of advertiser %q were revoked on %s", a.Name, a.RevokedAt.Format(time.DateOnly)))
	}
	return nil
}
