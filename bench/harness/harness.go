// Package harness is Overlap's benchmark harness: it generates seeded
// synthetic lists, runs whole sessions at a grid of sizes, measures each
// phase, checks every count against the true overlap, and writes JSON, CSV,
// a Markdown table and plots. `go run ./bench` and `overlap bench` run it.
//
// Seven modes run (bench/RESULTS.md explains every column):
//
//   - in-process: exact mode, both roles in this process, every message
//     through its wire encoding;
//   - loopback: exact mode through the real service (psi/service Server and
//     Client) over TLS 1.3 on 127.0.0.1, each side in a child process of
//     its own (this binary re-executed), so that each side's peak memory is
//     its process's peak RSS; every grid point runs once cold (the session
//     encodes the server set) and once with a warm pool (the set was
//     prepared before the session);
//   - private: private mode (SPEC.md §10) in process;
//   - private-loopback: private mode through the real service over TLS on
//     127.0.0.1, each side in a child process of its own, as in loopback
//     mode (the server encodes its set in the session: there is no
//     private-mode pool);
//   - epoch-loopback: epochs (SPEC.md §10.12) through the real service,
//     one process per side: one setup per set size, then an epoch session
//     of each list size against it (epoch_loopback.go).
//   - records-loopback and private-records-loopback: a record session
//     (SPEC.md §13, mode 5 cold or mode 6) of customers with an email and
//     a phone each against platform people with an email and a phone each,
//     through the real service, one process per side, and the two
//     identifier-level sessions of the same customers' emails and phones it
//     replaces (records_loopback.go).
//
// Every run also measures the single-core cost of hash-to-group and scalar
// multiplication, and reports the lower bound they imply: the minimal number
// of those operations the mode needs, times their cost, divided by the
// cores used. Efficiency is bound / measured. Compare ratios across
// machines, not absolute times.
package harness

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/wire"
)

// Pair is one grid point: the client's list size and the server's set size.
type Pair struct {
	Client, Server int
}

// Grids.
var (
	// Quick finishes within a few minutes on 2 cores; CI runs it.
	Quick = []Pair{{1_000, 10_000}, {10_000, 100_000}}
	// QuickPrivate is the private-mode grid of --quick.
	QuickPrivate = []Pair{{1_000, 10_000}}
	// Default spans the sizes of issue #5 along the diagonals.
	Default = []Pair{{1_000, 10_000}, {1_000, 100_000}, {10_000, 100_000}, {10_000, 1_000_000},
		{100_000, 1_000_000}, {100_000, 10_000_000}, {1_000_000, 10_000_000}}
	// DefaultPrivate is the private-mode grid: the client's work grows with
	// the server's set (SPEC.md §10.11), so its points are fewer.
	DefaultPrivate = []Pair{{10_000, 1_000_000}, {100_000, 10_000_000}}
	// DefaultEpoch is the epoch grid: one setup per set size, then a
	// session of each list size against its epoch (SPEC.md §10.12).
	DefaultEpoch = []Pair{{10_000, 1_000_000}, {100_000, 1_000_000}, {1_000_000, 1_000_000},
		{10_000, 10_000_000}, {100_000, 10_000_000}, {1_000_000, 10_000_000}}
	// QuickEpoch is the epoch grid of --quick, run with QuickEpochDelta.
	QuickEpoch = []Pair{{1_000, 10_000}}
	// DefaultRecords is the grid of the record modes: CLIENT customers
	// with an email and a phone each against SERVER platform people with
	// an email and a phone each (records.go).
	DefaultRecords = []Pair{{100_000, 1_000_000}}
	// QuickRecords is the record modes' grid of --quick.
	QuickRecords = []Pair{{1_000, 10_000}}
)

// QuickEpochDelta is the bound on δ_E of --quick's epoch setups, a
// test-only setting: the protocol's 10^-6 needs N ≥ 2^20 for any set
// (SPEC.md §10.12.4), too slow for a smoke test.
const QuickEpochDelta = 1e-2

