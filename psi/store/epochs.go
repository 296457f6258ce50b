package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/overlap-psi/overlap/psi"
	"github.com/overlap-psi/overlap/psi/wire"
)

// Epochs (SPEC.md §10.12.5, migration 7): what a server keeps of each epoch
// an advertiser set up, from the setup to its deletion.
//
//	epochs      id (16 bytes), advertiser, kind, canon_version, canon_flags,
//	            server_size (N), size (|Y_E|), client_key (A_E), epoch_key (b_E),
//	            snapshot_version, snapshot_digest, created_at, expires_at, tag_bytes
//	epoch_tags  epoch_id, seq, count, data: the kept tags K_E as psi.Epoch.EncodeTags
//	            writes them, EpochTagChunk values a chunk, numbered from 0
//
// The epoch key b_E is a secret (SPEC.md §8.4): it is stored in the epoch's
// row only, never returned by Epochs, never logged or put in an error, and
// deleted with the epoch. DeleteEpochs first overwrites it with zeros in
// the same transaction, so that on SQLite, which rewrites a cell of the
// same size in place, the deleted row holds no key either once the
// write-ahead log is checkpointed. Copies the database engine keeps
// elsewhere are outside the store's reach: on SQLite a write-ahead log not
// yet checkpointed, on PostgreSQL the old row versions until VACUUM reuses
// their space, and on both any backup; treat those like the database.

// EpochTagChunk is how many tag values one stored chunk holds.
const EpochTagChunk = 1 << 16

// ErrNoEpoch reports an epoch the store does not hold for the advertiser:
// unknown, deleted, or another advertiser's. It wraps [psi.ErrEpoch].
var ErrNoEpoch = fmt.Errorf("store: no stored epoch of this advertiser with this id (%w)", psi.ErrEpoch)

// EpochRecord is what the store keeps of an epoch beside its tags (SPEC.md §10.12.5).
type EpochRecord struct {
	Meta            psi.EpochMeta
	Advertiser      int64
	SnapshotVersion int64 // the snapshot Y_E was read from; 0: none recorded
	SnapshotDigest  [32]byte
	CreatedAt       time.Time // µs, UTC; SaveEpoch sets it to now when zero
	TagBytes        int64     // bytes of stored Golomb-coded tags (filled by the store)
}

// EpochIDString is an epoch id as SessionRecord.EpochID holds it: 32
// lower-case hex digits.
func EpochIDString(id [16]byte) string { return hex.EncodeToString(id[:]) }

// validateEpoch checks rec against the epoch ep it describes and fills its
// creation time.
func validateEpoch(rec *EpochRecord, ep *psi.Epoch) error {
	if ep == nil {
		return errors.New("store: save epoch: no epoch")
	}
	m := ep.Meta()
	r := &rec.Meta
	switch {
	case r.ID != m.ID || r.Kind != m.Kind || r.CanonVersion != m.CanonVersion || r.CanonFlags != m.CanonFlags ||
		r.ServerSize != m.ServerSize || r.Size != m.Size || !r.ExpiresAt.Equal(m.ExpiresAt) || r.ClientKey != m.ClientKey:
		return errors.New("store: save epoch: the record's description is not the epoch's")
	case rec.Advertiser <= 0:
		return errors.New("store: save epoch: no advertiser")
	case m.ID == [16]byte{}:
		return errors.New("store: save epoch: the epoch id is zero")
	case !m.Kind.Valid():
		return fmt.Errorf("store: save epoch: invalid kind %d", uint8(m.Kind))
	case m.ServerSize == 0 || m.Size < 0 || int64(m.Size) > int64(m.ServerSize):
		return fmt.Errorf("store: save epoch: %d kept tags of a setup of N = %d", m.Size, m.ServerSize)
	case m.ExpiresAt.Before(minAt) || !m.ExpiresAt.Before(maxAt):
		return errors.New("store: save epoch: expiry outside 1970..9999")
	case rec.SnapshotVersion < 0:
		return errors.New("store: save epoch: negative snapshot version")
	}
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = time.Now()
	}
	if rec.CreatedAt.Before(minAt) || !rec.CreatedAt.Before(maxAt) {
		return errors.New("store: save epoch: creation time outside 1970..9999")
	}
	rec.CreatedAt, r.ExpiresAt = microTime(rec.CreatedAt), microTime(r.ExpiresAt)
	return nil
}

