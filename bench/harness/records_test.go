package harness

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/idfile"
	"github.com/overlap-psi/overlap/psi/idfile/idfiletest"
)

// naiveRecordsCount recounts a record-mode grid point from scratch: the
// platform's email and phone sets listed in full, and the plain counts of
// SPEC.md §13.1 over the customers (idfiletest.Count, after the rule of
// §13.2 that drops an identifier an earlier record holds) and of each
// column.
func naiveRecordsCount(seed uint64, p Pair, d *recordsData) (records, emails, phones, dropped int) {
	sets := idfiletest.Sets{psi.KindEmail: {}, psi.KindPhone: {}}
	for i := range p.Server {
		sets[psi.KindEmail][digestOf(seed, 's', i)] = true
		sets[psi.KindPhone][digestOf(seed, 'p', i)] = true
	}
	seen := map[psi.RecordID]bool{}
	var recs []idfile.Record
	for i, rec := range d.records {
		r := idfile.Record{Line: i + 2}
		for _, id := range rec {
			if seen[id] {
				dropped++
				continue
			}
			seen[id] = true
			r.IDs = append(r.IDs, id)
		}
		if len(r.IDs) > 0 {
			recs = append(recs, r)
		}
	}
	byKind := idfiletest.CountIdentifiers(recs, sets)
	return idfiletest.Count(recs, sets), byKind[psi.KindEmail], byKind[psi.KindPhone], dropped
}

// The records generator's truth agrees with a naive recount, at points
// where the platform has people to spare and where it runs short of them
// (fewer people than matching customers need), and every way of matching
// occurs: through one identifier, and through both.
func TestGenerateRecordsTruth(t *testing.T) {
	for _, tc := range []struct {
		p        Pair
		fraction float64
	}{{Pair{1000, 10000}, 0.5}, {Pair{400, 300}, 0.9}, {Pair{333, 50}, 1}, {Pair{100, 1000}, 0}, {Pair{57, 1000}, 1}} {
		d := generateRecords(3, tc.p, tc.fraction)
		if len(d.records) != tc.p.Client {
			t.Fatalf("%v: %d records", tc.p, len(d.records))
		}
		records, emails, phones, dropped := naiveRecordsCount(3, tc.p, d)
		if records != d.matched || emails != d.emailOverlap || phones != d.phoneOverlap || dropped != 0 {
			t.Errorf("%v at %v: generator says %d customers, %d emails, %d phones; naive recount %d, %d, %d (%d identifiers shared)",
				tc.p, tc.fraction, d.matched, d.emailOverlap, d.phoneOverlap, records, emails, phones, dropped)
		}
		if records != overlapOf(tc.p, tc.fraction) {
			t.Errorf("%v at %v: %d customers match, want the overlap fraction's %d", tc.p, tc.fraction, records, overlapOf(tc.p, tc.fraction))
		}
		// Customers matched through both identifiers count once: the
		// columns' counts add up to more than the customers.
		if records >= 4 && (d.both == 0 || emails+phones != records+d.both || emails == records || phones == records) {
			t.Errorf("%v: %d customers, %d through both, %d emails, %d phones: not every way of matching occurs", tc.p, records, d.both, emails, phones)
		}
		for _, part := range recordsParts {
			req, err := d.request(part)
			if err != nil {
				t.Fatal(err)
			}
			if part == PartRecords && (len(req.Records) != tc.p.Client || req.RecordsConfig.Slots != 2 || req.RecordsConfig.Kinds.Len() != 2) ||
				part != PartRecords && len(req.Digests) != tc.p.Client {
				t.Errorf("%v: the %s request: %d records, %d digests, %+v", tc.p, part, len(req.Records), len(req.Digests), req.RecordsConfig)
			}
		}
	}
	// Seeded: the same data again, other data for another seed.
	a, b, c := generateRecords(1, Pair{50, 500}, 0.5), generateRecords(1, Pair{50, 500}, 0.5), generateRecords(2, Pair{50, 500}, 0.5)
	if a.records[7][0] != b.records[7][0] || a.records[7][0] == c.records[7][0] {
		t.Error("records data is not determined by the seed alone")
	}
}

