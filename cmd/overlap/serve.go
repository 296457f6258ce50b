//go:build !advertiser

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/dp"
	"github.com/overlap-psi/overlap/psi/service"
)

var budgetWindowFlag = &cli.DurationFlag{
	Name:    "budget-window",
	Usage:   "length of the rolling window of the identifier and privacy budgets",
	EnvVars: []string{"OVERLAP_BUDGET_WINDOW"},
	Value:   service.DefaultPolicy().BudgetWindow,
}

func serveCommand() *cli.Command {
	def := service.DefaultPolicy()
	return &cli.Command{
		Name:  "serve",
		Usage: "platform: run the match service for advertisers (HTTP/2, TLS 1.3)",
		Description: "Serves match sessions over TLS 1.3 to advertisers registered with overlap\n" +
			"advertisers add. Each session reads a fresh consent snapshot of the store for\n" +
			"its identifier kind, and is refused, before any cryptographic work, when it\n" +
			"breaks the policy: a mode the advertiser is not served (overlap advertisers set\n" +
			"--modes), list size outside [--min-list, --max-list], the advertiser's identifier\n" +
			"or privacy budget over --budget-window exhausted, a session of the same\n" +
			"advertiser in flight, or --max-sessions running. Every session leaves a row in\n" +
			"the store's audit log and a JSON log line on stderr, without identifiers or keys.\n\n" +
			"Private mode (SPEC.md §10), which new advertisers get by default: this server\n" +
			"counts, and releases the count with discrete Laplace noise of ε = --privacy-cost\n" +
			"and Δ = --sensitivity, or \"under --threshold\". Each session reserves its ε of\n" +
			"the advertiser's --privacy-budget per --budget-window before any work, and its\n" +
			"set is padded with at least --ringers elements whose logs it knows, which catch\n" +
			"a client that does not follow the protocol. ε values are decimals (2, 0.5) kept\n" +
			"exactly in millionths; overlap advertisers set overrides them per advertiser.\n\n" +
			"Every flag can be set with its OVERLAP_* environment variable or in a YAML file\n" +
			"(--config) whose keys are the flag names; flags win over the environment, which\n" +
			"wins over the file. SIGINT or SIGTERM stops it gracefully: sessions in flight get\n" +
			"--shutdown-timeout to finish, then are aborted (and audited).\n\n" +
			"Crash recovery (SPEC.md §8.6): a session's budget reservation and its journal row\n" +
			"are written together before any cryptographic work, under a --lease this server\n" +
			"renews. If the server dies (kill -9, power loss), the next server on the store\n" +
			"closes the session once its lease has ended, with result \"crashed\": refunded if\n" +
			"nothing derived from the set had been sent, its spend kept otherwise. A session\n" +
			"that meets a busy store (a long import) retries within --idle-timeout.\n\n" +
			"Replicas: any number of overlap serve processes may share one PostgreSQL store\n" +
			"(--db postgres://...) behind a load balancer. An advertiser's limits (one session\n" +
			"in flight, the identifier and privacy budgets, the abandoned-session throttle)\n" +
			"are checked in the store, in the transaction that reserves the session, so they\n" +
			"hold across replicas; a replica killed mid-session holds its sessions' slots and\n" +
			"reservations for at most --lease. --max-sessions, --workers and --pool are per\n" +
			"process. A SQLite store (the default) is for one process on one machine.\n\n" +
			"Abandoned sessions (SPEC.md §10.8.2): a client that is admitted and then leaves\n" +
			"without sending any element is refunded, audited as \"abandoned\", and, past\n" +
			"--abandon-free per hour, its advertiser is refused for --abandon-delay, doubling\n" +
			"with each further one.\n\n" +
			"For a try on one machine: overlap serve --dev-cert certs, which writes a self-\n" +
			"signed certificate to certs/ and tells the path to pass to overlap match --ca.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "YAML file of settings, keyed by flag name (e.g. addr: 0.0.0.0:8443)", EnvVars: []string{"OVERLAP_CONFIG"}},
			dbFlag,
			&cli.StringFlag{Name: "addr", Usage: "address to listen on, HOST:PORT (:8443 for every interface)", EnvVars: []string{"OVERLAP_ADDR"}, Value: "127.0.0.1:8443"},
			&cli.StringFlag{Name: "cert", Usage: "TLS certificate chain (PEM) of the server", EnvVars: []string{"OVERLAP_CERT"}},
			&cli.StringFlag{Name: "key", Usage: "TLS private key (PEM) of the server", EnvVars: []string{"OVERLAP_KEY"}},
			&cli.StringFlag{Name: "dev-cert", Usage: "development only: write (or reuse) a self-signed certificate in this folder and serve with it", EnvVars: []string{"OVERLAP_DEV_CERT"}},
			&cli.StringFlag{Name: "client-ca", Usage: "CA certificates (PEM) of advertiser client certificates; enables mTLS (advertisers add --cert-name)", EnvVars: []string{"OVERLAP_CLIENT_CA"}},
			&cli.StringFlag{Name: "admin-addr", Usage: "plain-HTTP address for /healthz, /readyz and /metrics; empty disables it", EnvVars: []string{"OVERLAP_ADMIN_ADDR"}, Value: "127.0.0.1:9090"},
			&cli.Int64Flag{Name: "min-list", Usage: "default smallest list per session, in distinct identifiers", EnvVars: []string{"OVERLAP_MIN_LIST"}, Value: def.MinListSize},
			&cli.Int64Flag{Name: "max-list", Usage: "default largest list per session", EnvVars: []string{"OVERLAP_MAX_LIST"}, Value: def.MaxListSize},
			&cli.Int64Flag{Name: "budget", Usage: "default identifiers each advertiser may match per budget window", EnvVars: []string{"OVERLAP_BUDGET"}, Value: def.Budget},
			budgetWindowFlag,
			&cli.StringFlag{Name: "privacy-budget", Usage: "default ε each advertiser may spend on private sessions per budget window", EnvVars: []string{"OVERLAP_PRIVACY_BUDGET"}, Value: dp.Epsilon(def.PrivacyBudget).String()},
			&cli.StringFlag{Name: "privacy-cost", Usage: "default ε of one private session: the ε of its noise, and what it spends of the privacy budget", EnvVars: []string{"OVERLAP_PRIVACY_COST"}, Value: dp.Epsilon(def.PrivacyCost).String()},
			&cli.IntFlag{Name: "ringers", Usage: "least number of ringers in a private session's set, which catch a client that deviates (SPEC.md §10.3)", EnvVars: []string{"OVERLAP_RINGERS"}, Value: def.Ringers},
			&cli.Int64Flag{Name: "threshold", Usage: "private mode releases noised counts below this as \"under THRESHOLD\"", EnvVars: []string{"OVERLAP_THRESHOLD"}, Value: int64(def.Threshold)},
			&cli.DurationFlag{Name: "epoch-lifetime", Usage: "how long an epoch serves --mode epoch sessions after its setup; withdrawals since the setup count until it ends (SPEC.md §10.12.6; at most 168h)", EnvVars: []string{"OVERLAP_EPOCH_LIFETIME"}, Value: def.EpochLifetime},
			&cli.Float64Flag{Name: "epoch-delta", Usage: "bound on δ_E, the chance that a setup's deviation touches a given person and passes its ringers (SPEC.md §10.12.4); it sets the ringers. The default, 1e-6, pads a small set to 10^6 elements; a larger bound is for tests and trials", EnvVars: []string{"OVERLAP_EPOCH_DELTA"}, Value: psi.EpochDelta},
			&cli.Int64Flag{Name: "epoch-cache-mb", Usage: "memory for the epochs loaded for sessions, 8 bytes per kept tag (100 MB per 10^7); past it the least recently used are dropped and read again from the store when needed (about 0.6 s per 10^7 tags); -1: no limit", EnvVars: []string{"OVERLAP_EPOCH_CACHE_MB"}, Value: 2048},
			&cli.IntFlag{Name: "setups-per-day", Usage: "setups each advertiser may make in any 24 hours; each costs the server one multiplication per identifier (SPEC.md §10.12.5)", EnvVars: []string{"OVERLAP_SETUPS_PER_DAY"}, Value: def.SetupsPerDay},
			&cli.Int64Flag{Name: "sensitivity", Usage: "Δ of the private-mode noise: identifiers of a kind one person may contribute (SPEC.md §10.9)", EnvVars: []string{"OVERLAP_SENSITIVITY"}, Value: int64(def.Sensitivity)},
			&cli.IntFlag{Name: "pool", Usage: "exact mode: prepared sets kept ready per kind, each under its own key, used by one session and only while the consent snapshot it came from is current; a warm session skips encoding the set (0: none; each holds 16 bytes per element)", EnvVars: []string{"OVERLAP_POOL"}},
			&cli.StringFlag{Name: "suites", Usage: "ciphersuites served, in order of preference (SPEC.md §12): a session uses the first its client offers; 2 is curve25519 with the X25519 ladder, 1 ristretto255 (what clients from before suites offer)", EnvVars: []string{"OVERLAP_SUITES"}, Value: "2,1"},
			&cli.StringFlag{Name: "pool-suites", Usage: "ciphersuites the warm pool prepares sets in, each one of --suites: --pool sets per kind in each, and a session takes one only in its own suite (default: the first of --suites; 2,1 also serves clients that offer only suite 1 warm, at twice the pool's memory and encoding)", EnvVars: []string{"OVERLAP_POOL_SUITES"}},
			&cli.IntFlag{Name: "max-sessions", Usage: "sessions in flight in this process, all advertisers together (one per advertiser, across replicas)", EnvVars: []string{"OVERLAP_MAX_SESSIONS"}, Value: 8},
			&cli.IntFlag{Name: "workers", Usage: "scalar-multiplication workers, all sessions together (0: the number of CPUs)", EnvVars: []string{"OVERLAP_WORKERS"}},
			&cli.IntFlag{Name: "session-workers", Usage: "most workers one session uses (0: --workers)", EnvVars: []string{"OVERLAP_SESSION_WORKERS"}},
			&cli.DurationFlag{Name: "idle-timeout", Usage: "longest wait for a client message, and for the client to take one", EnvVars: []string{"OVERLAP_IDLE_TIMEOUT"}, Value: time.Minute},
			&cli.DurationFlag{Name: "lease", Usage: "journal lease of a session: renewed every third of it while the session runs; a session whose server stopped (crash, kill -9) is closed as crashed, and refunded if nothing derived from the set was sent, once its lease has ended", EnvVars: []string{"OVERLAP_LEASE"}, Value: service.DefaultLease},
			&cli.DurationFlag{Name: "reconcile-interval", Usage: "how often to close sessions whose lease ended (also at start; 0: --lease)", EnvVars: []string{"OVERLAP_RECONCILE_INTERVAL"}},
			&cli.IntFlag{Name: "abandon-free", Usage: "sessions an advertiser may abandon per hour (admitted, then left without sending any element) before it is slowed down", EnvVars: []string{"OVERLAP_ABANDON_FREE"}, Value: 3},
			&cli.DurationFlag{Name: "abandon-delay", Usage: "wait imposed after the first abandoned session beyond --abandon-free, doubling with each further one up to an hour (negative: no throttle)", EnvVars: []string{"OVERLAP_ABANDON_DELAY"}, Value: 30 * time.Second},
			&cli.DurationFlag{Name: "shutdown-timeout", Usage: "on SIGINT/SIGTERM, how long sessions in flight may finish before they are aborted", EnvVars: []string{"OVERLAP_SHUTDOWN_TIMEOUT"}, Value: 30 * time.Second},
			&cli.StringFlag{Name: "log-format", Usage: "log lines on stderr: json or text", EnvVars: []string{"OVERLAP_LOG_FORMAT"}, Value: "json"},
		},
		Before: loadConfigFile,
		Action: serve,
	}
}

