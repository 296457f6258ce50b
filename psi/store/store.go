package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"iter"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/overlap-psi/overlap/psi"
	identpkg "github.com/overlap-psi/overlap/psi/ident" // "ident" names a helper of this package's tests
)

// Purpose says why an identifier was collected: identpkg.Purpose, the one
// home of the collection purposes and of which are security purposes.
type Purpose = identpkg.Purpose

// The collection purposes (ident's).
const (
	Signup     = identpkg.Signup
	Profile    = identpkg.Profile
	TwoFactor  = identpkg.TwoFactor
	Recovery   = identpkg.Recovery
	LoginAlert = identpkg.LoginAlert
	Imported   = identpkg.Imported
)

// Purposes lists every collection purpose.
var Purposes = identpkg.Purposes

// AdMatching is the consent purpose that makes an identifier matchable.
const AdMatching = "ad_matching"

// Limits on the sizes of stored strings, in bytes.
const (
	MaxSubjectLen = 256
	MaxValueLen   = 1024
	MaxLabelLen   = 256 // consent purpose, source, text version
)

// Identifier is one identifier a subject gave, and why. Value is canonical
// (SPEC.md §7) and Digest is SHA-256(Value).
type Identifier struct {
	Subject      string
	Kind         psi.Kind
	Value        string
	Digest       [32]byte
	CollectedFor Purpose
}

// String describes the identifier without its value or digest.
func (id Identifier) String() string {
	return fmt.Sprintf("store.Identifier{Subject:%q Kind:%v CollectedFor:%s Value:[redacted]}", id.Subject, id.Kind, id.CollectedFor)
}

// GoString is String, so that %#v does not print the value either.
func (id Identifier) GoString() string { return id.String() }

// ConsentEvent is one entry of the consent ledger. Kind 0 and Value "" make
// it subject-wide; otherwise it is scoped to the identifier (Subject, Kind,
// Value), which must have been imported.
type ConsentEvent struct {
	Subject     string
	Kind        psi.Kind // 0: subject-wide
	Value       string   // canonical; "": subject-wide
	Purpose     string   // AdMatching for matching
	Granted     bool     // false: withdrawn
	At          time.Time
	Source      string // where it was given: "signup_form", "settings", ...
	TextVersion string // the consent text shown; required for grants
}

// String describes the event without the identifier's value.
func (e ConsentEvent) String() string {
	scope := "subject-wide"
	if e.Kind != 0 || e.Value != "" {
		scope = e.Kind.String() + ":[redacted]"
	}
	return fmt.Sprintf("store.ConsentEvent{Subject:%q Scope:%s Purpose:%q Granted:%t At:%s Source:%q TextVersion:%q}",
		e.Subject, scope, e.Purpose, e.Granted, e.At.UTC().Format(time.RFC3339Nano), e.Source, e.TextVersion)
}

// GoString is String, so that %#v does not print the value either.
func (e ConsentEvent) GoString() string { return e.String() }

func (e ConsentEvent) subjectWide() bool { return e.Kind == 0 && e.Value == "" }

// ImportResult counts the rows of one import: Read = Inserted + Unchanged +
// Rejected. An identifier row is Inserted when it recorded something new (an
// identifier, or a purpose for an identifier already known); a consent event
// is Inserted when it was appended, and Unchanged when an event identical in
// every field but the recording time was already in the ledger. Rejected
// counts the rows the store refused (reported to [ImportOptions].OnReject).
type ImportResult struct {
	Read, Inserted, Unchanged, Rejected int64
}

// DefaultChunkRows is how many rows an import commits at a time when
// [ImportOptions].ChunkRows is 0, except a PostgreSQL identifier import
// ([DefaultPostgresChunkRows]). On SQLite a chunk of 5,000 rows holds the
// only writer for tens of milliseconds, so a session's budget reservation
// or audit row waits that long at most, never its busy timeout.
const DefaultChunkRows = 5000

