package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// SQLite is the embedded store: one database file in WAL mode, one
// connection for writes and a few for reads, foreign keys on.
type SQLite struct {
	core
	w        *sql.DB // exactly one connection: every write
	r        *sql.DB // readers; w itself for ":memory:"
	warnings []string
}

// OpenSQLite opens (creating if needed) the SQLite database at path, or a
// private in-memory one for ":memory:", and applies pending migrations.
func OpenSQLite(path string) (*SQLite, error) {
	return openSQLite(context.Background(), path)
}

func openSQLite(ctx context.Context, path string) (*SQLite, error) {
	return openSQLiteAt(ctx, path, latestMigration())
}

// openSQLiteAt opens the database with migrations applied up to version
// upTo only (the tests build older schemas with it).
func openSQLiteAt(ctx context.Context, path string, upTo int64) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("store: empty SQLite path")
	}
	memory := path == ":memory:"
	var warnings []string
	if !memory {
		var err error
		if warnings, err = securePaths(path); err != nil {
			return nil, err
		}
	}
	pragmas := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=mmap_size(1073741824)"
	file := "file:" + sqliteEscape(path)
	if memory {
		file = "file::memory:"
	}
	w, err := sql.Open("sqlite", file+"?"+pragmas+"&_pragma=journal_mode(WAL)&_pragma=cache_size(-65536)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &SQLite{w: w, r: w, warnings: warnings}
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	if err := s.migrate(ctx, upTo); err != nil {
		w.Close()
		return nil, err
	}
	if !memory {
		// SQLite gives the -wal and -shm files the database's mode; this
		// makes sure of it, whatever made them.
		if _, err := securePaths(path); err != nil {
			w.Close()
			return nil, err
		}
		r, err := sql.Open("sqlite", file+"?"+pragmas+"&_pragma=query_only(1)&_pragma=cache_size(-65536)")
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		r.SetMaxOpenConns(4)
		s.r = r
	}
	s.core = sqliteCore(s.w, s.r)
	return s, nil
}