// loadConfigFile applies a --config YAML file to the flags that neither the
// command line nor the environment set.
func loadConfigFile(c *cli.Context) error {
	path := c.String("config")
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return withHint(err, "--config names a YAML file of flag: value lines")
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	known := map[string]bool{}
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			known[n] = true
		}
	}
	for k, v := range m {
		if !known[k] || k == "config" {
			return withHint(fmt.Errorf("%s: unknown setting %q", path, k), "keys are the flag names of overlap serve --help")
		}
		if c.IsSet(k) {
			continue
		}
		if err := c.Set(k, fmt.Sprint(v)); err != nil {
			return fmt.Errorf("%s: %s: %w", path, k, err)
		}
	}
	return nil
}

// epochCacheBytes turns --epoch-cache-mb into service.Config.EpochCacheBytes
// (negative: no limit).
func epochCacheBytes(mb int64) int64 {
	if mb < 0 {
		return -1
	}
	return max(mb, 1) << 20
}

// servePolicy reads the default session policy from the flags.
func servePolicy(c *cli.Context) (service.Policy, error) {
	p := service.Policy{MinListSize: c.Int64("min-list"), MaxListSize: c.Int64("max-list"),
		Budget: c.Int64("budget"), BudgetWindow: c.Duration(budgetWindowFlag.Name), Ringers: c.Int("ringers")}
	var err error
	if p.PrivacyBudget, err = parseEpsilon("privacy-budget", c.String("privacy-budget")); err != nil {
		return p, err
	}
	if p.PrivacyCost, err = parseEpsilon("privacy-cost", c.String("privacy-cost")); err != nil {
		return p, err
	}
	switch {
	case p.PrivacyBudget == 0:
		return p, withHint(errors.New("--privacy-budget must be above 0"), "pass the ε an advertiser may spend per window, such as 2")
	case p.PrivacyCost == 0 || p.PrivacyCost > dp.MaxEpsilon*int64(dp.OneEpsilon):
		return p, withHint(fmt.Errorf("--privacy-cost must be above 0 and at most %d", dp.MaxEpsilon), "pass the ε of one private session, such as 0.5")
	case p.Ringers < 1:
		return p, withHint(fmt.Errorf("--ringers %d: at least 1", p.Ringers), "ringers catch a deviating client; the default is %d", psi.DefaultRingers)
	}
	t, d := c.Int64("threshold"), c.Int64("sensitivity")
	if t < 1 || t > math.MaxUint32 {
		return p, withHint(fmt.Errorf("--threshold %d is out of range", t), "pass a count of at least 1, such as %d", psi.DefaultThreshold)
	}
	if d < 1 || d > dp.MaxSensitivity {
		return p, withHint(fmt.Errorf("--sensitivity %d is out of range", d), "pass 1 to %d identifiers per person", dp.MaxSensitivity)
	}
	p.Threshold, p.Sensitivity = uint32(t), uint32(d)
	p.EpochLifetime, p.SetupsPerDay, p.EpochDelta = c.Duration("epoch-lifetime"), c.Int("setups-per-day"), c.Float64("epoch-delta")
	if !(p.EpochDelta > 0 && p.EpochDelta < 1) {
		return p, withHint(fmt.Errorf("--epoch-delta %g is out of range", p.EpochDelta), "pass a probability in (0, 1), such as the default 1e-6")
	}
	if p.EpochLifetime < time.Minute || p.EpochLifetime > service.MaxEpochLifetime {
		return p, withHint(fmt.Errorf("--epoch-lifetime %v is out of range", p.EpochLifetime), "pass 1m to 168h, such as 24h")
	}
	if p.SetupsPerDay < 1 {
		return p, withHint(fmt.Errorf("--setups-per-day %d: at least 1", p.SetupsPerDay), "the default is 2")
	}
	return p, nil
}

