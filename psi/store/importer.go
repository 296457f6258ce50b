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
//
// Reading overlaps writing: while write commits one chunk (in a goroutine
// of its own), the next is read and validated. Writes never overlap: a
// chunk is handed to write only after the one before it committed, so
// chunks commit in row order, and callbacks run in this goroutine, in row
// order, as if the import ran in one.
func runImport[T any](ctx context.Context, op string, rows iter.Seq[T], opts ImportOptions,
	validate func(*T, time.Time) error, write chunkWriter[T]) (res ImportResult, err error) {
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("store: %s: %w", op, err)
	}
	strict := opts.OnReject == nil
	chunk := opts.chunkRows()
	var (
		batch    = make([]seqRow[T], 0, min(chunk, 1<<16))
		refused  []*RowError // validation rejects of the current chunk
		read     int64       // rows read, including the current chunk
		sent     int64       // rows read before the current chunk
		inflight *pendingChunk
	)
	// collect waits for the chunk being written and accounts for it.
	collect := func() error {
		p := inflight
		if p == nil {
			return nil
		}
		inflight = nil
		<-p.done
		if p.err != nil {
			return ctxError(ctx, op, p.err)
		}
		all := append(p.refused, p.cr.rejects...)
		slices.SortFunc(all, func(a, b *RowError) int { return int(a.Row - b.Row) })
		res.Read += p.rows
		res.Inserted += p.cr.inserted
		res.Unchanged += p.cr.unchanged
		res.Rejected += int64(len(all))
		for _, re := range all {
			opts.OnReject(re)
		}
		if opts.Progress != nil {
			opts.Progress(res)
		}
		return nil
	}
	// flush waits for the chunk before and starts writing the current one.
	flush := func() error {
		if err := collect(); err != nil {
			return err
		}
		if read == sent {
			return nil
		}
		if err := ctx.Err(); err != nil { // an OnReject that cancelled it
			return fmt.Errorf("store: %s: %w", op, err)
		}
		p := &pendingChunk{rows: read - sent, refused: refused, done: make(chan struct{})}
		inflight = p
		if len(batch) == 0 {
			close(p.done)
		} else {
			go func(rows []seqRow[T]) {
				defer close(p.done)
				p.cr, p.err = write(ctx, rows, strict)
			}(batch)
			batch = make([]seqRow[T], 0, min(chunk, 1<<16))
		}
		sent, refused = read, nil
		return nil
	}
	// stop ends the import with err once the chunk being written is
	// accounted for; that chunk's own error comes first.
	stop := func(err error) (ImportResult, error) {
		if cerr := collect(); cerr != nil {
			return res, cerr
		}
		return res, err
	}
	for row := range rows {
		read++
		if err := ctx.Err(); err != nil {
			return stop(fmt.Errorf("store: %s: %w", op, err))
		}
		if err := validate(&row, time.Now()); err != nil {
			re := rowError(read, err)
			if strict {
				return stop(re)
			}
			refused = append(refused, re)
		} else {
			batch = append(batch, seqRow[T]{read, row})
		}
		if read-sent >= int64(chunk) {
			if err := flush(); err != nil {
				return stop(err)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return stop(fmt.Errorf("store: %s: %w", op, err))
	}
	if err := flush(); err != nil {
		return stop(err)
	}
	return stop(nil)
}

// pendingChunk is a chunk handed to the writer: its rows read (refused
// ones included), their validation rejects, and, once done is closed, what
// the write did.
type pendingChunk struct {
	rows    int64
	refused []*RowError
	done    chan struct{}
	cr      chunkResult
	err     error
}

func validateIdentifierAt(id *Identifier, _ time.Time) error { return validateIdentifier(id) }
