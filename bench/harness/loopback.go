package harness

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/gcs"
	"github.com/overlap-psi/overlap/psi/service"
	"github.com/overlap-psi/overlap/psi/store"
	"github.com/overlap-psi/overlap/psi/wire"
)

// Loopback mode (exact mode) and private-loopback mode (private mode,
// private_loopback.go) run the real service in two child processes: this
// binary, re-executed with the same arguments and childEnv naming the role,
// so that it reaches Main (or a test's TestMain) and runs RunChild's role
// instead of a benchmark. The parent sends each child its configuration in
// childConfigEnv and reads its reports from stdout, one line each, prefixed
// with childPrefix. A child's peak memory is its process's ru_maxrss.
const (
	childEnv       = "OVERLAP_BENCH_CHILD"        // "server" or "client"
	childConfigEnv = "OVERLAP_BENCH_CHILD_CONFIG" // the role's configuration, JSON
	childPrefix    = "overlap-bench-child "
)

// serverChildConfig configures the server child.
type serverChildConfig struct {
	Seed     uint64 `json:"seed"`
	Server   int    `json:"server"`    // size of the seeded set
	PoolSize int    `json:"pool_size"` // service.Config.PoolSize
	Dir      string `json:"dir"`       // for the registry database and the certificate
	// Epoch-loopback mode: the advertiser is also served epochs, whose
	// setups keep δ_E under EpochDelta (0: the protocol's 10^-6).
	Epoch      bool    `json:"epoch,omitempty"`
	EpochDelta float64 `json:"epoch_delta,omitempty"`
	Suite      int     `json:"suite"` // the only ciphersuite served
	// Record modes: the source also serves the phone set (seededSource).
	Phones bool `json:"phones,omitempty"`
}

// serverReady is the server child's first report: it serves, and its pool
// (if any) is full.
type serverReady struct {
	Addr   string `json:"addr"`
	CAFile string `json:"ca_file"`
	APIKey string `json:"api_key"` // of the one advertiser of a throwaway registry
	CPUNS  int64  `json:"cpu_ns"`  // the child's CPU time so far: setup and pool fill
}

// serverDone is the server child's last report.
type serverDone struct {
	Hits   int64 `json:"pool_hits"`
	Misses int64 `json:"pool_misses"`
	CPUNS  int64 `json:"cpu_ns"`
	// Epoch-loopback mode: what the server keeps of its epochs
	// (epochServerState).
	Epochs *epochServerState `json:"epochs,omitempty"`
}

// clientChildConfig configures the client child.
type clientChildConfig struct {
	Private bool    `json:"private"` // private mode (MatchPrivate) instead of exact mode (Match)
	Seed    uint64  `json:"seed"`
	Client  int     `json:"client"`
	Server  int     `json:"server"`
	Overlap float64 `json:"overlap"`
	Addr    string  `json:"addr"`
	CAFile  string  `json:"ca_file"`
	APIKey  string  `json:"api_key"`
	// Epoch-loopback mode: one setup, then a session of each size.
	EpochSessions []int `json:"epoch_sessions,omitempty"`
	Suite         int   `json:"suite"` // the only ciphersuite offered
	// Record modes: which session of the grid point's customers
	// (recordsData) to run: PartRecords, a record session; PartEmail or
	// PartPhone, the identifier-level session of that column. Empty: the
	// seeded list of the other modes.
	Records string `json:"records,omitempty"`
}

// clientReport is what the client child measured of its session. Times
// are nanoseconds from the start of Match.
type clientReport struct {
	Overlap    int   `json:"overlap"`
	ServerSize int   `json:"server_size"`
	Snapshot   int64 `json:"snapshot_version"`
	ElapsedNS  int64 `json:"elapsed_ns"`
	ParamsNS   int64 `json:"params_ns"` // ServerParams arrived
	SendNS     int64 `json:"send_ns"`   // the last blinded chunk went out (end of the phase)
	FirstNS    int64 `json:"first_evaluated_ns"`
	LastNS     int64 `json:"last_evaluated_ns"`
	CPUNS      int64 `json:"cpu_ns"`
	client.Traffic
}

