#!/usr/bin/env bash
# Test services on loopback, installed and started by the project itself (no Docker here):
# PostgreSQL 15 with pgvector (built from Debian's source package, since Debian 12 ships no
# pgvector binary) on 127.0.0.1:55432, moto's S3 server (from PyPI, in a venv) on
# 127.0.0.1:55055 with the bucket `navigator-test`, and Redis on 127.0.0.1:56379.
#
#   scripts/services.sh start   install what is missing, start what is stopped (idempotent);
#                               prints the export lines the tests read
#   scripts/services.sh env     print the export lines if the services are running
#   scripts/services.sh stop    stop the services and delete their data
#   scripts/services.sh pg-stop / pg-start
#                               stop or start PostgreSQL alone, keeping its data (restart tests)
#
# Everything lives under $NAVIGATOR_SERVICES_DIR (default /var/tmp/navigator-services). PostgreSQL
# refuses to run as root, so the cluster runs as the `postgres` user. Only loopback addresses are
# used. Run as root (it installs Debian packages); CI runs as root.
set -euo pipefail

readonly DIR="${NAVIGATOR_SERVICES_DIR:-/var/tmp/navigator-services}"
readonly PG_PORT="${NAVIGATOR_PG_PORT:-55432}"
readonly PG_VERSION=15
readonly PG_BIN="/usr/lib/postgresql/$PG_VERSION/bin"
readonly PG_DATA="$DIR/pg/data"
readonly PG_SOCK="$DIR/pg/sock"
readonly PG_LOG="$DIR/pg/postgres.log"
readonly PG_TLS="$DIR/pg/tls"
readonly PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
readonly S3_PORT="${NAVIGATOR_S3_PORT:-55055}"
readonly S3_URL="http://127.0.0.1:$S3_PORT"
readonly S3_BUCKET=navigator-test
readonly MOTO_VENV="$DIR/moto-venv"
readonly MOTO_PID="$DIR/moto/moto.pid"
readonly MOTO_LOG="$DIR/moto/moto.log"

log() { echo "services: $*" >&2; }

as_postgres() { runuser -u postgres -- "$@"; }

