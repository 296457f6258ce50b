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
}

// latestMigration is the schema version this binary writes.
func latestMigration() int64 { return migrations[len(migrations)-1].version }