// ImportOptions controls [Store.ImportIdentifiers] and [Store.AppendConsent].
type ImportOptions struct {
	// OnReject, when set, receives each row the store refuses (an invalid
	// row, an unknown subject or identifier, an unknown consent purpose, an
	// event in the future), in row order, after the chunk holding it was
	// committed; the import goes on with the next row. When nil, the first
	// refused row stops the import with that *RowError, and the chunk
	// holding it is rolled back.
	OnReject func(*RowError)
	// ChunkRows is how many rows (read, including refused ones) each
	// transaction holds; 0 is [DefaultChunkRows], except for
	// ImportIdentifiers on PostgreSQL: [DefaultPostgresChunkRows].
	ChunkRows int
	// Progress, when set, receives the running totals after each committed
	// chunk (of a bulk import: after each staged chunk; its Inserted and
	// Unchanged stay 0 until the merge).
	Progress func(ImportResult)
	// Bulk, when not empty, names a bulk import on PostgreSQL, of
	// identifiers (postgres_bulk.go) or of consent events
	// (postgres_bulk_consent.go): the rows are staged in an unlogged
	// table, chunk by chunk, then merged into the ledger in one
	// transaction. Running the same rows again under the same name after
	// an interruption resumes: the rows staged before are not staged
	// again. The name identifies the input (the CLI uses the file's path,
	// size and modification time); identifier and consent batches of one
	// name are distinct. SQLite ignores it.
	Bulk string
	// Phase, when set, receives a short description of each phase of a
	// bulk import as it begins (staging, merging, rebuilding indexes).
	Phase func(string)
}

func (o ImportOptions) chunkRows() int {
	if o.ChunkRows <= 0 {
		return DefaultChunkRows
	}
	return o.ChunkRows
}

// SnapshotInfo describes one snapshot of a matchable set.
type SnapshotInfo struct {
	Version        int64     // increasing id in the snapshots table
	Kind           psi.Kind  //
	TakenAt        time.Time // when its read transaction began (µs, UTC)
	LedgerPosition int64     // largest consent event id it saw
	Size           int64     // number of digests
	Digest         [32]byte  // see the package doc
	MaxPerSubject  int       // the per-subject cap it was built with (SnapshotPerSubject); 0: none
	Generation     int64     // the ledger generation its read transaction saw (see Store.Generation); 0 before schema 4
}

// MaxSnapshotPerSubject bounds the per-subject cap of
// [Store.SnapshotPerSubject]: the sensitivity Δ of SPEC.md §10.9 is at most
// 2^16.
const MaxSnapshotPerSubject = 1 << 16

// KindStats classifies the identifiers of one kind; see the package doc.
type KindStats struct {
	Kind                                                   psi.Kind
	Identifiers, Matchable, NoConsent, Withdrawn, Security int64
}

