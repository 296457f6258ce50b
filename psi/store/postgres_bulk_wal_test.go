package store

import (
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestPostgresBulkPglzNote: a bulk load that rebuilds the ledger's
// indexes tells the operator when the server compresses its WAL with pglz,
// which makes the rebuild slow, and says nothing under lz4 or off; the
// import itself is the same. The setting is the session's, given in the
// DSN (PostgreSQL takes it from a superuser only, as the server of
// .ci/postgres.sh runs the tests).
func TestPostgresBulkPglzNote(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	ids, events, _ := consentFile(31, 300)
	withRebuildMin(0, func() {
		for _, c := range []struct {
			setting string
			note    bool
		}{{"pglz", true}, {"on", true}, {"lz4", false}, {"off", false}} {
			t.Run(c.setting, func(t *testing.T) {
				u, err := url.Parse(postgresTestDSN(t))
				if err != nil {
					t.Fatal(err)
				}
				q := u.Query()
				q.Set("wal_compression", c.setting)
				u.RawQuery = q.Encode()
				s, err := OpenPostgres(t.Context(), u.String())
				if err != nil {
					t.Fatalf("open with wal_compression=%s: %v", c.setting, err)
				}
				defer s.Close()

				var phases []string
				phase := func(p string) { phases = append(phases, p) }
				res, err := s.ImportIdentifiers(t.Context(), slices.Values(ids), ImportOptions{Bulk: "b", Phase: phase})
				if err != nil || res.Read != int64(len(ids)) || res.Rejected != 0 || res.Inserted == 0 {
					t.Fatalf("bulk import = %+v, %v; want %d rows read, none rejected", res, err, len(ids))
				}
				if _, _, err := appendAll(t, t.Context(), s, events, ImportOptions{Bulk: "c", Phase: phase}); err != nil {
					t.Fatal(err)
				}
				var notes, rebuilds int
				for _, p := range phases {
					if strings.HasPrefix(p, "note: the server compresses its WAL with pglz (wal_compression = ") {
						notes++
					}
					if strings.HasPrefix(p, "rebuilding the") {
						rebuilds++
					}
				}
				if rebuilds != 2 {
					t.Fatalf("phases %q: want both imports to rebuild", phases)
				}
				want := 0
				if c.note {
					want = 2 // one per import
				}
				if notes != want {
					t.Errorf("wal_compression=%s: %d notes in phases %q, want %d", c.setting, notes, phases, want)
				}
			})
		}
	})
}
