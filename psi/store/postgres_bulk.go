package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A bulk identifier import on PostgreSQL ([ImportOptions].Bulk) has two
// phases.
//
// Staging: the rows are copied (COPY, pgx's binary format) in chunks into
// an unlogged table of their own, bulk_identifiers_N, without any index or
// constraint, and each chunk's transaction moves the batch's staged mark
// (bulk_batches.staged, the sequence number of its last row) with it. An
// unlogged table is not WAL-logged: a row costs a heap append and nothing
// else. A run killed while staging leaves the committed chunks and their
// mark; a run under the same name skips the rows up to the mark (it reads
// and validates them again, and reports their rejects again, but does not
// stage them twice). A crash of the PostgreSQL server empties unlogged
// tables, bulk_batches among them, so the batch starts over.
//
// Merging: one transaction inserts the staged rows into subjects,
// identifiers and identifier_collections with set-based statements (hash
// joins over the whole batch rather than an index probe per row), then
// drops the staging table and the batch. A kill during the merge rolls it
// back; the next run finds the batch fully staged and merges again. Rows
// already in the ledger are skipped, as by the chunked import, so the
// result (rows, ids in row order, counts) is the chunked import's.
//
// When a batch holds at least as many rows as the ledger holds
// identifiers (an initial load), the merge first drops the secondary
// indexes and the foreign keys of the three tables, inserts, and builds
// them again (bulkRebuild): a B-tree built by sorting costs a fraction of
// one grown by 10^8 single insertions. The DDL is transactional, so a
// killed merge leaves the indexes as they were. The merge holds ACCESS
// EXCLUSIVE locks on the three tables while it runs: sessions that
// snapshot the ledger wait for it.

// bulkRebuildMin is the least number of staged rows for which a merge may
// rebuild the indexes (a variable so that the tests can force either
// path).
var bulkRebuildMin int64 = 1_000_000

// bulkLockKey is the first key of the session advisory lock that keeps
// two bulk imports of one batch from running at once ("bulk" in ASCII).
const bulkLockKey = 0x62756c6b

// bulkIndexes are the indexes and constraints a rebuilding merge drops, in
// the order it drops them; it adds them back in reverse order with the
// same names, so the schema is unchanged.
var bulkIndexes = []struct{ drop, add string }{
	{`ALTER TABLE identifier_collections DROP CONSTRAINT identifier_collections_identifier_id_fkey`,
		`ALTER TABLE identifier_collections ADD CONSTRAINT identifier_collections_identifier_id_fkey FOREIGN KEY (identifier_id) REFERENCES identifiers (id)`},
	{`ALTER TABLE identifier_collections DROP CONSTRAINT identifier_collections_pkey`,
		`ALTER TABLE identifier_collections ADD CONSTRAINT identifier_collections_pkey PRIMARY KEY (identifier_id, collected_for)`},
	{`ALTER TABLE identifiers DROP CONSTRAINT identifiers_subject_id_fkey`,
		`ALTER TABLE identifiers ADD CONSTRAINT identifiers_subject_id_fkey FOREIGN KEY (subject_id) REFERENCES subjects (id)`},
	{`DROP INDEX identifiers_kind_digest`,
		`CREATE INDEX identifiers_kind_digest ON identifiers (kind, digest) INCLUDE (subject_id, id)`},
	{`ALTER TABLE identifiers DROP CONSTRAINT identifiers_subject_id_kind_value_key`,
		`ALTER TABLE identifiers ADD CONSTRAINT identifiers_subject_id_kind_value_key UNIQUE (subject_id, kind, value)`},
	{`ALTER TABLE subjects DROP CONSTRAINT subjects_subject_key`,
		`ALTER TABLE subjects ADD CONSTRAINT subjects_subject_key UNIQUE (subject)`},
}

// errBulkRunning is bulkSession's error when another session holds the
// batch's lock.
var errBulkRunning = errors.New("another bulk import of this batch is running")

