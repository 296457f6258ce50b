// Package idfiletest computes overlaps in plain Go, as references for
// tests: the platform's matchable sets from its identifier and consent
// files (SPEC.md §8.5, with the per-subject cap of §10.9), and the
// person-level count of a customer file's records against them (SPEC.md
// §13.1). It is written for clarity, not speed: it holds every row in
// memory and compares events pairwise.
//
// testdata/persons holds a platform, customer files in the formats of
// SPEC.md §13.8 and, in expected.json, the counts worked out by hand; the
// tests of this package check that this reference and [idfile.ReadRecords]
// reproduce them. Protocol tests compare their counts with the same file.
package idfiletest

import (
	"cmp"
	"io"
	"slices"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/ident"
	"github.com/overlap-psi/overlap/psi/idfile"
)

// Sets holds a set of digests per kind.
type Sets map[psi.Kind]map[[32]byte]bool

// Has reports whether the set of kind k holds d.
func (s Sets) Has(k psi.Kind, d [32]byte) bool { return s[k][d] }

// Len returns the size of the set of kind k.
func (s Sets) Len(k psi.Kind) int { return len(s[k]) }

func (s Sets) add(k psi.Kind, d [32]byte) {
	if s[k] == nil {
		s[k] = make(map[[32]byte]bool)
	}
	s[k][d] = true
}

// Platform is a platform's identifiers and consent events, as read from
// its files.
type Platform struct {
	ids    []idfile.Row
	events []idfile.ConsentRow
}

// ReadPlatform reads identifier rows and consent events, CSV in the
// formats of [idfile.ReadRows] and [idfile.ReadConsent]. Any rejected row is
// an error: a reference must not guess.
func ReadPlatform(ids, consent io.Reader) (*Platform, error) {
	p := &Platform{}
	onReject := func(r idfile.Reject) { r.Stop() }
	if _, err := idfile.ReadRows(ids, idfile.FormatCSV, ident.Options{}, func(r idfile.Row) error {
		p.ids = append(p.ids, r)
		return nil
	}, onReject); err != nil {
		return nil, err
	}
	if _, err := idfile.ReadConsent(consent, idfile.FormatCSV, ident.Options{}, func(r idfile.ConsentRow) error {
		p.events = append(p.events, r)
		return nil
	}, onReject); err != nil {
		return nil, err
	}
	return p, nil
}

// Held returns every digest the platform holds, whatever its purpose and
// consent: what a platform that ignored both would match.
func (p *Platform) Held() Sets {
	s := Sets{}
	for _, r := range p.ids {
		s.add(r.Kind, r.Identifier.Digest)
	}
	return s
}

// Matchable returns the matchable set of each kind by the rule of SPEC.md
// §8.5: a digest is matchable when no subject collected it for a security
// purpose and, for at least one identifier row with that digest, the
// latest ad_matching event covering it (its subject's subject-wide events
// and the events scoped to it, ordered by time, then file order) is a
// grant. Events are imported after they happened, so an event's effective
// time is its at.
//
// With perSubject > 0, each subject keeps at most perSubject matchable
// digests of each kind (SPEC.md §10.9): those whose covering grant is
// earliest (time, then file order), a tie under one grant going to the
// identifier listed first.
func (p *Platform) Matchable(perSubject int) Sets {
	security := Sets{}
	for _, r := range p.ids {
		if r.CollectedFor.Security() {
			security.add(r.Kind, r.Identifier.Digest)
		}
	}
	type candidate struct {
		row   int // index in p.ids
		grant int // index in p.events of the covering grant
	}
	bySubjectKind := map[string]map[psi.Kind][]candidate{}
	seen := map[string]bool{}
	for i, r := range p.ids {
		key := r.Subject + "\x00" + r.Kind.String() + "\x00" + string(r.Identifier.Digest[:])
		if seen[key] || security.Has(r.Kind, r.Identifier.Digest) {
			continue
		}
		seen[key] = true
		e := p.covering(r)
		if e < 0 || !p.events[e].Granted {
			continue
		}
		if bySubjectKind[r.Subject] == nil {
			bySubjectKind[r.Subject] = map[psi.Kind][]candidate{}
		}
		bySubjectKind[r.Subject][r.Kind] = append(bySubjectKind[r.Subject][r.Kind], candidate{i, e})
	}
	s := Sets{}
	for _, kinds := range bySubjectKind {
		for k, cs := range kinds {
			slices.SortStableFunc(cs, func(a, b candidate) int {
				if c := p.events[a.grant].At.Compare(p.events[b.grant].At); c != 0 {
					return c
				}
				return cmp.Compare(a.grant, b.grant) // then cs is in file order of the rows
			})
			if perSubject > 0 && len(cs) > perSubject {
				cs = cs[:perSubject]
			}
			for _, c := range cs {
				s.add(k, p.ids[c.row].Identifier.Digest)
			}
		}
	}
	return s
}

// covering returns the index of the latest ad_matching event that covers
// the identifier row r, or -1.
func (p *Platform) covering(r idfile.Row) int {
	best := -1
	var at time.Time
	for i, e := range p.events {
		if e.Subject != r.Subject || e.Purpose != idfile.PurposeAdMatching {
			continue
		}
		if e.Kind != 0 && (e.Kind != r.Kind || e.Identifier.Digest != r.Identifier.Digest) {
			continue
		}
		if best < 0 || !e.At.Before(at) { // a later event, or a tie later in the file
			best, at = i, e.At
		}
	}
	return best
}

// Count returns the number of records with at least one identifier in the
// set of its kind (SPEC.md §13.1).
func Count(records []idfile.Record, sets Sets) int {
	n := 0
	for _, r := range records {
		for _, id := range r.IDs {
			if sets.Has(id.Kind, id.Digest) {
				n++
				break
			}
		}
	}
	return n
}

// CountIdentifiers returns, per kind, the number of the records'
// identifiers that are in the set of their kind: the identifier-level
// overlap of one session per kind. Records hold each identifier once
// (SPEC.md §13.2), so these are distinct identifiers.
func CountIdentifiers(records []idfile.Record, sets Sets) map[psi.Kind]int {
	n := map[psi.Kind]int{}
	for _, r := range records {
		for _, id := range r.IDs {
			if sets.Has(id.Kind, id.Digest) {
				n[id.Kind]++
			}
		}
	}
	return n
}