// The modes a run can measure.
const (
	ModeInProcess = "in-process" // exact mode, both roles in this process
	ModeLoopback  = "loopback"   // exact mode, the real service over TLS, one process per side
	ModePrivate   = "private"    // private mode, both roles in this process
	// ModePrivateLoopback is private mode through the real service over
	// TLS, one process per side.
	ModePrivateLoopback = "private-loopback"
	// ModeEpochLoopback is epochs (a setup, then epoch sessions) through
	// the real service over TLS, one process per side.
	ModeEpochLoopback = "epoch-loopback"
	// ModeRecordsLoopback is a record session in exact mode (SPEC.md §13,
	// mode 5) through the real service, cold, one process per side, with
	// the identifier-level exact sessions it replaces (records_loopback.go).
	ModeRecordsLoopback = "records-loopback"
	// ModePrivateRecordsLoopback is the same in private mode (mode 6), with
	// the identifier-level private sessions it replaces.
	ModePrivateRecordsLoopback = "private-records-loopback"
)

// Modes lists every mode, in the order a run measures them.
var Modes = []string{ModeInProcess, ModeLoopback, ModePrivate, ModePrivateLoopback, ModeEpochLoopback,
	ModeRecordsLoopback, ModePrivateRecordsLoopback}

// isPrivate reports whether mode runs private mode (on the private grid).
func isPrivate(mode string) bool { return mode == ModePrivate || mode == ModePrivateLoopback }

// isRecords reports whether mode runs record sessions (on the records grid).
func isRecords(mode string) bool {
	return mode == ModeRecordsLoopback || mode == ModePrivateRecordsLoopback
}

// Config configures a harness run.
type Config struct {
	Pairs        []Pair    // grid of the exact modes (in-process, loopback)
	PrivatePairs []Pair    // grid of the private modes (private, private-loopback); nil means Pairs
	Modes        []string  // which modes run; nil means all (Modes)
	Overlap      float64   // fraction of the client's list that is in the server's set
	Seed         uint64    // data generation seed
	Progress     io.Writer // progress lines; nil for none
	OpSample     int       // operations timed for the per-op costs; 0 means 2000
	// Epoch-loopback mode: one setup per set size of EpochPairs, then a
	// session of each of its list sizes; nil means Pairs.
	// EpochDelta is the bound on a setup's δ_E: 0 means the protocol's
	// 10^-6; a larger one (fewer ringers) is a test-only setting.
	EpochPairs []Pair
	EpochDelta float64
	// Pools says which loopback runs a grid point gets: "cold" (no pool)
	// and "warm" (a pool of one set, filled first); nil means both.
	Pools []string
	// Suites lists the ciphersuites every grid point runs in, side by side
	// in the same run (SPEC.md §12); nil means both, suite 1 first.
	Suites []psi.Suite
	// RecordsPairs is the grid of the record modes: CLIENT customers
	// against SERVER platform people, two identifiers each; nil means Pairs.
	RecordsPairs []Pair

	suite  psi.Suite   // the suite of the step being run
	tamper func(*data) // tests only: corrupt the generated data
}

// Phase is one measured step of a session.
type Phase struct {
	Name     string  `json:"name"`
	Side     string  `json:"side"`
	WallS    float64 `json:"wall_s"`
	CPUS     float64 `json:"cpu_s"`
	Elements int     `json:"elements"`
	PerSec   float64 `json:"elements_per_s"`
	PeakHeap uint64  `json:"peak_heap_bytes"` // peak Go heap during the phase, whole process
}

