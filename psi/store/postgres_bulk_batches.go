package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// BulkBatch is a bulk import (ImportOptions.Bulk) whose rows are staged
// but not merged: one that was stopped while staging or merging, or whose
// file changed before it was run again. Its staging table holds the rows
// it read, identifiers or consent events, until a run under the same name
// merges them or DropBulkBatches drops them.
type BulkBatch struct {
	Name      string    // the batch's name (the CLI's: what, the file's path, size and modification time)
	Consent   bool      // a consent import; otherwise an identifier import
	Staged    int64     // the sequence number of the last staged row
	CreatedAt time.Time // when its first run began
	UpdatedAt time.Time // when a run last staged rows
}

// BulkBatches lists the bulk imports that are staged and not merged,
// oldest first.
func (p *Postgres) BulkBatches(ctx context.Context) ([]BulkBatch, error) {
	rows, err := p.pool.Query(ctx, `SELECT name, staged, created_at, updated_at FROM bulk_batches ORDER BY updated_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: bulk batches: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (BulkBatch, error) {
		var b BulkBatch
		err := r.Scan(&b.Name, &b.Staged, &b.CreatedAt, &b.UpdatedAt)
		b.Name, b.Consent = strings.CutPrefix(b.Name, bulkConsentPrefix)
		b.CreatedAt, b.UpdatedAt = b.CreatedAt.UTC(), b.UpdatedAt.UTC()
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: bulk batches: %w", err)
	}
	return out, nil
}

// DropBulkBatches drops the staged rows and the batch of every bulk import
// that last staged rows before before, and returns them. A batch whose
// import is running (it holds the batch's lock) is left alone, whatever
// its age. Nothing of a dropped batch is in the ledger; running its import
// again starts it over.
func (p *Postgres) DropBulkBatches(ctx context.Context, before time.Time) ([]BulkBatch, error) {
	all, err := p.BulkBatches(ctx)
	if err != nil {
		return nil, err
	}
	var dropped []BulkBatch
	for _, b := range all {
		if !b.UpdatedAt.Before(before) {
			continue
		}
		name, table := b.Name, bulkIdentifiersTable
		if b.Consent {
			name, table = bulkConsentPrefix+b.Name, bulkConsentTable
		}
		ok, err := p.dropBulkBatch(ctx, name, table)
		if err != nil {
			return dropped, err
		}
		if ok {
			dropped = append(dropped, b)
		}
	}
	return dropped, nil
}

// dropBulkBatch drops batch name and its staging table (table followed by
// its id) under the batch's lock, and reports whether it did: false when
// an import of the batch holds the lock, or the batch is gone.
func (p *Postgres) dropBulkBatch(ctx context.Context, name, table string) (bool, error) {
	conn, release, err := p.bulkSession(ctx, "dropping a bulk batch", name)
	if errors.Is(err, errBulkRunning) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer release()
	var id int64
	err = conn.QueryRow(ctx, `SELECT id FROM bulk_batches WHERE name = $1`, name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: dropping a bulk batch: %w", err)
	}
	if err := dropBatch(ctx, conn, id, pgx.Identifier{table + strconv.FormatInt(id, 10)}); err != nil {
		return false, fmt.Errorf("store: dropping a bulk batch: %w", err)
	}
	return true, nil
}
