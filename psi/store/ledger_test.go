package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
)

// runLedgerSuite runs the ordering, refusal and chunked-import rules of the
// package doc against one engine (from runStoreSuite).
func runLedgerSuite(t *testing.T, open func(t *testing.T) Store) {
	t.Run("FutureGrantCannotBeatWithdrawal", func(t *testing.T) {
		s := open(t)
		mustImport(t, s, ident("u1", psi.KindEmail, "ana@example.com", Signup))
		mustAppend(t, s, wide("u1", true, t0))
		wantSnapshot(t, s, psi.KindEmail, "ana@example.com")
		// A grant dated 2099 is refused, whole import or one row.
		future := wide("u1", true, time.Date(2099, 6, 1, 0, 0, 0, 0, time.UTC))
		if _, err := s.AppendConsent(t.Context(), slices.Values([]ConsentEvent{future}), ImportOptions{}); !errors.Is(err, ErrFutureEvent) {
			t.Fatalf("grant at 2099: err = %v, want ErrFutureEvent", err)
		}
		now := time.Now()
		var rejected []string
		res, err := s.AppendConsent(t.Context(), slices.Values([]ConsentEvent{future, wide("u1", false, now)}),
			ImportOptions{OnReject: func(re *RowError) { rejected = append(rejected, fmt.Sprintf("%d %s", re.Row, re.Reason())) }})
		if err != nil || res != (ImportResult{Read: 2, Inserted: 1, Rejected: 1}) || !slices.Equal(rejected, []string{"1 future_at"}) {
			t.Fatalf("future grant and withdrawal: %+v, %v, rejected %v", res, err, rejected)
		}
		wantSnapshot(t, s, psi.KindEmail)
		// A grant within the clock skew, recorded before a withdrawal,
		// loses to it although its at is later: it counts from when it
		// was recorded.
		s2 := open(t)
		mustImport(t, s2, ident("u1", psi.KindEmail, "ana@example.com", Signup))
		mustAppend(t, s2, wide("u1", true, time.Now().Add(ClockSkew-time.Minute)))
		time.Sleep(2 * time.Millisecond) // the withdrawal is recorded, and at, later
		mustAppend(t, s2, wide("u1", false, time.Now()))
		wantSnapshot(t, s2, psi.KindEmail)
		if st := statsFor(t, s2, psi.KindEmail); st.Withdrawn != 1 {
			t.Errorf("stats after the withdrawal: %+v", st)
		}
		// A grant recorded after the withdrawal wins, as it should.
		time.Sleep(2 * time.Millisecond)
		mustAppend(t, s2, wide("u1", true, time.Now()))
		wantSnapshot(t, s2, psi.KindEmail, "ana@example.com")
	})

	t.Run("RefusedRowsWithReasons", func(t *testing.T) {
		s := open(t)
		mustImport(t, s, ident("u1", psi.KindEmail, "ana@example.com", Signup), ident("u2", psi.KindEmail, "bo@example.com", Signup))
		badPurpose := wide("u1", false, t0.Add(time.Hour))
		badPurpose.Purpose = "ad-matching"
		events := []ConsentEvent{
			wide("u1", true, t0),                                                    // 1 ok
			wide("U1", false, t0.Add(time.Hour)),                                    // 2 wrong case: unknown subject
			wide("u9", false, t0.Add(time.Hour)),                                    // 3 unknown subject
			scoped("u1", psi.KindEmail, "bo@example.com", false, t0.Add(time.Hour)), // 4 another subject's identifier
			badPurpose, // 5
			wide("u2", true, time.Now().Add(time.Hour)),                              // 6 future
			{Subject: "u2", Purpose: AdMatching, At: t0, Granted: true, Source: "s"}, // 7 grant without text version
			wide("u2", true, t0), // 8 ok
			wide("u1", true, t0), // 9 identical to row 1: already present
		}
		var got []string
		res, err := s.AppendConsent(t.Context(), slices.Values(events), ImportOptions{ChunkRows: 4,
			OnReject: func(re *RowError) {
				if strings.Contains(re.Error(), "example.com") {
					t.Errorf("row %d: error %q leaks the value", re.Row, re)
				}
				got = append(got, fmt.Sprintf("%d %s", re.Row, re.Reason()))
			}})
		want := []string{"2 unknown_subject", "3 unknown_subject", "4 unknown_identifier", "5 unknown_purpose", "6 future_at", "7 bad_text_version"}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("rejected %v, %v; want %v", got, err, want)
		}
		if want := (ImportResult{Read: 9, Inserted: 2, Unchanged: 1, Rejected: 6}); res != want {
			t.Errorf("AppendConsent = %+v, want %+v", res, want)
		}
		if n := rawInt(t, s, "SELECT count(*) FROM consent_events"); n != 2 {
			t.Errorf("consent_events has %d rows, want 2", n)
		}
		// Without OnReject, the first refused row stops the append and
		// its chunk is rolled back.
		res, err = s.AppendConsent(t.Context(), slices.Values([]ConsentEvent{wide("u2", false, t0.Add(time.Hour)), wide("u9", true, t0)}), ImportOptions{})
		var re *RowError
		if !errors.As(err, &re) || re.Row != 2 || re.Reason() != "unknown_subject" || res != (ImportResult{}) {
			t.Errorf("strict append = %+v, %v; want a RowError for row 2, unknown_subject", res, err)
		}
		if n := rawInt(t, s, "SELECT count(*) FROM consent_events"); n != 2 {
			t.Errorf("consent_events has %d rows after the strict append, want 2", n)
		}
		// Identifiers: invalid rows go to OnReject too.
		var idRejects []string
		bad := ident("u3", psi.KindEmail, "c@example.com", Signup)
		bad.Digest[0] ^= 1
		ires, err := s.ImportIdentifiers(t.Context(), slices.Values([]Identifier{ident("u3", psi.KindEmail, "d@example.com", Signup), bad}),
			ImportOptions{OnReject: func(re *RowError) { idRejects = append(idRejects, fmt.Sprintf("%d %s", re.Row, re.Reason())) }})
		if err != nil || ires != (ImportResult{Read: 2, Inserted: 1, Rejected: 1}) || !slices.Equal(idRejects, []string{"2 bad_digest"}) {
			t.Errorf("ImportIdentifiers = %+v, %v, rejected %v", ires, err, idRejects)
		}
	})

	t.Run("IdenticalEventsOnce", func(t *testing.T) {
		s := open(t)
		mustImport(t, s, ident("u1", psi.KindEmail, "ana@example.com", Signup))
		e := scoped("u1", psi.KindEmail, "ana@example.com", true, t0)
		other := e
		other.Source = "app" // differs in one field: a new event
		res, err := s.AppendConsent(t.Context(), slices.Values([]ConsentEvent{e, e, other, wide("u1", false, t0)}), ImportOptions{})
		if want := (ImportResult{Read: 4, Inserted: 3, Unchanged: 1}); err != nil || res != want {
			t.Errorf("AppendConsent = %+v, %v; want %+v", res, err, want)
		}
		// The tie at t0 goes to the last recorded: the withdrawal.
		wantSnapshot(t, s, psi.KindEmail)
		// Appending e again records nothing, so it does not move ahead of
		// the withdrawal.
		res, err = s.AppendConsent(t.Context(), slices.Values([]ConsentEvent{e}), ImportOptions{})
		if want := (ImportResult{Read: 1, Unchanged: 1}); err != nil || res != want {
			t.Errorf("AppendConsent again = %+v, %v; want %+v", res, err, want)
		}
		wantSnapshot(t, s, psi.KindEmail)
	})

	t.Run("LargeChunkDuplicatesRefusalsAndRerun", func(t *testing.T) {
		// One chunk of the engine's default size holding duplicates and
		// many refused rows: the refusals come in row order, the counts
		// add up, and a rolled-back chunk leaves nothing behind for the
		// next import on the same store (PostgreSQL's staging tables).
		s := open(t)
		var ids []Identifier
		for i := range 1000 {
			id := ident(fmt.Sprintf("u%d", i), psi.KindEmail, fmt.Sprintf("user%d@example.com", i), Signup)
			ids = append(ids, id, id) // each row twice
		}
		bad := ids[10]
		bad.Digest[0] ^= 1
		ids = append(ids, bad)
		var idRejects []int64
		res, err := s.ImportIdentifiers(t.Context(), slices.Values(ids), ImportOptions{OnReject: func(re *RowError) { idRejects = append(idRejects, re.Row) }})
		if want := (ImportResult{Read: 2001, Inserted: 1000, Unchanged: 1000, Rejected: 1}); err != nil || res != want || !slices.Equal(idRejects, []int64{2001}) {
			t.Fatalf("ImportIdentifiers = %+v, %v, rejected rows %v; want %+v, [2001]", res, err, idRejects, want)
		}
		var events []ConsentEvent
		var wantRejects []string
		for i := range 3000 {
			switch i % 3 {
			case 0:
				events = append(events, wide(fmt.Sprintf("u%d", i%1000), true, t0.Add(time.Duration(i)*time.Second)))
			case 1:
				events = append(events, wide(fmt.Sprintf("x%d", i), true, t0))
				wantRejects = append(wantRejects, fmt.Sprintf("%d unknown_subject", i+1))
			case 2:
				events = append(events, scoped(fmt.Sprintf("u%d", i%1000), psi.KindEmail, "nobody@example.com", false, t0))
				wantRejects = append(wantRejects, fmt.Sprintf("%d unknown_identifier", i+1))
			}
		}
		events = append(events, events[0]) // identical to row 1
		appendAll := func() (ImportResult, []string, error) {
			var got []string
			res, err := s.AppendConsent(t.Context(), slices.Values(events), ImportOptions{OnReject: func(re *RowError) {
				got = append(got, fmt.Sprintf("%d %s", re.Row, re.Reason()))
			}})
			return res, got, err
		}
		res, got, err := appendAll()
		if want := (ImportResult{Read: 3001, Inserted: 1000, Unchanged: 1, Rejected: 2000}); err != nil || res != want || !slices.Equal(got, wantRejects) {
			t.Fatalf("AppendConsent = %+v, %v, %d rejects (first %v); want %+v", res, err, len(got), got[:min(3, len(got))], want)
		}
		res, got, err = appendAll()
		if want := (ImportResult{Read: 3001, Unchanged: 1001, Rejected: 2000}); err != nil || res != want || !slices.Equal(got, wantRejects) {
			t.Fatalf("AppendConsent again = %+v, %v; want %+v", res, err, want)
		}
		// A strict append refused in the database, after its rows were
		// staged, rolls back; the next append records its own row only.
		_, err = s.AppendConsent(t.Context(), slices.Values([]ConsentEvent{wide("u1", false, t0.Add(time.Hour)), wide("x", true, t0)}), ImportOptions{})
		var re *RowError
		if !errors.As(err, &re) || re.Row != 2 {
			t.Fatalf("strict append = %v; want a RowError for row 2", err)
		}
		res, err = s.AppendConsent(t.Context(), slices.Values([]ConsentEvent{wide("u2", false, t0.Add(time.Hour))}), ImportOptions{})
		if want := (ImportResult{Read: 1, Inserted: 1}); err != nil || res != want {
			t.Fatalf("append after a rolled-back one = %+v, %v; want %+v", res, err, want)
		}
		if n := rawInt(t, s, "SELECT count(*) FROM consent_events"); n != 1001 {
			t.Errorf("consent_events has %d rows, want 1001", n)
		}
		res, err = s.ImportIdentifiers(t.Context(), slices.Values([]Identifier{ident("u1", psi.KindEmail, "user1@example.com", Profile)}), ImportOptions{})
		if want := (ImportResult{Read: 1, Inserted: 1}); err != nil || res != want {
			t.Fatalf("a new purpose of a known identifier = %+v, %v; want %+v", res, err, want)
		}
	})

	t.Run("InterruptedChunkedImportRerun", func(t *testing.T) {
		ids, events := genData(3, 400)
		// One uninterrupted run.
		whole := open(t)
		mustImport(t, whole, ids...)
		mustAppend(t, whole, events...)
		// A run cancelled half way through each call, then run again.
		cut := open(t)
		half := func(n int) (context.Context, func(int)) {
			ctx, cancel := context.WithCancel(t.Context())
			return ctx, func(i int) {
				if i == n/2 {
					cancel()
				}
			}
		}
		ctx, tick := half(len(ids))
		res, err := cut.ImportIdentifiers(ctx, cancelling(ids, tick), ImportOptions{ChunkRows: 37})
		if !errors.Is(err, context.Canceled) || res.Read == 0 || res.Read >= int64(len(ids)) || res.Read%37 != 0 {
			t.Fatalf("cancelled import = %+v, %v; want some chunks committed", res, err)
		}
		committed := res.Inserted
		res, err = cut.ImportIdentifiers(t.Context(), slices.Values(ids), ImportOptions{ChunkRows: 37})
		if err != nil || res.Unchanged < committed || res.Read != int64(len(ids)) {
			t.Fatalf("re-run import = %+v, %v", res, err)
		}
		ctx, tick = half(len(events))
		ares, err := cut.AppendConsent(ctx, cancelling(events, tick), ImportOptions{ChunkRows: 23})
		if !errors.Is(err, context.Canceled) || ares.Inserted == 0 || ares.Read >= int64(len(events)) {
			t.Fatalf("cancelled append = %+v, %v; want some chunks committed", ares, err)
		}
		rerun, err := cut.AppendConsent(t.Context(), slices.Values(events), ImportOptions{ChunkRows: 23})
		if err != nil || rerun.Unchanged != ares.Inserted || rerun.Inserted+rerun.Unchanged != int64(len(events)) {
			t.Fatalf("re-run append = %+v, %v; want %d unchanged", rerun, err, ares.Inserted)
		}
		// The same ledger.
		for _, tbl := range []string{"subjects", "identifiers", "identifier_collections", "consent_events"} {
			q := "SELECT count(*) FROM " + tbl
			if a, b := rawInt(t, whole, q), rawInt(t, cut, q); a != b {
				t.Errorf("%s: %d rows after one run, %d after an interrupted run and a re-run", tbl, a, b)
			}
		}
		for _, k := range psi.Kinds {
			a, ai := snap(t, whole, k)
			_, bi := snap(t, cut, k)
			if ai.Digest != bi.Digest || len(a) == 0 {
				t.Errorf("%v: snapshot digests differ (%d digests in one run)", k, len(a))
			}
		}
		sa, _ := whole.Stats(t.Context())
		sb, _ := cut.Stats(t.Context())
		if !slices.Equal(sa, sb) {
			t.Errorf("Stats differ: %+v, %+v", sa, sb)
		}
		// Running it all a third time changes nothing.
		before := tableCounts(t, cut)
		again, err := cut.AppendConsent(t.Context(), slices.Values(events), ImportOptions{})
		if err != nil || again.Unchanged != int64(len(events)) {
			t.Errorf("third append = %+v, %v", again, err)
		}
		before["snapshots"] = rawInt(t, cut, "SELECT count(*) FROM snapshots")
		if after := tableCounts(t, cut); !mapsEqual(before, after) {
			t.Errorf("third append changed the tables: %v -> %v", before, after)
		}
	})
}