// Run is the measurement of one session.
type Run struct {
	Mode  string `json:"mode"`           // one of Modes
	Suite int    `json:"suite"`          // the ciphersuite (SPEC.md §12)
	Pool  string `json:"pool,omitempty"` // loopback: "cold" (the session encodes the set) or "warm" (from the pool)
	// Part is, in the record modes, which session of the grid point this
	// is: PartRecords (the record session) or the identifier-level session
	// of one column, PartEmail or PartPhone.
	Part   string `json:"part,omitempty"`
	Client int    `json:"client"` // n: identifiers, or records (customers) in a record session
	Server int    `json:"server"` // |Y|: identifiers, or platform people in a record session
	// Record sessions: the elements the client sends (n·s, SPEC.md §13.2)
	// and the server's set (Σ_K |Y_K|, the union of the kinds' sets).
	Elements     int `json:"elements,omitempty"`
	ServerSet    int `json:"server_set,omitempty"`
	ServerPadded int `json:"server_padded"` // N: the bucket; private mode: ringers included
	Ringers      int `json:"ringers,omitempty"`
	TrueOverlap  int `json:"true_overlap"`
	Counted      int `json:"counted"` // private mode: the released, noised count (0 when below the threshold)
	// Private mode: the release and how the count was checked.
	Private *PrivateCheck `json:"private,omitempty"`
	Phases  []Phase       `json:"phases"`
	WallS   float64       `json:"wall_s"`   // the whole session
	OnlineS float64       `json:"online_s"` // the part after the server set was encoded (warm loopback: the whole session)
	CPUS    float64       `json:"cpu_s"`    // both sides
	// Loopback modes: the CPU time of each side's process during the session.
	ClientCPUS   float64 `json:"client_cpu_s,omitempty"`
	ServerCPUS   float64 `json:"server_cpu_s,omitempty"`
	ClientBytes  int64   `json:"client_bytes"`                // client → server, SPEC.md §5 frames
	ServerBytes  int64   `json:"server_bytes"`                // server → client
	ClientWire   int64   `json:"client_wire_bytes,omitempty"` // loopback: TCP payload client → server (TLS, HTTP/2, envelopes)
	ServerWire   int64   `json:"server_wire_bytes,omitempty"` // loopback: TCP payload server → client
	ClientBPE    float64 `json:"client_bytes_per_element"`    // client bytes per element the client sends
	ServerBPE    float64 `json:"server_bytes_per_element"`    // server bytes per element of N
	SetBitsPerEl float64 `json:"server_set_bits_per_element"` // exact: the Golomb-coded set; private: the server's elements
	SetOptimum   float64 `json:"server_set_optimum_bits"`     // exact: Golomb-coding optimum for the session's M
	HashNS       float64 `json:"hash_to_group_ns"`            // per-op costs measured just before this run
	MultNS       float64 `json:"scalar_mult_ns"`
	BaseMultNS   float64 `json:"base_mult_ns,omitempty"` // private: fixed-base multiplication
	BoundS       float64 `json:"bound_s"`
	Efficiency   float64 `json:"efficiency"`
	OnlineBoundS float64 `json:"online_bound_s"`
	OnlineEff    float64 `json:"online_efficiency"`
	// In process: the peak Go heap of this process (both sides).
	PeakHeapBytes uint64 `json:"peak_heap_bytes,omitempty"`
	// Loopback modes: the peak RSS of each side's process.
	ClientRSS uint64 `json:"client_peak_rss_bytes,omitempty"`
	ServerRSS uint64 `json:"server_peak_rss_bytes,omitempty"`
}

// label names the run's mode in tables and plots.
func (r *Run) label() string {
	l := r.Mode
	if r.Pool != "" {
		l += " (" + r.Pool + ")"
	}
	if r.Part != "" && r.Part != PartRecords {
		l += ": " + r.Part + " ids"
	}
	if r.Suite > 1 {
		l += fmt.Sprintf(" suite %d", r.Suite)
	}
	return l
}

// elements returns the elements the client sends: n, or n·s in a record
// session.
func (r *Run) elements() int {
	if r.Elements > 0 {
		return r.Elements
	}
	return r.Client
}

// setSize returns |Y|, the server's set: Server, or the union of the
// kinds' sets in a record session.
func (r *Run) setSize() int {
	if r.ServerSet > 0 {
		return r.ServerSet
	}
	return r.Server
}

// SuiteOps is the per-operation cost of one ciphersuite, measured once at
// the start of a run (psi.MeasureSuiteOpCosts, one core).
type SuiteOps struct {
	Suite      int     `json:"suite"`
	HashNS     float64 `json:"hash_to_group_ns"`
	MultNS     float64 `json:"scalar_mult_ns"`
	BaseMultNS float64 `json:"base_mult_ns"`
}

// Report is a whole harness run.
type Report struct {
	Started    time.Time  `json:"started"`
	GoVersion  string     `json:"go_version"`
	OS         string     `json:"os"`
	Arch       string     `json:"arch"`
	CPUs       int        `json:"cpus"`
	Workers    int        `json:"workers"`
	Seed       uint64     `json:"seed"`
	Overlap    float64    `json:"overlap_fraction"`
	HashNS     float64    `json:"hash_to_group_ns"`
	MultNS     float64    `json:"scalar_mult_ns"`
	BaseMultNS float64    `json:"base_mult_ns"`
	SuiteOps   []SuiteOps `json:"suite_ops"`
	Modes      []string   `json:"modes"`
	Runs       []Run      `json:"runs"`
	DurationS  float64    `json:"duration_s"`
	Command    string     `json:"command"`
	TotalCheck string     `json:"check"`

	// Epoch-loopback mode: the setups; the sessions are in Runs.
	EpochSetups []EpochSetup `json:"epoch_setups,omitempty"`

	// Failed is the error that stopped the run, if one did: the report
	// then holds only what was measured and checked before it.
	Failed string `json:"failed,omitempty"`
}

