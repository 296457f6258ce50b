package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"iter"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
)

// largeIdentifiers yields n identifiers, two per subject: an email (signup)
// and a phone (profile, or two_factor for every tenth subject).
func largeIdentifiers(n int) iter.Seq[Identifier] {
	return func(yield func(Identifier) bool) {
		for i := range n {
			subject := "s" + strconv.Itoa(i/2)
			id := Identifier{Subject: subject, Kind: psi.KindEmail, CollectedFor: Signup}
			if i%2 == 0 {
				id.Value = "user" + strconv.Itoa(i/2) + "@example.com"
			} else {
				id.Kind, id.Value, id.CollectedFor = psi.KindPhone, fmt.Sprintf("+1%010d", i/2), Profile
				if (i/2)%10 == 0 {
					id.CollectedFor = TwoFactor
				}
			}
			id.Digest = sha256.Sum256([]byte(id.Value))
			if !yield(id) {
				return
			}
		}
	}
}

// largeConsent yields a subject-wide grant for each of the n/2 subjects of
// largeIdentifiers, and a later withdrawal for every seventh.
func largeConsent(n int) iter.Seq[ConsentEvent] {
	return func(yield func(ConsentEvent) bool) {
		for i := range n / 2 {
			subject := "s" + strconv.Itoa(i)
			if !yield(wide(subject, true, t0)) {
				return
			}
			if i%7 == 0 && !yield(wide(subject, false, t0.Add(time.Hour))) {
				return
			}
		}
	}
}

var benchEngines = []struct {
	name string
	open func(testing.TB) Store
}{
	{"SQLite", openSQLiteTest},
	{"Postgres", openPostgresTest},
}

const benchRows = 100_000

