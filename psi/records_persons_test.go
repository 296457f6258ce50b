package psi_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/idfile"
	"github.com/overlap-psi/overlap/psi/idfile/idfiletest"
	"github.com/overlap-psi/overlap/psi/wire"
)

// personsExpected is the part of testdata/persons/expected.json this test
// reads.
type personsExpected struct {
	Platform struct {
		Identifiers, Consent string
	}
	DefaultRegion string `json:"default_region"`
	Files         map[string]struct {
		Records         int `json:"records"`
		Slots           int `json:"slots"`
		RecordsMatched  int `json:"records_matched"`
		RecordsMatched1 int `json:"records_matched_cap1"`
	}
}

func openPersons(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", "persons", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// serve runs the server's side of a record session over a pipe.
func serveRecords(t *testing.T, sc *psi.PipeConn, serve func(psi.Conn, *wire.RecordsHello) error) <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, h, err := psi.RecvOpening(sc)
		if err == nil {
			err = serve(sc, h)
		}
		if err != nil {
			sc.Close()
		} else {
			sc.CloseSend()
		}
		errc <- err
	}()
	return errc
}

// Both record modes count the customers of testdata/persons as the plain
// reference (idfiletest) and the hand-worked expected.json do (SPEC.md
// §13.7 test plan (1)): shared and partial identifiers, security-only
// identifiers, withdrawals, hashed columns and a record matched through two
// identifiers. Exact mode counts against the matchable sets of §8.5; mode 6
// against the sets with the cap Δ_K = 1 of §10.9, the noise fixed at 0.
func TestRecordSessionsOnPersons(t *testing.T) {
	var exp personsExpected
	if err := json.NewDecoder(openPersons(t, "expected.json")).Decode(&exp); err != nil {
		t.Fatal(err)
	}
	platform, err := idfiletest.ReadPlatform(openPersons(t, exp.Platform.Identifiers), openPersons(t, exp.Platform.Consent))
	if err != nil {
		t.Fatal(err)
	}
	matchable, capped := platform.Matchable(0), platform.Matchable(1)
	if len(exp.Files) != 4 {
		t.Fatalf("%d files in expected.json", len(exp.Files))
	}
	for name, want := range exp.Files {
		t.Run(name, func(t *testing.T) {
			res, err := idfile.ReadRecords(openPersons(t, name), idfile.RecordOptions{Ident: ident.Options{DefaultRegion: exp.DefaultRegion}}, func(idfile.Reject) {})
			if err != nil {
				t.Fatal(err)
			}
			rc := psi.RecordsConfig{Kinds: wire.KindSetOf(res.Kinds()...), Slots: res.Slots()}
			records := idfile.RecordIDs(res.Records)
			if ref := idfiletest.Count(res.Records, matchable); ref != want.RecordsMatched {
				t.Fatalf("reference %d, expected.json %d", ref, want.RecordsMatched)
			}
			if ref := idfiletest.Count(res.Records, capped); ref != want.RecordsMatched1 {
				t.Fatalf("reference with the cap %d, expected.json %d", ref, want.RecordsMatched1)
			}

			// Mode 5.
			set, err := psi.NewRecordsSet(psi.SetConfig{}, rc.Kinds)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range rc.Kinds.Kinds() {
				for d := range matchable[k] {
					if err := set.AddOf(k, d); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := set.Finish(); err != nil {
				t.Fatal(err)
			}
			c, err := psi.NewRecordsClient(psi.ClientConfig{CanonVersion: ident.Version}, rc, records)
			if err != nil {
				t.Fatal(err)
			}
			s, err := psi.NewServer(psi.ServerConfig{CanonVersion: ident.Version}, set)
			if err != nil {
				t.Fatal(err)
			}
			cc, sc := psi.Pipe()
			errc := serveRecords(t, sc, func(conn psi.Conn, h *wire.RecordsHello) error { return s.ServeRecords(conn, h, nil) })
			exact, err := c.Run(cc, nil)
			if serr := <-errc; serr != nil || err != nil {
				t.Fatalf("exact: server %v, client %v", serr, err)
			}
			if exact.Overlap != want.RecordsMatched || exact.ClientSize != want.Records || exact.Slots != want.Slots {
				t.Errorf("exact: %d of %d records in %d slots, want %d of %d in %d", exact.Overlap, exact.ClientSize, exact.Slots,
					want.RecordsMatched, want.Records, want.Slots)
			}

			// Mode 6.
			pset, err := psi.NewPrivateRecordsSet(psi.PrivateSetConfig{Ringers: 16}, rc.Kinds, 1)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range rc.Kinds.Kinds() {
				for d := range capped[k] {
					if err := pset.AddOf(k, d); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := pset.Finish(); err != nil {
				t.Fatal(err)
			}
			pc, err := psi.NewPrivateRecordsClient(psi.PrivateClientConfig{CanonVersion: ident.Version}, rc, records)
			if err != nil {
				t.Fatal(err)
			}
			cfg := psi.PrivateServerConfig{CanonVersion: ident.Version, Threshold: 1}
			psi.FixNoise(&cfg, 0)
			ps, err := psi.NewPrivateServer(cfg, pset)
			if err != nil {
				t.Fatal(err)
			}
			cc, sc = psi.Pipe()
			errc = serveRecords(t, sc, func(conn psi.Conn, h *wire.RecordsHello) error { return ps.ServeRecords(conn, h, nil) })
			priv, err := pc.Run(cc, nil)
			if serr := <-errc; serr != nil || err != nil {
				t.Fatalf("private: server %v, client %v", serr, err)
			}
			if priv.Count != want.RecordsMatched1 || priv.ClientSize != want.Records || priv.Mechanism.Sensitivity() != uint32(rc.Kinds.Len()) {
				t.Errorf("private: %d of %d records, Δ = %d; want %d of %d, Δ = %d", priv.Count, priv.ClientSize, priv.Mechanism.Sensitivity(),
					want.RecordsMatched1, want.Records, rc.Kinds.Len())
			}
		})
	}
}
