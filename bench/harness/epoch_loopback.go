package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot/plotutil"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/dp"
	"github.com/overlap-psi/overlap/psi/store"
)

// Epoch-loopback mode runs epochs (SPEC.md §10.12) through the real
// service, one child process per side as in private-loopback mode: the
// server child serves its advertiser modes private and epoch; the client
// child runs one setup (client.Setup), then one epoch session
// (client.MatchEpoch) with a list of each size against that epoch, and
// waits after each step for the parent's go-ahead, so that the parent can
// read the server child's CPU time and peak RSS between steps and reset
// its peak (/proc/PID/clear_refs). Each session's release is checked
// against the true overlap as private-loopback checks its release.

// EpochSetup is the measurement of one setup of epoch-loopback mode; the
// sessions against its epoch are Runs of mode ModeEpochLoopback with the
// same Server.
type EpochSetup struct {
	Suite        int     `json:"suite"`         // the ciphersuite (SPEC.md §12)
	Server       int     `json:"server"`        // |Y_E|
	ServerPadded int     `json:"server_padded"` // N
	Ringers      int     `json:"ringers"`       // R' = N − |Y_E|
	DeltaBound   float64 `json:"delta_bound"`   // the bound on δ_E the server kept the setup under
	Phases       []Phase `json:"phases"`
	WallS        float64 `json:"wall_s"` // the whole setup, as the client timed it
	ClientCPUS   float64 `json:"client_cpu_s"`
	ServerCPUS   float64 `json:"server_cpu_s"`
	ClientBytes  int64   `json:"client_bytes"` // client → server, SPEC.md §5 frames
	ServerBytes  int64   `json:"server_bytes"` // server → client
	ClientWire   int64   `json:"client_wire_bytes"`
	ServerWire   int64   `json:"server_wire_bytes"`
	// Peak RSS of each side's process during the setup.
	ClientRSS uint64 `json:"client_peak_rss_bytes"`
	ServerRSS uint64 `json:"server_peak_rss_bytes"`
	// What the server keeps: the kept tags (|Y_E|), the bytes the store
	// holds for them, and the growth of the server's live Go heap from
	// before the setup to after the sessions (each measured after a GC),
	// which holds the loaded epoch (8 bytes per kept tag) and whatever
	// else the server kept.
	KeptTags       int64 `json:"kept_tags"`
	StoredTagBytes int64 `json:"stored_tag_bytes"`
	HeapGrowth     int64 `json:"heap_growth_bytes"`

	HashNS     float64 `json:"hash_to_group_ns"`
	MultNS     float64 `json:"scalar_mult_ns"`
	BaseMultNS float64 `json:"base_mult_ns"`
	BoundS     float64 `json:"bound_s"`
	Efficiency float64 `json:"efficiency"`
}

// perElement divides by the platform's set size |Y_E|.
func (s *EpochSetup) perElement(v int64) float64 { return float64(v) / float64(s.Server) }

// epochServerState is what the server child kept of its epochs at the end.
type epochServerState struct {
	Epochs     int   `json:"epochs"`
	KeptTags   int64 `json:"kept_tags"`
	TagBytes   int64 `json:"stored_tag_bytes"`
	HeapGrowth int64 `json:"heap_growth_bytes"`
}

// liveHeap returns the bytes of live Go heap objects, after a collection.
func liveHeap() uint64 {
	runtime.GC()
	return heapBytes([]metrics.Sample{{Name: heapMetric}})
}

// epochState reads the advertiser's epochs from the store and the growth
// of the live heap since heap0.
func epochState(ctx context.Context, st interface {
	Epochs(context.Context, int64) ([]store.EpochRecord, error)
}, adv int64, heap0 uint64) (*epochServerState, error) {
	recs, err := st.Epochs(ctx, adv)
	if err != nil {
		return nil, err
	}
	es := &epochServerState{Epochs: len(recs), HeapGrowth: int64(liveHeap()) - int64(heap0)}
	for _, r := range recs {
		es.KeptTags += int64(r.Meta.Size)
		es.TagBytes += r.TagBytes
	}
	return es, nil
}

