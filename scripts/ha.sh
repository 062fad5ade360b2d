#!/usr/bin/env bash
# The replica test (issue 17 point 5): three converter replicas sharing one PostgreSQL state
# store, behind HAProxy with the shipped configuration (deploy/haproxy/haproxy.cfg, the
# file itself: checked with `haproxy -c`, then run), under mixed SOAP load over HTTPS with
# the dev client certificates for HA_SECONDS, while one replica at a time is killed with
# SIGKILL every HA_KILL_EVERY seconds (round robin) and started again on the same port and
# data dir HA_DOWN_SECONDS later, and PostgreSQL is restarted once around the middle
# (`pg_ctl stop -m fast`, HA_PG_DOWN_SECONDS down, start). Then it proves, and exits
# non-zero otherwise, that
#   (a) every acknowledged create (a SOAP 200 with its id) is in REST exactly once, and no
#       retry or deliberate second send made a second registration;
#   (b) /api/migration on EVERY replica counts, per organisation, service and operation, the
#       calls the replicas answered, plus at most the calls that were in flight on a killed
#       replica, 3 s after the last call; and all replicas show the same numbers;
#   (c) every WSRM message the acknowledged creates should give each of the two subscribers
#       (jobcenter 1:101, a-kasse 2:12; mappings/wsrm-routing.toml) came in a terminated
#       sequence, none twice (no MessageIdentifier in two terminated sequences), nothing
#       else came, and the queues were drained at the end;
#   (d) every failed attempt (a connection error, HAProxy's 502/503, a 900523 or 900532
#       fault), counted by cause, was in flight on a killed replica or fell in the
#       PostgreSQL restart window; any other failure fails the run;
#   and that while PostgreSQL is down a replica's /readyz answers 503 naming the state store,
#   and every replica's 200 again after it is back, without a restart; and, after the load,
#   that HAProxy's front refuses a client without a certificate, passes a 4 KB certificate
#   with a 60 KB request, and replaces a client's own X-Client-Cert and X-Forwarded-Host (a
#   forged STAR certificate header is 900511)
# (scripts/ha/driver.py says how each is checked, and how the client retries).
#
# Before the replicas start, the state store's contract suite (tests/state_store.rs) runs
# against the same PostgreSQL (TLS, scram): a role `vos_test` allowed to CREATE DATABASE and
# its database `vos_test` are made, and `cargo test --locked --test state_store` runs with
# VOS_TEST_PG_URL=postgres://vos_test:...@127.0.0.1:<port>/vos_test?sslmode=require and
# VOS_TEST_PG_CA=<the PostgreSQL CA>; each test makes and drops a scratch database of its
# own. Any failure fails the run, and so does any `pg::` test that did not say it ran on
# PostgreSQL (a skip): the output (store-test.log) is checked against the suite's list.
#
# Setup, every process of its own on loopback, in a temporary folder:
#   - PostgreSQL (Debian's, installed with apt-get when missing): its own cluster, run as the
#     unprivileged system user `vosha` (created when missing; PostgreSQL refuses root) or as
#     the caller when not root, on a free port, TLS only (a CA and a server certificate for
#     127.0.0.1 and localhost made with openssl; plain TCP is refused), scram passwords;
#   - `vos-converter dev-certs`: the test CA, HAProxy's server certificate, the client
#     certificates (jobcenter-101, akasse-12, star) and agreements.toml;
#   - `vos-converter backend --dev` (fresh database, seeded with HA_PERSONS persons of
#     municipality 101, half of them members of a-kasse 12), delivering WSB events over HTTPS
#     to HAProxy's /wsb with star.pem (CVR 55570117);
#   - three `vos-converter serve` replicas: --identity proxy --trusted-proxy 127.0.0.1/32
#     --client-cert-header X-Client-Cert, the dev CA, CRL and agreements,
#     VOS_STATE_URL=postgres://...?sslmode=require (in the environment, not a flag `ps`
#     shows) and --state-ca <the PostgreSQL CA>, their own --data-dir,
#     WSRM subscribers 1:101 and 2:12, wsb_receiver_url https://localhost:<front>/wsb,
#     wsb_sender_cvr 55570117, a 10 s WSRM sequence timeout (a sequence whose CreateSequence
#     answer was lost is released in time for the final drain);
#   - HAProxy (Debian's, installed when missing) with deploy/haproxy/haproxy.cfg, its
#     variables pointing at the above; the load starts once it shows every replica UP.
# Besides, when systemd-analyze is there (or can be installed with apt-get), the units of
# deploy/systemd/ are checked with `systemd-analyze verify` (any warning fails) and their
# exposure scored with `systemd-analyze security --offline=yes`, in a scratch root with the
# binary; without it that check is skipped and says so (it needs no running systemd, so it
# works in a container).
#
# Output: a table, target/ha/summary.json (calls by outcome and replica, creates, retries,
# kills, the PostgreSQL restart, failed attempts by cause and attribution, /api/migration
# against the answered calls, WSRM expected/delivered per subscriber, HAProxy's UP/DOWN
# changes, verdicts), target/ha/haproxy-log-not-2xx.txt; on failure the logs' ends in
# target/ha/failed-logs/.
#
# Installs with apt-get, when missing (CI runs as root on a possibly new Debian 12 machine):
# python3, openssl, postgresql, haproxy, and systemd (only for systemd-analyze); `apt-get
# update` before the first install. Downloads nothing else. Builds with `cargo
# build` (debug) unless HA_BIN is given, and the contract suite with `cargo test --no-run`
# (debug) unless HA_SKIP_STORE_TEST=1 (with HA_BIN too). Stops only the processes it
# started, by pid, however it ends (failure, Ctrl-C); never waits without a time limit.
#
# Environment:
#   HA_SECONDS=300        how long the load runs
#   HA_KILL_EVERY         seconds between replica kills (default 60; a third of the run when
#                         it is shorter than 3 minutes, so that a 60 s run kills twice)
#   HA_DOWN_SECONDS=1.5   how long a killed replica stays dead before its restart
#   HA_PG_RESTART_AT      second of the PostgreSQL restart (default: the middle of the run;
#                         0: none)
#   HA_PG_DOWN_SECONDS=3  how long PostgreSQL stays stopped (pg_ctl stop -m fast, then start):
#                         long enough for HAProxy to take every replica out (two failed
#                         /readyz a second apart); 0: `pg_ctl restart -m fast` (well under a
#                         second here, so no replica goes out)
#   HA_WORKERS=6          client threads making creates and reads (plus the 2 subscribers)
#   HA_RATE=50            creates and reads a second, all workers together (WSB delivers one
#                         event at a time; far above this the queues lag and the drain is long)
#   HA_PERSONS=60         fictitious persons
#   HA_DRAIN_SECONDS=60   at most this long for the subscribers to drain their queues after
#                         the load
#   HA_BIN=PATH           the vos-converter binary to use (no build; the contract suite is
#                         still built and run, from this checkout, unless HA_SKIP_STORE_TEST=1)
#   HA_SKIP_STORE_TEST=1  do not run tests/state_store.rs against the PostgreSQL (says so)
#   HA_RUST_LOG=info      RUST_LOG of the converter processes (their logs go to files)
#   HA_OUT=target/ha      where the results go
#   HAPROXY=haproxy       the haproxy binary
#   HA_PG_BIN=DIR         the folder of PostgreSQL's pg_ctl, initdb and postgres
#   HA_KEEP_TMP=1         leave the temporary folder (every log, the PostgreSQL cluster)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/scripts/ha"
OUT="${HA_OUT:-$ROOT/target/ha}"
BIN="${HA_BIN:-$ROOT/target/debug/vos-converter}"
SECONDS_TOTAL="${HA_SECONDS:-300}"
DOWN_SECONDS="${HA_DOWN_SECONDS:-1.5}"
PG_DOWN_SECONDS="${HA_PG_DOWN_SECONDS:-3}"
WORKERS="${HA_WORKERS:-6}"
RATE="${HA_RATE:-50}"
PERSONS="${HA_PERSONS:-60}"
DRAIN_SECONDS="${HA_DRAIN_SECONDS:-60}"
RUST_LOG_LEVEL="${HA_RUST_LOG:-info}"
HAPROXY="${HAPROXY:-haproxy}"
HAPROXY_CFG="$ROOT/deploy/haproxy/haproxy.cfg"
REPLICAS=3
SEQUENCE_TIMEOUT=10
PG_OS_USER=vosha

