package psi

import (
	"fmt"
	"testing"

	"github.com/overlap-psi/overlap/psi/wire"
)

// BenchmarkRecordSession compares, in one process over a Pipe, one exact
// record session (n customers with an email and a phone each, against a
// platform of m people with one of each) with the two identifier-level
// sessions it replaces, set encoding included. One op is one whole
// session, or both sessions. Sizes: 10^3 customers, 10^4 platform people.
func BenchmarkRecordSession(b *testing.B) {
	const n, m = 1000, 10000
	emails, phones := benchDigests(n, "ce"), benchDigests(n, "cp")
	var records [][]RecordID
	for i := range n {
		records = append(records, []RecordID{{KindEmail, emails[i]}, {KindPhone, phones[i]}})
	}
	// Half the customers are on the platform, by both identifiers.
	sets := kindSets{KindEmail: append(benchDigests(m-n/2, "se"), emails[:n/2]...), KindPhone: append(benchDigests(m-n/2, "sp"), phones[:n/2]...)}
	kinds := wire.KindSetOf(KindEmail, KindPhone)
	b.Run(fmt.Sprintf("exact-records/%d×2/%d×2", n, m), func(b *testing.B) {
		for b.Loop() {
			res, err := runExactRecords(b, ClientConfig{}, RecordsConfig{Kinds: kinds, Slots: 2}, ServerConfig{}, records, prepareRecords(b, kinds, sets))
			if err != nil || res.Overlap != n/2 {
				b.Fatalf("%d, %v", res.Overlap, err)
			}
		}
	})
	b.Run(fmt.Sprintf("exact-two-sessions/%d×2/%d×2", n, m), func(b *testing.B) {
		for b.Loop() {
			for _, k := range []Kind{KindEmail, KindPhone} {
				list := emails
				if k == KindPhone {
					list = phones
				}
				res, err := run(b, ClientConfig{Kind: k}, ServerConfig{}, list, prepare(b, k, sets[k]), nil)
				if err != nil || res.Overlap != n/2 {
					b.Fatalf("%d, %v", res.Overlap, err)
				}
			}
		}
	})
}
