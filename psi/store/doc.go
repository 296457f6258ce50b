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
//	                        granted, at, source, text_version, recorded_at
//	snapshots               version, kind, taken_at, ledger_position, size, digest,
//	                        max_per_subject (0: uncapped)
//	schema_migrations       version, name, applied_at
//	advertisers             the match service's advertisers, their modes and policy (see [Registry])
//	budget_spend            append-only: identifiers and micro-ε each advertiser's sessions spent
//	budget_refunds          append-only: sessions whose spend was refunded
//	sessions                append-only: the session audit log
//
// Migration 1 is the ledger, 2 the registry (advertisers, budget_spend,
// sessions), 3 private mode (modes and privacy budgets of advertisers, ε
// spends and refunds, max_per_subject).
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
//     subject; "latest" orders by at, then by event id (the later-recorded
//     event wins a tie).
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
// since the identifier is matchable) by at, then event id, and then by
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
// pgx pool: imports COPY into a temporary table and INSERT … SELECT … ON
// CONFLICT DO NOTHING from it; appends take an EXCLUSIVE lock on
// consent_events so event ids follow commit order; snapshots read in a
// REPEATABLE READ, READ ONLY transaction. On both, the callback of
// [Store.Snapshot] and [Store.SnapshotPerSubject] runs inside the read
// transaction and must not call back into the store.
package store
