package store

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultPostgresChunkRows is how many rows a PostgreSQL import commits at
// a time when [ImportOptions].ChunkRows is 0. PostgreSQL locks rows, not
// the database, so a large chunk blocks no session: identifier imports
// hold no table lock, and consent appends hold an EXCLUSIVE lock on
// consent_events, which lets snapshots read. A chunk is the work redone
// when an import is killed and run again.
const DefaultPostgresChunkRows = 100_000

// Staging tables of a PostgreSQL import: temporary (not WAL-logged, private
// to the import's connection), created once per connection and emptied at
// every commit.
const (
	pgStageIdentifiers = `CREATE TEMPORARY TABLE IF NOT EXISTS overlap_stage_identifiers (
		seq bigint NOT NULL, subject text NOT NULL, kind smallint NOT NULL, value text NOT NULL,
		digest bytea NOT NULL, collected_for text NOT NULL) ON COMMIT DELETE ROWS`
	pgStageConsent = `CREATE TEMPORARY TABLE IF NOT EXISTS overlap_stage_consent (
		seq bigint NOT NULL, subject text NOT NULL, kind smallint NOT NULL, value text NOT NULL,
		purpose text NOT NULL, granted boolean NOT NULL, at timestamptz NOT NULL, source text NOT NULL,
		text_version text NOT NULL, refused boolean NOT NULL DEFAULT false) ON COMMIT DELETE ROWS`
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
		conn.Exec(ctx, "ANALYZE subjects, identifiers, identifier_collections, consent_events")
	}
	return res, err
}

// ImportIdentifiers implements [Store]: each chunk's rows are copied
// (COPY) into a temporary staging table, then inserted with three
// set-based INSERT … SELECT … ON CONFLICT DO NOTHING (subjects,
// identifiers, collections), in one transaction per chunk. Duplicate rows
// need no DISTINCT: within one statement, DO NOTHING skips the second of
// two equal keys. New identifiers are inserted in the order of the rows,
// so their ids follow import order as on SQLite (SnapshotPerSubject breaks
// ties by id).
func (p *Postgres) ImportIdentifiers(ctx context.Context, rows iter.Seq[Identifier], opts ImportOptions) (ImportResult, error) {
	return postgresImport(ctx, p.pool, "import", pgStageIdentifiers, rows, opts, validateIdentifierAt, importChunkPostgres)
}

func importChunkPostgres(ctx context.Context, tx pgx.Tx, rows []seqRow[Identifier], _ bool) (cr chunkResult, err error) {
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
	copied, err := tx.CopyFrom(ctx, pgx.Identifier{"overlap_stage_identifiers"},
		[]string{"seq", "subject", "kind", "value", "digest", "collected_for"}, src)
	if err != nil {
		return cr, fmt.Errorf("store: import: copy: %w", err)
	}
	if copied != int64(len(rows)) {
		return cr, fmt.Errorf("store: import: copied %d of %d rows", copied, len(rows))
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

// AppendConsent implements [Store]. Each chunk is copied (COPY) into a
// temporary staging table and appended from there with set-based SQL, in
// one transaction that holds an EXCLUSIVE lock on consent_events from
// before its first read, so ids are assigned in commit order (and in row
// order within a chunk), a snapshot's LedgerPosition covers exactly the
// events it saw, and the check for an identical event already in the
// ledger cannot race another append.
func (p *Postgres) AppendConsent(ctx context.Context, events iter.Seq[ConsentEvent], opts ImportOptions) (ImportResult, error) {
	return postgresImport(ctx, p.pool, "append consent", pgStageConsent, events, opts, validateEvent, appendChunkPostgres)
}

func appendChunkPostgres(ctx context.Context, tx pgx.Tx, rows []seqRow[ConsentEvent], strict bool) (cr chunkResult, err error) {
	fail := func(err error) (chunkResult, error) {
		return chunkResult{}, fmt.Errorf("store: append consent: %w", err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE consent_events IN EXCLUSIVE MODE`); err != nil {
		return fail(err)
	}
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(rows) {
			return nil, nil
		}
		r := &rows[i]
		i++
		e := &r.row
		return []any{r.seq, e.Subject, int16(e.Kind), e.Value, e.Purpose, e.Granted, e.At, e.Source, e.TextVersion}, nil
	})
	copied, err := tx.CopyFrom(ctx, pgx.Identifier{"overlap_stage_consent"},
		[]string{"seq", "subject", "kind", "value", "purpose", "granted", "at", "source", "text_version"}, src)
	if err != nil {
		return fail(fmt.Errorf("copy: %w", err))
	}
	if copied != int64(len(rows)) {
		return fail(fmt.Errorf("copied %d of %d rows", copied, len(rows)))
	}
	// Refused rows: a subject-wide event for a subject without
	// identifiers, a scoped one for an identifier the subject does not
	// have. Marked, so the append skips them.
	refused, err := tx.Query(ctx, `UPDATE overlap_stage_consent r SET refused = true
		WHERE NOT EXISTS (SELECT 1 FROM subjects s JOIN identifiers i ON i.subject_id = s.id
			WHERE s.subject = r.subject AND (r.kind = 0 OR (i.kind = r.kind AND i.value = r.value)))
		RETURNING r.seq, r.kind = 0`)
	if err != nil {
		return fail(err)
	}
	for refused.Next() {
		var seq int64
		var wide bool
		if err := refused.Scan(&seq, &wide); err != nil {
			refused.Close()
			return fail(err)
		}
		re := &RowError{Row: seq, Err: ErrUnknownIdentifier}
		if wide {
			re.Err = ErrUnknownSubject
		}
		cr.rejects = append(cr.rejects, re)
	}
	refused.Close()
	if err := refused.Err(); err != nil {
		return fail(err)
	}
	slices.SortFunc(cr.rejects, func(a, b *RowError) int { return int(a.Row - b.Row) })
	if strict && len(cr.rejects) > 0 {
		return chunkResult{}, cr.rejects[0]
	}
	// The first of identical rows of the chunk, when no identical event
	// is in the ledger yet, in row order.
	tag, err := tx.Exec(ctx, `INSERT INTO consent_events
			(subject_id, identifier_id, purpose, granted, at, source, text_version, recorded_at)
		SELECT s.id, i.id, r.purpose, r.granted, r.at, r.source, r.text_version, $1
		FROM (SELECT DISTINCT ON (r.subject, r.kind, r.value, r.purpose, r.granted, r.at, r.source, r.text_version) r.*
			FROM overlap_stage_consent r WHERE NOT r.refused
			ORDER BY r.subject, r.kind, r.value, r.purpose, r.granted, r.at, r.source, r.text_version, r.seq) AS r
		JOIN subjects s ON s.subject = r.subject
		LEFT JOIN identifiers i ON r.kind <> 0 AND i.subject_id = s.id AND i.kind = r.kind AND i.value = r.value
		WHERE NOT EXISTS (SELECT 1 FROM consent_events e WHERE e.subject_id = s.id AND e.purpose = r.purpose
			AND e.identifier_id IS NOT DISTINCT FROM i.id AND e.granted = r.granted AND e.at = r.at
			AND e.source = r.source AND e.text_version = r.text_version)
		ORDER BY r.seq`, time.Now())
	if err != nil {
		return fail(err)
	}
	cr.inserted = tag.RowsAffected()
	cr.unchanged = int64(len(rows)-len(cr.rejects)) - cr.inserted
	return cr, nil
}
