-- The floor of PostgreSQL's side of a bulk identifier load (bench/RESULTS.md,
-- "What 200,000 rows/s would take on this machine"): the three identifier tables of
-- an imported store, copied out with \copy TABLE TO '/dev/shm/TABLE.bin' (FORMAT binary),
-- loaded into a fresh store (overlap ids stats --db DSN creates it) with the indexes and
-- keys the bulk merge rebuilds dropped, then added back. Run: psql DSN -f floor.sql
\timing on
BEGIN;
SET LOCAL maintenance_work_mem = '512MB';
ALTER TABLE identifier_collections DROP CONSTRAINT identifier_collections_identifier_id_fkey;
ALTER TABLE identifier_collections DROP CONSTRAINT identifier_collections_pkey;
ALTER TABLE identifiers DROP CONSTRAINT identifiers_subject_id_fkey;
DROP INDEX identifiers_kind_digest;
ALTER TABLE identifiers DROP CONSTRAINT identifiers_subject_id_kind_value_key;
ALTER TABLE subjects DROP CONSTRAINT subjects_subject_key;
\copy subjects FROM '/dev/shm/subjects.bin' (FORMAT binary)
\copy identifiers FROM '/dev/shm/identifiers.bin' (FORMAT binary)
\copy identifier_collections FROM '/dev/shm/identifier_collections.bin' (FORMAT binary)
ALTER TABLE subjects ADD CONSTRAINT subjects_subject_key UNIQUE (subject);
ALTER TABLE identifiers ADD CONSTRAINT identifiers_subject_id_kind_value_key UNIQUE (subject_id, kind, value);
CREATE INDEX identifiers_kind_digest ON identifiers (kind, digest) INCLUDE (subject_id, id);
ALTER TABLE identifiers ADD CONSTRAINT identifiers_subject_id_fkey FOREIGN KEY (subject_id) REFERENCES subjects (id);
ALTER TABLE identifier_collections ADD CONSTRAINT identifier_collections_pkey PRIMARY KEY (identifier_id, collected_for);
ALTER TABLE identifier_collections ADD CONSTRAINT identifier_collections_identifier_id_fkey FOREIGN KEY (identifier_id) REFERENCES identifiers (id);
COMMIT;
