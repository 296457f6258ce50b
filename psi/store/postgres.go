package store

import (
	"context"
	"fmt"
	"iter"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is the PostgreSQL store, over a pgx connection pool. Tables live
// in the connection's search_path (a DSN may set search_path=SCHEMA).
type Postgres struct {
	core
	pool *pgxpool.Pool

	// refreshes counts the refreshes of the kept classification this
	// handle made, by kind (postgres_derived.go).
	refreshes struct{ full, incremental atomic.Int64 }
}

// migrateLockKey is the pg_advisory_xact_lock key that serializes
// migrations of concurrent Opens ("overlap-store" in ASCII).
const migrateLockKey = 0x6f7665726c61707

// analyzeAfter is how many new rows make an import or append refresh the
// planner statistics at once, rather than when autovacuum gets to it: the
// first snapshot after a bulk load should not be planned on empty-table
// estimates.
const analyzeAfter = 10_000

// OpenPostgres connects to the PostgreSQL database dsn names and applies
// pending migrations. Unless the DSN sets jit, sessions run with jit=off:
// the matchable-set query is a long scan with cheap per-row subqueries,
// whose high cost estimate makes JIT compilation cost more than it saves.
func OpenPostgres(ctx context.Context, dsn string) (*Postgres, error) {
	return openPostgresAt(ctx, dsn, latestMigration())
}

// openPostgresAt opens the database with migrations applied up to version
// upTo only (the tests build older schemas with it).
func openPostgresAt(ctx context.Context, dsn string, upTo int64) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn redacts the password from its parse errors.
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["jit"]; !ok {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	p := &Postgres{core: postgresCore(pool), pool: pool}
	if err := p.migrate(ctx, upTo); err != nil {
		pool.Close()
		return nil, err
	}
	if v := migrationVersion(incrementalMigration); upTo >= v {
		p.refresh = p.refreshDerived
		p.snapshotTx = func(ctx context.Context, fn func(q, streamFunc) error) error {
			return postgresSnapshotTx(ctx, pool, derivedLock, fn)
		}
	}
	return p, nil
}

func (*Postgres) sealed() {}

// Warnings implements [Store]: PostgreSQL has none; its files are the
// server's.
func (*Postgres) Warnings() []string { return nil }

// Close closes every connection of the pool.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}

func (p *Postgres) migrate(ctx context.Context, upTo int64) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLockKey)); err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version bigint PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)`); err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
		var current int64
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
		if current > latestMigration() {
			return fmt.Errorf("store: database schema version %d is newer than this binary's %d", current, latestMigration())
		}
		for _, m := range migrations {
			if m.version <= current || m.version > upTo {
				continue
			}
			if _, err := tx.Exec(ctx, m.postgres); err != nil {
				return fmt.Errorf("store: migration %d (%s): %w", m.version, m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, time.Now()); err != nil {
				return fmt.Errorf("store: migration %d (%s): %w", m.version, m.name, err)
			}
		}
		return nil
	})
}

// analyze refreshes planner statistics of tables after a bulk change. It is
// best effort: the change is committed, and autovacuum analyzes later anyway.
func (p *Postgres) analyze(ctx context.Context, tables string) {
	p.pool.Exec(ctx, "ANALYZE "+tables)
}

// rollback ends tx even when ctx is already cancelled.
func rollback(ctx context.Context, tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	tx.Rollback(ctx)
}

// inTx runs fn in one transaction and commits it, rolling back when fn or
// the commit fails.
func (p *Postgres) inTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if err := fn(tx); err != nil {
		rollback(ctx, tx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		rollback(ctx, tx)
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return nil
}

// consentBatch holds a chunk of validated events as columns for unnest.
type consentBatch struct {
	seq                                          []int64
	subject, value, purpose, source, textVersion []string
	kind                                         []int16
	granted                                      []bool
	at                                           []time.Time
}

func (b *consentBatch) add(seq int64, e *ConsentEvent) {
	b.seq = append(b.seq, seq)
	b.subject = append(b.subject, e.Subject)
	b.kind = append(b.kind, int16(e.Kind))
	b.value = append(b.value, e.Value)
	b.purpose = append(b.purpose, e.Purpose)
	b.granted = append(b.granted, e.Granted)
	b.at = append(b.at, e.At)
	b.source = append(b.source, e.Source)
	b.textVersion = append(b.textVersion, e.TextVersion)
}

func (b *consentBatch) reset() { *b = consentBatch{} }

// consentRows is the batch as a relation; kind 0 marks a subject-wide event.
const consentRows = `unnest($1::bigint[], $2::text[], $3::smallint[], $4::text[], $5::text[],
	$6::boolean[], $7::timestamptz[], $8::text[], $9::text[])
	AS r (seq, subject, kind, value, purpose, granted, at, source, text_version)`

// AppendConsent implements [Store]. Each chunk goes in through unnest, in
// one transaction that holds an EXCLUSIVE lock on consent_events from
// before its first read, so ids are assigned in commit order, a snapshot's
// LedgerPosition covers exactly the events it saw, and the check for an
// identical event already in the ledger cannot race another append. With
// opts.Bulk set it is a bulk consent import (postgres_bulk_consent.go).
func (p *Postgres) AppendConsent(ctx context.Context, events iter.Seq[ConsentEvent], opts ImportOptions) (ImportResult, error) {
	if opts.Bulk != "" {
		return p.bulkAppendConsent(ctx, events, opts)
	}
	var total int64
	res, err := runImport(ctx, "append consent", events, opts, validateEvent,
		func(ctx context.Context, rows []seqRow[ConsentEvent], strict bool) (chunkResult, error) {
			cr, err := p.appendChunk(ctx, rows, strict)
			total += cr.inserted
			return cr, err
		})
	if total >= analyzeAfter {
		p.analyze(ctx, "subjects, consent_events")
	}
	return res, err
}

func (p *Postgres) appendChunk(ctx context.Context, rows []seqRow[ConsentEvent], strict bool) (cr chunkResult, err error) {
	var b consentBatch
	for i := range rows {
		b.add(rows[i].seq, &rows[i].row)
	}
	args := []any{b.seq, b.subject, b.kind, b.value, b.purpose, b.granted, b.at, b.source, b.textVersion}
	err = p.inTx(ctx, "append consent", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE consent_events IN EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("store: append consent: %w", err)
		}
		// Refused rows: a subject-wide event for a subject without
		// identifiers, a scoped one for an identifier the subject does
		// not have.
		refused, err := tx.Query(ctx, `SELECT r.seq, r.kind = 0 FROM `+consentRows+`
			WHERE NOT EXISTS (SELECT 1 FROM subjects s JOIN identifiers i ON i.subject_id = s.id
				WHERE s.subject = r.subject AND (r.kind = 0 OR (i.kind = r.kind AND i.value = r.value)))
			ORDER BY r.seq`, args...)
		if err != nil {
			return fmt.Errorf("store: append consent: %w", err)
		}
		skip := []int64{} // not nil: pgx sends nil as NULL
		for refused.Next() {
			var seq int64
			var wide bool
			if err := refused.Scan(&seq, &wide); err != nil {
				refused.Close()
				return fmt.Errorf("store: append consent: %w", err)
			}
			re := &RowError{Row: seq, Err: ErrUnknownIdentifier}
			if wide {
				re.Err = ErrUnknownSubject
			}
			cr.rejects = append(cr.rejects, re)
			skip = append(skip, seq)
		}
		refused.Close()
		if err := refused.Err(); err != nil {
			return fmt.Errorf("store: append consent: %w", err)
		}
		if strict && len(cr.rejects) > 0 {
			return cr.rejects[0]
		}
		// The first of identical rows of the chunk, when no identical
		// event is in the ledger yet, in row order.
		tag, err := tx.Exec(ctx, `INSERT INTO consent_events
				(subject_id, identifier_id, purpose, granted, at, source, text_version, recorded_at)
			SELECT s.id, i.id, r.purpose, r.granted, r.at, r.source, r.text_version, $10
			FROM (SELECT DISTINCT ON (r.subject, r.kind, r.value, r.purpose, r.granted, r.at, r.source, r.text_version) r.*
				FROM `+consentRows+` WHERE NOT (r.seq = ANY ($11::bigint[]))
				ORDER BY r.subject, r.kind, r.value, r.purpose, r.granted, r.at, r.source, r.text_version, r.seq) AS r
			JOIN subjects s ON s.subject = r.subject
			LEFT JOIN identifiers i ON r.kind <> 0 AND i.subject_id = s.id AND i.kind = r.kind AND i.value = r.value
			WHERE NOT EXISTS (SELECT 1 FROM consent_events e WHERE e.subject_id = s.id AND e.purpose = r.purpose
				AND e.identifier_id IS NOT DISTINCT FROM i.id AND e.granted = r.granted AND e.at = r.at
				AND e.source = r.source AND e.text_version = r.text_version)
			ORDER BY r.seq`, append(args, time.Now(), skip)...)
		if err != nil {
			return fmt.Errorf("store: append consent: %w", err)
		}
		cr.inserted = tag.RowsAffected()
		cr.unchanged = int64(len(rows)-len(skip)) - cr.inserted
		return nil
	})
	if err != nil {
		return chunkResult{}, err
	}
	return cr, nil
}