func BenchmarkImport(b *testing.B) {
	for _, eng := range benchEngines {
		b.Run(eng.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				s := eng.open(b)
				b.StartTimer()
				if _, err := s.ImportIdentifiers(b.Context(), largeIdentifiers(benchRows), ImportOptions{}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

func BenchmarkSnapshot(b *testing.B) {
	for _, eng := range benchEngines {
		b.Run(eng.name, func(b *testing.B) {
			s := eng.open(b)
			if _, err := s.ImportIdentifiers(b.Context(), largeIdentifiers(benchRows), ImportOptions{}); err != nil {
				b.Fatal(err)
			}
			if _, err := s.AppendConsent(b.Context(), largeConsent(benchRows), ImportOptions{}); err != nil {
				b.Fatal(err)
			}
			// Uncapped (exact mode), and capped at one digest per subject
			// (private mode, SPEC.md §10.9).
			for _, maxPer := range []int{0, 1} {
				b.Run(fmt.Sprintf("MaxPerSubject=%d", maxPer), func(b *testing.B) {
					b.ReportAllocs()
					var size int64
					for b.Loop() {
						snapshot := s.Snapshot
						if maxPer > 0 {
							snapshot = func(ctx context.Context, kind psi.Kind, fn func([32]byte) error) (SnapshotInfo, error) {
								return s.SnapshotPerSubject(ctx, kind, maxPer, fn)
							}
						}
						info, err := snapshot(b.Context(), psi.KindEmail, func([32]byte) error { return nil })
						if err != nil {
							b.Fatal(err)
						}
						size = info.Size
					}
					b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds(), "digests/s")
				})
			}
		})
	}
}

// TestThroughput measures, once, import, consent and snapshot throughput at
// OVERLAP_THROUGHPUT identifiers (e.g. 1000000) on each engine:
//
//	OVERLAP_THROUGHPUT=1000000 go test -run TestThroughput -v -timeout 30m ./psi/store/
func TestThroughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("OVERLAP_THROUGHPUT"))
	if n <= 0 {
		t.Skip("set OVERLAP_THROUGHPUT=N to measure at N identifiers")
	}
	for _, eng := range benchEngines {
		t.Run(eng.name, func(t *testing.T) {
			s := eng.open(t)
			rate := func(rows int64, d time.Duration) string {
				return fmt.Sprintf("%d rows in %v = %.0f rows/s", rows, d.Round(time.Millisecond), float64(rows)/d.Seconds())
			}
			start := time.Now()
			res, err := s.ImportIdentifiers(t.Context(), largeIdentifiers(n), ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("import:          %s", rate(res.Read, time.Since(start)))

			start = time.Now()
			res, err = s.ImportIdentifiers(t.Context(), largeIdentifiers(n), ImportOptions{})
			if err != nil || res.Inserted != 0 {
				t.Fatal(res, err)
			}
			t.Logf("re-import:       %s", rate(res.Read, time.Since(start)))

			start = time.Now()
			events, err := s.AppendConsent(t.Context(), largeConsent(n), ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("append consent:  %s", rate(events.Read, time.Since(start)))

			for _, k := range []psi.Kind{psi.KindEmail, psi.KindPhone} {
				runtime.GC()
				var ms runtime.MemStats
				var peak uint64
				start = time.Now()
				var i int64
				info, err := s.Snapshot(t.Context(), k, func([32]byte) error {
					if i++; i%(1<<17) == 0 {
						runtime.ReadMemStats(&ms)
						peak = max(peak, ms.HeapInuse)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				d := time.Since(start)
				t.Logf("snapshot %-6v %s (of %d %v identifiers; peak Go heap in use %d MiB)",
					k.String()+":", rate(info.Size, d), n/2, k, peak>>20)
			}
			start = time.Now()
			stats, err := s.Stats(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("stats:           %v (%+v)", time.Since(start).Round(time.Millisecond), stats[:2])

			p, ok := s.(*Postgres)
			if !ok {
				return
			}
			// The refresh of the kept classification after a small change
			// (withdrawals of 1,000 subjects, 2,000 identifiers), from the
			// log, and after the kept tables are lost (a crash), whole.
			start = time.Now()
			withdrawals := func(yield func(ConsentEvent) bool) {
				for i := range 1000 {
					if !yield(wide("s"+strconv.Itoa(i*(n/2/1000)), false, t0.Add(2*time.Hour))) {
						return
					}
				}
			}
			if _, err := s.AppendConsent(t.Context(), withdrawals, ImportOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Logf("append 1,000 withdrawals: %v", time.Since(start).Round(time.Millisecond))
			incremental := p.refreshes.incremental.Load()
			start = time.Now()
			if _, err := s.Stats(t.Context()); err != nil {
				t.Fatal(err)
			}
			if p.refreshes.incremental.Load() != incremental+1 {
				t.Fatal("the refresh after 1,000 withdrawals was not incremental")
			}
			t.Logf("stats after them: %v (refresh from the log of changes)", time.Since(start).Round(time.Millisecond))
			if _, err := p.pool.Exec(t.Context(), `TRUNCATE derived_state`); err != nil {
				t.Fatal(err)
			}
			start = time.Now()
			if _, err := s.Stats(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Logf("stats, whole:     %v (classification of the whole ledger, as after a crash)", time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestLargeStore measures, once, an existing store that OVERLAP_LARGE_STORE
// names (a DSN, e.g. one built with "overlap ids generate" and the import
// commands): the snapshot of each kind (digests/s, peak Go heap), Stats, and
// the size of the database. It writes nothing but the snapshots' rows.
//
//	OVERLAP_LARGE_STORE=postgres://... go test -run TestLargeStore -v -timeout 2h ./psi/store/
func TestLargeStore(t *testing.T) {
	dsn := os.Getenv("OVERLAP_LARGE_STORE")
	if dsn == "" {
		t.Skip("set OVERLAP_LARGE_STORE=DSN to measure an existing store")
	}
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	stats, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats: %v (on PostgreSQL: with a refresh of the kept matchable set and stats if the ledger moved since the last)", time.Since(start).Round(time.Millisecond))
	for _, ks := range stats {
		t.Logf("  %+v", ks)
	}
	start = time.Now()
	if _, err := s.Stats(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("stats again: %v", time.Since(start).Round(time.Millisecond))
	for _, k := range []psi.Kind{psi.KindEmail, psi.KindPhone} {
		runtime.GC()
		var ms runtime.MemStats
		var peak uint64
		var i int64
		start = time.Now()
		info, err := s.Snapshot(t.Context(), k, func([32]byte) error {
			if i++; i%(1<<17) == 0 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		t.Logf("snapshot %v: %d digests in %v = %.0f digests/s (peak Go heap in use %d MiB)",
			k, info.Size, d.Round(time.Millisecond), float64(info.Size)/d.Seconds(), peak>>20)
	}
	if p, ok := s.(*Postgres); ok {
		var size int64
		if err := p.pool.QueryRow(t.Context(), `SELECT pg_database_size(current_database())`).Scan(&size); err != nil {
			t.Fatal(err)
		}
		t.Logf("database size: %.2f GiB", float64(size)/(1<<30))
		rows, err := p.pool.Query(t.Context(), `SELECT relname, pg_total_relation_size(oid) FROM pg_class
			WHERE relkind = 'r' AND relnamespace = current_schema()::regnamespace ORDER BY 2 DESC LIMIT 8`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name, &size); err != nil {
				t.Fatal(err)
			}
			t.Logf("  %s: %d MB with its indexes", name, size/1e6)
		}
	}
}