const (
	sqlInsertEpoch = `INSERT INTO epochs (id, advertiser_id, kind, canon_version, canon_flags, server_size, size, client_key, epoch_key,
		snapshot_version, snapshot_digest, created_at, expires_at, tag_bytes, suite)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, $14)`
	sqlInsertEpochTags = `INSERT INTO epoch_tags (epoch_id, seq, count, data) VALUES ($1, $2, $3, $4)`
	sqlEpochTagBytes   = `UPDATE epochs SET tag_bytes = $2 WHERE id = $1`
	// epochColumns are the columns of an EpochRecord, without the key.
	epochColumns = `id, advertiser_id, kind, canon_version, canon_flags, server_size, size, client_key,
		snapshot_version, snapshot_digest, created_at, expires_at, tag_bytes, suite`
	sqlLoadEpoch  = `SELECT ` + epochColumns + `, epoch_key FROM epochs WHERE id = $1 AND advertiser_id = $2`
	sqlLoadTags   = `SELECT seq, count, data FROM epoch_tags WHERE epoch_id = $1 ORDER BY seq`
	sqlListEpochs = `SELECT ` + epochColumns + ` FROM epochs WHERE $1 = 0 OR advertiser_id = $1 ORDER BY created_at DESC, id DESC`
	// sqlSetupsSince counts the setups of advertiser $1 (mode $2) that
	// started at or after $3 and count toward its limit, and the earliest
	// start among them: one statement, so that a setup whose journal row
	// becomes its audit row meanwhile is counted once.
	sqlSetupsSince = `SELECT count(*), MIN(x.started_at) FROM (
		SELECT started_at FROM sessions WHERE advertiser_id = $1 AND mode = $2 AND started_at >= $3 AND substr(result, 1, 8) <> 'refused_'
		UNION ALL SELECT started_at FROM session_journal WHERE advertiser_id = $1 AND mode = $2 AND started_at >= $3) AS x`
)

// SaveEpoch implements [Store].
func (c *core) SaveEpoch(ctx context.Context, rec EpochRecord, ep *psi.Epoch) error {
	if err := validateEpoch(&rec, ep); err != nil {
		return err
	}
	m := rec.Meta
	key := ep.ExportKey()
	defer clear(key[:])
	v, d := snapshotArgsOf(rec.SnapshotVersion, rec.SnapshotDigest)
	return c.inTx(ctx, "save epoch", func(tx q) error {
		if _, err := tx.exec(ctx, sqlInsertEpoch, m.ID[:], rec.Advertiser, int64(m.Kind), int64(m.CanonVersion), int64(m.CanonFlags),
			int64(m.ServerSize), int64(m.Size), m.ClientKey[:], key[:], v, d, c.ts(rec.CreatedAt), c.ts(m.ExpiresAt), int64(m.Suite.Or1())); err != nil {
			if c.isUnique(err) {
				return errors.New("store: save epoch: an epoch with this id is stored already")
			}
			return fmt.Errorf("store: save epoch: %w", err)
		}
		var seq, size int64
		err := ep.EncodeTags(EpochTagChunk, func(count int, data []byte) error {
			if _, err := tx.exec(ctx, sqlInsertEpochTags, m.ID[:], seq, int64(count), data); err != nil {
				return fmt.Errorf("store: save epoch: tags: %w", err)
			}
			seq++
			size += int64(len(data))
			return nil
		})
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, sqlEpochTagBytes, m.ID[:], size); err != nil {
			return fmt.Errorf("store: save epoch: %w", err)
		}
		return nil
	})
}

// scanEpoch scans epochColumns, then the key when key is not nil.
func scanEpoch(row scanner, key *[]byte) (EpochRecord, error) {
	var (
		r                EpochRecord
		id, ck, digest   []byte
		kind, cv, cf     int64
		serverSize, size int64
		suite            int64
		version          sql.NullInt64
		created, expires stamp
	)
	dest := []any{&id, &r.Advertiser, &kind, &cv, &cf, &serverSize, &size, &ck, &version, &digest, &created, &expires, &r.TagBytes, &suite}
	if key != nil {
		dest = append(dest, key)
	}
	if err := row.Scan(dest...); err != nil {
		return EpochRecord{}, err
	}
	if len(id) != 16 || len(ck) != 32 || (digest != nil && len(digest) != 32) || !psi.Kind(kind).Valid() ||
		serverSize < 1 || serverSize > 1<<32-1 || size < 0 || size > serverSize || cv < 0 || cv > 0xffff || cf < 0 || cf > 0xffff ||
		suite < 1 || suite > 255 || !psi.Suite(suite).Known() {
		return EpochRecord{}, errors.New("stored epoch row is malformed")
	}
	r.SnapshotVersion = version.Int64
	copy(r.SnapshotDigest[:], digest)
	copy(r.Meta.ID[:], id)
	copy(r.Meta.ClientKey[:], ck)
	r.Meta.Kind, r.Meta.CanonVersion, r.Meta.CanonFlags = psi.Kind(kind), uint16(cv), uint16(cf)
	r.Meta.ServerSize, r.Meta.Size = uint32(serverSize), int(size)
	if r.Meta.Suite = psi.Suite(suite); r.Meta.Suite == psi.Suite1 {
		r.Meta.Suite = 0 // suite 1, as psi writes it
	}
	r.CreatedAt, r.Meta.ExpiresAt = created.t, expires.t
	return r, nil
}

