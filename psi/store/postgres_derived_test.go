package store

import (
	"context"
	"encoding/hex"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
)

// ledgerMatchable computes the matchable set of kind and the stats from the
// ledger itself (sqlMatchable, sqlStats), bypassing the kept tables.
func ledgerMatchable(t *testing.T, p *Postgres, kind psi.Kind) ([][32]byte, []KindStats) {
	t.Helper()
	rows, err := p.pool.Query(t.Context(), sqlMatchable, int64(kind))
	if err != nil {
		t.Fatal(err)
	}
	var out [][32]byte
	for rows.Next() {
		var d []byte
		if err := rows.Scan(&d); err != nil {
			t.Fatal(err)
		}
		out = append(out, [32]byte(d))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	stats, err := p.stats(t.Context(), p.reader, sqlStats)
	if err != nil {
		t.Fatal(err)
	}
	return out, stats
}

// TestPostgresDerivedAgreesWithLedger: snapshots and stats served from the
// kept tables equal those computed from the ledger, as the ledger moves
// (identifiers, grants, withdrawals, security collections), after the
// kept tables are lost (a crash empties unlogged tables), and when they
// are stale and not refreshed (the snapshot then reads the ledger).
func TestPostgresDerivedAgreesWithLedger(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	t.Parallel()
	s := openPostgresTest(t)
	p := s.(*Postgres)
	ids, events := genData(21, 2000)
	check := func(step string, wantKept bool) {
		t.Helper()
		for _, k := range psi.Kinds {
			got, info := snap(t, s, k)
			want, _ := ledgerMatchable(t, p, k)
			if !slices.Equal(got, want) {
				t.Errorf("%s, %v: snapshot of %d digests, ledger %d", step, k, len(got), len(want))
			}
			kept := rawInt(t, s, sqlDerivedGeneration) == info.Generation
			if kept != wantKept {
				t.Errorf("%s, %v: kept tables current %t, want %t", step, k, kept, wantKept)
			}
		}
		got, err := s.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, want := ledgerMatchable(t, p, psi.KindEmail); !slices.Equal(got, want) {
			t.Errorf("%s: stats %+v, ledger %+v", step, got, want)
		}
	}
	check("empty", true)
	mustImport(t, s, ids[:len(ids)/2]...)
	check("half the identifiers", true)
	mustImport(t, s, ids[len(ids)/2:]...)
	mustAppend(t, s, events[:len(events)/2]...)
	check("half the events", true)
	mustAppend(t, s, events[len(events)/2:]...)
	check("all events", true)
	if n := rawInt(t, s, `SELECT count(*) FROM matchable_digests`); n == 0 {
		t.Fatal("nothing matchable: the test proves nothing")
	}
	// A security collection of a matchable digest removes it.
	var victim Identifier
	for _, id := range ids {
		if id.Kind == psi.KindEmail && rawInt(t, s, `SELECT count(*) FROM matchable_digests WHERE digest = '\x`+hex.EncodeToString(id.Digest[:])+`'`) == 1 {
			victim = id
			break
		}
	}
	victim.CollectedFor = Recovery
	mustImport(t, s, victim)
	check("security collection", true)
	// A crash empties the unlogged tables.
	for _, tbl := range []string{"derived_state", "matchable_digests", "identifier_stats"} {
		if err := rawExec(t, s, "TRUNCATE "+tbl); err != nil {
			t.Fatal(err)
		}
	}
	check("after the kept tables were emptied", true)
	// Stale kept tables, not refreshed: the snapshot reads the ledger.
	refresh := p.refresh
	p.refresh = func(context.Context) error { return nil }
	mustAppend(t, s, wide(victim.Subject, false, time.Now().Add(-time.Minute)))
	check("stale", false)
	p.refresh = refresh
	check("refreshed", true)
}