// bulkSession acquires the connection a bulk import of the batch name
// runs on, holding the session advisory lock of the batch, with
// synchronous_commit off for the staged chunks. release gives it back.
func (p *Postgres) bulkSession(ctx context.Context, op, name string) (conn *pgxpool.Conn, release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("store: %s: %w", op, err)
	}
	conn, err = p.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("store: %s: %w", op, err)
	}
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, int32(bulkLockKey), name).Scan(&locked); err != nil {
		conn.Release()
		return nil, nil, fmt.Errorf("store: %s: %w", op, err)
	}
	if !locked {
		conn.Release()
		return nil, nil, fmt.Errorf("store: %s: %w", op, errBulkRunning)
	}
	unlock := func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		conn.Exec(uctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, int32(bulkLockKey), name)
		conn.Exec(uctx, `RESET synchronous_commit`)
		conn.Exec(uctx, `RESET temp_buffers`)
		conn.Release()
	}
	// Room for the merge's temporary tables in memory (8 MB by default);
	// PostgreSQL takes it only before the session's first temporary
	// table, so a connection that had one keeps its setting.
	conn.Exec(ctx, `SET temp_buffers = '256MB'`)
	// Commits of staged chunks need not wait for the disk: an unlogged
	// table does not survive a crash anyway. The merge's commit sets it
	// back.
	if _, err := conn.Exec(ctx, `SET synchronous_commit = off`); err != nil {
		unlock()
		return nil, nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return conn, unlock, nil
}

// bulkImport runs a bulk identifier import of the batch opts.Bulk.
func (p *Postgres) bulkImport(ctx context.Context, rows iter.Seq[Identifier], opts ImportOptions) (res ImportResult, err error) {
	const op = "bulk import"
	if strings.HasPrefix(opts.Bulk, bulkConsentPrefix) {
		return res, fmt.Errorf("store: %s: a batch name may not begin with %q", op, bulkConsentPrefix)
	}
	phase := func(format string, args ...any) {
		if opts.Phase != nil {
			opts.Phase(fmt.Sprintf(format, args...))
		}
	}
	conn, release, err := p.bulkSession(ctx, op, opts.Bulk)
	if err != nil {
		return res, err
	}
	defer release()

	id, staged, _, err := bulkBatch(ctx, conn, opts.Bulk, bulkIdentifiersTable, bulkIdentifiersColumns)
	if err != nil {
		return res, err
	}
	table := pgx.Identifier{bulkIdentifiersTable + strconv.FormatInt(id, 10)}
	if staged > 0 {
		phase("resuming: rows up to %d were staged before", staged)
	} else {
		phase("staging")
	}
	if opts.ChunkRows <= 0 {
		opts.ChunkRows = DefaultPostgresChunkRows
	}
	var valid int64
	res, err = runImport(ctx, op, rows, opts, validateIdentifierAt, func(ctx context.Context, rows []seqRow[Identifier], _ bool) (chunkResult, error) {
		valid += int64(len(rows))
		if i := firstAfter(rows, staged); i < len(rows) {
			if err := stageChunk(ctx, conn, id, table, rows[i:], copyIdentifiers); err != nil {
				return chunkResult{}, err
			}
		}
		return chunkResult{}, nil
	})
	if err != nil {
		return res, err
	}
	phase("merging %d staged rows into the ledger", valid)
	inserted, err := p.bulkMerge(ctx, conn, id, table, valid, phase)
	if err != nil {
		return res, err
	}
	res.Inserted, res.Unchanged = inserted, valid-inserted
	// Planner statistics at once, as after a chunked import.
	conn.Exec(ctx, "ANALYZE subjects, identifiers, identifier_collections")
	return res, nil
}

// firstAfter is the index of the first row of rows past sequence number
// staged (rows are in sequence order).
func firstAfter[T any](rows []seqRow[T], staged int64) int {
	for i := range rows {
		if rows[i].seq > staged {
			return i
		}
	}
	return len(rows)
}

// The staging tables of bulk imports: bulk_identifiers_N and
// bulk_consent_N for batch N, with their columns.
const (
	bulkIdentifiersTable   = "bulk_identifiers_"
	bulkIdentifiersColumns = `seq bigint NOT NULL, subject text NOT NULL, kind smallint NOT NULL, value text NOT NULL,
			digest bytea NOT NULL, collected_for text NOT NULL`
)