// Store is the consent ledger. Implementations are in this package only.
type Store interface {
	// ImportIdentifiers records identifiers and their collection purposes,
	// committing every opts.ChunkRows rows. It is idempotent: importing
	// rows again, or again after an import that stopped half way, ends in
	// the same ledger as one uninterrupted import. A refused row goes to
	// opts.OnReject (or stops the import when that is nil); a database
	// error or the end of ctx stops it, rolling back the current chunk
	// only. The result counts the rows of the committed chunks.
	ImportIdentifiers(ctx context.Context, rows iter.Seq[Identifier], opts ImportOptions) (ImportResult, error)
	// AppendConsent appends events to the ledger, committing every
	// opts.ChunkRows rows, like ImportIdentifiers. It refuses an event
	// whose At is later than the time of recording plus [ClockSkew]
	// ([ErrFutureEvent]), a subject-wide event for a subject with no
	// identifier ([ErrUnknownSubject]), an identifier-scoped event for an
	// identifier the subject does not have ([ErrUnknownIdentifier]) and a
	// purpose outside [ConsentPurposes] ([ErrUnknownPurpose]). An event
	// identical to one in the ledger in every field but the recording
	// time is Unchanged, not appended again, so appending a file again, or
	// again after an append that stopped half way, ends in the same ledger.
	AppendConsent(ctx context.Context, events iter.Seq[ConsentEvent], opts ImportOptions) (ImportResult, error)
	// Warnings lists what Open found and fixed that an operator should
	// hear about (database files readable by others); it does not change.
	Warnings() []string
	// Snapshot streams the matchable set of kind to fn in ascending order,
	// from one read transaction, with bounded memory, then records and
	// returns the snapshot. An error from fn stops it and nothing is
	// recorded. fn must not call back into the store.
	Snapshot(ctx context.Context, kind psi.Kind, fn func(digest [32]byte) error) (SnapshotInfo, error)
	// SnapshotPerSubject is Snapshot with at most maxPerSubject (1 to
	// [MaxSnapshotPerSubject]) digests of kind per subject, the snapshot
	// of a private-mode session (SPEC.md §10.9); see the package doc. The
	// recorded snapshot has MaxPerSubject = maxPerSubject.
	SnapshotPerSubject(ctx context.Context, kind psi.Kind, maxPerSubject int, fn func(digest [32]byte) error) (SnapshotInfo, error)
	// Generation returns the ledger generation: a counter that every
	// committed change to identifiers, their collections or the consent
	// events moves on, by triggers in the changing transaction, whichever
	// path made it. A snapshot read when the generation was g (its
	// SnapshotInfo.Generation) holds the current matchable set exactly
	// while Generation still returns g, so a caller holding work derived
	// from that snapshot may skip reading the set again. It is one
	// single-row read.
	Generation(ctx context.Context) (int64, error)
	// Snapshots lists recorded snapshots of kind (0: every kind), most
	// recent first, at most limit of them (limit <= 0: all).
	Snapshots(ctx context.Context, kind psi.Kind, limit int) ([]SnapshotInfo, error)
	// RecordSnapshot records a snapshot that a set source other than the
	// store served (a synthetic set of a benchmark, say), and returns it
	// with the Version it was given, so that the audit rows of the
	// sessions that counted against it can name it, as they name the
	// store's own (SPEC.md §8.5). Kind, TakenAt, Size, Digest and
	// MaxPerSubject are recorded; the ledger position and generation are
	// 0, as the set is not the ledger's.
	RecordSnapshot(ctx context.Context, info SnapshotInfo) (SnapshotInfo, error)
	// Stats counts identifiers per kind, for every kind.
	Stats(ctx context.Context) ([]KindStats, error)
	// Close releases the database.
	Close() error

	// Registry: advertisers, budgets and the session audit log
	// (advertisers.go).
	Registry

	// Epochs (SPEC.md §10.12.5, epochs.go).

	// SaveEpoch stores an epoch made by a setup: its record, its key
	// (ep.ExportKey(), a secret: never logged, wiped when the epoch is
	// deleted) and its tags (ep.EncodeTags in chunks of [EpochTagChunk]
	// values), in one transaction. rec.Meta must be ep.Meta(); a zero
	// rec.CreatedAt is now; rec.TagBytes is ignored (the store fills it).
	SaveEpoch(ctx context.Context, rec EpochRecord, ep *psi.Epoch) error
	// LoadEpoch returns the stored epoch id of advertiser, rebuilt with
	// psi.LoadEpoch, and its record; [ErrNoEpoch] if there is none for
	// that advertiser (another advertiser's id is ErrNoEpoch too). An
	// expired epoch that is still stored is returned; the caller checks
	// expiry.
	LoadEpoch(ctx context.Context, advertiser int64, id [16]byte) (*psi.Epoch, EpochRecord, error)
	// Epochs lists the stored epochs of advertiser (0: all), newest
	// first, without keys.
	Epochs(ctx context.Context, advertiser int64) ([]EpochRecord, error)
	// DeleteEpochs deletes (key and tags) every epoch of advertiser (0:
	// all) whose ExpiresAt <= before; with before zero, every epoch of
	// advertiser. It returns how many. DeleteEpochs(ctx, 0, now) is the
	// reconciliation of SPEC.md §10.12.5.
	DeleteEpochs(ctx context.Context, advertiser int64, before time.Time) (int, error)
	// SetupsSince counts the advertiser's setups started at or after
	// since that count toward its setup limit (SPEC.md §10.12.5): audit
	// rows of mode "epoch-setup" whose result is not refused_*, and open
	// journal rows of that mode.
	SetupsSince(ctx context.Context, advertiser int64, since time.Time) (int, error)
	// BeginSetup journals the epoch setup e (mode "epoch-setup") in phase
	// admitted, reserving no budget (a setup spends none, SPEC.md
	// §10.12.5), if the advertiser's setups started at or after since, as
	// SetupsSince counts them, are fewer than limit; otherwise it journals
	// nothing and returns [ErrSetupLimit]. The count and the journal row
	// are one transaction that serializes the advertiser's setups, so
	// concurrent setups never pass the limit. e's reserved amounts are
	// zero and e.RenewedAt is e.StartedAt. The setup ends with EndSession
	// (a setup holds no spend: refund changes nothing) or, after a
	// crash, Reconcile, as any journaled session; its audit row counts
	// toward the limit unless its result is refused_*.
	BeginSetup(ctx context.Context, e JournalEntry, since time.Time, limit int, a *Admission) (SetupStatus, error)

	sealed()
}

