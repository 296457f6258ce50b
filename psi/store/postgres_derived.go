package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgreSQL keeps the classification of the package doc (rules 1 and 2)
// rather than recomputing it per identifier for every snapshot and every
// Stats call: matchable_digests holds the matchable set of every kind in
// (kind, digest) order and identifier_stats the counts of Stats, both as
// of the ledger generation in derived_state. The three tables are
// unlogged, so a crash of the server empties them together and the next
// reader rebuilds them.
//
// A snapshot (without a per-subject cap) or a Stats call first brings them
// to the current generation (refreshDerived): when the generation moved,
// one REPEATABLE READ transaction classifies every identifier with
// set-based statements (hash joins and sorts, not one index probe per
// identifier), builds the next tables, and swaps them in under a short
// ACCESS EXCLUSIVE lock. Then the snapshot's own REPEATABLE READ
// transaction locks them in ACCESS SHARE mode before it takes its
// snapshot, checks that derived_state holds the generation it sees, and
// streams matchable_digests by its index; if the ledger moved in between,
// it computes the set from the ledger as before (sqlMatchable), so every
// snapshot is the matchable set of the generation it records. Per-subject
// snapshots (SnapshotPerSubject) always read the ledger.

// derivedLockKey is the session advisory lock that serializes refreshes
// ("derived" in ASCII, truncated).
const derivedLockKey = 0x64657269766564

// derivedLock is the first statement of a snapshot transaction once the
// derived tables exist: taken before the transaction's snapshot, so a swap
// either finished before it or waits for it to end.
const derivedLock = `LOCK TABLE matchable_digests, identifier_stats IN ACCESS SHARE MODE`

const (
	sqlDerivedGeneration = `SELECT COALESCE((SELECT generation FROM derived_state WHERE id = 1), -1)`

	sqlDerivedMatchable = `SELECT digest FROM matchable_digests WHERE kind = $1 ORDER BY digest`

	sqlDerivedStats = `SELECT kind, status, n FROM identifier_stats`

	// sqlClassify is the status of every identifier (package doc, rules
	// 1 and 2, as sqlStats states them per identifier), set-based: the
	// latest ad_matching event of each subject that covers all its
	// identifiers (w) and of each identifier (s), the later of the two by
	// (effective time, id), and the (kind, digest) pairs collected for a
	// security purpose.
	sqlClassify = `CREATE TEMPORARY TABLE derived_classes ON COMMIT DROP AS
	WITH w AS (
		SELECT DISTINCT ON (subject_id) subject_id, effective_at, id, granted FROM consent_events
		WHERE purpose = '` + AdMatching + `' AND identifier_id IS NULL
		ORDER BY subject_id, effective_at DESC, id DESC),
	s AS (
		SELECT DISTINCT ON (subject_id, identifier_id) subject_id, identifier_id, effective_at, id, granted FROM consent_events
		WHERE purpose = '` + AdMatching + `' AND identifier_id IS NOT NULL
		ORDER BY subject_id, identifier_id, effective_at DESC, id DESC),
	sec AS (
		SELECT DISTINCT i.kind, i.digest FROM identifiers i JOIN identifier_collections c ON c.identifier_id = i.id
		WHERE c.collected_for IN (` + sqlSecurityPurposes + `))
	SELECT i.kind, i.digest, CASE WHEN sec.kind IS NOT NULL THEN 'security'
		ELSE CASE CASE WHEN s.id IS NULL THEN w.granted
			WHEN w.id IS NULL THEN s.granted
			WHEN (s.effective_at, s.id) > (w.effective_at, w.id) THEN s.granted
			ELSE w.granted END
		WHEN TRUE THEN 'matchable' WHEN FALSE THEN 'withdrawn' ELSE 'no_consent' END END AS status
	FROM identifiers i
	LEFT JOIN w ON w.subject_id = i.subject_id
	LEFT JOIN s ON s.subject_id = i.subject_id AND s.identifier_id = i.id
	LEFT JOIN sec ON sec.kind = i.kind AND sec.digest = i.digest`
)

// refreshDerived brings the derived tables to the ledger's current
// generation, unless they are there already.
func (p *Postgres) refreshDerived(ctx context.Context) error {
	const op = "store: refresh matchable set"
	var gen, have int64
	if err := p.pool.QueryRow(ctx, `SELECT (`+sqlGeneration+`), (`+sqlDerivedGeneration+`)`).Scan(&gen, &have); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if gen == have {
		return nil
	}
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer conn.Release()
	// A session lock, taken before the transaction begins: a refresh that
	// waited for another one takes its snapshot after that one committed,
	// and finds the work done if the ledger did not move meanwhile.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(derivedLockKey)); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, int64(derivedLockKey))
	}()
	if err := rebuildDerived(ctx, conn); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// rebuildDerived classifies the ledger in one REPEATABLE READ transaction
// and swaps the new tables in.
func rebuildDerived(ctx context.Context, conn *pgxpool.Conn) error {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return err
	}
	defer rollback(ctx, tx)
	var gen, have int64
	if err := tx.QueryRow(ctx, `SELECT (`+sqlGeneration+`), (`+sqlDerivedGeneration+`)`).Scan(&gen, &have); err != nil {
		return err
	}
	if gen == have {
		return nil // another refresh did it
	}
	for _, s := range []string{
		`SET LOCAL work_mem = '256MB'`,
		`SET LOCAL maintenance_work_mem = '512MB'`,
		sqlClassify,
		`CREATE UNLOGGED TABLE matchable_digests_next AS
			SELECT DISTINCT kind, digest FROM derived_classes WHERE status = 'matchable' ORDER BY kind, digest`,
		`CREATE UNIQUE INDEX matchable_digests_next_kind_digest ON matchable_digests_next (kind, digest)`,
		// Statistics (a sample), so the snapshot's plan is the index scan.
		`ANALYZE matchable_digests_next`,
		`CREATE UNLOGGED TABLE identifier_stats_next AS
			SELECT kind, status, count(*) AS n FROM derived_classes GROUP BY kind, status`,
		// The swap: waits for the snapshots reading the old tables.
		`DROP TABLE matchable_digests, identifier_stats`,
		`ALTER TABLE matchable_digests_next RENAME TO matchable_digests`,
		`ALTER INDEX matchable_digests_next_kind_digest RENAME TO matchable_digests_kind_digest`,
		`ALTER TABLE identifier_stats_next RENAME TO identifier_stats`,
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO derived_state (id, generation) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET generation = EXCLUDED.generation`, gen); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
