#!/usr/bin/env bash
# Builds the overlap image from deploy/Dockerfile with podman and runs it:
# two containers of the image, as replicas over the CI's PostgreSQL, each
# serving a private-mode match of the sample data to the host's overlap
# match, then four more through HAProxy with deploy/compose/haproxy.cfg,
# two of them after one replica stopped, then stopped with SIGTERM
# (graceful drain).
#
# Usage (from .ci/run, after postgres.sh exported OVERLAP_TEST_POSTGRES):
#
#	bash .ci/deploy.sh
#
# No registry is reachable here, so the build stage's GO_IMAGE is made
# locally from this machine's Go toolchain, busybox and CA certificates,
# and the build reads the host's module cache (GOPROXY=off); the final
# stage is FROM scratch and needs no image. Podman runs with runc and no
# default ulimits: crun cannot set up cgroups in this machine's hybrid
# cgroup mode, and the container may not raise RLIMIT_NOFILE or NPROC.
# Debian only; installs podman, runc, busybox-static and haproxy when
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'deploy.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

: "${OVERLAP_TEST_POSTGRES:?run eval \"\$(bash .ci/postgres.sh)\" first}"

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v haproxy >/dev/null || need+=(haproxy)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || die "missing ${need[*]} and not root (apt-get install -y ${need[*]})"
	log "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/overlap-deploy.XXXXXX")"
containers=()
cleanup() {
	for c in "${containers[@]}"; do podman rm -f "$c" >/dev/null 2>&1 || true; done
	rm -rf "$work"
}
trap cleanup EXIT

printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n' >"$work/containers.conf"
export CONTAINERS_CONF="$work/containers.conf"

# The build stage's image: Go, busybox as /bin/sh, CA certificates.
goroot="$(go env GOROOT)"
gover="$(go env GOVERSION)"
goimage="localhost/overlap-ci-go:$gover"
if ! podman image exists "$goimage"; then
	log "making $goimage from $goroot"
	root="$work/goroot"
	mkdir -p "$root/bin" "$root/usr/local" "$root/etc/ssl/certs" "$root/tmp" "$root/go"
	chmod 1777 "$root/tmp"
	cp /bin/busybox "$root/bin/busybox"
	for cmd in sh mkdir echo cat ls rm cp; do ln -s busybox "$root/bin/$cmd"; done
	cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
	cp -a "$goroot" "$root/usr/local/go"
	tar -C "$root" -cf "$work/goroot.tar" .
	podman import --quiet --change 'ENV PATH=/usr/local/go/bin:/bin' --change 'ENV GOPATH=/go' --change 'ENV HOME=/root' \
		"$work/goroot.tar" "$goimage" >/dev/null
	rm -rf "$root" "$work/goroot.tar"
fi

image=localhost/overlap:ci
log "building $image from deploy/Dockerfile"
mkdir -p "$(go env GOMODCACHE)" "$(go env GOCACHE)"
podman build --quiet -f deploy/Dockerfile -t "$image" \
	--build-arg GO_IMAGE="$goimage" --build-arg GOPROXY=off \
	-v "$(go env GOMODCACHE):/go/pkg/mod:ro" -v "$(go env GOCACHE):/root/.cache/go-build" . >/dev/null
# The build stage and the image this one replaced are left untagged: drop
# them (each build stage holds the Go toolchain, about 330 MB).
podman image prune -f >/dev/null

# The image: non-root, no shell, a static binary that runs.
user="$(podman image inspect --format '{{.Config.User}}' "$image")"
[ "$user" = "65532:65532" ] || die "image user is '$user', want 65532:65532"
if podman run --rm --entrypoint /bin/sh "$image" -c true >/dev/null 2>&1; then
	die "the image has a shell"
fi
podman run --rm "$image" version >&2
log "image size $(podman image inspect --format '{{.Size}}' "$image") bytes"

# A platform on a fresh schema of the CI's PostgreSQL, set up with the
# host's overlap.
schema="overlap_deploy_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
psql "$OVERLAP_TEST_POSTGRES" -q -c "CREATE SCHEMA $schema" >/dev/null
trap 'psql "$OVERLAP_TEST_POSTGRES" -q -c "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1 || true; cleanup' EXIT
case "$OVERLAP_TEST_POSTGRES" in *\?*) dsn="$OVERLAP_TEST_POSTGRES&search_path=$schema" ;; *) dsn="$OVERLAP_TEST_POSTGRES?search_path=$schema" ;; esac
go build -o "$work/overlap" ./cmd/overlap
ov() { "$work/overlap" "$@"; }
ov ids import --db "$dsn" --region US testdata/sample/platform_identifiers.csv >/dev/null
ov consent import --db "$dsn" testdata/sample/platform_consent.csv >/dev/null
ov advertisers add --db "$dsn" --key-file "$work/acme.key" --privacy-budget 4 acme >/dev/null