// ErrWrongCount reports a session whose count differs from the true overlap.
var ErrWrongCount = errors.New("harness: a reported count differs from the true overlap")

// Execute runs the grid in each mode of cfg and returns the report. It
// fails with ErrWrongCount if any count is wrong, and stops at the first
// failure; the report it then returns, with Failed set, holds the steps
// completed before it, and an epoch setup measured before a session failed
// with the sessions that passed.
func Execute(cfg Config) (*Report, error) {
	if cfg.OpSample == 0 {
		cfg.OpSample = 2000
	}
	if cfg.Modes == nil {
		cfg.Modes = Modes
	}
	if cfg.PrivatePairs == nil {
		cfg.PrivatePairs = cfg.Pairs
	}
	if cfg.EpochPairs == nil {
		cfg.EpochPairs = cfg.Pairs
	}
	if cfg.RecordsPairs == nil {
		cfg.RecordsPairs = cfg.Pairs
	}
	if cfg.Suites == nil {
		cfg.Suites = psi.Suites
	}
	for _, s := range cfg.Suites {
		if !s.Known() {
			return nil, fmt.Errorf("harness: unknown ciphersuite %d", uint8(s))
		}
	}
	epochServers, epochSessions := epochGroups(cfg.EpochPairs)
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	type step struct {
		mode  string
		p     Pair
		suite psi.Suite
	}
	// Each grid point runs in every suite, one after the other, so that
	// their ratio compares runs made under nearly the same machine load.
	var steps []step
	for _, m := range Modes {
		if !slices.Contains(cfg.Modes, m) {
			continue
		}
		if m == ModeEpochLoopback {
			for _, y := range epochServers {
				for _, s := range cfg.Suites {
					steps = append(steps, step{m, Pair{Client: epochSessions[y][0], Server: y}, s})
				}
			}
			continue
		}
		pairs := cfg.Pairs
		if isPrivate(m) {
			pairs = cfg.PrivatePairs
		} else if isRecords(m) {
			pairs = cfg.RecordsPairs
		}
		for _, p := range pairs {
			for _, s := range cfg.Suites {
				steps = append(steps, step{m, p, s})
			}
		}
	}
	for _, m := range cfg.Modes {
		if !slices.Contains(Modes, m) {
			return nil, fmt.Errorf("harness: unknown mode %q (want %s)", m, strings.Join(Modes, ", "))
		}
	}
	rep := &Report{Started: time.Now().UTC(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		CPUs: runtime.NumCPU(), Workers: runtime.GOMAXPROCS(0), Seed: cfg.Seed, Overlap: cfg.Overlap, Modes: cfg.Modes}
	fmt.Fprintf(progress, "measuring per-operation costs (%d of each)…\n", cfg.OpSample)
	for _, s := range cfg.Suites {
		oc := psi.MeasureSuiteOpCosts(s, cfg.OpSample)
		so := SuiteOps{Suite: int(s), HashNS: float64(oc.HashToGroup.Nanoseconds()), MultNS: float64(oc.ScalarMult.Nanoseconds()),
			BaseMultNS: float64(oc.BaseMult.Nanoseconds())}
		rep.SuiteOps = append(rep.SuiteOps, so)
		if s == cfg.Suites[0] {
			rep.HashNS, rep.MultNS, rep.BaseMultNS = so.HashNS, so.MultNS, so.BaseMultNS
		}
		fmt.Fprintf(progress, "suite %v: hash-to-group %.1f µs, scalar multiplication %.1f µs, fixed-base multiplication %.1f µs (one core)\n",
			s, so.HashNS/1e3, so.MultNS/1e3, so.BaseMultNS/1e3)
	}
	exact, private := 0, 0
	for i, st := range steps {
		cfg := cfg
		cfg.suite = st.suite
		if st.mode == ModeEpochLoopback {
			fmt.Fprintf(progress, "[%d/%d] %s suite %v, server %d, clients %v… ", i+1, len(steps), st.mode, st.suite, st.p.Server, epochSessions[st.p.Server])
		} else {
			fmt.Fprintf(progress, "[%d/%d] %s suite %v, client %d, server %d… ", i+1, len(steps), st.mode, st.suite, st.p.Client, st.p.Server)
		}
		var runs []Run
		var err error
		switch st.mode {
		case ModeInProcess:
			// The per-op costs are measured again right before each run, so
			// the bound tracks the machine's state when the run happens.
			var r Run
			r, err = runInProcess(cfg, st.p, rep, psi.MeasureSuiteOpCosts(cfg.suite, cfg.OpSample/4))
			runs = append(runs, r)
			if err == nil {
				fmt.Fprintf(progress, "%.1fs, count %d = true %d, efficiency %.0f%%\n", r.WallS, r.Counted, r.TrueOverlap, 100*r.Efficiency)
			}
		case ModeLoopback:
			runs, err = runLoopback(cfg, st.p, rep, progress)
		case ModeEpochLoopback:
			var su EpochSetup
			runs, su, err = runEpochLoopback(cfg, st.p.Server, epochSessions[st.p.Server], rep, progress)
			if err == nil || su.WallS > 0 { // a setup measured before a session failed is kept
				su.Suite = int(st.suite)
				rep.EpochSetups = append(rep.EpochSetups, su)
			}
		case ModeRecordsLoopback, ModePrivateRecordsLoopback:
			runs, err = runRecordsLoopback(cfg, st.p, rep, st.mode == ModePrivateRecordsLoopback, progress)
		case ModePrivate, ModePrivateLoopback:
			var r Run
			if st.mode == ModePrivate {
				oc := psi.MeasureSuiteOpCosts(cfg.suite, cfg.OpSample/4)
				r, err = runPrivate(cfg, st.p, rep, oc, oc.BaseMult)
			} else {
				// The per-op costs are measured while the server child waits.
				r, err = runPrivateLoopback(cfg, st.p, rep)
			}
			runs = append(runs, r)
			if err == nil {
				fmt.Fprintf(progress, "%.1fs, %s, efficiency %.0f%%, online %.0f%%\n", r.WallS, r.Private.summary(r.TrueOverlap),
					100*r.Efficiency, 100*r.OnlineEff)
			}
		}
		if err != nil {
			fmt.Fprintln(progress, "failed")
			if st.mode == ModeEpochLoopback { // its runs are the sessions checked before the failure
				for i := range runs {
					runs[i].Suite = int(st.suite)
				}
				rep.Runs = append(rep.Runs, runs...)
			}
			rep.DurationS = time.Since(rep.Started).Seconds()
			rep.Failed = err.Error()
			return rep, err
		}
		for i := range runs {
			runs[i].Suite = int(st.suite)
		}
		for _, r := range runs {
			if r.Private != nil {
				private++
			} else {
				exact++
			}
		}
		rep.Runs = append(rep.Runs, runs...)
	}
	rep.DurationS = time.Since(rep.Started).Seconds()
	var checks []string
	if exact > 0 || private == 0 {
		checks = append(checks, fmt.Sprintf("all %d exact-mode counts equal the true overlap", exact))
	}
	if private > 0 {
		checks = append(checks, fmt.Sprintf("every private-mode release (%d) lies within the noise's tail bound of the true overlap (bench/RESULTS.md)", private))
	}
	rep.TotalCheck = strings.Join(checks, "; ")
	return rep, nil
}

// data generates the lists of a grid point. Server digest i is derived from
// the seed and i, so the server's set streams without being stored; the
// client's first k digests are server digests 0..k-1, the rest are not in
// the set. Generation is never timed.
type data struct {
	seed    uint64
	client  [][32]byte
	server  int
	overlap int
}

func digestOf(seed uint64, side byte, i int) [32]byte {
	var b [17]byte
	binary.BigEndian.PutUint64(b[0:], seed)
	b[8] = side
	binary.BigEndian.PutUint64(b[9:], uint64(i))
	return sha256.Sum256(b[:])
}

// overlapOf is the true overlap of a grid point's lists.
func overlapOf(p Pair, fraction float64) int {
	return min(int(fraction*float64(p.Client)+0.5), p.Client, p.Server)
}

func generate(seed uint64, p Pair, fraction float64) *data {
	k := overlapOf(p, fraction)
	d := &data{seed: seed, server: p.Server, overlap: k, client: make([][32]byte, p.Client)}
	for i := range p.Client {
		if i < k {
			d.client[i] = digestOf(seed, 's', i)
		} else {
			d.client[i] = digestOf(seed, 'c', i)
		}
	}
	rng := mrand.New(mrand.NewPCG(seed, uint64(p.Client)))
	rng.Shuffle(len(d.client), func(i, j int) { d.client[i], d.client[j] = d.client[j], d.client[i] })
	return d
}

// meter measures wall time, CPU time and peak heap of one phase.
type meter struct {
	start    time.Time
	cpu      time.Duration
	peak     atomic.Uint64
	stop     chan struct{}
	wg       sync.WaitGroup
	samples  []metrics.Sample
	baseline uint64
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func heapBytes(s []metrics.Sample) uint64 {
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startMeter() *meter {
	m := &meter{stop: make(chan struct{}), samples: []metrics.Sample{{Name: heapMetric}}}
	m.peak.Store(heapBytes(m.samples))
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		s := []metrics.Sample{{Name: heapMetric}}
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				if h := heapBytes(s); h > m.peak.Load() {
					m.peak.Store(h)
				}
			}
		}
	}()
	m.start, m.cpu = time.Now(), cpuTime()
	return m
}

