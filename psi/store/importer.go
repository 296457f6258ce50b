package store

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"time"
)

// seqRow is one validated row of a chunk and its 1-based position in the
// import.
type seqRow[T any] struct {
	seq int64
	row T
}

// chunkResult is what one committed chunk did with its valid rows.
type chunkResult struct {
	inserted, unchanged int64
	rejects             []*RowError // refused by the database (unknown subject, identifier)
}

// chunkWriter writes the valid rows of one chunk in one transaction and
// commits it. With strict set it refuses to commit a chunk in which it
// would reject a row, and returns that row's *RowError instead.
type chunkWriter[T any] func(ctx context.Context, rows []seqRow[T], strict bool) (chunkResult, error)

// runImport is the engine-independent part of ImportIdentifiers and
// AppendConsent: it reads rows, validates each, and hands them to write in
// chunks of opts.ChunkRows, one transaction each, reporting refused rows in
// row order after their chunk committed. The result counts committed
// chunks only.
func runImport[T any](ctx context.Context, op string, rows iter.Seq[T], opts ImportOptions,
	validate func(*T, time.Time) error, write chunkWriter[T]) (res ImportResult, err error) {
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("store: %s: %w", op, err)
	}
	strict := opts.OnReject == nil
	chunk := opts.chunkRows()
	var (
		batch   []seqRow[T]
		refused []*RowError // validation rejects of the current chunk
		read    int64       // rows read, including the current chunk
	)
	flush := func() error {
		n := read - res.Read
		if n == 0 {
			return nil
		}
		cr := chunkResult{}
		if len(batch) > 0 {
			var err error
			if cr, err = write(ctx, batch, strict); err != nil {
				return ctxError(ctx, op, err)
			}
		}
		all := append(refused, cr.rejects...)
		slices.SortFunc(all, func(a, b *RowError) int { return int(a.Row - b.Row) })
		res.Read += n
		res.Inserted += cr.inserted
		res.Unchanged += cr.unchanged
		res.Rejected += int64(len(all))
		for _, re := range all {
			opts.OnReject(re)
		}
		if opts.Progress != nil {
			opts.Progress(res)
		}
		batch, refused = batch[:0], nil
		return nil
	}
	for row := range rows {
		read++
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("store: %s: %w", op, err)
		}
		if err := validate(&row, time.Now()); err != nil {
			re := rowError(read, err)
			if strict {
				return res, re
			}
			refused = append(refused, re)
		} else {
			batch = append(batch, seqRow[T]{read, row})
		}
		if read-res.Read >= int64(chunk) {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("store: %s: %w", op, err)
	}
	if err := flush(); err != nil {
		return res, err
	}
	return res, nil
}

func validateIdentifierAt(id *Identifier, _ time.Time) error { return validateIdentifier(id) }