TMP_DIR=""
PG_BIN=""
PG_DATA=""
PG_PORT=""
PG_PID=""
STATE_URL=""
BACKEND_PID=""
BACKEND_URL=""
HAPROXY_PID=""
FRONT_PORT=""
STATS_PORT=""
FRONT_URL=""
STATS_URL=""
DRIVER_PID=""
declare -a REPLICA_PID=() REPLICA_PORT=() REPLICA_STARTS=()
EVENTS=""

SCRIPT_NAME=ha
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

# as_pg CMD... -- CMD as PostgreSQL's OS user (root cannot run it).
as_pg() {
    if [[ "$(id -u)" == 0 ]]; then
        (cd / && runuser -u "$PG_OS_USER" -- "$@")
    else
        "$@"
    fi
}

stop_postgres() {
    [[ -n "$PG_PID" ]] && kill -0 "$PG_PID" 2>/dev/null || return 0
    info "stopping PostgreSQL (pid $PG_PID)"
    # pg_ctl waits for the postmaster to exit; only when that fails, KILL it (a postmaster
    # that exited may linger as a zombie nobody reaps in a container: not checked by kill -0).
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 20 stop >/dev/null 2>&1 &&
        kill -0 "$PG_PID" 2>/dev/null; then
        info "PostgreSQL (pid $PG_PID) did not stop: KILL"
        kill -KILL "$PG_PID" 2>/dev/null || true
    fi
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_process "$DRIVER_PID" driver 5
    stop_process "$HAPROXY_PID" haproxy 5
    local i
    for i in "${!REPLICA_PID[@]}"; do
        stop_process "${REPLICA_PID[$i]}" "replica r$((i + 1))" 30
    done
    stop_process "$BACKEND_PID" backend
    stop_postgres
    if [[ -n "$TMP_DIR" && -d "$TMP_DIR" ]]; then
        if ((rc != 0)); then
            mkdir -p "$OUT/failed-logs"
            local f
            for f in "$TMP_DIR"/*.stdout "$TMP_DIR"/*.stderr "$TMP_DIR"/*.log "$TMP_DIR"/*.json*; do
                [[ -f "$f" ]] && tail -n 2000 "$f" >"$OUT/failed-logs/${f##*/}"
            done
            info "the logs' last 2000 lines: ${OUT#"$ROOT"/}/failed-logs/"
        fi
        if [[ "${HA_KEEP_TMP:-}" == 1 ]]; then
            info "HA_KEEP_TMP=1: everything is left in $TMP_DIR"
        else
            rm -rf "$TMP_DIR"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# find_pg_bin -- the folder with pg_ctl, initdb and postgres: HA_PG_BIN, the ones on PATH
