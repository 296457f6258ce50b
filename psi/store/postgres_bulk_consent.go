package store

import (
	"context"
	"fmt"
	"iter"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A bulk consent import on PostgreSQL ([ImportOptions].Bulk given to
// AppendConsent) works as a bulk identifier import (postgres_bulk.go):
// the valid events are copied in chunks into an unlogged table of their
// own, bulk_consent_N, each chunk's transaction moving the batch's staged
// mark, and a run under the same name after an interruption skips the
// rows up to the mark. The batch is a row of bulk_batches like an
// identifier batch, its name prefixed with bulkConsentPrefix, so that the
// two kinds never share a batch. No schema change was needed.
//
// Then one transaction, holding the EXCLUSIVE lock on consent_events that
// a chunked append holds per chunk (when the batch is at least as large as
// the ledger and bulkRebuildMin, ACCESS EXCLUSIVE locks of consent_events,
// subjects and identifiers, as it drops the index and foreign keys of
// consent_events and adds them back after; when it is a twentieth of the
// ledger or more, the same locks, as it drops and adds back the foreign
// keys only), merges them with set-based statements
// under the chunked append's rules, stated for the whole batch at once:
//
//   - a subject-wide event for a subject with no identifier, or a scoped
//     event for an identifier the subject does not have, is refused
//     (unknown_subject, unknown_identifier), judged against the ledger
//     the merge sees;
//   - of events identical in every field, only the first in row order is
//     appended, and none when an identical event is already in the ledger
//     (Unchanged);
//   - the events are appended in row order, so their ids follow it, and
//     all of them are recorded at the time the merge began.
//
// A chunked append judges an event's time against the clock as it reads
// the row; a bulk batch judges every row, in every run of it, against the
// time the batch was created, so that a resumed run refuses (future_at)
// exactly the rows the first run refused and the staged rows stay those a
// full run would stage. The validation rejects are reported as the rows
// are staged, the ledger's refusals (unknown subject or identifier) by
// the merge, in row order, before it commits: a caller that stops the
// import on one of them rolls the merge back. Without OnReject (strict),
// the first refused row stops the import and nothing is appended.
//
// The result is the chunked append's: the same events appended in the
// same order, the same refusals and counts. What differs is when: nothing
// of the file is in the ledger until the merge commits, and every event
// of the file has the merge's recorded_at, where a chunked append records
// each chunk at its own commit. The effective time of an event dated
// within ClockSkew of the import (min(at, recorded_at)) can therefore
// differ between the two by the duration of the import.

// bulkConsentIndexes are the foreign keys and the index of consent_events
// a merge of a batch at least as large as the ledger drops before it
// appends and adds back after, in reverse order, with the same names (a
// batch of a twentieth of the ledger or more, the foreign keys only): checking the
// foreign keys row by row (a key-share lock of the subject's row for each
// event) cost more than half of the merge of 10^6 events into an empty
// ledger, checking them once after it a tenth (bench/RESULTS.md).
var bulkConsentIndexes = []struct{ drop, add string }{
	{`ALTER TABLE consent_events DROP CONSTRAINT consent_events_subject_id_fkey`,
		`ALTER TABLE consent_events ADD CONSTRAINT consent_events_subject_id_fkey FOREIGN KEY (subject_id) REFERENCES subjects (id)`},
	{`ALTER TABLE consent_events DROP CONSTRAINT consent_events_identifier_id_fkey`,
		`ALTER TABLE consent_events ADD CONSTRAINT consent_events_identifier_id_fkey FOREIGN KEY (identifier_id) REFERENCES identifiers (id)`},
	{`DROP INDEX consent_events_effective`,
		`CREATE INDEX consent_events_effective ON consent_events (subject_id, purpose, effective_at, id) INCLUDE (identifier_id, granted)`},
}

// bulkConsentPrefix begins the bulk_batches name of a consent batch.
const bulkConsentPrefix = "consent: "

const (
	bulkConsentTable   = "bulk_consent_"
	bulkConsentColumns = `seq bigint NOT NULL, subject text NOT NULL, kind smallint NOT NULL, value text NOT NULL,
			purpose text NOT NULL, granted boolean NOT NULL, at timestamptz NOT NULL, source text NOT NULL,
			text_version text NOT NULL`
)

// bulkAppendConsent runs a bulk consent import of the batch opts.Bulk.
func (p *Postgres) bulkAppendConsent(ctx context.Context, events iter.Seq[ConsentEvent], opts ImportOptions) (res ImportResult, err error) {
	const op = "bulk consent import"
	name := bulkConsentPrefix + opts.Bulk
	phase := func(format string, args ...any) {
		if opts.Phase != nil {
			opts.Phase(fmt.Sprintf(format, args...))
		}
	}
	conn, release, err := p.bulkSession(ctx, op, name)
	if err != nil {
		return res, err
	}
	defer release()

	id, staged, created, err := bulkBatch(ctx, conn, name, bulkConsentTable, bulkConsentColumns)
	if err != nil {
		return res, err
	}
	table := pgx.Identifier{bulkConsentTable + strconv.FormatInt(id, 10)}
	if staged > 0 {
		phase("resuming: rows up to %d were staged before", staged)
	} else {
		phase("staging")
	}
	if opts.ChunkRows <= 0 {
		opts.ChunkRows = DefaultPostgresChunkRows
	}
	validate := func(e *ConsentEvent, _ time.Time) error { return validateEvent(e, created) }
	var valid int64
	res, err = runImport(ctx, op, events, opts, validate, func(ctx context.Context, rows []seqRow[ConsentEvent], _ bool) (chunkResult, error) {
		valid += int64(len(rows))
		if i := firstAfter(rows, staged); i < len(rows) {
			if err := stageChunk(ctx, conn, id, table, rows[i:], copyEvents); err != nil {
				return chunkResult{}, err
			}
		}
		return chunkResult{}, nil
	})
	if err != nil {
		return res, err
	}
	phase("merging %d staged events into the consent ledger", valid)
	m, err := p.bulkConsentMerge(ctx, conn, id, table, valid, opts, phase)
	if err != nil {
		return res, err
	}
	res.Inserted, res.Rejected = m.inserted, res.Rejected+int64(len(m.rejects))
	res.Unchanged = valid - int64(len(m.rejects)) - m.inserted
	if m.inserted >= analyzeAfter {
		conn.Exec(ctx, "ANALYZE consent_events")
	}
	return res, nil
}

// copyEvents copies rows into a consent staging table (COPY, binary);
// kind 0 and value "" mark a subject-wide event.
func copyEvents(ctx context.Context, tx pgx.Tx, table pgx.Identifier, rows []seqRow[ConsentEvent]) error {
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
	copied, err := tx.CopyFrom(ctx, table, []string{"seq", "subject", "kind", "value", "purpose", "granted", "at", "source", "text_version"}, src)
	if err != nil {
		return fmt.Errorf("store: bulk consent import: copy: %w", err)
	}
	if copied != int64(len(rows)) {
		return fmt.Errorf("store: bulk consent import: copied %d of %d rows", copied, len(rows))
	}
	return nil
}

// consentMerge is what a merge did: the events it appended and the rows
// the ledger refused, in row order.
type consentMerge struct {
	inserted int64
	rejects  []*RowError
}

// bulkConsentMerge appends the staged events of batch id to the ledger,
// drops the staging table and the batch, and commits. Each row the ledger
// refuses goes to opts.OnReject before the commit; without OnReject the
// first one stops the merge, which rolls back, and is returned.
func (p *Postgres) bulkConsentMerge(ctx context.Context, conn *pgxpool.Conn, id int64, table pgx.Identifier, valid int64, opts ImportOptions, phase func(string, ...any)) (m consentMerge, err error) {
	const op = "bulk consent import: merge"
	t := table.Sanitize()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return m, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rollback(ctx, tx)
	exec := func(q string, args ...any) (int64, error) {
		tag, err := tx.Exec(ctx, q, args...)
		if err != nil {
			return 0, fmt.Errorf("store: %s: %w", op, err)
		}
		return tag.RowsAffected(), nil
	}
	var ledger int64
	if err := tx.QueryRow(ctx, `SELECT reltuples::bigint FROM pg_class WHERE oid = 'consent_events'::regclass`).Scan(&ledger); err != nil {
		return m, fmt.Errorf("store: %s: %w", op, err)
	}
	// The index is rebuilt for an initial load only; the foreign keys
	// are checked once after the append whenever the batch is a
	// twentieth of the ledger or more (and a tenth of bulkRebuildMin):
	// checking both once cost about 0.45 µs per event of the ledger, row
	// by row 19 µs or more per appended event (bench/RESULTS.md).
	rebuild := valid >= bulkRebuildMin && valid >= ledger
	keys := rebuild || valid >= bulkRebuildMin/10 && valid*20 >= ledger
	drops := bulkConsentIndexes[:0]
	switch {
	case rebuild:
		drops = bulkConsentIndexes
	case keys:
		drops = bulkConsentIndexes[:2] // the foreign keys
	}
	// The chunked append's lock, from before the first read: no other
	// append between the lookup of identical events and the commit, and
	// ids in commit order. A rebuild takes at once the locks its DDL
	// takes, rather than upgrading to them.
	lock := `LOCK TABLE consent_events IN EXCLUSIVE MODE`
	if keys {
		lock = `LOCK TABLE consent_events, subjects, identifiers IN ACCESS EXCLUSIVE MODE`
	}
	for _, s := range []string{lock, `SET LOCAL synchronous_commit = on`, `SET LOCAL work_mem = '256MB'`,
		`SET LOCAL maintenance_work_mem = '512MB'`, `ANALYZE ` + t} {
		if _, err := exec(s); err != nil {
			return m, err
		}
	}
	if err := checkStaged(ctx, tx, conn, id, table, valid); err != nil {
		return m, err
	}
	recorded := time.Now()
	// Each staged row with its subject and identifier ids, and whether
	// the ledger knows what it names: a subject with an identifier, or
	// the subject's identifier (a temporary table: not WAL-logged).
	//
	// The rows are resolved by probing the ledger's unique indexes, one
	// row at a time, and never by hash or merge joins: joined by hashing,
	// a batch of 5.5·10^7 events against 5·10^7 subjects and 10^8
	// identifiers spilled more than 24 GB of temporary files before it
	// was stopped (bench/RESULTS.md), where the probes need none, and at
	// 10^6 the probes were no slower. The identifier is looked up for the
	// rows that name one only, by all three columns of its unique key,
	// so a subject-wide event reads no identifier's row.
	//
	// A small batch, one for which the foreign keys are kept (under a
	// twentieth of the ledger, or under a tenth of bulkRebuildMin: a daily
	// batch rather than a load), probes in the order of the keys: first the
	// subjects by name, then the ledger by subject id. In a store larger
	// than memory, probes in file order are random reads, each of a page
	// that the next probe rarely needs; in key order each page of an
	// index is read once, in the index's order (bench/RESULTS.md, "A daily
	// batch in a store larger than memory"). A load keeps the file's
	// order: its sort would spill to disk, and it reads nearly every page
	// anyway.
	small := !keys
	staged, bySubjectID := t, ""
	if small {
		staged = inKeyOrder(t, `subject`)
		bySubjectID = ` ORDER BY s.id OFFSET 0` // OFFSET 0: sorted before the lookups below
	}
	for _, s := range pgImportSettings {
		if _, err := exec(s); err != nil {
			return m, err
		}
	}
	if _, err := exec(`CREATE TEMPORARY TABLE bulk_events ON COMMIT DROP AS
		SELECT seq, subject_id, identifier_id, kind, purpose, granted, at, source, text_version,
			CASE WHEN kind = 0 THEN EXISTS (SELECT 1 FROM identifiers x WHERE x.subject_id = r.subject_id)
				ELSE identifier_id IS NOT NULL END AS known
		FROM (SELECT r.*, CASE WHEN r.kind <> 0 THEN (SELECT i.id FROM identifiers i
				WHERE i.subject_id = r.subject_id AND i.kind = r.kind AND i.value = r.value) END AS identifier_id
			FROM (SELECT r.seq, s.id AS subject_id, r.kind, r.value, r.purpose, r.granted, r.at, r.source, r.text_version
				FROM ` + staged + ` r LEFT JOIN subjects s ON s.subject = r.subject` + bySubjectID + `) AS r) AS r`); err != nil {
		return m, err
	}
	// Back to the configured values for the rest of the merge.
	for _, s := range pgJoinDefaults {
		if _, err := exec(s); err != nil {
			return m, err
		}
	}
	if _, err := exec(`ANALYZE bulk_events`); err != nil {
		return m, err
	}
	refused, err := tx.Query(ctx, `SELECT seq, kind = 0 FROM bulk_events WHERE NOT known ORDER BY seq`)
	if err != nil {
		return m, fmt.Errorf("store: %s: %w", op, err)
	}
	for refused.Next() {
		var seq int64
		var wide bool
		if err := refused.Scan(&seq, &wide); err != nil {
			refused.Close()
			return m, fmt.Errorf("store: %s: %w", op, err)
		}
		re := &RowError{Row: seq, Err: ErrUnknownIdentifier}
		if wide {
			re.Err = ErrUnknownSubject
		}
		if opts.OnReject == nil {
			refused.Close()
			return m, re
		}
		m.rejects = append(m.rejects, re)
		opts.OnReject(re)
	}
	refused.Close()
	if err := refused.Err(); err != nil {
		return m, ctxError(ctx, "bulk consent import", fmt.Errorf("store: %s: %w", op, err))
	}
	if err := ctx.Err(); err != nil { // an OnReject that cancelled it
		return m, fmt.Errorf("store: %s: %w", op, err)
	}
	switch {
	case rebuild:
		phase("dropping the consent ledger's index and foreign keys to rebuild them after the merge")
		notePglz(ctx, tx, phase)
	case keys:
		phase("dropping the consent ledger's foreign keys to check them once after the merge")
	}
	for _, ix := range drops {
		if _, err := exec(ix.drop); err != nil {
			return m, err
		}
	}
	// The first of identical known rows, when no identical event is in
	// the ledger yet, in row order. DISTINCT ON takes NULL identifier ids
	// (subject-wide events) as equal, as IS NOT DISTINCT FROM does.
	//
	// An identical event in the ledger has the same subject, purpose,
	// identifier and decision, and an effective time (the earlier of at
	// and recorded_at) no later than the row's at: all columns of the
	// index consent_events_effective. A small batch first asks the index
	// alone whether such an event exists (an index-only probe, which reads
	// no row of the ledger once VACUUM has marked its pages visible), and
	// reads the ledger's rows only when one does: a new withdrawal of a
	// subject who has never withdrawn reads none. Stated so, the lookup is
	// two subqueries per row, in the order of the DISTINCT ON (subject id
	// first), and never the anti-join that NOT EXISTS alone becomes: in
	// PostgreSQL 15 that join can only hash the ledger, never the batch,
	// at a cost that grows with the ledger where the probes' grows with
	// the batch (bench/RESULTS.md, "A daily batch in a store larger than
	// memory").
	identical := `EXISTS (SELECT 1 FROM consent_events e WHERE e.subject_id = b.subject_id AND e.purpose = b.purpose
			AND e.identifier_id IS NOT DISTINCT FROM b.identifier_id AND e.granted = b.granted AND e.at = b.at
			AND e.source = b.source AND e.text_version = b.text_version)`
	if small {
		identical = `(EXISTS (SELECT 1 FROM consent_events e WHERE e.subject_id = b.subject_id AND e.purpose = b.purpose
			AND e.effective_at <= b.at AND e.identifier_id IS NOT DISTINCT FROM b.identifier_id AND e.granted = b.granted)
			AND ` + identical + `)`
	}
	if m.inserted, err = exec(`INSERT INTO consent_events
			(subject_id, identifier_id, purpose, granted, at, source, text_version, recorded_at)
		SELECT b.subject_id, b.identifier_id, b.purpose, b.granted, b.at, b.source, b.text_version, $1
		FROM (SELECT DISTINCT ON (subject_id, identifier_id, purpose, granted, at, source, text_version) *
			FROM bulk_events WHERE known
			ORDER BY subject_id, identifier_id, purpose, granted, at, source, text_version, seq) AS b
		WHERE NOT `+identical+`
		ORDER BY b.seq`, recorded); err != nil {
		return m, err
	}
	switch {
	case rebuild:
		phase("rebuilding the consent ledger's index and foreign keys")
	case keys:
		phase("checking the consent ledger's foreign keys")
	}
	for i := len(drops) - 1; i >= 0; i-- {
		if _, err := exec(drops[i].add); err != nil {
			return m, err
		}
	}
	if _, err := exec(`DROP TABLE ` + t); err != nil {
		return m, err
	}
	if _, err := exec(`DELETE FROM bulk_batches WHERE id = $1`, id); err != nil {
		return m, err
	}
	if err := tx.Commit(ctx); err != nil {
		return m, fmt.Errorf("store: %s: %w", op, err)
	}
	return m, nil
}
