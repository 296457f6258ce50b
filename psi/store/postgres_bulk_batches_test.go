package store

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// A bulk import stopped before its merge leaves its staged rows behind;
// BulkBatches lists them and DropBulkBatches drops those not staged into
// since a given time, except a batch whose import is running. A dropped
// batch's import, run again, starts over: it imports every row, as into an
// empty ledger (none of the staged rows was in it).
func TestPostgresBulkBatches(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	s := openPostgresTest(t)
	pg := s.(*Postgres)
	ids, events := genData(13, 500)
	const idName, consentName = "batches test: identifiers", "batches test: consent"
	stop := func(name string, consent bool) {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		opts := ImportOptions{Bulk: name, ChunkRows: 100}
		var err error
		if consent {
			_, err = s.AppendConsent(ctx, cancelling(events, func(i int) {
				if i == 350 {
					cancel()
				}
			}), opts)
		} else {
			_, err = s.ImportIdentifiers(ctx, cancelling(ids, func(i int) {
				if i == 350 {
					cancel()
				}
			}), opts)
		}
		if err == nil {
			t.Fatalf("%s: stopped import: no error", name)
		}
	}
	staging := func() int64 {
		return rawInt(t, s, `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename ~ '^bulk_(identifiers|consent)_[0-9]+$'`)
	}
	before := time.Now()
	stop(idName, false)
	stop(consentName, true)
	list, err := pg.BulkBatches(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != idName || list[0].Consent || list[1].Name != consentName || !list[1].Consent ||
		list[0].Staged < 100 || list[1].Staged < 100 || list[0].UpdatedAt.Before(before.Add(-time.Second)) {
		t.Fatalf("batches %+v", list)
	}
	if n := staging(); n != 2 {
		t.Fatalf("%d staging tables, want 2", n)
	}

	// Nothing staged before the imports began is dropped.
	if dropped, err := pg.DropBulkBatches(t.Context(), before.Add(-time.Minute)); err != nil || len(dropped) != 0 {
		t.Fatalf("dropped %+v, %v; want none", dropped, err)
	}
	// A running import keeps its batch: hold its lock as an import does.
	_, release, err := pg.bulkSession(t.Context(), "test", idName)
	if err != nil {
		t.Fatal(err)
	}
	dropped, err := pg.DropBulkBatches(t.Context(), time.Now().Add(time.Minute))
	release()
	if err != nil || len(dropped) != 1 || dropped[0].Name != consentName {
		t.Fatalf("dropped %+v, %v; want the consent batch only", dropped, err)
	}
	if n := staging(); n != 1 {
		t.Fatalf("%d staging tables after dropping one of two", n)
	}
	dropped, err = pg.DropBulkBatches(t.Context(), time.Now().Add(time.Minute))
	if err != nil || len(dropped) != 1 || dropped[0].Name != idName {
		t.Fatalf("dropped %+v, %v; want the identifier batch", dropped, err)
	}
	if list, err := pg.BulkBatches(t.Context()); err != nil || len(list) != 0 || staging() != 0 {
		t.Fatalf("after dropping both: batches %+v, %v, %d staging tables", list, err, staging())
	}

	// The import starts over: no resume, every row imported.
	var phases []string
	res, err := s.ImportIdentifiers(t.Context(), slices.Values(ids), ImportOptions{Bulk: idName, ChunkRows: 100,
		Phase: func(p string) { phases = append(phases, p) }})
	want := mustImport(t, openSQLiteTest(t), ids...) // the same rows into an empty ledger
	if err != nil || res != want {
		t.Fatalf("import after the drop: %+v, %v; want %+v, as into an empty ledger", res, err, want)
	}
	for _, p := range phases {
		if strings.HasPrefix(p, "resuming") {
			t.Errorf("import after the drop resumed: %q", phases)
		}
	}
}