# (resolved: /usr/local/bin may link to Debian's), or Debian's newest /usr/lib/postgresql/N/bin.
find_pg_bin() {
    local d
    for d in "${HA_PG_BIN:-}" \
        "$(dirname "$(readlink -f "$(command -v pg_ctl 2>/dev/null || echo /nonexistent)")")" \
        $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
        if [[ -n "$d" && -x "$d/pg_ctl" && -x "$d/initdb" && -x "$d/postgres" ]]; then
            printf '%s' "$d"
            return 0
        fi
    done
    return 1
}

# free_ports N -- N free loopback TCP ports, space-separated.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

now() { date +%s.%N; }

start_postgres() {
    PG_BIN="$(find_pg_bin)" || { apt_install postgresql && PG_BIN="$(find_pg_bin)"; } ||
        fail "no PostgreSQL (pg_ctl, initdb, postgres) and it could not be installed"
    info "PostgreSQL: $("$PG_BIN/postgres" --version) in $PG_BIN"
    if [[ "$(id -u)" == 0 ]]; then
        if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
            useradd --system --user-group --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin "$PG_OS_USER" || fail "could not create the system user $PG_OS_USER"
            info "created the system user $PG_OS_USER (PostgreSQL refuses to run as root)"
        fi
        PG_OS_USER_NAME="$PG_OS_USER"
    else
        PG_OS_USER_NAME="$(id -un)"
    fi
    local pg="$TMP_DIR/pg" tls="$TMP_DIR/pg-tls"
    mkdir -p "$pg" "$tls"
    PG_DATA="$pg/data"
    # The server's TLS: a CA (what the replicas trust, --state-ca) and a server certificate
    # for 127.0.0.1 and localhost signed by it (webpki refuses a CA certificate as the
    # server's own).
    (
        cd "$tls"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -subj "/CN=vos-ha PostgreSQL test CA" -keyout ca-key.pem -out ca.pem \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -subj "/CN=localhost" -keyout server-key.pem -out server.csr
        printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
            -extfile server.ext -out server.pem
    ) >"$TMP_DIR/openssl.log" 2>&1 || { cat "$TMP_DIR/openssl.log" >&2; fail "openssl could not make the PostgreSQL certificates"; }
    : >"$TMP_DIR/postgres.log"
    if [[ "$(id -u)" == 0 ]]; then
        chown -R "$PG_OS_USER" "$pg" "$TMP_DIR/postgres.log"
        chown "$PG_OS_USER" "$tls/server-key.pem" "$tls/server.pem"
        chmod 711 "$TMP_DIR" "$tls"
    fi
    chmod 600 "$tls/server-key.pem"
    local admin_pw app_pw
    admin_pw="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    app_pw="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    printf '%s\n' "$admin_pw" >"$pg/admin.pw"
    [[ "$(id -u)" == 0 ]] && chown "$PG_OS_USER" "$pg/admin.pw"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U vosha_admin --pwfile="$pg/admin.pw" -A scram-sha-256 \
        -E UTF8 --no-locale >"$TMP_DIR/initdb.log" 2>&1 || { tail -20 "$TMP_DIR/initdb.log" >&2; fail "initdb failed"; }
    PG_PORT="$(free_ports 1)"
    cat >>"$PG_DATA/postgresql.conf" <<EOF
# scripts/ha.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$pg'
ssl = on
ssl_cert_file = '$tls/server.pem'
ssl_key_file = '$tls/server-key.pem'
ssl_min_protocol_version = 'TLSv1.2'
max_connections = 100
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    # TLS only over TCP, passwords (scram) everywhere.
    cat >"$PG_DATA/pg_hba.conf" <<EOF
local   all all                scram-sha-256
hostssl all all 127.0.0.1/32   scram-sha-256
host    all all 0.0.0.0/0      reject
EOF
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$TMP_DIR/postgres.log" -w -t 60 start >/dev/null ||
        { tail -20 "$TMP_DIR/postgres.log" >&2; fail "PostgreSQL did not start within 60 s"; }
    PG_PID="$(head -n 1 "$PG_DATA/postmaster.pid")"
    PGPASSWORD="$admin_pw" timeout 30 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
        "host=127.0.0.1 port=$PG_PORT user=vosha_admin dbname=postgres sslmode=verify-full sslrootcert=$tls/ca.pem" \
        -c "CREATE ROLE vos LOGIN PASSWORD '$app_pw'" -c "CREATE DATABASE vos OWNER vos" \
        >"$TMP_DIR/psql.log" 2>&1 || { cat "$TMP_DIR/psql.log" >&2; fail "could not create the database (TLS, verify-full)"; }
    # Plain TCP is refused: the replicas' TLS is not optional.
    if PGPASSWORD="$app_pw" timeout 10 "$PG_BIN/psql" -X -q \
        "host=127.0.0.1 port=$PG_PORT user=vos dbname=vos sslmode=disable" -c 'select 1' >/dev/null 2>&1; then
        fail "PostgreSQL accepted a connection without TLS"
    fi
    STATE_URL="postgres://vos:$app_pw@127.0.0.1:$PG_PORT/vos?sslmode=require"
    info "PostgreSQL pid $PG_PID on 127.0.0.1:$PG_PORT as $PG_OS_USER_NAME (TLS only; data $PG_DATA)"
}

