package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
)

// t0 is the base of event times in the tests.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func ident(subject string, kind psi.Kind, value string, p Purpose) Identifier {
	return Identifier{Subject: subject, Kind: kind, Value: value, Digest: sha256.Sum256([]byte(value)), CollectedFor: p}
}

func wide(subject string, granted bool, at time.Time) ConsentEvent {
	return ConsentEvent{Subject: subject, Purpose: AdMatching, Granted: granted, At: at, Source: "settings", TextVersion: "v1"}
}

func scoped(subject string, kind psi.Kind, value string, granted bool, at time.Time) ConsentEvent {
	e := wide(subject, granted, at)
	e.Kind, e.Value = kind, value
	return e
}

func digestOf(value string) [32]byte { return sha256.Sum256([]byte(value)) }

func mustImport(t testing.TB, s Store, ids ...Identifier) ImportResult {
	t.Helper()
	res, err := s.ImportIdentifiers(t.Context(), slices.Values(ids), ImportOptions{})
	if err != nil {
		t.Fatalf("ImportIdentifiers: %v", err)
	}
	return res
}

func mustAppend(t testing.TB, s Store, events ...ConsentEvent) {
	t.Helper()
	res, err := s.AppendConsent(t.Context(), slices.Values(events), ImportOptions{})
	if err != nil {
		t.Fatalf("AppendConsent: %v", err)
	}
	if res.Inserted != int64(len(events)) {
		t.Fatalf("AppendConsent = %+v, want %d appended", res, len(events))
	}
}

// snap takes a snapshot, checks that it streamed in ascending order and that
// its digest is the one the package doc defines, and returns the digests.
func snap(t testing.TB, s Store, kind psi.Kind) ([][32]byte, SnapshotInfo) {
	t.Helper()
	var got [][32]byte
	info, err := s.Snapshot(t.Context(), kind, func(d [32]byte) error {
		if n := len(got); n > 0 && bytes.Compare(got[n-1][:], d[:]) >= 0 {
			t.Errorf("snapshot not strictly ascending at %d", n)
		}
		got = append(got, d)
		return nil
	})
	if err != nil {
		t.Fatalf("Snapshot(%v): %v", kind, err)
	}
	if info.Size != int64(len(got)) {
		t.Errorf("Snapshot(%v).Size = %d, streamed %d", kind, info.Size, len(got))
	}
	if want := snapshotDigest(kind, got); info.Digest != want {
		t.Errorf("Snapshot(%v).Digest = %x, want %x", kind, info.Digest, want)
	}
	return got, info
}

// snapshotDigest is the package doc's definition, written out again.
func snapshotDigest(kind psi.Kind, ds [][32]byte) [32]byte {
	var buf []byte
	buf = append(buf, "overlap-snapshot-v1"...)
	buf = append(buf, byte(kind))
	for _, d := range ds {
		buf = append(buf, d[:]...)
	}
	return sha256.Sum256(buf)
}

func sortedDigests(values ...string) [][32]byte {
	out := [][32]byte{}
	for _, v := range values {
		out = append(out, digestOf(v))
	}
	slices.SortFunc(out, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return slices.CompactFunc(out, func(a, b [32]byte) bool { return a == b })
}

func wantSnapshot(t testing.TB, s Store, kind psi.Kind, values ...string) SnapshotInfo {
	t.Helper()
	got, info := snap(t, s, kind)
	if want := sortedDigests(values...); !slices.Equal(got, want) {
		t.Errorf("snapshot(%v) has %d digests, want %d (values %q)", kind, len(got), len(want), values)
	}
	return info
}

func statsFor(t testing.TB, s Store, kind psi.Kind) KindStats {
	t.Helper()
	all, err := s.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	for _, ks := range all {
		if ks.Kind == kind {
			return ks
		}
	}
	t.Fatalf("Stats has no %v", kind)
	return KindStats{}
}

// tableCounts counts the rows of every ledger table, to show that a failed
// call changed nothing.
func tableCounts(t testing.TB, s Store) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, tbl := range []string{"subjects", "identifiers", "identifier_collections", "consent_events", "snapshots"} {
		out[tbl] = rawInt(t, s, "SELECT count(*) FROM "+tbl)
	}
	return out
}

// rawExec and rawInt reach under the Store interface, for the tests only.
func rawExec(t testing.TB, s Store, q string) error {
	t.Helper()
	switch s := s.(type) {
	case *SQLite:
		_, err := s.w.ExecContext(t.Context(), q)
		return err
	case *Postgres:
		_, err := s.pool.Exec(t.Context(), q)
		return err
	}
	t.Fatalf("unknown store %T", s)
	return nil
}

