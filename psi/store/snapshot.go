package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/overlap-psi/overlap/psi"
)

// streamFunc runs query and calls each with the raw bytes of the one
// column of every row, valid only during the call. Its errors are each's
// own, and the driver's with the "store: snapshot" prefix.
type streamFunc func(ctx context.Context, query string, args []any, each func(raw []byte) error) error

// Snapshot implements [Store]: it streams from one read-only transaction
// that sees one state of the database (SQLite in WAL mode; REPEATABLE READ
// on PostgreSQL), then records the snapshot.
func (c *core) Snapshot(ctx context.Context, kind psi.Kind, fn func(digest [32]byte) error) (SnapshotInfo, error) {
	return c.snapshot(ctx, kind, 0, fn)
}

// SnapshotPerSubject implements [Store], as Snapshot does.
func (c *core) SnapshotPerSubject(ctx context.Context, kind psi.Kind, maxPerSubject int, fn func(digest [32]byte) error) (SnapshotInfo, error) {
	if err := checkMaxPerSubject(maxPerSubject); err != nil {
		return SnapshotInfo{}, err
	}
	return c.snapshot(ctx, kind, maxPerSubject, fn)
}

// snapshot streams and records a snapshot; maxPerSubject 0 is uncapped.
func (c *core) snapshot(ctx context.Context, kind psi.Kind, maxPerSubject int, fn func(digest [32]byte) error) (SnapshotInfo, error) {
	if err := checkKind(kind); err != nil {
		return SnapshotInfo{}, err
	}
	info := SnapshotInfo{Kind: kind, TakenAt: microTime(time.Now()), MaxPerSubject: maxPerSubject}
	if err := c.readSnapshot(ctx, &info, fn); err != nil {
		return SnapshotInfo{}, err
	}
	err := c.writer.queryRow(ctx, sqlInsertSnapshot,
		int64(kind), c.ts(info.TakenAt), info.LedgerPosition, info.Size, info.Digest[:], int64(maxPerSubject), info.Generation).Scan(&info.Version)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("store: snapshot: record: %w", err)
	}
	return info, nil
}

// RecordSnapshot implements [Store].
func (c *core) RecordSnapshot(ctx context.Context, info SnapshotInfo) (SnapshotInfo, error) {
	if err := checkKind(info.Kind); err != nil {
		return SnapshotInfo{}, err
	}
	if info.Size < 0 || info.MaxPerSubject < 0 || info.MaxPerSubject > MaxSnapshotPerSubject {
		return SnapshotInfo{}, fmt.Errorf("store: record snapshot: size %d or per-subject cap %d out of range", info.Size, info.MaxPerSubject)
	}
	info.TakenAt, info.LedgerPosition, info.Generation = microTime(info.TakenAt), 0, 0
	err := c.writer.queryRow(ctx, sqlInsertSnapshot,
		int64(info.Kind), c.ts(info.TakenAt), int64(0), info.Size, info.Digest[:], int64(info.MaxPerSubject), int64(0)).Scan(&info.Version)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("store: record snapshot: %w", err)
	}
	return info, nil
}