func (m *meter) end(name, side string, elements int) Phase {
	wall, cpu := time.Since(m.start), cpuTime()-m.cpu
	close(m.stop)
	m.wg.Wait()
	if h := heapBytes(m.samples); h > m.peak.Load() {
		m.peak.Store(h)
	}
	p := Phase{Name: name, Side: side, WallS: wall.Seconds(), CPUS: cpu.Seconds(), Elements: elements, PeakHeap: m.peak.Load()}
	if wall > 0 {
		p.PerSec = float64(elements) / wall.Seconds()
	}
	return p
}

// runInProcess runs one session with both roles in this process, every
// message through its wire encoding, and measures each phase.
// shipper encodes the messages of an in-process session as a transport
// would, and counts their bytes and the time it spent.
type shipper struct {
	r         *Run
	wall, cpu time.Duration
}

// message is what a shipper ships: one SPEC.md §5 or §10.7 message.
type message interface{ AppendBinary([]byte) ([]byte, error) }

// ship encodes one message from one side and returns its bytes.
func (s *shipper) ship(from psi.Sender, msg message) []byte {
	t, tc := time.Now(), cpuTime()
	b, err := msg.AppendBinary(nil)
	if err != nil {
		panic(err)
	}
	if from == psi.FromClient {
		s.r.ClientBytes += int64(len(b))
	} else {
		s.r.ServerBytes += int64(len(b))
	}
	s.wall += time.Since(t)
	s.cpu += cpuTime() - tc
	return b
}

