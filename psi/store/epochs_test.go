package store

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/wire"
)

func TestSQLiteEpochs(t *testing.T) {
	t.Parallel()
	runEpochSuite(t, func(t *testing.T) Store { return openSQLiteTest(t) })
}

func TestPostgresEpochs(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skip("postgres: OVERLAP_TEST_POSTGRES not set; run .ci/postgres.sh")
	}
	t.Parallel()
	runEpochSuite(t, func(t *testing.T) Store { return openPostgresTest(t) })
}

var et0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// epochKey returns a random valid epoch key: 32 bytes, little-endian,
// below 2^252 < ℓ, not zero.
func epochKey(t testing.TB) [32]byte {
	t.Helper()
	var k [32]byte
	rand.Read(k[:])
	k[31] &= 0x0f
	k[0] |= 1
	return k
}

// testEpoch builds an epoch of size kept tags, as psi.Epoch.EncodeTags
// writes them (SPEC.md §10.12.5: sorted 64-bit fingerprints, 8 big-endian
// bytes each), with a random key, expiring at expires, and rebuilds it
// with psi.LoadEpoch.
func testEpoch(t testing.TB, seed uint64, size int, serverSize uint32, expires time.Time) *psi.Epoch {
	t.Helper()
	var id [16]byte
	rand.Read(id[:])
	meta := psi.EpochMeta{
		ID: id, Kind: psi.KindEmail, CanonVersion: 1, CanonFlags: 2,
		ServerSize: serverSize, Size: size, ExpiresAt: expires,
	}
	rand.Read(meta.ClientKey[:])
	var chunks []struct {
		count int
		data  []byte
	}
	if size > 0 {
		rng := mrand.New(mrand.NewPCG(seed, 1))
		fps := make([]uint64, size)
		for i := range fps {
			fps[i] = rng.Uint64()
		}
		slices.Sort(fps)
		for i := 0; i < size; i += 10_000 {
			part := fps[i:min(i+10_000, size)]
			var data []byte
			for _, v := range part {
				data = binary.BigEndian.AppendUint64(data, v)
			}
			chunks = append(chunks, struct {
				count int
				data  []byte
			}{len(part), data})
		}
	}
	ep, err := psi.LoadEpoch(meta, epochKey(t), func(add func(int, []byte) error) error {
		for _, c := range chunks {
			if err := add(c.count, c.data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// encodedTags is what EncodeTags writes of ep, chunk by chunk.
func encodedTags(t testing.TB, ep *psi.Epoch) (chunks [][]byte, total int) {
	t.Helper()
	err := ep.EncodeTags(EpochTagChunk, func(count int, data []byte) error {
		chunks = append(chunks, append([]byte(fmt.Sprintf("%d:", count)), data...))
		total += len(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return chunks, total
}

func saveEpoch(t testing.TB, s Store, adv int64, ep *psi.Epoch, created time.Time) EpochRecord {
	t.Helper()
	rec := EpochRecord{Meta: ep.Meta(), Advertiser: adv, SnapshotVersion: 0, CreatedAt: created}
	if err := s.SaveEpoch(t.Context(), rec, ep); err != nil {
		t.Fatalf("SaveEpoch: %v", err)
	}
	return rec
}

func metaEqual(a, b psi.EpochMeta) bool {
	ea, eb := a.ExpiresAt, b.ExpiresAt
	a.ExpiresAt, b.ExpiresAt = time.Time{}, time.Time{}
	return a == b && ea.Equal(eb)
}

func epochIDs(recs []EpochRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, EpochIDString(r.Meta.ID))
	}
	return out
}

// runEpochSuite tests the epochs of SPEC.md §10.12.5 against one engine;
// open returns a fresh, empty store.
func runEpochSuite(t *testing.T, open func(t *testing.T) Store) {
	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		a, b := mustAdvertiser(t, s, "acme"), mustAdvertiser(t, s, "other")
		// A setup's shape at |Y_E| = 10^6: N = Bucket(|Y_E| + R_E).
		size := 1_000_000
		n := uint32(psi.Bucket(uint64(size + psi.EpochRingers(size))))
		ep := testEpoch(t, 1, size, n, et0.Add(24*time.Hour))
		snap := [32]byte{1, 2, 3}
		rec := EpochRecord{Meta: ep.Meta(), Advertiser: a.ID, SnapshotVersion: 42, SnapshotDigest: snap, CreatedAt: et0.Add(123456789 * time.Nanosecond)}
		if err := s.SaveEpoch(ctx, rec, ep); err != nil {
			t.Fatal(err)
		}
		got, grec, err := s.LoadEpoch(ctx, a.ID, ep.Meta().ID)
		if err != nil {
			t.Fatal(err)
		}
		want, wantBytes := encodedTags(t, ep)
		have, haveBytes := encodedTags(t, got)
		if !slices.EqualFunc(want, have, bytes.Equal) || len(want) != (size+EpochTagChunk-1)/EpochTagChunk {
			t.Errorf("the loaded epoch's tags differ: %d chunks, want %d", len(have), len(want))
		}
		if got.ExportKey() != ep.ExportKey() {
			t.Error("the loaded epoch's key differs")
		}
		if !metaEqual(got.Meta(), ep.Meta()) || !metaEqual(grec.Meta, ep.Meta()) {
			t.Errorf("loaded meta %+v, record %+v; want %+v", got.Meta(), grec.Meta, ep.Meta())
		}
		if grec.Advertiser != a.ID || grec.SnapshotVersion != 42 || grec.SnapshotDigest != snap ||
			!grec.CreatedAt.Equal(et0.Add(123456*time.Microsecond)) || grec.TagBytes != int64(wantBytes) || haveBytes != wantBytes {
			t.Errorf("loaded record %+v; want advertiser %d, snapshot 42, created %v, %d tag bytes", grec, a.ID, et0, wantBytes)
		}
		perElement := float64(grec.TagBytes) / float64(size)
		t.Logf("%d random tags of N = %d: %d bytes stored, %.3f bytes per element", size, n, grec.TagBytes, perElement)
		if perElement != 8 {
			t.Errorf("%.3f bytes per stored tag, want 8 (SPEC.md §10.12.5; the issue's bound is 10)", perElement)
		}
		// The shape of a setup at |Y_E| = 10^7 (N/|Y_E| = 1.049), scaled
		// down: what the store keeps per element at platform scale.
		big := testEpoch(t, 7, 500_000, 524_288, et0.Add(time.Hour))
		saveEpoch(t, s, b.ID, big, et0)
		if recs, err := s.Epochs(ctx, b.ID); err != nil || len(recs) != 1 {
			t.Fatalf("Epochs = %v, %v", recs, err)
		} else if pe := float64(recs[0].TagBytes) / 500_000; pe != 8 {
			t.Errorf("%.3f bytes per stored tag at N/|Y_E| = 1.049, want 8", pe)
		} else {
			t.Logf("500000 random tags of N = 524288: %d bytes stored, %.3f bytes per element", recs[0].TagBytes, pe)
		}
		if n, err := s.DeleteEpochs(ctx, b.ID, time.Time{}); err != nil || n != 1 {
			t.Fatalf("DeleteEpochs = %d, %v", n, err)
		}

		// Another advertiser's id, and an unknown id, are ErrNoEpoch.
		for _, tc := range []struct {
			adv int64
			id  [16]byte
		}{{b.ID, ep.Meta().ID}, {0, ep.Meta().ID}, {a.ID, [16]byte{9}}} {
			if e, _, err := s.LoadEpoch(ctx, tc.adv, tc.id); !errors.Is(err, ErrNoEpoch) || !errors.Is(err, psi.ErrEpoch) || e != nil {
				t.Errorf("LoadEpoch(%d, %x) = %v, %v; want ErrNoEpoch", tc.adv, tc.id, e, err)
			}
		}
		// The same id twice is refused, and keeps the first.
		if err := s.SaveEpoch(ctx, EpochRecord{Meta: ep.Meta(), Advertiser: b.ID}, ep); err == nil {
			t.Error("SaveEpoch of a stored id succeeded")
		}
		if recs, err := s.Epochs(ctx, 0); err != nil || len(recs) != 1 || recs[0].Advertiser != a.ID {
			t.Errorf("after a refused save: %+v, %v", recs, err)
		}
		// An epoch with no kept tags.
		empty := testEpoch(t, 2, 0, 1<<20, et0.Add(time.Hour))
		saveEpoch(t, s, a.ID, empty, et0)
		if got, grec, err := s.LoadEpoch(ctx, a.ID, empty.Meta().ID); err != nil || grec.TagBytes != 0 || got.Meta().Size != 0 {
			t.Errorf("empty epoch: %v, %+v, %v", got, grec, err)
		}
		if n := rawInt(t, s, "SELECT count(*) FROM epoch_tags"); n != int64(len(want)) {
			t.Errorf("epoch_tags has %d rows, want %d", n, len(want))
		}
	})

	t.Run("LoadRefusesDamage", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		a := mustAdvertiser(t, s, "acme")
		zero := "zeroblob(32)"
		if _, ok := s.(*Postgres); ok {
			zero = "decode(repeat('00', 32), 'hex')"
		}
		for _, damage := range []string{
			"DELETE FROM epoch_tags WHERE seq = 1",
			"DELETE FROM epoch_tags WHERE seq = 2",
			"UPDATE epoch_tags SET seq = seq + 1 WHERE seq = 2",
			"UPDATE epochs SET tag_bytes = tag_bytes + 1",
			"UPDATE epochs SET epoch_key = " + zero,
			"UPDATE epoch_tags SET count = count - 1 WHERE seq = 0",
			"UPDATE epoch_tags SET count = count + 1 WHERE seq = 0",
			"UPDATE epochs SET size = size - 1",
			"UPDATE epochs SET server_size = size",
			"UPDATE epoch_tags SET data = substr(data, 1, 100) WHERE seq = 1",
		} {
			ep := testEpoch(t, 8, 150_000, 1<<20, et0.Add(time.Hour))
			saveEpoch(t, s, a.ID, ep, et0)
			if err := rawExec(t, s, damage); err != nil {
				t.Fatalf("%s: %v", damage, err)
			}
			got, _, err := s.LoadEpoch(ctx, a.ID, ep.Meta().ID)
			key := ep.ExportKey()
			switch {
			case err == nil || got != nil:
				t.Errorf("%s: LoadEpoch = %v, %v; want an error", damage, got, err)
			case errors.Is(err, ErrNoEpoch) || !strings.HasPrefix(err.Error(), "store: "):
				t.Errorf("%s: LoadEpoch error %q", damage, err)
			case strings.Contains(err.Error(), fmt.Sprintf("%x", key[:8])):
				t.Errorf("%s: LoadEpoch error shows the key", damage)
			}
			if n, err := s.DeleteEpochs(ctx, a.ID, time.Time{}); err != nil || n != 1 {
				t.Fatalf("DeleteEpochs of a damaged epoch = %d, %v", n, err)
			}
		}
	})

	t.Run("ConcurrentDeletes", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		a := mustAdvertiser(t, s, "acme")
		const epochs, deleters = 6, 4
		for i := range epochs {
			saveEpoch(t, s, a.ID, testEpoch(t, uint64(30+i), 1000, 1<<20, et0), et0)
		}
		counts := make(chan int, deleters)
		for range deleters {
			go func() {
				n, err := s.DeleteEpochs(ctx, 0, et0.Add(time.Hour))
				if err != nil {
					t.Errorf("DeleteEpochs: %v", err)
				}
				counts <- n
			}()
		}
		total := 0
		for range deleters {
			total += <-counts
		}
		if total != epochs || rawInt(t, s, "SELECT count(*) FROM epochs") != 0 {
			t.Errorf("concurrent deletions counted %d of %d epochs", total, epochs)
		}
	})

	t.Run("SaveRefuses", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		a := mustAdvertiser(t, s, "acme")
		ep := testEpoch(t, 3, 100, 1<<20, et0.Add(time.Hour))
		other := testEpoch(t, 4, 100, 1<<20, et0.Add(time.Hour))
		for name, tc := range map[string]struct {
			rec EpochRecord
			ep  *psi.Epoch
		}{
			"no epoch":             {EpochRecord{Meta: ep.Meta(), Advertiser: a.ID}, nil},
			"another epoch's meta": {EpochRecord{Meta: other.Meta(), Advertiser: a.ID}, ep},
			"no advertiser":        {EpochRecord{Meta: ep.Meta()}, ep},
			"unknown advertiser":   {EpochRecord{Meta: ep.Meta(), Advertiser: a.ID + 100}, ep},
			"negative snapshot":    {EpochRecord{Meta: ep.Meta(), Advertiser: a.ID, SnapshotVersion: -1}, ep},
		} {
			err := s.SaveEpoch(ctx, tc.rec, tc.ep)
			if err == nil || !strings.HasPrefix(err.Error(), "store: ") {
				t.Errorf("%s: SaveEpoch = %v, want a store error", name, err)
			}
		}
		if n := rawInt(t, s, "SELECT count(*) FROM epochs") + rawInt(t, s, "SELECT count(*) FROM epoch_tags"); n != 0 {
			t.Errorf("refused saves left %d rows", n)
		}
		// A record's CreatedAt defaults to now.
		before := time.Now().Add(-time.Second)
		saveEpoch(t, s, a.ID, ep, time.Time{})
		recs, err := s.Epochs(ctx, a.ID)
		if err != nil || len(recs) != 1 || recs[0].CreatedAt.Before(before) || recs[0].CreatedAt.After(time.Now()) {
			t.Errorf("Epochs = %+v, %v; want one created now", recs, err)
		}
	})

	t.Run("ListAndDelete", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		a, b := mustAdvertiser(t, s, "acme"), mustAdvertiser(t, s, "other")
		// Epochs of a expiring at et0+1h, +2h, +3h, created in that order;
		// one of b expiring at +2h.
		var eps []*psi.Epoch
		for i := range 3 {
			ep := testEpoch(t, uint64(10+i), 70_000, 1<<20, et0.Add(time.Duration(i+1)*time.Hour))
			saveEpoch(t, s, a.ID, ep, et0.Add(time.Duration(i)*time.Minute))
			eps = append(eps, ep)
		}
		eb := testEpoch(t, 20, 10, 1<<20, et0.Add(2*time.Hour))
		saveEpoch(t, s, b.ID, eb, et0.Add(time.Hour))
		id := func(ep *psi.Epoch) string { return EpochIDString(ep.Meta().ID) }

		recs, err := s.Epochs(ctx, a.ID)
		if want := []string{id(eps[2]), id(eps[1]), id(eps[0])}; err != nil || !slices.Equal(epochIDs(recs), want) {
			t.Errorf("Epochs(a) = %v, %v; want newest first %v", epochIDs(recs), err, want)
		}
		for _, r := range recs {
			if r.TagBytes == 0 || r.Meta.Size != 70_000 || r.Advertiser != a.ID {
				t.Errorf("listed record %+v", r)
			}
		}
		recs, err = s.Epochs(ctx, 0)
		if want := []string{id(eb), id(eps[2]), id(eps[1]), id(eps[0])}; err != nil || !slices.Equal(epochIDs(recs), want) {
			t.Errorf("Epochs(0) = %v, %v; want %v", epochIDs(recs), err, want)
		}

		// Expiry at or before et0+2h: a's first two and b's.
		n, err := s.DeleteEpochs(ctx, 0, et0.Add(2*time.Hour))
		if err != nil || n != 3 {
			t.Fatalf("DeleteEpochs(0, +2h) = %d, %v; want 3", n, err)
		}
		for _, tc := range []struct {
			adv int64
			ep  *psi.Epoch
		}{{a.ID, eps[0]}, {a.ID, eps[1]}, {b.ID, eb}} {
			if _, _, err := s.LoadEpoch(ctx, tc.adv, tc.ep.Meta().ID); !errors.Is(err, ErrNoEpoch) {
				t.Errorf("LoadEpoch of a deleted epoch: %v", err)
			}
		}
		if got, _, err := s.LoadEpoch(ctx, a.ID, eps[2].Meta().ID); err != nil || got.ExportKey() != eps[2].ExportKey() {
			t.Errorf("LoadEpoch of the kept epoch: %v", err)
		}
		// Nothing of the deleted epochs is left: no row, no tag, no key.
		chunks := int64((70_000 + EpochTagChunk - 1) / EpochTagChunk)
		if n := rawInt(t, s, "SELECT count(*) FROM epoch_tags"); n != chunks {
			t.Errorf("epoch_tags has %d rows after the deletion, want %d", n, chunks)
		}
		if n := rawInt(t, s, "SELECT count(*) FROM epochs"); n != 1 {
			t.Errorf("epochs has %d rows after the deletion, want 1", n)
		}
		// Again: nothing more to delete.
		if n, err := s.DeleteEpochs(ctx, 0, et0.Add(2*time.Hour)); err != nil || n != 0 {
			t.Errorf("DeleteEpochs again = %d, %v", n, err)
		}
		// Another advertiser's deletion, even of everything, keeps a's.
		if n, err := s.DeleteEpochs(ctx, b.ID, time.Time{}); err != nil || n != 0 {
			t.Errorf("DeleteEpochs(b, all) = %d, %v", n, err)
		}
		// Zero before: every epoch of the advertiser, expired or not
		// (an operator's --expire).
		if n, err := s.DeleteEpochs(ctx, a.ID, time.Time{}); err != nil || n != 1 {
			t.Errorf("DeleteEpochs(a, all) = %d, %v; want 1", n, err)
		}
		if n := rawInt(t, s, "SELECT count(*) FROM epochs") + rawInt(t, s, "SELECT count(*) FROM epoch_tags"); n != 0 {
			t.Errorf("%d rows left after deleting everything", n)
		}
	})

	t.Run("SessionEpochFields", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		a := mustAdvertiser(t, s, "acme")
		epID := EpochIDString([16]byte{0xab, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff})
		expires := et0.Add(24*time.Hour + 1500*time.Nanosecond)
		with := SessionRecord{ID: "s-epoch", Advertiser: a.ID, Kind: psi.KindEmail, Mode: wire.ModeEpochSession.String(), ListSize: 10,
			Result: "ok", StartedAt: et0, EndedAt: et0.Add(time.Second), EpochID: epID, EpochExpiresAt: expires}
		without := SessionRecord{ID: "s-private", Advertiser: a.ID, Kind: psi.KindEmail, Mode: "private", ListSize: 10,
			Result: "ok", StartedAt: et0.Add(time.Minute), EndedAt: et0.Add(time.Minute)}
		for _, r := range []SessionRecord{with, without} {
			if err := s.RecordSession(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		got := map[string]SessionRecord{}
		rows, err := s.Sessions(ctx, a.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			got[r.ID] = r
		}
		if r := got["s-epoch"]; r.EpochID != epID || !r.EpochExpiresAt.Equal(expires.Truncate(time.Microsecond)) || r.Mode != "epoch-session" {
			t.Errorf("epoch session reads back with epoch %q expiring %v, mode %q", r.EpochID, r.EpochExpiresAt, r.Mode)
		}
		if r := got["s-private"]; r.EpochID != "" || !r.EpochExpiresAt.IsZero() {
			t.Errorf("private session reads back with epoch %q expiring %v", r.EpochID, r.EpochExpiresAt)
		}
		for name, r := range map[string]SessionRecord{
			"upper-case id":        {EpochID: strings.ToUpper(epID)},
			"short id":             {EpochID: epID[:31]},
			"non-hex id":           {EpochID: "g" + epID[1:]},
			"expiry without an id": {EpochExpiresAt: expires},
		} {
			r.ID, r.Advertiser, r.Mode, r.Result, r.StartedAt, r.EndedAt = "bad", a.ID, "epoch-session", "ok", et0, et0
			if err := s.RecordSession(ctx, r); err == nil {
				t.Errorf("%s: RecordSession succeeded", name)
			}
		}

		// A journaled epoch session that crashes leaves its epoch in the
		// audit row Reconcile writes.
		_, err = s.BeginSession(ctx,
			BudgetRequest{Advertiser: a.ID, Session: "s-crash", Identifiers: 5, Limit: 1000, Window: time.Hour, At: et0, Epsilon: 1000, EpsilonLimit: 2_000_000},
			JournalEntry{ID: "s-crash", Advertiser: a.ID, Kind: psi.KindEmail, Mode: "epoch-session", ListSize: 5, Owner: "me",
				StartedAt: et0, LeaseUntil: et0.Add(time.Minute), EpochID: epID, EpochExpiresAt: expires})
		if err != nil {
			t.Fatal(err)
		}
		if open, err := s.OpenSessions(ctx); err != nil || len(open) != 1 || open[0].EpochID != epID || !open[0].EpochExpiresAt.Equal(expires.Truncate(time.Microsecond)) {
			t.Errorf("journal: %+v, %v", open, err)
		}
		recs, err := s.Reconcile(ctx, et0.Add(time.Hour))
		if err != nil || len(recs) != 1 || recs[0].EpochID != epID {
			t.Fatalf("Reconcile = %+v, %v", recs, err)
		}
		if r, ok := auditRow(t, s, "s-crash"); !ok || r.EpochID != epID || !r.EpochExpiresAt.Equal(expires.Truncate(time.Microsecond)) || r.Result != ResultCrashed {
			t.Errorf("crashed audit row %+v", r)
		}
		// A journal entry with a bad epoch id is refused.
		_, err = s.BeginSession(ctx,
			BudgetRequest{Advertiser: a.ID, Session: "s-bad", Identifiers: 5, Limit: 1000, Window: time.Hour, At: et0},
			JournalEntry{ID: "s-bad", Advertiser: a.ID, Kind: psi.KindEmail, Mode: "epoch-session", Owner: "me", StartedAt: et0, EpochID: "nope"})
		if err == nil {
			t.Error("BeginSession with a bad epoch id succeeded")
		}
	})

	t.Run("SetupsSince", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		a, b := mustAdvertiser(t, s, "acme"), mustAdvertiser(t, s, "other")
		setup := wire.ModeEpochSetup.String()
		since := et0
		for i, r := range []SessionRecord{
			{Advertiser: a.ID, Mode: setup, Result: "ok", StartedAt: since},                                  // counts: at since
			{Advertiser: a.ID, Mode: setup, Result: "deviation", StartedAt: since.Add(time.Minute)},          // counts
			{Advertiser: a.ID, Mode: setup, Result: "canceled", StartedAt: since.Add(2 * time.Minute)},       // counts
			{Advertiser: a.ID, Mode: setup, Result: "refused_setups", StartedAt: since.Add(3 * time.Minute)}, // refused
			{Advertiser: a.ID, Mode: setup, Result: "refused_advertiser_sessions", StartedAt: since},         // refused
			{Advertiser: a.ID, Mode: setup, Result: "ok", StartedAt: since.Add(-time.Microsecond)},           // before since
			{Advertiser: a.ID, Mode: wire.ModeEpochSession.String(), Result: "ok", StartedAt: since},         // a session
			{Advertiser: a.ID, Mode: "private", Result: "ok", StartedAt: since},                              // another mode
			{Advertiser: b.ID, Mode: setup, Result: "ok", StartedAt: since.Add(time.Minute)},                 // another advertiser
			{Advertiser: a.ID, Mode: setup, Result: "refusedbutnotquite", StartedAt: since.Add(time.Minute)}, // not refused_*
		} {
			r.ID, r.Kind, r.EndedAt = fmt.Sprintf("s%d", i), psi.KindEmail, r.StartedAt.Add(time.Second)
			if err := s.RecordSession(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		count := func() int {
			t.Helper()
			n, err := s.SetupsSince(ctx, a.ID, since)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := count(); n != 4 {
			t.Errorf("SetupsSince = %d, want 4", n)
		}
		if n, err := s.SetupsSince(ctx, b.ID, since); err != nil || n != 1 {
			t.Errorf("SetupsSince(b) = %d, %v; want 1", n, err)
		}
		// A setup in flight counts from its journal row, and once when it
		// ends.
		live := JournalEntry{ID: "live", Advertiser: a.ID, Kind: psi.KindEmail, Mode: setup, ListSize: 1, Owner: "me",
			StartedAt: since.Add(time.Hour), LeaseUntil: since.Add(2 * time.Hour)}
		st, err := s.BeginSetup(ctx, live, since, 5, nil)
		if err != nil || st.Used != 4 || !st.Oldest.Equal(since) {
			t.Fatalf("BeginSetup = %+v, %v; want 4 used since %v", st, err, since)
		}
		if n := count(); n != 5 {
			t.Errorf("SetupsSince with a setup in flight = %d, want 5", n)
		}
		if open, err := s.OpenSessions(ctx); err != nil || len(open) != 1 || open[0].Identifiers != 0 || open[0].Epsilon != 0 || open[0].Phase != PhaseAdmitted {
			t.Errorf("the setup's journal row: %+v, %v", open, err)
		}
		// The limit: 5 counted, a sixth is refused and journals nothing.
		st, err = s.BeginSetup(ctx, JournalEntry{ID: "sixth", Advertiser: a.ID, Kind: psi.KindEmail, Mode: setup, Owner: "me", StartedAt: since.Add(time.Hour)}, since, 5, nil)
		if !errors.Is(err, ErrSetupLimit) || st.Used != 5 {
			t.Errorf("BeginSetup over the limit = %+v, %v; want ErrSetupLimit", st, err)
		}
		if n := count(); n != 5 {
			t.Errorf("SetupsSince after a refused setup = %d, want 5", n)
		}
		err = s.EndSession(ctx, SessionRecord{ID: "live", Advertiser: a.ID, Kind: psi.KindEmail, Mode: setup, Result: "ok",
			StartedAt: since.Add(time.Hour), EndedAt: since.Add(time.Hour + time.Second)}, false)
		if err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 5 {
			t.Errorf("SetupsSince after the setup ended = %d, want 5", n)
		}
		if n, err := s.SetupsSince(ctx, a.ID, since.Add(2*time.Hour)); err != nil || n != 0 {
			t.Errorf("SetupsSince(later) = %d, %v; want 0", n, err)
		}
		// A setup that crashes is audited as crashed, and counts.
		later := since.Add(3 * time.Hour)
		if _, err := s.BeginSetup(ctx, JournalEntry{ID: "crash", Advertiser: a.ID, Kind: psi.KindEmail, Mode: setup, Owner: "gone",
			StartedAt: later, LeaseUntil: later.Add(time.Minute)}, later, 1, nil); err != nil {
			t.Fatal(err)
		}
		if recs, err := s.Reconcile(ctx, later.Add(time.Hour)); err != nil || len(recs) != 1 || recs[0].Result != ResultCrashed || recs[0].Mode != setup {
			t.Errorf("Reconcile = %+v, %v", recs, err)
		}
		if n, err := s.SetupsSince(ctx, a.ID, later); err != nil || n != 1 {
			t.Errorf("SetupsSince after a crashed setup = %d, %v; want 1", n, err)
		}
		// BeginSetup refuses what is not a setup.
		for name, e := range map[string]JournalEntry{
			"another mode":       {ID: "x", Advertiser: a.ID, Kind: psi.KindEmail, Mode: "private", Owner: "me"},
			"no owner":           {ID: "x", Advertiser: a.ID, Kind: psi.KindEmail, Mode: setup},
			"no id":              {Advertiser: a.ID, Kind: psi.KindEmail, Mode: setup, Owner: "me"},
			"no kind":            {ID: "x", Advertiser: a.ID, Mode: setup, Owner: "me"},
			"unknown advertiser": {ID: "x", Advertiser: a.ID + 100, Kind: psi.KindEmail, Mode: setup, Owner: "me"},
		} {
			if _, err := s.BeginSetup(ctx, e, later, 100, nil); err == nil {
				t.Errorf("%s: BeginSetup succeeded", name)
			}
		}
	})

	t.Run("ConcurrentSetupsKeepTheLimit", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		a := mustAdvertiser(t, s, "acme")
		const tries, limit = 8, 3
		errs := make(chan error, tries)
		for i := range tries {
			go func() {
				_, err := s.BeginSetup(ctx, JournalEntry{ID: fmt.Sprint("c", i), Advertiser: a.ID, Kind: psi.KindEmail,
					Mode: wire.ModeEpochSetup.String(), Owner: "me", StartedAt: et0, LeaseUntil: et0.Add(time.Hour)}, et0, limit, nil)
				errs <- err
			}()
		}
		ok := 0
		for range tries {
			switch err := <-errs; {
			case err == nil:
				ok++
			case !errors.Is(err, ErrSetupLimit):
				t.Errorf("BeginSetup: %v", err)
			}
		}
		if n, err := s.SetupsSince(ctx, a.ID, et0); ok != limit || n != limit || err != nil {
			t.Errorf("%d setups began, %d counted (%v); want %d", ok, n, err, limit)
		}
	})

	// A setup is admitted like any session (admission.go): not while the
	// advertiser has another session open on any server, and once that
	// session's lease ended (its server died), it is closed first.
	t.Run("SetupAdmission", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		a := mustAdvertiser(t, s, "acme")
		setup := func(id string, at time.Time) error {
			_, err := s.BeginSetup(ctx, JournalEntry{ID: id, Advertiser: a.ID, Kind: psi.KindEmail,
				Mode: wire.ModeEpochSetup.String(), Owner: "me", StartedAt: at, LeaseUntil: at.Add(time.Minute)}, at.Add(-24*time.Hour), 10,
				&Admission{MaxOpen: 1})
			return err
		}
		if err := setup("first", et0); err != nil {
			t.Fatal(err)
		}
		var ae *AdmissionError
		if err := setup("second", et0.Add(time.Second)); !errors.As(err, &ae) || ae.Limit != AdmissionOpenSessions {
			t.Errorf("a setup while another is open: %v", err)
		}
		if err := setup("third", et0.Add(2*time.Minute)); err != nil {
			t.Errorf("a setup after the first one's lease ended: %v", err)
		}
	})

	t.Run("EpochModes", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		a, err := s.AddAdvertiser(ctx, Advertiser{Name: "e", CertName: "e.example", Policy: Policy{Modes: ModesPrivate | ModesEpoch}})
		if err != nil || a.Policy.Modes != ModesPrivate|ModesEpoch {
			t.Fatalf("AddAdvertiser(private,epoch) = %v, %v", a.Policy.Modes, err)
		}
		if got, err := s.AdvertiserByName(ctx, "e"); err != nil || got.Policy.Modes != ModesPrivate|ModesEpoch ||
			!got.Policy.Modes.Has(uint8(wire.ModeEpochSetup)) || !got.Policy.Modes.Has(uint8(wire.ModeEpochSession)) || got.Policy.Modes.Has(uint8(wire.ModeExact)) {
			t.Errorf("read back: %v, %v", got.Policy.Modes, err)
		}
		for _, m := range []ModeSet{ModesEpoch, ModesExact | ModesPrivate | ModesEpoch, ModesExact} {
			if got, err := s.SetAdvertiserPolicy(ctx, "e", Policy{Modes: m}); err != nil || got.Policy.Modes != m {
				t.Errorf("SetAdvertiserPolicy(%v) = %v, %v", m, got.Policy.Modes, err)
			}
		}
		for _, m := range []ModeSet{1 << 3, 1 << 4, ModesPrivate | 1<<4} {
			if _, err := s.SetAdvertiserPolicy(ctx, "e", Policy{Modes: m}); err == nil {
				t.Errorf("SetAdvertiserPolicy(%v) succeeded", m)
			}
		}
		// The database refuses half of epoch, and unknown modes, whatever
		// path writes them.
		for _, m := range []int{0, 1, 8, 16, 12, 32, 30 + 32} {
			if err := rawExec(t, s, fmt.Sprintf("UPDATE advertisers SET modes = %d WHERE name = 'e'", m)); err == nil {
				t.Errorf("the database stored modes %d", m)
			}
		}
		for _, m := range []int{2, 4, 6, 24, 26, 28, 30} {
			if err := rawExec(t, s, fmt.Sprintf("UPDATE advertisers SET modes = %d WHERE name = 'e'", m)); err != nil {
				t.Errorf("the database refused modes %d: %v", m, err)
			}
		}
	})
}