# restart_postgres ELAPSED -- PostgreSQL stopped (pg_ctl stop -m fast), kept down
# PG_DOWN_SECONDS, started again (with 0: pg_ctl restart -m fast). Meanwhile replica r3's
# /readyz must turn 503 naming the state store, and afterwards every replica's 200 again
# without a restart. One JSON line in events.jsonl.
restart_postgres() {
    local elapsed="$1" start stopped ready old="$PG_PID" down back="" i b
    start="$(now)"
    if [[ "$PG_DOWN_SECONDS" == 0 ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$TMP_DIR/postgres.log" -m fast -w -t 60 restart >/dev/null ||
            fail "pg_ctl restart failed (or PostgreSQL was not up again within 60 s)"
        stopped="$start"
        down='null'
    else
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null || fail "pg_ctl stop failed"
        stopped="$(now)"
        down="$(python3 "$HERE/driver.py" readyz --url "http://127.0.0.1:${REPLICA_PORT[2]}/readyz" \
            --status 503 --timeout "$PG_DOWN_SECONDS")"
        sleep "$(awk -v a="$stopped" -v b="$(now)" -v d="$PG_DOWN_SECONDS" 'BEGIN{r=d-(b-a); print (r>0?r:0)}')"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$TMP_DIR/postgres.log" -w -t 60 start >/dev/null ||
            fail "PostgreSQL did not start again within 60 s"
    fi
    ready="$(now)"
    PG_PID="$(head -n 1 "$PG_DATA/postmaster.pid")"
    for i in "${!REPLICA_PORT[@]}"; do
        b="$(python3 "$HERE/driver.py" readyz --url "http://127.0.0.1:${REPLICA_PORT[$i]}/readyz" --status 200 --timeout 30)"
        back+="${back:+,}{\"replica\":$((i + 1)),\"readyz\":$b}"
    done
    printf '{"type":"pg_restart","at_s":%d,"start":%s,"stopped":%s,"ready":%s,"down_s":%s,"old_pid":%d,"new_pid":%d,"readyz_down":%s,"readyz_back":[%s]}\n' \
        "$elapsed" "$start" "$stopped" "$ready" "$(awk -v a="$start" -v b="$ready" 'BEGIN{printf "%.2f", b-a}')" \
        "$old" "$PG_PID" "$down" "$back" >>"$EVENTS"
    info "PostgreSQL down at ${elapsed} s for $(awk -v a="$start" -v b="$ready" 'BEGIN{printf "%.2f", b-a}') s (pid $old -> $PG_PID); r3's /readyz meanwhile: ${down}"
}

# store_contract_test -- tests/state_store.rs against this PostgreSQL, as role vos_test
# (CREATEDB: each test makes and drops a scratch database) over TLS with the CA. Fails the
# run when a test fails, or when a `pg::` test of `--list` did not print its "ran on
# PostgreSQL" line (skipped: no URL reached it). Output in store-test.log.
store_contract_test() {
    if [[ "${HA_SKIP_STORE_TEST:-}" == 1 ]]; then
        info "SKIPPED: the state store contract suite (HA_SKIP_STORE_TEST=1)"
        return 0
    fi
    local log="$TMP_DIR/store-test.log" pw url listed ran
    pw="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    PGPASSWORD="$(cat "$TMP_DIR/pg/admin.pw")" timeout 30 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
        "host=127.0.0.1 port=$PG_PORT user=vosha_admin dbname=postgres sslmode=verify-full sslrootcert=$TMP_DIR/pg-tls/ca.pem" \
        -c "CREATE ROLE vos_test LOGIN CREATEDB PASSWORD '$pw'" -c "CREATE DATABASE vos_test OWNER vos_test" \
        >"$TMP_DIR/psql-store-test.log" 2>&1 ||
        { cat "$TMP_DIR/psql-store-test.log" >&2; fail "could not create the role and database vos_test"; }
    url="postgres://vos_test:$pw@127.0.0.1:$PG_PORT/vos_test?sslmode=require"
    info "state store contract: cargo test --test state_store against postgres://vos_test@127.0.0.1:$PG_PORT/vos_test (TLS); log: store-test.log"
    if ! (cd "$ROOT" && VOS_TEST_PG_URL="$url" VOS_TEST_PG_CA="$TMP_DIR/pg-tls/ca.pem" \
        timeout 600 cargo test --locked --test state_store -- --nocapture) >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        fail "the state store contract suite (tests/state_store.rs) failed against PostgreSQL (the end of store-test.log above)"
    fi
    listed="$(cd "$ROOT" && cargo test --locked --test state_store -- --list 2>/dev/null |
        sed -n 's/^\(pg::[A-Za-z0-9_]*\): test$/\1/p' | sort)"
    ran="$(sed -n 's/.*state_store: ran on PostgreSQL: \(pg::[A-Za-z0-9_]*\).*/\1/p' "$log" | sort -u)"
    if [[ -z "$listed" || "$listed" != "$ran" ]]; then
        tail -n 60 "$log" >&2
        printf 'listed pg:: tests:\n%s\nran on PostgreSQL:\n%s\n' "$listed" "$ran" >&2
        fail "the state store contract suite did not run every pg:: test on PostgreSQL (skipped?)"
    fi
    info "state store contract: $(grep -c . <<<"$ran") pg:: tests ran on PostgreSQL, $(grep -o 'test result: ok\. [0-9]* passed' "$log" | head -n 1 | grep -o '[0-9]*') tests passed"
}

