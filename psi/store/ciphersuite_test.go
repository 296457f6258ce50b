package store

import (
	"crypto/rand"
	"os"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/internal/c25519"
)

func TestSQLiteCiphersuites(t *testing.T) {
	t.Parallel()
	runCiphersuiteSuite(t, openSQLiteTest(t))
}

func TestPostgresCiphersuites(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	t.Parallel()
	runCiphersuiteSuite(t, openPostgresTest(t))
}

// runCiphersuiteSuite checks that an epoch keeps its ciphersuite in the
// store (SPEC.md §12.1: one suite per epoch, fixed at setup) and that a
// session's audit row records its suite.
func runCiphersuiteSuite(t *testing.T, s Store) {
	ctx := t.Context()
	a := mustAdvertiser(t, s, "suites")
	if _, err := s.SetAdvertiserPolicy(ctx, a.Name, Policy{Modes: ModesPrivate | ModesEpoch}); err != nil {
		t.Fatal(err)
	}
	// A suite-2 epoch: its key is a clamped scalar with a clamped inverse,
	// which only loads under suite 2.
	k, err := c25519.NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var id [16]byte
	rand.Read(id[:])
	meta := psi.EpochMeta{ID: id, Kind: psi.KindEmail, Suite: psi.Suite2, CanonVersion: 1, ServerSize: 2048, Size: 0,
		ExpiresAt: et0.Add(time.Hour)}
	ep, err := psi.LoadEpoch(meta, k.Bytes(), func(func(int, []byte) error) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	saveEpoch(t, s, a.ID, ep, et0)
	back, rec, err := s.LoadEpoch(ctx, a.ID, id)
	if err != nil || rec.Meta.Suite != psi.Suite2 || back.Meta().Suite != psi.Suite2 || back.ExportKey() != k.Bytes() {
		t.Fatalf("suite-2 epoch loaded as suite %v (%v)", rec.Meta.Suite, err)
	}
	// A suite-1 epoch reads back as suite 1 (zero, as psi writes it).
	one := testEpoch(t, 1, 5, 1024, et0.Add(time.Hour))
	saveEpoch(t, s, a.ID, one, et0.Add(time.Second))
	if _, rec, err := s.LoadEpoch(ctx, a.ID, one.Meta().ID); err != nil || rec.Meta.Suite.Or1() != psi.Suite1 {
		t.Fatalf("suite-1 epoch loaded as suite %v (%v)", rec.Meta.Suite, err)
	}
	list, err := s.Epochs(ctx, a.ID)
	if err != nil || len(list) != 2 || list[0].Meta.Suite.Or1() != psi.Suite1 || list[1].Meta.Suite != psi.Suite2 {
		t.Fatalf("epochs listed: %+v, %v", list, err)
	}
	// Audit rows keep the session's suite; a refusal before the choice
	// has none.
	for _, r := range []SessionRecord{
		{ID: "0123456789abcdef0123456789abcd02", Suite: psi.Suite2, Result: "ok"},
		{ID: "0123456789abcdef0123456789abcd01", Suite: psi.Suite1, Result: "ok"},
		{ID: "0123456789abcdef0123456789abcd00", Result: "refused_suite"},
	} {
		r.Advertiser, r.Kind, r.Mode, r.StartedAt, r.EndedAt = a.ID, psi.KindEmail, "exact", et0, et0.Add(time.Second)
		if err := s.RecordSession(ctx, r); err != nil {
			t.Fatal(err)
		}
		if got, ok := auditRow(t, s, r.ID); !ok || got.Suite != r.Suite {
			t.Errorf("audit row %s: suite %v, want %v", r.ID, got.Suite, r.Suite)
		}
	}
	bad := SessionRecord{ID: "0123456789abcdef0123456789abcd09", Advertiser: a.ID, Kind: psi.KindEmail, Mode: "exact",
		Result: "ok", Suite: 3, StartedAt: et0, EndedAt: et0}
	if err := s.RecordSession(ctx, bad); err == nil {
		t.Error("a session of suite 3 was recorded")
	}
}
