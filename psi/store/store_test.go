package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
	s, err := OpenPostgres(t.Context(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
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
	// The SQL list of security purposes is the Go one.
	for _, p := range Purposes {
		if got := strings.Contains(sqlSecurityPurposes, "'"+string(p)+"'"); got != p.Security() {
			t.Errorf("sqlSecurityPurposes and Security disagree on %s", p)
		}
	}
}
