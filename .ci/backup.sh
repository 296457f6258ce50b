#!/usr/bin/env bash
# Runs the backup and restore of README.md ("Operations") on both engines:
# a store with the sample platform and an advertiser that spent budget; its
# backup, restored elsewhere, holds the same identifiers, advertisers and
# spend.
#
# Usage (from .ci/run, after postgres.sh exported OVERLAP_TEST_POSTGRES):
#
#	bash .ci/backup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'backup.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

: "${OVERLAP_TEST_POSTGRES:?run eval \"\$(bash .ci/postgres.sh)\" first}"
command -v sqlite3 >/dev/null || die "sqlite3 is not installed (apt-get install -y sqlite3)"

work="$(mktemp -d "${TMPDIR:-/tmp}/overlap-backup.XXXXXX")"
db_restore="overlap_restore_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
schema="overlap_backup_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
cleanup() {
	psql "$OVERLAP_TEST_POSTGRES" -q -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
	psql "$OVERLAP_TEST_POSTGRES" -q -c "DROP DATABASE IF EXISTS $db_restore" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/overlap" ./cmd/overlap
ov() { "$work/overlap" "$@"; }
with_param() { case "$1" in *\?*) printf '%s&%s' "$1" "$2" ;; *) printf '%s?%s' "$1" "$2" ;; esac; }

# seed DB: the sample platform, and acme with one private session spent.
seed() {
	local db="$1"
	ov ids import --db "$db" --region US testdata/sample/platform_identifiers.csv >/dev/null 2>&1
	ov consent import --db "$db" testdata/sample/platform_consent.csv >/dev/null 2>&1
	ov advertisers add --db "$db" --key-file "$work/acme.key" acme 2>/dev/null
	local port
	port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
	ov serve --db "$db" --addr "127.0.0.1:$port" --admin-addr '' --dev-cert "$work/certs" 2>"$work/serve.log" &
	local pid=$!
	for _ in $(seq 1 100); do grep -q 'serving matches' "$work/serve.log" && break; sleep 0.1; done
	ov match --server "localhost:$port" --api-key-file "$work/acme.key" --ca "$work/certs/cert.pem" \
		--kind email testdata/sample/advertiser_customers.csv >/dev/null 2>&1 || true
	kill "$pid"
	wait "$pid" || true
	rm -f "$work/acme.key"
}

# state DB: what a backup must keep.
state() {
	ov ids stats --db "$1"
	ov advertisers list --db "$1"
	ov advertisers budget --db "$1" acme | grep -v '^window:'
}

# check ORIGINAL RESTORED NAME: the restored store has the state of the
# original, the session spent included.
check() {
	diff <(state "$1") <(state "$2") >&2 || die "$3: the restored store differs"
	grep -q 'ε 0.5 used of 2' <(ov advertisers budget --db "$2" acme) || die "$3: the restored store lost the session's spend"
	log "$3: restored; the same identifiers, advertisers and spend"
}

# SQLite: the online backup of the sqlite3 shell, in a private umask.
seed "$work/platform.db"
(umask 077 && sqlite3 "$work/platform.db" ".backup '$work/backup.db'")
[ "$(stat -c %a "$work/backup.db")" = 600 ] || die "backup.db is not 0600"
install -m 0600 "$work/backup.db" "$work/restored.db"
check "$work/platform.db" "$work/restored.db" SQLite

# PostgreSQL: pg_dump of the store's schema, pg_restore into another
# database.
psql "$OVERLAP_TEST_POSTGRES" -q -c "CREATE SCHEMA $schema" >/dev/null
dsn="$(with_param "$OVERLAP_TEST_POSTGRES" "search_path=$schema")"
seed "$dsn"
pg_dump --format=custom --schema="$schema" --file="$work/overlap.dump" "$OVERLAP_TEST_POSTGRES"
psql "$OVERLAP_TEST_POSTGRES" -q -c "CREATE DATABASE $db_restore" >/dev/null
restore_url="${OVERLAP_TEST_POSTGRES%%\?*}"
restore_url="${restore_url%/*}/$db_restore"
case "$OVERLAP_TEST_POSTGRES" in *\?*) restore_url="$restore_url?${OVERLAP_TEST_POSTGRES#*\?}" ;; esac
pg_restore --no-owner --dbname="$restore_url" "$work/overlap.dump"
check "$dsn" "$(with_param "$restore_url" "search_path=$schema")" PostgreSQL
