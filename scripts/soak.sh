#!/usr/bin/env bash
# The soak (issue 14 point 8): mixed SOAP calls through the converter for N minutes while
# the REST backend is killed with SIGKILL every SOAK_KILL_EVERY seconds and restarted about
# a second later on the same port with the same SQLite file; then it proves, and exits
# non-zero otherwise, that
#   (a) every acknowledged create (a SOAP 200 with its ContactGroupIdentifier /
#       PersonCategoryIdentifier) is in REST exactly once, under its person and kind;
#   (b) nothing a retry sent twice was recorded twice: the contact group and person category
#       ids REST holds for the soak's persons are exactly the acknowledged ids;
#   (c) the converter's RSS is flat: the mean of the last minute within 10% of the mean of
#       the second minute (runs shorter than 3 minutes: the last sixth against the second);
# and besides: a deliberate second send of a create answers the first id, no create ends
# in a business fault, and a status read shows the person's last acknowledged open
# registrations and no unacknowledged id (scripts/soak/driver.py says how each is checked).
#
# Setup: `vos-converter backend --dev` (fresh database in a temporary folder) and
# `vos-converter serve --rest-url <backend> --identity header --cutover 2099-01-01` as
# separate processes, as scripts/bench.sh starts them; SOAK_PERSONS fictitious persons put
# in the person register (STAR, municipality 101); SOAK_WORKERS client threads calling as
# jobcenter 1/101 (scripts/soak/driver.py, Python standard library only). The converter's
# VmRSS is sampled every 2 s. The verification reads REST directly, as STAR.
#
# Output: a table, target/soak/summary.json (calls by outcome, creates acknowledged,
# retries, kills, calls every 5 s, RSS samples and window means, verdicts),
# target/soak/converter-log-not-ok.txt (the converter's log lines other than successful
# calls); on failure the logs' ends in target/soak/failed-logs/.
#
# Installs python3 with apt-get when missing (CI runs as root); downloads nothing else.
# Builds with `cargo build` (debug) unless SOAK_BIN is given. Stops only the processes it
# started, by pid, however it ends (failure, Ctrl-C).
#
# Environment:
#   SOAK_MINUTES=10       how long the load runs
#   SOAK_SECONDS          the same in seconds (short runs; wins over SOAK_MINUTES)
#   SOAK_KILL_EVERY=30    seconds between the backend's SIGKILLs
#   SOAK_DOWN_SECONDS=1   how long the backend stays dead before its restart
#   SOAK_WORKERS=8        client threads
#   SOAK_PERSONS=100      fictitious persons
#   SOAK_BIN=PATH         the vos-converter binary to use (no build)
#   SOAK_RUST_LOG=info    RUST_LOG of both processes (their logs go to files)
#   SOAK_OUT=target/soak  where the results go
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/scripts/soak"
OUT="${SOAK_OUT:-$ROOT/target/soak}"
BIN="${SOAK_BIN:-$ROOT/target/debug/vos-converter}"
SECONDS_TOTAL="${SOAK_SECONDS:-$((${SOAK_MINUTES:-10} * 60))}"
KILL_EVERY="${SOAK_KILL_EVERY:-30}"
DOWN_SECONDS="${SOAK_DOWN_SECONDS:-1}"
WORKERS="${SOAK_WORKERS:-8}"
PERSONS="${SOAK_PERSONS:-100}"
RUST_LOG_LEVEL="${SOAK_RUST_LOG:-info}"

TMP_DIR=""
BACKEND_PID=""
BACKEND_URL=""
BACKEND_PORT=""
BACKEND_STARTS=0
CONVERTER_PID=""
CONVERTER_URL=""
DRIVER_PID=""

SCRIPT_NAME=soak
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

cleanup() {
    local rc=$?
    stop_process "$DRIVER_PID" driver 5
    stop_process "$CONVERTER_PID" converter 30
    stop_process "$BACKEND_PID" backend
    if [[ -n "$TMP_DIR" && -d "$TMP_DIR" ]]; then
        if ((rc != 0)); then
            mkdir -p "$OUT/failed-logs"
            local f
            for f in "$TMP_DIR"/*.stdout "$TMP_DIR"/*.stderr "$TMP_DIR"/*.log "$TMP_DIR"/*.json*; do
                [[ -f "$f" ]] && tail -n 2000 "$f" >"$OUT/failed-logs/${f##*/}"
            done
            info "the logs' last 2000 lines: ${OUT#"$ROOT"/}/failed-logs/"
        fi
        rm -rf "$TMP_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_backend -- the backend on BACKEND_PORT (a free one the first time) with the one