func rawInt(t testing.TB, s Store, q string) int64 {
	t.Helper()
	var n int64
	var err error
	switch s := s.(type) {
	case *SQLite:
		err = s.w.QueryRowContext(t.Context(), q).Scan(&n)
	case *Postgres:
		err = s.pool.QueryRow(t.Context(), q).Scan(&n)
	default:
		t.Fatalf("unknown store %T", s)
	}
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// runStoreSuite runs every behavioral test against one engine; open returns
// a fresh, empty store.
func runStoreSuite(t *testing.T, open func(t *testing.T) Store) {
	t.Run("TwoFactorPhoneNeverMatchable", func(t *testing.T) {
		s := open(t)
		// SECURITY.md: a phone given only for two-factor, and ads consent
		// (subject-wide) given with the email.
		mustImport(t, s,
			ident("u1", psi.KindEmail, "ana@example.com", Signup),
			ident("u1", psi.KindPhone, "+14155550100", TwoFactor),
		)
		mustAppend(t, s, wide("u1", true, t0))
		wantSnapshot(t, s, psi.KindEmail, "ana@example.com")
		wantSnapshot(t, s, psi.KindPhone)

		// Also typed into the profile and consented for that very number:
		// still never matchable.
		mustImport(t, s, ident("u1", psi.KindPhone, "+14155550100", Profile))
		mustAppend(t, s, scoped("u1", psi.KindPhone, "+14155550100", true, t0.Add(time.Hour)))
		wantSnapshot(t, s, psi.KindPhone)

		// Another subject gives the same number for a profile and consents:
		// the number stays out (rule 1 is per digest), while a number
		// nobody gave for security goes in.
		mustImport(t, s,
			ident("u2", psi.KindPhone, "+14155550100", Profile),
			ident("u2", psi.KindPhone, "+14155550199", Profile),
		)
		mustAppend(t, s, wide("u2", true, t0))
		wantSnapshot(t, s, psi.KindPhone, "+14155550199")

		if got, want := statsFor(t, s, psi.KindPhone), (KindStats{Kind: psi.KindPhone, Identifiers: 3, Matchable: 1, Security: 2}); got != want {
			t.Errorf("phone stats = %+v, want %+v", got, want)
		}
		if got, want := statsFor(t, s, psi.KindEmail), (KindStats{Kind: psi.KindEmail, Identifiers: 1, Matchable: 1}); got != want {
			t.Errorf("email stats = %+v, want %+v", got, want)
		}
	})

	t.Run("WithdrawAndRegrant", func(t *testing.T) {
		s := open(t)
		mustImport(t, s,
			ident("u1", psi.KindEmail, "ana@example.com", Signup),
			ident("u2", psi.KindEmail, "bo@example.com", Profile),
		)
		mustAppend(t, s, wide("u1", true, t0), wide("u2", true, t0))
		s1 := wantSnapshot(t, s, psi.KindEmail, "ana@example.com", "bo@example.com")

		mustAppend(t, s, wide("u1", false, t0.Add(time.Hour)))
		s2 := wantSnapshot(t, s, psi.KindEmail, "bo@example.com")
		if got := statsFor(t, s, psi.KindEmail); got.Withdrawn != 1 || got.Matchable != 1 {
			t.Errorf("after withdrawal: stats = %+v", got)
		}

		mustAppend(t, s, wide("u1", true, t0.Add(2*time.Hour)))
		s3 := wantSnapshot(t, s, psi.KindEmail, "ana@example.com", "bo@example.com")
		if s3.Digest != s1.Digest || s2.Digest == s1.Digest {
			t.Errorf("digests: first %x, after withdrawal %x, after re-grant %x", s1.Digest, s2.Digest, s3.Digest)
		}
		if !(s1.Version < s2.Version && s2.Version < s3.Version) {
			t.Errorf("versions %d, %d, %d not increasing", s1.Version, s2.Version, s3.Version)
		}
		if s1.LedgerPosition != 2 || s2.LedgerPosition != 3 || s3.LedgerPosition != 4 {
			t.Errorf("ledger positions %d, %d, %d, want 2, 3, 4", s1.LedgerPosition, s2.LedgerPosition, s3.LedgerPosition)
		}
		// History intact: every event is still there, in order.
		if n := rawInt(t, s, "SELECT count(*) FROM consent_events"); n != 4 {
			t.Errorf("consent_events has %d rows, want 4", n)
		}
		if n := rawInt(t, s, "SELECT count(*) FROM consent_events WHERE granted = FALSE"); n != 1 {
			t.Errorf("consent_events has %d withdrawals, want 1", n)
		}

		list, err := s.Snapshots(t.Context(), psi.KindEmail, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0] != s3 || list[1] != s2 {
			t.Errorf("Snapshots(email, 2) = %+v, want [%+v %+v]", list, s3, s2)
		}
		all, err := s.Snapshots(t.Context(), 0, 0)
		if err != nil || len(all) != 3 {
			t.Errorf("Snapshots(0, 0) = %d, %v; want 3", len(all), err)
		}
		if none, err := s.Snapshots(t.Context(), psi.KindPhone, 0); err != nil || len(none) != 0 {
			t.Errorf("Snapshots(phone) = %v, %v; want none", none, err)
		}
	})

	t.Run("RecordSnapshot", func(t *testing.T) {
		s := open(t)
		_, own := snap(t, s, psi.KindEmail)
		ext, err := s.RecordSnapshot(t.Context(), SnapshotInfo{Kind: psi.KindEmail, TakenAt: t0, Size: 1000,
			Digest: digestOf("synthetic"), MaxPerSubject: 4})
		if err != nil {
			t.Fatal(err)
		}
		if ext.Version <= own.Version {
			t.Errorf("a recorded snapshot got version %d, after the store's %d", ext.Version, own.Version)
		}
		list, err := s.Snapshots(t.Context(), psi.KindEmail, 1)
		if err != nil || len(list) != 1 || list[0] != ext {
			t.Errorf("Snapshots(email, 1) = %+v, %v; want [%+v]", list, err, ext)
		}
		for _, bad := range []SnapshotInfo{{Kind: 0, Size: 1}, {Kind: psi.KindEmail, Size: -1}, {Kind: psi.KindEmail, MaxPerSubject: MaxSnapshotPerSubject + 1}} {
			if _, err := s.RecordSnapshot(t.Context(), bad); err == nil {
				t.Errorf("RecordSnapshot(%+v) recorded it", bad)
			}
		}
	})

	t.Run("ScopedAndSubjectWidePrecedence", func(t *testing.T) {
		s := open(t)
		const email, other = "ana@example.com", "ana.work@example.com"
		mustImport(t, s,
			ident("u1", psi.KindEmail, email, Signup),
			ident("u1", psi.KindEmail, other, Profile),
		)
		// Subject-wide grant, then a later withdrawal scoped to one email.
		mustAppend(t, s, wide("u1", true, t0), scoped("u1", psi.KindEmail, email, false, t0.Add(time.Hour)))
		wantSnapshot(t, s, psi.KindEmail, other)
		// A later subject-wide grant overrides the earlier scoped withdrawal.
		mustAppend(t, s, wide("u1", true, t0.Add(2*time.Hour)))
		wantSnapshot(t, s, psi.KindEmail, email, other)
		// Time decides, not the order of recording: a back-dated scoped
		// withdrawal changes nothing.
		mustAppend(t, s, scoped("u1", psi.KindEmail, email, false, t0.Add(90*time.Minute)))
		wantSnapshot(t, s, psi.KindEmail, email, other)
		// A scoped withdrawal later than everything wins for that email only.
		mustAppend(t, s, scoped("u1", psi.KindEmail, email, false, t0.Add(3*time.Hour)))
		wantSnapshot(t, s, psi.KindEmail, other)
		// A tie on at goes to the later event (higher id).
		tie := t0.Add(4 * time.Hour)
		mustAppend(t, s, wide("u1", false, tie), scoped("u1", psi.KindEmail, email, true, tie))
		wantSnapshot(t, s, psi.KindEmail, email)
		mustAppend(t, s, wide("u1", true, tie))
		wantSnapshot(t, s, psi.KindEmail, email, other)
		// Sub-microsecond differences are truncated on both engines, so this
		// is a tie too, won by the later event.
		tie2 := t0.Add(5 * time.Hour)
		mustAppend(t, s, wide("u1", false, tie2.Add(900*time.Nanosecond)), wide("u1", true, tie2))
		wantSnapshot(t, s, psi.KindEmail, email, other)
		// Events for purposes the rule does not read are refused, not
		// recorded to no effect.
		e := wide("u1", false, t0.Add(6*time.Hour))
		e.Purpose = "email_marketing"
		if _, err := s.AppendConsent(t.Context(), slices.Values([]ConsentEvent{e}), ImportOptions{}); !errors.Is(err, ErrUnknownPurpose) {
			t.Errorf("email_marketing event: err = %v, want ErrUnknownPurpose", err)
		}
		wantSnapshot(t, s, psi.KindEmail, email, other)
	})

	t.Run("IdempotentImport", func(t *testing.T) {
		s := open(t)
		rows := []Identifier{
			ident("u1", psi.KindEmail, "ana@example.com", Signup),
			ident("u1", psi.KindPhone, "+14155550100", TwoFactor),
			ident("u2", psi.KindEmail, "bo@example.com", Imported),
			ident("u2", psi.KindEmail, "bo@example.com", Imported), // duplicate row
			ident("u2", psi.KindID, "crm-42", Profile),
		}
		if got, want := mustImport(t, s, rows...), (ImportResult{Read: 5, Inserted: 4, Unchanged: 1}); got != want {
			t.Errorf("first import = %+v, want %+v", got, want)
		}
		before := tableCounts(t, s)
		if got, want := mustImport(t, s, rows...), (ImportResult{Read: 5, Inserted: 0, Unchanged: 5}); got != want {
			t.Errorf("second import = %+v, want %+v", got, want)
		}
		if after := tableCounts(t, s); !mapsEqual(before, after) {
			t.Errorf("second import changed the tables: %v -> %v", before, after)
		}
		// A known identifier with a new purpose records the purpose only.
		if got, want := mustImport(t, s, ident("u1", psi.KindEmail, "ana@example.com", Profile)), (ImportResult{Read: 1, Inserted: 1}); got != want {
			t.Errorf("new purpose import = %+v, want %+v", got, want)
		}
		if n := rawInt(t, s, "SELECT count(*) FROM identifiers"); n != 4 {
			t.Errorf("identifiers = %d, want 4", n)
		}
		if got := mustImport(t, s); got != (ImportResult{}) {
			t.Errorf("empty import = %+v", got)
		}
	})

	t.Run("FailedImportChangesNothing", func(t *testing.T) {
		s := open(t)
		mustImport(t, s, ident("u1", psi.KindEmail, "ana@example.com", Signup))
		mustAppend(t, s, wide("u1", true, t0))
		_, base := snap(t, s, psi.KindEmail)
		before := tableCounts(t, s)

		good := func(i int) Identifier {
			return ident(fmt.Sprintf("n%d", i), psi.KindEmail, fmt.Sprintf("n%d@example.com", i), Signup)
		}
		withBad := func(bad Identifier) iter.Seq[Identifier] {
			return func(yield func(Identifier) bool) {
				for i := range 10 {
					row := good(i)
					if i == 6 {
						row = bad
					}
					if !yield(row) {
						return
					}
				}
			}
		}
		badDigest := good(6)
		badDigest.Digest[0] ^= 1
		for _, tc := range []struct {
			name string
			bad  Identifier
		}{
			// Invalid fields.
			{"invalid kind", Identifier{Subject: "x", Kind: 9, Value: "v", Digest: digestOf("v"), CollectedFor: Signup}},
			{"zero kind", Identifier{Subject: "x", Value: "v", Digest: digestOf("v"), CollectedFor: Signup}},
			{"empty subject", ident("", psi.KindEmail, "x@example.com", Signup)},
			{"empty value", ident("x", psi.KindEmail, "", Signup)},
			{"NUL in value", ident("x", psi.KindEmail, "x\x00@example.com", Signup)},
			{"invalid UTF-8", ident("x", psi.KindEmail, "x\xff@example.com", Signup)},
			{"invalid purpose", ident("x", psi.KindEmail, "x@example.com", "marketing")},
			// The digest is not SHA-256 of the value.
			{"wrong digest", badDigest},
		} {
			_, err := s.ImportIdentifiers(t.Context(), withBad(tc.bad), ImportOptions{})
			var re *RowError
			if !errors.As(err, &re) || re.Row != 7 {
				t.Errorf("%s: err = %v, want a RowError for row 7", tc.name, err)
			}
			if err != nil && bytes.Contains([]byte(err.Error()), []byte("example.com")) {
				t.Errorf("%s: error %q leaks the value", tc.name, err)
			}
		}

		// A context cancelled mid-stream.
		ctx, cancel := context.WithCancel(t.Context())
		_, err := s.ImportIdentifiers(ctx, func(yield func(Identifier) bool) {
			for i := range 100 {
				if i == 50 {
					cancel()
				}
				if !yield(good(i)) {
					return
				}
			}
		}, ImportOptions{})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled import: err = %v, want context.Canceled", err)
		}

		if after := tableCounts(t, s); !mapsEqual(before, after) {
			t.Errorf("failed imports changed the tables: %v -> %v", before, after)
		}
		if _, info := snap(t, s, psi.KindEmail); info.Digest != base.Digest {
			t.Errorf("failed imports changed the snapshot")
		}
		// The store still works.
		if got := mustImport(t, s, good(1), good(2)); got.Inserted != 2 {
			t.Errorf("import after failures = %+v", got)
		}
	})

	t.Run("FailedAppendChangesNothing", func(t *testing.T) {
		s := open(t)
		mustImport(t, s,
			ident("u1", psi.KindEmail, "ana@example.com", Signup),
			ident("u2", psi.KindEmail, "bo@example.com", Signup),
		)
		mustAppend(t, s, wide("u1", true, t0))
		before := tableCounts(t, s)
		for _, tc := range []struct {
			name    string
			events  []ConsentEvent
			row     int64
			unknown bool
		}{
			// Scoped to an identifier that was never imported.
			{"unknown value", []ConsentEvent{wide("u2", true, t0), scoped("u2", psi.KindEmail, "nobody@example.com", true, t0)}, 2, true},
			// Subject-wide for a subject with no identifier.
			{"subject-wide, unknown subject", []ConsentEvent{wide("u2", true, t0), wide("u-new", true, t0)}, 2, false},
			{"subject-wide, wrong case", []ConsentEvent{wide("U2", false, t0)}, 1, false},
			// A purpose the rule does not read, a time in the future.
			{"misspelt purpose", []ConsentEvent{func() ConsentEvent { e := wide("u2", false, t0); e.Purpose = "ad-matching"; return e }()}, 1, false},
			{"future grant", []ConsentEvent{wide("u2", true, time.Now().Add(ClockSkew+time.Minute))}, 1, false},
			{"unknown subject", []ConsentEvent{wide("u2", true, t0), scoped("u9", psi.KindEmail, "ana@example.com", true, t0)}, 2, true},
			{"other subject's identifier", []ConsentEvent{scoped("u2", psi.KindEmail, "ana@example.com", true, t0)}, 1, true},
			{"wrong kind", []ConsentEvent{scoped("u1", psi.KindPhone, "ana@example.com", true, t0)}, 1, true},
			// Invalid events.
			{"no time", []ConsentEvent{wide("u2", true, time.Time{})}, 1, false},
			{"kind without value", []ConsentEvent{wide("u2", true, t0), scoped("u2", psi.KindEmail, "", true, t0)}, 2, false},
			{"value without kind", []ConsentEvent{scoped("u2", 0, "bo@example.com", true, t0)}, 1, false},
			{"grant without text version", []ConsentEvent{{Subject: "u2", Purpose: AdMatching, Granted: true, At: t0, Source: "s"}}, 1, false},
			{"no source", []ConsentEvent{{Subject: "u2", Purpose: AdMatching, At: t0}}, 1, false},
			{"no purpose", []ConsentEvent{{Subject: "u2", Granted: true, At: t0, Source: "s", TextVersion: "v1"}}, 1, false},
		} {
			res, err := s.AppendConsent(t.Context(), slices.Values(tc.events), ImportOptions{})
			var re *RowError
			if res != (ImportResult{}) || !errors.As(err, &re) || re.Row != tc.row || errors.Is(err, ErrUnknownIdentifier) != tc.unknown {
				t.Errorf("%s: AppendConsent = %+v, %v; want a RowError for row %d (unknown identifier: %t)", tc.name, res, err, tc.row, tc.unknown)
			}
			if err != nil && bytes.Contains([]byte(err.Error()), []byte("example.com")) {
				t.Errorf("%s: error %q leaks the value", tc.name, err)
			}
		}
		// A context cancelled mid-stream, inside the first chunk.
		ctx, cancel := context.WithCancel(t.Context())
		res, err := s.AppendConsent(ctx, func(yield func(ConsentEvent) bool) {
			for i := range 100 {
				if i == 10 {
					cancel()
				}
				if !yield(wide("u2", true, t0.Add(time.Duration(i)*time.Second))) {
					return
				}
			}
		}, ImportOptions{})
		if res != (ImportResult{}) || !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled append = %+v, %v; want nothing, context.Canceled", res, err)
		}
		if after := tableCounts(t, s); !mapsEqual(before, after) {
			t.Errorf("failed appends changed the tables: %v -> %v", before, after)
		}
		// A withdrawal needs no text version.
		mustAppend(t, s,
			ConsentEvent{Subject: "u1", Purpose: AdMatching, At: t0.Add(time.Hour), Source: "unsubscribe"},
		)
		wantSnapshot(t, s, psi.KindEmail)
	})

	t.Run("AppendOnly", func(t *testing.T) {
		s := open(t)
		mustImport(t, s, ident("u1", psi.KindEmail, "ana@example.com", Signup))
		mustAppend(t, s, wide("u1", true, t0), wide("u1", false, t0.Add(time.Hour)))
		for _, q := range []string{
			"UPDATE consent_events SET granted = TRUE",
			"UPDATE consent_events SET at = at",
			"DELETE FROM consent_events",
			"DELETE FROM consent_events WHERE granted = FALSE",
		} {
			if err := rawExec(t, s, q); err == nil || !bytes.Contains([]byte(err.Error()), []byte("append-only")) {
				t.Errorf("%s: err = %v, want the append-only trigger", q, err)
			}
		}
		if _, ok := s.(*Postgres); ok {
			if err := rawExec(t, s, "TRUNCATE consent_events"); err == nil {
				t.Errorf("TRUNCATE consent_events succeeded")
			}
		}
		if n := rawInt(t, s, "SELECT count(*) FROM consent_events WHERE granted = FALSE"); n != 1 {
			t.Errorf("withdrawals = %d, want 1", n)
		}
		wantSnapshot(t, s, psi.KindEmail)
	})

	t.Run("Stats", func(t *testing.T) {
		s := open(t)
		mustImport(t, s,
			ident("u1", psi.KindEmail, "a@example.com", Signup),     // matchable
			ident("u1", psi.KindPhone, "+14155550101", TwoFactor),   // security
			ident("u2", psi.KindEmail, "b@example.com", Signup),     // withdrawn
			ident("u2", psi.KindPhone, "+14155550102", Recovery),    // security, even though withdrawn
			ident("u3", psi.KindEmail, "c@example.com", Profile),    // no consent
			ident("u3", psi.KindEmail, "c@example.com", LoginAlert), // ... and security: security wins
			ident("u4", psi.KindEmail, "d@example.com", Profile),    // no consent
			ident("u5", psi.KindEmail, "a@example.com", Imported),   // matchable, same digest as u1's
			ident("u5", psi.KindID, "crm-5", Imported),              // matchable
		)
		mustAppend(t, s,
			wide("u1", true, t0),
			wide("u2", true, t0), wide("u2", false, t0.Add(time.Minute)),
			wide("u5", true, t0),
		)
		want := []KindStats{
			{Kind: psi.KindEmail, Identifiers: 5, Matchable: 2, NoConsent: 1, Withdrawn: 1, Security: 1},
			{Kind: psi.KindPhone, Identifiers: 2, Security: 2},
			{Kind: psi.KindID, Identifiers: 1, Matchable: 1},
		}
		got, err := s.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Stats = %+v\nwant  %+v", got, want)
		}
		// Two matchable rows share one digest: the snapshot has one.
		if info := wantSnapshot(t, s, psi.KindEmail, "a@example.com"); info.Size != 1 {
			t.Errorf("Size = %d, want 1", info.Size)
		}
	})

	t.Run("EmptyAndErrors", func(t *testing.T) {
		s := open(t)
		info := wantSnapshot(t, s, psi.KindID)
		if info.LedgerPosition != 0 || info.Digest != snapshotDigest(psi.KindID, nil) {
			t.Errorf("empty snapshot = %+v", info)
		}
		if _, err := s.Snapshot(t.Context(), 0, func([32]byte) error { return nil }); err == nil {
			t.Error("Snapshot(kind 0) succeeded")
		}
		mustImport(t, s, ident("u1", psi.KindID, "x", Signup), ident("u1", psi.KindID, "y", Signup))
		mustAppend(t, s, wide("u1", true, t0))
		stop := errors.New("stop")
		before := tableCounts(t, s)
		if _, err := s.Snapshot(t.Context(), psi.KindID, func([32]byte) error { return stop }); !errors.Is(err, stop) {
			t.Errorf("Snapshot with failing fn: err = %v", err)
		}
		if after := tableCounts(t, s); !mapsEqual(before, after) {
			t.Errorf("failed snapshot was recorded: %v -> %v", before, after)
		}
		stats, err := s.Stats(t.Context())
		if err != nil || len(stats) != 3 {
			t.Errorf("Stats = %v, %v", stats, err)
		}
	})

	runLedgerSuite(t, open)
	t.Run("Generation", func(t *testing.T) { testGeneration(t, open(t)) })
	t.Run("SnapshotPerSubject", func(t *testing.T) { testSnapshotPerSubject(t, open(t)) })
	t.Run("SnapshotPerSubjectTieByImportOrder", func(t *testing.T) { testTieByImportOrder(t, open(t)) })

	t.Run("MatchesReference", func(t *testing.T) {
		s := open(t)
		ids, events := genData(1, 300)
		mustImport(t, s, ids...)
		mustAppend(t, s, events...)
		want, wantStats := reference(ids, events)
		for _, k := range psi.Kinds {
			got, _ := snap(t, s, k)
			if !slices.Equal(got, want[k]) {
				t.Errorf("%v: snapshot has %d digests, reference %d", k, len(got), len(want[k]))
			}
		}
		// The capped snapshots too; the cap of 1 must bite somewhere.
		bites := false
		for _, maxPer := range []int{1, 2} {
			wantCapped := referencePerSubject(ids, events, maxPer)
			for _, k := range psi.Kinds {
				got, _ := snapPerSubject(t, s, k, maxPer)
				if !slices.Equal(got, wantCapped[k]) {
					t.Errorf("%v, at most %d per subject: %d digests, reference %d", k, maxPer, len(got), len(wantCapped[k]))
				}
				bites = bites || len(got) < len(want[k])
			}
		}
		if !bites {
			t.Error("no subject has two matchable identifiers of a kind; the generator should make some")
		}
		// A cap no subject reaches gives the uncapped snapshot.
		for _, k := range psi.Kinds {
			_, capped := snapPerSubject(t, s, k, MaxSnapshotPerSubject)
			if capped.Size != int64(len(want[k])) || capped.Digest != snapshotDigest(k, want[k]) {
				t.Errorf("%v, at most %d per subject: %d digests, want the %d of the uncapped set", k, MaxSnapshotPerSubject, capped.Size, len(want[k]))
			}
		}
		got, err := s.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, wantStats) {
			t.Errorf("Stats = %+v\nreference %+v", got, wantStats)
		}
	})
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// genData makes a deterministic, adversarial ledger: shared values across
// subjects, several purposes per identifier, scoped and subject-wide events
// with many ties on at. Every event is one the store accepts: subjects
// without identifiers get none, and every purpose is ad_matching.
func genData(seed uint64, subjects int) ([]Identifier, []ConsentEvent) {
	r := rand.New(rand.NewPCG(seed, 0x6f7665726c6170))
	var ids []Identifier
	var events []ConsentEvent
	value := func(k psi.Kind) string {
		n := r.IntN(subjects) // small space: values repeat across subjects
		switch k {
		case psi.KindEmail:
			return fmt.Sprintf("user%d@example.com", n)
		case psi.KindPhone:
			return fmt.Sprintf("+1415555%04d", n)
		}
		return fmt.Sprintf("crm-%d", n)
	}
	at := func() time.Time { return t0.Add(time.Duration(r.IntN(8)) * time.Hour) }
	for i := range subjects {
		subject := fmt.Sprintf("s%04d", i)
		var mine []Identifier
		for range r.IntN(4) {
			k := psi.Kinds[r.IntN(len(psi.Kinds))]
			v := value(k)
			for range 1 + r.IntN(2) {
				p := Purposes[r.IntN(len(Purposes))]
				if r.IntN(3) > 0 && p.Security() {
					p = Signup // make security rarer
				}
				id := ident(subject, k, v, p)
				ids = append(ids, id)
				mine = append(mine, id)
			}
		}
		for range r.IntN(5) {
			if len(mine) == 0 {
				break
			}
			e := wide(subject, r.IntN(3) > 0, at())
			if r.IntN(2) == 0 {
				id := mine[r.IntN(len(mine))]
				e.Kind, e.Value = id.Kind, id.Value
			}
			if r.IntN(8) == 0 {
				e.Source = "support" // differs from an otherwise equal event
			}
			events = append(events, e)
		}
	}
	r.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
	// The store appends an event identical to one in the ledger once.
	seen := map[ConsentEvent]bool{}
	events = slices.DeleteFunc(events, func(e ConsentEvent) bool {
		dup := seen[e]
		seen[e] = true
		return dup
	})
	return ids, events
}