// cancelling yields rows, calling tick(i) before row i.
func cancelling[T any](rows []T, tick func(int)) iter.Seq[T] {
	return func(yield func(T) bool) {
		for i, r := range rows {
			tick(i)
			if !yield(r) {
				return
			}
		}
	}
}

// TestUpgradeClampsFutureEvents builds a ledger of schema 4 holding a grant
// dated 2099 but recorded before a withdrawal, which the old rule let win,
// and opens it with this binary: migration 5 orders it by when it was
// recorded, so the withdrawal wins, and no row changed.
func TestUpgradeClampsFutureEvents(t *testing.T) {
	t.Parallel()
	type engine struct {
		name string
		open func(t *testing.T, upTo int64) Store
		// insert is SQL adding a subject-wide grant for u1 at 2099,
		// recorded at t0 + 1h.
		insert string
	}
	engines := []engine{{
		name: "SQLite",
		open: reopenSQLite(),
		insert: fmt.Sprintf(`INSERT INTO consent_events (subject_id, identifier_id, purpose, granted, at, source, text_version, recorded_at)
			SELECT id, NULL, 'ad_matching', 1, %d, 'old', 'v1', %d FROM subjects WHERE subject = 'u1'`,
			time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro(), t0.Add(time.Hour).UnixMicro()),
	}}
	if os.Getenv(postgresEnv) != "" {
		engines = append(engines, engine{
			name: "PostgreSQL",
			open: reopenPostgres(),
			insert: `INSERT INTO consent_events (subject_id, identifier_id, purpose, granted, at, source, text_version, recorded_at)
			SELECT id, NULL, 'ad_matching', true, '2099-01-01T00:00:00Z', 'old', 'v1', '` + t0.Add(time.Hour).Format(time.RFC3339) + `' FROM subjects WHERE subject = 'u1'`,
		})
	}
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			old := eng.open(t, 4)
			mustImport(t, old, ident("u1", psi.KindEmail, "ana@example.com", Signup))
			// Under schema 4: grant, withdrawal now, and the 2099 grant
			// recorded at t0+1h, before the withdrawal.
			mustAppend(t, old, wide("u1", true, t0), wide("u1", false, time.Now().Add(-time.Minute)))
			if err := rawExec(t, old, eng.insert); err != nil {
				t.Fatal(err)
			}
			gen, err := old.Generation(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			// The old rule, by at alone, saw the 2099 grant as the latest.
			if n := rawInt(t, old, `SELECT count(*) FROM consent_events e WHERE e.granted = TRUE AND e.id =
				(SELECT f.id FROM consent_events f ORDER BY f.at DESC, f.id DESC LIMIT 1)`); n != 1 {
				t.Fatalf("schema 4: the latest event by at is not the 2099 grant")
			}
			old.Close()

			s := eng.open(t, latestMigration())
			defer s.Close()
			if n := rawInt(t, s, "SELECT count(*) FROM consent_events"); n != 3 {
				t.Errorf("consent_events has %d rows after the upgrade, want 3", n)
			}
			wantSnapshot(t, s, psi.KindEmail)
			if st := statsFor(t, s, psi.KindEmail); st.Withdrawn != 1 {
				t.Errorf("stats after the upgrade: %+v, want the identifier withdrawn", st)
			}
			if g, err := s.Generation(t.Context()); err != nil || g <= gen {
				t.Errorf("generation %d before the upgrade, %d, %v after; want it moved on", gen, g, err)
			}
		})
	}
}

