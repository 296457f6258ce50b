package harness

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Write writes the report into dir as results.json, results.csv (one row
// per run), phases.csv (one row per phase), results.md and plots (PNG and
// SVG), and returns the Markdown.
func Write(rep *Report, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	if err := writeCSV(rep, dir); err != nil {
		return "", err
	}
	if err := writeEpochCSV(rep, dir); err != nil {
		return "", err
	}
	md := Markdown(rep)
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(md), 0o644); err != nil {
		return "", err
	}
	if err := writePlots(rep, dir); err != nil {
		return "", err
	}
	return md, nil
}

func g(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

func writeRows(path string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.WriteAll(rows)
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeCSV(rep *Report, dir string) error {
	runs := [][]string{{"mode", "pool", "part", "client", "server", "elements", "server_set", "server_padded", "ringers", "true_overlap", "counted",
		"private_below", "private_low", "private_high", "private_tail_bound",
		"wall_s", "online_s", "cpu_s", "client_cpu_s", "server_cpu_s",
		"hash_ns", "mult_ns", "base_mult_ns", "bound_s", "efficiency", "online_bound_s", "online_efficiency",
		"client_bytes", "server_bytes", "client_wire_bytes", "server_wire_bytes",
		"client_bytes_per_element", "server_bytes_per_element", "set_bits_per_element", "set_optimum_bits",
		"peak_heap_bytes", "client_peak_rss_bytes", "server_peak_rss_bytes"}}
	phases := [][]string{{"mode", "pool", "part", "client", "server", "phase", "side", "wall_s", "cpu_s", "elements", "elements_per_s", "peak_heap_bytes"}}
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	u64 := func(v uint64) string { return strconv.FormatUint(v, 10) }
	for _, r := range rep.Runs {
		pv := []string{"", "", "", ""}
		if pc := r.Private; pc != nil {
			pv = []string{strconv.FormatBool(pc.Below), strconv.Itoa(pc.Low), strconv.Itoa(pc.High), strconv.Itoa(pc.TailBound)}
		}
		row := []string{r.Mode, r.Pool, r.Part, strconv.Itoa(r.Client), strconv.Itoa(r.Server), strconv.Itoa(r.elements()),
			strconv.Itoa(r.setSize()), strconv.Itoa(r.ServerPadded),
			strconv.Itoa(r.Ringers), strconv.Itoa(r.TrueOverlap), strconv.Itoa(r.Counted)}
		row = append(row, pv...)
		row = append(row, g(r.WallS), g(r.OnlineS), g(r.CPUS), g(r.ClientCPUS), g(r.ServerCPUS),
			g(r.HashNS), g(r.MultNS), g(r.BaseMultNS), g(r.BoundS), g(r.Efficiency), g(r.OnlineBoundS), g(r.OnlineEff),
			i64(r.ClientBytes), i64(r.ServerBytes), i64(r.ClientWire), i64(r.ServerWire),
			g(r.ClientBPE), g(r.ServerBPE), g(r.SetBitsPerEl), g(r.SetOptimum),
			u64(r.PeakHeapBytes), u64(r.ClientRSS), u64(r.ServerRSS))
		runs = append(runs, row)
		for _, p := range r.Phases {
			phases = append(phases, []string{r.Mode, r.Pool, r.Part, strconv.Itoa(r.Client), strconv.Itoa(r.Server), p.Name, p.Side,
				g(p.WallS), g(p.CPUS), strconv.Itoa(p.Elements), g(p.PerSec), u64(p.PeakHeap)})
		}
	}
	if err := writeRows(filepath.Join(dir, "results.csv"), runs); err != nil {
		return err
	}
	return writeRows(filepath.Join(dir, "phases.csv"), phases)
}

func mib(b uint64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f", float64(b)/(1<<20))
}

// Markdown renders the summary table, the private releases and the
// per-phase table.
func Markdown(rep *Report) string {
	var sb strings.Builder
	if rep.Failed != "" {
		fmt.Fprintf(&sb, "**This run failed**: %s. The tables hold only what was measured and checked before the failure.\n\n", rep.Failed)
	}
	fmt.Fprintf(&sb, "Machine: %s/%s, %d CPUs, %d workers, %s. Per-operation cost on one core: hash-to-group %.1f µs, scalar multiplication %.1f µs, fixed-base multiplication %.1f µs. Overlap fraction %.2f, seed %d. %s.\n\n",
		rep.OS, rep.Arch, rep.CPUs, rep.Workers, rep.GoVersion, rep.HashNS/1e3, rep.MultNS/1e3, rep.BaseMultNS/1e3, rep.Overlap, rep.Seed, rep.TotalCheck)
	sb.WriteString("The bound of each run uses per-operation costs measured just before it (columns hash µs, mult µs). " +
		"Loopback and private-loopback rows are the real service over TLS on 127.0.0.1, one process per side: cold encodes the server set in the session, warm takes it from a pool filled before; private-loopback encodes it in the session. " +
		"Bytes are SPEC.md §5 frames, and for the loopback modes also TCP payload (TLS, HTTP/2, envelopes). " +
		"Rows of the record modes (records-loopback, private-records-loopback) are record sessions (SPEC.md §13), whose client is customers (2 slots each), server platform people (an email and a phone each) and N the union of the two sets, padded; " +
		"their rows marked email ids and phone ids are the identifier-level sessions of the same customers' emails and phones. bench/RESULTS.md explains every column.\n\n")
	sb.WriteString("| mode | client | server | overlap | true | N | hash µs | mult µs | wall s | bound s | efficiency | online s | online bound s | online efficiency | client→server MB (frames / TCP) | server→client MB (frames / TCP) | client B/elem | server B/elem | set bits/elem | optimum bits | vs optimum | peak heap MiB | client RSS MiB | server RSS MiB |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	mb := func(frames, tcp int64) string {
		if tcp == 0 {
			return fmt.Sprintf("%.3f", float64(frames)/1e6)
		}
		return fmt.Sprintf("%.3f / %.3f", float64(frames)/1e6, float64(tcp)/1e6)
	}
	for _, r := range rep.Runs {
		counted := strconv.Itoa(r.Counted)
		if r.Private != nil && r.Private.Below {
			counted = fmt.Sprintf("< %d", r.Private.Threshold)
		}
		opt, vs := "—", "—"
		if r.SetOptimum > 0 {
			opt, vs = fmt.Sprintf("%.2f", r.SetOptimum), fmt.Sprintf("%+.1f%%", 100*(r.SetBitsPerEl/r.SetOptimum-1))
		}
		heap := "—"
		if r.PeakHeapBytes > 0 {
			heap = mib(r.PeakHeapBytes)
		}
		fmt.Fprintf(&sb, "| %s | %d | %d | %s | %d | %d | %.1f | %.1f | %.2f | %.2f | %.0f%% | %.2f | %.2f | %.0f%% | %s | %s | %.3f | %.3f | %.2f | %s | %s | %s | %s | %s |\n",
			r.label(), r.Client, r.Server, counted, r.TrueOverlap, r.ServerPadded, r.HashNS/1e3, r.MultNS/1e3,
			r.WallS, r.BoundS, 100*r.Efficiency, r.OnlineS, r.OnlineBoundS, 100*r.OnlineEff,
			mb(r.ClientBytes, r.ClientWire), mb(r.ServerBytes, r.ServerWire), r.ClientBPE, r.ServerBPE, r.SetBitsPerEl, opt, vs,
			heap, mib(r.ClientRSS), mib(r.ServerRSS))
	}
	var priv []Run
	for _, r := range rep.Runs {
		if r.Private != nil {
			priv = append(priv, r)
		}
	}
	if len(priv) > 0 {
		sb.WriteString("\nPrivate-mode releases (checked against the true overlap with the noise's 1 − 10^-9 tail bound W; the 95% interval is the release's own):\n\n")
		sb.WriteString("| mode | client | server | ringers R' | mechanism | threshold | released | 95% interval | true | W | true in 95% interval |\n|---|---:|---:|---:|---|---:|---:|---|---:|---:|---|\n")
		for _, r := range priv {
			pc := r.Private
			rel := strconv.Itoa(pc.Released)
			if pc.Below {
				rel = fmt.Sprintf("below %d", pc.Threshold)
			}
			fmt.Fprintf(&sb, "| %s | %d | %d | %d | %s | %d | %s | [%d, %d] | %d | %d | %t |\n",
				r.label(), r.Client, r.Server, r.Ringers, pc.Mechanism, pc.Threshold, rel, pc.Low, pc.High, r.TrueOverlap, pc.TailBound, pc.InInterval)
		}
	}
	suiteMarkdown(&sb, rep)
	epochMarkdown(&sb, rep)
	recordsMarkdown(&sb, rep)
	sb.WriteString("\nPer phase (wall seconds; elements per second). Loopback and private-loopback phases are timed by the client; their CPU time is per side in results.csv.\n\n" +
		"| mode | client | server | phase | side | wall s | cpu s | elements/s |\n|---|---:|---:|---|---|---:|---:|---:|\n")
	for _, r := range rep.Runs {
		for _, p := range r.Phases {
			cpu := fmt.Sprintf("%.3f", p.CPUS)
			if r.Mode != ModeInProcess && r.Mode != ModePrivate {
				cpu = "—"
			}
			rate := "—"
			if p.PerSec > 0 {
				rate = fmt.Sprintf("%.0f", p.PerSec)
			}
			fmt.Fprintf(&sb, "| %s | %d | %d | %s | %s | %.3f | %s | %s |\n", r.label(), r.Client, r.Server, p.Name, p.Side, p.WallS, cpu, rate)
		}
	}
	return sb.String()
}

// series groups points by a name, keeping the order names first appear.
type series struct {
	names []string
	xys   map[string]plotter.XYs
}

func (s *series) add(name string, x, y float64) {
	if s.xys == nil {
		s.xys = map[string]plotter.XYs{}
	}
	if _, ok := s.xys[name]; !ok {
		s.names = append(s.names, name)
	}
	s.xys[name] = append(s.xys[name], plotter.XY{X: x, Y: y})
}

// args returns the series as plotutil's name, XYs pairs, each sorted by x.
func (s *series) args() []any {
	var out []any
	for _, n := range s.names {
		xy := s.xys[n]
		slices.SortFunc(xy, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		out = append(out, n, xy)
	}
	return out
}

func newPlot(title, x, y string, logX, logY bool) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	if logX {
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	if logY {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p
}

// headroom stretches a log y axis upwards so that the legend, at the top,
// covers no point.
func headroom(p *plot.Plot) {
	if p.Y.Max > 0 {
		p.Y.Max *= 30
	}
}

// Plot files: time-<mode> per mode present, efficiency, bytes, memory;
// each as .png and .svg.
func writePlots(rep *Report, dir string) error {
	for _, draw := range []func(*Report, string) error{plotTimes, plotEfficiency, plotBytes, plotMemory, plotEpoch} {
		if err := draw(rep, dir); err != nil {
			return err
		}
	}
	return nil
}

// plotTimes plots the time against the server set size.
func plotTimes(rep *Report, dir string) error {
	// Time against the server set size on log-log axes, one plot per mode,
	// one line per client size (and per pool state in loopback mode).
	for _, mode := range Modes {
		var s series
		for _, r := range rep.Runs {
			if r.Mode != mode || r.WallS <= 0 {
				continue
			}
			name := fmt.Sprintf("client %d", r.Client)
			if r.Pool != "" {
				name = fmt.Sprintf("%s, client %d", r.Pool, r.Client)
			}
			if r.Part != "" {
				name = fmt.Sprintf("%s session, client %d", r.Part, r.Client)
			}
			s.add(name, float64(r.Server), r.WallS)
		}
		if len(s.names) == 0 || mode == ModeEpochLoopback { // plotEpoch
			continue
		}
		titles := map[string]string{ModeInProcess: "Exact mode, in process", ModeLoopback: "Exact mode, loopback (service over TLS)",
			ModePrivate: "Private mode, in process", ModePrivateLoopback: "Private mode, loopback (service over TLS)",
			ModeRecordsLoopback:        "Record session (mode 5, cold) and identifier-level exact sessions, loopback",
			ModePrivateRecordsLoopback: "Record session (mode 6) and identifier-level private sessions, loopback"}
		p := newPlot(titles[mode]+": wall time of a session", "server set size", "seconds", true, true)
		if err := plotutil.AddLinePoints(p, s.args()...); err != nil {
			return err
		}
		headroom(p)
		if err := save(p, dir, "time-"+mode); err != nil {
			return err
		}
	}
	return nil
}

// plotEfficiency plots bound / measured.
func plotEfficiency(rep *Report, dir string) error {
	// Efficiency: bound / measured, whole session and online. A warm
	// session against the whole-session bound (the set was encoded before
	// it) is left to the table.
	var eff series
	for _, r := range rep.Runs {
		if r.WallS <= 0 {
			continue
		}
		if r.Pool != "warm" {
			eff.add(r.label()+": whole session", float64(r.Server), r.Efficiency)
		}
		eff.add(r.label()+": online", float64(r.Server), r.OnlineEff)
	}
	p := newPlot("Efficiency: lower bound / measured", "server set size", "efficiency", true, false)
	if err := plotutil.AddScatters(p, eff.args()...); err != nil {
		return err
	}
	p.Legend.Top = false
	p.Y.Min, p.Y.Max = 0, max(p.Y.Max, 1.1)
	if err := save(p, dir, "efficiency"); err != nil {
		return err
	}
	return nil
}

// plotBytes plots the bytes per element each way.
func plotBytes(rep *Report, dir string) error {
	// Bytes per element each way.
	var by series
	// A loopback grid point's bytes are the same cold and warm: plot the
	// cold run's, or the warm run's when the run had no cold one.
	cold := slices.ContainsFunc(rep.Runs, func(r Run) bool { return r.Mode == ModeLoopback && r.Pool == "cold" })
	for _, r := range rep.Runs {
		x := float64(r.Client)
		switch r.Mode {
		case ModeInProcess:
			by.add("exact: client → server, B per client element", x, r.ClientBPE)
			by.add("exact: server set, B per server element", x, r.SetBitsPerEl/8)
			by.add("exact: Golomb optimum, B per server element", x, r.SetOptimum/8)
		case ModeLoopback:
			if (r.Pool == "cold" || !cold) && r.ClientWire > 0 {
				by.add("loopback TCP: client → server, B per client element", x, float64(r.ClientWire)/float64(r.Client))
				by.add("loopback TCP: server → client, B per server element", x, float64(r.ServerWire)/float64(r.ServerPadded))
			}
		case ModePrivate:
			by.add("private: client → server, B per element sent (n + N)", x, r.ClientBPE)
			by.add("private: server → client, B per server element", x, r.ServerBPE)
		case ModePrivateLoopback:
			if r.ClientWire > 0 {
				by.add("private-loopback TCP: client → server, B per element sent (n + N)", x, float64(r.ClientWire)/float64(r.Client+r.ServerPadded))
				by.add("private-loopback TCP: server → client, B per server element", x, float64(r.ServerWire)/float64(r.ServerPadded))
			}
		case ModeRecordsLoopback, ModePrivateRecordsLoopback:
			// Per element the client sends (n·s slots in a record session)
			// and, private, per server element it returns.
			if r.ClientWire > 0 {
				up := float64(r.elements())
				if r.Private != nil {
					up += float64(r.ServerPadded)
				}
				by.add(r.Mode+" "+r.Part+" TCP: client → server, B per element sent", x, float64(r.ClientWire)/up)
				by.add(r.Mode+" "+r.Part+" TCP: server → client, B per server element", x, float64(r.ServerWire)/float64(r.ServerPadded))
			}
		case ModeEpochLoopback:
			if r.ClientWire > 0 {
				by.add("epoch session TCP: client → server, B per list element", x, float64(r.ClientWire)/x)
				by.add("epoch session TCP: server → client, B per list element", x, float64(r.ServerWire)/x)
			}
		}
	}
	p := newPlot("Bytes on the wire per element", "client list size", "bytes per element", true, true)
	if err := plotutil.AddScatters(p, by.args()...); err != nil {
		return err
	}
	headroom(p)
	if err := save(p, dir, "bytes"); err != nil {
		return err
	}
	return nil
}

// plotMemory plots the peak memory of each side.
func plotMemory(rep *Report, dir string) error {
	// Peak memory of each side.
	var mem series
	for _, r := range rep.Runs {
		x := float64(r.Server)
		if r.ServerRSS > 0 {
			mem.add(r.label()+": server RSS", x, float64(r.ServerRSS)/(1<<20))
		}
		if r.ClientRSS > 0 {
			mem.add(r.label()+": client RSS", x, float64(r.ClientRSS)/(1<<20))
		}
		if r.PeakHeapBytes > 0 {
			mem.add(r.label()+": Go heap, both sides", x, float64(r.PeakHeapBytes)/(1<<20))
		}
	}
	p := newPlot("Peak memory", "server set size", "MiB", true, true)
	if err := plotutil.AddScatters(p, mem.args()...); err != nil {
		return err
	}
	headroom(p)
	return save(p, dir, "memory")
}

func save(p *plot.Plot, dir, name string) error {
	// A run without any point of this plot gets no file.
	if p.X.Min > p.X.Max {
		return nil
	}
	// A log axis needs a range: one point, or equal values, give none.
	for _, ax := range []*plot.Axis{&p.X, &p.Y} {
		if ax.Min >= ax.Max {
			if _, ok := ax.Scale.(plot.LogScale); ok && ax.Min > 0 {
				ax.Min, ax.Max = ax.Min/2, ax.Max*2
			} else {
				ax.Min, ax.Max = ax.Min-1, ax.Max+1
			}
		}
	}
	for _, ext := range []string{".png", ".svg"} {
		if err := p.Save(8*vg.Inch, 5*vg.Inch, filepath.Join(dir, name+ext)); err != nil {
			return err
		}
	}
	return nil
}

// suiteMarkdown writes the per-operation costs of each ciphersuite and, for
// every grid point run in suites 1 and 2, the ratio of their times (suite 2
// over suite 1; below 1 means suite 2 is faster).
func suiteMarkdown(sb *strings.Builder, rep *Report) {
	if len(rep.SuiteOps) < 2 {
		return
	}
	sb.WriteString("\nCiphersuites (SPEC.md §12), per-operation costs on one core at the start of the run, and the ratio suite 2 / suite 1:\n\n")
	sb.WriteString("| suite | hash-to-group µs | scalar multiplication µs | fixed-base multiplication µs |\n|---:|---:|---:|---:|\n")
	var one, two *SuiteOps
	for i := range rep.SuiteOps {
		so := &rep.SuiteOps[i]
		fmt.Fprintf(sb, "| %d | %.1f | %.1f | %.1f |\n", so.Suite, so.HashNS/1e3, so.MultNS/1e3, so.BaseMultNS/1e3)
		switch so.Suite {
		case 1:
			one = so
		case 2:
			two = so
		}
	}
	if one == nil || two == nil {
		return
	}
	fmt.Fprintf(sb, "| 2/1 | %.2f | %.2f | %.2f |\n", two.HashNS/one.HashNS, two.MultNS/one.MultNS, two.BaseMultNS/one.BaseMultNS)
	type key struct {
		mode, pool, part string
		client, server   int
	}
	runs := map[key]map[int]Run{}
	var order []key
	for _, r := range rep.Runs {
		k := key{r.Mode, r.Pool, r.Part, r.Client, r.Server}
		if runs[k] == nil {
			runs[k] = map[int]Run{}
			order = append(order, k)
		}
		runs[k][max(r.Suite, 1)] = r
	}
	sb.WriteString("\n| mode | client | server | suite 1 wall s | suite 2 wall s | wall 2/1 | suite 1 online s | suite 2 online s | online 2/1 | suite 1 mult µs | suite 2 mult µs | mult 2/1 | efficiency 1 | efficiency 2 |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range order {
		a, ok1 := runs[k][1]
		b, ok2 := runs[k][2]
		if !ok1 || !ok2 {
			continue
		}
		label := a.label()
		fmt.Fprintf(sb, "| %s | %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %.2f | %.0f%% | %.0f%% |\n",
			label, k.client, k.server, a.WallS, b.WallS, b.WallS/a.WallS, a.OnlineS, b.OnlineS, b.OnlineS/a.OnlineS,
			a.MultNS/1e3, b.MultNS/1e3, b.MultNS/a.MultNS, 100*a.Efficiency, 100*b.Efficiency)
	}
}

// recordsMarkdown writes, for each grid point of the record modes and
// each suite, the record session against the two identifier-level sessions
// it replaces: counts, wall time, CPU time of both sides and bytes each
// way, the identifier-level columns summed, and the ratio record session /
// sum.
func recordsMarkdown(sb *strings.Builder, rep *Report) {
	type key struct {
		mode           string
		suite          int
		client, server int
	}
	parts := map[key]map[string]Run{}
	var order []key
	for _, r := range rep.Runs {
		if r.Part == "" {
			continue
		}
		k := key{r.Mode, max(r.Suite, 1), r.Client, r.Server}
		if parts[k] == nil {
			parts[k] = map[string]Run{}
			order = append(order, k)
		}
		parts[k][r.Part] = r
	}
	if len(order) == 0 {
		return
	}
	sb.WriteString("\nPerson-level sessions (SPEC.md §13): the record session of the customers, each with an email and a phone (2 slots), " +
		"against the platform's people, each with an email and a phone, versus the two identifier-level sessions of the same file " +
		"(its emails against the platform's emails, its phones against its phones), each through a server of its own, in the same mode; " +
		"the sums add the two sessions, run one after the other. Counts: customers (record session), identifiers (each column). " +
		"Bytes are SPEC.md §5 frames / TCP payload; ratios are record session / sum, of frames for bytes. CPU is both sides' processes.\n\n")
	sb.WriteString("| mode | suite | customers | platform people | customers matched (true) | email + phone matched (true) | record wall s | sum wall s | wall ratio | record CPU s | sum CPU s | CPU ratio | record client→server MB | sum client→server MB | up ratio | record server→client MB | sum server→client MB | down ratio |\n")
	sb.WriteString("|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	mb := func(frames, tcp int64) string {
		return fmt.Sprintf("%.2f / %.2f", float64(frames)/1e6, float64(tcp)/1e6)
	}
	count := func(r Run) string {
		c := strconv.Itoa(r.Counted)
		if r.Private != nil && r.Private.Below {
			c = fmt.Sprintf("< %d", r.Private.Threshold)
		}
		return fmt.Sprintf("%s (%d)", c, r.TrueOverlap)
	}
	for _, k := range order {
		rec, ok1 := parts[k][PartRecords]
		em, ok2 := parts[k][PartEmail]
		ph, ok3 := parts[k][PartPhone]
		if !ok1 || !ok2 || !ok3 {
			continue
		}
		wall, cpu := em.WallS+ph.WallS, em.CPUS+ph.CPUS
		up, upTCP := em.ClientBytes+ph.ClientBytes, em.ClientWire+ph.ClientWire
		down, downTCP := em.ServerBytes+ph.ServerBytes, em.ServerWire+ph.ServerWire
		fmt.Fprintf(sb, "| %s | %d | %d | %d | %s | %s + %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %s | %.2f | %s | %s | %.2f |\n",
			k.mode, k.suite, k.client, k.server, count(rec), count(em), count(ph),
			rec.WallS, wall, rec.WallS/wall, rec.CPUS, cpu, rec.CPUS/cpu,
			mb(rec.ClientBytes, rec.ClientWire), mb(up, upTCP), float64(rec.ClientBytes)/float64(up),
			mb(rec.ServerBytes, rec.ServerWire), mb(down, downTCP), float64(rec.ServerBytes)/float64(down))
	}
}
