// Package store is the platform's consent ledger: which identifiers each
// subject gave and why, which consents they granted and withdrew, and, from
// those two, the matchable set that a PSI session may use.
//
// Two implementations share one schema, one matchable-set rule and one test
// suite: [SQLite] (embedded, modernc.org/sqlite) and [Postgres] (pgx). [Open]
// picks one from a DSN.
//
// # Schema
//
//	subjects                pseudonymous platform user ids
//	identifiers             (subject, kind, value) unique; digest = SHA-256(value), indexed by (kind, digest);
//	                        ids in import order
//	identifier_collections  (identifier, collected_for): one row per purpose it was collected for
//	consent_events          append-only: id, subject, identifier (NULL = subject-wide), purpose,
//	                        granted, at, source, text_version, recorded_at; effective_at =
//	                        min(at, recorded_at), computed (virtual on SQLite, stored on PostgreSQL)
//	snapshots               version, kind, taken_at, ledger_position, size, digest,
//	                        max_per_subject (0: uncapped)
//	schema_migrations       version, name, applied_at
//	advertisers             the match service's advertisers, their modes and policy (see [Registry])
//	budget_spend            append-only: identifiers and micro-ε each advertiser's sessions spent
//	budget_refunds          append-only: sessions whose spend was refunded
//	sessions                append-only: the session audit log
//	session_journal         open sessions: reservation, phase and lease, until the audit row replaces them
//	epochs, epoch_tags      the epochs of SPEC.md §10.12: description, key b_E (a secret) and kept tags,
//	                        until DeleteEpochs (see epochs.go)
//	bulk_batches            PostgreSQL, unlogged: bulk identifier and consent imports being staged
//	                        (postgres_bulk.go, postgres_bulk_consent.go)
//	derived_state, digest_classes, identifier_stats, derived_changes
//	                        PostgreSQL, unlogged: the kept classification (per digest, the
//	                        count of its identifiers in each class) and Stats, the generation
//	                        they are of, and the log of changes since (postgres_derived.go)
//
// Migration 1 is the ledger, 2 the registry (advertisers, budget_spend,
// sessions), 3 private mode (modes and privacy budgets of advertisers, ε
// spends and refunds, max_per_subject), 4 the ledger generation, 5 the
// effective time of consent events (the column and its index; it changes
// no stored row, and moves the generation on since the order of old
// events may change), 6 the session journal (see [Journal]; SPEC.md §8.6),
// 7 epochs (mode epoch of advertisers, the epochs and their tags, the epoch
// of audit and journal rows; on SQLite it rebuilds advertisers, keeping
// every row and id, since SQLite cannot change a CHECK constraint), 8 the
// ciphersuites of epochs and of audit rows, 9 the bulk import batches and the
// kept matchable set (PostgreSQL only; a no-op on SQLite), 10 record
// sessions (the kinds and slots of a session, and its snapshots), 11 the
// suite of journal rows, 12 the incremental upkeep of the kept
// classification (PostgreSQL only: digest_classes replaces
// matchable_digests, and triggers log the changes).
//
// Triggers refuse UPDATE and DELETE on consent_events, budget_spend,
// budget_refunds and sessions (and TRUNCATE on PostgreSQL), so the ledger
// is append-only in the database, not only in this package. Migrations are
// numbered, and Open applies the pending ones in order, in one transaction,
// recording each in schema_migrations; a database newer than the binary is
// refused. A later change appends a migration (migrate.go) with the next
// number and its text for each engine.
//
// Values arrive canonical (SPEC.md §7) with Digest = SHA-256(Value) computed
// by the caller; the store checks that the digest matches and never logs,
// prints or puts a value or digest in an error.
//
// # The matchable set
//
// For a kind K, the matchable set is the set of distinct digests d such that
//
//  1. no identifier of kind K with digest d, of any subject, has a collection
//     whose purpose is a security purpose (two_factor, recovery,
//     login_alert). This is deliberately conservative: once a number or
//     address was given for security it never becomes matchable, even if
//     the same person, or another one, also gave it for a profile and
//     consented; and
//  2. at least one identifier i of kind K with digest d is consented: the
//     latest ad_matching consent event covering i is a grant. The events
//     covering i are those scoped to i and the subject-wide events of i's
//     subject; "latest" orders by effective time, then by event id (the
//     later-recorded event wins a tie).
//
// The effective time of an event is min(at, recorded_at): an event counts
// from the time it claims, or from when the ledger recorded it if that is
// earlier. So no event can override one recorded before it, a withdrawal
// in particular, by claiming a later time than it was recorded at, while a
// back-dated event still orders before later ones. [Store.AppendConsent]
// refuses an event whose at is more than [ClockSkew] (5 minutes, a
// constant) after its recording, so effective time and at differ by at
// most the skew for new events; on a ledger older than migration 5 the
// rule clamps old events the same way without changing them.
//
// An identifier with no covering event has no consent; one whose latest
// covering event is a withdrawal is withdrawn. A withdrawal therefore drops
// the identifier from the next snapshot, a later grant brings it back, and
// the events stay in the ledger. The filtering runs in SQL (the same text on
// both engines), so excluded rows never leave the database.
//
// Times are stored with microsecond precision (At is truncated), so both
// engines order events identically.
//
// # What the ledger refuses
//
// Nothing is recorded to no effect. [Store.AppendConsent] refuses, each as
// a [*RowError] whose [RowError.Reason] names it: a subject-wide event for
// a subject with no imported identifier (unknown_subject, [ErrUnknownSubject];
// subjects match exactly, case included), an identifier-scoped event for an
// identifier the subject does not have (unknown_identifier,
// [ErrUnknownIdentifier]), a purpose outside [ConsentPurposes] (only
// ad_matching, the purpose the rule reads: unknown_purpose,
// [ErrUnknownPurpose]), an at beyond the skew (future_at, [ErrFutureEvent])
// and invalid fields (bad_FIELD). [Store.ImportIdentifiers] refuses invalid
// rows the same way.
//
// # Imports
//
// Both imports read an iterator and commit every [ImportOptions].ChunkRows
// rows, one transaction each: by default 5,000 on SQLite
// ([DefaultChunkRows]), so a long import holds the SQLite writer for one
// chunk at a time (about half a second at most on a loaded 2-core machine)
// and sessions' budget and audit writes go in between; a PostgreSQL
// identifier import commits every 100,000 ([DefaultPostgresChunkRows]),
// since PostgreSQL's row locks let sessions write meanwhile. The next chunk is read and validated while the one
// before is written; chunks are written one at a time, in row order. A refused row goes to [ImportOptions].OnReject, after its
// chunk committed, and the import goes on; with OnReject nil the first one
// stops the import and its chunk is rolled back. A database error or the
// end of ctx rolls back the current chunk; committed chunks stay.
//
// Both are idempotent, so an import that stopped half way, run again, ends
// in the same ledger as one uninterrupted run: an identifier (or a purpose
// of it) already recorded is Unchanged, and so is a consent event identical
// in every field but recorded_at (subject, identifier, purpose, granted, at,
// source, text version) to one in the ledger or earlier in the same import.
// Events whose at is within the skew ahead of their recording are the one
// case where two runs can differ: their effective time is their recording.
// ImportResult counts Read = Inserted + Unchanged + Rejected.
//
// # Files
//
// A SQLite database holds identifiers in the clear. Open creates a missing
// database 0600 and a missing parent directory 0700 whatever the umask
// (SQLite gives the -wal and -shm files the database's mode), and narrows
// an existing database, -wal, -shm or -journal file that group or others
// may read or write to at most 0600, returning a warning for each through
// [Store.Warnings] (it fixes rather than refuses, so a server restarts; the
// warning tells the operator that the data may have been read before).
//
// # Snapshots
//
// [Store.Snapshot] streams the matchable set of one kind in ascending byte
// order of the digests, from one consistent read transaction, and then
// records a row in snapshots. Its digest is
//
//	SHA-256("overlap-snapshot-v1" || kind || d_1 || d_2 || ... || d_n)
//
// where "overlap-snapshot-v1" is the 19 ASCII bytes without terminator, kind
// is one byte (the psi.Kind wire code), and d_1 < d_2 < ... < d_n are the n
// = Size matchable 32-byte digests. The empty set hashes the prefix and kind
// alone. Version is the snapshots table's increasing id; LedgerPosition is
// the largest consent event id the read transaction saw. Appends are
// serialized, so the snapshot reflects exactly the events with id <=
// LedgerPosition.
//
// # The ledger generation
//
// [Store.Generation] reads a counter in the table ledger_generation. Row
// triggers (SQLite) or statement triggers (PostgreSQL) on identifiers,
// identifier_collections and consent_events move it on in the changing
// transaction, whichever path wrote them, the store's own or plain SQL.
// A snapshot records the generation its read transaction saw
// ([SnapshotInfo.Generation]), so while Generation still returns that value
// the snapshot is the current matchable set of its kind. The triggers cost
// SQLite imports about a tenth of their speed; PostgreSQL fires them once
// per statement.
//
// # Per-subject snapshots
//
// A private-mode session needs a set in which one subject contributes at
// most Δ digests of the kind (SPEC.md §10.9). [Store.SnapshotPerSubject]
// streams and records it like Snapshot, with one more step between the
// rule and DISTINCT: among each subject's matchable identifiers of the
// kind, it keeps the first maxPerSubject ordered by their covering grant
// (the latest ad_matching event covering the identifier, which is a grant
// since the identifier is matchable) by effective time, then event id, and then by
// identifier id (import order, on both engines). The digests of the kept
// identifiers, distinct, in ascending order, are the snapshot, with its
// digest as above; a digest two subjects keep appears once. Identifiers
// excluded by either rule never take a subject's place, and the ranking
// runs in SQL (a window function over the same rule text), so excluded rows
// never leave the database. The snapshots row records maxPerSubject;
// Snapshot records 0.
//
// # Stats
//
// [Store.Stats] puts every identifier row of each kind in exactly one class:
// Security when rule 1 fails for its digest; otherwise, by its latest
// covering ad_matching event, NoConsent (none), Withdrawn (a withdrawal) or
// Matchable (a grant). Identifiers is their sum. Matchable counts identifier
// rows; a snapshot's Size counts distinct digests, so Size <= Matchable.
//
// # Engines
//
// SQLite runs in WAL mode with foreign keys on and a busy timeout; one
// connection writes (BEGIN IMMEDIATE), up to four read, so a snapshot does
// not block appends. ":memory:" uses a single connection. PostgreSQL uses a
// pgx pool. An identifier import runs on one connection of it, which
// keeps a temporary staging table (emptied at each commit): each chunk is
// COPYed into it and written with INSERT … SELECT … ON CONFLICT DO NOTHING;
// each append chunk goes in through unnest under an EXCLUSIVE lock on
// consent_events, taken before it looks for identical events, so event ids
// follow commit order and the lookup cannot race. A bulk identifier or
// consent import ([ImportOptions].Bulk) stages in an unlogged table and
// merges in one transaction (postgres_bulk.go, postgres_bulk_consent.go). Snapshots read in a REPEATABLE READ, READ
// ONLY transaction; on PostgreSQL, Snapshot and Stats read the kept
// matchable set and counts, rebuilt set-based when the ledger generation
// moved (postgres_derived.go), and SnapshotPerSubject reads the ledger. On both, the callback of
// [Store.Snapshot] and [Store.SnapshotPerSubject] runs inside the read
// transaction and must not call back into the store.
package store
