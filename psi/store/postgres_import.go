package store

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultPostgresChunkRows is how many rows a PostgreSQL identifier
// import commits at a time when [ImportOptions].ChunkRows is 0 (consent
// appends keep [DefaultChunkRows]: they hold an EXCLUSIVE lock on
// consent_events per chunk, and measured no faster in larger ones).
// PostgreSQL locks rows, not the database, and an identifier import takes
// no table lock, so a large chunk blocks no session. A chunk is the work
// redone when an import is killed and run again.
const DefaultPostgresChunkRows = 100_000

// The staging table of a PostgreSQL identifier import: temporary (not
// WAL-logged, private to the import's connection), created once per
// connection and emptied at every commit.
const (
	pgStageIdentifiers = `CREATE TEMPORARY TABLE IF NOT EXISTS overlap_stage_identifiers (
		seq bigint NOT NULL, subject text NOT NULL, kind smallint NOT NULL, value text NOT NULL,
		digest bytea NOT NULL, collected_for text NOT NULL) ON COMMIT DELETE ROWS`
)

// pgImportSettings are set in each chunk's transaction: the plan of each
// step is a nested loop over the staging table, one index probe per row
// into the ledger's tables, whatever the planner estimates for a table it
// has no statistics of (a hash or merge join would read a whole ledger
// table for a chunk).
var pgImportSettings = []string{
	`SET LOCAL enable_hashjoin = off`,
	`SET LOCAL enable_mergejoin = off`,
}

// pgJoinDefaults puts the settings of pgImportSettings back to their
// configured values for the rest of the transaction (a RESET would outlive
// it on the pooled connection).
var pgJoinDefaults = []string{
	`SET LOCAL enable_hashjoin = DEFAULT`,
	`SET LOCAL enable_mergejoin = DEFAULT`,
}

// inKeyOrder is the relation rel (a table or a parenthesized query)
// sorted by the columns by, fenced with OFFSET 0 so that the planner keeps
// the order for the index probes of a nested loop above it.
func inKeyOrder(rel, by string) string {
	return `(SELECT * FROM ` + rel + ` AS x ORDER BY ` + by + ` OFFSET 0)`
}

// postgresImport runs runImport over one connection of the pool that
// keeps the staging table created by stage, each chunk in a transaction
// of its own that write fills.
func postgresImport[T any](ctx context.Context, pool *pgxpool.Pool, op, stage string, rows iter.Seq[T], opts ImportOptions,
	validate func(*T, time.Time) error, write func(ctx context.Context, tx pgx.Tx, rows []seqRow[T], strict bool) (chunkResult, error)) (res ImportResult, err error) {
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("store: %s: %w", op, err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("store: %s: %w", op, err)
	}
	defer conn.Release()
	// Room for a chunk in the session's temporary buffers (8 MB by
	// default), so the staging table stays in memory. PostgreSQL allows
	// the change only before the session's first use of a temporary
	// table; a connection that staged an import before keeps its setting.
	conn.Exec(ctx, `SET temp_buffers = '256MB'`)
	if _, err := conn.Exec(ctx, stage); err != nil {
		return res, fmt.Errorf("store: %s: %w", op, err)
	}
	if opts.ChunkRows <= 0 {
		opts.ChunkRows = DefaultPostgresChunkRows
	}
	var total int64
	res, err = runImport(ctx, op, rows, opts, validate, func(ctx context.Context, rows []seqRow[T], strict bool) (cr chunkResult, err error) {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return cr, fmt.Errorf("store: %s: %w", op, err)
		}
		for _, s := range pgImportSettings {
			if _, err := tx.Exec(ctx, s); err != nil {
				rollback(ctx, tx)
				return cr, fmt.Errorf("store: %s: %w", op, err)
			}
		}
		if cr, err = write(ctx, tx, rows, strict); err != nil {
			rollback(ctx, tx)
			return chunkResult{}, err
		}
		if err := tx.Commit(ctx); err != nil {
			rollback(ctx, tx)
			return chunkResult{}, fmt.Errorf("store: %s: %w", op, err)
		}
		total += cr.inserted
		return cr, nil
	})
	if total >= analyzeAfter {
		// Planner statistics at once, rather than when autovacuum gets to
		// it: the first snapshot after a bulk load should not be planned
		// on empty-table estimates. Best effort: the rows are committed.
		conn.Exec(ctx, "ANALYZE subjects, identifiers, identifier_collections")
	}
	return res, err
}