// sqliteEscape makes path safe inside a "file:" URI.
func sqliteEscape(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

func (*SQLite) sealed() {}

// Warnings implements [Store]: the files whose modes Open narrowed.
func (s *SQLite) Warnings() []string { return slices.Clone(s.warnings) }

// DatabaseFileMode and DatabaseDirMode are the modes of the SQLite
// database, its -wal, -shm and -journal files, and a directory the store
// creates for them: they hold identifiers in the clear.
const (
	DatabaseFileMode os.FileMode = 0o600
	DatabaseDirMode  os.FileMode = 0o700
)

// securePaths makes the database at path private to its owner before and
// after SQLite opens it: it creates a missing parent directory 0700 and a
// missing database file 0600, whatever the umask, and narrows an existing
// database, -wal, -shm or -journal file readable or writable by group or
// others to 0600, returning a warning for each. It never widens a mode.
func securePaths(path string) (warnings []string, err error) {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, DatabaseDirMode); err != nil {
			return nil, fmt.Errorf("store: create database directory: %w", err)
		}
		if err := os.Chmod(dir, DatabaseDirMode); err != nil {
			return nil, fmt.Errorf("store: create database directory: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, DatabaseFileMode)
	switch {
	case err == nil:
		f.Close()
		if err := os.Chmod(path, DatabaseFileMode); err != nil {
			return nil, fmt.Errorf("store: create database: %w", err)
		}
	case !errors.Is(err, os.ErrExist):
		return nil, fmt.Errorf("store: create database: %w", err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store: database file: %w", err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 == 0 {
			continue
		}
		if err := os.Chmod(p, fi.Mode().Perm()&DatabaseFileMode); err != nil {
			return nil, fmt.Errorf("store: database file %s has mode %04o, readable by others, and cannot be narrowed: %w", p, fi.Mode().Perm(), err)
		}
		warnings = append(warnings, fmt.Sprintf("database file %s had mode %04o (group or others could read the identifiers in it); set to %04o",
			p, fi.Mode().Perm(), fi.Mode().Perm()&DatabaseFileMode))
	}
	return warnings, nil
}

// Close closes the database.
func (s *SQLite) Close() error {
	var err error
	if s.r != s.w {
		err = s.r.Close()
	}
	return errors.Join(err, s.w.Close())
}

func (s *SQLite) migrate(ctx context.Context, upTo int64) (err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if _, err = tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	var current int64
	if err = tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	if current > latestMigration() {
		return fmt.Errorf("store: database schema version %d is newer than this binary's %d", current, latestMigration())
	}
	for _, m := range migrations {
		if m.version <= current || m.version > upTo {
			continue
		}
		if _, err = tx.ExecContext(ctx, m.sqlite); err != nil {
			return fmt.Errorf("store: migration %d (%s): %w", m.version, m.name, err)
		}
		if _, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.version, m.name, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("store: migration %d (%s): %w", m.version, m.name, err)
		}
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// prepareAll prepares queries on tx, closing them all if one fails.
func prepareAll(ctx context.Context, tx *sql.Tx, queries ...string) ([]*sql.Stmt, func(), error) {
	stmts := make([]*sql.Stmt, 0, len(queries))
	closeAll := func() {
		for _, st := range stmts {
			st.Close()
		}
	}
	for _, q := range queries {
		st, err := tx.PrepareContext(ctx, q)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		stmts = append(stmts, st)
	}
	return stmts, closeAll, nil
}

// ImportIdentifiers implements [Store].
func (s *SQLite) ImportIdentifiers(ctx context.Context, rows iter.Seq[Identifier], opts ImportOptions) (ImportResult, error) {
	return runImport(ctx, "import", rows, opts, validateIdentifierAt, s.importChunk)
}

// writeTx runs fn in one write transaction and commits it, rolling back
// when fn or the commit fails. Statements run under a context that is never
// cancelled, to spare modernc a watcher goroutine per statement; callers
// check ctx between rows, and database/sql rolls tx back when ctx ends.
func (s *SQLite) writeTx(ctx context.Context, op string, fn func(qctx context.Context, tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if err := fn(context.WithoutCancel(ctx), tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := ctx.Err(); err != nil {
		tx.Rollback()
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return nil
}

// importChunk records one chunk of identifiers in one transaction.
func (s *SQLite) importChunk(ctx context.Context, rows []seqRow[Identifier], _ bool) (cr chunkResult, err error) {
	err = s.writeTx(ctx, "import", func(qctx context.Context, tx *sql.Tx) error {
		stmts, closeStmts, err := prepareAll(qctx, tx,
			`INSERT INTO subjects (subject) VALUES ($1) ON CONFLICT (subject) DO NOTHING`,
			`SELECT id FROM subjects WHERE subject = $1`,
			`INSERT INTO identifiers (subject_id, kind, value, digest) VALUES ($1, $2, $3, $4)
			ON CONFLICT (subject_id, kind, value) DO NOTHING`,
			`SELECT id FROM identifiers WHERE subject_id = $1 AND kind = $2 AND value = $3`,
			`INSERT INTO identifier_collections (identifier_id, collected_for) VALUES ($1, $2)
			ON CONFLICT (identifier_id, collected_for) DO NOTHING`,
		)
		if err != nil {
			return fmt.Errorf("store: import: %w", err)
		}
		defer closeStmts()
		insSubject, selSubject, insIdent, selIdent, insColl := stmts[0], stmts[1], stmts[2], stmts[3], stmts[4]
		var (
			lastSubject   string
			lastSubjectID int64
			// Rows of a file come mostly new (first load) or mostly
			// known (re-import): try first what worked for the
			// previous row.
			knownSubject, knownIdent bool
		)
		upsert := func(known bool) func(context.Context, *sql.Stmt, *sql.Stmt, []any, []any) (int64, bool, error) {
			if known {
				return selectOrInsert
			}
			return insertOrSelect
		}
		for i, r := range rows {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("store: import: %w", err)
			}
			id := &r.row
			if i == 0 || id.Subject != lastSubject {
				lastSubjectID, knownSubject, err = upsert(knownSubject)(qctx, insSubject, selSubject, []any{id.Subject}, []any{id.Subject})
				if err != nil {
					return fmt.Errorf("store: import: row %d: %w", r.seq, err)
				}
				lastSubject = id.Subject
			}
			var identID int64
			identID, knownIdent, err = upsert(knownIdent)(qctx, insIdent, selIdent,
				[]any{lastSubjectID, int64(id.Kind), id.Value, id.Digest[:]},
				[]any{lastSubjectID, int64(id.Kind), id.Value})
			if err != nil {
				return fmt.Errorf("store: import: row %d: %w", r.seq, err)
			}
			res, err := insColl.ExecContext(qctx, identID, string(id.CollectedFor))
			if err != nil {
				return fmt.Errorf("store: import: row %d: %w", r.seq, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("store: import: %w", err)
			} else if n > 0 {
				cr.inserted++
			} else {
				cr.unchanged++
			}
		}
		return nil
	})
	if err != nil {
		return chunkResult{}, err
	}
	return cr, nil
}

// insertOrSelect runs ins (INSERT … ON CONFLICT DO NOTHING into a rowid
// table) and, when the row existed, sel, returning the row's id.
func insertOrSelect(ctx context.Context, ins, sel *sql.Stmt, insArgs, selArgs []any) (id int64, existed bool, err error) {
	r, err := ins.ExecContext(ctx, insArgs...)
	if err != nil {
		return 0, false, err
	}
	if n, err := r.RowsAffected(); err != nil {
		return 0, false, err
	} else if n == 1 {
		id, err = r.LastInsertId()
		return id, false, err
	}
	err = sel.QueryRowContext(ctx, selArgs...).Scan(&id)
	return id, true, err
}

// selectOrInsert is insertOrSelect for rows that probably exist already.
func selectOrInsert(ctx context.Context, ins, sel *sql.Stmt, insArgs, selArgs []any) (id int64, existed bool, err error) {
	err = sel.QueryRowContext(ctx, selArgs...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return insertOrSelect(ctx, ins, sel, insArgs, selArgs)
	}
	return id, true, err
}

// AppendConsent implements [Store].
func (s *SQLite) AppendConsent(ctx context.Context, events iter.Seq[ConsentEvent], opts ImportOptions) (ImportResult, error) {
	return runImport(ctx, "append consent", events, opts, validateEvent, s.appendChunk)
}

// appendChunk appends one chunk of consent events in one transaction.
func (s *SQLite) appendChunk(ctx context.Context, events []seqRow[ConsentEvent], strict bool) (cr chunkResult, err error) {
	err = s.writeTx(ctx, "append consent", func(qctx context.Context, tx *sql.Tx) error {
		stmts, closeStmts, err := prepareAll(qctx, tx,
			`SELECT s.id FROM subjects s WHERE s.subject = $1
				AND EXISTS (SELECT 1 FROM identifiers i WHERE i.subject_id = s.id)`,
			`SELECT s.id, i.id FROM subjects s JOIN identifiers i ON i.subject_id = s.id
				WHERE s.subject = $1 AND i.kind = $2 AND i.value = $3`,
			`SELECT EXISTS (SELECT 1 FROM consent_events WHERE subject_id = $1 AND purpose = $2
				AND identifier_id IS $3 AND granted = $4 AND at = $5 AND source = $6 AND text_version = $7)`,
			`INSERT INTO consent_events (subject_id, identifier_id, purpose, granted, at, source, text_version, recorded_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		)
		if err != nil {
			return fmt.Errorf("store: append consent: %w", err)
		}
		defer closeStmts()
		selSubject, selIdent, selSame, insEvent := stmts[0], stmts[1], stmts[2], stmts[3]
		// The transaction holds the only writer, so recordedAt is after
		// the validation of every row of the chunk: validateEvent's
		// future check against the time it ran is never looser than one
		// against recordedAt.
		recordedAt := time.Now().UnixMicro()
		for _, r := range events {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("store: append consent: %w", err)
			}
			e := &r.row
			var subjectID int64
			var identID sql.NullInt64
			var unknown error
			if e.subjectWide() {
				err = selSubject.QueryRowContext(qctx, e.Subject).Scan(&subjectID)
				unknown = ErrUnknownSubject
			} else {
				err = selIdent.QueryRowContext(qctx, e.Subject, int64(e.Kind), e.Value).Scan(&subjectID, &identID)
				unknown = ErrUnknownIdentifier
			}
			if errors.Is(err, sql.ErrNoRows) {
				re := &RowError{Row: r.seq, Err: unknown}
				if strict {
					return re
				}
				cr.rejects = append(cr.rejects, re)
				continue
			}
			if err != nil {
				return fmt.Errorf("store: append consent: row %d: %w", r.seq, err)
			}
			granted := 0
			if e.Granted {
				granted = 1
			}
			var same bool
			if err := selSame.QueryRowContext(qctx, subjectID, e.Purpose, identID, granted,
				e.At.UnixMicro(), e.Source, e.TextVersion).Scan(&same); err != nil {
				return fmt.Errorf("store: append consent: row %d: %w", r.seq, err)
			}
			if same {
				cr.unchanged++
				continue
			}
			if _, err := insEvent.ExecContext(qctx, subjectID, identID, e.Purpose, granted,
				e.At.UnixMicro(), e.Source, e.TextVersion, recordedAt); err != nil {
				return fmt.Errorf("store: append consent: row %d: %w", r.seq, err)
			}
			cr.inserted++
		}
		return nil
	})
	if err != nil {
		return chunkResult{}, err
	}
	return cr, nil
}