// TestSQLiteFileModes: the database, its -wal and -shm files and a
// directory the store creates are private to the owner whatever the umask;
// an existing database readable by others is narrowed, with a warning.
func TestSQLiteFileModes(t *testing.T) {
	old := syscall.Umask(0o022) // not parallel: the umask is the process's
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "new")
	path := filepath.Join(dir, "ledger.db")
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	mustImport(t, s, ident("u1", psi.KindEmail, "ana@example.com", Signup))
	mode := func(p string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	if m := mode(dir); m != 0o700 {
		t.Errorf("directory mode %04o, want 0700", m)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if m := mode(p); m != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", filepath.Base(p), m)
		}
	}
	if w := s.Warnings(); len(w) != 0 {
		t.Errorf("warnings on a new database: %q", w)
	}
	s.Close()

	// Someone widened the files: the next open narrows them and says so.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	s, err = OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := s.Warnings()
	if len(w) == 0 || !strings.Contains(w[0], "ledger.db had mode 0644") || !strings.Contains(w[0], "set to 0600") {
		t.Errorf("warnings = %q, want one for ledger.db", w)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if m := mode(p); m != 0o600 {
			t.Errorf("%s after reopening: mode %04o, want 0600", filepath.Base(p), m)
		}
	}
}

// TestSQLiteImportConcurrentWithSessions imports OVERLAP_CONCURRENT_ROWS
// (default 200,000) identifiers and then as many consent events in chunks
// while other goroutines reserve budget and record sessions in a loop: none
// of those fails, since no chunk holds the writer near the busy timeout. It
// logs the longest a budget reservation waited.
func TestSQLiteImportConcurrentWithSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 200,000 rows")
	}
	t.Parallel()
	n, chunk := 200_000, 0
	if v := os.Getenv("OVERLAP_CONCURRENT_ROWS"); v != "" {
		fmt.Sscan(v, &n)
	}
	if v := os.Getenv("OVERLAP_CONCURRENT_CHUNK"); v != "" {
		fmt.Sscan(v, &chunk) // e.g. 1000000: one transaction, as before chunking
	}
	// The longest chunk: the time between two Progress calls, each after a
	// commit, bounds how long a chunk held the writer.
	var longestChunk time.Duration
	last := time.Now()
	opts := ImportOptions{ChunkRows: chunk, Progress: func(ImportResult) {
		longestChunk = max(longestChunk, time.Since(last))
		last = time.Now()
	}}
	s := openSQLiteTest(t)
	a := mustAdvertiser(t, s, "acme")
	ctx := t.Context()
	done := make(chan struct{})
	var (
		wg       sync.WaitGroup
		sessions atomic.Int64
		longest  atomic.Int64 // ns
		failures atomic.Int64
	)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%06d", w, i)
				start := time.Now()
				_, err := s.ReserveBudget(ctx, BudgetRequest{Advertiser: a.ID, Session: id, Identifiers: 1, Limit: 1 << 40, Window: time.Hour, At: time.Now()})
				if d := time.Since(start); d > time.Duration(longest.Load()) {
					longest.Store(int64(d))
				}
				if err == nil {
					err = s.RecordSession(ctx, SessionRecord{ID: id, Advertiser: a.ID, Kind: psi.KindEmail, Mode: "exact",
						ListSize: 1, BudgetSpent: 1, Result: "ok", StartedAt: start, EndedAt: time.Now()})
				}
				if err != nil {
					failures.Add(1)
					t.Errorf("session %s: %v", id, err)
					return
				}
				sessions.Add(1)
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	start := time.Now()
	last = start
	res, err := s.ImportIdentifiers(ctx, largeIdentifiers(n), opts)
	if err != nil {
		t.Fatal(err)
	}
	importTime := time.Since(start)
	last = time.Now()
	ares, err := s.AppendConsent(ctx, largeConsent(n), opts)
	if err != nil {
		t.Fatal(err)
	}
	close(done)
	wg.Wait()
	t.Logf("imported %d identifiers in %v and %d consent events in %v, chunks of %d rows, the longest %v; %d sessions meanwhile, none failed: %t; longest budget reservation %v",
		res.Inserted, importTime.Round(time.Millisecond), ares.Inserted, (time.Since(start) - importTime).Round(time.Millisecond),
		opts.chunkRows(), longestChunk.Round(time.Millisecond),
		sessions.Load(), failures.Load() == 0, time.Duration(longest.Load()).Round(time.Millisecond))
	if sessions.Load() == 0 {
		t.Error("no session ran during the import")
	}
}