// bulkBatch finds or creates the batch name and its staging table (table
// followed by the batch id, with columns), and returns its id, staged
// mark and the time it was created.
func bulkBatch(ctx context.Context, conn *pgxpool.Conn, name, table, columns string) (id, staged int64, created time.Time, err error) {
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT id, staged, created_at FROM bulk_batches WHERE name = $1`, name).Scan(&id, &staged, &created)
		if errors.Is(err, pgx.ErrNoRows) {
			created = time.Now().UTC().Truncate(time.Microsecond)
			err = tx.QueryRow(ctx, `INSERT INTO bulk_batches (name, created_at, updated_at) VALUES ($1, $2, $2) RETURNING id`,
				name, created).Scan(&id)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `CREATE UNLOGGED TABLE IF NOT EXISTS `+bulkTable(table, id)+` (`+columns+`)`)
		return err
	})
	if err != nil {
		return 0, 0, time.Time{}, fmt.Errorf("store: bulk import: batch: %w", err)
	}
	return id, staged, created, nil
}

func bulkTable(table string, id int64) string {
	return pgx.Identifier{table + strconv.FormatInt(id, 10)}.Sanitize()
}

// dropBatch drops the staging table and the batch row of batch id, in a
// transaction of its own: the batch starts over at the next run.
func dropBatch(ctx context.Context, conn *pgxpool.Conn, id int64, table pgx.Identifier) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+table.Sanitize()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM bulk_batches WHERE id = $1`, id)
		return err
	})
}

// checkStaged compares the rows of the staging table t (in the merge's
// transaction) with the valid rows the run read, staged by it or by a run
// before it. They differ only if the staging table lost or gained rows
// behind the batch's back; the batch is then dropped, so that the next run
// starts over, rather than merged short of rows.
func checkStaged(ctx context.Context, tx pgx.Tx, conn *pgxpool.Conn, id int64, table pgx.Identifier, valid int64) error {
	var staged int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+table.Sanitize()).Scan(&staged); err != nil {
		return fmt.Errorf("store: bulk import: merge: %w", err)
	}
	if staged == valid {
		return nil
	}
	rollback(ctx, tx)
	if err := dropBatch(ctx, conn, id, table); err != nil {
		return fmt.Errorf("store: bulk import: the staging table holds %d rows where %d were read, and dropping the batch failed: %w", staged, valid, err)
	}
	return fmt.Errorf("store: bulk import: the staging table held %d rows where %d were read; the batch was dropped, run the import again to start over", staged, valid)
}

// stageChunk copies rows into the staging table and moves the batch's
// mark to the last of them, in one transaction.
func stageChunk[T any](ctx context.Context, conn *pgxpool.Conn, id int64, table pgx.Identifier, rows []seqRow[T],
	copyRows func(context.Context, pgx.Tx, pgx.Identifier, []seqRow[T]) error) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := copyRows(ctx, tx, table, rows); err != nil {
			return fmt.Errorf("store: bulk import: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE bulk_batches SET staged = $2, updated_at = $3 WHERE id = $1`,
			id, rows[len(rows)-1].seq, time.Now()); err != nil {
			return fmt.Errorf("store: bulk import: %w", err)
		}
		return nil
	})
}