var (
	_ Store = (*SQLite)(nil)
	_ Store = (*Postgres)(nil)
)

// ClockSkew is how far in the future of its recording a consent event's At
// may be. A later At is refused ([ErrFutureEvent]); an At within the skew
// counts as the time of recording (the package doc's effective time).
const ClockSkew = 5 * time.Minute

// ConsentPurposes lists the consent purposes the ledger accepts: the ones
// the matchable-set rule reads. An event for any other purpose would never
// change anything, so it is refused rather than recorded.
var ConsentPurposes = []string{AdMatching}

// Errors of refused rows, inside a [RowError]; [RowError.Reason] names them.
var (
	ErrUnknownIdentifier = errors.New("store: unknown identifier: the subject has no such identifier")
	ErrUnknownSubject    = errors.New("store: unknown subject: no identifier was imported for it")
	ErrUnknownPurpose    = errors.New("store: unknown consent purpose")
	ErrFutureEvent       = errors.New("store: event time is in the future")
)

// RowError reports a row (1-based, in iteration order) of an import or
// append that the store refused. Err never contains an identifier value.
type RowError struct {
	Row    int64
	Err    error
	reason string
}

func (e *RowError) Error() string {
	return fmt.Sprintf("store: row %d: %s", e.Row, strings.TrimPrefix(e.Err.Error(), "store: "))
}
func (e *RowError) Unwrap() error { return e.Err }

// Reason is a stable code for why the row was refused: unknown_subject,
// unknown_identifier, unknown_purpose, future_at, or bad_FIELD for an
// invalid field (bad_subject, bad_kind, bad_value, bad_digest,
// bad_collected_for, bad_purpose, bad_source, bad_text_version, bad_at).
func (e *RowError) Reason() string {
	switch {
	case e.reason != "":
		return e.reason
	case errors.Is(e.Err, ErrUnknownSubject):
		return "unknown_subject"
	case errors.Is(e.Err, ErrUnknownIdentifier):
		return "unknown_identifier"
	case errors.Is(e.Err, ErrUnknownPurpose):
		return "unknown_purpose"
	case errors.Is(e.Err, ErrFutureEvent):
		return "future_at"
	}
	return "invalid"
}

// invalidRow is a validation failure with its reason code.
type invalidRow struct {
	reason string
	err    error
}

