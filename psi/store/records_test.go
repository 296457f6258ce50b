package store

import (
	"os"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/wire"
)

func TestSQLiteRecordSessions(t *testing.T) {
	t.Parallel()
	runRecordSessionSuite(t, func(t *testing.T) Store { return openSQLiteTest(t) })
}

func TestPostgresRecordSessions(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	t.Parallel()
	runRecordSessionSuite(t, func(t *testing.T) Store { return openPostgresTest(t) })
}

// A record session's audit row keeps its kind set, its slots and the
// snapshot of each kind (SPEC.md §13.3), written with the row, whether the
// session ends normally or is reconciled after a crash; rows that would
// misdescribe a record session are refused.
func runRecordSessionSuite(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	a := mustAdvertiser(t, s, "acme")
	ep := wire.KindSetOf(psi.KindEmail, psi.KindPhone)
	var snaps []KindSnapshot
	for _, k := range ep.Kinds() {
		info, err := s.Snapshot(ctx, k, func([32]byte) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, KindSnapshot{Kind: k, Version: info.Version, Digest: info.Digest})
	}
	rec := SessionRecord{ID: "s-records", Advertiser: a.ID, Kind: psi.KindEmail, Mode: wire.ModePrivateRecords.String(), ListSize: 100,
		SnapshotVersion: snaps[0].Version, SnapshotDigest: snaps[0].Digest, BudgetSpent: 200, Result: "ok", StartedAt: et0, EndedAt: et0.Add(time.Second),
		Kinds: ep, Slots: 2, Snapshots: snaps}
	plain := SessionRecord{ID: "s-plain", Advertiser: a.ID, Kind: psi.KindEmail, Mode: "exact", ListSize: 100, Result: "ok",
		StartedAt: et0.Add(time.Minute), EndedAt: et0.Add(time.Minute)}
	for _, r := range []SessionRecord{rec, plain} {
		if err := s.RecordSession(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, ok := auditRow(t, s, "s-records")
	if !ok || got.Kinds != ep || got.Slots != 2 || len(got.Snapshots) != 2 || got.Snapshots[0] != snaps[0] || got.Snapshots[1] != snaps[1] ||
		got.Mode != "private-records" || got.BudgetSpent != 200 {
		t.Errorf("record session reads back as %+v", got)
	}
	if got, _ := auditRow(t, s, "s-plain"); got.Kinds != 0 || got.Slots != 0 || got.Snapshots != nil {
		t.Errorf("identifier-level session reads back with kinds %v, %d slots, snapshots %v", got.Kinds, got.Slots, got.Snapshots)
	}
	for name, r := range map[string]SessionRecord{
		"kinds without slots":        {Kinds: ep},
		"slots without kinds":        {Slots: 2},
		"nine slots":                 {Kinds: ep, Slots: 9},
		"unknown kind bit":           {Kinds: 8, Slots: 1},
		"snapshot of a kind not set": {Kinds: wire.KindSetOf(psi.KindEmail), Slots: 1, Snapshots: snaps},
		"snapshot version 0":         {Kinds: ep, Slots: 2, Snapshots: []KindSnapshot{{Kind: psi.KindEmail}}},
	} {
		r.ID, r.Advertiser, r.Kind, r.Mode, r.Result, r.StartedAt, r.EndedAt = "bad", a.ID, psi.KindEmail, "exact-records", "ok", et0, et0
		if err := s.RecordSession(ctx, r); err == nil {
			t.Errorf("%s: RecordSession succeeded", name)
		}
	}
	if _, ok := auditRow(t, s, "bad"); ok {
		t.Error("a refused row was written")
	}
	// The per-kind snapshots are append-only, like the audit log.
	if err := rawExec(t, s, "DELETE FROM session_snapshots"); err == nil {
		t.Error("session_snapshots rows deleted")
	}

	// A journaled record session that crashes keeps its kind set, slots
	// and ciphersuite in the audit row Reconcile writes.
	_, err := s.BeginSession(ctx,
		BudgetRequest{Advertiser: a.ID, Session: "s-crash", Identifiers: 10, Limit: 1000, Window: time.Hour, At: et0},
		JournalEntry{ID: "s-crash", Advertiser: a.ID, Kind: psi.KindEmail, Mode: "exact-records", ListSize: 5, Owner: "me",
			StartedAt: et0, LeaseUntil: et0.Add(time.Minute), Kinds: ep, Slots: 2, Suite: psi.Suite2})
	if err != nil {
		t.Fatal(err)
	}
	if open, err := s.OpenSessions(ctx); err != nil || len(open) != 1 || open[0].Kinds != ep || open[0].Slots != 2 || open[0].Suite != psi.Suite2 {
		t.Errorf("journal: %+v, %v", open, err)
	}
	if _, err := s.Reconcile(ctx, et0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r, ok := auditRow(t, s, "s-crash"); !ok || r.Kinds != ep || r.Slots != 2 || r.Suite != psi.Suite2 || r.Result != ResultCrashed {
		t.Errorf("crashed audit row %+v", r)
	}
	_, err = s.BeginSession(ctx,
		BudgetRequest{Advertiser: a.ID, Session: "s-bad", Identifiers: 10, Limit: 1000, Window: time.Hour, At: et0},
		JournalEntry{ID: "s-bad", Advertiser: a.ID, Kind: psi.KindEmail, Mode: "exact-records", Owner: "me", StartedAt: et0, Kinds: ep})
	if err == nil {
		t.Error("a journal entry with kinds and no slots was accepted")
	}
}