func TestModeSetEpoch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want ModeSet
		str  string
	}{
		{"epoch", ModesEpoch, "epoch"},
		{"private,epoch", ModesPrivate | ModesEpoch, "private,epoch"},
		{"epoch,private", ModesPrivate | ModesEpoch, "private,epoch"},
		{"epoch,exact", ModesExact | ModesEpoch, "exact,epoch"},
		{"exact,private,epoch", ModesExact | ModesPrivate | ModesEpoch, "exact,private,epoch"},
		{"epoch,private,exact", ModesExact | ModesPrivate | ModesEpoch, "exact,private,epoch"},
	} {
		got, err := ParseModeSet(tc.in)
		if err != nil || got != tc.want || got.String() != tc.str || !got.Valid() {
			t.Errorf("ParseModeSet(%q) = %v (%d), %v; want %s", tc.in, got, got, err, tc.str)
		}
		if back, err := ParseModeSet(got.String()); err != nil || back != got {
			t.Errorf("ParseModeSet(%q) = %v, %v; String does not round-trip", got.String(), back, err)
		}
	}
	for _, in := range []string{"Epoch", "epochs", "epoch,epoch", "private,epoch,private", "epoch,", "both,epoch", "epoch-setup", "mode3"} {
		if got, err := ParseModeSet(in); err == nil {
			t.Errorf("ParseModeSet(%q) = %v, want an error", in, got)
		}
	}
	// One mode of epoch without the other is no set an advertiser has.
	for m, str := range map[ModeSet]string{1 << 3: "mode3", 1 << 4: "mode4", ModesPrivate | 1<<4: "private,mode4", ModesEpoch | 1<<7: "epoch,mode7"} {
		if m.Valid() || m.String() != str {
			t.Errorf("%d: Valid %t, String %q; want invalid, %q", m, m.Valid(), m.String(), str)
		}
	}
	if !ModesEpoch.Has(3) || !ModesEpoch.Has(4) || ModesEpoch.Has(2) {
		t.Error("ModesEpoch.Has: want modes 3 and 4 only")
	}
}

