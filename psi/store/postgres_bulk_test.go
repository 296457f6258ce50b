package store

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/overlap-psi/overlap/psi"
)

// ledgerDump is the whole identifier ledger of a PostgreSQL store as text:
// identifiers with the rank of their ids, subjects and digests in id order, then the
// collections; and its indexes and constraints by name and definition.
func ledgerDump(t *testing.T, s Store) (rows, schema string) {
	t.Helper()
	p := s.(*Postgres)
	text := func(q string) string {
		r, err := p.pool.Query(t.Context(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		lines, err := pgx.CollectRows(r, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return strings.Join(lines, "\n")
	}
	// Identifiers by rank of id: the chunked import's ON CONFLICT consumes
	// identity values for the rows it skips, the bulk import does not, so
	// the ids agree in order, not in value.
	rows = text(`SELECT format('%s %s %s %s %s', row_number() OVER (ORDER BY i.id), s.subject, i.kind, i.value, encode(i.digest, 'hex'))
		FROM identifiers i JOIN subjects s ON s.id = i.subject_id ORDER BY i.id`) + "\n" +
		text(`SELECT format('%s %s', r.n, c.collected_for) FROM identifier_collections c
		JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM identifiers) r ON r.id = c.identifier_id ORDER BY r.n, c.collected_for`)
	schema = text(`SELECT indexname || ' ' || regexp_replace(indexdef, ' ON \S+\.', ' ON ') FROM pg_indexes
		WHERE schemaname = current_schema() AND tablename IN ('subjects', 'identifiers', 'identifier_collections') ORDER BY 1`) + "\n" +
		text(`SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conrelid IN ('subjects'::regclass, 'identifiers'::regclass, 'identifier_collections'::regclass) ORDER BY 1`)
	return rows, schema
}

// withRebuildMin runs f with bulkRebuildMin set to n. The tests that call
// it do not run in parallel, so no other test sees the change.
func withRebuildMin(n int64, f func()) {
	old := bulkRebuildMin
	bulkRebuildMin = n
	defer func() { bulkRebuildMin = old }()
	f()
}

// TestPostgresBulk: a bulk import, with and without the index rebuild,
// into an empty store and into one that holds part of the rows, ends in
// the ledger (ids included), schema, counts, snapshots and stats of the
// chunked import of the same rows; run again, it changes nothing.
func TestPostgresBulk(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	ids, events := genData(11, 1500)
	bad := ids[7]
	bad.Digest[0] ^= 1 // refused by validation, reported in row order
	ids = slices.Insert(ids, 20, bad)
	half := len(ids) / 2
	plainRun := func(s Store, rows []Identifier) (ImportResult, []int64) {
		var rejects []int64
		res, err := s.ImportIdentifiers(t.Context(), slices.Values(rows), ImportOptions{OnReject: func(re *RowError) { rejects = append(rejects, re.Row) }})
		if err != nil {
			t.Fatal(err)
		}
		return res, rejects
	}
	bulkRun := func(s Store, rows []Identifier, name string) (ImportResult, []int64) {
		var rejects []int64
		res, err := s.ImportIdentifiers(t.Context(), slices.Values(rows), ImportOptions{Bulk: name, ChunkRows: 700,
			OnReject: func(re *RowError) { rejects = append(rejects, re.Row) }})
		if err != nil {
			t.Fatal(err)
		}
		return res, rejects
	}
	ref := openPostgresTest(t)
	wantAll, wantRejects := plainRun(ref, ids)
	wantRows, wantSchema := ledgerDump(t, ref)
	mustAppend(t, ref, events...)

	for _, tc := range []struct {
		name       string
		rebuildMin int64
		preload    bool // the first half imported (chunked) before the bulk import of all rows
		small      bool // all but the last 2% imported (chunked), then those in bulk: a batch under a twentieth of the ledger
	}{
		{"rebuild", 0, false, false},
		{"no rebuild", 1 << 62, false, false},
		{"preloaded rebuild", 0, true, false},
		{"preloaded no rebuild", 1 << 62, true, false},
		{"small batch", 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withRebuildMin(tc.rebuildMin, func() {
				s := openPostgresTest(t)
				want, file := wantAll, ids
				if tc.preload {
					pre, _ := plainRun(s, ids[:half])
					want.Inserted, want.Unchanged = wantAll.Inserted-pre.Inserted, wantAll.Unchanged+pre.Inserted
				}
				if tc.small {
					from := len(ids) - len(ids)/50
					plainRun(s, ids[:from])
					if _, err := s.(*Postgres).pool.Exec(t.Context(), `ANALYZE identifiers`); err != nil {
						t.Fatal(err)
					}
					file = ids[from:]
					other := openPostgresTest(t)
					plainRun(other, ids[:from])
					want, _ = plainRun(other, file)
				}
				var phases []string
				res, err := s.ImportIdentifiers(t.Context(), slices.Values(file), ImportOptions{Bulk: "b", ChunkRows: 700,
					OnReject: func(*RowError) {}, Phase: func(p string) { phases = append(phases, p) }})
				if err != nil || res != want {
					t.Fatalf("bulk import = %+v, %v; want %+v", res, err, want)
				}
				if rebuilt := slices.Contains(phases, "rebuilding the ledger's indexes"); rebuilt != (tc.rebuildMin == 0 && !tc.small) {
					t.Errorf("phases %q: rebuilt %t", phases, rebuilt)
				}
				rows, schema := ledgerDump(t, s)
				if rows != wantRows {
					t.Errorf("ledger differs from the chunked import's")
				}
				if schema != wantSchema {
					t.Errorf("schema after the merge:\n%s\nwant\n%s", schema, wantSchema)
				}
				if n := rawInt(t, s, `SELECT count(*) FROM bulk_batches`) + rawInt(t, s, `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'bulk_identifiers_%'`); n != 0 {
					t.Errorf("%d batches or staging tables left", n)
				}
				// Again: nothing new, the same rejects.
				res, rejects := bulkRun(s, ids, "b")
				if want := (ImportResult{Read: wantAll.Read, Unchanged: wantAll.Inserted + wantAll.Unchanged, Rejected: 1}); res != want || !slices.Equal(rejects, wantRejects) {
					t.Errorf("second bulk import = %+v, rejects %v; want %+v, %v", res, rejects, want, wantRejects)
				}
				if rows, _ := ledgerDump(t, s); rows != wantRows {
					t.Errorf("ledger changed by the second import")
				}
				mustAppend(t, s, events...)
				compareMatchable(t, ref, s)
			})
		})
	}
}

// compareMatchable checks that two stores have the same snapshots and
// stats.
func compareMatchable(t *testing.T, want, got Store) {
	t.Helper()
	for _, k := range psi.Kinds {
		_, a := snap(t, want, k)
		_, b := snap(t, got, k)
		if a.Size != b.Size || a.Digest != b.Digest {
			t.Errorf("%v: %d digests %x, want %d %x", k, b.Size, b.Digest, a.Size, a.Digest)
		}
	}
	a, err := want.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, err := got.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Errorf("stats %+v, want %+v", b, a)
	}
}

// TestPostgresBulkInterrupted interrupts a bulk import twice while it
// stages, then once in the middle of its merge (after the inserts, while
// the indexes are rebuilt), and resumes it: the staged rows are never
// staged twice, the interrupted merge leaves the ledger and its indexes as
// they were, and the resumed import ends in the ledger of an
// uninterrupted chunked import, with its result.
func TestPostgresBulkInterrupted(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	ids, events := genData(12, 1500)
	ref := openPostgresTest(t)
	want := mustImport(t, ref, ids...)
	wantRows, wantSchema := ledgerDump(t, ref)
	mustAppend(t, ref, events...)

	withRebuildMin(0, func() {
		s := openPostgresTest(t)
		emptyRows, _ := ledgerDump(t, s)
		staged := func() (mark, rows, distinct int64) {
			mark = rawInt(t, s, `SELECT staged FROM bulk_batches WHERE name = 'b'`)
			id := rawInt(t, s, `SELECT id FROM bulk_batches WHERE name = 'b'`)
			rows = rawInt(t, s, fmt.Sprintf(`SELECT count(*) FROM bulk_identifiers_%d`, id))
			distinct = rawInt(t, s, fmt.Sprintf(`SELECT count(DISTINCT seq) FROM bulk_identifiers_%d`, id))
			return
		}
		var lastMark int64
		for _, stopAt := range []int{1000, 2300} {
			ctx, cancel := context.WithCancel(t.Context())
			var phases []string
			rows := cancelling(ids, func(i int) {
				if i == stopAt {
					cancel()
				}
			})
			_, err := s.ImportIdentifiers(ctx, rows, ImportOptions{Bulk: "b", ChunkRows: 300,
				Phase: func(p string) { phases = append(phases, p) }})
			cancel()
			if err == nil {
				t.Fatalf("import stopped at row %d: no error", stopAt)
			}
			mark, n, distinct := staged()
			// Chunks of 300 rows are staged while the next is read: at
			// least the chunks two behind the stop are in.
			if mark < int64(stopAt-600) || mark > int64(stopAt) || n != mark || distinct != n {
				t.Fatalf("stopped at row %d: mark %d, %d rows staged (%d distinct)", stopAt, mark, n, distinct)
			}
			if lastMark > 0 && !slices.Contains(phases, fmt.Sprintf("resuming: rows up to %d were staged before", lastMark)) {
				t.Errorf("phases %q: no resume from %d", phases, lastMark)
			}
			lastMark = mark
			if rows, _ := ledgerDump(t, s); rows != emptyRows {
				t.Fatalf("the ledger changed before the merge")
			}
		}
		// Interrupted while the merge rebuilds the indexes.
		ctx, cancel := context.WithCancel(t.Context())
		_, err := s.ImportIdentifiers(ctx, slices.Values(ids), ImportOptions{Bulk: "b", ChunkRows: 300,
			Phase: func(p string) {
				if p == "rebuilding the ledger's indexes" {
					cancel()
				}
			}})
		cancel()
		if err == nil {
			t.Fatal("import cancelled in its merge: no error")
		}
		if mark, n, distinct := staged(); mark != int64(len(ids)) || n != mark || distinct != n {
			t.Fatalf("after the interrupted merge: mark %d, %d rows staged (%d distinct); want %d", mark, n, distinct, len(ids))
		}
		if rows, schema := ledgerDump(t, s); rows != emptyRows || schema != wantSchema {
			t.Fatalf("the interrupted merge left the ledger changed")
		}
		// Resumed to the end.
		res, err := s.ImportIdentifiers(t.Context(), slices.Values(ids), ImportOptions{Bulk: "b", ChunkRows: 300})
		if err != nil || res != want {
			t.Fatalf("resumed import = %+v, %v; want %+v", res, err, want)
		}
		if rows, schema := ledgerDump(t, s); rows != wantRows || schema != wantSchema {
			t.Errorf("resumed ledger or schema differs from the chunked import's")
		}
		mustAppend(t, s, events...)
		compareMatchable(t, ref, s)
	})
}
