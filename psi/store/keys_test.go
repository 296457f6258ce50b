package store

import (
	"crypto/sha256"
	"errors"
	"os"
	"testing"
	"time"
)

func TestSQLiteRotateKey(t *testing.T) {
	t.Parallel()
	testRotateKey(t, openSQLiteTest(t))
}

func TestPostgresRotateKey(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	t.Parallel()
	testRotateKey(t, openPostgresTest(t))
}

// testRotateKey: a new key replaces the old one at once, and the
// advertiser keeps its id and its spend.
func testRotateKey(t *testing.T, s Store) {
	ctx := t.Context()
	a := mustAdvertiser(t, s, "acme")
	mustAdvertiser(t, s, "globex")
	at := time.Now()
	if _, err := s.ReserveBudget(ctx, BudgetRequest{Advertiser: a.ID, Session: "s1", Identifiers: 300, Limit: 1000, Window: time.Hour, At: at}); err != nil {
		t.Fatal(err)
	}
	newHash := sha256.Sum256([]byte("new key"))
	b, err := s.RotateAdvertiserKey(ctx, "acme", "id-acme-2", newHash)
	if err != nil || b.ID != a.ID || b.KeyID != "id-acme-2" || b.KeyHash != newHash {
		t.Fatalf("rotated: %+v, %v", b, err)
	}
	if _, err := s.AdvertiserByKeyID(ctx, a.KeyID); !errors.Is(err, ErrUnknownAdvertiser) {
		t.Errorf("the old key id still finds an advertiser: %v", err)
	}
	if got, err := s.AdvertiserByKeyID(ctx, "id-acme-2"); err != nil || got.ID != a.ID {
		t.Errorf("the new key id: %+v, %v", got, err)
	}
	if used, err := s.BudgetUsed(ctx, a.ID, time.Hour, at); used != 300 || err != nil {
		t.Errorf("spend after the rotation %d, %v; want 300", used, err)
	}
	// Refusals: another advertiser's key id, an unknown advertiser.
	if _, err := s.RotateAdvertiserKey(ctx, "acme", "id-globex", newHash); !errors.Is(err, ErrAdvertiserExists) {
		t.Errorf("rotating to globex's key id: %v", err)
	}
	if _, err := s.RotateAdvertiserKey(ctx, "nobody", "id-x", newHash); !errors.Is(err, ErrUnknownAdvertiser) {
		t.Errorf("rotating an unknown advertiser: %v", err)
	}
	if got, _ := s.AdvertiserByName(ctx, "acme"); got.KeyID != "id-acme-2" {
		t.Errorf("a refused rotation changed the key id to %q", got.KeyID)
	}
}