// serveLogger is the server's log, in the --log-format.
func serveLogger(c *cli.Context) (*slog.Logger, error) {
	switch c.String("log-format") {
	case "json":
		return slog.New(slog.NewJSONHandler(c.App.ErrWriter, nil)), nil
	case "text":
		return slog.New(slog.NewTextHandler(c.App.ErrWriter, nil)), nil
	}
	return nil, withHint(fmt.Errorf("unknown log format %q", c.String("log-format")), "use --log-format json or text")
}

// serveTLS is the server's TLS configuration for addr: --cert and --key,
// or a development certificate written to --dev-cert.
func serveTLS(c *cli.Context, addr string) (*tls.Config, error) {
	stderr := c.App.ErrWriter
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, withHint(fmt.Errorf("--addr %q: %w", addr, err), "use HOST:PORT, such as 127.0.0.1:8443 or :8443")
	}
	certFile, keyFile := c.String("cert"), c.String("key")
	if dir := c.String("dev-cert"); dir != "" {
		if certFile != "" || keyFile != "" {
			return nil, withHint(errors.New("--dev-cert and --cert/--key exclude each other"), "use --dev-cert for a try, --cert and --key in production")
		}
		dc, err := service.WriteDevCert(dir, host)
		if err != nil {
			return nil, err
		}
		certFile, keyFile = dc.CertFile, dc.KeyFile
		for _, w := range dc.Warnings {
			fmt.Fprintf(stderr, "overlap: warning: %s\n", w)
		}
		fmt.Fprintf(stderr, "overlap: development certificate %s (self-signed, for localhost and 127.0.0.1); clients pass --ca %s\n", dc.CertFile, dc.CertFile)
	}
	if certFile == "" || keyFile == "" {
		return nil, withHint(errors.New("no TLS certificate"), "pass --cert and --key, or --dev-cert DIR for a self-signed development certificate")
	}
	return service.ServerTLS(certFile, keyFile, c.String("client-ca"))
}