// collect ships every chunk next yields, sent by from, and returns their
// bytes for the other side.
func collect[C message](sh *shipper, from psi.Sender, next func() (C, bool, error)) ([][]byte, error) {
	var out [][]byte
	for {
		ch, ok, err := next()
		if err != nil || !ok {
			return out, err
		}
		out = append(out, sh.ship(from, ch))
	}
}

// deliver decodes each chunk as an element chunk of type typ, as the
// receiving side of a transport would, and hands it to receive.
func deliver(chunks [][]byte, typ wire.Type, receive func(*wire.ElementChunk) error) error {
	for _, b := range chunks {
		var in wire.ElementChunk
		if err := in.UnmarshalBinary(b, typ); err != nil {
			return err
		}
		if err := receive(&in); err != nil {
			return err
		}
	}
	return nil
}

// relay ships each element chunk next yields, sent by from, and delivers
// it at once, streaming as a transport would. It returns the bytes shipped.
func relay(sh *shipper, from psi.Sender, typ wire.Type, next func() (*wire.ElementChunk, bool, error), receive func(*wire.ElementChunk) error) (int64, error) {
	var n int64
	for {
		ch, ok, err := next()
		if err != nil || !ok {
			return n, err
		}
		b := sh.ship(from, ch)
		n += int64(len(b))
		if err := deliver([][]byte{b}, typ, receive); err != nil {
			return n, err
		}
	}
}