apt_updated=0
apt_install() {
    if [[ $apt_updated == 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

install_postgres() {
    if [[ ! -x "$PG_BIN/postgres" ]]; then
        log "installing postgresql-$PG_VERSION"
        apt_install "postgresql-$PG_VERSION"
    fi
    if [[ ! -f "/usr/share/postgresql/$PG_VERSION/extension/vector.control" ]]; then
        install_pgvector
    fi
}

# Builds pgvector from Debian's source package (trixie's, which builds against PostgreSQL 15)
# with private apt lists, leaving /etc/apt untouched.
install_pgvector() {
    log "building pgvector from Debian's source package"
    apt_install "postgresql-server-dev-$PG_VERSION" build-essential dpkg-dev
    local work
    work="$(mktemp -d)"
    mkdir -p "$work/apt/lists/partial" "$work/apt/etc" "$work/apt/cache/archives/partial"
    cat > "$work/apt/etc/extra.sources" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    local apto=(-o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$work/apt/etc"
                -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache")
    apt-get "${apto[@]}" update -qq >&2
    (cd "$work" && apt-get "${apto[@]}" source --download-only pgvector >&2)
    (cd "$work" && dpkg-source -x pgvector_*.dsc src >&2)
    make -C "$work/src" PG_CONFIG="$PG_BIN/pg_config" -j2 >&2
    make -C "$work/src" PG_CONFIG="$PG_BIN/pg_config" install >&2
    rm -rf "$work"
}

pg_running() {
    [[ -f "$PG_DATA/PG_VERSION" ]] && as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

# A throwaway CA and a server certificate for 127.0.0.1/localhost, so the tests can check TLS to
# PostgreSQL (verify-full against the CA). Deleted with the cluster on stop.
make_pg_tls() {
    [[ -f "$PG_TLS/server.crt" ]] && return
    mkdir -p "$PG_TLS"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -keyout "$PG_TLS/ca.key" -out "$PG_TLS/ca.crt" -subj "/CN=navigator-test-ca" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$PG_TLS/server.key" -out "$PG_TLS/server.csr" -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
        > "$PG_TLS/server.ext"
    openssl x509 -req -in "$PG_TLS/server.csr" -CA "$PG_TLS/ca.crt" -CAkey "$PG_TLS/ca.key" \
        -CAcreateserial -days 30 -extfile "$PG_TLS/server.ext" -out "$PG_TLS/server.crt" 2>/dev/null
    chmod 600 "$PG_TLS/server.key" "$PG_TLS/ca.key"
    chmod 644 "$PG_TLS/ca.crt" "$PG_TLS/server.crt"
}

start_postgres() {
    if pg_running; then
        return
    fi
    mkdir -p "$DIR/pg" "$PG_SOCK"
    make_pg_tls
    chown -R postgres:postgres "$DIR/pg"
    if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
        log "creating a PostgreSQL cluster in $PG_DATA"
        as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 >/dev/null
    fi
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT (TLS available)"
    # fsync off: a test cluster, deleted on stop; durability is not what these tests measure.
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start \
        -o "-p $PG_PORT -k $PG_SOCK -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c ssl=on -c ssl_cert_file=$PG_TLS/server.crt -c ssl_key_file=$PG_TLS/server.key" >/dev/null
    PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" "$PG_URL" -qAt -c "CREATE EXTENSION IF NOT EXISTS vector" >/dev/null
}

install_moto() {
    if [[ -x "$MOTO_VENV/bin/moto_server" ]]; then
        return
    fi
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        log "installing python3-venv"
        apt_install python3-venv
    fi
    log "installing moto[server] into $MOTO_VENV"
    rm -rf "$MOTO_VENV"
    python3 -m venv "$MOTO_VENV" >&2
    "$MOTO_VENV/bin/pip" install -q "moto[server]" >&2
}

moto_running() {
    [[ -f "$MOTO_PID" ]] && kill -0 "$(cat "$MOTO_PID")" 2>/dev/null
}

start_moto() {
    if ! moto_running; then
        mkdir -p "$DIR/moto"
        log "starting moto S3 on 127.0.0.1:$S3_PORT"
        # Its own session, so it outlives the shell that started it (like pg_ctl's postgres);
        # `stop` ends it by pid.
        setsid "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" \
            >"$MOTO_LOG" 2>&1 </dev/null &
        echo $! > "$MOTO_PID"
        local i
        for i in $(seq 1 60); do
            if curl -fs -o /dev/null "$S3_URL/" 2>/dev/null; then break; fi
            if ! moto_running; then log "moto exited; see $MOTO_LOG"; exit 1; fi
            sleep 0.5
        done
        if ! curl -fsS -o /dev/null "$S3_URL/"; then log "moto did not answer; see $MOTO_LOG"; exit 1; fi
    fi
    # Idempotent: creating a bucket that exists is not an error in us-east-1.
    curl -fsS -o /dev/null -X PUT "$S3_URL/$S3_BUCKET"
}

stop_moto() {
    if moto_running; then
        kill "$(cat "$MOTO_PID")" 2>/dev/null || true
        log "stopped moto"
    fi
    rm -rf "$DIR/moto"
}

print_pg_env() {
    echo "export NAVIGATOR_TEST_DATABASE_URL=$PG_URL"
    echo "export NAVIGATOR_TEST_PG_CA=$PG_TLS/ca.crt"
}

print_s3_env() {
    echo "export NAVIGATOR_TEST_S3_ENDPOINT=$S3_URL"
    echo "export NAVIGATOR_TEST_S3_BUCKET=$S3_BUCKET"
}

readonly REDIS_PORT="${NAVIGATOR_REDIS_PORT:-56379}"
readonly REDIS_DIR="$DIR/redis"

redis_running() {
    command -v redis-cli >/dev/null 2>&1 && redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1
}

install_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        log "installing redis-server"
        apt_install redis-server redis-tools
    fi
}

start_redis() {
    if redis_running; then
        return
    fi
    mkdir -p "$REDIS_DIR"
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    # No persistence: a cache for tests. --daemonize detaches it from this shell.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --dir "$REDIS_DIR" --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
        --daemonize yes >/dev/null
    local i
    for i in $(seq 1 50); do
        redis_running && return
        sleep 0.1
    done
    log "Redis did not answer; see $REDIS_DIR/redis.log"
    exit 1
}

stop_redis() {
    if redis_running; then
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
        log "stopped Redis"
    fi
    rm -rf "$REDIS_DIR"
}

print_redis_env() {
    echo "export NAVIGATOR_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
}

case "${1:-}" in
    start)
        install_postgres
        start_postgres
        log "pgvector $("$PG_BIN/psql" "$PG_URL" -qAt -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'")"
        install_moto
        start_moto
        install_redis
        start_redis
        print_pg_env
        print_s3_env
        print_redis_env
        ;;
    env)
        running=0
        if pg_running; then print_pg_env; running=1; fi
        if moto_running; then print_s3_env; running=1; fi
        if redis_running; then print_redis_env; running=1; fi
        if [[ $running == 0 ]]; then log "not running"; exit 1; fi
        ;;
    pg-stop)
        # For restart tests: stop PostgreSQL but keep its data (pg-start brings it back).
        if pg_running; then
            as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
            log "paused PostgreSQL"
        fi
        ;;
    pg-start)
        start_postgres
        ;;
    stop)
        stop_redis
        stop_moto
        if pg_running; then
            as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
            log "stopped PostgreSQL"
        fi
        rm -rf "$DIR/pg"
        ;;
    *)
        echo "usage: $0 start|env|stop|pg-stop|pg-start" >&2
        exit 2
        ;;
esac
