package idfiletest

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/store"
)

// TestReferenceAgreesWithStore imports testdata/persons into a SQLite
// store and checks that its snapshots, uncapped and capped at one digest
// per subject and kind, are the sets this package's reference computes:
// so counts from the store's snapshots can be compared with expected.json.
func TestReferenceAgreesWithStore(t *testing.T) {
	p, err := ReadPlatform(open(t, "platform_identifiers.csv"), open(t, "platform_consent.csv"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := store.OpenSQLite(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ids []store.Identifier
	for _, r := range p.ids {
		ids = append(ids, store.Identifier{Subject: r.Subject, Kind: r.Kind, Value: r.Identifier.Canonical,
			Digest: r.Identifier.Digest, CollectedFor: r.CollectedFor})
	}
	if _, err := s.ImportIdentifiers(ctx, slices.Values(ids), store.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	var events []store.ConsentEvent
	for _, e := range p.events {
		events = append(events, store.ConsentEvent{Subject: e.Subject, Kind: e.Kind, Value: e.Identifier.Canonical,
			Purpose: e.Purpose, Granted: e.Granted, At: e.At, Source: e.Source, TextVersion: e.TextVersion})
	}
	if _, err := s.AppendConsent(ctx, slices.Values(events), store.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, perSubject := range []int{0, 1} {
		want := p.Matchable(perSubject)
		for _, k := range psi.Kinds {
			got := map[[32]byte]bool{}
			collect := func(d [32]byte) error { got[d] = true; return nil }
			if perSubject == 0 {
				_, err = s.Snapshot(ctx, k, collect)
			} else {
				_, err = s.SnapshotPerSubject(ctx, k, perSubject, collect)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != want.Len(k) {
				t.Errorf("%v, at most %d per subject: the store has %d digests, the reference %d", k, perSubject, len(got), want.Len(k))
			}
			for d := range got {
				if !want.Has(k, d) {
					t.Errorf("%v, at most %d per subject: the store has a digest the reference lacks", k, perSubject)
				}
			}
		}
	}
}