start_backend() {
    mkdir -p "$TMP_DIR/backend"
    RUST_LOG="$RUST_LOG_LEVEL" NO_COLOR=1 "$TMP_DIR/vos-converter" backend --listen 127.0.0.1:0 \
        --db "$TMP_DIR/backend/vos-backend.db" --dev \
        --wsb-ca "$CERTS/ca.pem" --wsb-client-cert "$CERTS/star.pem" --wsb-client-key "$CERTS/star-key.pem" \
        --wsb-retry-initial-ms 200 --wsb-retry-max-ms 2000 \
        >"$TMP_DIR/backend.stdout" 2>"$TMP_DIR/backend.stderr" &
    BACKEND_PID=$!
    BACKEND_URL="$(listening_url "$BACKEND_PID" "$TMP_DIR/backend.stdout")"
    [[ -n "$BACKEND_URL" ]] || { tail -20 "$TMP_DIR/backend.stderr" >&2; fail "the backend did not say where it listens"; }
    info "backend pid $BACKEND_PID at $BACKEND_URL"
}

# start_replica I -- replica rI on its port and data dir; each start logs to its own files
# (replica-rI-N.stdout/.stderr). A port still held just after a kill is tried again for
# up to 10 s.
start_replica() {
    local i="$1" attempt log url
    local port="${REPLICA_PORT[$i]}"
    mkdir -p "$TMP_DIR/replica-r$((i + 1))"
    for attempt in $(seq 1 20); do
        REPLICA_STARTS[i]=$((${REPLICA_STARTS[$i]:-0} + 1))
        log="$TMP_DIR/replica-r$((i + 1))-${REPLICA_STARTS[$i]}"
        local -a state_env=()
        ((${#STATE_ARGS[@]} > 0)) && state_env=("VOS_STATE_URL=$STATE_URL")
        env "${state_env[@]}" RUST_LOG="$RUST_LOG_LEVEL" NO_COLOR=1 "$TMP_DIR/vos-converter" serve \
            --listen "127.0.0.1:$port" --rest-url "$BACKEND_URL" \
            --identity proxy --trusted-proxy 127.0.0.1/32 --client-cert-header X-Client-Cert \
            --client-ca "$CERTS/ca.pem" --client-crl "$CERTS/crl.pem" --agreements "$CERTS/agreements.toml" \
            --data-dir "$TMP_DIR/replica-r$((i + 1))" --cutover 2099-01-01 \
            --wsrm-subscriber 1:101 --wsrm-subscriber 2:12 \
            --wsb-receiver-url "$FRONT_URL/wsb" --wsb-sender-cvr 55570117 \
            --wsrm-sequence-timeout-secs "$SEQUENCE_TIMEOUT" \
            "${STATE_ARGS[@]}" >"$log.stdout" 2>"$log.stderr" &
        REPLICA_PID[i]=$!
        url="$(listening_url "${REPLICA_PID[$i]}" "$log.stdout")"
        [[ -n "$url" ]] && return 0
        kill -0 "${REPLICA_PID[$i]}" 2>/dev/null && fail "replica r$((i + 1)) did not say where it listens within 60 s"
        wait "${REPLICA_PID[$i]}" 2>/dev/null || true
        REPLICA_PID[i]=""
        info "replica r$((i + 1)) did not start on port $port (attempt $attempt): $(tail -n 1 "$log.stderr")"
        sleep 0.5
    done
    fail "replica r$((i + 1)) did not start again on port $port"
}

# kill_and_restart N ELAPSED -- SIGKILL replica (N-1) mod 3 once HAProxy has every replica
# UP (at most 20 s), wait DOWN_SECONDS, start it again; one JSON line in events.jsonl.
kill_and_restart() {
    local n="$1" elapsed="$2" i old kill_sent dead restarted
    i=$(((n - 1) % REPLICAS))
    python3 "$HERE/driver.py" wait-up --stats "$STATS_URL;csv" --want "$REPLICAS" --timeout 20 ||
        fail "before kill $n not every replica was UP in HAProxy for 20 s"
    old="${REPLICA_PID[$i]}"
    kill_sent="$(now)"
    kill -KILL "$old" 2>/dev/null || fail "replica r$((i + 1)) (pid $old) was not running at kill $n"
    wait "$old" 2>/dev/null || true
    dead="$(now)"
    REPLICA_PID[i]=""
    sleep "$DOWN_SECONDS"
    start_replica "$i"
    restarted="$(now)"
    printf '{"type":"kill","n":%d,"replica":%d,"at_s":%d,"killed_pid":%d,"kill_sent":%s,"dead":%s,"restarted":%s,"new_pid":%d}\n' \
        "$n" "$((i + 1))" "$elapsed" "$old" "$kill_sent" "$dead" "$restarted" "${REPLICA_PID[$i]}" >>"$EVENTS"
    info "kill $n at ${elapsed} s: replica r$((i + 1)) pid $old killed, pid ${REPLICA_PID[$i]} listening again"
}

haproxy_env() {
    local i
    printf '%s\n' "VOS_HA_BIND=127.0.0.1:$FRONT_PORT" "VOS_HA_CERT=$TMP_DIR/front.pem" \
        "VOS_HA_CLIENT_CA=$CERTS/ca.pem" "VOS_HA_CRL=$CERTS/crl.pem" \
        "VOS_HA_STATS_BIND=127.0.0.1:$STATS_PORT" "VOS_HA_MAXCONN=2000"
    for i in "${!REPLICA_PORT[@]}"; do
        printf '%s\n' "VOS_HA_REPLICA$((i + 1))=127.0.0.1:${REPLICA_PORT[$i]}"
    done
    # As root, HAProxy drops to Debian's haproxy user after reading its files, as in production.
    if [[ "$(id -u)" == 0 ]] && id -u haproxy >/dev/null 2>&1; then
        printf '%s\n' "VOS_HA_USER=haproxy"
    fi
}

start_haproxy() {
    cat "$CERTS/server.pem" "$CERTS/server-key.pem" >"$TMP_DIR/front.pem"
    chmod 600 "$TMP_DIR/front.pem"
    local -a envs
    mapfile -t envs < <(haproxy_env)
    info "$("$HAPROXY" -v | head -n 1)"
    env "${envs[@]}" "$HAPROXY" -c -f "$HAPROXY_CFG" >"$TMP_DIR/haproxy-check.log" 2>&1 ||
        { cat "$TMP_DIR/haproxy-check.log" >&2; fail "haproxy -c refused ${HAPROXY_CFG#"$ROOT"/}"; }
    info "haproxy -c: ${HAPROXY_CFG#"$ROOT"/} is valid with: ${envs[*]}"
    env "${envs[@]}" "$HAPROXY" -f "$HAPROXY_CFG" -db >"$TMP_DIR/haproxy.log" 2>&1 &
    HAPROXY_PID=$!
    python3 "$HERE/driver.py" wait-http --url "http://127.0.0.1:$STATS_PORT/healthz" --timeout 20 ||
        fail "HAProxy's /healthz did not answer within 20 s"
    python3 "$HERE/driver.py" wait-up --stats "$STATS_URL;csv" --want "$REPLICAS" --timeout 60 ||
        fail "HAProxy does not show the $REPLICAS replicas UP within 60 s"
    info "haproxy pid $HAPROXY_PID: $FRONT_URL (client certificates of the dev CA), stats $STATS_URL; every replica UP"
}

# check_units -- systemd-analyze verify (any output fails) and security --offline, in a
# scratch root holding the units as shipped and the binary where they expect it.
check_units() {
    if ! command -v systemd-analyze >/dev/null 2>&1 && ! apt_install systemd; then
        info "SKIPPED: no systemd-analyze here, and systemd could not be installed: deploy/systemd/ not verified"
        return 0
    fi
    local r="$TMP_DIR/sdroot" out u
    mkdir -p "$r/usr/local/bin" "$r/bin" "$r/etc/systemd/system" "$r/lib/systemd"
    cp -r /lib/systemd/system "$r/lib/systemd/"
    cp /bin/kill "$r/bin/kill"
    printf '#!/bin/sh\nexec %q "$@"\n' "$TMP_DIR/vos-converter" >"$r/usr/local/bin/vos-converter"
    chmod 755 "$r/usr/local/bin/vos-converter"
    cp "$ROOT"/deploy/systemd/*.service "$r/etc/systemd/system/"
    for u in vos-converter.service vos-backend.service; do
        out="$(systemd-analyze verify --root="$r" "$u" 2>&1)" || { printf '%s\n' "$out" >&2; fail "systemd-analyze verify $u failed"; }
        [[ -z "$out" ]] || { printf '%s\n' "$out" >&2; fail "systemd-analyze verify $u warns"; }
        out="$(systemd-analyze security --offline=yes --root="$r" "$u" 2>&1 | grep -o 'Overall exposure level.*' || true)"
        info "systemd-analyze verify $u: clean; security: ${out:-(no score)}"
    done
}

main() {
    [[ "$SECONDS_TOTAL" =~ ^[0-9]+$ ]] && ((SECONDS_TOTAL >= 20)) ||
        fail "HA_SECONDS: at least 20, a whole number (got $SECONDS_TOTAL)"
    local kill_every="${HA_KILL_EVERY:-}"
    if [[ -z "$kill_every" ]]; then
        kill_every=60
        ((SECONDS_TOTAL < 180)) && kill_every=$((SECONDS_TOTAL / 3))
    fi
    [[ "$kill_every" =~ ^[0-9]+$ ]] && ((kill_every >= 5)) || fail "HA_KILL_EVERY: at least 5 (got $kill_every)"
    local pg_at="${HA_PG_RESTART_AT:-$((SECONDS_TOTAL / 2))}"
    [[ "$pg_at" =~ ^[0-9]+$ ]] || fail "HA_PG_RESTART_AT: a whole number of seconds (got $pg_at)"

    section "tools and build"
    command -v python3 >/dev/null 2>&1 || apt_install python3 || fail "could not install python3"
    command -v openssl >/dev/null 2>&1 || apt_install openssl || fail "could not install openssl"
    command -v "$HAPROXY" >/dev/null 2>&1 || apt_install haproxy || fail "could not install haproxy"
    if [[ -n "${HA_BIN:-}" ]]; then
        [[ -x "$BIN" ]] || fail "HA_BIN=$BIN is not an executable"
        info "HA_BIN: using $BIN as it is"
    else
        (cd "$ROOT" && cargo build --locked --bin vos-converter)
        [[ -x "$BIN" ]] || fail "no binary at $BIN"
    fi
    if [[ "${HA_SKIP_STORE_TEST:-}" != 1 ]]; then
        command -v cargo >/dev/null 2>&1 ||
            fail "no cargo to build tests/state_store.rs (HA_SKIP_STORE_TEST=1 skips that suite)"
        (cd "$ROOT" && cargo test --locked --test state_store --no-run)
    fi
    mkdir -p "$OUT"
    rm -rf "$OUT/summary.json" "$OUT/haproxy-log-not-2xx.txt" "$OUT/failed-logs"
    TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/vos-ha.XXXXXX")"
    EVENTS="$TMP_DIR/events.jsonl"
    : >"$EVENTS"
    # A private copy: a rebuild during the run changes nothing here.
    cp "$BIN" "$TMP_DIR/vos-converter"
    CERTS="$TMP_DIR/certs"
    "$TMP_DIR/vos-converter" dev-certs "$CERTS" >/dev/null
    if "$TMP_DIR/vos-converter" serve --help | grep -q -- '--state-url'; then
        # The URL (with its password) goes in VOS_STATE_URL, as README advises: a flag
        # would show in `ps`.
        STATE_ARGS=(--state-ca "$TMP_DIR/pg-tls/ca.pem")
    elif [[ "${HA_ALLOW_NO_STATE_URL:-}" == 1 ]]; then
        info "WARNING: this binary has no --state-url: each replica keeps its own state (HA_ALLOW_NO_STATE_URL=1); the shared-state verdicts will fail"
        STATE_ARGS=()
    else
        fail "this binary has no --state-url (serve --help): the replicas cannot share their state"
    fi

    section "deploy/systemd: systemd-analyze"
    check_units

    section "start: PostgreSQL, backend, $REPLICAS replicas, HAProxy"
    start_postgres
    store_contract_test
    local i
    local ports
    read -r -a ports <<<"$(free_ports $((REPLICAS + 2)))"
    FRONT_PORT="${ports[0]}"
    STATS_PORT="${ports[1]}"
    REPLICA_PORT=("${ports[@]:2}")
    FRONT_URL="https://localhost:$FRONT_PORT"
    STATS_URL="http://127.0.0.1:$STATS_PORT/stats"
    start_backend
    python3 "$HERE/driver.py" seed --rest "$BACKEND_URL" --persons "$PERSONS"
    # One after the other: the first makes the WSB subscription, the others find it.
    for i in $(seq 0 $((REPLICAS - 1))); do
        start_replica "$i"
        python3 "$HERE/driver.py" wait-http --url "http://127.0.0.1:${REPLICA_PORT[$i]}/readyz" --timeout 60 ||
            fail "replica r$((i + 1)) is not ready within 60 s"
        if ((i == 0)); then
            for _ in $(seq 1 200); do
                grep -q 'WSB subscription for the WSRM queues in place' "$TMP_DIR/replica-r1-1.stderr" && break
                sleep 0.1
            done
            grep -q 'WSB subscription for the WSRM queues in place' "$TMP_DIR/replica-r1-1.stderr" ||
                fail "replica r1 did not make its WSB subscription within 20 s"
        fi
        info "replica r$((i + 1)) pid ${REPLICA_PID[$i]} on 127.0.0.1:${REPLICA_PORT[$i]}, ready"
    done
    start_haproxy

    section "load: $SECONDS_TOTAL s, $WORKERS workers at $RATE/s + 2 WSRM subscribers; a replica SIGKILLed every $kill_every s (down ${DOWN_SECONDS} s); PostgreSQL restart at ${pg_at} s"
    python3 "$HERE/driver.py" run --front "$FRONT_URL" --certs "$CERTS" --persons "$PERSONS" \
        --workers "$WORKERS" --rate "$RATE" --seconds "$SECONDS_TOTAL" --stats "$STATS_URL;csv" \
        --drain-seconds "$DRAIN_SECONDS" --out "$TMP_DIR/results.json" &
    DRIVER_PID=$!
    local start elapsed kills=0 next="$kill_every" pg_done=0 limit
    start="$(date +%s)"
    limit=$((SECONDS_TOTAL + DRAIN_SECONDS + 300))
    while kill -0 "$DRIVER_PID" 2>/dev/null; do
        elapsed=$(($(date +%s) - start))
        ((elapsed <= limit)) || fail "the driver did not finish within $limit s"
        # Kills and the restart only while the load runs and not in its last 3 s.
        if ((elapsed >= next && elapsed <= SECONDS_TOTAL - 3)); then
            kills=$((kills + 1))
            kill_and_restart "$kills" "$elapsed"
            next=$((next + kill_every))
        fi
        if ((pg_done == 0 && pg_at > 0 && elapsed >= pg_at && elapsed <= SECONDS_TOTAL - 3)); then
            pg_done=1
            restart_postgres "$elapsed"
        fi
        kill -0 "$HAPROXY_PID" 2>/dev/null || fail "HAProxy (pid $HAPROXY_PID) died during the load"
        kill -0 "$BACKEND_PID" 2>/dev/null || fail "the backend (pid $BACKEND_PID) died during the load"
        for i in "${!REPLICA_PID[@]}"; do
            kill -0 "${REPLICA_PID[$i]}" 2>/dev/null || fail "replica r$((i + 1)) (pid ${REPLICA_PID[$i]}) died during the load"
        done
        sleep 0.2
    done
    local rc=0
    wait "$DRIVER_PID" || rc=$?
    DRIVER_PID=""
    ((rc == 0)) || fail "the driver failed (status $rc)"

    section "verify: REST directly as STAR, /api/migration on every replica"
    local commit replicas_csv=""
    commit="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    for i in "${!REPLICA_PORT[@]}"; do
        replicas_csv+="${replicas_csv:+,}http://127.0.0.1:${REPLICA_PORT[$i]}"
    done
    python3 - "$TMP_DIR/meta.json" <<EOF
import json, os, platform, sys, time
meta = {
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "commit": "$commit",
    "binary": "${BIN#"$ROOT"/}",
    "cpus": os.cpu_count(),
    "machine": platform.machine(),
    "kernel": platform.release(),
    "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), None),
    "haproxy": "$("$HAPROXY" -v | head -n 1)",
    "postgres": "$("$PG_BIN/postgres" --version)",
    "replicas": $REPLICAS,
    "kill_every_s": $kill_every,
    "down_s": $DOWN_SECONDS,
    "pg_restart_at_s": $pg_at,
    "pg_down_s": $PG_DOWN_SECONDS,
    "wsrm_sequence_timeout_s": $SEQUENCE_TIMEOUT,
    "replica_starts": [$(IFS=,; echo "${REPLICA_STARTS[*]}")],
}
json.dump(meta, open(sys.argv[1], "w"))
EOF
    if grep -l 'panicked at' "$TMP_DIR"/*.stderr >/dev/null 2>&1; then
        grep -h -m3 'panicked at' "$TMP_DIR"/*.stderr >&2
        fail "a process panicked"
    fi
    # HAProxy's log lines of requests not answered 2xx (the kills' 502s, the restart's 503s).
    grep -E '" *$' "$TMP_DIR/haproxy.log" | grep -v -E ' (200|204) [0-9]+ ' | head -n 5000 >"$OUT/haproxy-log-not-2xx.txt" || true
    info "replica logs: $(cat "$TMP_DIR"/replica-*.stderr | grep -c ' WARN ' || true) WARN and $(cat "$TMP_DIR"/replica-*.stderr | grep -c ' ERROR ' || true) ERROR lines; HAProxy requests not 2xx: ${OUT#"$ROOT"/}/haproxy-log-not-2xx.txt"
    rc=0
    timeout 600 python3 "$HERE/driver.py" verify --rest "$BACKEND_URL" --results "$TMP_DIR/results.json" \
        --events "$EVENTS" --replicas "$replicas_csv" --meta "$TMP_DIR/meta.json" \
        --out "$OUT/summary.json" || rc=$?
    info "summary: ${OUT#"$ROOT"/}/summary.json"
    ((rc == 0)) || fail "a verdict failed (see the table and ${OUT#"$ROOT"/}/summary.json)"

    section "HAProxy's front: certificates and forwarded headers"
    # A large client certificate of the dev CA (4 KB: 80 DNS names) for the maxrewrite check.
    (
        cd "$CERTS"
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=large (dev)" \
            -keyout large-client-key.pem -out large-client.csr
        printf 'extendedKeyUsage=clientAuth\nsubjectAltName=%s\n' \
            "$(python3 -c "print(','.join(f'DNS:host{i}.a-rather-long-subdomain-name.example.dk' for i in range(80)))")" >large-client.ext
        openssl x509 -req -in large-client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 \
            -extfile large-client.ext -out large-client.pem
    ) >>"$TMP_DIR/openssl.log" 2>&1 || fail "openssl could not make the large client certificate"
    timeout 120 python3 "$HERE/driver.py" front-checks --front "$FRONT_URL" --certs "$CERTS" \
        --summary "$OUT/summary.json" || fail "a front check failed"
    section "all verdicts passed"
}

main "$@"
