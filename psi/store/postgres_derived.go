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
// Stats call: digest_classes holds, for every (kind, digest) of the
// ledger, how many of its identifiers are in each class (a digest is
// matchable when one of them is), identifier_stats the counts of Stats,
// both as of the ledger generation in derived_state. The tables are
// unlogged, so a crash of the server empties them together and the next
// reader rebuilds them.
//
// A snapshot (without a per-subject cap) or a Stats call first brings them
// to the current generation (refreshDerived), in one REPEATABLE READ
// transaction, in one of two ways:
//
//   - incrementally, from derived_changes, the log that statement triggers
//     on identifiers, identifier_collections and consent_events write in
//     the changing transaction (migration 12): the (kind, digest) pairs of
//     the identifiers that changed (a new identifier, a security
//     collection, an ad_matching event of the identifier or of its
//     subject) are classified again, every identifier of those digests,
//     by the set-based rule text of the whole refresh (classifyFrom)
//     restricted to them and to their subjects' events, which the
//     planner joins by index probes for a few changes and by hashing for
//     many; their old counts are taken out of identifier_stats and the
//     new ones put in, and the log rows the transaction saw are deleted.
//     Rows committed after its snapshot stay for the next refresh;
//
//   - whole, when there are no kept tables (first use, or after a crash),
//     when the log says "everything" (a statement the log does not
//     describe row by row: an update, a delete, or an insert of more than
//     a million rows), or when it names more than an eighth of the
//     ledger's identifiers: set-based statements (hash joins and sorts,
//     not one index probe per identifier) build the next tables, which are
//     swapped in under a short ACCESS EXCLUSIVE lock.
//
// Then the snapshot's own REPEATABLE READ transaction locks the tables in
// ACCESS SHARE mode before it takes its snapshot (so a swap either
// finished before it or waits for it), checks that derived_state holds the
// generation it sees, and streams the matchable digests by the index; if
// the ledger moved in between, it computes the set from the ledger as
// before (sqlMatchable), so every snapshot is the matchable set of the
// generation it records. Per-subject snapshots (SnapshotPerSubject) always
// read the ledger.

// sqlClassify selects the status of every identifier (package doc, rules 1
// and 2, as sqlStats states them per identifier), set-based: the latest
// ad_matching event of each subject that covers all its identifiers (w)
// and of each identifier (s), the later of the two by (effective time,
// id), and the (kind, digest) pairs collected for a security purpose.
var sqlClassify = classifyFrom("identifiers", "", "")

// classifyFrom is sqlClassify for the identifiers of the relation ids
// (with the columns id, subject_id, kind and digest of identifiers), reading
// only the events of the subjects for which subjects is true and of the
// identifiers for which idents is true (conditions on subject_id and
// identifier_id; empty: all). For rule 1 it reads the collections of ids'
// identifiers only: the same rule as long as ids holds, with each
// (kind, digest), every identifier of the ledger that has it.
func classifyFrom(ids, subjects, idents string) string {
	if subjects != "" {
		subjects = " AND " + subjects
	}
	if idents != "" {
		idents = " AND " + idents
	}
	return `WITH w AS (
		SELECT DISTINCT ON (subject_id) subject_id, effective_at, id, granted FROM consent_events
		WHERE purpose = '` + AdMatching + `' AND identifier_id IS NULL` + subjects + `
		ORDER BY subject_id, effective_at DESC, id DESC),
	s AS (
		SELECT DISTINCT ON (subject_id, identifier_id) subject_id, identifier_id, effective_at, id, granted FROM consent_events
		WHERE purpose = '` + AdMatching + `' AND identifier_id IS NOT NULL` + idents + `
		ORDER BY subject_id, identifier_id, effective_at DESC, id DESC),
	sec AS (
		SELECT DISTINCT i.kind, i.digest FROM ` + ids + ` i JOIN identifier_collections c ON c.identifier_id = i.id
		WHERE c.collected_for IN (` + sqlSecurityPurposes + `))
	SELECT i.kind, i.digest, CASE WHEN sec.kind IS NOT NULL THEN 'security'
		ELSE CASE CASE WHEN s.id IS NULL THEN w.granted
			WHEN w.id IS NULL THEN s.granted
			WHEN (s.effective_at, s.id) > (w.effective_at, w.id) THEN s.granted
			ELSE w.granted END
		WHEN TRUE THEN 'matchable' WHEN FALSE THEN 'withdrawn' ELSE 'no_consent' END END AS status
	FROM ` + ids + ` i
	LEFT JOIN w ON w.subject_id = i.subject_id
	LEFT JOIN s ON s.subject_id = i.subject_id AND s.identifier_id = i.id
	LEFT JOIN sec ON sec.kind = i.kind AND sec.digest = i.digest`
}