// TestParseModeSetModel checks ParseModeSet against a model on every list
// of up to four names drawn from the known ones and near misses: it
// accepts exactly "both" and the lists of distinct known names, and returns
// their union.
func TestParseModeSetModel(t *testing.T) {
	t.Parallel()
	known := map[string]ModeSet{"exact": ModesExact, "private": ModesPrivate, "epoch": ModesEpoch}
	names := []string{"exact", "private", "epoch", "both", "", "Epoch", "epoch ", "none", "mode3"}
	var lists [][]string
	var grow func(prefix []string)
	grow = func(prefix []string) {
		if len(prefix) > 0 {
			lists = append(lists, slices.Clone(prefix))
		}
		if len(prefix) == 4 {
			return
		}
		for _, n := range names {
			grow(append(prefix, n))
		}
	}
	grow(nil)
	for _, list := range lists {
		in := strings.Join(list, ",")
		var want ModeSet
		ok := true
		for _, n := range list {
			m, k := known[n]
			if !k || want&m != 0 {
				ok = false
				break
			}
			want |= m
		}
		if in == "both" {
			want, ok = ModesExact|ModesPrivate, true
		}
		got, err := ParseModeSet(in)
		switch {
		case ok && (err != nil || got != want):
			t.Errorf("ParseModeSet(%q) = %v, %v; want %v", in, got, err, want)
		case !ok && err == nil:
			t.Errorf("ParseModeSet(%q) = %v; want an error", in, got)
		case !ok && !strings.HasPrefix(err.Error(), "store: "):
			t.Errorf("ParseModeSet(%q): error %q without the package prefix", in, err)
		}
	}
}