// ImportIdentifiers implements [Store]. With opts.Bulk set it is a bulk
// import (postgres_bulk.go). Otherwise each chunk's rows are copied
// (COPY) into a temporary staging table, then inserted with three
// set-based INSERT … SELECT … ON CONFLICT DO NOTHING (subjects,
// identifiers, collections), in one transaction per chunk. Duplicate rows
// need no DISTINCT: within one statement, DO NOTHING skips the second of
// two equal keys. New identifiers are inserted in the order of the rows,
// so their ids follow import order as on SQLite (SnapshotPerSubject breaks
// ties by id).
func (p *Postgres) ImportIdentifiers(ctx context.Context, rows iter.Seq[Identifier], opts ImportOptions) (ImportResult, error) {
	if opts.Bulk != "" {
		return p.bulkImport(ctx, rows, opts)
	}
	return postgresImport(ctx, p.pool, "import", pgStageIdentifiers, rows, opts, validateIdentifierAt, importChunkPostgres)
}

func importChunkPostgres(ctx context.Context, tx pgx.Tx, rows []seqRow[Identifier], _ bool) (cr chunkResult, err error) {
	if err := copyIdentifiers(ctx, tx, pgx.Identifier{"overlap_stage_identifiers"}, rows); err != nil {
		return cr, fmt.Errorf("store: import: %w", err)
	}
	steps := []string{
		`INSERT INTO subjects (subject) SELECT DISTINCT subject FROM overlap_stage_identifiers
		ON CONFLICT (subject) DO NOTHING`,
		`INSERT INTO identifiers (subject_id, kind, value, digest)
		SELECT s.id, r.kind, r.value, r.digest
		FROM overlap_stage_identifiers r JOIN subjects s ON s.subject = r.subject
		ORDER BY r.seq
		ON CONFLICT (subject_id, kind, value) DO NOTHING`,
		`INSERT INTO identifier_collections (identifier_id, collected_for)
		SELECT i.id, r.collected_for
		FROM overlap_stage_identifiers r JOIN subjects s ON s.subject = r.subject
		JOIN identifiers i ON i.subject_id = s.id AND i.kind = r.kind AND i.value = r.value
		ON CONFLICT (identifier_id, collected_for) DO NOTHING`,
	}
	for i, q := range steps {
		tag, err := tx.Exec(ctx, q)
		if err != nil {
			return cr, fmt.Errorf("store: import: %w", err)
		}
		if i == len(steps)-1 {
			cr.inserted = tag.RowsAffected()
		}
	}
	cr.unchanged = int64(len(rows)) - cr.inserted
	return cr, nil
}

// copyIdentifiers copies rows into table, a staging table of the columns
// seq, subject, kind, value, digest and collected_for (COPY, binary).
func copyIdentifiers(ctx context.Context, tx pgx.Tx, table pgx.Identifier, rows []seqRow[Identifier]) error {
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(rows) {
			return nil, nil
		}
		r := &rows[i]
		i++
		id := &r.row
		return []any{r.seq, id.Subject, int16(id.Kind), id.Value, id.Digest[:], string(id.CollectedFor)}, nil
	})
	copied, err := tx.CopyFrom(ctx, table, []string{"seq", "subject", "kind", "value", "digest", "collected_for"}, src)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if copied != int64(len(rows)) {
		return fmt.Errorf("copied %d of %d rows", copied, len(rows))
	}
	return nil
}

// notePglz tells phase, before a merge rebuilds the ledger's indexes,
// when the server compresses its WAL with pglz (wal_compression = on or
// pglz), and says nothing otherwise or when the setting cannot be read
// (missing_ok: it never fails the transaction). An index build writes
// each page of the index to the WAL, and pglz compresses it on one core:
// with it, the rebuild after a load of 10^7 identifiers took 90 s where
// lz4 took 51 s, and that after 5.5·10^6 consent events 23.5 s where lz4
// took 15.3 s (bench/RESULTS.md, "What 200,000 rows/s would take on this
// machine").
func notePglz(ctx context.Context, tx pgx.Tx, phase func(string, ...any)) {
	var v *string
	if err := tx.QueryRow(ctx, `SELECT current_setting('wal_compression', true)`).Scan(&v); err != nil || v == nil {
		return
	}
	if *v == "on" || *v == "pglz" {
		phase("note: the server compresses its WAL with pglz (wal_compression = %s), which made such rebuilds 1.5 to 1.8 times as long as with lz4 or off in our measurements; see the README, \"PostgreSQL for a large store\"", *v)
	}
}