// derivedLockKey is the session advisory lock that serializes refreshes
// ("derived" in ASCII, truncated).
const derivedLockKey = 0x64657269766564

// derivedLock is the first statement of a snapshot transaction once the
// derived tables exist: taken before the transaction's snapshot, so a swap
// either finished before it or waits for it to end.
const derivedLock = `LOCK TABLE digest_classes, identifier_stats IN ACCESS SHARE MODE`

// incrementalShare: a refresh whose log names more than 1/incrementalShare
// of the ledger's identifiers classifies the whole ledger instead; one
// index probe per identifier costs more than its share of the set-based
// pass beyond that.
const incrementalShare = 8

const (
	sqlDerivedGeneration = `SELECT COALESCE((SELECT generation FROM derived_state WHERE id = 1), -1)`

	sqlDerivedMatchable = `SELECT digest FROM digest_classes WHERE kind = $1 AND matchable > 0 ORDER BY digest`

	sqlDerivedStats = `SELECT kind, status, n FROM identifier_stats WHERE n > 0`

	// sqlClassCounts turns rows of (kind, digest, status) of the relation
	// in its argument into one row per (kind, digest) with the
	// count of each class.
	sqlClassCounts = `SELECT kind, digest,
		count(*) FILTER (WHERE status = 'matchable')::integer AS matchable,
		count(*) FILTER (WHERE status = 'withdrawn')::integer AS withdrawn,
		count(*) FILTER (WHERE status = 'no_consent')::integer AS no_consent,
		count(*) FILTER (WHERE status = 'security')::integer AS security
		FROM %s GROUP BY kind, digest`

	// sqlClassValues spreads the counts of a row d of digest_classes
	// into (status, n) rows.
	sqlClassValues = `('matchable', d.matchable), ('withdrawn', d.withdrawn), ('no_consent', d.no_consent), ('security', d.security)`

	// sqlChangedKeys: the (kind, digest) pairs the log names, as of the
	// transaction's snapshot.
	sqlChangedKeys = `CREATE TEMPORARY TABLE derived_keys ON COMMIT DROP AS
		SELECT i.kind, i.digest FROM derived_changes c JOIN identifiers i ON i.id = c.identifier_id
		UNION
		SELECT i.kind, i.digest FROM derived_changes c JOIN identifiers i ON i.subject_id = c.subject_id
		WHERE c.identifier_id IS NULL`

	// sqlChangedIdentifiers: every identifier of those pairs.
	sqlChangedIdentifiers = `CREATE TEMPORARY TABLE derived_identifiers ON COMMIT DROP AS
		SELECT i.id, i.subject_id, i.kind, i.digest FROM derived_keys k JOIN identifiers i ON i.kind = k.kind AND i.digest = k.digest`

	// sqlStatsDelta takes the changed pairs out of digest_classes and
	// moves identifier_stats by their new counts (derived_delta) minus
	// the old ones it took out: one pass over digest_classes for both.
	sqlStatsDelta = `WITH old AS (
			DELETE FROM digest_classes d USING derived_keys k WHERE d.kind = k.kind AND d.digest = k.digest
			RETURNING d.kind, d.matchable, d.withdrawn, d.no_consent, d.security)
		INSERT INTO identifier_stats (kind, status, n)
		SELECT kind, status, sum(n) FROM (
			SELECT d.kind, v.status, v.n FROM derived_delta d CROSS JOIN LATERAL (VALUES ` + sqlClassValues + `) AS v (status, n)
			UNION ALL
			SELECT d.kind, v.status, -v.n FROM old d CROSS JOIN LATERAL (VALUES ` + sqlClassValues + `) AS v (status, n)
		) AS t GROUP BY kind, status
		ON CONFLICT (kind, status) DO UPDATE SET n = identifier_stats.n + EXCLUDED.n`
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
	whole, err := p.rebuildDerived(ctx, conn)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if whole {
		// A whole refresh deleted every log row it saw, as many as the
		// rows the ledger gained since the last; until they are vacuumed,
		// every later refresh scans them. VACUUM cannot run in a
		// transaction, and does not hold off the writers.
		if _, err := conn.Exec(ctx, `VACUUM derived_changes`); err != nil {
			return fmt.Errorf("%s: vacuum the log: %w", op, err)
		}
	}
	return nil
}