// RunChild runs the loopback child role the environment names, if any,
// and reports whether it did, with the exit code. Main calls it first; a
// program that calls harness.Main needs nothing else. A test binary that
// runs loopback mode calls it from TestMain.
func RunChild() (bool, int) {
	role := os.Getenv(childEnv)
	if role == "" {
		return false, 0
	}
	var err error
	if dir := os.Getenv(cpuProfileEnv); dir != "" {
		stop, perr := startCPUProfile(filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", role, os.Getpid())))
		if perr != nil {
			fmt.Fprintf(os.Stderr, "bench %s child: error: %v\n", role, perr)
			return true, 1
		}
		defer stop()
	}
	switch role {
	case "server":
		var cfg serverChildConfig
		if err = json.Unmarshal([]byte(os.Getenv(childConfigEnv)), &cfg); err == nil {
			err = serverChild(cfg)
		}
	case "client":
		var cfg clientChildConfig
		if err = json.Unmarshal([]byte(os.Getenv(childConfigEnv)), &cfg); err == nil {
			if len(cfg.EpochSessions) > 0 {
				err = epochClientChild(cfg)
			} else if cfg.Private {
				err = privateClientChild(cfg)
			} else {
				err = clientChild(cfg)
			}
		}
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err == nil {
		err = report(childExit{PeakRSS: peakRSS()})
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s child: error: %v\n", role, err)
		return true, 1
	}
	return true, 0
}

// cpuProfileEnv names a directory in which each child writes a CPU
// profile of its whole run (ROLE-PID.pprof), for `go tool pprof`: a
// diagnostic of where a loopback run's time goes, off by default.
const cpuProfileEnv = "OVERLAP_BENCH_CPUPROFILE"

// startCPUProfile starts a CPU profile written to path; stop ends it.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// childExit is a child's last report: its own peak RSS.
type childExit struct {
	PeakRSS uint64 `json:"peak_rss_bytes"`
}

// peakRSS returns this process's peak resident set size, VmHWM of
// /proc/self/status, or 0 where there is none. It is the peak of this
// program's own memory since exec; the ru_maxrss a parent gets from wait4
// is not, on Linux: it starts from the RSS the parent had when it forked
// the child.
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

func report(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(os.Stdout, "%s%s\n", childPrefix, b)
	return err
}

// seededSource is a service.SetSource that streams the seeded server set
// of the harness (digestOf), for email, and with phones set also the
// seeded phone set of the record modes (recordsData: subject i has email
// digestOf(seed, 's', i) and phone digestOf(seed, 'p', i)); other kinds
// are empty. Its
// snapshot digest names the seed and size, which determine the set, so two
// snapshots of one source are equal, as two of an unchanged store are.
// Private-mode sessions read it through SnapshotPerSubject. Each snapshot
// it serves is recorded in st, the server's store, as service.SetSource
// asks, so that the sessions' audit rows name it.
//
// Like a store.Store, it has a ledger generation (Generation), which never
// moves since the set never changes: a warm session takes its pooled set
// after one cheap read, as it would over an unchanged store, instead of
// streaming the whole set again to compare snapshot digests.
//
// With limit > 0 it serves that many snapshots and refuses the rest. The
// warm run uses the pool's size: the fill. The refill the pool starts when
// the session's server side ends would otherwise take the cores the client
// still unblinds on: on a real deployment it runs on the server's machine,
// here both share two cores.
type seededSource struct {
	st     store.Store
	seed   uint64
	n      int
	phones bool
	limit  int64
	served atomic.Int64
}

var errSourceSpent = errors.New("harness: the warm run's source serves the pool's fill only")

// seededGeneration is the seeded source's ledger generation: any value
// other than 0 (which the pool reads as "no generation recorded").
const seededGeneration = 1

// Generation is the source's ledger generation, which never moves.
func (s *seededSource) Generation(context.Context) (int64, error) { return seededGeneration, nil }

func (s *seededSource) Snapshot(ctx context.Context, kind psi.Kind, fn func([32]byte) error) (store.SnapshotInfo, error) {
	return s.snapshot(ctx, kind, 0, fn)
}

// SnapshotPerSubject is the snapshot of a private-mode session, each
// subject contributing at most maxPerSubject digests (SPEC.md §10.9), as
// store.Store's is. The synthetic set has one identifier of each kind per
// subject, so any cap keeps all of it: the stream is Snapshot's, and the
// info records the cap.
func (s *seededSource) SnapshotPerSubject(ctx context.Context, kind psi.Kind, maxPerSubject int, fn func([32]byte) error) (store.SnapshotInfo, error) {
	if maxPerSubject < 1 || maxPerSubject > store.MaxSnapshotPerSubject {
		return store.SnapshotInfo{}, fmt.Errorf("harness: snapshot: at most %d digests per subject is outside 1..%d", maxPerSubject, store.MaxSnapshotPerSubject)
	}
	return s.snapshot(ctx, kind, maxPerSubject, fn)
}

func (s *seededSource) snapshot(ctx context.Context, kind psi.Kind, maxPerSubject int, fn func([32]byte) error) (store.SnapshotInfo, error) {
	if v := s.served.Add(1); s.limit > 0 && v > s.limit {
		return store.SnapshotInfo{}, errSourceSpent
	}
	info := store.SnapshotInfo{Kind: kind, TakenAt: time.Now().UTC(), MaxPerSubject: maxPerSubject}
	side := byte(0)
	switch {
	case kind == psi.KindEmail:
		side = 's'
	case kind == psi.KindPhone && s.phones:
		side = 'p'
	}
	if side != 0 {
		for i := range s.n {
			if i%4096 == 0 && ctx.Err() != nil {
				return store.SnapshotInfo{}, ctx.Err()
			}
			if err := fn(digestOf(s.seed, side, i)); err != nil {
				return store.SnapshotInfo{}, err
			}
		}
		info.Size = int64(s.n)
	}
	h := sha256.New()
	h.Write([]byte("overlap-bench-synthetic-v1"))
	h.Write([]byte{byte(kind)})
	binary.Write(h, binary.BigEndian, s.seed)
	binary.Write(h, binary.BigEndian, info.Size)
	h.Sum(info.Digest[:0])
	info, err := s.st.RecordSnapshot(ctx, info)
	if err != nil {
		return store.SnapshotInfo{}, err
	}
	// The store records an outside source's snapshot without a
	// generation; this one saw the source's only one.
	info.Generation = seededGeneration
	return info, nil
}

// benchPrivacyBudget is the privacy budget of the server child's advertiser
// and policy, in micro-ε: 2^40, about 1.1·10^6 ε, so that no run of the
// harness meets it (each private session spends the default ε 1/2, and each
// server child serves one session).
const benchPrivacyBudget = 1 << 40

// serverChild serves the seeded set until its stdin closes, in exact and
// private mode.
func serverChild(cfg serverChildConfig) error {
	ctx := context.Background()
	// The store is only the registry: one advertiser, its budget, the
	// audit log. The set comes from seededSource.
	st, err := store.Open(ctx, filepath.Join(cfg.Dir, "registry.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	key, err := client.NewAPIKey()
	if err != nil {
		return err
	}
	modes := store.ModesExact | store.ModesPrivate
	if cfg.Epoch {
		modes |= store.ModesEpoch
	}
	adv, err := st.AddAdvertiser(ctx, store.Advertiser{Name: "bench", KeyID: key.ID, KeyHash: key.Hash(),
		Policy: store.Policy{Modes: modes, PrivacyBudget: benchPrivacyBudget}})
	if err != nil {
		return err
	}
	dc, err := service.WriteDevCert(cfg.Dir)
	if err != nil {
		return err
	}
	tlsCfg, err := service.ServerTLS(dc.CertFile, dc.KeyFile, "")
	if err != nil {
		return err
	}
	srv, err := service.New(service.Config{
		Store:  st,
		Sets:   &seededSource{st: st, seed: cfg.Seed, n: cfg.Server, phones: cfg.Phones, limit: int64(cfg.PoolSize)},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		// PrivacyCost, Ringers, Threshold and Sensitivity stay at their
		// defaults (ε 1/2 per private session).
		Policy: service.Policy{MinListSize: 1, MaxListSize: wire.MaxClientSize, Budget: 1 << 50, BudgetWindow: time.Hour,
			PrivacyBudget: benchPrivacyBudget, EpochDelta: cfg.EpochDelta},
		// Waiting for ServerParams (PrivateParams) while a large set is
		// encoded, or for a private client raising it, is not idle.
		IdleTimeout: 30 * time.Minute,
		PoolSize:    cfg.PoolSize,
		PoolKinds:   []psi.Kind{psi.KindEmail},
		Suites:      []psi.Suite{psi.Suite(cfg.Suite).Or1()},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, tlsCfg) }()
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Hour)
	defer wcancel()
	if err := srv.WaitPool(wctx); err != nil {
		return fmt.Errorf("filling the pool: %w", err)
	}
	runtime.GC()
	heap0 := liveHeap()
	if err := report(serverReady{Addr: ln.Addr().String(), CAFile: dc.CertFile, APIKey: key.Reveal(), CPUNS: int64(cpuTime())}); err != nil {
		return err
	}
	io.Copy(io.Discard, os.Stdin)
	var epochs *epochServerState
	if cfg.Epoch {
		if epochs, err = epochState(ctx, st, adv.ID, heap0); err != nil {
			return err
		}
	}
	stats := srv.PoolStats()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return report(serverDone{Hits: stats.Hits, Misses: stats.Misses, CPUNS: int64(cpuTime()), Epochs: epochs})
}

// newClientChild generates the grid point's client list, or in the record
// modes its customers, connects a client to the server child, and returns
// the session's request (without Progress).
func newClientChild(cfg clientChildConfig) (*client.Client, client.MatchRequest, error) {
	p := Pair{Client: cfg.Client, Server: cfg.Server}
	var req client.MatchRequest
	if cfg.Records == "" {
		req = client.MatchRequest{Kind: psi.KindEmail, Digests: generate(cfg.Seed, p, cfg.Overlap).client}
	} else {
		var err error
		if req, err = generateRecords(cfg.Seed, p, cfg.Overlap).request(cfg.Records); err != nil {
			return nil, req, err
		}
	}
	tlsCfg, err := client.TLSConfig(cfg.CAFile, "", "")
	if err != nil {
		return nil, req, err
	}
	c, err := client.New(client.Config{Addr: cfg.Addr, APIKey: cfg.APIKey, TLS: tlsCfg, Suites: []psi.Suite{psi.Suite(cfg.Suite).Or1()}})
	if err != nil {
		return nil, req, err
	}
	runtime.GC()
	return c, req, nil
}

// clientChild runs one session with the seeded client list and reports it.
func clientChild(cfg clientChildConfig) error {
	c, req, err := newClientChild(cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	var rep clientReport
	cpu0 := cpuTime()
	start := time.Now()
	req.Progress = func(p client.Progress) {
		if p.Phase != "receiving" {
			return
		}
		if rep.FirstNS == 0 {
			rep.FirstNS = int64(time.Since(start))
		}
		if p.Done == p.Total {
			rep.LastNS = int64(time.Since(start))
		}
	}
	res, err := c.Match(context.Background(), req)
	rep.CPUNS = int64(cpuTime() - cpu0)
	if err != nil {
		return err
	}
	rep.Overlap, rep.ServerSize, rep.Snapshot = res.Overlap, res.ServerSize, res.Snapshot.Version
	rep.ElapsedNS, rep.ParamsNS = int64(res.Elapsed), int64(res.Phases.Params)
	rep.SendNS = int64(res.Phases.Params + res.Phases.Send)
	rep.Traffic = res.Traffic
	return report(rep)
}

// child is a running child process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	stderr *tailBuffer
	role   string
	waited bool
}

// tailBuffer keeps the last 16 KiB written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 16<<10 {
		t.b = t.b[len(t.b)-16<<10:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

func startChild(ctx context.Context, role string, cfg any) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("harness: loopback mode re-executes this binary: %w", err)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"="+role, childConfigEnv+"="+string(b))
	c := &child{cmd: cmd, stderr: &tailBuffer{}, role: role}
	cmd.Stderr = c.stderr
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.lines = bufio.NewScanner(out)
	c.lines.Buffer(make([]byte, 64<<10), 1<<20)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("harness: starting the %s child: %w", role, err)
	}
	return c, nil
}

// read reads the child's next report into v.
func (c *child) read(v any) error {
	for c.lines.Scan() {
		line, ok := strings.CutPrefix(c.lines.Text(), childPrefix)
		if !ok {
			continue // not ours: a program's own output
		}
		if err := json.Unmarshal([]byte(line), v); err != nil {
			return c.fail(fmt.Errorf("its report: %w", err))
		}
		return nil
	}
	// Wait, so that the child's stderr is all in.
	c.waited = true
	if err := c.cmd.Wait(); err != nil {
		return c.fail(fmt.Errorf("it exited before reporting: %w", err))
	}
	return c.fail(errors.New("it exited before reporting"))
}

// wait closes the child's stdin, waits for it to exit and returns its
// peak RSS.
func (c *child) wait() (rss uint64, err error) {
	c.stdin.Close()
	var exit childExit
	if err := c.read(&exit); err != nil {
		return 0, err
	}
	for c.lines.Scan() {
	}
	c.waited = true
	if err := c.cmd.Wait(); err != nil {
		return 0, c.fail(err)
	}
	if exit.PeakRSS > 0 {
		return exit.PeakRSS, nil
	}
	return maxRSS(c.cmd.ProcessState), nil
}

// kill stops a child that was not waited for, and reaps it.
func (c *child) kill() {
	if c.waited {
		return
	}
	c.waited = true
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

func (c *child) fail(err error) error {
	if tail := c.stderr.String(); tail != "" {
		return fmt.Errorf("harness: loopback %s child: %w; its stderr:\n%s", c.role, err, tail)
	}
	return fmt.Errorf("harness: loopback %s child: %w", c.role, err)
}

// maxRSS returns the peak resident set size of an exited process as wait4
// reports it: on Linux at least the parent's RSS when it forked the child
// (see peakRSS), so only a fallback.
func maxRSS(ps *os.ProcessState) uint64 {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return uint64(ru.Maxrss) // bytes there, kilobytes on Linux
	}
	return uint64(ru.Maxrss) * 1024
}

// runLoopback runs one grid point through the real service twice: cold
// (no pool: the session encodes the server set) and warm (a pool of one set,
// filled before the session starts).
func runLoopback(cfg Config, p Pair, rep *Report, progress io.Writer) ([]Run, error) {
	var runs []Run
	for _, warm := range []bool{false, true} {
		if !cfg.runsPool(warm) {
			continue
		}
		if warm {
			fmt.Fprint(progress, "; warm (filling the pool)… ")
		} else {
			fmt.Fprint(progress, "cold… ")
		}
		r, err := loopbackSession(cfg, p, rep, warm)
		if err != nil {
			return runs, err
		}
		fmt.Fprintf(progress, "%.1fs, count %d = true %d, efficiency %.0f%%, online %.0f%%", r.WallS, r.Counted, r.TrueOverlap,
			100*r.Efficiency, 100*r.OnlineEff)
		runs = append(runs, r)
	}
	fmt.Fprintln(progress)
	return runs, nil
}

// runsPool reports whether cfg asks for the loopback run with a warm pool
// (warm) or without one.
func (cfg Config) runsPool(warm bool) bool {
	if cfg.Pools == nil {
		return true
	}
	want := "cold"
	if warm {
		want = "warm"
	}
	return slices.Contains(cfg.Pools, want)
}

func loopbackSession(cfg Config, p Pair, rep *Report, warm bool) (Run, error) {
	r := Run{Mode: ModeLoopback, Suite: int(cfg.suite.Or1()), Pool: "cold", Client: p.Client, Server: p.Server}
	poolSize := 0
	if warm {
		r.Pool, poolSize = "warm", 1
	}
	d := &data{seed: cfg.Seed, server: p.Server, overlap: overlapOf(p, cfg.Overlap)}
	if cfg.tamper != nil {
		cfg.tamper(d)
	}
	r.TrueOverlap = d.overlap
	sc, cc := childConfigs(cfg, p, poolSize, false)
	return exactLoopback(cfg, r, rep, sc, cc)
}

// exactLoopback runs one exact-mode session, identifier-level or a record
// session (mode 5), through the real service with children configured by
// sc and cc, and completes r, whose description (mode, pool, part, sizes)
// and TrueOverlap are set. A wrong count fails with ErrWrongCount.
func exactLoopback(cfg Config, r Run, rep *Report, sc serverChildConfig, cc clientChildConfig) (Run, error) {
	warm := r.Pool == "warm"
	var cr clientReport
	lb, err := runChildPair(cfg, sc, cc, &cr)
	if err != nil {
		return r, err
	}
	ready, done, oc := lb.ready, lb.done, lb.oc
	r.ClientRSS, r.ServerRSS = lb.clientRSS, lb.serverRSS
	if warm && (done.Hits != 1 || done.Misses != 0) {
		return r, fmt.Errorf("harness: loopback, client %d, server %d: the warm session was not served from the pool (%d hits, %d misses)",
			r.Client, r.Server, done.Hits, done.Misses)
	}

	r.Counted, r.ServerPadded = cr.Overlap, cr.ServerSize
	ns := func(v int64) float64 { return time.Duration(v).Seconds() }
	r.WallS = ns(cr.ElapsedNS)
	r.OnlineS = ns(cr.ElapsedNS - cr.ParamsNS)
	if warm {
		r.OnlineS = r.WallS // the set was encoded before the session began
	}
	r.ClientCPUS, r.ServerCPUS = ns(cr.CPUNS), ns(done.CPUNS-ready.CPUNS)
	r.CPUS = r.ClientCPUS + r.ServerCPUS
	r.ClientBytes, r.ServerBytes = cr.FrameBytesSent, cr.FrameBytesReceived
	r.ClientWire, r.ServerWire = cr.WireBytesSent, cr.WireBytesReceived
	open := "open: TLS, policy, snapshot, set encoding (until ServerParams)"
	if warm {
		open = "open: TLS, policy, generation check, pooled set (until ServerParams)"
	}
	n := r.elements()
	phase := func(name, side string, from, to int64, elements int) { addPhase(&r, name, side, from, to, elements) }
	phase(open, "both", 0, cr.ParamsNS, r.setSize())
	phase("hash, blind and send", "client", cr.ParamsNS, cr.SendNS, n)
	phase("evaluate (server), first chunk unblinded", "both", cr.SendNS, cr.FirstNS, n)
	phase("unblind the rest (check, multiply, tag)", "client", cr.FirstNS, cr.LastNS, n-min(n, psi.DefaultChunkSize))
	phase("Golomb-coded set: transfer, decode, count", "both", cr.LastNS, cr.ElapsedNS, r.ServerPadded)

	if r.Counted != r.TrueOverlap {
		return r, fmt.Errorf("%w: %s, client %d, server %d: counted %d, true overlap %d",
			ErrWrongCount, r.label(), r.Client, r.Server, r.Counted, r.TrueOverlap)
	}
	r.HashNS, r.MultNS = float64(oc.HashToGroup.Nanoseconds()), float64(oc.ScalarMult.Nanoseconds())
	gp, err := gcs.ChooseParams(uint64(r.ServerPadded), uint64(n), psi.DefaultFalsePositive)
	if err != nil {
		return r, err
	}
	finish(&r, rep, psi.DefaultChunkSize, gp.M)
	return r, nil
}

// childRun is what runChildren measured around one session.
type childRun struct {
	ready                serverReady
	done                 serverDone
	clientRSS, serverRSS uint64
	oc                   psi.OpCosts   // measured while the server child waited, before the client started
	base                 time.Duration // fixed-base multiplication, likewise (private mode only)
}

// childConfigs returns the children's configurations of one session at
// grid point p: a server child with a pool of poolSize sets, a client child
// in exact or private mode. The server's Dir and the client's address and
// credentials are filled in by runChildPair.
func childConfigs(cfg Config, p Pair, poolSize int, private bool) (serverChildConfig, clientChildConfig) {
	return serverChildConfig{Seed: cfg.Seed, Server: p.Server, PoolSize: poolSize, Suite: int(cfg.suite)},
		clientChildConfig{Private: private, Seed: cfg.Seed, Client: p.Client, Server: p.Server, Suite: int(cfg.suite), Overlap: cfg.Overlap}
}

// runChildren runs one session through the real service: a server child
// with a throwaway registry (pool of poolSize sets), then a client child
// for the grid point in exact or private mode, whose report it reads into
// cr. Each child's peak RSS is that of its process over its life.
func runChildren(cfg Config, p Pair, poolSize int, private bool, cr any) (childRun, error) {
	sc, cc := childConfigs(cfg, p, poolSize, private)
	return runChildPair(cfg, sc, cc, cr)
}

// runChildPair runs one session through the real service: a server child
// configured by sc with a throwaway registry in a temporary directory,
// then a client child configured by cc against it, whose report it reads
// into cr.
func runChildPair(cfg Config, sc serverChildConfig, cc clientChildConfig, cr any) (childRun, error) {
	var lb childRun
	dir, err := os.MkdirTemp("", "overlap-bench-")
	if err != nil {
		return lb, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // kills the children if they are still running

	sc.Dir = dir
	srv, err := startChild(ctx, "server", sc)
	if err != nil {
		return lb, err
	}
	defer srv.kill()
	if err := srv.read(&lb.ready); err != nil {
		return lb, err
	}

	// The per-op costs are measured right before the session, while the
	// server child waits.
	lb.oc = psi.MeasureSuiteOpCosts(cfg.suite, cfg.OpSample/4)
	lb.base = lb.oc.BaseMult
	cc.Addr, cc.CAFile, cc.APIKey = lb.ready.Addr, lb.ready.CAFile, lb.ready.APIKey
	cl, err := startChild(ctx, "client", cc)
	if err != nil {
		return lb, err
	}
	defer cl.kill()
	if err := cl.read(cr); err != nil {
		return lb, err
	}
	if lb.clientRSS, err = cl.wait(); err != nil {
		return lb, err
	}
	if err := srv.stdin.Close(); err != nil {
		return lb, err
	}
	if err := srv.read(&lb.done); err != nil {
		return lb, err
	}
	if lb.serverRSS, err = srv.wait(); err != nil {
		return lb, err
	}
	return lb, nil
}

// addPhase adds a phase timed by a client child, from and to in
// nanoseconds from the start of its session.
func addPhase(r *Run, name, side string, from, to int64, elements int) {
	ph := Phase{Name: name, Side: side, WallS: time.Duration(to - from).Seconds(), Elements: elements}
	if to > from && elements > 0 {
		ph.PerSec = float64(elements) / ph.WallS
	}
	r.Phases = append(r.Phases, ph)
}
