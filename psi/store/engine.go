package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// core is the part of both engines written once: the registry, the
// journal and the snapshot readers, over a handle of either engine and the
// few differences of its dialect. *SQLite and *Postgres embed it, so its
// methods are theirs.
type core struct {
	reader q // reads outside a transaction
	writer q // writes outside a transaction
	// inTx runs fn in one write transaction and commits it, rolling back
	// when fn fails. SQLite's writer connection begins it IMMEDIATE and so
	// serializes it with every other write, and its begin and commit
	// errors have the prefix "store: op: "; PostgreSQL's (pgx.BeginFunc)
	// runs at the server's default isolation, its statements lock what
	// they must (forUpdate), and its begin and commit errors are pgx's.
	inTx func(ctx context.Context, op string, fn func(tx q) error) error
	// ts is a timestamp as a statement argument: Unix microseconds for
	// SQLite's INTEGER columns, the time itself for timestamptz.
	ts func(time.Time) any
	// forUpdate ends a SELECT that locks the rows it reads: " FOR UPDATE"
	// on PostgreSQL, "" on SQLite, whose writer holds the database.
	forUpdate string
	// isUnique reports a unique-constraint violation.
	isUnique func(error) bool
	// snapshotTx runs fn in one read-only transaction that sees one state
	// of the database: a read transaction of SQLite in WAL mode, a
	// REPEATABLE READ one on PostgreSQL. stream reads the matchable set
	// without a copy: sql.RawBytes on SQLite, pgx's binary bytea on
	// PostgreSQL.
	snapshotTx func(ctx context.Context, fn func(tx q, stream streamFunc) error) error
	// refresh, when set (PostgreSQL from the derived migration on),
	// brings the kept matchable set and stats to the current generation
	// (postgres_derived.go); nil reads the ledger every time.
	refresh func(ctx context.Context) error
}

// q runs statements: a database, a pool or a transaction of either engine.
type q interface {
	exec(ctx context.Context, query string, args ...any) (result, error)
	queryRow(ctx context.Context, query string, args ...any) scanner
	query(ctx context.Context, query string, args ...any) (rows, error)
}

type (
	scanner interface{ Scan(dest ...any) error }
	result  interface{ RowsAffected() (int64, error) }
	rows    interface {
		scanner
		Next() bool
		Err() error
		Close()
	}
)

// queryAll runs query on db and scans each row with scan; its errors have
// the prefix "store: op: ".
func queryAll[T any](ctx context.Context, db q, op string, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return out, nil
}

// isNoRows reports a single-row query that found none, on either engine.
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) || errors.Is(err, pgx.ErrNoRows) }

// --- SQLite (database/sql) ---

type sqlHandle interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

type sqlQ struct{ h sqlHandle }

func (s sqlQ) exec(ctx context.Context, query string, args ...any) (result, error) {
	res, err := s.h.ExecContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (s sqlQ) queryRow(ctx context.Context, query string, args ...any) scanner {
	return s.h.QueryRowContext(ctx, query, args...)
}

func (s sqlQ) query(ctx context.Context, query string, args ...any) (rows, error) {
	r, err := s.h.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

// sqliteCore is the core of a SQLite store with writer w and readers r.
func sqliteCore(w, r *sql.DB) core {
	return core{
		reader: sqlQ{r},
		writer: sqlQ{w},
		inTx: func(ctx context.Context, op string, fn func(q) error) error {
			tx, err := w.BeginTx(ctx, nil)
			if err != nil {
				return fmt.Errorf("store: %s: %w", op, err)
			}
			defer tx.Rollback()
			if err := fn(sqlQ{tx}); err != nil {
				return err
			}
			if err := tx.Commit(); err != nil {
				return fmt.Errorf("store: %s: %w", op, err)
			}
			return nil
		},
		ts:         func(t time.Time) any { return t.UnixMicro() },
		snapshotTx: func(ctx context.Context, fn func(q, streamFunc) error) error { return sqliteSnapshotTx(ctx, r, fn) },
		isUnique: func(err error) bool {
			return strings.Contains(err.Error(), "UNIQUE constraint failed")
		},
	}
}

func sqliteSnapshotTx(ctx context.Context, r *sql.DB, fn func(q, streamFunc) error) error {
	tx, err := r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("store: snapshot: %w", err)
	}
	defer tx.Rollback()
	return fn(sqlQ{tx}, func(ctx context.Context, query string, args []any, each func([]byte) error) error {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("store: snapshot: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var raw sql.RawBytes
			if err := rows.Scan(&raw); err != nil {
				return fmt.Errorf("store: snapshot: %w", err)
			}
			if err := each(raw); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: snapshot: %w", err)
		}
		return nil
	})
}

// --- PostgreSQL (pgx) ---

type pgxHandle interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	QueryRow(context.Context, string, ...any) pgx.Row
	Query(context.Context, string, ...any) (pgx.Rows, error)
}