// readSnapshot streams the matchable set from one read transaction and
// fills info.
func (c *core) readSnapshot(ctx context.Context, info *SnapshotInfo, fn func([32]byte) error) error {
	kept := c.refresh != nil && info.MaxPerSubject == 0
	if kept {
		if err := c.refresh(ctx); err != nil {
			return err
		}
	}
	return c.snapshotTx(ctx, func(tx q, stream streamFunc) error {
		if err := tx.queryRow(ctx, sqlLedgerPosition).Scan(&info.LedgerPosition); err != nil {
			return fmt.Errorf("store: snapshot: %w", err)
		}
		if err := tx.queryRow(ctx, sqlGeneration).Scan(&info.Generation); err != nil {
			return fmt.Errorf("store: snapshot: %w", err)
		}
		query, args := sqlMatchable, []any{int64(info.Kind)}
		if ok, err := c.keptCurrent(ctx, tx, kept, info.Generation); err != nil {
			return fmt.Errorf("store: snapshot: %w", err)
		} else if ok {
			query = sqlDerivedMatchable
		}
		if info.MaxPerSubject > 0 {
			query, args = sqlMatchablePerSubject, append(args, int64(info.MaxPerSubject))
		}
		h := newSnapshotHasher(info.Kind)
		err := stream(ctx, query, args, func(raw []byte) error {
			d, err := h.add(raw)
			if err != nil {
				return err
			}
			if err := fn(d); err != nil {
				return fmt.Errorf("store: snapshot: %w", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		info.Size, info.Digest = h.n, h.sum()
		return nil
	})
}

// Generation implements [Store].
func (c *core) Generation(ctx context.Context) (int64, error) {
	var n int64
	if err := c.reader.queryRow(ctx, sqlGeneration).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: generation: %w", err)
	}
	return n, nil
}

// Snapshots implements [Store].
func (c *core) Snapshots(ctx context.Context, kind psi.Kind, limit int) ([]SnapshotInfo, error) {
	if kind != 0 {
		if err := checkKind(kind); err != nil {
			return nil, err
		}
	}
	rows, err := c.reader.query(ctx, snapshotsQuery(limit), int64(kind))
	if err != nil {
		return nil, fmt.Errorf("store: snapshots: %w", err)
	}
	defer rows.Close()
	var out []SnapshotInfo
	for rows.Next() {
		var (
			si  SnapshotInfo
			k   int64
			at  stamp
			dig []byte
		)
		if err := rows.Scan(&si.Version, &k, &at, &si.LedgerPosition, &si.Size, &dig, &si.MaxPerSubject, &si.Generation); err != nil {
			return nil, fmt.Errorf("store: snapshots: %w", err)
		}
		if len(dig) != 32 {
			return nil, errors.New("store: snapshots: stored digest is not 32 bytes")
		}
		si.Kind, si.TakenAt = psi.Kind(k), at.t
		copy(si.Digest[:], dig)
		out = append(out, si)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: snapshots: %w", err)
	}
	return out, nil
}

// keptCurrent reports whether the kept matchable set and stats are of
// generation gen, read in tx; false when kept is.
func (c *core) keptCurrent(ctx context.Context, tx q, kept bool, gen int64) (bool, error) {
	if !kept {
		return false, nil
	}
	var have int64
	if err := tx.queryRow(ctx, sqlDerivedGeneration).Scan(&have); err != nil {
		return false, err
	}
	return have == gen, nil
}

// Stats implements [Store]: from the kept stats when the store keeps them
// (PostgreSQL) and they are of the generation it sees, else from the
// ledger.
func (c *core) Stats(ctx context.Context) (out []KindStats, err error) {
	if c.refresh == nil {
		return c.stats(ctx, c.reader, sqlStats)
	}
	if err := c.refresh(ctx); err != nil {
		return nil, err
	}
	err = c.snapshotTx(ctx, func(tx q, _ streamFunc) error {
		var gen int64
		if err := tx.queryRow(ctx, sqlGeneration).Scan(&gen); err != nil {
			return fmt.Errorf("store: stats: %w", err)
		}
		query := sqlStats
		if ok, err := c.keptCurrent(ctx, tx, true, gen); err != nil {
			return fmt.Errorf("store: stats: %w", err)
		} else if ok {
			query = sqlDerivedStats
		}
		out, err = c.stats(ctx, tx, query)
		return err
	})
	return out, err
}

// stats reads (kind, status, count) rows of query.
func (c *core) stats(ctx context.Context, db q, query string) ([]KindStats, error) {
	rows, err := db.query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("store: stats: %w", err)
	}
	defer rows.Close()
	b := newStatsBuilder()
	for rows.Next() {
		var (
			k, n   int64
			status string
		)
		if err := rows.Scan(&k, &status, &n); err != nil {
			return nil, fmt.Errorf("store: stats: %w", err)
		}
		if err := b.add(psi.Kind(k), status, n); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: stats: %w", err)
	}
	return b.list(), nil
}
