package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/overlap-psi/overlap/psi"
)

const postgresEnv = "OVERLAP_TEST_POSTGRES"

func openSQLiteTest(t testing.TB) Store {
	t.Helper()
	s, err := OpenSQLite(filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openPostgresTest opens a store in a fresh schema of the database
// OVERLAP_TEST_POSTGRES names, dropped when the test ends.
func openPostgresTest(t testing.TB) Store {
	t.Helper()
	s, err := OpenPostgres(t.Context(), postgresTestDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// postgresTestDSN creates a fresh schema in the database
// OVERLAP_TEST_POSTGRES names, dropped when the test ends, and returns a
// DSN whose search_path is that schema.
func postgresTestDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s must be a postgres:// URL", postgresEnv)
	}
	schema := "overlap_test_" + strings.ToLower(rand.Text())
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("postgres: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background() // t.Context is done when cleanups run
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("postgres: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("postgres: %v", err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func TestSQLite(t *testing.T) {
	t.Parallel()
	runStoreSuite(t, func(t *testing.T) Store { return openSQLiteTest(t) })
}

func TestSQLiteMemory(t *testing.T) {
	t.Parallel()
	runStoreSuite(t, func(t *testing.T) Store {
		s, err := Open(t.Context(), ":memory:")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestPostgres(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	t.Parallel()
	runStoreSuite(t, func(t *testing.T) Store { return openPostgresTest(t) })
}

// TestEnginesAgree loads the same generated ledger into both engines and
// compares snapshots (digest and size) and Stats.
func TestEnginesAgree(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	t.Parallel()
	lite, pg := openSQLiteTest(t), openPostgresTest(t)
	ids, events := genData(7, 2000)
	for _, s := range []Store{lite, pg} {
		mustImport(t, s, ids...)
		mustAppend(t, s, events...)
	}
	for _, k := range psi.Kinds {
		_, a := snap(t, lite, k)
		_, b := snap(t, pg, k)
		if a.Size != b.Size || a.Digest != b.Digest || a.LedgerPosition != b.LedgerPosition {
			t.Errorf("%v: sqlite %d digests %x at %d, postgres %d digests %x at %d",
				k, a.Size, a.Digest, a.LedgerPosition, b.Size, b.Digest, b.LedgerPosition)
		}
		if a.Size == 0 {
			t.Errorf("%v: empty matchable set; the generator should make some", k)
		}
		// The capped snapshots of private mode agree too, and the cap of 1
		// removes digests.
		for _, maxPer := range []int{1, 2} {
			_, ca := snapPerSubject(t, lite, k, maxPer)
			_, cb := snapPerSubject(t, pg, k, maxPer)
			if ca.Size != cb.Size || ca.Digest != cb.Digest || ca.LedgerPosition != cb.LedgerPosition {
				t.Errorf("%v, at most %d per subject: sqlite %d digests %x, postgres %d digests %x",
					k, maxPer, ca.Size, ca.Digest, cb.Size, cb.Digest)
			}
			if maxPer == 1 && ca.Size >= a.Size {
				t.Errorf("%v: the cap of 1 kept all %d digests; the generator should make subjects with several", k, a.Size)
			}
		}
	}
	a, err := lite.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, err := pg.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Errorf("Stats differ:\nsqlite   %+v\npostgres %+v", a, b)
	}
}

func TestOpenDSN(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, dsn := range []string{
		"sqlite:" + filepath.Join(dir, "a.db"),
		"file:" + filepath.Join(dir, "b.db"),
		filepath.Join(dir, "c?#%.db"),
		":memory:",
	} {
		s, err := Open(t.Context(), dsn)
		if err != nil {
			t.Errorf("Open(%q): %v", dsn, err)
			continue
		}
		if _, ok := s.(*SQLite); !ok {
			t.Errorf("Open(%q) = %T", dsn, s)
		}
		s.Close()
	}
	if _, err := os.Stat(filepath.Join(dir, "c?#%.db")); err != nil {
		t.Errorf("odd path: %v", err)
	}
	if _, err := Open(t.Context(), ""); err == nil {
		t.Error(`Open("") succeeded`)
	}
	if s, err := Open(t.Context(), "postgres://nobody:secret-pw@127.0.0.1:1/x?connect_timeout=1"); err == nil {
		s.Close()
		t.Error("Open(unreachable postgres) succeeded")
	} else if strings.Contains(err.Error(), "secret-pw") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestSQLiteReopenAndMigrations(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	mustImport(t, s, ident("u1", psi.KindEmail, "ana@example.com", Signup))
	mustAppend(t, s, wide("u1", true, t0))
	_, first := snap(t, s, psi.KindEmail)
	if mode := rawString(t, s, "PRAGMA journal_mode"); mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	if fk := rawInt(t, s, "PRAGMA foreign_keys"); fk != 1 {
		t.Errorf("foreign_keys = %d, want 1", fk)
	}
	s.Close()

	s, err = OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := rawInt(t, s, "SELECT count(*) FROM schema_migrations"); n != int64(len(migrations)) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(migrations))
	}
	_, second := snap(t, s, psi.KindEmail)
	if second.Digest != first.Digest || second.Version != first.Version+1 {
		t.Errorf("after reopen: %+v, before %+v", second, first)
	}
	// A database from a newer binary is refused.
	if err := rawExec(t, s, fmt.Sprintf("INSERT INTO schema_migrations VALUES (%d, 'future', 0)", latestMigration()+1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := OpenSQLite(path); err == nil || !strings.Contains(err.Error(), "newer") {
		if s != nil {
			s.Close()
		}
		t.Errorf("OpenSQLite(newer schema): err = %v", err)
	}
}

// TestUpgradeFromSchema2 builds a database of schema 2 (before private
// mode), with an advertiser, a spend, a session and a snapshot, and opens it
// with this binary: migration 3 keeps the advertiser on exact mode only and
// every old row reads back with the new fields at their defaults.
func TestUpgradeFromSchema2(t *testing.T) {
	t.Parallel()
	type engine struct {
		name string
		// open opens one database, with migrations up to upTo, each call
		// the same database.
		open func(t *testing.T, upTo int64) Store
		// at and digest are SQL literals of t0 and of a 32-byte digest.
		at, digest string
	}
	engines := []engine{{
		name:   "SQLite",
		open:   reopenSQLite(),
		at:     fmt.Sprint(t0.UnixMicro()),
		digest: "zeroblob(32)",
	}}
	if os.Getenv(postgresEnv) != "" {
		engines = append(engines, engine{
			name:   "Postgres",
			open:   reopenPostgres(),
			at:     "'" + t0.Format(time.RFC3339) + "'",
			digest: "decode(repeat('00', 32), 'hex')",
		})
	}
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			old := eng.open(t, 2)
			for _, q := range []string{
				`INSERT INTO advertisers (name, cert_name, created_at, budget) VALUES ('old', 'old.example', ` + eng.at + `, 500)`,
				`INSERT INTO budget_spend (advertiser_id, session_id, at, identifiers) VALUES (1, 'old-session', ` + eng.at + `, 40)`,
				`INSERT INTO snapshots (kind, taken_at, ledger_position, size, digest) VALUES (1, ` + eng.at + `, 0, 0, ` + eng.digest + `)`,
				`INSERT INTO sessions (id, advertiser_id, kind, mode, list_size, server_size, budget_spent, result, detail, started_at, ended_at, duration_us)
					VALUES ('old-session', 1, 1, 'exact', 40, 1024, 40, 'ok', '', ` + eng.at + `, ` + eng.at + `, 0)`,
			} {
				if err := rawExec(t, old, q); err != nil {
					t.Fatalf("schema 2: %s: %v", q, err)
				}
			}
			if n := rawInt(t, old, "SELECT count(*) FROM schema_migrations"); n != 2 {
				t.Fatalf("schema 2 database has %d migrations", n)
			}
			old.Close()

			s := eng.open(t, latestMigration())
			ctx := t.Context()
			if n := rawInt(t, s, "SELECT max(version) FROM schema_migrations"); n != latestMigration() {
				t.Errorf("schema version %d after the upgrade, want %d", n, latestMigration())
			}
			// The existing advertiser keeps what it had: exact mode, the
			// server's privacy defaults.
			a, err := s.AdvertiserByName(ctx, "old")
			if want := (Policy{Budget: 500, Modes: ModesExact}); err != nil || a.Policy != want {
				t.Errorf("old advertiser after the upgrade: %+v, %v; want %+v", a.Policy, err, want)
			}
			// A new one gets private mode only.
			if b := mustAdvertiser(t, s, "new"); b.Policy.Modes != ModesPrivate {
				t.Errorf("new advertiser after the upgrade: %v", b.Policy.Modes)
			}
			// The old spend counts as identifiers and no ε, and can be
			// refunded.
			ids, err1 := s.BudgetUsed(ctx, a.ID, time.Hour, t0)
			epsilon, err2 := s.EpsilonUsed(ctx, a.ID, time.Hour, t0)
			if ids != 40 || epsilon != 0 || errors.Join(err1, err2) != nil {
				t.Errorf("old spend: %d identifiers, %d micro-ε, %v", ids, epsilon, errors.Join(err1, err2))
			}
			if err := s.RefundBudget(ctx, a.ID, "old-session", t0); err != nil {
				t.Error(err)
			}
			if ids, err := s.BudgetUsed(ctx, a.ID, time.Hour, t0); ids != 0 || err != nil {
				t.Errorf("after refunding the old spend: %d, %v", ids, err)
			}
			// The old session and snapshot read back with zero ε and no cap.
			sessions, err := s.Sessions(ctx, 0, 0)
			if err != nil || len(sessions) != 1 || sessions[0].EpsilonSpent != 0 || sessions[0].BudgetSpent != 40 {
				t.Errorf("old sessions = %+v, %v", sessions, err)
			}
			snaps, err := s.Snapshots(ctx, 0, 0)
			if err != nil || len(snaps) != 1 || snaps[0].MaxPerSubject != 0 || snaps[0].Kind != psi.KindEmail {
				t.Errorf("old snapshots = %+v, %v", snaps, err)
			}
		})
	}
}

func rawString(t testing.TB, s Store, q string) string {
	t.Helper()
	var v string
	if err := s.(*SQLite).w.QueryRowContext(t.Context(), q).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	id := ident("u1", psi.KindPhone, "+14155550100", TwoFactor)
	ev := scoped("u1", psi.KindPhone, "+14155550100", true, t0)
	hexDigest := hex.EncodeToString(id.Digest[:])
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{id, &id, ev, []Identifier{id}} {
			out := fmt.Sprintf(f, v)
			if strings.Contains(out, "4155550100") || strings.Contains(out, hexDigest[:16]) {
				t.Errorf("Sprintf(%q, %T) = %s leaks the value", f, v, out)
			}
		}
	}
}

func TestPurpose(t *testing.T) {
	t.Parallel()
	for _, p := range Purposes {
		if !p.Valid() {
			t.Errorf("%s: not valid", p)
		}
		if got, want := p.Security(), p == TwoFactor || p == Recovery || p == LoginAlert; got != want {
			t.Errorf("%s.Security() = %t", p, got)
		}
	}
	for _, p := range []Purpose{"", "ad_matching", "Signup", "two-factor"} {
		if p.Valid() || p.Security() {
			t.Errorf("%q: Valid or Security", p)
		}
	}
	// The CHECK of identifier_collections lists exactly the Go purposes,
	// on both engines.
	for _, m := range migrations[:1] {
		for _, text := range []string{m.sqlite, m.postgres} {
			check := text[strings.Index(text, "collected_for IN ("):]
			check = check[:strings.Index(check, ")")]
			if got := strings.Count(check, "'"); got != 2*len(Purposes) {
				t.Errorf("the collected_for CHECK lists %d purposes, Go %d", got/2, len(Purposes))
			}
			for _, p := range Purposes {
				if !strings.Contains(check, "'"+string(p)+"'") {
					t.Errorf("the collected_for CHECK lacks %s", p)
				}
			}
		}
	}
	// The SQL list of security purposes is the Go one.
	for _, p := range Purposes {
		if got := strings.Contains(sqlSecurityPurposes, "'"+string(p)+"'"); got != p.Security() {
			t.Errorf("sqlSecurityPurposes and Security disagree on %s", p)
		}
	}
}

// reopenSQLite and reopenPostgres return an opener of one database that
// each call opens again migrated up to upTo, for the upgrade tests. Each
// store is closed when its test ends.
func reopenSQLite() func(*testing.T, int64) Store {
	var path string
	return func(t *testing.T, upTo int64) Store {
		if path == "" {
			path = filepath.Join(t.TempDir(), "ledger.db")
		}
		s, err := openSQLiteAt(t.Context(), path, upTo)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func reopenPostgres() func(*testing.T, int64) Store {
	var dsn string
	return func(t *testing.T, upTo int64) Store {
		if dsn == "" {
			dsn = postgresTestDSN(t)
		}
		s, err := openPostgresAt(t.Context(), dsn, upTo)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}