// A tiny run of both record modes through the real service: every
// session's count equals the truth (a private release within the noise's
// tail bound, with the person-level sensitivity Σ_K Δ_K = 2 for the record
// session), and the rows, the comparison table and the files are written.
func TestRecordsLoopback(t *testing.T) {
	p := Pair{300, 2000}
	rep, err := Execute(Config{RecordsPairs: []Pair{p}, Modes: []string{ModeRecordsLoopback, ModePrivateRecordsLoopback},
		Overlap: 0.5, Seed: 5, OpSample: 20, Suites: []psi.Suite{psi.Suite2}})
	if err != nil {
		t.Fatal(err)
	}
	d := generateRecords(5, p, 0.5)
	records, emails, phones, _ := naiveRecordsCount(5, p, d)
	want := map[string]int{PartRecords: records, PartEmail: emails, PartPhone: phones}
	if len(rep.Runs) != 6 {
		t.Fatalf("%d runs, want 6", len(rep.Runs))
	}
	for i, r := range rep.Runs {
		mode := []string{ModeRecordsLoopback, ModePrivateRecordsLoopback}[i/3]
		part := recordsParts[i%3]
		if r.Mode != mode || r.Part != part || r.Client != p.Client || r.Server != p.Server || r.TrueOverlap != want[part] {
			t.Errorf("run %d: %s %s %d/%d true %d; want %s %s, true %d", i, r.Mode, r.Part, r.Client, r.Server, r.TrueOverlap, mode, part, want[part])
		}
		elems, set := p.Client, p.Server
		if part == PartRecords {
			elems, set = 2*p.Client, 2*p.Server
		}
		if r.elements() != elems || r.setSize() != set || r.ServerPadded < set {
			t.Errorf("%s: %d elements, set %d, N %d; want %d, %d", r.label(), r.elements(), r.setSize(), r.ServerPadded, elems, set)
		}
		if r.WallS <= 0 || r.ClientCPUS <= 0 || r.ServerCPUS <= 0 || r.BoundS <= 0 || r.ClientRSS == 0 || r.ServerRSS == 0 ||
			r.ClientBytes < int64(32*elems) || r.ClientWire < r.ClientBytes || r.ServerWire < r.ServerBytes || len(r.Phases) != 5 {
			t.Errorf("%s: %+v", r.label(), r)
		}
		if mode == ModeRecordsLoopback {
			if r.Private != nil || r.Counted != want[part] || r.Pool != "cold" {
				t.Errorf("%s: counted %d, want %d (%+v)", r.label(), r.Counted, want[part], r.Private)
			}
			continue
		}
		wantW := 41 // discrete Laplace, ε = 1/2, Δ = 1 (bench/RESULTS.md)
		if part == PartRecords {
			wantW = 83 // Δ = 2: the email and the phone of one person
		}
		if r.Private == nil || r.Private.TailBound != wantW || r.Ringers != r.ServerPadded-set || r.Ringers < 1000 {
			t.Errorf("%s: %+v, ringers %d", r.label(), r.Private, r.Ringers)
		}
	}
	dir := t.TempDir()
	md, err := Write(rep, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{"| records-loopback (cold) suite 2 | 300 | 2000 | ", "| records-loopback (cold): email ids suite 2 | 300 | 2000 | ",
		"| private-records-loopback: phone ids suite 2 | 300 | 2000 | ", "\nPerson-level sessions", "| records-loopback | 2 | 300 | 2000 | ",
		"| private-records-loopback | 2 | 300 | 2000 | "} {
		if !strings.Contains(md, row) {
			t.Errorf("results.md lacks %q:\n%s", row, md)
		}
	}
	csv, err := os.ReadFile(filepath.Join(dir, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(csv), "\nrecords-loopback,cold,records,300,2000,600,4000,4096,") ||
		!strings.Contains(string(csv), "\nprivate-records-loopback,,phone,300,2000,300,2000,") {
		t.Errorf("results.csv:\n%s", csv)
	}
	for _, f := range []string{"phases.csv", "results.json", "time-records-loopback.png", "time-private-records-loopback.svg", "bytes.png"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// A wrong truth fails each record mode.
func TestRecordsWrongCountFails(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		shift int
	}{{ModeRecordsLoopback, 1}, {ModePrivateRecordsLoopback, 200}} {
		_, err := Execute(Config{RecordsPairs: []Pair{{400, 1000}}, Modes: []string{tc.mode}, Overlap: 0.5, Seed: 1, OpSample: 10,
			Suites: []psi.Suite{psi.Suite2}, tamper: func(d *data) { d.overlap += tc.shift }})
		if !errors.Is(err, ErrWrongCount) {
			t.Errorf("%s: got %v, want ErrWrongCount", tc.mode, err)
		}
	}
}