// addHashBlind adds the client's measured hash-and-blind phase ph as two
// phases, name+"hash" and name+"blind", split by the wall time of each
// pass (hash, blind) over n identifiers.
func addHashBlind(add func(Phase), ph Phase, name string, hash, blind time.Duration, n int) {
	share := hash.Seconds() / (hash + blind).Seconds()
	add(Phase{Name: name + "hash", Side: "client", WallS: hash.Seconds(), CPUS: ph.CPUS * share, Elements: n,
		PerSec: float64(n) / hash.Seconds(), PeakHeap: ph.PeakHeap})
	add(Phase{Name: name + "blind", Side: "client", WallS: blind.Seconds(), CPUS: ph.CPUS * (1 - share), Elements: n,
		PerSec: float64(n) / blind.Seconds(), PeakHeap: ph.PeakHeap})
}

// inProcessRun is the bookkeeping an in-process run keeps: its Run, its
// clocks and the peak heap of its phases.
type inProcessRun struct {
	r        *Run
	total    time.Time
	totalCPU time.Duration
	peak     uint64
}

// startInProcess generates the data of one in-process run of mode at p
// (tampered with by tests that ask), fills in r's description of the run
// and starts its clocks.
func startInProcess(cfg Config, p Pair, mode string, r *Run) (*data, *inProcessRun) {
	d := generate(cfg.Seed, p, cfg.Overlap)
	if cfg.tamper != nil {
		cfg.tamper(d)
	}
	runtime.GC()
	*r = Run{Mode: mode, Suite: int(cfg.suite.Or1()), Client: p.Client, Server: p.Server, TrueOverlap: d.overlap}
	b := &inProcessRun{r: r}
	b.total, b.totalCPU = time.Now(), cpuTime()
	return d, b
}

// add records one phase.
func (b *inProcessRun) add(ph Phase) {
	b.r.Phases = append(b.r.Phases, ph)
	b.peak = max(b.peak, ph.PeakHeap)
}

// end stops the clocks: wall and CPU time since the start, online time
// since setDone, and the peak heap.
func (b *inProcessRun) end(setDone time.Time) {
	b.r.WallS = time.Since(b.total).Seconds()
	b.r.OnlineS = time.Since(setDone).Seconds()
	b.r.CPUS = (cpuTime() - b.totalCPU).Seconds()
	b.r.PeakHeapBytes = b.peak
}

func runInProcess(cfg Config, p Pair, rep *Report, oc psi.OpCosts) (Run, error) {
	var r Run
	d, b := startInProcess(cfg, p, "in-process", &r)
	add := b.add

	// Server: encode its set (a pool would do this ahead of the session).
	m := startMeter()
	set, err := exactSet(d.seed, d.server, cfg.suite)
	if err != nil {
		return r, err
	}
	add(m.end("encode server set (hash, multiply, tag, sort)", "server", d.server))
	setDone := time.Now()
	r.ServerPadded = set.Size()

	c, err := psi.NewClient(psi.ClientConfig{Kind: psi.KindEmail, Suites: []psi.Suite{cfg.suite}}, d.client)
	if err != nil {
		return r, err
	}
	s, err := psi.NewServer(psi.ServerConfig{}, set)
	if err != nil {
		return r, err
	}
	defer s.Close()
	sh := &shipper{r: &r}
	ship := sh.ship
	var hello wire.ClientHello
	if err := hello.UnmarshalBinary(ship(psi.FromClient, c.Hello())); err != nil {
		return r, err
	}
	params, err := s.ReceiveHello(&hello)
	if err != nil {
		return r, err
	}
	var pm wire.ServerParams
	if err := pm.UnmarshalBinary(ship(psi.FromServer, params)); err != nil {
		return r, err
	}
	if err := c.ReceiveParams(&pm); err != nil {
		return r, err
	}

	// Client: hash and blind. Server: evaluate.
	m = startMeter()
	blinded, err := collect(sh, psi.FromClient, c.NextBlinded)
	if err != nil {
		return r, err
	}
	ct := c.Timings()
	addHashBlind(add, m.end("hash and blind", "client", p.Client), "", ct.Hash, ct.Blind, p.Client)

	m = startMeter()
	if err := deliver(blinded, wire.TypeBlinded, s.ReceiveBlinded); err != nil {
		return r, err
	}
	blinded = nil
	evaluated, err := collect(sh, psi.FromServer, s.NextEvaluated)
	if err != nil {
		return r, err
	}
	add(m.end("evaluate (check, multiply, shuffle)", "server", p.Client))

	m = startMeter()
	if err := deliver(evaluated, wire.TypeEvaluated, c.ReceiveEvaluated); err != nil {
		return r, err
	}
	evaluated = nil
	add(m.end("unblind (check, multiply, tag, sort)", "client", p.Client))

	m = startMeter()
	setChunks, err := collect(sh, psi.FromServer, s.NextSetChunk)
	if err != nil {
		return r, err
	}
	add(m.end("Golomb-code the set", "server", r.ServerPadded))

	m = startMeter()
	res, err := count(c, setChunks)
	if err != nil {
		return r, err
	}
	add(m.end("count (decode set, merge)", "client", r.ServerPadded))
	r.Phases = append(r.Phases, Phase{Name: "transfer (encode messages)", Side: "both", WallS: sh.wall.Seconds(), CPUS: sh.cpu.Seconds()})

	b.end(setDone)
	r.Counted = res.Overlap
	if r.Counted != r.TrueOverlap {
		return r, fmt.Errorf("%w: client %d, server %d: counted %d, true overlap %d",
			ErrWrongCount, p.Client, p.Server, r.Counted, r.TrueOverlap)
	}
	r.HashNS, r.MultNS = float64(oc.HashToGroup.Nanoseconds()), float64(oc.ScalarMult.Nanoseconds())
	finish(&r, rep, int(pm.ChunkSize), pm.GCSM)
	return r, nil
}