// refKey names an identifier in the reference ledger.
type refKey struct {
	subject string
	kind    psi.Kind
	value   string
}

// refLatest is the latest ad_matching event covering an identifier.
type refLatest struct {
	at      time.Time
	seq     int // position in append order
	granted bool
	ok      bool // false: no covering event
}

// refLedger is the ledger in plain Go: identifiers in import order (their
// ids), each one's latest covering event, and the digests collected for
// security.
type refLedger struct {
	order    []refKey
	status   map[refKey]refLatest
	security map[refKD]bool
}

type refKD struct {
	kind   psi.Kind
	digest [32]byte
}

func newRefLedger(ids []Identifier, events []ConsentEvent) refLedger {
	l := refLedger{status: map[refKey]refLatest{}, security: map[refKD]bool{}}
	seen := map[refKey]bool{}
	for _, id := range ids {
		k := refKey{id.Subject, id.Kind, id.Value}
		if !seen[k] {
			seen[k] = true
			l.order = append(l.order, k)
		}
		if id.CollectedFor.Security() {
			l.security[refKD{id.Kind, id.Digest}] = true
		}
	}
	later := func(l refLatest, at time.Time, seq int) bool {
		return !l.ok || at.After(l.at) || (at.Equal(l.at) && seq > l.seq)
	}
	for _, k := range l.order {
		var latest refLatest
		for seq, e := range events {
			if e.Purpose != AdMatching || e.Subject != k.subject {
				continue
			}
			if !e.subjectWide() && (e.Kind != k.kind || e.Value != k.value) {
				continue
			}
			at := e.At.UTC().Truncate(time.Microsecond)
			if later(latest, at, seq) {
				latest = refLatest{at, seq, e.Granted, true}
			}
		}
		l.status[k] = latest
	}
	return l
}