func (e *invalidRow) Error() string { return e.err.Error() }
func (e *invalidRow) Unwrap() error { return e.err }

func invalid(reason string, err error) error { return &invalidRow{reason: reason, err: err} }

// rowError wraps err, refusing row, with its reason.
func rowError(row int64, err error) *RowError {
	re := &RowError{Row: row, Err: err}
	var iv *invalidRow
	if errors.As(err, &iv) {
		re.reason = iv.reason
	}
	return re
}

// Open opens the store a DSN names: "postgres://…" or "postgresql://…" is
// PostgreSQL; "sqlite:PATH", "file:PATH", a plain path or ":memory:" is
// SQLite. It applies pending migrations.
func Open(ctx context.Context, dsn string) (Store, error) {
	switch {
	case dsn == "":
		return nil, errors.New("store: empty DSN")
	case IsPostgres(dsn):
		return OpenPostgres(ctx, dsn)
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"))
	case strings.HasPrefix(dsn, "file:"):
		return openSQLite(ctx, strings.TrimPrefix(dsn, "file:"))
	}
	return openSQLite(ctx, dsn)
}

// IsPostgres reports whether [Open] opens dsn as a PostgreSQL store.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// validText checks a string the store keeps: non-empty, UTF-8, no NUL
// (PostgreSQL text refuses it), at most max bytes. It names the field, never
// the content.
func validText(field, s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("empty %s", field)
	case len(s) > max:
		return fmt.Errorf("%s longer than %d bytes", field, max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", field)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%s contains NUL", field)
	}
	return nil
}

func validateIdentifier(id *Identifier) error {
	if err := validText("subject", id.Subject, MaxSubjectLen); err != nil {
		return invalid("bad_subject", err)
	}
	if !id.Kind.Valid() {
		return invalid("bad_kind", fmt.Errorf("invalid kind %d", uint8(id.Kind)))
	}
	if err := validText("value", id.Value, MaxValueLen); err != nil {
		return invalid("bad_value", err)
	}
	if !id.CollectedFor.Valid() {
		return invalid("bad_collected_for", fmt.Errorf("invalid collection purpose %q", truncate(string(id.CollectedFor))))
	}
	sum := sha256.Sum256([]byte(id.Value))
	if subtle.ConstantTimeCompare(sum[:], id.Digest[:]) != 1 {
		return invalid("bad_digest", errors.New("digest is not SHA-256 of the value"))
	}
	return nil
}

