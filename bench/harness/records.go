package harness

import (
	"fmt"
	mrand "math/rand/v2"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/client"
	"github.com/overlap-psi/overlap/psi/wire"
)

// The record modes (SPEC.md §13) run, at each grid point of the records
// grid, three sessions on the same data: the record session, and the two
// identifier-level sessions an advertiser would otherwise run, one per
// column of its customer file.
const (
	PartRecords = "records" // the record session: mode 5 or 6
	PartEmail   = "email"   // the customers' emails against the platform's emails (mode 1 or 2)
	PartPhone   = "phone"   // the customers' phones against the platform's phones
)

// recordsParts lists the sessions of a record-mode grid point, in the
// order they run.
var recordsParts = []string{PartRecords, PartEmail, PartPhone}

// recordsSlots is s, the slots per record: each customer has an email
// and a phone, as in a two-column customer file.
const recordsSlots = 2

// recordsKinds is the kind set of the record sessions.
var recordsKinds = wire.KindSetOf(psi.KindEmail, psi.KindPhone)

// recordsData is the data of a record-mode grid point (Pair): Client
// customers with an email and a phone each, against Server platform
// people with an email and a phone each. Platform person i has the email
// digestOf(seed, 's', i) (the set of the other modes) and the phone
// digestOf(seed, 'p', i), so that seededSource streams both sets without
// storing them. Of the customers, k = overlapOf(p, fraction) match the
// platform, in four ways taken in turn:
//
//   - through both identifiers, of one platform person;
//   - through their email only (their phone is not the platform's);
//   - through their phone only;
//   - through both identifiers, of two different platform people (an email
//     of one, a phone of another: still one customer).
//
// (the last when the platform has people to spare: it takes two). The
// other customers match through neither. Each platform person is used by
// at most one customer, so no identifier is in two records (SPEC.md
// §13.2) and nothing is dropped as shared. Generation is never timed.
type recordsData struct {
	// records are the customers in the order the client sends them:
	// records[j] holds customer j's email, then its phone.
	records [][]psi.RecordID
	// The truth, counted while the customers are made: customers with an
	// identifier in the platform's set of its kind (SPEC.md §13.1), those
	// matched through both of their identifiers, and the identifier-level
	// overlap of each column.
	matched, both, emailOverlap, phoneOverlap int
}

// generateRecords makes the customers of grid point p (p.Client customers,
// p.Server platform people) with the given fraction matching.
func generateRecords(seed uint64, p Pair, fraction float64) *recordsData {
	k := overlapOf(p, fraction)
	d := &recordsData{records: make([][]psi.RecordID, p.Client)}
	next := 0 // the next unused platform person
	for j := range p.Client {
		email := digestOf(seed, 'c', j) // not the platform's
		phone := digestOf(seed, 'q', j)
		if j < k {
			way := j % 4
			if way == 3 && next+2+(k-j-1) > p.Server {
				// Too few platform people left for two to this customer
				// and one to each matching customer after it.
				way = 0
			}
			switch way {
			case 0:
				email, phone = digestOf(seed, 's', next), digestOf(seed, 'p', next)
				next++
				d.both++
				d.emailOverlap++
				d.phoneOverlap++
			case 1:
				email = digestOf(seed, 's', next)
				next++
				d.emailOverlap++
			case 2:
				phone = digestOf(seed, 'p', next)
				next++
				d.phoneOverlap++
			case 3:
				email, phone = digestOf(seed, 's', next), digestOf(seed, 'p', next+1)
				next += 2
				d.both++
				d.emailOverlap++
				d.phoneOverlap++
			}
			d.matched++
		}
		d.records[j] = []psi.RecordID{{Kind: psi.KindEmail, Digest: email}, {Kind: psi.KindPhone, Digest: phone}}
	}
	rng := mrand.New(mrand.NewPCG(seed, uint64(p.Client)^0x7265636f726473)) // "records"
	rng.Shuffle(len(d.records), func(i, j int) { d.records[i], d.records[j] = d.records[j], d.records[i] })
	return d
}

// column returns each customer's identifier of kind, in record order: the
// list of that column's identifier-level session.
func (d *recordsData) column(kind psi.Kind) [][32]byte {
	out := make([][32]byte, 0, len(d.records))
	for _, rec := range d.records {
		for _, id := range rec {
			if id.Kind == kind {
				out = append(out, id.Digest)
			}
		}
	}
	return out
}

// request returns the session request of part: the record session, as
// overlap match sends a two-column customer file (its kinds and its
// columns as slots), or one column's identifier-level session.
func (d *recordsData) request(part string) (client.MatchRequest, error) {
	switch part {
	case PartRecords:
		return client.MatchRequest{Records: d.records, RecordsConfig: psi.RecordsConfig{Kinds: recordsKinds, Slots: recordsSlots}}, nil
	case PartEmail:
		return client.MatchRequest{Kind: psi.KindEmail, Digests: d.column(psi.KindEmail)}, nil
	case PartPhone:
		return client.MatchRequest{Kind: psi.KindPhone, Digests: d.column(psi.KindPhone)}, nil
	}
	return client.MatchRequest{}, fmt.Errorf("harness: unknown part %q of a record-mode grid point", part)
}

// truth returns the true count of part's session: customers for the
// record session, identifiers for a column's.
func (d *recordsData) truth(part string) int {
	switch part {
	case PartEmail:
		return d.emailOverlap
	case PartPhone:
		return d.phoneOverlap
	}
	return d.matched
}