// LoadEpoch implements [Store]. It reads the epoch's row and its tags in
// one read transaction, so a concurrent DeleteEpochs makes it ErrNoEpoch,
// never a partial set.
func (c *core) LoadEpoch(ctx context.Context, advertiser int64, id [16]byte) (*psi.Epoch, EpochRecord, error) {
	var (
		ep  *psi.Epoch
		rec EpochRecord
	)
	err := c.snapshotTx(ctx, func(tx q, _ streamFunc) error {
		var keyBytes []byte
		defer func() { clear(keyBytes) }()
		r, err := scanEpoch(tx.queryRow(ctx, sqlLoadEpoch, id[:], advertiser), &keyBytes)
		if isNoRows(err) {
			return ErrNoEpoch
		}
		if err != nil {
			return fmt.Errorf("store: load epoch: %w", err)
		}
		if len(keyBytes) != 32 {
			return errors.New("store: load epoch: the stored key is malformed")
		}
		var key [32]byte
		copy(key[:], keyBytes)
		defer clear(key[:])
		e, err := psi.LoadEpoch(r.Meta, key, func(add func(count int, data []byte) error) error {
			rows, err := tx.query(ctx, sqlLoadTags, id[:])
			if err != nil {
				return err
			}
			defer rows.Close()
			var next, bytes int64
			for rows.Next() {
				var seq, count int64
				var data []byte
				if err := rows.Scan(&seq, &count, &data); err != nil {
					return err
				}
				if seq != next {
					return fmt.Errorf("tag chunk %d is missing", next)
				}
				if count < 1 || count > EpochTagChunk {
					return fmt.Errorf("tag chunk %d holds %d values", seq, count)
				}
				if err := add(int(count), data); err != nil {
					return err
				}
				next++
				bytes += int64(len(data))
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if bytes != r.TagBytes {
				return fmt.Errorf("%d bytes of tags stored, the epoch records %d", bytes, r.TagBytes)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: load epoch: %w", err)
		}
		ep, rec = e, r
		return nil
	})
	if err != nil {
		return nil, EpochRecord{}, err
	}
	return ep, rec, nil
}

// Epochs implements [Store].
func (c *core) Epochs(ctx context.Context, advertiser int64) ([]EpochRecord, error) {
	return queryAll(ctx, c.reader, "epochs", func(row scanner) (EpochRecord, error) { return scanEpoch(row, nil) },
		sqlListEpochs, advertiser)
}

// DeleteEpochs implements [Store]. In one transaction it reads and locks
// the epochs to delete, then for each overwrites its key with zeros and
// deletes its tags and its row. Concurrent deletions (reconciliation on
// several servers) delete each epoch once; each counts its own.
func (c *core) DeleteEpochs(ctx context.Context, advertiser int64, before time.Time) (int, error) {
	query := `SELECT id FROM epochs WHERE ($1 = 0 OR advertiser_id = $1)`
	args := []any{advertiser}
	if !before.IsZero() {
		query += ` AND expires_at <= $2`
		args = append(args, c.ts(microTime(before)))
	}
	var n int
	err := c.inTx(ctx, "delete epochs", func(tx q) error {
		n = 0
		ids, err := queryAll(ctx, tx, "delete epochs", func(row scanner) (id []byte, err error) {
			err = row.Scan(&id)
			return id, err
		}, query+` ORDER BY id`+c.forUpdate, args...)
		if err != nil {
			return err
		}
		zero := make([]byte, 32)
		for _, id := range ids {
			if _, err := tx.exec(ctx, `UPDATE epochs SET epoch_key = $2 WHERE id = $1`, id, zero); err != nil {
				return fmt.Errorf("store: delete epochs: %w", err)
			}
			if _, err := tx.exec(ctx, `DELETE FROM epoch_tags WHERE epoch_id = $1`, id); err != nil {
				return fmt.Errorf("store: delete epochs: %w", err)
			}
			res, err := tx.exec(ctx, `DELETE FROM epochs WHERE id = $1`, id)
			if err != nil {
				return fmt.Errorf("store: delete epochs: %w", err)
			}
			k, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("store: delete epochs: %w", err)
			}
			n += int(k)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// SetupsSince implements [Store]: audit rows and open journal rows of mode
// epoch-setup of the advertiser that started at or after since, the
// refused ones (refused_*) excluded.
func (c *core) SetupsSince(ctx context.Context, advertiser int64, since time.Time) (int, error) {
	n, _, err := c.setups(ctx, c.reader, advertiser, since)
	return n, err
}

func (c *core) setups(ctx context.Context, db q, advertiser int64, since time.Time) (int, time.Time, error) {
	var n int64
	var oldest stamp
	if err := db.queryRow(ctx, sqlSetupsSince, advertiser, wire.ModeEpochSetup.String(), c.ts(microTime(since))).Scan(&n, &oldest); err != nil {
		return 0, time.Time{}, fmt.Errorf("store: setups since: %w", err)
	}
	return int(n), oldest.t, nil
}

// ErrSetupLimit reports an epoch setup that BeginSetup refused: the
// advertiser made its limit of setups in the window already.
var ErrSetupLimit = errors.New("store: the advertiser's limit of epoch setups is reached")

// SetupStatus is what BeginSetup saw of the advertiser's setups in the
// window, the new one excluded.
type SetupStatus struct {
	Used   int       // setups that count toward the limit (SetupsSince)
	Oldest time.Time // the earliest start among them; zero if none
}

// BeginSetup implements [Store].
func (c *core) BeginSetup(ctx context.Context, e JournalEntry, since time.Time, limit int, a *Admission) (SetupStatus, error) {
	switch {
	case e.ID == "" || e.Owner == "":
		return SetupStatus{}, errors.New("store: begin setup: journal entry without an id or an owner")
	case e.Mode != wire.ModeEpochSetup.String():
		return SetupStatus{}, fmt.Errorf("store: begin setup: mode %q is not %s", truncate(e.Mode), wire.ModeEpochSetup)
	case !e.Kind.Valid():
		return SetupStatus{}, fmt.Errorf("store: begin setup: invalid kind %d", uint8(e.Kind))
	case limit < 0:
		return SetupStatus{}, errors.New("store: begin setup: negative limit")
	}
	e.Identifiers, e.Epsilon, e.Phase = 0, 0, PhaseAdmitted
	e.StartedAt, e.LeaseUntil = microTime(e.StartedAt), microTime(e.LeaseUntil)
	e.RenewedAt = e.StartedAt
	if err := validateEpochRef(e.EpochID, &e.EpochExpiresAt); err != nil {
		return SetupStatus{}, err
	}
	var st SetupStatus
	err := c.inTx(ctx, "begin setup", func(tx q) error {
		// Serializes the setups of the advertiser, as a reservation does.
		var id int64
		if err := tx.queryRow(ctx, `SELECT id FROM advertisers WHERE id = $1`+c.forUpdate, e.Advertiser).Scan(&id); err != nil {
			if isNoRows(err) {
				return ErrUnknownAdvertiser
			}
			return fmt.Errorf("store: begin setup: %w", err)
		}
		// The admission of any session (admission.go): expired sessions of
		// the advertiser closed, its open sessions and abandoned ones
		// counted, across every server on the store.
		if a != nil {
			if _, err := c.admit(ctx, tx, BudgetRequest{Advertiser: e.Advertiser, At: e.StartedAt}, a); err != nil {
				return err
			}
		}
		var err error
		if st.Used, st.Oldest, err = c.setups(ctx, tx, e.Advertiser, since); err != nil {
			return err
		}
		if st.Used >= limit {
			return ErrSetupLimit
		}
		ei, ee := c.epochRefArgs(e.EpochID, e.EpochExpiresAt)
		if _, err := tx.exec(ctx, sqlInsertJournal, e.ID, e.Advertiser, int64(e.Kind), e.Mode, e.ListSize, int64(0), int64(0),
			e.Phase, e.Owner, c.ts(e.StartedAt), c.ts(e.RenewedAt), c.ts(e.LeaseUntil), ei, ee, int64(0), int64(0), suiteArg(e.Suite)); err != nil {
			return fmt.Errorf("store: begin setup: %w", err)
		}
		return nil
	})
	return st, err
}