func (l refLedger) matchable(k refKey) bool {
	st := l.status[k]
	return !l.security[refKD{k.kind, digestOf(k.value)}] && st.ok && st.granted
}

func sortedSet(set map[[32]byte]bool) [][32]byte {
	list := [][32]byte{}
	for d := range set {
		list = append(list, d)
	}
	slices.SortFunc(list, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return list
}

// referencePerSubject computes the capped matchable sets of
// SnapshotPerSubject in plain Go: per subject and kind, the matchable
// identifiers by covering grant (time, then append order), then import
// order, the first maxPer of them.
func referencePerSubject(ids []Identifier, events []ConsentEvent, maxPer int) map[psi.Kind][][32]byte {
	l := newRefLedger(ids, events)
	type sk struct {
		subject string
		kind    psi.Kind
	}
	ranked := map[sk][]int{} // indexes into l.order, in import order
	for i, k := range l.order {
		if l.matchable(k) {
			ranked[sk{k.subject, k.kind}] = append(ranked[sk{k.subject, k.kind}], i)
		}
	}
	sets := map[psi.Kind]map[[32]byte]bool{}
	for key, list := range ranked {
		slices.SortStableFunc(list, func(a, b int) int {
			sa, sb := l.status[l.order[a]], l.status[l.order[b]]
			if c := sa.at.Compare(sb.at); c != 0 {
				return c
			}
			return sa.seq - sb.seq
		})
		if sets[key.kind] == nil {
			sets[key.kind] = map[[32]byte]bool{}
		}
		for _, i := range list[:min(maxPer, len(list))] {
			sets[key.kind][digestOf(l.order[i].value)] = true
		}
	}
	out := map[psi.Kind][][32]byte{}
	for _, kind := range psi.Kinds {
		out[kind] = sortedSet(sets[kind])
	}
	return out
}

// reference computes the matchable sets and Stats of the package doc in
// plain Go, with events numbered in append order.
func reference(ids []Identifier, events []ConsentEvent) (map[psi.Kind][][32]byte, []KindStats) {
	l := newRefLedger(ids, events)
	sets := map[psi.Kind]map[[32]byte]bool{}
	stats := newStatsBuilder()
	for _, k := range l.order {
		d := digestOf(k.value)
		st := l.status[k]
		switch {
		case l.security[refKD{k.kind, d}]:
			stats.add(k.kind, "security", 1)
		case !st.ok:
			stats.add(k.kind, "no_consent", 1)
		case !st.granted:
			stats.add(k.kind, "withdrawn", 1)
		default:
			stats.add(k.kind, "matchable", 1)
			if sets[k.kind] == nil {
				sets[k.kind] = map[[32]byte]bool{}
			}
			sets[k.kind][d] = true
		}
	}
	out := map[psi.Kind][][32]byte{}
	for _, kind := range psi.Kinds {
		out[kind] = sortedSet(sets[kind])
	}
	return out, stats.list()
}

// testGeneration checks the ledger generation: every change to the tables
// the matchable set comes from moves it on, through the store or under it
// in SQL, and nothing else does; a snapshot records the generation it saw.
func testGeneration(t *testing.T, s Store) {
	gen := func() int64 {
		t.Helper()
		g, err := s.Generation(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	moved := func(what string, change func()) {
		t.Helper()
		before := gen()
		change()
		if after := gen(); after <= before {
			t.Errorf("%s: generation %d before, %d after; want it moved on", what, before, after)
		}
	}
	kept := func(what string, change func()) {
		t.Helper()
		before := gen()
		change()
		if after := gen(); after != before {
			t.Errorf("%s: generation %d before, %d after; want it unchanged", what, before, after)
		}
	}
	exec := func(q string) func() {
		return func() {
			t.Helper()
			if err := rawExec(t, s, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}

	moved("import", func() {
		mustImport(t, s, ident("u1", psi.KindEmail, "ana@example.com", Signup), ident("u2", psi.KindEmail, "bo@example.com", Profile))
	})
	moved("append", func() { mustAppend(t, s, wide("u1", true, t0), wide("u2", true, t0)) })
	_, info := snap(t, s, psi.KindEmail)
	if info.Generation != gen() {
		t.Errorf("snapshot saw generation %d, the store is at %d", info.Generation, gen())
	}
	kept("a snapshot", func() { snap(t, s, psi.KindEmail) })
	kept("a per-subject snapshot", func() {
		if _, err := s.SnapshotPerSubject(t.Context(), psi.KindEmail, 1, func([32]byte) error { return nil }); err != nil {
			t.Fatal(err)
		}
	})
	kept("an advertiser", func() {
		if _, err := s.AddAdvertiser(t.Context(), Advertiser{Name: "gen-adv", KeyID: "genkey", KeyHash: [32]byte{1}}); err != nil {
			t.Fatal(err)
		}
	})
	// Under the store, in SQL: each of these can change the matchable set.
	moved("a security collection added in SQL", exec("INSERT INTO identifier_collections (identifier_id, collected_for) SELECT id, 'two_factor' FROM identifiers WHERE value = 'bo@example.com'"))
	moved("a collection changed in SQL", exec("UPDATE identifier_collections SET collected_for = 'recovery' WHERE collected_for = 'two_factor'"))
	moved("a collection deleted in SQL", exec("DELETE FROM identifier_collections WHERE collected_for = 'recovery'"))
	moved("an identifier changed in SQL", exec("UPDATE identifiers SET digest = digest WHERE value = 'ana@example.com'"))
	moved("a consent event inserted in SQL", func() {
		q := "INSERT INTO consent_events (subject_id, identifier_id, purpose, granted, at, source, text_version, recorded_at) " +
			"SELECT subject_id, NULL, 'ad_matching', %s, %s, 'sql', 'v1', %s FROM identifiers WHERE value = 'ana@example.com'"
		if _, ok := s.(*Postgres); ok {
			q = fmt.Sprintf(q, "false", "now()", "now()")
		} else {
			q = fmt.Sprintf(q, "0", "1", "1")
		}
		exec(q)()
	})
	if err := rawExec(t, s, "DELETE FROM ledger_generation"); err == nil {
		t.Error("the generation's row could be deleted")
	}
	// The generation the last snapshot saw is no longer current, and the
	// set did change: ana withdrew, bo is a two-factor address no more.
	_, now := snap(t, s, psi.KindEmail)
	if now.Generation == info.Generation || now.Generation != gen() {
		t.Errorf("snapshots at generations %d and %d, store at %d", info.Generation, now.Generation, gen())
	}
}
