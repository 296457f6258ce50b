package store

// A migration is one numbered schema change, with its text for each engine.
// To change the schema, append a migration with the next version; never
// edit one that has shipped.
type migration struct {
	version  int64
	name     string
	sqlite   string
	postgres string
}

var migrations = []migration{
	{
		version: 1,
		name:    "consent ledger",
		sqlite: `
CREATE TABLE subjects (
	id      INTEGER PRIMARY KEY,
	subject TEXT NOT NULL UNIQUE
);
CREATE TABLE identifiers (
	id         INTEGER PRIMARY KEY,
	subject_id INTEGER NOT NULL REFERENCES subjects (id),
	kind       INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 3),
	value      TEXT NOT NULL,
	digest     BLOB NOT NULL CHECK (typeof(digest) = 'blob' AND length(digest) = 32),
	UNIQUE (subject_id, kind, value)
);
-- Covers the matchable-set scan: (kind, digest) order, subject_id and id.
CREATE INDEX identifiers_kind_digest ON identifiers (kind, digest, subject_id);
CREATE TABLE identifier_collections (
	identifier_id INTEGER NOT NULL REFERENCES identifiers (id),
	collected_for TEXT NOT NULL CHECK (collected_for IN ('signup', 'profile', 'two_factor', 'recovery', 'login_alert', 'imported')),
	PRIMARY KEY (identifier_id, collected_for)
) WITHOUT ROWID;
CREATE TABLE consent_events (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	subject_id    INTEGER NOT NULL REFERENCES subjects (id),
	identifier_id INTEGER REFERENCES identifiers (id),
	purpose       TEXT NOT NULL,
	granted       INTEGER NOT NULL CHECK (granted IN (0, 1)),
	at            INTEGER NOT NULL, -- Unix microseconds
	source        TEXT NOT NULL,
	text_version  TEXT NOT NULL,
	recorded_at   INTEGER NOT NULL  -- Unix microseconds
);
-- Covers the latest-consent lookup.
CREATE INDEX consent_events_subject ON consent_events (subject_id, purpose, at, id, identifier_id, granted);
CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent_events is append-only'); END;
CREATE TRIGGER consent_events_no_delete BEFORE DELETE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent_events is append-only'); END;
CREATE TABLE snapshots (
	version         INTEGER PRIMARY KEY AUTOINCREMENT,
	kind            INTEGER NOT NULL,
	taken_at        INTEGER NOT NULL, -- Unix microseconds
	ledger_position INTEGER NOT NULL,
	size            INTEGER NOT NULL,
	digest          BLOB NOT NULL
);
CREATE INDEX snapshots_kind ON snapshots (kind, version);
`,
		postgres: `
CREATE TABLE subjects (
	id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	subject text NOT NULL UNIQUE
);
CREATE TABLE identifiers (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	subject_id bigint NOT NULL REFERENCES subjects (id),
	kind       smallint NOT NULL CHECK (kind BETWEEN 1 AND 3),
	value      text NOT NULL,
	digest     bytea NOT NULL CHECK (octet_length(digest) = 32),
	UNIQUE (subject_id, kind, value)
);
-- Covers the matchable-set scan: (kind, digest) order, subject_id and id.
CREATE INDEX identifiers_kind_digest ON identifiers (kind, digest) INCLUDE (subject_id, id);
CREATE TABLE identifier_collections (
	identifier_id bigint NOT NULL REFERENCES identifiers (id),
	collected_for text NOT NULL CHECK (collected_for IN ('signup', 'profile', 'two_factor', 'recovery', 'login_alert', 'imported')),
	PRIMARY KEY (identifier_id, collected_for)
);
CREATE TABLE consent_events (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	subject_id    bigint NOT NULL REFERENCES subjects (id),
	identifier_id bigint REFERENCES identifiers (id),
	purpose       text NOT NULL,
	granted       boolean NOT NULL,
	at            timestamptz NOT NULL,
	source        text NOT NULL,
	text_version  text NOT NULL,
	recorded_at   timestamptz NOT NULL
);
-- Covers the latest-consent lookup.
CREATE INDEX consent_events_subject ON consent_events (subject_id, purpose, at, id) INCLUDE (identifier_id, granted);
CREATE FUNCTION consent_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'consent_events is append-only';
END
$$;
CREATE TRIGGER consent_events_no_update_delete BEFORE UPDATE OR DELETE ON consent_events
	FOR EACH ROW EXECUTE FUNCTION consent_events_append_only();
CREATE TRIGGER consent_events_no_truncate BEFORE TRUNCATE ON consent_events
	FOR EACH STATEMENT EXECUTE FUNCTION consent_events_append_only();
CREATE TABLE snapshots (
	version         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind            smallint NOT NULL,
	taken_at        timestamptz NOT NULL,
	ledger_position bigint NOT NULL,
	size            bigint NOT NULL,
	digest          bytea NOT NULL
);
CREATE INDEX snapshots_kind ON snapshots (kind, version);
`,
	},
	{
		version: 2,
		name:    "advertisers, budget spend and session audit",
		sqlite: `
CREATE TABLE advertisers (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	name          TEXT NOT NULL UNIQUE,
	key_id        TEXT UNIQUE,  -- public part of the API key; NULL: no key
	api_key_hash  BLOB CHECK (api_key_hash IS NULL OR (typeof(api_key_hash) = 'blob' AND length(api_key_hash) = 32)),
	cert_name     TEXT UNIQUE,  -- client certificate CN or SAN; NULL: none
	created_at    INTEGER NOT NULL, -- Unix microseconds
	revoked_at    INTEGER,          -- Unix microseconds; NULL: active
	min_list_size INTEGER NOT NULL DEFAULT 0 CHECK (min_list_size >= 0), -- 0: server default
	max_list_size INTEGER NOT NULL DEFAULT 0 CHECK (max_list_size >= 0),
	budget        INTEGER NOT NULL DEFAULT 0 CHECK (budget >= 0),
	CHECK ((key_id IS NULL) = (api_key_hash IS NULL))
);
CREATE TABLE budget_spend (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	advertiser_id INTEGER NOT NULL REFERENCES advertisers (id),
	session_id    TEXT NOT NULL,
	at            INTEGER NOT NULL, -- Unix microseconds
	identifiers   INTEGER NOT NULL CHECK (identifiers > 0)
);
CREATE INDEX budget_spend_advertiser ON budget_spend (advertiser_id, at);
CREATE TRIGGER budget_spend_no_update BEFORE UPDATE ON budget_spend
BEGIN SELECT RAISE(ABORT, 'budget_spend is append-only'); END;
CREATE TRIGGER budget_spend_no_delete BEFORE DELETE ON budget_spend
BEGIN SELECT RAISE(ABORT, 'budget_spend is append-only'); END;
CREATE TABLE sessions (
	id               TEXT PRIMARY KEY,
	advertiser_id    INTEGER NOT NULL REFERENCES advertisers (id),
	kind             INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 3), -- 0: refused before the hello
	mode             TEXT NOT NULL,
	list_size        INTEGER NOT NULL,
	server_size      INTEGER NOT NULL,
	snapshot_version INTEGER REFERENCES snapshots (version), -- NULL: no snapshot taken
	snapshot_digest  BLOB,
	budget_spent     INTEGER NOT NULL,
	result           TEXT NOT NULL,
	detail           TEXT NOT NULL,
	started_at       INTEGER NOT NULL, -- Unix microseconds
	ended_at         INTEGER NOT NULL,
	duration_us      INTEGER NOT NULL
);
CREATE INDEX sessions_advertiser ON sessions (advertiser_id, started_at);
CREATE TRIGGER sessions_no_update BEFORE UPDATE ON sessions
BEGIN SELECT RAISE(ABORT, 'sessions is append-only'); END;
CREATE TRIGGER sessions_no_delete BEFORE DELETE ON sessions
BEGIN SELECT RAISE(ABORT, 'sessions is append-only'); END;
`,
		postgres: `
CREATE TABLE advertisers (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name          text NOT NULL UNIQUE,
	key_id        text UNIQUE,
	api_key_hash  bytea CHECK (api_key_hash IS NULL OR octet_length(api_key_hash) = 32),
	cert_name     text UNIQUE,
	created_at    timestamptz NOT NULL,
	revoked_at    timestamptz,
	min_list_size bigint NOT NULL DEFAULT 0 CHECK (min_list_size >= 0),
	max_list_size bigint NOT NULL DEFAULT 0 CHECK (max_list_size >= 0),
	budget        bigint NOT NULL DEFAULT 0 CHECK (budget >= 0),
	CHECK ((key_id IS NULL) = (api_key_hash IS NULL))
);
CREATE TABLE budget_spend (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	advertiser_id bigint NOT NULL REFERENCES advertisers (id),
	session_id    text NOT NULL,
	at            timestamptz NOT NULL,
	identifiers   bigint NOT NULL CHECK (identifiers > 0)
);
CREATE INDEX budget_spend_advertiser ON budget_spend (advertiser_id, at);
CREATE TABLE sessions (
	id               text PRIMARY KEY,
	advertiser_id    bigint NOT NULL REFERENCES advertisers (id),
	kind             smallint NOT NULL CHECK (kind BETWEEN 0 AND 3),
	mode             text NOT NULL,
	list_size        bigint NOT NULL,
	server_size      bigint NOT NULL,
	snapshot_version bigint REFERENCES snapshots (version),
	snapshot_digest  bytea,
	budget_spent     bigint NOT NULL,
	result           text NOT NULL,
	detail           text NOT NULL,
	started_at       timestamptz NOT NULL,
	ended_at         timestamptz NOT NULL,
	duration_us      bigint NOT NULL
);
CREATE INDEX sessions_advertiser ON sessions (advertiser_id, started_at);
CREATE FUNCTION overlap_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER budget_spend_no_update_delete BEFORE UPDATE OR DELETE ON budget_spend
	FOR EACH ROW EXECUTE FUNCTION overlap_append_only();
CREATE TRIGGER budget_spend_no_truncate BEFORE TRUNCATE ON budget_spend
	FOR EACH STATEMENT EXECUTE FUNCTION overlap_append_only();
CREATE TRIGGER sessions_no_update_delete BEFORE UPDATE OR DELETE ON sessions
	FOR EACH ROW EXECUTE FUNCTION overlap_append_only();
CREATE TRIGGER sessions_no_truncate BEFORE TRUNCATE ON sessions
	FOR EACH STATEMENT EXECUTE FUNCTION overlap_append_only();
`,
	},
	{
		version: 3,
		name:    "private mode: advertiser modes, privacy budget, refunds, per-subject snapshots",
		sqlite: `
-- modes: bit 1<<m for mode m (2 = exact, 4 = private, 6 = both). Advertisers
-- that predate private mode keep exact mode only.
ALTER TABLE advertisers ADD COLUMN modes INTEGER NOT NULL DEFAULT 2 CHECK (modes IN (2, 4, 6));
ALTER TABLE advertisers ADD COLUMN privacy_budget INTEGER NOT NULL DEFAULT 0 CHECK (privacy_budget >= 0); -- micro-ε; 0: server default
ALTER TABLE advertisers ADD COLUMN privacy_cost INTEGER NOT NULL DEFAULT 0 CHECK (privacy_cost >= 0);     -- micro-ε; 0: server default
ALTER TABLE budget_spend ADD COLUMN epsilon_micros INTEGER NOT NULL DEFAULT 0 CHECK (epsilon_micros >= 0);
CREATE INDEX budget_spend_session ON budget_spend (session_id, advertiser_id);
CREATE TABLE budget_refunds (
	session_id    TEXT PRIMARY KEY,
	advertiser_id INTEGER NOT NULL REFERENCES advertisers (id),
	at            INTEGER NOT NULL -- Unix microseconds
);
CREATE TRIGGER budget_refunds_no_update BEFORE UPDATE ON budget_refunds
BEGIN SELECT RAISE(ABORT, 'budget_refunds is append-only'); END;
CREATE TRIGGER budget_refunds_no_delete BEFORE DELETE ON budget_refunds
BEGIN SELECT RAISE(ABORT, 'budget_refunds is append-only'); END;
ALTER TABLE sessions ADD COLUMN epsilon_spent INTEGER NOT NULL DEFAULT 0 CHECK (epsilon_spent >= 0); -- micro-ε
ALTER TABLE snapshots ADD COLUMN max_per_subject INTEGER NOT NULL DEFAULT 0 CHECK (max_per_subject BETWEEN 0 AND 65536); -- 0: no cap
`,
		postgres: `
ALTER TABLE advertisers
	ADD COLUMN modes integer NOT NULL DEFAULT 2 CHECK (modes IN (2, 4, 6)),
	ADD COLUMN privacy_budget bigint NOT NULL DEFAULT 0 CHECK (privacy_budget >= 0),
	ADD COLUMN privacy_cost bigint NOT NULL DEFAULT 0 CHECK (privacy_cost >= 0);
ALTER TABLE budget_spend ADD COLUMN epsilon_micros bigint NOT NULL DEFAULT 0 CHECK (epsilon_micros >= 0);
CREATE INDEX budget_spend_session ON budget_spend (session_id, advertiser_id);
CREATE TABLE budget_refunds (
	session_id    text PRIMARY KEY,
	advertiser_id bigint NOT NULL REFERENCES advertisers (id),
	at            timestamptz NOT NULL
);
CREATE TRIGGER budget_refunds_no_update_delete BEFORE UPDATE OR DELETE ON budget_refunds
	FOR EACH ROW EXECUTE FUNCTION overlap_append_only();
CREATE TRIGGER budget_refunds_no_truncate BEFORE TRUNCATE ON budget_refunds
	FOR EACH STATEMENT EXECUTE FUNCTION overlap_append_only();
ALTER TABLE sessions ADD COLUMN epsilon_spent bigint NOT NULL DEFAULT 0 CHECK (epsilon_spent >= 0);
ALTER TABLE snapshots ADD COLUMN max_per_subject integer NOT NULL DEFAULT 0 CHECK (max_per_subject BETWEEN 0 AND 65536);
`,
	},
	{
		version: 4,
		name:    "ledger generation",
		// One counter that every change to the tables the matchable set
		// is computed from moves on, in the changing transaction, by
		// whichever path made the change. Equal generations mean equal
		// matchable sets of every kind (see Store.Generation).
		sqlite: `
CREATE TABLE ledger_generation (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	n  INTEGER NOT NULL
);
INSERT INTO ledger_generation (id, n) VALUES (1, 0);
ALTER TABLE snapshots ADD COLUMN generation INTEGER NOT NULL DEFAULT 0; -- 0: taken before this migration
CREATE TRIGGER ledger_generation_no_delete BEFORE DELETE ON ledger_generation
BEGIN SELECT RAISE(ABORT, 'ledger_generation keeps its row'); END;
CREATE TRIGGER identifiers_generation_insert AFTER INSERT ON identifiers
BEGIN UPDATE ledger_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER identifiers_generation_update AFTER UPDATE ON identifiers
BEGIN UPDATE ledger_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER identifiers_generation_delete AFTER DELETE ON identifiers
BEGIN UPDATE ledger_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER identifier_collections_generation_insert AFTER INSERT ON identifier_collections
BEGIN UPDATE ledger_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER identifier_collections_generation_update AFTER UPDATE ON identifier_collections
BEGIN UPDATE ledger_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER identifier_collections_generation_delete AFTER DELETE ON identifier_collections
BEGIN UPDATE ledger_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER consent_events_generation_insert AFTER INSERT ON consent_events
BEGIN UPDATE ledger_generation SET n = n + 1 WHERE id = 1; END;
`,
		postgres: `
CREATE TABLE ledger_generation (
	id smallint PRIMARY KEY CHECK (id = 1),
	n  bigint NOT NULL
);
INSERT INTO ledger_generation (id, n) VALUES (1, 0);
ALTER TABLE snapshots ADD COLUMN generation bigint NOT NULL DEFAULT 0;
CREATE FUNCTION overlap_keep_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'ledger_generation keeps its row'; END $$;
CREATE TRIGGER ledger_generation_no_delete BEFORE DELETE OR TRUNCATE ON ledger_generation
	FOR EACH STATEMENT EXECUTE FUNCTION overlap_keep_generation();
CREATE FUNCTION overlap_bump_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN UPDATE ledger_generation SET n = n + 1 WHERE id = 1; RETURN NULL; END $$;
CREATE TRIGGER identifiers_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON identifiers
	FOR EACH STATEMENT EXECUTE FUNCTION overlap_bump_generation();
CREATE TRIGGER identifier_collections_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON identifier_collections
	FOR EACH STATEMENT EXECUTE FUNCTION overlap_bump_generation();
CREATE TRIGGER consent_events_generation AFTER INSERT OR TRUNCATE ON consent_events
	FOR EACH STATEMENT EXECUTE FUNCTION overlap_bump_generation();
`,
	},
	{
		version: 5,
		name:    "consent ordering by effective time",
		// A consent event counts from its effective time, min(at,
		// recorded_at), so no event overrides one recorded before it by
		// claiming a later time than it was recorded at (package doc).
		// The column is computed, so old rows get the rule too without an
		// UPDATE of the append-only table; the index replaces the one on
		// at for the latest-covering-event lookup, and serves the lookup
		// of an identical event by (subject_id, purpose). The generation
		// moves on: the matchable set of an old ledger with future-dated
		// events may change.
		sqlite: `
ALTER TABLE consent_events ADD COLUMN effective_at INTEGER GENERATED ALWAYS AS (MIN(at, recorded_at)) VIRTUAL;
DROP INDEX consent_events_subject;
CREATE INDEX consent_events_effective ON consent_events (subject_id, purpose, effective_at, id, identifier_id, granted);
UPDATE ledger_generation SET n = n + 1 WHERE id = 1;
`,
		postgres: `
ALTER TABLE consent_events ADD COLUMN effective_at timestamptz GENERATED ALWAYS AS (LEAST(at, recorded_at)) STORED;
DROP INDEX consent_events_subject;
CREATE INDEX consent_events_effective ON consent_events (subject_id, purpose, effective_at, id) INCLUDE (identifier_id, granted);
UPDATE ledger_generation SET n = n + 1 WHERE id = 1;
`,
	},
	{
		version: 6,
		name:    "session journal",
		// The open sessions: one mutable row per session from its budget
		// reservation to its audit row (journal.go). A row left behind by
		// a crash is reconciled once its lease has ended.
		sqlite: `
CREATE TABLE session_journal (
	id               TEXT PRIMARY KEY,
	advertiser_id    INTEGER NOT NULL REFERENCES advertisers (id),
	kind             INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 3),
	mode             TEXT NOT NULL,
	list_size        INTEGER NOT NULL,
	identifiers      INTEGER NOT NULL CHECK (identifiers >= 0),    -- reserved
	epsilon_micros   INTEGER NOT NULL CHECK (epsilon_micros >= 0), -- reserved
	phase            TEXT NOT NULL CHECK (phase IN ('admitted', 'elements_sent')),
	server_size      INTEGER NOT NULL DEFAULT 0,
	snapshot_version INTEGER, -- no reference: a service may read its sets elsewhere
	snapshot_digest  BLOB,
	owner            TEXT NOT NULL,
	started_at       INTEGER NOT NULL, -- Unix microseconds
	renewed_at       INTEGER NOT NULL, -- last sign of life
	lease_until      INTEGER NOT NULL
);
CREATE INDEX session_journal_lease ON session_journal (lease_until);
`,
		postgres: `
CREATE TABLE session_journal (
	id               text PRIMARY KEY,
	advertiser_id    bigint NOT NULL REFERENCES advertisers (id),
	kind             smallint NOT NULL CHECK (kind BETWEEN 1 AND 3),
	mode             text NOT NULL,
	list_size        bigint NOT NULL,
	identifiers      bigint NOT NULL CHECK (identifiers >= 0),
	epsilon_micros   bigint NOT NULL CHECK (epsilon_micros >= 0),
	phase            text NOT NULL CHECK (phase IN ('admitted', 'elements_sent')),
	server_size      bigint NOT NULL DEFAULT 0,
	snapshot_version bigint,
	snapshot_digest  bytea,
	owner            text NOT NULL,
	started_at       timestamptz NOT NULL,
	renewed_at       timestamptz NOT NULL,
	lease_until      timestamptz NOT NULL
);
CREATE INDEX session_journal_lease ON session_journal (lease_until);
`,
	},
	{
		version: 7,
		name:    "epochs",
		// Epochs (SPEC.md §10.12, epochs.go): an advertiser may be served
		// mode epoch (bits 1<<3 | 1<<4 of modes, both or neither); the
		// epochs with their key and their Golomb-coded tags, in chunks;
		// and the epoch an epoch session used, in its audit row and its
		// journal row. SQLite cannot change a CHECK constraint, so it
		// rebuilds advertisers: the copy goes back with the same ids, the
		// foreign keys of the other tables, checked at commit
		// (defer_foreign_keys), find their rows again, and the
		// AUTOINCREMENT counter is kept.
		sqlite: `
PRAGMA defer_foreign_keys = ON;
CREATE TABLE advertisers_v6 AS SELECT * FROM advertisers;
CREATE TABLE advertisers_v6_seq AS SELECT seq FROM sqlite_sequence WHERE name = 'advertisers';
DROP TABLE advertisers;
CREATE TABLE advertisers (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	name           TEXT NOT NULL UNIQUE,
	key_id         TEXT UNIQUE,  -- public part of the API key; NULL: no key
	api_key_hash   BLOB CHECK (api_key_hash IS NULL OR (typeof(api_key_hash) = 'blob' AND length(api_key_hash) = 32)),
	cert_name      TEXT UNIQUE,  -- client certificate CN or SAN; NULL: none
	created_at     INTEGER NOT NULL, -- Unix microseconds
	revoked_at     INTEGER,          -- Unix microseconds; NULL: active
	min_list_size  INTEGER NOT NULL DEFAULT 0 CHECK (min_list_size >= 0), -- 0: server default
	max_list_size  INTEGER NOT NULL DEFAULT 0 CHECK (max_list_size >= 0),
	budget         INTEGER NOT NULL DEFAULT 0 CHECK (budget >= 0),
	-- modes: bit 1<<m for mode m: 2 exact, 4 private, 24 epoch (modes 3 and 4).
	modes          INTEGER NOT NULL DEFAULT 2 CHECK (modes > 0 AND (modes & ~30) = 0 AND (modes & 24) IN (0, 24)),
	privacy_budget INTEGER NOT NULL DEFAULT 0 CHECK (privacy_budget >= 0), -- micro-ε; 0: server default
	privacy_cost   INTEGER NOT NULL DEFAULT 0 CHECK (privacy_cost >= 0),   -- micro-ε; 0: server default
	CHECK ((key_id IS NULL) = (api_key_hash IS NULL))
);
INSERT INTO advertisers (id, name, key_id, api_key_hash, cert_name, created_at, revoked_at, min_list_size, max_list_size, budget,
	modes, privacy_budget, privacy_cost)
	SELECT id, name, key_id, api_key_hash, cert_name, created_at, revoked_at, min_list_size, max_list_size, budget,
	modes, privacy_budget, privacy_cost FROM advertisers_v6 ORDER BY id;
DELETE FROM sqlite_sequence WHERE name = 'advertisers';
INSERT INTO sqlite_sequence (name, seq)
	SELECT 'advertisers', MAX(COALESCE((SELECT MAX(seq) FROM advertisers_v6_seq), 0), COALESCE((SELECT MAX(id) FROM advertisers), 0));
DROP TABLE advertisers_v6;
DROP TABLE advertisers_v6_seq;

CREATE TABLE epochs (
	id               BLOB PRIMARY KEY CHECK (typeof(id) = 'blob' AND length(id) = 16),
	advertiser_id    INTEGER NOT NULL REFERENCES advertisers (id),
	kind             INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 3),
	canon_version    INTEGER NOT NULL CHECK (canon_version BETWEEN 0 AND 65535),
	canon_flags      INTEGER NOT NULL CHECK (canon_flags BETWEEN 0 AND 65535),
	server_size      INTEGER NOT NULL CHECK (server_size BETWEEN 1 AND 4294967295), -- N
	size             INTEGER NOT NULL CHECK (size BETWEEN 0 AND server_size),        -- |Y_E|, the kept tags
	client_key       BLOB NOT NULL CHECK (typeof(client_key) = 'blob' AND length(client_key) = 32), -- A_E
	epoch_key        BLOB NOT NULL CHECK (typeof(epoch_key) = 'blob' AND length(epoch_key) = 32),   -- b_E: secret
	snapshot_version INTEGER, -- no reference, as in session_journal; NULL: none
	snapshot_digest  BLOB,
	created_at       INTEGER NOT NULL, -- Unix microseconds
	expires_at       INTEGER NOT NULL, -- Unix microseconds
	tag_bytes        INTEGER NOT NULL CHECK (tag_bytes >= 0)
);
CREATE INDEX epochs_advertiser ON epochs (advertiser_id, created_at);
CREATE INDEX epochs_expires ON epochs (expires_at);
CREATE TABLE epoch_tags (
	epoch_id BLOB NOT NULL REFERENCES epochs (id),
	seq      INTEGER NOT NULL CHECK (seq >= 0),
	count    INTEGER NOT NULL CHECK (count > 0),
	data     BLOB NOT NULL,
	PRIMARY KEY (epoch_id, seq)
) WITHOUT ROWID;
ALTER TABLE sessions ADD COLUMN epoch_id TEXT CHECK (epoch_id IS NULL OR length(epoch_id) = 32); -- hex; NULL: no epoch
ALTER TABLE sessions ADD COLUMN epoch_expires_at INTEGER; -- Unix microseconds; NULL: none
ALTER TABLE session_journal ADD COLUMN epoch_id TEXT CHECK (epoch_id IS NULL OR length(epoch_id) = 32);
ALTER TABLE session_journal ADD COLUMN epoch_expires_at INTEGER;
`,
		postgres: `
ALTER TABLE advertisers DROP CONSTRAINT advertisers_modes_check,
	ADD CONSTRAINT advertisers_modes_check CHECK (modes > 0 AND (modes & ~30) = 0 AND (modes & 24) IN (0, 24));
CREATE TABLE epochs (
	id               bytea PRIMARY KEY CHECK (octet_length(id) = 16),
	advertiser_id    bigint NOT NULL REFERENCES advertisers (id),
	kind             smallint NOT NULL CHECK (kind BETWEEN 1 AND 3),
	canon_version    integer NOT NULL CHECK (canon_version BETWEEN 0 AND 65535),
	canon_flags      integer NOT NULL CHECK (canon_flags BETWEEN 0 AND 65535),
	server_size      bigint NOT NULL CHECK (server_size BETWEEN 1 AND 4294967295),
	size             bigint NOT NULL CHECK (size BETWEEN 0 AND server_size),
	client_key       bytea NOT NULL CHECK (octet_length(client_key) = 32),
	epoch_key        bytea NOT NULL CHECK (octet_length(epoch_key) = 32),
	snapshot_version bigint,
	snapshot_digest  bytea,
	created_at       timestamptz NOT NULL,
	expires_at       timestamptz NOT NULL,
	tag_bytes        bigint NOT NULL CHECK (tag_bytes >= 0)
);
CREATE INDEX epochs_advertiser ON epochs (advertiser_id, created_at);
CREATE INDEX epochs_expires ON epochs (expires_at);
CREATE TABLE epoch_tags (
	epoch_id bytea NOT NULL REFERENCES epochs (id),
	seq      integer NOT NULL CHECK (seq >= 0),
	count    integer NOT NULL CHECK (count > 0),
	data     bytea NOT NULL,
	PRIMARY KEY (epoch_id, seq)
);
ALTER TABLE sessions
	ADD COLUMN epoch_id text CHECK (epoch_id IS NULL OR length(epoch_id) = 32),
	ADD COLUMN epoch_expires_at timestamptz;
ALTER TABLE session_journal
	ADD COLUMN epoch_id text CHECK (epoch_id IS NULL OR length(epoch_id) = 32),
	ADD COLUMN epoch_expires_at timestamptz;
`,
	},
	{
		version: 8,
		name:    "suites",
		// Ciphersuites (SPEC.md §12): an epoch's suite, fixed at its
		// setup, and the suite of each session in its audit row. Existing
		// epochs are suite 1. The audit log is append-only, so existing
		// session rows keep a NULL suite: they are all suite 1, as is every
		// session of a binary from before suites; otherwise NULL is a
		// session that ended before a suite was chosen (a refusal, or a
		// crashed session reconciled from its journal row).
		sqlite: `
ALTER TABLE epochs ADD COLUMN suite INTEGER NOT NULL DEFAULT 1 CHECK (suite BETWEEN 1 AND 2);
ALTER TABLE sessions ADD COLUMN suite INTEGER CHECK (suite IS NULL OR suite BETWEEN 1 AND 2);
`,
		postgres: `
ALTER TABLE epochs ADD COLUMN suite smallint NOT NULL DEFAULT 1 CHECK (suite BETWEEN 1 AND 2);
ALTER TABLE sessions ADD COLUMN suite smallint CHECK (suite IS NULL OR suite BETWEEN 1 AND 2);
`,
	},
	{
		version: 9,
		name:    derivedMigration,
		// PostgreSQL only: the batches of bulk identifier imports
		// (postgres_bulk.go), unlogged like their staging tables, so that
		// a crash of the server, which empties unlogged tables, empties
		// both together and a batch never claims rows its table lost; and
		// the kept classification (postgres_derived.go), unlogged too,
		// with the generation it is of.
		sqlite: `SELECT 1;`,
		postgres: `
CREATE UNLOGGED TABLE derived_state (
	id         smallint PRIMARY KEY CHECK (id = 1),
	generation bigint NOT NULL
);
CREATE UNLOGGED TABLE matchable_digests (
	kind   smallint NOT NULL,
	digest bytea NOT NULL
);
CREATE UNIQUE INDEX matchable_digests_kind_digest ON matchable_digests (kind, digest);
CREATE UNLOGGED TABLE identifier_stats (
	kind   smallint NOT NULL,
	status text NOT NULL,
	n      bigint NOT NULL
);
CREATE UNLOGGED TABLE bulk_batches (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name       text NOT NULL UNIQUE,
	staged     bigint NOT NULL DEFAULT 0 CHECK (staged >= 0), -- rows up to this sequence number are staged
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);
`,
	},
	{
		version: 10,
		name:    "record sessions",
		// Record sessions (SPEC.md §13): the audit and journal rows of a
		// record session carry its kind set (bit K-1 for kind K) and its
		// slots per record s, 0 and 0 for an identifier-level session;
		// kind and the snapshot columns name the set's first kind and its
		// snapshot. session_snapshots holds the snapshot of each kind of
		// the set, appended with the audit row.
		sqlite: `
ALTER TABLE sessions ADD COLUMN kinds INTEGER NOT NULL DEFAULT 0 CHECK (kinds BETWEEN 0 AND 7);
ALTER TABLE sessions ADD COLUMN slots INTEGER NOT NULL DEFAULT 0 CHECK (slots BETWEEN 0 AND 8);
ALTER TABLE session_journal ADD COLUMN kinds INTEGER NOT NULL DEFAULT 0 CHECK (kinds BETWEEN 0 AND 7);
ALTER TABLE session_journal ADD COLUMN slots INTEGER NOT NULL DEFAULT 0 CHECK (slots BETWEEN 0 AND 8);
CREATE TABLE session_snapshots (
	session_id       TEXT NOT NULL REFERENCES sessions (id),
	kind             INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 3),
	snapshot_version INTEGER NOT NULL, -- no reference, as in session_journal
	snapshot_digest  BLOB NOT NULL CHECK (typeof(snapshot_digest) = 'blob' AND length(snapshot_digest) = 32),
	PRIMARY KEY (session_id, kind)
) WITHOUT ROWID;
CREATE TRIGGER session_snapshots_no_update BEFORE UPDATE ON session_snapshots
BEGIN SELECT RAISE(ABORT, 'session_snapshots is append-only'); END;
CREATE TRIGGER session_snapshots_no_delete BEFORE DELETE ON session_snapshots
BEGIN SELECT RAISE(ABORT, 'session_snapshots is append-only'); END;
`,
		postgres: `
ALTER TABLE sessions
	ADD COLUMN kinds smallint NOT NULL DEFAULT 0 CHECK (kinds BETWEEN 0 AND 7),
	ADD COLUMN slots smallint NOT NULL DEFAULT 0 CHECK (slots BETWEEN 0 AND 8);
ALTER TABLE session_journal
	ADD COLUMN kinds smallint NOT NULL DEFAULT 0 CHECK (kinds BETWEEN 0 AND 7),
	ADD COLUMN slots smallint NOT NULL DEFAULT 0 CHECK (slots BETWEEN 0 AND 8);
CREATE TABLE session_snapshots (
	session_id       text NOT NULL REFERENCES sessions (id),
	kind             smallint NOT NULL CHECK (kind BETWEEN 1 AND 3),
	snapshot_version bigint NOT NULL,
	snapshot_digest  bytea NOT NULL CHECK (octet_length(snapshot_digest) = 32),
	PRIMARY KEY (session_id, kind)
);
CREATE TRIGGER session_snapshots_no_update_delete BEFORE UPDATE OR DELETE ON session_snapshots
	FOR EACH ROW EXECUTE FUNCTION overlap_append_only();
CREATE TRIGGER session_snapshots_no_truncate BEFORE TRUNCATE ON session_snapshots
	FOR EACH STATEMENT EXECUTE FUNCTION overlap_append_only();
`,
	},
	{
		version: 11,
		name:    "journal suites",
		// The ciphersuite of a journaled session (SPEC.md §12.1), so that
		// the audit row Reconcile writes for a crashed session names it;
		// NULL before a suite is chosen, and on rows from before this
		// migration.
		sqlite: `
ALTER TABLE session_journal ADD COLUMN suite INTEGER CHECK (suite IS NULL OR suite BETWEEN 1 AND 2);
`,
		postgres: `
ALTER TABLE session_journal ADD COLUMN suite smallint CHECK (suite IS NULL OR suite BETWEEN 1 AND 2);
`,
	},
	{
		version: 12,
		name:    incrementalMigration,
		// PostgreSQL only: the kept classification is kept up to date
		// from the changes since it was computed (postgres_derived.go)
		// rather than recomputed whole. digest_classes replaces
		// matchable_digests: one row per (kind, digest) with the number
		// of its identifiers in each class, so that a change can take a
		// digest's old counts out of identifier_stats; derived_changes
		// is the log of what changed, written by statement triggers in
		// the changing transaction (an identifier, every identifier of a
		// subject, or, for changes the log does not describe, everything).
		// All unlogged, as derived_state: a crash empties them together
		// and the next reader classifies the whole ledger. Emptying
		// derived_state here makes the next reader do so too.
		sqlite: `SELECT 1;`,
		postgres: `
DROP TABLE matchable_digests, identifier_stats;
TRUNCATE derived_state;
CREATE UNLOGGED TABLE digest_classes (
	kind       smallint NOT NULL,
	digest     bytea NOT NULL,
	matchable  integer NOT NULL,
	withdrawn  integer NOT NULL,
	no_consent integer NOT NULL,
	security   integer NOT NULL
);
CREATE UNIQUE INDEX digest_classes_kind_digest ON digest_classes (kind, digest);
CREATE UNLOGGED TABLE identifier_stats (
	kind   smallint NOT NULL,
	status text NOT NULL,
	n      bigint NOT NULL
);
CREATE UNIQUE INDEX identifier_stats_kind_status ON identifier_stats (kind, status);
-- identifier_id set: that identifier's (kind, digest) changed class or
-- joined; else subject_id set: every identifier of the subject; both NULL:
-- everything.
CREATE UNLOGGED TABLE derived_changes (
	subject_id    bigint,
	identifier_id bigint
);
-- One statement of more than a million rows (a bulk import; the setting
-- overlap.log_rows_max changes the number) logs "everything" rather than
-- its rows: the next reader classifies the whole ledger, which costs less
-- than a million index probes, and the log stays small.
CREATE FUNCTION overlap_log_rows_max() RETURNS bigint LANGUAGE sql STABLE AS $$
	SELECT COALESCE(NULLIF(current_setting('overlap.log_rows_max', true), '')::bigint, 1000000)
$$;
CREATE FUNCTION overlap_log_identifiers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF (SELECT count(*) FROM (SELECT 1 FROM new_rows LIMIT overlap_log_rows_max() + 1) AS t) > overlap_log_rows_max() THEN
		INSERT INTO derived_changes VALUES (NULL, NULL);
	ELSE
		INSERT INTO derived_changes (identifier_id) SELECT id FROM new_rows;
	END IF;
	RETURN NULL;
END $$;
CREATE FUNCTION overlap_log_collections() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF (SELECT count(*) FROM (SELECT 1 FROM new_rows WHERE collected_for IN (` + sqlSecurityPurposes + `)
			LIMIT overlap_log_rows_max() + 1) AS t) > overlap_log_rows_max() THEN
		INSERT INTO derived_changes VALUES (NULL, NULL);
	ELSE
		INSERT INTO derived_changes (identifier_id)
			SELECT identifier_id FROM new_rows WHERE collected_for IN (` + sqlSecurityPurposes + `);
	END IF;
	RETURN NULL;
END $$;
CREATE FUNCTION overlap_log_consent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF (SELECT count(*) FROM (SELECT 1 FROM new_rows WHERE purpose = '` + AdMatching + `'
			LIMIT overlap_log_rows_max() + 1) AS t) > overlap_log_rows_max() THEN
		INSERT INTO derived_changes VALUES (NULL, NULL);
	ELSE
		INSERT INTO derived_changes (subject_id, identifier_id)
			SELECT subject_id, identifier_id FROM new_rows WHERE purpose = '` + AdMatching + `';
	END IF;
	RETURN NULL;
END $$;
CREATE FUNCTION overlap_log_everything() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO derived_changes VALUES (NULL, NULL); RETURN NULL; END $$;
CREATE TRIGGER identifiers_log AFTER INSERT ON identifiers
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION overlap_log_identifiers();
CREATE TRIGGER identifiers_log_other AFTER UPDATE OR DELETE OR TRUNCATE ON identifiers
	FOR EACH STATEMENT EXECUTE FUNCTION overlap_log_everything();
CREATE TRIGGER identifier_collections_log AFTER INSERT ON identifier_collections
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION overlap_log_collections();
CREATE TRIGGER identifier_collections_log_other AFTER UPDATE OR DELETE OR TRUNCATE ON identifier_collections
	FOR EACH STATEMENT EXECUTE FUNCTION overlap_log_everything();
CREATE TRIGGER consent_events_log AFTER INSERT ON consent_events
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION overlap_log_consent();
`,
	},
}

// incrementalMigration names the migration that keeps the classification
// up to date from a log of changes (PostgreSQL only).
const incrementalMigration = "incremental matchable set"

// derivedMigration names the migration that adds the bulk import batches
// and the kept matchable set (PostgreSQL only).
const derivedMigration = "bulk import batches and the kept matchable set"

// migrationVersion is the version of the migration named name, 0 if none.
func migrationVersion(name string) int64 {
	for _, m := range migrations {
		if m.name == name {
			return m.version
		}
	}
	return 0
}

// latestMigration is the schema version this binary writes.
func latestMigration() int64 { return migrations[len(migrations)-1].version }