// minAt and maxAt bound event times to what both engines store exactly.
var (
	minAt = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// validateEvent checks e, recorded at now, and normalizes e.At to UTC
// microseconds.
func validateEvent(e *ConsentEvent, now time.Time) error {
	if err := validText("subject", e.Subject, MaxSubjectLen); err != nil {
		return invalid("bad_subject", err)
	}
	if !e.subjectWide() {
		if !e.Kind.Valid() {
			return invalid("bad_kind", fmt.Errorf("invalid kind %d", uint8(e.Kind)))
		}
		if err := validText("value", e.Value, MaxValueLen); err != nil {
			return invalid("bad_value", err)
		}
	}
	if err := validText("purpose", e.Purpose, MaxLabelLen); err != nil {
		return invalid("bad_purpose", err)
	}
	if !slices.Contains(ConsentPurposes, e.Purpose) {
		return fmt.Errorf("%w %q (known: %s)", ErrUnknownPurpose, truncate(e.Purpose), strings.Join(ConsentPurposes, ", "))
	}
	if err := validText("source", e.Source, MaxLabelLen); err != nil {
		return invalid("bad_source", err)
	}
	if e.Granted || e.TextVersion != "" {
		if err := validText("text version", e.TextVersion, MaxLabelLen); err != nil {
			return invalid("bad_text_version", err)
		}
	}
	if e.At.Before(minAt) || !e.At.Before(maxAt) {
		return invalid("bad_at", errors.New("event time missing or outside 1970..9999"))
	}
	if e.At.After(now.Add(ClockSkew)) {
		return fmt.Errorf("%w: more than %v after it is recorded", ErrFutureEvent, ClockSkew)
	}
	e.At = e.At.UTC().Truncate(time.Microsecond)
	return nil
}

// ctxError makes a failure that ctx's end caused report that, rather than
// what the driver saw of it (a rolled-back transaction, a closed
// connection). A RowError stays as it is.
func ctxError(ctx context.Context, op string, err error) error {
	cerr := ctx.Err()
	var re *RowError
	if cerr == nil || errors.Is(err, cerr) || errors.As(err, &re) {
		return err
	}
	return fmt.Errorf("store: %s: %w", op, cerr)
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// SQL shared by both engines, so that the rule of the package doc has one
// text. Parameters are $N (modernc.org/sqlite binds $N by position); TRUE and
// EXISTS are 1/0 in SQLite and booleans in PostgreSQL, which is why SQLite
// stores granted as 0/1.
const (
	sqlSecurityPurposes = `'two_factor', 'recovery', 'login_alert'`

	// sqlSecurity: rule 1 fails for identifier i (by kind and digest, any
	// subject).
	sqlSecurity = `EXISTS (SELECT 1 FROM identifiers s JOIN identifier_collections c ON c.identifier_id = s.id` +
		` WHERE s.kind = i.kind AND s.digest = i.digest AND c.collected_for IN (` + sqlSecurityPurposes + `))`

	// sqlLatestCovering selects from the latest ad_matching event covering
	// identifier i (rule 2): "(SELECT e.column" + sqlLatestCovering.
	sqlLatestCovering = ` FROM consent_events e` +
		` WHERE e.subject_id = i.subject_id AND e.purpose = '` + AdMatching + `'` +
		` AND (e.identifier_id IS NULL OR e.identifier_id = i.id)` +
		` ORDER BY e.effective_at DESC, e.id DESC LIMIT 1)`

	// sqlLatestConsent: granted of the latest ad_matching event covering
	// identifier i, NULL when none.
	sqlLatestConsent = `(SELECT e.granted` + sqlLatestCovering

	// sqlIsMatchable: identifier i is of kind $1 and matchable (rules 1
	// and 2).
	sqlIsMatchable = `i.kind = $1 AND NOT ` + sqlSecurity + ` AND ` + sqlLatestConsent + ` = TRUE`

	// sqlMatchable streams the matchable set of kind $1.
	sqlMatchable = `SELECT DISTINCT i.digest FROM identifiers i WHERE ` + sqlIsMatchable + ` ORDER BY i.digest`

	// sqlMatchablePerSubject streams the matchable set of kind $1 with at
	// most $2 identifiers per subject: a subject's matchable identifiers
	// ranked by their covering grant (the latest covering event, a grant
	// since they are matchable: effective time, then event id), then
	// identifier id. It
	// states rule 2 as a join on the latest covering event g, which it
	// needs for the ranking, rather than sqlLatestConsent = TRUE: the same
	// rule from the same text (sqlLatestCovering), with one subquery per
	// row where the scalar form would need three (granted, at, id). The
	// join form makes sqlMatchable slower, so that one keeps the scalar
	// form; the tests check that the two agree.
	sqlMatchablePerSubject = `SELECT DISTINCT m.digest FROM (SELECT i.digest,` +
		` ROW_NUMBER() OVER (PARTITION BY i.subject_id ORDER BY g.effective_at, g.id, i.id) AS pos` +
		` FROM identifiers i JOIN consent_events g ON g.id = (SELECT e.id` + sqlLatestCovering +
		` WHERE i.kind = $1 AND NOT ` + sqlSecurity + ` AND g.granted = TRUE) AS m` +
		` WHERE m.pos <= $2 ORDER BY m.digest`

	// sqlStats classifies every identifier (package doc, Stats).
	sqlStats = `SELECT x.kind, CASE WHEN x.sec THEN 'security'` +
		` ELSE CASE x.g WHEN TRUE THEN 'matchable' WHEN FALSE THEN 'withdrawn' ELSE 'no_consent' END END AS status, count(*)` +
		` FROM (SELECT i.kind AS kind, ` + sqlSecurity + ` AS sec, ` + sqlLatestConsent + ` AS g FROM identifiers i) AS x` +
		` GROUP BY 1, 2`

	sqlLedgerPosition = `SELECT COALESCE(MAX(id), 0) FROM consent_events`
	sqlGeneration     = `SELECT n FROM ledger_generation WHERE id = 1`

	sqlInsertSnapshot = `INSERT INTO snapshots (kind, taken_at, ledger_position, size, digest, max_per_subject, generation)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING version`
)

// snapshotsQuery lists snapshots of kind $1 (0: all), newest first.
func snapshotsQuery(limit int) string {
	q := `SELECT version, kind, taken_at, ledger_position, size, digest, max_per_subject, generation FROM snapshots
		WHERE $1 = 0 OR kind = $1 ORDER BY version DESC`
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	return q
}

// SnapshotDomain prefixes the snapshot digest (package doc).
const SnapshotDomain = "overlap-snapshot-v1"

// snapshotHasher computes the snapshot digest and checks the order.
type snapshotHasher struct {
	h    hash.Hash
	prev [32]byte
	n    int64
}

func newSnapshotHasher(kind psi.Kind) *snapshotHasher {
	h := sha256.New()
	h.Write([]byte(SnapshotDomain))
	h.Write([]byte{byte(kind)})
	return &snapshotHasher{h: h}
}

// add hashes the next digest; it must be strictly greater than the last.
func (s *snapshotHasher) add(d []byte) ([32]byte, error) {
	var out [32]byte
	if len(d) != 32 {
		return out, fmt.Errorf("store: stored digest has %d bytes", len(d))
	}
	copy(out[:], d)
	if s.n > 0 && bytes.Compare(s.prev[:], out[:]) >= 0 {
		return out, errors.New("store: matchable set not in ascending order")
	}
	s.prev = out
	s.n++
	s.h.Write(out[:])
	return out, nil
}

func (s *snapshotHasher) sum() (d [32]byte) {
	s.h.Sum(d[:0])
	return d
}

// statsFrom builds one KindStats per kind from (kind, status, count) rows.
type statsBuilder map[psi.Kind]*KindStats

func (b statsBuilder) add(kind psi.Kind, status string, n int64) error {
	ks := b[kind]
	if ks == nil {
		return fmt.Errorf("store: stored identifier has invalid kind %d", uint8(kind))
	}
	switch status {
	case "matchable":
		ks.Matchable += n
	case "no_consent":
		ks.NoConsent += n
	case "withdrawn":
		ks.Withdrawn += n
	case "security":
		ks.Security += n
	default:
		return fmt.Errorf("store: unexpected status %q", status)
	}
	ks.Identifiers += n
	return nil
}

func newStatsBuilder() statsBuilder {
	b := statsBuilder{}
	for _, k := range psi.Kinds {
		b[k] = &KindStats{Kind: k}
	}
	return b
}

func (b statsBuilder) list() []KindStats {
	out := make([]KindStats, 0, len(psi.Kinds))
	for _, k := range psi.Kinds {
		out = append(out, *b[k])
	}
	return out
}

func checkMaxPerSubject(n int) error {
	if n < 1 || n > MaxSnapshotPerSubject {
		return fmt.Errorf("store: snapshot: at most %d digests per subject is outside 1..%d", n, MaxSnapshotPerSubject)
	}
	return nil
}

func checkKind(kind psi.Kind) error {
	if !kind.Valid() {
		return fmt.Errorf("store: invalid kind %d", uint8(kind))
	}
	return nil
}

func microTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
