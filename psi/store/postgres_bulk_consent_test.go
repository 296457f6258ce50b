package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/overlap-psi/overlap/psi"
)

// consentDump is the consent ledger of a PostgreSQL store as text, one
// event a line in id order, numbered by rank: subject, identifier (kind
// and value, or "-" for a subject-wide event), purpose, action, at,
// source and text version. recorded_at is left out: a chunked append
// records each chunk at its commit, a bulk import every event at its
// merge.
func consentDump(t *testing.T, s Store) string {
	t.Helper()
	r, err := s.(*Postgres).pool.Query(t.Context(), `SELECT format('%s %s %s %s %s %s %s %s', row_number() OVER (ORDER BY e.id), s.subject,
			COALESCE(i.kind || ':' || i.value, '-'), e.purpose, e.granted, e.at, e.source, e.text_version)
		FROM consent_events e JOIN subjects s ON s.id = e.subject_id LEFT JOIN identifiers i ON i.id = e.identifier_id
		ORDER BY e.id`)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(r, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// consentSchema lists the indexes and constraints of consent_events.
func consentSchema(t *testing.T, s Store) string {
	t.Helper()
	r, err := s.(*Postgres).pool.Query(t.Context(), `SELECT indexname || ' ' || regexp_replace(indexdef, ' ON \S+\.', ' ON ') FROM pg_indexes
		WHERE schemaname = current_schema() AND tablename = 'consent_events'
		UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'consent_events'::regclass
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(r, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// consentFile is a consent file in events: genData's grants and
// withdrawals, shuffled, with duplicates of earlier rows (some far from
// their first, in another chunk), events dated a little ahead of now
// (accepted) and far ahead (future_at), and rows the validation or the
// ledger refuses: unknown_purpose, bad_source, unknown_subject,
// unknown_identifier, the latter also for a subject that does not exist.
// want lists the reasons of the refused rows by row number (1-based).
func consentFile(seed uint64, subjects int) (ids []Identifier, events []ConsentEvent, want map[int64]string) {
	ids, base := genData(seed, subjects)
	r := rand.New(rand.NewPCG(seed, 7))
	want = map[int64]string{}
	soon := time.Now().Add(2 * time.Minute)
	nearFuture := 0
	for i, e := range base {
		events = append(events, e)
		switch r.IntN(40) {
		case 0, 1, 2: // a duplicate of an earlier row, refused if that one was
			j := r.IntN(len(events))
			events = append(events, events[j])
			if reason, ok := want[int64(j+1)]; ok {
				want[int64(len(events))] = reason
			}
		case 3:
			if nearFuture < 20 {
				// Within ClockSkew: accepted, and the latest event of its
				// subject. One per subject, so that the effective time of
				// two such events never decides between them.
				f := e
				f.At, f.Subject = soon, ids[i%len(ids)].Subject
				f.Kind, f.Value = 0, ""
				if !slices.ContainsFunc(events, func(x ConsentEvent) bool { return x.Subject == f.Subject && x.At.After(t0.Add(24*time.Hour)) }) {
					events = append(events, f)
					nearFuture++
				}
			}
		case 4:
			f := e
			f.At = time.Now().Add(time.Hour)
			events = append(events, f)
			want[int64(len(events))] = "future_at"
		case 5:
			f := e
			f.Purpose = "marketing"
			events = append(events, f)
			want[int64(len(events))] = "unknown_purpose"
		case 6:
			f := e
			f.Source = ""
			events = append(events, f)
			want[int64(len(events))] = "bad_source"
		case 7:
			events = append(events, wide(fmt.Sprintf("nobody%d", i), true, t0))
			want[int64(len(events))] = "unknown_subject"
		case 8:
			f := scoped(e.Subject, psi.KindEmail, fmt.Sprintf("stranger%d@example.com", i), false, t0)
			events = append(events, f)
			want[int64(len(events))] = "unknown_identifier"
		case 9:
			events = append(events, scoped(fmt.Sprintf("nobody%d", i), psi.KindPhone, "+14155550199", true, t0))
			want[int64(len(events))] = "unknown_identifier"
		}
	}
	return ids, events, want
}

// appendAll appends events with the options given and returns the result
// and the refused rows by row number.
func appendAll(t *testing.T, ctx context.Context, s Store, events []ConsentEvent, opts ImportOptions) (ImportResult, map[int64]string, error) {
	t.Helper()
	rejects := map[int64]string{}
	var order []int64
	opts.OnReject = func(re *RowError) {
		if _, dup := rejects[re.Row]; dup {
			t.Errorf("row %d refused twice", re.Row)
		}
		rejects[re.Row] = re.Reason()
		order = append(order, re.Row)
	}
	res, err := s.AppendConsent(ctx, slices.Values(events), opts)
	return res, rejects, err
}

// TestPostgresBulkConsent: a bulk consent import, into a ledger without
// events and into one that holds some of them already, with and without
// the rebuild of the index and foreign keys, ends in the ledger (events in
// order), schema, result, refusals, snapshots and stats of the chunked
// append of the same rows; run again, it appends nothing.
func TestPostgresBulkConsent(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	ids, events, wantRejects := consentFile(21, 1200)
	third := len(events) / 3

	for _, tc := range []struct {
		name       string
		rebuildMin int64
		preload    bool // the first third appended (chunked) first
		other      bool // the ledger holds twice as many other events (the file moved back in time), analyzed
		phase      string
	}{
		{"rebuild", 0, false, false, "rebuilding the consent ledger's index and foreign keys"},
		{"no rebuild", 1 << 62, false, false, ""},
		{"preloaded rebuild", 0, true, false, "rebuilding the consent ledger's index and foreign keys"},
		{"preloaded no rebuild", 1 << 62, true, false, ""},
		{"foreign keys only", 10, true, true, "checking the consent ledger's foreign keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withRebuildMin(tc.rebuildMin, func() {
				ref, s := openPostgresTest(t), openPostgresTest(t)
				for _, st := range []Store{ref, s} {
					mustImport(t, st, ids...)
					if tc.other {
						for _, back := range []time.Duration{1000 * time.Hour, 2000 * time.Hour} {
							moved := slices.Clone(events)
							for i := range moved {
								moved[i].At = moved[i].At.Add(-back)
							}
							if _, _, err := appendAll(t, t.Context(), st, moved, ImportOptions{}); err != nil {
								t.Fatal(err)
							}
						}
						if _, err := st.(*Postgres).pool.Exec(t.Context(), `ANALYZE consent_events`); err != nil {
							t.Fatal(err)
						}
					}
					if tc.preload {
						if _, _, err := appendAll(t, t.Context(), st, events[:third], ImportOptions{ChunkRows: 200}); err != nil {
							t.Fatal(err)
						}
					}
				}
				want, refRejects, err := appendAll(t, t.Context(), ref, events, ImportOptions{ChunkRows: 300})
				if err != nil {
					t.Fatal(err)
				}
				if !maps.Equal(refRejects, wantRejects) {
					t.Fatalf("chunked append refused %d rows, want %d", len(refRejects), len(wantRejects))
				}
				if want.Read != int64(len(events)) || want.Rejected != int64(len(wantRejects)) || want.Unchanged == 0 || want.Inserted == 0 {
					t.Fatalf("chunked append = %+v: the file has no duplicates or no events", want)
				}
				var phases []string
				got, rejects, err := appendAll(t, t.Context(), s, events, ImportOptions{Bulk: "c", ChunkRows: 700,
					Phase: func(p string) { phases = append(phases, p) }})
				if err != nil || got != want {
					t.Fatalf("bulk import = %+v, %v; want %+v", got, err, want)
				}
				if !maps.Equal(rejects, wantRejects) {
					t.Errorf("bulk import refused %d rows, want %d (or other rows)", len(rejects), len(wantRejects))
				}
				for _, p := range []string{"rebuilding the consent ledger's index and foreign keys", "checking the consent ledger's foreign keys"} {
					if slices.Contains(phases, p) != (p == tc.phase) {
						t.Errorf("phases %q, want %q", phases, tc.phase)
					}
				}
				wantLedger := consentDump(t, ref)
				if got := consentDump(t, s); got != wantLedger {
					t.Errorf("ledger differs from the chunked append's:\n%s", firstDiff(got, wantLedger))
				}
				if got, want := consentSchema(t, s), consentSchema(t, ref); got != want {
					t.Errorf("schema after the merge:\n%s\nwant\n%s", got, want)
				}
				if n := rawInt(t, s, `SELECT count(*) FROM bulk_batches`) + rawInt(t, s, `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'bulk_consent_%'`); n != 0 {
					t.Errorf("%d batches or staging tables left", n)
				}
				compareMatchable(t, ref, s)
				// Again, as a new batch: nothing appended, the same refusals.
				again, rejects, err := appendAll(t, t.Context(), s, events, ImportOptions{Bulk: "c2", ChunkRows: 700})
				if wantAgain := (ImportResult{Read: want.Read, Unchanged: want.Inserted + want.Unchanged, Rejected: want.Rejected}); err != nil || again != wantAgain {
					t.Errorf("second bulk import = %+v, %v; want %+v", again, err, wantAgain)
				}
				if !maps.Equal(rejects, wantRejects) {
					t.Errorf("second bulk import refused %d rows, want %d (or other rows)", len(rejects), len(wantRejects))
				}
				if consentDump(t, s) != wantLedger {
					t.Errorf("ledger changed by the second import")
				}
			})
		})
	}
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var a, b string
		if i < len(g) {
			a = g[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			return fmt.Sprintf("line %d: got %q, want %q (%d and %d lines)", i+1, a, b, len(g), len(w))
		}
	}
	return "no difference"
}

// TestPostgresBulkConsentInterrupted interrupts a bulk consent import
// twice while it stages, then in the middle of its merge (while it
// rebuilds the index and foreign keys), and resumes it: the staged rows
// are never staged twice, the interrupted merge leaves the ledger and its
// schema as they were, and the resumed import ends in the ledger, result
// and refusals of an uninterrupted chunked append. A staging table that
// lost a row behind the batch's back is noticed at the merge: the batch
// is dropped, and the next run starts over.
func TestPostgresBulkConsentInterrupted(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	ids, events, wantRejects := consentFile(22, 1200)
	ref := openPostgresTest(t)
	mustImport(t, ref, ids...)
	want, _, err := appendAll(t, t.Context(), ref, events, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantLedger, wantSchema := consentDump(t, ref), consentSchema(t, ref)

	withRebuildMin(0, func() {
		s := openPostgresTest(t)
		mustImport(t, s, ids...)
		name := bulkConsentPrefix + "c"
		staged := func() (mark, rows, distinct int64) {
			mark = rawInt(t, s, fmt.Sprintf(`SELECT staged FROM bulk_batches WHERE name = '%s'`, name))
			id := rawInt(t, s, fmt.Sprintf(`SELECT id FROM bulk_batches WHERE name = '%s'`, name))
			rows = rawInt(t, s, fmt.Sprintf(`SELECT count(*) FROM bulk_consent_%d`, id))
			distinct = rawInt(t, s, fmt.Sprintf(`SELECT count(DISTINCT seq) FROM bulk_consent_%d`, id))
			return
		}
		var lastMark int64
		for _, stopAt := range []int{700, 1600} {
			ctx, cancel := context.WithCancel(t.Context())
			var phases []string
			rows := cancelling(events, func(i int) {
				if i == stopAt {
					cancel()
				}
			})
			_, err := s.AppendConsent(ctx, rows, ImportOptions{Bulk: "c", ChunkRows: 200, OnReject: func(*RowError) {},
				Phase: func(p string) { phases = append(phases, p) }})
			cancel()
			if err == nil {
				t.Fatalf("import stopped at row %d: no error", stopAt)
			}
			mark, n, distinct := staged()
			if mark < int64(stopAt-400) || mark > int64(stopAt) || distinct != n {
				t.Fatalf("stopped at row %d: mark %d, %d rows staged (%d distinct)", stopAt, mark, n, distinct)
			}
			if lastMark > 0 && !slices.Contains(phases, fmt.Sprintf("resuming: rows up to %d were staged before", lastMark)) {
				t.Errorf("phases %q: no resume from %d", phases, lastMark)
			}
			lastMark = mark
			if n := rawInt(t, s, `SELECT count(*) FROM consent_events`); n != 0 {
				t.Fatalf("%d events in the ledger before the merge", n)
			}
		}
		// Interrupted while the merge rebuilds the index and foreign keys.
		ctx, cancel := context.WithCancel(t.Context())
		_, err := s.AppendConsent(ctx, slices.Values(events), ImportOptions{Bulk: "c", ChunkRows: 200, OnReject: func(*RowError) {},
			Phase: func(p string) {
				if p == "rebuilding the consent ledger's index and foreign keys" {
					cancel()
				}
			}})
		cancel()
		if err == nil {
			t.Fatal("import cancelled in its merge: no error")
		}
		if mark, n, distinct := staged(); mark != int64(len(events)) || distinct != n {
			t.Fatalf("after the interrupted merge: mark %d, %d rows staged (%d distinct); want mark %d", mark, n, distinct, len(events))
		}
		if n := rawInt(t, s, `SELECT count(*) FROM consent_events`); n != 0 || consentSchema(t, s) != wantSchema {
			t.Fatalf("the interrupted merge left %d events or a changed schema", n)
		}
		// Resumed to the end.
		res, rejects, err := appendAll(t, t.Context(), s, events, ImportOptions{Bulk: "c", ChunkRows: 200})
		if err != nil || res != want {
			t.Fatalf("resumed import = %+v, %v; want %+v", res, err, want)
		}
		if !maps.Equal(rejects, wantRejects) {
			t.Errorf("resumed import refused %d rows, want %d (or other rows)", len(rejects), len(wantRejects))
		}
		if got := consentDump(t, s); got != wantLedger {
			t.Errorf("resumed ledger differs from the chunked append's:\n%s", firstDiff(got, wantLedger))
		}
		if consentSchema(t, s) != wantSchema {
			t.Errorf("resumed schema differs")
		}
		compareMatchable(t, ref, s)

		// A staging table that lost a row: the merge refuses it and drops
		// the batch; the run after starts over and appends nothing new.
		s2 := openPostgresTest(t)
		mustImport(t, s2, ids...)
		ctx, cancel = context.WithCancel(t.Context())
		_, err = s2.AppendConsent(ctx, cancelling(events, func(i int) {
			if i == 900 {
				cancel()
			}
		}), ImportOptions{Bulk: "c", ChunkRows: 200, OnReject: func(*RowError) {}})
		cancel()
		if err == nil {
			t.Fatal("no error")
		}
		id := rawInt(t, s2, fmt.Sprintf(`SELECT id FROM bulk_batches WHERE name = '%s'`, name))
		if _, err := s2.(*Postgres).pool.Exec(t.Context(), fmt.Sprintf(`DELETE FROM bulk_consent_%d WHERE seq = (SELECT min(seq) FROM bulk_consent_%d)`, id, id)); err != nil {
			t.Fatal(err)
		}
		_, _, err = appendAll(t, t.Context(), s2, events, ImportOptions{Bulk: "c", ChunkRows: 200})
		if err == nil || !strings.Contains(err.Error(), "the batch was dropped") {
			t.Fatalf("merge of a staging table short of a row: %v", err)
		}
		if n := rawInt(t, s2, `SELECT count(*) FROM bulk_batches`) + rawInt(t, s2, `SELECT count(*) FROM consent_events`); n != 0 {
			t.Fatalf("after the refused merge: %d batches and events", n)
		}
		res, _, err = appendAll(t, t.Context(), s2, events, ImportOptions{Bulk: "c", ChunkRows: 200})
		if err != nil || res != want || consentDump(t, s2) != wantLedger {
			t.Fatalf("import started over = %+v, %v; want %+v and the chunked ledger", res, err, want)
		}
	})
}

// TestPostgresBulkConsentStrict: without OnReject a bulk consent import
// stops at the first refused row, whether the validation refuses it while
// staging or the ledger at the merge, and appends nothing. A batch
// name of the consent kind is refused to an identifier import, and an
// identifier batch and a consent batch of one name are distinct.
func TestPostgresBulkConsentStrict(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	s := openPostgresTest(t)
	mustImport(t, s, ident("u1", psi.KindEmail, "ana@example.com", Signup), ident("u2", psi.KindPhone, "+14155550100", Profile))
	good := []ConsentEvent{wide("u1", true, t0), scoped("u2", psi.KindPhone, "+14155550100", true, t0)}
	for _, tc := range []struct {
		name string
		bad  ConsentEvent
		want error
	}{
		{"validation", func() ConsentEvent { e := wide("u1", false, t0); e.Purpose = "marketing"; return e }(), ErrUnknownPurpose},
		{"future", wide("u1", false, time.Now().Add(time.Hour)), ErrFutureEvent},
		{"ledger", wide("u3", true, t0), ErrUnknownSubject},
		{"ledger identifier", scoped("u1", psi.KindPhone, "+14155550100", true, t0), ErrUnknownIdentifier},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows := append(slices.Clone(good), tc.bad, wide("u2", false, t0.Add(time.Hour)))
			_, err := s.AppendConsent(t.Context(), slices.Values(rows), ImportOptions{Bulk: "strict " + tc.name})
			var re *RowError
			if !errors.As(err, &re) || re.Row != 3 || !errors.Is(err, tc.want) {
				t.Fatalf("strict bulk import = %v; want row 3: %v", err, tc.want)
			}
			if n := rawInt(t, s, `SELECT count(*) FROM consent_events`); n != 0 {
				t.Fatalf("%d events appended", n)
			}
		})
	}
	if _, err := s.ImportIdentifiers(t.Context(), slices.Values([]Identifier{ident("u9", psi.KindEmail, "z@example.com", Signup)}),
		ImportOptions{Bulk: bulkConsentPrefix + "x"}); err == nil || !strings.Contains(err.Error(), "may not begin with") {
		t.Errorf("identifier import under a consent batch name: %v", err)
	}
	// One name, two kinds of batch: each stages its own rows.
	ctx, cancel := context.WithCancel(t.Context())
	_, err := s.ImportIdentifiers(ctx, cancelling([]Identifier{ident("u1", psi.KindEmail, "ana@example.com", Signup), ident("u5", psi.KindEmail, "e@example.com", Signup)},
		func(i int) {
			if i == 1 {
				cancel()
			}
		}), ImportOptions{Bulk: "same", ChunkRows: 1})
	cancel()
	if err == nil {
		t.Fatal("identifier import not stopped")
	}
	res, err := s.AppendConsent(t.Context(), slices.Values(good), ImportOptions{Bulk: "same", OnReject: func(*RowError) {}})
	if err != nil || res != (ImportResult{Read: 2, Inserted: 2}) {
		t.Fatalf("consent batch beside an identifier batch of the same name = %+v, %v", res, err)
	}
	if n := rawInt(t, s, `SELECT count(*) FROM bulk_batches WHERE name = 'same'`); n != 1 {
		t.Errorf("the identifier batch is gone (%d)", n)
	}
}

// TestPostgresBulkConsentIdenticalInLedger: a small batch (whose lookup of
// identical events asks the index about subject, purpose, identifier,
// decision and effective time before it reads the ledger's rows) appends
// exactly the rows the chunked import appends: none identical to an event
// in the ledger, including one dated ahead of its recording (an effective
// time earlier than its at), and every row that differs from an event of
// the ledger in at, source or text version alone, which the index cannot
// tell apart. A scoped row naming a value its subject holds under another
// kind is refused as unknown_identifier.
func TestPostgresBulkConsentIdenticalInLedger(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	soon := time.Now().Add(2 * time.Minute).Truncate(time.Microsecond)
	ledger := []ConsentEvent{
		wide("a", false, t0),
		scoped("a", psi.KindEmail, "a@example.com", false, t0.Add(time.Hour)),
		wide("b", true, soon), // recorded before its at: effective at the recording
	}
	other := func(e ConsentEvent, f func(*ConsentEvent)) ConsentEvent { f(&e); return e }
	batch := []ConsentEvent{
		ledger[0], // identical: unchanged
		other(ledger[0], func(e *ConsentEvent) { e.Source = "support" }),
		other(ledger[0], func(e *ConsentEvent) { e.At = t0.Add(30 * time.Minute) }),
		other(ledger[0], func(e *ConsentEvent) { e.TextVersion = "v2" }),
		ledger[1], // identical: unchanged
		scoped("a", psi.KindPhone, "+14155550100", false, t0.Add(time.Hour)),
		ledger[2], // identical, dated ahead: unchanged
		other(ledger[2], func(e *ConsentEvent) { e.Granted = false }),
		scoped("a", psi.KindPhone, "a@example.com", false, t0), // a's email, named as a phone
	}
	want := ImportResult{Read: 9, Inserted: 5, Unchanged: 3, Rejected: 1}
	var dumps []string
	for _, bulk := range []string{"", "identical"} {
		s := openPostgresTest(t)
		mustImport(t, s, ident("a", psi.KindEmail, "a@example.com", Signup), ident("a", psi.KindPhone, "+14155550100", Profile),
			ident("b", psi.KindEmail, "b@example.com", Signup))
		mustAppend(t, s, ledger...)
		got, rejects, err := appendAll(t, t.Context(), s, batch, ImportOptions{Bulk: bulk})
		if err != nil || got != want {
			t.Fatalf("import (bulk %q) = %+v, %v; want %+v", bulk, got, err, want)
		}
		if !maps.Equal(rejects, map[int64]string{9: "unknown_identifier"}) {
			t.Errorf("import (bulk %q) refused %v, want row 9 unknown_identifier", bulk, rejects)
		}
		dumps = append(dumps, consentDump(t, s))
	}
	if dumps[0] != dumps[1] {
		t.Errorf("bulk ledger differs from the chunked import's:\n%s", firstDiff(dumps[1], dumps[0]))
	}
}
