package idfiletest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/idfile"
)

var dir = filepath.Join("..", "..", "..", "testdata", "persons")

type kindCounts struct {
	Email int `json:"email"`
	Phone int `json:"phone"`
	ID    int `json:"id"`
}

func (k kindCounts) of(kind psi.Kind) int {
	switch kind {
	case psi.KindEmail:
		return k.Email
	case psi.KindPhone:
		return k.Phone
	}
	return k.ID
}

type expected struct {
	Platform struct {
		Identifiers   string     `json:"identifiers"`
		Consent       string     `json:"consent"`
		Matchable     kindCounts `json:"matchable"`
		MatchableCap1 kindCounts `json:"matchable_cap1"`
		Held          kindCounts `json:"held"`
	} `json:"platform"`
	DefaultRegion string `json:"default_region"`
	Files         map[string]struct {
		Rows                          int        `json:"rows"`
		Records                       int        `json:"records"`
		Duplicates                    int        `json:"duplicates"`
		Rejected                      int        `json:"rejected"`
		BadCells                      int        `json:"bad_cells"`
		Slots                         int        `json:"slots"`
		RecordsMatched                int        `json:"records_matched"`
		RecordsMatchedCap1            int        `json:"records_matched_cap1"`
		RecordsMatchedIgnoringConsent int        `json:"records_matched_ignoring_consent"`
		IdentifiersMatched            kindCounts `json:"identifiers_matched"`
	} `json:"files"`
}

func open(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestPersons checks the reference and idfile.ReadRecords against the
// counts of testdata/persons/expected.json, worked out by hand (see the
// README there).
func TestPersons(t *testing.T) {
	var exp expected
	if err := json.NewDecoder(open(t, "expected.json")).Decode(&exp); err != nil {
		t.Fatal(err)
	}
	p, err := ReadPlatform(open(t, exp.Platform.Identifiers), open(t, exp.Platform.Consent))
	if err != nil {
		t.Fatal(err)
	}
	matchable, cap1, held := p.Matchable(0), p.Matchable(1), p.Held()
	for _, k := range psi.Kinds {
		if matchable.Len(k) != exp.Platform.Matchable.of(k) || cap1.Len(k) != exp.Platform.MatchableCap1.of(k) || held.Len(k) != exp.Platform.Held.of(k) {
			t.Errorf("%v: %d matchable, %d with the cap, %d held; want %d, %d, %d", k, matchable.Len(k), cap1.Len(k), held.Len(k),
				exp.Platform.Matchable.of(k), exp.Platform.MatchableCap1.of(k), exp.Platform.Held.of(k))
		}
	}
	if len(exp.Files) != 4 {
		t.Fatalf("%d customer files in expected.json", len(exp.Files))
	}
	for name, want := range exp.Files {
		t.Run(name, func(t *testing.T) {
			var rejects []string
			res, err := idfile.ReadRecords(open(t, name), idfile.RecordOptions{Ident: ident.Options{DefaultRegion: exp.DefaultRegion}},
				func(r idfile.Reject) { rejects = append(rejects, r.String()) })
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("reports: %s", strings.Join(rejects, "; "))
			if res.Rows != want.Rows || len(res.Records) != want.Records || res.Duplicates != want.Duplicates ||
				res.Rejected != want.Rejected || res.BadCells != want.BadCells || res.Slots() != want.Slots {
				t.Errorf("rows %d, records %d, duplicates %d, rejected %d, bad cells %d, slots %d; want %d, %d, %d, %d, %d, %d",
					res.Rows, len(res.Records), res.Duplicates, res.Rejected, res.BadCells, res.Slots(),
					want.Rows, want.Records, want.Duplicates, want.Rejected, want.BadCells, want.Slots)
			}
			if got := Count(res.Records, matchable); got != want.RecordsMatched {
				t.Errorf("records matched: %d, want %d", got, want.RecordsMatched)
			}
			if got := Count(res.Records, cap1); got != want.RecordsMatchedCap1 {
				t.Errorf("records matched with one identifier per subject and kind: %d, want %d", got, want.RecordsMatchedCap1)
			}
			if got := Count(res.Records, held); got != want.RecordsMatchedIgnoringConsent {
				t.Errorf("records matched ignoring consent: %d, want %d", got, want.RecordsMatchedIgnoringConsent)
			}
			ids := CountIdentifiers(res.Records, matchable)
			for _, k := range psi.Kinds {
				if ids[k] != want.IdentifiersMatched.of(k) {
					t.Errorf("%v identifiers matched: %d, want %d", k, ids[k], want.IdentifiersMatched.of(k))
				}
			}
		})
	}
}

// A record matched through two identifiers counts once; a record whose
// identifiers are all outside the sets counts nothing.
func TestCount(t *testing.T) {
	d := func(b byte) [32]byte { return [32]byte{b} }
	sets := Sets{}
	sets.add(psi.KindEmail, d(1))
	sets.add(psi.KindPhone, d(2))
	records := []idfile.Record{
		{Line: 2, IDs: []idfile.RecordID{{Kind: psi.KindEmail, Digest: d(1)}, {Kind: psi.KindPhone, Digest: d(2)}}},
		{Line: 3, IDs: []idfile.RecordID{{Kind: psi.KindPhone, Digest: d(1)}}}, // the email's digest, as a phone
		{Line: 4, IDs: []idfile.RecordID{{Kind: psi.KindID, Digest: d(3)}, {Kind: psi.KindEmail, Digest: d(4)}}},
	}
	if n := Count(records, sets); n != 1 {
		t.Errorf("Count = %d, want 1", n)
	}
	if n := CountIdentifiers(records, sets); n[psi.KindEmail] != 1 || n[psi.KindPhone] != 1 || len(n) != 2 {
		t.Errorf("CountIdentifiers = %v", n)
	}
}