// epochSetupReport is what the client child measured of its setup. Times
// are nanoseconds from the start of Setup.
type epochSetupReport struct {
	ServerSize int    `json:"server_size"` // N
	Snapshot   int64  `json:"snapshot_version"`
	FirstNS    int64  `json:"first_raised_ns"` // the first chunk of server elements raised
	RaisedNS   int64  `json:"raised_ns"`       // all N raised
	TagsNS     int64  `json:"tags_ns"`         // the last tag chunk went out
	ElapsedNS  int64  `json:"elapsed_ns"`      // EpochReady arrived and the stream ended
	CPUNS      int64  `json:"cpu_ns"`
	PeakRSS    uint64 `json:"peak_rss_bytes"`
	PeakReset  bool   `json:"peak_reset"` // the peak RSS was reset before (else it is the process's)
	client.Traffic
}

// epochSessionReport is what the client child measured of one epoch
// session (ParamsNS, SentNS and ElapsedNS of privateClientReport).
type epochSessionReport struct {
	privateClientReport
	PeakRSS   uint64 `json:"peak_rss_bytes"`
	PeakReset bool   `json:"peak_reset"`
}

// resetPeakRSS resets the peak RSS (VmHWM) of process pid ("self" for
// this one) to its current RSS, and reports whether it could.
func resetPeakRSS(pid string) bool {
	return os.WriteFile("/proc/"+pid+"/clear_refs", []byte("5"), 0) == nil
}