// TestDefaultChunkRows checks that a PostgreSQL import commits every
// DefaultPostgresChunkRows rows when ChunkRows is 0, and SQLite's every
// DefaultChunkRows.
func TestDefaultChunkRows(t *testing.T) {
	for _, eng := range benchEngines {
		t.Run(eng.name, func(t *testing.T) {
			s := eng.open(t)
			chunk := int64(DefaultChunkRows)
			if _, ok := s.(*Postgres); ok {
				chunk = DefaultPostgresChunkRows
			}
			rows := func(yield func(Identifier) bool) {
				for i := range chunk + 1 {
					v := "crm-" + strconv.FormatInt(i, 10)
					if !yield(Identifier{Subject: "u1", Kind: psi.KindID, Value: v, Digest: sha256.Sum256([]byte(v)), CollectedFor: Imported}) {
						return
					}
				}
			}
			var commits []int64
			res, err := s.ImportIdentifiers(t.Context(), rows, ImportOptions{Progress: func(r ImportResult) { commits = append(commits, r.Read) }})
			if err != nil || res.Inserted != chunk+1 || !slices.Equal(commits, []int64{chunk, chunk + 1}) {
				t.Errorf("import of %d rows = %+v, %v, committed at %v; want commits at %d and %d", chunk+1, res, err, commits, chunk, chunk+1)
			}
		})
	}
}