// TestSQLiteEpochKeyWiped checks the SQLite file itself: once an epoch is
// deleted and the write-ahead log checkpointed, its key is nowhere in the
// database files.
func TestSQLiteEpochKeyWiped(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := mustAdvertiser(t, s, "acme")
	ep := testEpoch(t, 5, 1000, 1<<20, et0)
	saveEpoch(t, s, a.ID, ep, et0)
	key := ep.ExportKey()
	found := func() bool {
		t.Helper()
		if err := rawExec(t, s, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, path + "-wal"} {
			b, err := os.ReadFile(p)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			if bytes.Contains(b, key[:]) {
				return true
			}
		}
		return false
	}
	if !found() {
		t.Fatal("the stored key is not in the database file: this test cannot see it")
	}
	if n, err := s.DeleteEpochs(t.Context(), 0, et0); err != nil || n != 1 {
		t.Fatalf("DeleteEpochs = %d, %v", n, err)
	}
	if found() {
		t.Error("the deleted epoch's key is still in the database files")
	}
}

// TestUpgradeToEpochs builds a database of schema 6 with advertisers and
// the rows that refer to them, and opens it with this binary: migration 7
// keeps every advertiser with its id and modes, the references hold, and a
// new advertiser gets a new id.
func TestUpgradeToEpochs(t *testing.T) {
	t.Parallel()
	type engine struct {
		name string
		open func(t *testing.T, upTo int64) Store
		at   string
	}
	engines := []engine{{name: "SQLite", open: reopenSQLite(), at: fmt.Sprint(et0.UnixMicro())}}
	if os.Getenv(postgresEnv) != "" {
		engines = append(engines, engine{name: "Postgres", open: reopenPostgres(), at: "'" + et0.Format(time.RFC3339) + "'"})
	}
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			old := eng.open(t, 6)
			ctx := t.Context()
			var ids []int64
			for i, m := range []ModeSet{ModesExact, ModesPrivate, ModesExact | ModesPrivate} {
				a, err := old.AddAdvertiser(ctx, Advertiser{Name: fmt.Sprint("adv", i), CertName: fmt.Sprint("adv", i, ".example"),
					Policy: Policy{Modes: m, Budget: int64(100 + i)}})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, a.ID)
			}
			if _, err := old.RevokeAdvertiser(ctx, "adv1", et0); err != nil {
				t.Fatal(err)
			}
			// Schema 6's rows, as its binary wrote them.
			for _, q := range []string{
				`INSERT INTO budget_spend (advertiser_id, session_id, at, identifiers) VALUES (` + fmt.Sprint(ids[2]) + `, 'open', ` + eng.at + `, 5)`,
				`INSERT INTO session_journal (id, advertiser_id, kind, mode, list_size, identifiers, epsilon_micros, phase, owner, started_at, renewed_at, lease_until)
					VALUES ('open', ` + fmt.Sprint(ids[2]) + `, 1, 'exact', 5, 5, 0, 'admitted', 'me', ` + eng.at + `, ` + eng.at + `, ` + eng.at + `)`,
				`INSERT INTO sessions (id, advertiser_id, kind, mode, list_size, server_size, budget_spent, result, detail, started_at, ended_at, duration_us)
					VALUES ('old', ` + fmt.Sprint(ids[1]) + `, 1, 'exact', 40, 1024, 40, 'ok', '', ` + eng.at + `, ` + eng.at + `, 0)`,
			} {
				if err := rawExec(t, old, q); err != nil {
					t.Fatalf("schema 6: %s: %v", q, err)
				}
			}
			before, err := old.Advertisers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			old.Close()

			s := eng.open(t, latestMigration())
			after, err := s.Advertisers(ctx)
			if err != nil || len(after) != len(before) {
				t.Fatalf("advertisers after the upgrade: %v, %v", after, err)
			}
			for i := range before {
				if b, a := before[i], after[i]; b.ID != a.ID || b.Name != a.Name || b.Policy != a.Policy || !b.CreatedAt.Equal(a.CreatedAt) ||
					!b.RevokedAt.Equal(a.RevokedAt) || b.CertName != a.CertName {
					t.Errorf("advertiser %s: %+v before, %+v after", b.Name, b, a)
				}
			}
			if _, ok := auditRow(t, s, "old"); !ok {
				t.Error("the old audit row is gone")
			}
			if open, err := s.OpenSessions(ctx); err != nil || len(open) != 1 || open[0].Advertiser != ids[2] || open[0].EpochID != "" {
				t.Errorf("journal after the upgrade: %+v, %v", open, err)
			}
			if ids, err := s.BudgetUsed(ctx, ids[2], time.Hour, et0); err != nil || ids != 5 {
				t.Errorf("spend after the upgrade: %d, %v", ids, err)
			}
			if eng.name == "SQLite" {
				if n := rawInt(t, s, "SELECT count(*) FROM pragma_foreign_key_check"); n != 0 {
					t.Errorf("%d broken references after the upgrade", n)
				}
			}
			// Ids go on after the old ones; the old ones still take epochs.
			c := mustAdvertiser(t, s, "new")
			if c.ID <= slices.Max(ids) || c.Policy.Modes != ModesPrivate {
				t.Errorf("new advertiser %d (modes %v) after ids %v", c.ID, c.Policy.Modes, ids)
			}
			if _, err := s.SetAdvertiserPolicy(ctx, "adv0", Policy{Modes: ModesExact | ModesEpoch}); err != nil {
				t.Error(err)
			}
			saveEpoch(t, s, ids[0], testEpoch(t, 6, 10, 1<<20, et0), et0)
			// A row that names no advertiser is still refused.
			if err := rawExec(t, s, `INSERT INTO budget_refunds (session_id, advertiser_id, at) VALUES ('x', 999, `+eng.at+`)`); err == nil {
				t.Error("a refund of an unknown advertiser was stored")
			}
		})
	}
}