// procPeakRSS is peakRSS for another process.
func procPeakRSS(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// procCPU returns the user and system CPU time of process pid so far, from
// /proc/PID/stat, in clock ticks of 10 ms (USER_HZ on Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("harness: /proc/PID/stat without a command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("harness: /proc/PID/stat is short")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// epochClientChild runs the setup and the sessions of cfg.EpochSessions,
// reporting each and waiting for a line on stdin before the next.
func epochClientChild(cfg clientChildConfig) error {
	tlsCfg, err := client.TLSConfig(cfg.CAFile, "", "")
	if err != nil {
		return err
	}
	c, err := client.New(client.Config{Addr: cfg.Addr, APIKey: cfg.APIKey, TLS: tlsCfg, Suites: []psi.Suite{psi.Suite(cfg.Suite).Or1()}})
	if err != nil {
		return err
	}
	defer c.Close()
	in := bufio.NewReader(os.Stdin)
	next := func() error {
		if _, err := in.ReadString('\n'); err != nil {
			return fmt.Errorf("waiting for the harness: %w", err)
		}
		return nil
	}
	ctx := context.Background()

	var sr epochSetupReport
	runtime.GC()
	sr.PeakReset = resetPeakRSS("self")
	cpu0 := cpuTime()
	start := time.Now()
	res, err := c.Setup(ctx, client.SetupRequest{Kind: psi.KindEmail, Progress: func(p client.Progress) {
		t := int64(time.Since(start))
		switch p.Phase {
		case "raising":
			if sr.FirstNS == 0 {
				sr.FirstNS = t
			}
			if p.Done == p.Total {
				sr.RaisedNS = t
			}
		case "tags":
			if p.Done == p.Total {
				sr.TagsNS = t
			}
		}
	}})
	sr.ElapsedNS = int64(time.Since(start))
	sr.CPUNS = int64(cpuTime() - cpu0)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	key := res.Key
	defer key.Erase()
	sr.ServerSize, sr.Snapshot, sr.Traffic = int(key.ServerSize), res.Snapshot.Version, res.Traffic
	sr.PeakRSS = peakRSS()
	if err := report(sr); err != nil {
		return err
	}
	if err := next(); err != nil {
		return err
	}

	for _, n := range cfg.EpochSessions {
		d := generate(cfg.Seed, Pair{Client: n, Server: cfg.Server}, cfg.Overlap)
		debug.FreeOSMemory() // what the setup or the last session left
		var rep epochSessionReport
		rep.PeakReset = resetPeakRSS("self")
		cpu0 := cpuTime()
		start := time.Now()
		res, err := c.MatchEpoch(ctx, key, client.MatchRequest{Kind: psi.KindEmail, Digests: d.client,
			Progress: func(p client.Progress) {
				if p.Phase == "sending" && p.Done == p.Total {
					rep.SentNS = int64(time.Since(start))
				}
			}})
		rep.ElapsedNS = int64(time.Since(start))
		rep.CPUNS = int64(cpuTime() - cpu0)
		if err != nil {
			return fmt.Errorf("epoch session of %d: %w", n, err)
		}
		rep.PeakRSS = peakRSS()
		r := res.Result
		rep.ClientSize, rep.ServerSize, rep.Snapshot = r.ClientSize, r.ServerSize, res.Snapshot.Version
		rep.MechCode = r.Mechanism.Code()
		rep.EpsNum, rep.EpsDen = r.Mechanism.EpsilonFraction()
		rep.Sensitivity = r.Mechanism.Sensitivity()
		rep.Threshold, rep.Below, rep.Count, rep.Low, rep.High = r.Threshold, r.Below, r.Count, r.Low, r.High
		rep.Traffic = res.Traffic
		rep.ParamsNS = int64(res.Params)
		if err := report(rep); err != nil {
			return err
		}
		if err := next(); err != nil {
			return err
		}
	}
	return nil
}

// epochGroups returns the set sizes of pairs in their first order, each
// with its session sizes in order: one setup per set size.
func epochGroups(pairs []Pair) (servers []int, sessions map[int][]int) {
	sessions = map[int][]int{}
	for _, p := range pairs {
		if _, ok := sessions[p.Server]; !ok {
			servers = append(servers, p.Server)
		}
		sessions[p.Server] = append(sessions[p.Server], p.Client)
	}
	return servers, sessions
}

// serverSide samples the server child between the client's steps: its CPU
// time since the last sample and its peak RSS since, resetting the peak.
type serverSide struct {
	pid   int
	cpu   time.Duration
	reset bool
}

func newServerSide(pid int) (*serverSide, error) {
	s := &serverSide{pid: pid}
	var err error
	s.cpu, err = procCPU(pid)
	s.reset = resetPeakRSS(strconv.Itoa(pid))
	return s, err
}

// sample returns the CPU seconds and peak RSS since the last sample; a
// peak RSS of 0 means the peak could not be reset, so it is not the
// step's own.
func (s *serverSide) sample() (cpuS float64, rss uint64, err error) {
	cpu, err := procCPU(s.pid)
	if err != nil {
		return 0, 0, err
	}
	cpuS, s.cpu = (cpu - s.cpu).Seconds(), cpu
	if s.reset {
		rss = procPeakRSS(s.pid)
	}
	s.reset = resetPeakRSS(strconv.Itoa(s.pid))
	return cpuS, rss, nil
}

// runEpochLoopback runs one setup of the seeded set of server identifiers
// and an epoch session with a list of each size in clients, through the
// real service, each side in a child process.
func runEpochLoopback(cfg Config, server int, clients []int, rep *Report, progress io.Writer) ([]Run, EpochSetup, error) {
	delta := cfg.EpochDelta
	if delta == 0 {
		delta = psi.EpochDelta
	}
	su := EpochSetup{Server: server, DeltaBound: delta}
	dir, err := os.MkdirTemp("", "overlap-bench-")
	if err != nil {
		return nil, su, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	srv, err := startChild(ctx, "server", serverChildConfig{Seed: cfg.Seed, Server: server, Dir: dir, Epoch: true, EpochDelta: cfg.EpochDelta, Suite: int(cfg.suite)})
	if err != nil {
		return nil, su, err
	}
	defer srv.kill()
	var ready serverReady
	if err := srv.read(&ready); err != nil {
		return nil, su, err
	}
	oc := psi.MeasureSuiteOpCosts(cfg.suite, cfg.OpSample/4)
	base := oc.BaseMult
	su.HashNS, su.MultNS, su.BaseMultNS = float64(oc.HashToGroup.Nanoseconds()), float64(oc.ScalarMult.Nanoseconds()), float64(base.Nanoseconds())
	ss, err := newServerSide(srv.cmd.Process.Pid)
	if err != nil {
		return nil, su, err
	}
	cl, err := startChild(ctx, "client", clientChildConfig{Private: true, Seed: cfg.Seed, Client: clients[0], Server: server, Suite: int(cfg.suite),
		Overlap: cfg.Overlap, Addr: ready.Addr, CAFile: ready.CAFile, APIKey: ready.APIKey, EpochSessions: clients})
	if err != nil {
		return nil, su, err
	}
	defer cl.kill()
	goAhead := func() error {
		if _, err := io.WriteString(cl.stdin, "\n"); err != nil {
			return cl.fail(err)
		}
		return nil
	}
	ns := func(v int64) float64 { return time.Duration(v).Seconds() }

	var sr epochSetupReport
	if err := cl.read(&sr); err != nil {
		return nil, su, err
	}
	if su.ServerCPUS, su.ServerRSS, err = ss.sample(); err != nil {
		return nil, su, err
	}
	if sr.ServerSize <= server {
		return nil, su, fmt.Errorf("harness: epoch-loopback, server %d: the setup had N = %d", server, sr.ServerSize)
	}
	su.ServerPadded, su.Ringers = sr.ServerSize, sr.ServerSize-server
	su.WallS, su.ClientCPUS = ns(sr.ElapsedNS), ns(sr.CPUNS)
	if sr.PeakReset {
		su.ClientRSS = sr.PeakRSS
	}
	su.ClientBytes, su.ServerBytes = sr.FrameBytesSent, sr.FrameBytesReceived
	su.ClientWire, su.ServerWire = sr.WireBytesSent, sr.WireBytesReceived
	phase := func(phs *[]Phase, name, side string, from, to int64, elements int) {
		r := Run{}
		addPhase(&r, name, side, from, to, elements)
		*phs = append(*phs, r.Phases...)
	}
	phase(&su.Phases, "open: TLS, policy, setup limit, snapshot, encoding under b_E with ringers; first chunk raised", "both", 0, sr.FirstNS, server)
	phase(&su.Phases, "client: receive and raise the server's elements (check, multiply, tag)", "client", sr.FirstNS, sr.RaisedNS, su.ServerPadded)
	phase(&su.Phases, "client: key, sort, Golomb-code and send the tags (the server decodes them as they arrive)", "both", sr.RaisedNS, sr.TagsNS, su.ServerPadded)
	phase(&su.Phases, "server: ringer images and check, store the epoch (until EpochReady)", "server", sr.TagsNS, sr.ElapsedNS, su.Ringers)
	// The operations a setup needs (SPEC.md §10.12.3): the server hashes
	// and multiplies each of its |Y_E| identifiers and makes R' ringers by
	// fixed-base multiplication; the client raises all N; the server
	// computes the R' ringer images; A_E is one more fixed-base
	// multiplication.
	y, bigN, rp := float64(server), float64(su.ServerPadded), float64(su.Ringers)
	cores := float64(rep.Workers)
	su.BoundS = (y*su.HashNS + (y+bigN+rp)*su.MultNS + (rp+1)*su.BaseMultNS) / cores / 1e9
	su.Efficiency = su.BoundS / su.WallS
	fmt.Fprintf(progress, "setup %.1fs (N = %d, %.1f B per element in all)", su.WallS, su.ServerPadded,
		su.perElement(su.ClientBytes+su.ServerBytes))
	if err := goAhead(); err != nil {
		return nil, su, err
	}

	var runs []Run
	for _, n := range clients {
		d := &data{seed: cfg.Seed, server: server, overlap: overlapOf(Pair{Client: n, Server: server}, cfg.Overlap)}
		if cfg.tamper != nil {
			cfg.tamper(d)
		}
		r := Run{Mode: ModeEpochLoopback, Client: n, Server: server, ServerPadded: su.ServerPadded, Ringers: su.Ringers,
			TrueOverlap: d.overlap}
		var cr epochSessionReport
		if err := cl.read(&cr); err != nil {
			return runs, su, err
		}
		if r.ServerCPUS, r.ServerRSS, err = ss.sample(); err != nil {
			return runs, su, err
		}
		if cr.ClientSize != n || cr.ServerSize != su.ServerPadded {
			return runs, su, fmt.Errorf("harness: epoch-loopback, client %d, server %d: the session had n = %d, N = %d (the setup's N = %d)",
				n, server, cr.ClientSize, cr.ServerSize, su.ServerPadded)
		}
		if cr.PeakReset {
			r.ClientRSS = cr.PeakRSS
		}
		r.WallS = ns(cr.ElapsedNS)
		r.OnlineS = r.WallS // the server's set was raised in the setup
		r.ClientCPUS = ns(cr.CPUNS)
		r.CPUS = r.ClientCPUS + r.ServerCPUS
		r.ClientBytes, r.ServerBytes = cr.FrameBytesSent, cr.FrameBytesReceived
		r.ClientWire, r.ServerWire = cr.WireBytesSent, cr.WireBytesReceived
		addPhase(&r, "open: TLS, ticket, epoch checks, policy, budgets (until PrivateParams)", "both", 0, cr.ParamsNS, 0)
		addPhase(&r, "client: hash, blind and send the list (the server raises, tags and looks up as chunks arrive)", "both",
			cr.ParamsNS, cr.SentNS, n)
		addPhase(&r, "server: the last chunks, count, noise, release (until PrivateRelease)", "server", cr.SentNS, cr.ElapsedNS, 0)
		mech, err := dp.FromWire(cr.MechCode, cr.EpsNum, cr.EpsDen, cr.Sensitivity)
		if err != nil {
			return runs, su, fmt.Errorf("harness: epoch-loopback, client %d, server %d: the release's mechanism: %w", n, server, err)
		}
		res := psi.PrivateResult{ClientSize: cr.ClientSize, ServerSize: cr.ServerSize, Mechanism: mech, Threshold: cr.Threshold,
			Below: cr.Below, Count: cr.Count, Low: cr.Low, High: cr.High}
		if err := checkPrivate(&r, res); err != nil {
			return runs, su, err
		}
		r.HashNS, r.MultNS, r.BaseMultNS = su.HashNS, su.MultNS, su.BaseMultNS
		// Per list element, both ways.
		r.ClientBPE = float64(r.ClientBytes) / float64(n)
		r.ServerBPE = float64(r.ServerBytes) / float64(n)
		// A session needs n hashes and n multiplications of the client
		// (hash and blind) and n multiplications of the server (raise to
		// b_E); the rest is hashing and lookups.
		fn := float64(n)
		r.BoundS = (fn*r.HashNS + 2*fn*r.MultNS) / cores / 1e9
		r.Efficiency = r.BoundS / r.WallS
		r.OnlineBoundS, r.OnlineEff = r.BoundS, r.Efficiency
		fmt.Fprintf(progress, "; n %d: %.1fs, %s", n, r.WallS, r.Private.summary(r.TrueOverlap))
		runs = append(runs, r)
		if err := goAhead(); err != nil {
			return runs, su, err
		}
	}
	if _, err := cl.wait(); err != nil {
		return runs, su, err
	}
	if err := srv.stdin.Close(); err != nil {
		return runs, su, err
	}
	var done serverDone
	if err := srv.read(&done); err != nil {
		return runs, su, err
	}
	if _, err := srv.wait(); err != nil {
		return runs, su, err
	}
	if done.Epochs == nil || done.Epochs.Epochs != 1 || done.Epochs.KeptTags != int64(server) {
		return runs, su, fmt.Errorf("harness: epoch-loopback, server %d: the server kept %+v, want one epoch of %d tags", server, done.Epochs, server)
	}
	su.KeptTags, su.StoredTagBytes, su.HeapGrowth = done.Epochs.KeptTags, done.Epochs.TagBytes, done.Epochs.HeapGrowth
	fmt.Fprintf(progress, "; kept %.2f B per element stored, %.2f B heap\n", su.perElement(su.StoredTagBytes), su.perElement(su.HeapGrowth))
	return runs, su, nil
}

// epochMarkdown renders the setups and sessions of epoch-loopback mode.
func epochMarkdown(sb *strings.Builder, rep *Report) {
	if len(rep.EpochSetups) == 0 {
		return
	}
	mb := func(v int64) string { return fmt.Sprintf("%.1f", float64(v)/1e6) }
	fmt.Fprintf(sb, "\nEpoch setups (epoch-loopback; SPEC.md §10.12.1). Bytes per element are per platform element |Y_E|; "+
		"\"in all\" adds both ways. Peak RSS is each process's during the setup. The server keeps 8-byte fingerprints: stored is the store's TagBytes, heap the growth of the server's live Go heap from before the setup to after the sessions.\n\n")
	sb.WriteString("| |Y_E| | N | ringers R' | δ_E bound | wall s | bound s | efficiency | client CPU s | server CPU s | down MB (frames / TCP) | up MB (frames / TCP) | down B/elem | up B/elem | in all B/elem (frames / TCP) | client RSS MiB | server RSS MiB | kept tags | stored B/elem | heap B/elem |\n")
	sb.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range rep.EpochSetups {
		fmt.Fprintf(sb, "| %d | %d | %d | %g | %.1f | %.1f | %.0f%% | %.1f | %.1f | %s / %s | %s / %s | %.2f | %.2f | %.2f / %.2f | %s | %s | %d | %.2f | %.2f |\n",
			s.Server, s.ServerPadded, s.Ringers, s.DeltaBound, s.WallS, s.BoundS, 100*s.Efficiency, s.ClientCPUS, s.ServerCPUS,
			mb(s.ServerBytes), mb(s.ServerWire), mb(s.ClientBytes), mb(s.ClientWire),
			s.perElement(s.ServerBytes), s.perElement(s.ClientBytes), s.perElement(s.ServerBytes+s.ClientBytes), s.perElement(s.ServerWire+s.ClientWire),
			mib(s.ClientRSS), mib(s.ServerRSS), s.KeptTags, s.perElement(s.StoredTagBytes), s.perElement(s.HeapGrowth))
	}
	sb.WriteString("\nEpoch sessions (epoch-loopback; SPEC.md §10.12.2), each against the epoch of its |Y_E|'s setup. Bytes per element are per list element n. Peak RSS is each process's during the session.\n\n")
	sb.WriteString("| |Y_E| | n | released | true | wall s | bound s | efficiency | client CPU s | server CPU s | up B/elem (frames / TCP) | down B/elem (frames / TCP) | client RSS MiB | server RSS MiB |\n")
	sb.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rep.Runs {
		if r.Mode != ModeEpochLoopback {
			continue
		}
		rel := strconv.Itoa(r.Counted)
		if r.Private != nil && r.Private.Below {
			rel = fmt.Sprintf("< %d", r.Private.Threshold)
		}
		n := float64(r.Client)
		fmt.Fprintf(sb, "| %d | %d | %s | %d | %.2f | %.2f | %.0f%% | %.2f | %.2f | %.2f / %.2f | %.4f / %.4f | %s | %s |\n",
			r.Server, r.Client, rel, r.TrueOverlap, r.WallS, r.BoundS, 100*r.Efficiency, r.ClientCPUS, r.ServerCPUS,
			r.ClientBPE, float64(r.ClientWire)/n, r.ServerBPE, float64(r.ServerWire)/n, mib(r.ClientRSS), mib(r.ServerRSS))
	}
	sb.WriteString("\nSetup phases (wall seconds, timed by the client):\n\n| |Y_E| | phase | side | wall s | elements/s |\n|---:|---|---|---:|---:|\n")
	for _, s := range rep.EpochSetups {
		for _, p := range s.Phases {
			rate := "—"
			if p.PerSec > 0 {
				rate = fmt.Sprintf("%.0f", p.PerSec)
			}
			fmt.Fprintf(sb, "| %d | %s | %s | %.2f | %s |\n", s.Server, p.Name, p.Side, p.WallS, rate)
		}
	}
}

// writeEpochCSV writes epoch-setups.csv, one row per setup (the sessions
// are rows of results.csv).
func writeEpochCSV(rep *Report, dir string) error {
	if len(rep.EpochSetups) == 0 {
		return nil
	}
	rows := [][]string{{"server", "server_padded", "ringers", "delta_bound", "wall_s", "bound_s", "efficiency", "client_cpu_s", "server_cpu_s",
		"client_bytes", "server_bytes", "client_wire_bytes", "server_wire_bytes", "client_peak_rss_bytes", "server_peak_rss_bytes",
		"kept_tags", "stored_tag_bytes", "heap_growth_bytes", "hash_ns", "mult_ns", "base_mult_ns"}}
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	for _, s := range rep.EpochSetups {
		rows = append(rows, []string{strconv.Itoa(s.Server), strconv.Itoa(s.ServerPadded), strconv.Itoa(s.Ringers), g(s.DeltaBound),
			g(s.WallS), g(s.BoundS), g(s.Efficiency), g(s.ClientCPUS), g(s.ServerCPUS),
			i64(s.ClientBytes), i64(s.ServerBytes), i64(s.ClientWire), i64(s.ServerWire),
			strconv.FormatUint(s.ClientRSS, 10), strconv.FormatUint(s.ServerRSS, 10),
			i64(s.KeptTags), i64(s.StoredTagBytes), i64(s.HeapGrowth), g(s.HashNS), g(s.MultNS), g(s.BaseMultNS)})
	}
	return writeRows(dir+string(os.PathSeparator)+"epoch-setups.csv", rows)
}

// plotEpoch draws epoch-sessions (session time and its bound against n,
// one line per set size) and epoch-setup (setup time and bound against
// |Y_E|), if the report has epoch runs.
func plotEpoch(rep *Report, dir string) error {
	if len(rep.EpochSetups) == 0 {
		return nil
	}
	var s series
	for _, r := range rep.Runs {
		if r.Mode == ModeEpochLoopback && r.WallS > 0 {
			s.add(fmt.Sprintf("session, |Y| = %d", r.Server), float64(r.Client), r.WallS)
			s.add(fmt.Sprintf("bound, |Y| = %d", r.Server), float64(r.Client), r.BoundS)
		}
	}
	p := newPlot("Epoch sessions, loopback (service over TLS): wall time", "client list size n", "seconds", true, true)
	if err := plotutil.AddLinePoints(p, s.args()...); err != nil {
		return err
	}
	headroom(p)
	if err := save(p, dir, "epoch-sessions"); err != nil {
		return err
	}
	var u series
	for _, su := range rep.EpochSetups {
		u.add("setup wall time", float64(su.Server), su.WallS)
		u.add("bound", float64(su.Server), su.BoundS)
	}
	p = newPlot("Epoch setups, loopback (service over TLS): wall time", "platform set size |Y|", "seconds", true, true)
	if err := plotutil.AddLinePoints(p, u.args()...); err != nil {
		return err
	}
	headroom(p)
	return save(p, dir, "epoch-setup")
}