type pgxQ struct{ h pgxHandle }

func (p pgxQ) exec(ctx context.Context, query string, args ...any) (result, error) {
	tag, err := p.h.Exec(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgxResult{tag}, nil
}

func (p pgxQ) queryRow(ctx context.Context, query string, args ...any) scanner {
	return p.h.QueryRow(ctx, query, args...)
}

func (p pgxQ) query(ctx context.Context, query string, args ...any) (rows, error) {
	return p.h.Query(ctx, query, args...)
}

type pgxResult struct{ tag pgconn.CommandTag }

func (r pgxResult) RowsAffected() (int64, error) { return r.tag.RowsAffected(), nil }

// postgresCore is the core of a PostgreSQL store over pool.
func postgresCore(pool *pgxpool.Pool) core {
	return core{
		reader: pgxQ{pool},
		writer: pgxQ{pool},
		inTx: func(ctx context.Context, _ string, fn func(q) error) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return fn(pgxQ{tx}) })
		},
		ts: func(t time.Time) any { return t },
		snapshotTx: func(ctx context.Context, fn func(q, streamFunc) error) error {
			return postgresSnapshotTx(ctx, pool, "", fn)
		},
		forUpdate: " FOR UPDATE",
		isUnique: func(err error) bool {
			var pe *pgconn.PgError
			return errors.As(err, &pe) && pe.Code == "23505"
		},
	}
}

// postgresSnapshotTx runs fn in a REPEATABLE READ, read-only transaction
// whose first statement is lock, if not empty: a LOCK TABLE, which
// PostgreSQL runs before the transaction takes its snapshot.
func postgresSnapshotTx(ctx context.Context, pool *pgxpool.Pool, lock string, fn func(q, streamFunc) error) error {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("store: snapshot: %w", err)
	}
	defer rollback(ctx, tx)
	if lock != "" {
		if _, err := tx.Exec(ctx, lock); err != nil {
			return fmt.Errorf("store: snapshot: %w", err)
		}
	}
	return fn(pgxQ{tx}, func(ctx context.Context, query string, args []any, each func([]byte) error) error {
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("store: snapshot: %w", err)
		}
		defer rows.Close()
		if fd := rows.FieldDescriptions(); len(fd) != 1 || fd[0].Format != pgx.BinaryFormatCode {
			return errors.New("store: snapshot: unexpected result format")
		}
		for rows.Next() {
			if err := each(rows.RawValues()[0]); err != nil { // binary bytea: the bytes themselves
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: snapshot: %w", err)
		}
		return nil
	})
}

// stamp scans a timestamp column of either engine, in UTC: Unix
// microseconds (SQLite INTEGER) or timestamptz. NULL is the zero time.
type stamp struct{ t time.Time }

// Scan implements [sql.Scanner], which both drivers call.
func (s *stamp) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		s.t = time.Time{}
	case int64:
		s.t = time.UnixMicro(v).UTC()
	case time.Time:
		s.t = v.UTC()
	default:
		return fmt.Errorf("timestamp stored as %T", src)
	}
	return nil
}
