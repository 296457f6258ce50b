#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the psi/store tests and prints one
# line on stdout:
#
#	export OVERLAP_TEST_POSTGRES=postgres://overlap:PASSWORD@127.0.0.1:PORT/overlap?sslmode=disable
#
# Usage:
#
#	eval "$(bash .ci/postgres.sh)"   # install if missing, init, start (or reuse)
#	bash .ci/postgres.sh stop        # stop the server and delete its data
#
# Everything but that line goes to stderr. The server listens on 127.0.0.1
# only, on OVERLAP_PG_PORT (default 55432) or the next free port, with its
# data under ${TMPDIR:-/tmp}/overlap-postgres. Re-running reuses a running
# server, restarts a stopped one, and only initializes when there is none.
# Run as root, the server runs as the postgres user. Debian/Ubuntu only.
set -euo pipefail

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

base="${TMPDIR:-/tmp}/overlap-postgres"
data="$base/data"
state="$base/env" # PORT=... PASSWORD=... from the run that initialized $data
db=overlap
user=overlap

# as runs a command as the server's owner: postgres when we are root.
as() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

find_bin() {
	local d
	d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
	[ -n "$d" ] && [ -x "$d/initdb" ] && printf '%s\n' "$d"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

bin="$(find_bin || true)"

if [ "${1:-}" = stop ]; then
	if [ -n "$bin" ] && [ -f "$data/PG_VERSION" ]; then
		as "$bin/pg_ctl" -D "$data" -m fast -w stop >&2 || true
	fi
	rm -rf "$base"
	log "stopped and removed $base"
	exit 0
fi

if [ -z "$bin" ]; then
	[ "$(id -u)" -eq 0 ] || die "postgresql is not installed and we are not root (apt-get install -y postgresql)"
	log "installing postgresql"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2
	apt-get install -y postgresql >&2
	bin="$(find_bin)" || die "initdb not found under /usr/lib/postgresql/*/bin after install"
fi
log "using $bin"

mkdir -p "$base"
if [ "$(id -u)" -eq 0 ]; then
	chown postgres: "$base"
	as test -w "$base" || die "user postgres cannot write $base; set TMPDIR to a directory it can reach (e.g. /tmp)"
fi

port=""
password=""
if [ -f "$state" ] && [ -f "$data/PG_VERSION" ]; then
	# shellcheck disable=SC1090
	. "$state"
	port="$PORT"
	password="$PASSWORD"
else
	rm -rf "$data"
	port="${OVERLAP_PG_PORT:-55432}"
	for _ in $(seq 1 100); do
		port_in_use "$port" || break
		port=$((port + 1))
	done
	port_in_use "$port" && die "no free port from ${OVERLAP_PG_PORT:-55432}"
	password="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
	pwfile="$base/pwfile"
	(umask 077 && printf '%s\n' "$password" >"$pwfile")
	[ "$(id -u)" -eq 0 ] && chown postgres: "$pwfile"
	log "initdb in $data"
	# Password auth over TCP; the Unix socket lives in the 0700 data dir.
	as "$bin/initdb" -D "$data" -U "$user" --pwfile="$pwfile" \
		--auth-host=scram-sha-256 --auth-local=trust \
		-E UTF8 --locale=C.UTF-8 --no-sync >&2 ||
		as "$bin/initdb" -D "$data" -U "$user" --pwfile="$pwfile" \
			--auth-host=scram-sha-256 --auth-local=trust \
			-E UTF8 --locale=C --no-sync >&2
	rm -f "$pwfile"
	(umask 077 && printf 'PORT=%s\nPASSWORD=%s\n' "$port" "$password" >"$state")
fi

if as "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
	log "server already running on port $port"
else
	port_in_use "$port" && die "port $port is taken by another process; run '$0 stop' and retry"
	log "starting server on 127.0.0.1:$port"
	as "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$data -c max_connections=200" \
		start >&2 || { tail -n 20 "$data/server.log" >&2 || true; die "server did not start"; }
fi

for _ in $(seq 1 60); do
	as "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
	sleep 0.5
done
as "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" || die "server on port $port is not ready"

# Create the database over the socket (trust), once.
psql=(as "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$data" -p "$port" -U "$user" -d postgres)
if [ -z "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
	log "creating database $db"
	"${psql[@]}" -c "CREATE DATABASE $db" >&2
fi

log "ready; stop with: bash $0 stop"
printf 'export OVERLAP_TEST_POSTGRES=%s\n' "postgres://$user:$password@127.0.0.1:$port/$db?sslmode=disable"