// exactSet encodes the synthetic server set of n digests.
func exactSet(seed uint64, n int, suite psi.Suite) (*psi.PreparedSet, error) {
	set, err := psi.NewSet(psi.SetConfig{Kind: psi.KindEmail, Suite: suite})
	if err != nil {
		return nil, err
	}
	return set, fill(set, seed, n)
}

// fill adds the synthetic server set of n digests to set and finishes it.
func fill(set interface {
	Add([32]byte)
	Finish() error
}, seed uint64, n int) error {
	for i := range n {
		set.Add(digestOf(seed, 's', i))
	}
	return set.Finish()
}

// count hands the client the server set's chunks and returns its result.
func count(c *psi.Client, setChunks [][]byte) (psi.Result, error) {
	for _, b := range setChunks {
		var in wire.SetChunk
		if err := in.UnmarshalBinary(b); err != nil {
			return psi.Result{}, err
		}
		if err := c.ReceiveSetChunk(&in); err != nil {
			return psi.Result{}, err
		}
	}
	return c.Result()
}

// finish derives sizes per element, the lower bound and the efficiencies
// of an exact-mode run with element chunks of chunk elements and Golomb
// range m.
func finish(r *Run, rep *Report, chunk int, m uint64) {
	n := r.elements()
	r.ClientBPE = float64(r.ClientBytes) / float64(n)
	r.ServerBPE = float64(r.ServerBytes) / float64(r.ServerPadded)
	var setBytes int64
	// Server bytes are params + evaluated chunks + set chunks; the set's
	// share is what remains after the evaluated elements and their headers.
	evalBytes := int64(n)*wire.ElementSize + int64((n+chunk-1)/chunk)*wire.ElementChunkHeaderSize
	setBytes = r.ServerBytes - evalBytes - wire.ServerParamsSize - suiteByte(r.Suite)
	r.SetBitsPerEl = 8 * float64(setBytes) / float64(r.ServerPadded)
	r.SetOptimum = optimumBits(m)

	// Minimal operations of exact mode: the client hashes and blinds each
	// element and unblinds it; the server evaluates each client element and
	// hashes and multiplies each of its own. A record session's elements
	// are its n·s slots, dummies included (each hashed and blinded like an
	// identifier, SPEC.md §13.2), and its set the union of the kinds'.
	y := r.setSize()
	hashes := float64(n + y)
	mults := float64(3*n + y)
	cores := float64(rep.Workers)
	r.BoundS = (hashes*r.HashNS + mults*r.MultNS) / cores / 1e9
	r.Efficiency = r.BoundS / r.WallS
	r.OnlineBoundS = float64(n) * (r.HashNS + 3*r.MultNS) / cores / 1e9
	r.OnlineEff = r.OnlineBoundS / r.OnlineS
}

// suiteByte is the optional suite byte of a parameters message of suite s
// (SPEC.md §12.1): none for suite 1.
func suiteByte(s int) int64 {
	if s > 1 {
		return 1
	}
	return 0
}
