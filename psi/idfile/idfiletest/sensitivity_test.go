package idfiletest

import (
	mrand "math/rand/v2"
	"testing"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/idfile"
)

// subject is a platform subject's matchable identifiers.
type subject []idfile.RecordID

// without returns the union of the subjects' identifiers, subject skip
// excluded (-1: none).
func without(subjects []subject, skip int) Sets {
	s := Sets{}
	for i, u := range subjects {
		if i != skip {
			for _, id := range u {
				s.add(id.Kind, id.Digest)
			}
		}
	}
	return s
}

// maxChange returns the largest change of the person-level count when one
// subject is removed: the sensitivity of the count on this input.
func maxChange(records []idfile.Record, subjects []subject) int {
	c := Count(records, without(subjects, -1))
	worst := 0
	for i := range subjects {
		worst = max(worst, abs(c-Count(records, without(subjects, i))))
	}
	return worst
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// TestPersonSensitivity checks the bound of SPEC.md §13.7 on the plain
// count: when each identifier is in at most one record (§13.2) and each
// subject holds at most Δ_K identifiers of kind K, shared with no other
// subject, removing a subject changes the count of records by at most
// Σ_K Δ_K, whatever the records' layout; a layout with each of a
// subject's identifiers in its own record reaches the bound, so no smaller
// sensitivity (max_K Δ_K, say) is correct; and without §13.2 an
// identifier repeated in m records exceeds it.
func TestPersonSensitivity(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(13, 7))
	var counter uint32
	fresh := func(k psi.Kind) idfile.RecordID {
		counter++
		id := idfile.RecordID{Kind: k}
		id.Digest[0], id.Digest[1], id.Digest[2], id.Digest[3] = byte(counter>>24), byte(counter>>16), byte(counter>>8), byte(counter)
		return id
	}
	kinds := []psi.Kind{psi.KindEmail, psi.KindPhone, psi.KindID}
	for trial := range 300 {
		// Caps per kind, and a platform of subjects holding up to the cap.
		delta := map[psi.Kind]int{}
		bound := 0
		for _, k := range kinds[:1+rng.IntN(3)] {
			delta[k] = 1 + rng.IntN(3)
			bound += delta[k]
		}
		var subjects []subject
		var pool []idfile.RecordID // identifiers the advertiser may hold
		for range 4 + rng.IntN(12) {
			var u subject
			for k, d := range delta {
				for range rng.IntN(d + 1) {
					u = append(u, fresh(k))
				}
			}
			subjects = append(subjects, u)
			for _, id := range u {
				if rng.IntN(3) > 0 {
					pool = append(pool, id)
				}
			}
		}
		for range rng.IntN(10) {
			pool = append(pool, fresh(kinds[rng.IntN(3)])) // not on the platform
		}
		// Records: the pool cut into groups of 1 to s, each identifier in
		// one record.
		rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		s := 1 + rng.IntN(4)
		var records []idfile.Record
		for i := 0; i < len(pool); {
			n := min(1+rng.IntN(s), len(pool)-i)
			records = append(records, idfile.Record{Line: len(records) + 2, IDs: pool[i : i+n]})
			i += n
		}
		if got := maxChange(records, subjects); got > bound {
			t.Fatalf("trial %d: removing a subject changes the count by %d, more than Σ Δ_K = %d", trial, got, bound)
		}

		// The adversarial layout: a subject holding Δ_K of each kind, each
		// identifier in a record of its own, reaches the bound.
		var target subject
		for k, d := range delta {
			for range d {
				target = append(target, fresh(k))
			}
		}
		adversarial := []idfile.Record(nil)
		for _, id := range target {
			adversarial = append(adversarial, idfile.Record{IDs: []idfile.RecordID{id}})
		}
		if got := maxChange(adversarial, append(subjects, target)); got != bound {
			t.Fatalf("trial %d: the adversarial layout changes the count by %d, want Σ Δ_K = %d", trial, got, bound)
		}
		// The same identifiers in one record count once.
		one := []idfile.Record{{IDs: target}}
		if got := maxChange(one, append(subjects, target)); got != 1 {
			t.Fatalf("trial %d: one record of a subject's identifiers changes the count by %d, want 1", trial, got)
		}
		// Without §13.2: one identifier repeated in bound+1 records.
		var repeated []idfile.Record
		for range bound + 1 {
			repeated = append(repeated, idfile.Record{IDs: target[:1]})
		}
		if got := maxChange(repeated, append(subjects, target)); got != bound+1 {
			t.Fatalf("trial %d: an identifier in %d records changes the count by %d", trial, bound+1, got)
		}
	}
}