func serve(c *cli.Context) error {
	stderr := c.App.ErrWriter
	logger, err := serveLogger(c)
	if err != nil {
		return err
	}
	policy, err := servePolicy(c)
	if err != nil {
		return err
	}
	addr := c.String("addr")
	tlsCfg, err := serveTLS(c, addr)
	if err != nil {
		return err
	}

	st, err := openStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	suites, err := psi.ParseSuiteList(c.String("suites"))
	if err != nil {
		return withHint(err, "--suites takes a preference list such as 2,1")
	}
	var poolSuites []psi.Suite
	if c.IsSet("pool-suites") {
		if poolSuites, err = psi.ParseSuiteList(c.String("pool-suites")); err != nil {
			return withHint(err, "--pool-suites takes suites of --suites, such as 2,1")
		}
	}
	srv, err := service.New(service.Config{
		Store:          st,
		Logger:         logger,
		Policy:         policy,
		MaxSessions:    c.Int("max-sessions"),
		Workers:        c.Int("workers"),
		SessionWorkers: c.Int("session-workers"),
		PoolSize:       c.Int("pool"),
		Suites:         suites,
		PoolSuites:     poolSuites,
		IdleTimeout:    c.Duration("idle-timeout"),

		Lease:             c.Duration("lease"),
		ReconcileInterval: c.Duration("reconcile-interval"),
		AbandonFree:       c.Int("abandon-free"),
		AbandonDelay:      c.Duration("abandon-delay"),
		EpochCacheBytes:   epochCacheBytes(c.Int64("epoch-cache-mb")),
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return withHint(err, "another process may hold the port; pick another with --addr")
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln, tlsCfg) }()
	fmt.Fprintf(stderr, "overlap: serving matches on %s (TLS 1.3, HTTP/2); stop with Ctrl-C\n", ln.Addr())

	var admin *http.Server
	if a := c.String("admin-addr"); a != "" {
		aln, err := net.Listen("tcp", a)
		if err != nil {
			srv.Close()
			return withHint(fmt.Errorf("--admin-addr: %w", err), "pick another port, or --admin-addr '' to disable it")
		}
		admin = &http.Server{Handler: srv.AdminHandler(), ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 8 << 10}
		go func() {
			if err := admin.Serve(aln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
		fmt.Fprintf(stderr, "overlap: /healthz, /readyz and /metrics on http://%s\n", aln.Addr())
	}

	select {
	case err := <-errc:
		srv.Close()
		return err
	case <-ctx.Done():
	}
	stop()
	fmt.Fprintf(stderr, "overlap: stopping; sessions in flight have %v to finish\n", c.Duration("shutdown-timeout"))
	sctx, cancel := context.WithTimeout(context.Background(), c.Duration("shutdown-timeout"))
	defer cancel()
	err = srv.Shutdown(sctx)
	if admin != nil {
		admin.Close()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintln(stderr, "overlap: shutdown timeout: sessions in flight were aborted (and audited)")
		err = nil
	}
	fmt.Fprintln(stderr, "overlap: stopped")
	return err
}