# database; each start logs to its own files (backend-N.stdout/.stderr). A port still held
# just after a kill is tried again for up to 10 s.
start_backend() {
    local listen="127.0.0.1:${BACKEND_PORT:-0}" attempt log
    for attempt in $(seq 1 20); do
        BACKEND_STARTS=$((BACKEND_STARTS + 1))
        log="$TMP_DIR/backend-$BACKEND_STARTS"
        RUST_LOG="$RUST_LOG_LEVEL" NO_COLOR=1 "$TMP_DIR/vos-converter" backend --listen "$listen" \
            --db "$TMP_DIR/backend/vos-backend.db" --dev >"$log.stdout" 2>"$log.stderr" &
        BACKEND_PID=$!
        BACKEND_URL="$(listening_url "$BACKEND_PID" "$log.stdout")"
        if [[ -n "$BACKEND_URL" ]]; then
            BACKEND_PORT="${BACKEND_URL##*:}"
            return 0
        fi
        kill -0 "$BACKEND_PID" 2>/dev/null && fail "the backend did not say where it listens within 60 s"
        wait "$BACKEND_PID" 2>/dev/null || true
        BACKEND_PID=""
        info "the backend did not start on $listen (attempt $attempt): $(tail -n 1 "$log.stderr")"
        sleep 0.5
    done
    fail "the backend did not start again on $listen"
}

start_converter() {
    mkdir -p "$TMP_DIR/converter"
    RUST_LOG="$RUST_LOG_LEVEL" NO_COLOR=1 "$TMP_DIR/vos-converter" serve --listen 127.0.0.1:0 \
        --rest-url "$BACKEND_URL" --identity header --cutover 2099-01-01 \
        --data-dir "$TMP_DIR/converter" >"$TMP_DIR/converter.stdout" 2>"$TMP_DIR/converter.stderr" &
    CONVERTER_PID=$!
    CONVERTER_URL="$(listening_url "$CONVERTER_PID" "$TMP_DIR/converter.stdout")"
    if [[ -z "$CONVERTER_URL" ]]; then
        cat "$TMP_DIR/converter.stdout" "$TMP_DIR/converter.stderr" >&2 || true
        fail "the converter did not say where it listens"
    fi
    grep -q "REST upstream: $BACKEND_URL" "$TMP_DIR/converter.stdout" ||
        fail "the converter does not say it uses $BACKEND_URL"
}

# kill_and_restart N ELAPSED -- SIGKILL the backend, wait DOWN_SECONDS, start it again; one
# JSON line in kills.jsonl.
kill_and_restart() {
    local n="$1" elapsed="$2" killed_at restarted_at
    kill -KILL "$BACKEND_PID" 2>/dev/null || fail "the backend (pid $BACKEND_PID) was not running at kill $n"
    wait "$BACKEND_PID" 2>/dev/null || true
    killed_at="$(date +%s.%N)"
    local old_pid="$BACKEND_PID"
    BACKEND_PID=""
    sleep "$DOWN_SECONDS"
    start_backend
    restarted_at="$(date +%s.%N)"
    printf '{"n":%d,"at_s":%d,"killed_pid":%d,"down_s":%s,"new_pid":%d}\n' "$n" "$elapsed" \
        "$old_pid" "$(awk -v a="$killed_at" -v b="$restarted_at" 'BEGIN{printf "%.2f", b-a}')" \
        "$BACKEND_PID" >>"$TMP_DIR/kills.jsonl"
    info "kill $n at ${elapsed} s: backend pid $old_pid killed, pid $BACKEND_PID listening again"
}

