package store

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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

// agreesWithLedger checks that the snapshot of every kind and the stats
// equal those computed from the ledger, and returns the generation each
// snapshot recorded.
func agreesWithLedger(t *testing.T, p *Postgres, step string) map[psi.Kind]int64 {
	t.Helper()
	gens := map[psi.Kind]int64{}
	for _, k := range psi.Kinds {
		got, info := snap(t, p, k)
		want, _ := ledgerMatchable(t, p, k)
		if !slices.Equal(got, want) {
			t.Errorf("%s, %v: snapshot of %d digests, ledger %d", step, k, len(got), len(want))
		}
		gens[k] = info.Generation
	}
	got, err := p.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, want := ledgerMatchable(t, p, psi.KindEmail); !slices.Equal(got, want) {
		t.Errorf("%s: stats %+v, ledger %+v", step, got, want)
	}
	return gens
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
		for k, gen := range agreesWithLedger(t, p, step) {
			if kept := rawInt(t, s, sqlDerivedGeneration) == gen; kept != wantKept {
				t.Errorf("%s, %v: kept tables current %t, want %t", step, k, kept, wantKept)
			}
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
	if n := rawInt(t, s, `SELECT count(*) FROM digest_classes WHERE matchable > 0`); n == 0 {
		t.Fatal("nothing matchable: the test proves nothing")
	}
	// A security collection of a matchable digest removes it.
	var victim Identifier
	for _, id := range ids {
		if id.Kind == psi.KindEmail && rawInt(t, s, `SELECT count(*) FROM digest_classes WHERE matchable > 0 AND digest = '\x`+hex.EncodeToString(id.Digest[:])+`'`) == 1 {
			victim = id
			break
		}
	}
	victim.CollectedFor = Recovery
	mustImport(t, s, victim)
	check("security collection", true)
	// A crash empties the unlogged tables.
	for _, tbl := range []string{"derived_state", "digest_classes", "identifier_stats", "derived_changes"} {
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

// derivedDrift counts the (kind, digest) rows on which the kept per-digest
// counts differ from a classification of the whole ledger, and the
// (kind, status) rows on which the kept stats do.
func derivedDrift(t *testing.T, p *Postgres) (digests, stats int64) {
	t.Helper()
	tx, err := p.pool.BeginTx(t.Context(), pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	if _, err := tx.Exec(t.Context(), `CREATE TEMPORARY TABLE derived_classes ON COMMIT DROP AS `+sqlClassify); err != nil {
		t.Fatal(err)
	}
	counts := fmt.Sprintf(sqlClassCounts, "derived_classes")
	if err := tx.QueryRow(t.Context(), `SELECT count(*) FROM (
		(SELECT kind, digest, matchable, withdrawn, no_consent, security FROM digest_classes EXCEPT `+counts+`)
		UNION ALL (`+counts+` EXCEPT SELECT kind, digest, matchable, withdrawn, no_consent, security FROM digest_classes)) AS d`).Scan(&digests); err != nil {
		t.Fatal(err)
	}
	ledger := `SELECT kind, status, count(*) FROM derived_classes GROUP BY kind, status`
	if err := tx.QueryRow(t.Context(), `SELECT count(*) FROM (
		(SELECT kind, status, n FROM identifier_stats WHERE n > 0 EXCEPT `+ledger+`)
		UNION ALL (`+ledger+` EXCEPT SELECT kind, status, n FROM identifier_stats WHERE n > 0)) AS d`).Scan(&stats); err != nil {
		t.Fatal(err)
	}
	return digests, stats
}

// derivedLedger opens a PostgreSQL store for a parallel test (skipping
// without OVERLAP_TEST_POSTGRES) and fills it with genData(seed, subjects),
// whose identifiers it returns.
func derivedLedger(t *testing.T, seed uint64, subjects int) (*Postgres, []Identifier) {
	t.Helper()
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	t.Parallel()
	p := openPostgresTest(t).(*Postgres)
	ids, events := genData(seed, subjects)
	mustImport(t, p, ids...)
	mustAppend(t, p, events...)
	return p, ids
}

// TestPostgresDerivedIncremental: after small changes of every kind the
// ledger has (new identifiers of old and new subjects, subject-wide and
// per-identifier grants and withdrawals, future-dated events, security
// collections of digests other subjects hold), the kept tables are brought
// up to date from the log, not recomputed, and equal what a classification
// of the whole ledger gives, digest by digest; a change the log does not
// describe row by row (an UPDATE of identifiers) and a change of more than
// an eighth of the ledger make the refresh classify the whole ledger.
func TestPostgresDerivedIncremental(t *testing.T) {
	p, ids := derivedLedger(t, 77, 1500)
	s := Store(p)
	check := func(step string, wantFull, wantIncremental int64) {
		t.Helper()
		full, incr := p.refreshes.full.Load(), p.refreshes.incremental.Load()
		agreesWithLedger(t, p, step)
		if d, st := derivedDrift(t, p); d != 0 || st != 0 {
			t.Errorf("%s: kept tables differ from the ledger's classification on %d digests and %d stats rows", step, d, st)
		}
		if f, i := p.refreshes.full.Load()-full, p.refreshes.incremental.Load()-incr; f != wantFull || i != wantIncremental {
			t.Errorf("%s: %d whole and %d incremental refreshes, want %d and %d", step, f, i, wantFull, wantIncremental)
		}
		if n := rawInt(t, s, `SELECT count(*) FROM derived_changes`); n != 0 {
			t.Errorf("%s: %d log rows left after the refresh", step, n)
		}
	}
	check("initial import", 1, 0)

	r := rand.New(rand.NewPCG(77, 1))
	at := func() time.Time { return t0.Add(time.Duration(r.IntN(10)) * time.Hour) }
	for round := range 12 {
		var newIDs []Identifier
		var newEvents []ConsentEvent
		for range 1 + r.IntN(20) {
			old := ids[r.IntN(len(ids))]
			switch r.IntN(6) {
			case 0: // a withdrawal or grant of a whole subject
				newEvents = append(newEvents, wide(old.Subject, r.IntN(2) == 0, at()))
			case 1: // of one identifier
				newEvents = append(newEvents, scoped(old.Subject, old.Kind, old.Value, r.IntN(2) == 0, at()))
			case 2: // dated a little after it is recorded (the store allows 5 min): counts from its recording
				newEvents = append(newEvents, wide(old.Subject, r.IntN(2) == 0, time.Now().Add(4*time.Minute)))
			case 3: // a new subject with a digest others hold, and its grant
				sub := fmt.Sprintf("r%d-%d", round, len(newIDs))
				newIDs = append(newIDs, ident(sub, old.Kind, old.Value, Signup))
				newEvents = append(newEvents, wide(sub, true, at()))
			case 4: // an old subject's new identifier
				newIDs = append(newIDs, ident(old.Subject, psi.KindEmail, fmt.Sprintf("new%d-%d@example.com", round, r.IntN(1000)), Profile))
			case 5: // a security collection of a digest
				old.CollectedFor = TwoFactor
				newIDs = append(newIDs, old)
			}
		}
		mustImport(t, s, newIDs...)
		// Random events may repeat one in the ledger, which is kept once.
		if _, err := s.AppendConsent(t.Context(), slices.Values(newEvents), ImportOptions{}); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("round %d", round), 0, 1)
	}

	// A collection for a purpose other than security moves the generation
	// and logs nothing.
	before := rawInt(t, s, sqlGeneration)
	other := ids[0]
	other.CollectedFor = Imported
	mustImport(t, s, other)
	if rawInt(t, s, sqlGeneration) == before {
		t.Fatal("the import did not move the generation: the step proves nothing")
	}
	check("a collection for imported", 0, 1)

	// A change the log does not describe row by row.
	if err := rawExec(t, s, `UPDATE identifiers SET value = value WHERE id = (SELECT min(id) FROM identifiers)`); err != nil {
		t.Fatal(err)
	}
	check("an UPDATE of identifiers", 1, 0)

	// One statement of more rows than overlap.log_rows_max (a million by
	// default; 10 here) logs "everything".
	tx, err := p.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SET LOCAL overlap.log_rows_max = 10`,
		`INSERT INTO identifiers (subject_id, kind, value, digest)
			SELECT s.id, 3, 'big-' || g, sha256(('big-' || g)::bytea) FROM (SELECT min(id) AS id FROM subjects) AS s, generate_series(1, 11) AS g`,
	} {
		if _, err := tx.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := rawInt(t, s, `SELECT count(*) FROM derived_changes WHERE subject_id IS NULL AND identifier_id IS NULL`); n != 1 {
		t.Errorf("a statement of 11 rows over a limit of 10 logged %d rows meaning everything, want 1", n)
	}
	check("a large insert", 1, 0)

	// More than an eighth of the ledger.
	var many []ConsentEvent
	for _, id := range ids[:len(ids)/4] {
		many = append(many, scoped(id.Subject, id.Kind, id.Value, false, t0.Add(11*time.Hour)))
	}
	slices.SortFunc(many, func(a, b ConsentEvent) int { return cmp.Compare(a.Subject+a.Value, b.Subject+b.Value) })
	many = slices.CompactFunc(many, func(a, b ConsentEvent) bool { return a == b })
	mustAppend(t, s, many...)
	check("a quarter of the ledger withdrawn", 1, 0)
}

// TestPostgresDerivedConcurrentWriters: refreshes that run while other
// transactions append events and import identifiers lose no change: a log
// row committed after a refresh's snapshot stays for the next refresh, so
// once the writers stop, one more refresh leaves the kept tables equal to
// a classification of the whole ledger.
func TestPostgresDerivedConcurrentWriters(t *testing.T) {
	p, ids := derivedLedger(t, 91, 1200)
	s := Store(p)
	if _, err := s.Stats(t.Context()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		r := rand.New(rand.NewPCG(91, 2))
		for i := range 60 {
			id := ids[r.IntN(len(ids))]
			var err error
			if i%3 == 0 {
				_, err = s.ImportIdentifiers(t.Context(), slices.Values([]Identifier{
					ident(fmt.Sprintf("c%d", i), id.Kind, id.Value, Signup),
					ident(id.Subject, psi.KindID, fmt.Sprintf("crm-new-%d", i), Imported),
				}), ImportOptions{})
			} else {
				_, err = s.AppendConsent(t.Context(), slices.Values([]ConsentEvent{
					wide(id.Subject, r.IntN(2) == 0, t0.Add(time.Duration(12+i)*time.Hour)),
				}), ImportOptions{})
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	refreshes := 0
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
			if _, err := s.Stats(t.Context()); err != nil {
				t.Fatal(err)
			}
			refreshes++
		}
	}
	if _, err := s.Stats(t.Context()); err != nil {
		t.Fatal(err)
	}
	if p.refreshes.incremental.Load() < 2 {
		t.Fatalf("%d incremental refreshes while the writers ran: the test proves nothing", p.refreshes.incremental.Load())
	}
	if d, st := derivedDrift(t, p); d != 0 || st != 0 {
		t.Errorf("after %d refreshes beside the writers, the kept tables differ from the ledger's classification on %d digests and %d stats rows", refreshes, d, st)
	}
	agreesWithLedger(t, p, "after the writers")
}