// rebuildDerived brings the kept tables to the generation of one REPEATABLE
// READ transaction, from the log of changes or by classifying the whole
// ledger.
// It reports whether it classified the whole ledger.
func (p *Postgres) rebuildDerived(ctx context.Context, conn *pgxpool.Conn) (whole bool, err error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return false, err
	}
	defer rollback(ctx, tx)
	var gen, have int64
	if err := tx.QueryRow(ctx, `SELECT (`+sqlGeneration+`), (`+sqlDerivedGeneration+`)`).Scan(&gen, &have); err != nil {
		return false, err
	}
	if gen == have {
		return false, nil // another refresh did it
	}
	whole = have < 0
	if !whole {
		var everything bool
		var total, logged int64
		if err := tx.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM derived_changes WHERE subject_id IS NULL AND identifier_id IS NULL),
			(SELECT COALESCE(sum(n), 0) FROM identifier_stats)`).Scan(&everything, &total); err != nil {
			return false, err
		}
		limit := total/incrementalShare + 1
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM derived_changes LIMIT $1) AS t`, limit+1).Scan(&logged); err != nil {
			return false, err
		}
		whole = everything || logged > limit
	}
	steps := []string{
		`SET LOCAL work_mem = '256MB'`,
		`SET LOCAL maintenance_work_mem = '512MB'`,
	}
	if whole {
		steps = append(steps,
			// One pass: the classification, sorted by (kind, digest) and
			// counted per digest as it streams.
			`CREATE UNLOGGED TABLE digest_classes_next AS `+fmt.Sprintf(sqlClassCounts, "("+sqlClassify+") AS c")+` ORDER BY kind, digest`,
			`CREATE UNIQUE INDEX digest_classes_next_kind_digest ON digest_classes_next (kind, digest)`,
			// Statistics (a sample), so the snapshot's plan is the index scan.
			`ANALYZE digest_classes_next`,
			`CREATE UNLOGGED TABLE identifier_stats_next AS SELECT d.kind, v.status, sum(v.n)::bigint AS n
				FROM digest_classes_next d CROSS JOIN LATERAL (VALUES `+sqlClassValues+`) AS v (status, n)
				GROUP BY d.kind, v.status`,
			`CREATE UNIQUE INDEX identifier_stats_next_kind_status ON identifier_stats_next (kind, status)`,
			// The swap: waits for the snapshots reading the old tables.
			`DROP TABLE digest_classes, identifier_stats`,
			`ALTER TABLE digest_classes_next RENAME TO digest_classes`,
			`ALTER INDEX digest_classes_next_kind_digest RENAME TO digest_classes_kind_digest`,
			`ALTER TABLE identifier_stats_next RENAME TO identifier_stats`,
			`ALTER INDEX identifier_stats_next_kind_status RENAME TO identifier_stats_kind_status`,
		)
	} else {
		steps = append(steps,
			// Statistics of the log as it is now, so that the plans
			// probe the indexes of the ledger for a few changes, and scan
			// it for many: in a store larger than memory, probes that
			// touch most pages of a table cost several times its scan
			// (bench/RESULTS.md, "A daily batch in a store larger than
			// memory").
			`ANALYZE derived_changes`,
			sqlChangedKeys,
			`ANALYZE derived_keys`,
			sqlChangedIdentifiers,
			`ANALYZE derived_identifiers`,
			`CREATE TEMPORARY TABLE derived_classes ON COMMIT DROP AS `+classifyFrom("derived_identifiers",
				"subject_id IN (SELECT subject_id FROM derived_identifiers)",
				// By subject too: the index of consent_events leads with it.
				"subject_id IN (SELECT subject_id FROM derived_identifiers) AND identifier_id IN (SELECT id FROM derived_identifiers)"),
			`CREATE TEMPORARY TABLE derived_delta ON COMMIT DROP AS `+fmt.Sprintf(sqlClassCounts, "derived_classes"),
			sqlStatsDelta,
			// In key order, so that the index grows page by page rather
			// than at random.
			`INSERT INTO digest_classes (kind, digest, matchable, withdrawn, no_consent, security)
				SELECT kind, digest, matchable, withdrawn, no_consent, security FROM derived_delta ORDER BY kind, digest`,
		)
	}
	// The log rows this transaction saw, and only those (REPEATABLE READ):
	// rows committed since are of changes it did not see.
	steps = append(steps, `DELETE FROM derived_changes`)
	for _, s := range steps {
		if _, err := tx.Exec(ctx, s); err != nil {
			return false, err
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO derived_state (id, generation) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET generation = EXCLUDED.generation`, gen); err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, err
	}
	if whole {
		p.refreshes.full.Add(1)
	} else {
		p.refreshes.incremental.Add(1)
	}
	return whole, nil
}
