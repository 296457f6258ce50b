package harness

import (
	"encoding/csv"
	"encoding/json"
	"fmt"

	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Write writes the report into dir as results.json, results.csv,
// results.md and plots (PNG and SVG), and returns the Markdown table.
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
	if err := writeCSV(rep, filepath.Join(dir, "results.csv")); err != nil {
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

func writeCSV(rep *Report, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"mode", "client", "server", "server_padded", "true_overlap", "counted", "phase", "side",
		"wall_s", "cpu_s", "elements", "elements_per_s", "peak_heap_bytes"})
	g := func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
	for _, r := range rep.Runs {
		for _, p := range r.Phases {
			w.Write([]string{r.Mode, strconv.Itoa(r.Client), strconv.Itoa(r.Server), strconv.Itoa(r.ServerPadded),
				strconv.Itoa(r.TrueOverlap), strconv.Itoa(r.Counted), p.Name, p.Side, g(p.WallS), g(p.CPUS),
				strconv.Itoa(p.Elements), g(p.PerSec), strconv.FormatUint(p.PeakHeap, 10)})
		}
		w.Write([]string{r.Mode, strconv.Itoa(r.Client), strconv.Itoa(r.Server), strconv.Itoa(r.ServerPadded),
			strconv.Itoa(r.TrueOverlap), strconv.Itoa(r.Counted), "total", "both", g(r.WallS), g(r.CPUS),
			strconv.Itoa(r.Client + r.Server), "", strconv.FormatUint(r.PeakHeapBytes, 10)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Markdown renders the summary table and the per-phase table.
func Markdown(rep *Report) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Machine: %s/%s, %d CPUs, %d workers, %s. Per-operation cost on one core: hash-to-group %.1f µs, scalar multiplication %.1f µs. Overlap fraction %.2f, seed %d. %s.\n\n",
		rep.OS, rep.Arch, rep.CPUs, rep.Workers, rep.GoVersion, rep.HashNS/1e3, rep.MultNS/1e3, rep.Overlap, rep.Seed, rep.TotalCheck)
	sb.WriteString("The bound of each run uses per-operation costs measured just before it (columns hash µs, mult µs).\n\n")
	sb.WriteString("| mode | client | server | overlap | hash µs | mult µs | wall s | bound s | efficiency | online s (warm pool) | online efficiency | client B/elem | set bits/elem | optimum bits | vs optimum | peak heap MiB |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rep.Runs {
		fmt.Fprintf(&sb, "| %s | %d | %d | %d | %.1f | %.1f | %.2f | %.2f | %.0f%% | %.2f | %.0f%% | %.3f | %.2f | %.2f | %+.1f%% | %.0f |\n",
			r.Mode, r.Client, r.Server, r.Counted, r.HashNS/1e3, r.MultNS/1e3, r.WallS, r.BoundS, 100*r.Efficiency, r.OnlineS, 100*r.OnlineEff,
			r.ClientBPE, r.SetBitsPerEl, r.SetOptimum, 100*(r.SetBitsPerEl/r.SetOptimum-1), float64(r.PeakHeapBytes)/(1<<20))
	}
	sb.WriteString("\nPer phase (wall seconds; elements per second):\n\n| client | server | phase | side | wall s | cpu s | elements/s |\n|---:|---:|---|---|---:|---:|---:|\n")
	for _, r := range rep.Runs {
		for _, p := range r.Phases {
			fmt.Fprintf(&sb, "| %d | %d | %s | %s | %.3f | %.3f | %.0f |\n", r.Client, r.Server, p.Name, p.Side, p.WallS, p.CPUS, p.PerSec)
		}
	}
	return sb.String()
}

func writePlots(rep *Report, dir string) error {
	// Time against the server set size, one line per client size.
	byClient := map[int]plotter.XYs{}
	var clients []int
	for _, r := range rep.Runs {
		if _, ok := byClient[r.Client]; !ok {
			clients = append(clients, r.Client)
		}
		byClient[r.Client] = append(byClient[r.Client], plotter.XY{X: float64(r.Server), Y: r.WallS})
	}
	p := plot.New()
	p.Title.Text = "Exact mode, in process: wall time"
	p.X.Label.Text = "server set size"
	p.Y.Label.Text = "seconds"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	var lines []any
	for _, c := range clients {
		lines = append(lines, fmt.Sprintf("client %d", c), byClient[c])
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	if err := save(p, dir, "time"); err != nil {
		return err
	}

	// Efficiency and set bits per element, per grid point.
	eff := plot.New()
	eff.Title.Text = "Efficiency: lower bound / measured"
	eff.X.Label.Text = "server set size"
	eff.Y.Label.Text = "efficiency"
	eff.X.Scale = plot.LogScale{}
	eff.X.Tick.Marker = plot.LogTicks{Prec: -1}
	var cold, warm plotter.XYs
	for _, r := range rep.Runs {
		cold = append(cold, plotter.XY{X: float64(r.Server), Y: r.Efficiency})
		warm = append(warm, plotter.XY{X: float64(r.Server), Y: r.OnlineEff})
	}
	if err := plotutil.AddScatters(eff, "whole session", cold, "online, warm pool", warm); err != nil {
		return err
	}
	if err := save(eff, dir, "efficiency"); err != nil {
		return err
	}

	bpe := plot.New()
	bpe.Title.Text = "Server set on the wire"
	bpe.X.Label.Text = "client list size"
	bpe.Y.Label.Text = "bits per server element"
	bpe.X.Scale = plot.LogScale{}
	bpe.X.Tick.Marker = plot.LogTicks{Prec: -1}
	var got, opt plotter.XYs
	for _, r := range rep.Runs {
		got = append(got, plotter.XY{X: float64(r.Client), Y: r.SetBitsPerEl})
		opt = append(opt, plotter.XY{X: float64(r.Client), Y: r.SetOptimum})
	}
	if err := plotutil.AddScatters(bpe, "measured", got, "Golomb optimum", opt); err != nil {
		return err
	}
	return save(bpe, dir, "bytes")
}

func save(p *plot.Plot, dir, name string) error {
	for _, ext := range []string{".png", ".svg"} {
		if err := p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, name+ext)); err != nil {
			return err
		}
	}
	return nil
}