// bulkMerge inserts the staged rows of batch id into the ledger, drops its
// staging table and the batch, and returns how many identifier
// collections it added (the chunked import's Inserted).
func (p *Postgres) bulkMerge(ctx context.Context, conn *pgxpool.Conn, id int64, table pgx.Identifier, valid int64, phase func(string, ...any)) (inserted int64, err error) {
	t := table.Sanitize()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: bulk import: merge: %w", err)
	}
	defer rollback(ctx, tx)
	exec := func(q string, args ...any) (int64, error) {
		tag, err := tx.Exec(ctx, q, args...)
		if err != nil {
			return 0, fmt.Errorf("store: bulk import: merge: %w", err)
		}
		return tag.RowsAffected(), nil
	}
	// No other writer between the anti-joins below and the commit;
	// readers go on (until a rebuild takes its stronger locks).
	for _, s := range []string{`LOCK TABLE subjects, identifiers, identifier_collections IN SHARE ROW EXCLUSIVE MODE`,
		`SET LOCAL synchronous_commit = on`, `SET LOCAL work_mem = '256MB'`,
		`SET LOCAL maintenance_work_mem = '512MB'`, `ANALYZE ` + t} {
		if _, err := exec(s); err != nil {
			return 0, err
		}
	}
	if err := checkStaged(ctx, tx, conn, id, table, valid); err != nil {
		return 0, err
	}
	var ledger int64
	if err := tx.QueryRow(ctx, `SELECT reltuples::bigint FROM pg_class WHERE oid = 'identifiers'::regclass`).Scan(&ledger); err != nil {
		return 0, fmt.Errorf("store: bulk import: merge: %w", err)
	}
	rebuild := valid >= bulkRebuildMin && valid >= ledger
	if rebuild {
		phase("dropping the ledger's indexes to rebuild them after the merge")
		notePglz(ctx, tx, phase)
		for _, ix := range bulkIndexes {
			if _, err := exec(ix.drop); err != nil {
				return 0, err
			}
		}
	}
	// A batch under a twentieth of the ledger (a daily batch, not a load)
	// is joined to the ledger by probes of its unique indexes in their
	// key order, never by hashing the ledger, which costs in proportion
	// to the ledger where the probes cost in proportion to the batch. The
	// checks for keys the ledger holds already can be answered by the
	// indexes alone; the lookups of subject and identifier ids read rows
	// (bench/RESULTS.md, "A daily batch in a store larger than memory").
	// The settings end with the transaction.
	small := valid*20 < ledger
	sorted := func(rel, by string) string { return rel }
	newSubjects := `SELECT DISTINCT r.subject FROM ` + t + ` r`
	if small {
		sorted = inKeyOrder
		newSubjects = `SELECT r.subject FROM ` + inKeyOrder(`(SELECT DISTINCT subject FROM `+t+`)`, `subject`) + ` r`
		for _, s := range pgImportSettings {
			if _, err := exec(s); err != nil {
				return 0, err
			}
		}
	}
	// The same three steps as the chunked import, stated without ON
	// CONFLICT so that they need no unique index: the first row of each key
	// in row order, when the ledger does not hold the key yet. New
	// identifiers are inserted in row order, so their ids are the chunked
	// import's.
	steps := []string{
		`INSERT INTO subjects (subject) ` + newSubjects + `
		WHERE NOT EXISTS (SELECT 1 FROM subjects s WHERE s.subject = r.subject)`,
		// The rows with their subject ids, joined once for both steps
		// below (a temporary table: not WAL-logged).
		`CREATE TEMPORARY TABLE bulk_rows ON COMMIT DROP AS
		SELECT r.seq, s.id AS subject_id, r.kind, r.value, r.digest, r.collected_for
		FROM ` + sorted(t, `subject`) + ` r JOIN subjects s ON s.subject = r.subject`,
		`ANALYZE bulk_rows`,
		`INSERT INTO identifiers (subject_id, kind, value, digest)
		SELECT x.subject_id, x.kind, x.value, x.digest FROM (
			SELECT DISTINCT ON (subject_id, kind, value) subject_id, kind, value, digest, seq
			FROM bulk_rows ORDER BY subject_id, kind, value, seq) x
		WHERE NOT EXISTS (SELECT 1 FROM identifiers i WHERE i.subject_id = x.subject_id AND i.kind = x.kind AND i.value = x.value)
		ORDER BY x.seq`,
		`INSERT INTO identifier_collections (identifier_id, collected_for)
		SELECT DISTINCT i.id, r.collected_for
		FROM ` + sorted(`bulk_rows`, `subject_id, kind, value`) + ` r JOIN identifiers i ON i.subject_id = r.subject_id AND i.kind = r.kind AND i.value = r.value
		WHERE NOT EXISTS (SELECT 1 FROM identifier_collections c WHERE c.identifier_id = i.id AND c.collected_for = r.collected_for)`,
	}
	for i, q := range steps {
		n, err := exec(q)
		if err != nil {
			return 0, err
		}
		if i == len(steps)-1 {
			inserted = n
		}
	}
	if rebuild {
		phase("rebuilding the ledger's indexes")
		for i := len(bulkIndexes) - 1; i >= 0; i-- {
			if _, err := exec(bulkIndexes[i].add); err != nil {
				return 0, err
			}
		}
	}
	if _, err := exec(`DROP TABLE ` + t); err != nil {
		return 0, err
	}
	if _, err := exec(`DELETE FROM bulk_batches WHERE id = $1`, id); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("store: bulk import: merge: %w", err)
	}
	return inserted, nil
}