# A certificate for 127.0.0.1, readable by the container's user.
mkdir -p "$work/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$work/tls/key.pem" -out "$work/tls/cert.pem" 2>/dev/null
chown -R 65532:65532 "$work/tls"
chmod 0400 "$work/tls/key.pem"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
servers=()
for i in 1 2; do
	port="$(free_port)" admin="$(free_port)"
	name="overlap-ci-$i-$$"
	podman run -d --name "$name" --network host -v "$work/tls:/tls:ro" \
		-e OVERLAP_DB="$dsn" -e OVERLAP_CERT=/tls/cert.pem -e OVERLAP_KEY=/tls/key.pem \
		-e OVERLAP_ADDR="127.0.0.1:$port" -e OVERLAP_ADMIN_ADDR="127.0.0.1:$admin" -e OVERLAP_WORKERS=1 \
		"$image" >/dev/null
	containers+=("$name")
	ok=""
	for _ in $(seq 1 100); do
		if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/readyz" || true)" = 200 ]; then ok=1; break; fi
		sleep 0.1
	done
	[ -n "$ok" ] || { podman logs "$name" >&2; die "replica $i not ready"; }
	# The sample list has 6 malformed rows on purpose: exit status 3.
	status=0
	out="$(ov match --server "127.0.0.1:$port" --api-key-file "$work/acme.key" --ca "$work/tls/cert.pem" \
		--kind email testdata/sample/advertiser_customers.csv 2>/dev/null)" || status=$?
	[ "$status" -eq 3 ] || die "match against replica $i exited $status"
	grep -q '^overlap: .*of 2100 identifiers' <<<"$out" || die "match against replica $i printed: $out"
	log "replica $i (container $name, 127.0.0.1:$port): $(head -n 1 <<<"$out")"
	servers+=("$port:$admin")
done

# The compose file's load balancer, deploy/compose/haproxy.cfg, run on the
# host in front of the two containers: its addresses and files rewritten
# to theirs, everything else as committed. Matches through it, also
# right after one replica stopped.
lbport="$(free_port)"
mkdir -p "$work/lb"
cat "$work/tls/cert.pem" "$work/tls/key.pem" >"$work/lb/lb.pem"
chmod 0600 "$work/lb/lb.pem"
sed -e "s|bind :8443 |bind 127.0.0.1:$lbport |" \
	-e "s|/usr/local/etc/haproxy/tls/lb.pem|$work/lb/lb.pem|" \
	-e "s|/usr/local/etc/haproxy/tls/replicas-ca.crt|$work/tls/cert.pem|" \
	-e "s|^\( *server overlap-a\) .*|\1 127.0.0.1:${servers[0]%%:*} port ${servers[0]##*:} verifyhost localhost|" \
	-e "s|^\( *server overlap-b\) .*|\1 127.0.0.1:${servers[1]%%:*} port ${servers[1]##*:} verifyhost localhost|" \
	deploy/compose/haproxy.cfg >"$work/lb/haproxy.cfg"
grep -q "127.0.0.1:${servers[1]%%:*}" "$work/lb/haproxy.cfg" || die "haproxy.cfg: the servers were not rewritten"
haproxy -c -q -f "$work/lb/haproxy.cfg" || die "haproxy rejects deploy/compose/haproxy.cfg"
haproxy -db -f "$work/lb/haproxy.cfg" >"$work/lb/log" 2>&1 &
lbpid=$!
trap 'kill "$lbpid" 2>/dev/null || true; psql "$OVERLAP_TEST_POSTGRES" -q -c "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1 || true; cleanup' EXIT
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$lbport") 2>/dev/null && break; sleep 0.1; done
sleep 2 # the first health checks (inter 2s, rise 2 from the start: up at once)
lbmatch() {
	local status=0 out
	out="$(ov match --server "127.0.0.1:$lbport" --api-key-file "$work/acme.key" --ca "$work/tls/cert.pem" \
		--kind email testdata/sample/advertiser_customers.csv 2>"$work/lb/match.err")" || status=$?
	[ "$status" -eq 3 ] || { cat "$work/lb/log" "$work/lb/match.err" >&2; die "match through haproxy exited $status ($1)"; }
	grep -q '^overlap: .*of 2100 identifiers' <<<"$out" || die "match through haproxy printed: $out"
	log "through haproxy (127.0.0.1:$lbport), $1: $(head -n 1 <<<"$out")"
}
lbmatch "both replicas up"
lbmatch "both replicas up"
# A rolling restart's first step: replica 1 stops (SIGTERM, drained)
# before HAProxy's health check notices; sessions go to replica 2.
podman stop --time 30 "${containers[0]}" >/dev/null
lbmatch "replica 1 just stopped"
lbmatch "replica 1 just stopped"
kill "$lbpid" 2>/dev/null || true
grep -v "^\[" "$work/lb/log" | sed "s/^/haproxy: /" | tail -n 12 >&2

# SIGTERM: each replica drains and stops cleanly; two private sessions
# are in the audit log, once each.
for name in "${containers[@]}"; do
	podman stop --time 30 "$name" >/dev/null
	podman logs "$name" 2>&1 | grep -q '^overlap: stopped' || { podman logs "$name" >&2; die "$name did not stop cleanly"; }
	[ "$(podman inspect --format '{{.State.ExitCode}}' "$name")" = 0 ] || die "$name exited non-zero"
done
sessions="$(psql "$OVERLAP_TEST_POSTGRES" -tA -c "SELECT count(*) FROM $schema.sessions WHERE result = 'ok' AND mode = 'private'")"
[ "$sessions" = 6 ] || die "$sessions private sessions ok in the audit log, want 6"
log "ok: image built; two replicas served, directly and through haproxy, and drained"
