package harness

import (
	"fmt"
	"io"

	"github.com/overlap-psi/overlap/psi/service"
)

// Records-loopback mode runs a record session (SPEC.md §13) through the
// real service, as loopback mode runs an exact session: a server child
// whose synthetic source serves an email set and a phone set (seededSource
// with phones) and a client child that sends the grid point's customers
// (recordsData) as records, as overlap match sends a customer file with an
// email and a phone column. Mode 5 (records-loopback) is cold: the server
// encodes the union of the two sets in the session, as every record
// session does (the warm pool keeps sets of one kind). Mode 6
// (private-records-loopback) encodes it with its ringers in the session, as
// private-loopback does.
//
// For comparison, each grid point also runs the two identifier-level
// sessions an advertiser would otherwise run on the same file, each
// through a server child of its own: the customers' emails against the
// platform's emails, and their phones against its phones, in the same mode
// (exact cold, or private). Every count is checked against the truth
// recordsData counted: the record session's in customers, each column's in
// identifiers.

// runRecordsLoopback runs the three sessions of a record-mode grid point
// (recordsParts): the record session, then each column's identifier-level
// session, in exact mode or, with private, in private mode.
func runRecordsLoopback(cfg Config, p Pair, rep *Report, private bool, progress io.Writer) ([]Run, error) {
	mode := ModeRecordsLoopback
	if private {
		mode = ModePrivateRecordsLoopback
	}
	rd := generateRecords(cfg.Seed, p, cfg.Overlap)
	kinds := recordsKinds.Len()
	var runs []Run
	for i, part := range recordsParts {
		r := Run{Mode: mode, Suite: int(cfg.suite.Or1()), Part: part, Client: p.Client, Server: p.Server}
		if !private {
			r.Pool = "cold"
		}
		// The sensitivity the release must carry (SPEC.md §13.7): Σ_K Δ_K
		// for the record session, Δ for an identifier-level one, at the
		// server child's default Δ.
		delta := service.DefaultPolicy().Sensitivity
		if part == PartRecords {
			r.Elements, r.ServerSet = recordsSlots*p.Client, kinds*p.Server
			delta *= uint32(kinds)
		}
		d := &data{seed: cfg.Seed, server: p.Server, overlap: rd.truth(part)}
		if cfg.tamper != nil {
			cfg.tamper(d)
		}
		r.TrueOverlap = d.overlap
		sc, cc := childConfigs(cfg, p, 0, private)
		sc.Phones, cc.Records = true, part
		if i > 0 {
			fmt.Fprint(progress, "; ")
		}
		fmt.Fprintf(progress, "%s… ", part)
		var err error
		if private {
			r, err = privateLoopback(cfg, r, rep, sc, cc, func(cr *privateClientReport) error {
				if cr.Sensitivity != delta {
					return fmt.Errorf("harness: %s, client %d, server %d: the release's sensitivity is %d, want %d (SPEC.md §13.7)",
						r.label(), p.Client, p.Server, cr.Sensitivity, delta)
				}
				return nil
			})
		} else {
			r, err = exactLoopback(cfg, r, rep, sc, cc)
		}
		if err != nil {
			fmt.Fprintln(progress)
			return runs, err
		}
		if r.Private != nil {
			fmt.Fprintf(progress, "%.1fs, %s", r.WallS, r.Private.summary(r.TrueOverlap))
		} else {
			fmt.Fprintf(progress, "%.1fs, count %d = true %d", r.WallS, r.Counted, r.TrueOverlap)
		}
		runs = append(runs, r)
	}
	fmt.Fprintln(progress)
	return runs, nil
}