main() {
    [[ "$SECONDS_TOTAL" =~ ^[0-9]+$ ]] && ((SECONDS_TOTAL >= 12)) ||
        fail "SOAK_SECONDS/SOAK_MINUTES: at least 12 seconds, a whole number (got $SECONDS_TOTAL)"
    [[ "$KILL_EVERY" =~ ^[0-9]+$ ]] && ((KILL_EVERY >= 2)) || fail "SOAK_KILL_EVERY: at least 2 (got $KILL_EVERY)"

    section "tools and build"
    command -v python3 >/dev/null 2>&1 || apt_install python3 || fail "could not install python3"
    if [[ -n "${SOAK_BIN:-}" ]]; then
        [[ -x "$BIN" ]] || fail "SOAK_BIN=$BIN is not an executable"
        info "SOAK_BIN: using $BIN as it is"
    else
        (cd "$ROOT" && cargo build --locked --bin vos-converter)
        [[ -x "$BIN" ]] || fail "no binary at $BIN"
    fi
    mkdir -p "$OUT"
    rm -rf "$OUT/summary.json" "$OUT/converter-log-not-ok.txt" "$OUT/failed-logs"
    TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/vos-soak.XXXXXX")"
    mkdir -p "$TMP_DIR/backend"
    # A private copy: a rebuild during the run changes nothing here.
    cp "$BIN" "$TMP_DIR/vos-converter"

    section "start: backend and converter as separate processes"
    start_backend
    info "backend pid $BACKEND_PID at $BACKEND_URL (database $TMP_DIR/backend/vos-backend.db)"
    python3 "$HERE/driver.py" seed --rest "$BACKEND_URL" --persons "$PERSONS"
    start_converter
    info "converter pid $CONVERTER_PID at $CONVERTER_URL"

    section "load: $SECONDS_TOTAL s, $WORKERS workers, backend SIGKILL every $KILL_EVERY s, down ${DOWN_SECONDS} s"
    : >"$TMP_DIR/kills.jsonl"
    python3 "$HERE/driver.py" run --soap "$CONVERTER_URL" --persons "$PERSONS" \
        --workers "$WORKERS" --seconds "$SECONDS_TOTAL" --converter-pid "$CONVERTER_PID" \
        --out "$TMP_DIR/results.json" &
    DRIVER_PID=$!
    local start now elapsed kills=0 next="$KILL_EVERY"
    start="$(date +%s)"
    # Kills only while the load runs and not in its last 2 s; then the backend stays up for
    # the creates still being retried and for the verification.
    while kill -0 "$DRIVER_PID" 2>/dev/null; do
        now="$(date +%s)"
        elapsed=$((now - start))
        if ((elapsed >= next && elapsed <= SECONDS_TOTAL - 2)); then
            kills=$((kills + 1))
            kill_and_restart "$kills" "$elapsed"
            next=$((next + KILL_EVERY))
        fi
        kill -0 "$CONVERTER_PID" 2>/dev/null || fail "the converter (pid $CONVERTER_PID) died during the load"
        sleep 0.2
    done
    local rc=0
    wait "$DRIVER_PID" || rc=$?
    DRIVER_PID=""
    ((rc == 0)) || fail "the driver failed (status $rc)"
    kill -0 "$CONVERTER_PID" 2>/dev/null || fail "the converter (pid $CONVERTER_PID) died"

    section "verify: REST directly, as STAR"
    local commit
    commit="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
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
    "kill_every_s": $KILL_EVERY,
    "down_s": $DOWN_SECONDS,
    "backend_starts": $BACKEND_STARTS,
}
json.dump(meta, open(sys.argv[1], "w"))
EOF
    # Panics in either process's log are failures in themselves.
    if grep -l 'panicked at' "$TMP_DIR"/*.stderr >/dev/null 2>&1; then
        grep -h -m3 'panicked at' "$TMP_DIR"/*.stderr >&2
        fail "a process panicked"
    fi
    # The converter's log without its successful calls: what it said about the kills.
    grep -v 'outcome="ok"' "$TMP_DIR/converter.stderr" | head -n 5000 >"$OUT/converter-log-not-ok.txt" || true
    info "converter log: $(grep -c ' WARN ' "$TMP_DIR/converter.stderr" || true) WARN and $(grep -c ' ERROR ' "$TMP_DIR/converter.stderr" || true) ERROR lines (those and every call not ok: ${OUT#"$ROOT"/}/converter-log-not-ok.txt)"
    rc=0
    python3 "$HERE/driver.py" verify --rest "$BACKEND_URL" --results "$TMP_DIR/results.json" \
        --kills "$TMP_DIR/kills.jsonl" --meta "$TMP_DIR/meta.json" --out "$OUT/summary.json" || rc=$?
    info "summary: ${OUT#"$ROOT"/}/summary.json"
    ((rc == 0)) || fail "a verdict failed (see the table and ${OUT#"$ROOT"/}/summary.json)"
    section "all verdicts passed"
}

main "$@"
