package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is the PostgreSQL store, over a pgx connection pool. Tables live
// in the connection's search_path (a DSN may set search_path=SCHEMA).
type Postgres struct {
	core
	pool *pgxpool.Pool
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