// On PostgreSQL BeginSetup locks its advertiser's row, as a reservation
// does (TestPostgresReservationLocksTheAdvertiser), so that two setups of
// one advertiser never both count the setups before the other journals
// its own: while another transaction holds the row, BeginSetup must wait.
func TestPostgresSetupLocksTheAdvertiser(t *testing.T) {
	s := openPostgresTest(t).(*Postgres)
	a := mustAdvertiser(t, s, "acme")
	ctx := t.Context()
	holder, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, `SELECT id FROM advertisers WHERE id = $1 FOR NO KEY UPDATE`, a.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.BeginSetup(ctx, JournalEntry{ID: "s1", Advertiser: a.ID, Kind: psi.KindEmail, Mode: wire.ModeEpochSetup.String(),
			Owner: "me", StartedAt: et0, LeaseUntil: et0.Add(time.Hour)}, et0, 4, nil)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the setup began (%v) while another transaction held the advertiser's row: it does not lock it", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the setup after the lock was released: %v", err)
	}
}

// BenchmarkEpoch measures SaveEpoch and LoadEpoch of an epoch of
// OVERLAP_BENCH_EPOCH kept tags (default 10^6) of a setup with N/|Y_E| =
// 1.05, the shape at |Y_E| = 10^7, on each engine:
//
//	OVERLAP_BENCH_EPOCH=10000000 go test -run '^$' -bench BenchmarkEpoch -benchtime 3x ./psi/store
func BenchmarkEpoch(b *testing.B) {
	size := 1_000_000
	if v := os.Getenv("OVERLAP_BENCH_EPOCH"); v != "" {
		if _, err := fmt.Sscan(v, &size); err != nil || size < 1 {
			b.Fatalf("OVERLAP_BENCH_EPOCH=%q: want a positive count", v)
		}
	}
	n := uint32(min(float64(size)*1.05, 1<<32-1))
	for _, eng := range benchEngines {
		b.Run(eng.name, func(b *testing.B) {
			s := eng.open(b)
			a := mustAdvertiser(b, s, "acme")
			ep := testEpoch(b, 1, size, n, et0)
			b.Run("Save", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.DeleteEpochs(b.Context(), 0, time.Time{}); err != nil {
						b.Fatal(err)
					}
					saveEpoch(b, s, a.ID, ep, et0)
				}
				b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds(), "tags/s")
			})
			b.Run("Load", func(b *testing.B) {
				var rec EpochRecord
				for b.Loop() {
					var err error
					if _, rec, err = s.LoadEpoch(b.Context(), a.ID, ep.Meta().ID); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds(), "tags/s")
				b.ReportMetric(float64(rec.TagBytes)/float64(size), "bytes/tag")
			})
		})
	}
}
