#!/usr/bin/env bash
# The converter's cost, measured end to end against the same REST backend and data:
# SOAP through the converter versus the same REST calls made directly (issue 7).
#
#   scripts/bench.sh [load]     wrk: latency at concurrency 1 and 32, throughput, the
#                               converter's CPU per request and peak RSS (also at 256
#                               connections), medians of BENCH_RUNS runs, as ratios
#   scripts/bench.sh callgrind  instructions per request under valgrind (the stable number
#                               on a noisy machine) and the per-request profile
#   scripts/bench.sh micro      cargo bench (criterion, benches/convert.rs): the in-process
#                               phases parse, map, write, fault
#   scripts/bench.sh tls        load with both hops mutual TLS (HTTPS door with client
#                               certificates, REST over mutual TLS), keep-alive, against
#                               direct REST over mutual TLS: the same pairs and ratios; and
#                               reconnects (a new connection per request) with TLS session
#                               resumption on and off (the load generator is
#                               examples/tls_load.rs: wrk cannot present a client certificate)
#   scripts/bench.sh scale      a person's PersonHistoryService answer with N contact group
#                               versions, N = 1, 50, 400, 2000: GetPersonHistory (PHS v4)
#                               through the converter against the same two REST history reads
#                               made directly, one client; the converter's CPU per call and
#                               per history item; its peak RSS under 256 connections on the
#                               largest N
#   scripts/bench.sh wsb        WSB change notifications (issue 15): the reference backend's
#                               create (POST kontaktgrupper) with no subscription and with
#                               three, its p50 ratio, at a paced rate and with wrk at
#                               concurrency 1 and 32; the delivery lag (commit to the
#                               receiver's 2xx) and the events delivered per second to a local
#                               receiver (examples/wsb_receiver.rs)
#   scripts/bench.sh all        load, callgrind and micro, in that order
#
# Setup (load and callgrind): the reference backend as its own process (`vos-converter
# backend --dev`, fresh database in a temporary folder) and the converter as another
# (`vos-converter serve --rest-url <backend> --cutover 2099-01-01 --identity header`, so PSS
# reads really call REST and RequestUserMetadata is trusted as sent), so the converter's
# process CPU (utime+stime of /proc/PID/stat) and peak RSS (VmHWM of /proc/PID/status) are
# the converter's alone. Four fictitious persons are put in the person
# register (STAR, SetPersonRegister) with two contact groups (one ended, so kunAktuelle leaves
# one) and one person category each. Every request is STAR's (organisation type 5).
#
# The pairs (SOAP via the converter / REST called directly, same backend, same data):
#   read      GetVariablePersonStatus (the converter makes GetKontaktgrupper and
#             GetPersonkategorier concurrently) / GET kontaktgrupper?kunAktuelle=true, the
#             representative single REST read; also / GET status (one REST call that returns
#             both collections) and, for reference, GET personkategorier?kunAktuelle=true;
#             read/both is derived from the same run: the two REST reads one after the other
#             (their p50s and means added up), what a REST client needing both would wait
#   create    CreateContactGroup (the converter reads the cached code list, then POSTs) /
#             POST kontaktgrupper; every request a fresh fictitious CPR number (rule 5)
# wrk checks every answer: a run with a non-2xx answer or a socket error is invalid and the
# script fails.
#
# Order (load): a warm-up, then BENCH_RUNS runs of the reads at concurrency 1 and 32 (every
# other run in reverse order), the converter's read at 256 connections; then the same for
# the creates. Reads go first because every create adds a contact group and the backend's
# contact group reads slow down as the table grows (docs/performance.md).
#
# TLS (tls): the same two processes with `vos-converter dev-certs` in the temporary folder:
# the backend with --tls-cert server.pem --client-ca ca.pem --trusted-client-cvr 55570117,
# the converter with the HTTPS door (--tls-cert, --client-ca, --agreements; identity
# certificate) and --rest-client-cert converter.pem --rest-ca ca.pem. Every request, SOAP
# and direct REST, presents star.pem, whose agreement covers organisation 5:55570117 (STAR),
# so every claim is 5 / 55570117 in this mode (12345678 in the others). The pairs are the
# load's, keep-alive (every connection opened before the clock starts); besides them, the
# SOAP read and GET kontaktgrupper with a new connection per request
# (<kind>_reconnect_resumed: rustls' in-memory ticket store, each handshake checked to be
# resumed; <kind>_reconnect_full: Resumption::disabled(), every handshake full).
#
# Scale (scale): the load's two processes and identity. One fictitious person per N
# (SetPersonRegister as STAR) with one contact group, created and then updated N - 1 times
# (each update sets another end date: a new version, src/backend/rules.rs), so that
# GetKontaktgruppeHistorik answers N versions, and one person category
# (scripts/bench/history.py, one keep-alive connection). Checked once per N before any
# load: the SOAP answer holds N <ContactGroupHistory> items and REST's history N versions,
# or the mode fails. Per N: a warm-up, then BENCH_RUNS runs at concurrency 1 of
#   soap_history                 GetPersonHistory (no period) via the converter, which makes
#                                GetKontaktgruppeHistorik and GetPersonkategoriHistorik
#   rest_kontaktgruppehistorik   GET kontaktgruppehistorik direct (X-Cpr)
#   rest_personkategorihistorik  GET personkategorihistorik direct (X-Cpr)
# (every other run in reverse order); the ratio is SOAP p50 / (the two REST p50s added up,
# as read/both: a REST client reading both one after the other), per run, then the median.
# Then BENCH_RUNS measurements of soap_history on the largest N at 256 connections: the
# converter's peak RSS (VmHWM, reset before each). Defaults: 3 runs of 5 s per N, 2 s
# warm-up (BENCH_RUNS, BENCH_DURATION, BENCH_WARMUP override them).
#
# WSB (wsb): the backend alone (no converter), --dev, with --wsb-retry-initial-ms 20
# --wsb-retry-max-ms 100 (retries happen only in the backlog measurement), and one receiver
# process (examples/wsb_receiver.rs, release: answers 204 to every event at once, counts
# them per path, and times each from its tidspunkt) on loopback. "subs3": three STAR
# subscriptions (Kontaktgruppe, Personkategori, CprSkift) to the receiver at /wsb/a, /wsb/b,
# /wsb/c, made just before a measurement; after it the script waits until each has been
# delivered every event written (the backend's wsb_events_delivered_total), then deletes
# them. "none": no subscription. The creates (POST kontaktgrupper direct as STAR, wrk.lua's
# rest_create body, a fresh fictitious CPR number each) come in three loads: rN, N a second
# on one connection (BENCH_WSB_RATE, default 100; scripts/bench/wsb.py paced: wrk has no
# fixed rate), then c1 and c32, wrk rest_create with 1 and 32 connections (closed loop: c1
# sends ~1,000 creates a second here, more than delivery to three subscriptions keeps up
# with, so its lag is a queue's). Per run and load, BENCH_DURATION s with none and with subs3
# back to back (every other run the other way round); the ratio is the subs3 p50 / the none
# p50 of the same run, then the median over the runs. The delivery lag is the backend's
# wsb_delivery_latency_seconds histogram (from the event's write in the create's transaction
# to the 2xx and the cursor's advance recorded; its p50/p99 interpolated within the doubling
# buckets) of the subs3 measurements, and the receiver's exact arrival minus the event's
# tidspunkt (the registration time, before the create's transaction). Events delivered
# per second: the receiver's count / (its last arrival - the start of wrk) of the
# concurrency-32 subs3 runs; and a backlog: BENCH_DURATION s of creates at concurrency 32
# while the receiver answers 503 (held), then 204: the events / (last arrival - first
# arrival). Defaults: 3 runs of 5 s, 2 s warm-up (at most 13 runs: the CPR number blocks).
# Helper: scripts/bench/wsb.py (the paced creates, metrics, the wait, the records, the
# summary).
#
# Output: a table at the end, target/bench/summary.json (load), target/bench/callgrind.json
# and target/bench/callgrind-*-top.txt (callgrind), target/bench/micro.json (micro),
# target/bench/tls-summary.json (tls), target/bench/scale-summary.json (scale; its table is
# markdown), target/bench/wsb.json (wsb; markdown tables), and the raw per-run records in
# target/bench/load-raw.jsonl, tls-raw.jsonl, scale-raw.jsonl and wsb-raw.jsonl.
#
# Installs wrk and valgrind with apt-get when missing (CI runs as root); python3 too.
# Downloads nothing else. Kills only the processes it started, by pid.
# tls builds examples/tls_load.rs (release) beside the binary; it needs no wrk. wsb builds
# examples/wsb_receiver.rs (release) beside it (with BENCH_BIN: the receiver only).
#
# Environment:
#   BENCH_RUNS=5            load runs (medians over them; at least 5 for the issue's numbers)
#   BENCH_DURATION=10       seconds per wrk (tls: tls_load) measurement at concurrency 1 and 32
#   BENCH_DURATION_256=5    seconds per measurement at 256 connections
#   BENCH_WARMUP=5          seconds of warm-up per scenario (concurrency 32) before run 1
#   BENCH_SKIP_BUILD=1      use target/release/vos-converter (tls: and examples/tls_load; wsb:
#                           and examples/wsb_receiver) as it is
#   BENCH_BIN=PATH          the release binary to use instead of target/release/vos-converter
#                           (with BENCH_SKIP_BUILD=1: e.g. one built in another target folder)
#   BENCH_SCALE_NS="1 50 400 2000"  scale: the history lengths N (1 to 9999 each)
#   BENCH_WSB_RATE=100      wsb: the paced creates a second (1 to 9999)
#   BENCH_RUST_LOG=info     RUST_LOG of the converter and the backend (the log goes to a file)
#   BENCH_REST_LATENCY_MS=0 the backend answers every request this much later (its dev-mode
#                           --dev-latency-ms): REST as far away as STAR's production service
#                           (the source gives 4-8 ms per call); both sides of every pair see it
#   BENCH_CALLGRIND_N=200   requests of the smaller callgrind run (the other makes twice as many)
#   BENCH_MICRO_ARGS        criterion arguments (default: --warm-up-time 1 --measurement-time 3)
#   BENCH_OUT=target/bench  where the results go (another folder keeps an earlier run's)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/scripts/bench"
OUT="${BENCH_OUT:-$ROOT/target/bench}"
BIN="${BENCH_BIN:-$ROOT/target/release/vos-converter}"
LOAD_BIN="$ROOT/target/release/examples/tls_load"
RECEIVER_BIN="$ROOT/target/release/examples/wsb_receiver"
CG_TARGET="$ROOT/target/bench-callgrind"
CG_BIN="$CG_TARGET/release/vos-converter"

RUNS="${BENCH_RUNS:-5}"
DURATION="${BENCH_DURATION:-10}"
DURATION_256="${BENCH_DURATION_256:-5}"
WARMUP="${BENCH_WARMUP:-5}"
RUST_LOG_LEVEL="${BENCH_RUST_LOG:-info}"
REST_LATENCY_MS="${BENCH_REST_LATENCY_MS:-0}"
CG_N="${BENCH_CALLGRIND_N:-200}"

ORG_TYPE=5
ORG_CODE=12345678 # tls: 55570117, the organisation star.pem's agreement covers
API=/personvisitering/v1
# Fictitious persons for the reads: days 29-31, which the creates' numbers (days 01-28) never use.
READ_CPRS=(2901801001 3003802002 3105803003 2908804004)

TMP_DIR=""
BACKEND_PID=""
BACKEND_URL=""
CONVERTER_PID=""
CONVERTER_URL=""
RECEIVER_PID="" # wsb: examples/wsb_receiver
RECEIVER_URL=""
# tls: the dev certificates' folder, curl's TLS arguments (star.pem), the backend's and the
# converter's TLS arguments (the plain modes: none, and the converter trusts
# RequestUserMetadata as sent), the load generator.
CERTS=""
CURL_TLS=()
BACKEND_TLS_ARGS=()
BACKEND_EXTRA_ARGS=() # wsb: the retry delays
CONVERTER_TLS_ARGS=(--identity header)
LOADGEN=wrk
CLK_TCK="$(getconf CLK_TCK)"
NEXT_SLOT=0 # the next CPR number block of a create run (scripts/bench/wrk.lua), 0..83

SCRIPT_NAME=bench
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

cleanup() {
    local rc=$?
    stop_process "$CONVERTER_PID" converter 30
    stop_process "$BACKEND_PID" backend
    stop_process "$RECEIVER_PID" receiver
    if [[ -n "$TMP_DIR" && -d "$TMP_DIR" ]]; then
        # A failed run keeps the end of every log (the processes', wrk's, tls_load's).
        if ((rc != 0)); then
            mkdir -p "$OUT/failed-logs"
            local f
            for f in "$TMP_DIR"/*.stdout "$TMP_DIR"/*.stderr "$TMP_DIR"/*.log; do
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

# ---------------------------------------------------------------------------------------------
# Tools

ensure_tools() {
    local missing=()
    command -v curl >/dev/null 2>&1 || missing+=(curl ca-certificates)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    local tool
    for tool in "$@"; do
        case "$tool" in
        wrk) command -v wrk >/dev/null 2>&1 || missing+=(wrk) ;;
        valgrind) command -v valgrind >/dev/null 2>&1 || missing+=(valgrind) ;;
        esac
    done
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}" || fail "could not install ${missing[*]}"
}

build_release() {
    section "build: release binary"
    if [[ -n "${BENCH_BIN:-}" ]]; then
        [[ -x "$BIN" ]] || fail "BENCH_BIN=$BIN is not an executable"
        info "BENCH_BIN: using $BIN as it is"
        return 0
    fi
    if [[ "${BENCH_SKIP_BUILD:-}" == 1 && -x "$BIN" ]]; then
        info "BENCH_SKIP_BUILD=1: using $BIN as it is"
        return 0
    fi
    (cd "$ROOT" && cargo build --release --locked)
    [[ -x "$BIN" ]] || fail "no binary at $BIN"
}

# The binary and the TLS load generator (examples/tls_load.rs), release.
build_release_tls() {
    section "build: release binary and examples/tls_load"
    if [[ "${BENCH_SKIP_BUILD:-}" == 1 && -x "$BIN" && -x "$LOAD_BIN" ]]; then
        info "BENCH_SKIP_BUILD=1: using $BIN and $LOAD_BIN as they are"
        return 0
    fi
    (cd "$ROOT" && cargo build --release --locked --bin vos-converter --example tls_load)
    [[ -x "$BIN" ]] || fail "no binary at $BIN"
    [[ -x "$LOAD_BIN" ]] || fail "no load generator at $LOAD_BIN"
}

# The release profile with debug symbols, in its own target folder (the normal build stays
# as it is): function names in the callgrind profile.
build_callgrind() {
    section "build: release binary with debug symbols (${CG_TARGET#"$ROOT"/})"
    if [[ "${BENCH_SKIP_BUILD:-}" == 1 && -x "$CG_BIN" ]]; then
        info "BENCH_SKIP_BUILD=1: using $CG_BIN as it is"
        return 0
    fi
    (cd "$ROOT" && CARGO_TARGET_DIR="$CG_TARGET" CARGO_PROFILE_RELEASE_DEBUG=true \
        cargo build --release --locked)
    [[ -x "$CG_BIN" ]] || fail "no binary at $CG_BIN"
}

# ---------------------------------------------------------------------------------------------
# The processes

# wait_listening PID STDOUT NAME -- the URL of the first "listening on http(s)://..." line.
wait_listening() {
    local pid="$1" file="$2" name="$3" line=""
    for _ in $(seq 1 600); do
        line="$(grep -m1 -o 'listening on https\?://127\.0\.0\.1:[0-9]*' "$file" 2>/dev/null || true)"
        [[ -n "$line" ]] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$file" "${file%.stdout}.stderr" >&2 || true
            fail "the $name exited before it listened"
        fi
        sleep 0.2
    done
    [[ -n "$line" ]] || fail "the $name did not say where it listens within 120 s"
    printf '%s' "${line#listening on }"
}

start_backend() {
    local bin="$1"
    mkdir -p "$TMP_DIR/backend"
    RUST_LOG="$RUST_LOG_LEVEL" NO_COLOR=1 "$bin" backend --listen 127.0.0.1:0 \
        --db "$TMP_DIR/backend/vos-backend.db" --dev --dev-latency-ms "$REST_LATENCY_MS" \
        "${BACKEND_TLS_ARGS[@]}" "${BACKEND_EXTRA_ARGS[@]}" \
        >"$TMP_DIR/backend.stdout" 2>"$TMP_DIR/backend.stderr" &
    BACKEND_PID=$!
    BACKEND_URL="$(wait_listening "$BACKEND_PID" "$TMP_DIR/backend.stdout" backend)"
    info "backend pid $BACKEND_PID at $BACKEND_URL"
}

# start_converter [WRAPPER...] -- the converter (target/release unless CONVERTER_BIN is set),
# in front of the backend, under WRAPPER (valgrind) if given.
start_converter() {
    local bin="${CONVERTER_BIN:-$BIN}" tag="${CONVERTER_TAG:-converter}"
    rm -rf "${TMP_DIR:?}/$tag"
    mkdir -p "$TMP_DIR/$tag"
    RUST_LOG="$RUST_LOG_LEVEL" NO_COLOR=1 "$@" "$bin" serve --listen 127.0.0.1:0 \
        --rest-url "$BACKEND_URL" --data-dir "$TMP_DIR/$tag" --cutover 2099-01-01 \
        "${CONVERTER_TLS_ARGS[@]}" >"$TMP_DIR/$tag.stdout" 2>"$TMP_DIR/$tag.stderr" &
    CONVERTER_PID=$!
    CONVERTER_URL="$(wait_listening "$CONVERTER_PID" "$TMP_DIR/$tag.stdout" converter)"
    grep -q "REST upstream: $BACKEND_URL" "$TMP_DIR/$tag.stdout" ||
        fail "the converter does not say it uses $BACKEND_URL"
    info "converter pid $CONVERTER_PID at $CONVERTER_URL (REST upstream $BACKEND_URL)"
}

# rest METHOD PATH EXPECTED [JSON] -- one STAR request to the backend; body in $LAST_BODY.
LAST_BODY=""
rest() {
    local method="$1" path="$2" expected="$3" body="${4:-}" status
    local args=("${CURL_TLS[@]}" -sS -o "$TMP_DIR/rest.out" -w '%{http_code}' -X "$method"
        -H "X-Organisation-Type: $ORG_TYPE" -H "X-Organisation-Code: $ORG_CODE"
        -H "X-User-Id: bench-seed")
    [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    status="$(curl "${args[@]}" "$BACKEND_URL$path")" || fail "$method $path: curl failed"
    LAST_BODY="$(cat "$TMP_DIR/rest.out")"
    [[ "$status" == "$expected" ]] || fail "$method $path answered $status, expected $expected: $LAST_BODY"
}

seed_backend() {
    section "seed: ${#READ_CPRS[@]} persons, 2 contact groups and 1 person category each"
    local cpr
    for cpr in "${READ_CPRS[@]}"; do
        rest PUT "$API/personregister" 204 \
            "{\"cpr\":\"$cpr\",\"kommunekode\":\"101\",\"akasse\":null,\"tilmeldt\":false}"
        rest POST "$API/kontaktgrupper" 201 \
            "{\"cpr\":\"$cpr\",\"kontaktgruppetype\":2,\"startdato\":\"2024-03-31\",\"haendelsestidspunkt\":\"2024-03-31T07:15:00Z\"}"
        # Ends the first the day before (rule 5): kunAktuelle leaves this one.
        rest POST "$API/kontaktgrupper" 201 \
            "{\"cpr\":\"$cpr\",\"kontaktgruppetype\":1,\"startdato\":\"2024-10-28\",\"haendelsestidspunkt\":\"2024-10-28T08:30:00Z\"}"
        rest POST "$API/personkategorier" 201 \
            "{\"cpr\":\"$cpr\",\"personkategoritype\":2,\"startdato\":\"2024-01-15\",\"haendelsestidspunkt\":\"2024-01-15T12:00:00Z\"}"
    done
    info "persons ${READ_CPRS[*]}"
}

# One request of each kind, checked, before any load.
check_requests() {
    section "check: one request of each kind answers 2xx with data"
    local out="$TMP_DIR/check.out" status
    status="$(curl "${CURL_TLS[@]}" -sS -o "$out" -w '%{http_code}' -H 'Content-Type: text/xml; charset=utf-8' \
        -H 'SOAPAction: "urn:dk:star:dfdg:PersonStatusService:20/GetVariablePersonStatus"' \
        --data-binary @- "$CONVERTER_URL/PersonStatusService/20" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:d="urn:dk:star:dfdg:common:1" xmlns:p="urn:dk:star:dfdg:PersonStatusService:20">
  <s:Header><d:RequestUserMetadata><d:OrganisationType>$ORG_TYPE</d:OrganisationType><d:OrganisationCode>$ORG_CODE</d:OrganisationCode></d:RequestUserMetadata></s:Header>
  <s:Body><p:GetVariablePersonStatusRequest><p:PersonCivilRegistrationIdentifier>${READ_CPRS[0]}</p:PersonCivilRegistrationIdentifier></p:GetVariablePersonStatusRequest></s:Body>
</s:Envelope>
XML
    )"
    [[ "$status" == 200 ]] || fail "GetVariablePersonStatus answered $status: $(cat "$out")"
    { grep -q '<ContactGroupIdentifier>' "$out" && grep -q '<PersonCategoryIdentifier>' "$out"; } ||
        fail "GetVariablePersonStatus answered without a contact group or person category: $(cat "$out")"
    local cg pc
    cg="$(grep -o '<ContactGroup>' "$out" | wc -l)"
    pc="$(grep -o '<PersonCategory>' "$out" | wc -l)"
    info "GetVariablePersonStatus via the converter -> 200, $cg contact group(s), $pc person category(ies), $(wc -c <"$out") bytes"
    local kind
    for kind in rest_kontaktgrupper rest_personkategorier rest_status; do
        local path="$API/kontaktgrupper?kunAktuelle=true"
        [[ "$kind" == rest_personkategorier ]] && path="$API/personkategorier?kunAktuelle=true"
        [[ "$kind" == rest_status ]] && path="$API/status"
        status="$(curl "${CURL_TLS[@]}" -sS -o "$out" -w '%{http_code}' -H "X-Organisation-Type: $ORG_TYPE" \
            -H "X-Organisation-Code: $ORG_CODE" -H "X-Cpr: ${READ_CPRS[0]}" "$BACKEND_URL$path")"
        [[ "$status" == 200 ]] || fail "GET $path answered $status: $(cat "$out")"
        info "GET $path direct -> 200, $(wc -c <"$out") bytes"
    done
    # One create of each kind (CPR numbers of day 29, which the load's numbers never use);
    # the load's own creates are checked by wrk.lua, answer by answer.
    status="$(curl "${CURL_TLS[@]}" -sS -o "$out" -w '%{http_code}' -H 'Content-Type: text/xml; charset=utf-8' \
        -H 'SOAPAction: "urn:dk:star:dfdg:PersonRegistrationService:9/CreateContactGroup"' \
        --data-binary @- "$CONVERTER_URL/PersonRegistrationService/9" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:d="urn:dk:star:dfdg:common:1" xmlns:p="urn:dk:star:dfdg:PersonRegistrationService:9">
  <s:Header><d:RequestUserMetadata><d:OrganisationType>$ORG_TYPE</d:OrganisationType><d:OrganisationCode>$ORG_CODE</d:OrganisationCode></d:RequestUserMetadata></s:Header>
  <s:Body><p:CreateContactGroupRequest><p:PersonCivilRegistrationIdentifier>2912990001</p:PersonCivilRegistrationIdentifier>
    <p:ContactGroup><p:ContactGroupTypeIdentifier>1</p:ContactGroupTypeIdentifier>
      <p:ContactGroupStartTime>2025-01-06T00:00:00+01:00</p:ContactGroupStartTime>
      <p:ContactGroupEventTime>2025-01-06T09:30:00+01:00</p:ContactGroupEventTime></p:ContactGroup>
  </p:CreateContactGroupRequest></s:Body>
</s:Envelope>
XML
    )"
    { [[ "$status" == 200 ]] && grep -q '<ContactGroupIdentifier>' "$out"; } ||
        fail "CreateContactGroup answered $status: $(cat "$out")"
    info "CreateContactGroup via the converter -> 200 with a ContactGroupIdentifier"
    rest POST "$API/kontaktgrupper" 201 \
        '{"cpr":"2912990002","kontaktgruppetype":1,"startdato":"2025-01-06","haendelsestidspunkt":"2025-01-06T08:30:00Z"}'
    info "POST $API/kontaktgrupper direct -> 201"
}

# ---------------------------------------------------------------------------------------------
# Measuring

cpu_ticks() { # "utime stime" of PID, in clock ticks (all threads, live and ended)
    local s
    s="$(cat "/proc/$1/stat")"
    s="${s##*) }"
    # shellcheck disable=SC2086
    set -- $s
    echo "${12} ${13}"
}

status_kib() { # FIELD PID -- VmHWM or VmRSS in KiB
    awk -v f="$1:" '$1 == f { print $2 }' "/proc/$2/status"
}

# The converter's own time (Prometheus histogram converter_own_seconds): "sum count".
own_seconds() {
    curl "${CURL_TLS[@]}" -sS "$CONVERTER_URL/metrics" | awk '
        /^vos_converter_converter_own_seconds_sum/ { s += $NF }
        /^vos_converter_converter_own_seconds_count/ { c += $NF }
        END { printf "%.9f %d\n", s, c }'
}

reset_hwm() { # VmHWM back to the current RSS (Linux clear_refs 5); ignored where refused
    echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true
}

# wrk_once KIND URL CONNECTIONS SECONDS SLOT -- one wrk measurement; prints its BENCHJSON.
wrk_once() {
    local kind="$1" url="$2" conns="$3" secs="$4" slot="$5" threads=1
    ((conns >= 64)) && threads=2
    local log="$TMP_DIR/wrk.log"
    wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 30s --latency -s "$HERE/wrk.lua" "$url" \
        -- "$kind" "$slot" "${READ_CPRS[@]}" >"$log" 2>&1 || {
        cat "$log" >&2
        fail "wrk $kind c$conns failed"
    }
    local json
    json="$(sed -n 's/^BENCHJSON //p' "$log")"
    [[ -n "$json" ]] || {
        cat "$log" >&2
        fail "wrk $kind c$conns printed no summary"
    }
    if ! python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(1 if d["non2xx"] or d["errors"] or not d["requests"] else 0)' "$json"; then
        cat "$log" >&2
        fail "wrk $kind c$conns: non-2xx answers or socket errors: $json"
    fi
    printf '%s\n' "$json"
}

# tls_once KIND URL CONNECTIONS SECONDS SLOT -- one examples/tls_load measurement (star.pem,
# organisation $ORG_TYPE/$ORG_CODE); prints its BENCHJSON. KIND is one of wrk.lua's, or
# <read kind>_reconnect_resumed / _reconnect_full: a new connection per request, TLS session
# resumption on / off (a reconnect that should have resumed and did not fails the run).
tls_once() {
    local kind="$1" url="$2" conns="$3" secs="$4" slot="$5" threads=1 base="$1"
    local extra=()
    ((conns >= 64)) && threads=2
    case "$kind" in
    *_reconnect_resumed)
        base="${kind%_reconnect_resumed}"
        extra=(--requests-per-connection 1 --resumption on)
        ;;
    *_reconnect_full)
        base="${kind%_reconnect_full}"
        extra=(--requests-per-connection 1 --resumption off)
        ;;
    esac
    local log="$TMP_DIR/tls_load.log"
    "$TMP_DIR/tls_load" --url "$url" --ca "$CERTS/ca.pem" --cert "$CERTS/star.pem" \
        --key "$CERTS/star-key.pem" --org-type "$ORG_TYPE" --org-code "$ORG_CODE" \
        --kind "$base" --connections "$conns" --threads "$threads" --duration "$secs" \
        --timeout 30 --slot "$slot" "${extra[@]}" "${READ_CPRS[@]}" >"$log" 2>&1 || {
        cat "$log" >&2
        fail "tls_load $kind c$conns failed"
    }
    local json
    json="$(sed -n 's/^BENCHJSON //p' "$log")"
    [[ -n "$json" ]] || {
        cat "$log" >&2
        fail "tls_load $kind c$conns printed no summary"
    }
    if ! python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(1 if d["non2xx"] or d["errors"] or not d["requests"] else 0)' "$json"; then
        cat "$log" >&2
        fail "tls_load $kind c$conns: non-2xx answers or socket errors: $json"
    fi
    # Reconnects: a connection per request; with resumption some resumed (with many
    # connections at once, rustls' store of 8 tickets per server can run dry: a full
    # handshake, counted), without none. Keep-alive: connections opened while the clock
    # ran are counted (and reported), not refused.
    if ! python3 - "$json" "$kind" <<'PY'; then
import json, sys
d, kind = json.loads(sys.argv[1]), sys.argv[2]
if "_reconnect_" not in kind:
    if d["connections_opened"]:
        print(f"  note: {kind}: {d['connections_opened']} connection(s) opened while the clock ran", file=sys.stderr)
    sys.exit(0)
if d["connections_opened"] < d["requests"]:
    sys.exit(1)
sys.exit(1 if (not d["handshakes_resumed"] if kind.endswith("_resumed") else d["handshakes_resumed"]) else 0)
PY
        cat "$log" >&2
        fail "tls_load $kind c$conns: connections or handshakes not as asked: $json"
    fi
    printf '%s\n' "$json"
}

# load_once KIND URL CONNECTIONS SECONDS SLOT -- wrk (load) or tls_load (tls).
load_once() {
    if [[ "$LOADGEN" == tls_load ]]; then
        tls_once "$@"
    else
        wrk_once "$@"
    fi
}

RAW=""
RAW_EXTRA="" # more fields of every raw record (scale: ,"n":N), a leading comma each
# measure RUN KIND CONNECTIONS SECONDS -- one measurement with the converter's and the
# backend's CPU, the converter's peak RSS and own time around it; appended to $RAW.
measure() {
    local run="$1" kind="$2" conns="$3" secs="$4" url="$BACKEND_URL" slot=0 side=rest
    if [[ "$kind" == soap_* ]]; then
        url="$CONVERTER_URL"
        side=soap
    fi
    if [[ "$kind" == *_create ]]; then
        slot=$NEXT_SLOT
        NEXT_SLOT=$((NEXT_SLOT + 1))
        ((slot < 84)) || fail "out of CPR number blocks: fewer runs"
    fi
    local hwm_before own0 own1 c0 c1 b0 b1 json hwm rss cu0 cs0 cu1 cs1 bu0 bs0 bu1 bs1
    hwm_before="$(status_kib VmHWM "$CONVERTER_PID")"
    reset_hwm "$CONVERTER_PID"
    own0="$(own_seconds)"
    c0="$(cpu_ticks "$CONVERTER_PID")"
    b0="$(cpu_ticks "$BACKEND_PID")"
    json="$(load_once "$kind" "$url" "$conns" "$secs" "$slot")"
    c1="$(cpu_ticks "$CONVERTER_PID")"
    b1="$(cpu_ticks "$BACKEND_PID")"
    own1="$(own_seconds)"
    hwm="$(status_kib VmHWM "$CONVERTER_PID")"
    rss="$(status_kib VmRSS "$CONVERTER_PID")"
    read -r cu0 cs0 <<<"$c0"
    read -r cu1 cs1 <<<"$c1"
    read -r bu0 bs0 <<<"$b0"
    read -r bu1 bs1 <<<"$b1"
    local extra
    extra="$(printf '"run":%d,"kind":"%s","side":"%s","connections":%d,"seconds":%d,"converter_cpu_ticks":%d,"converter_user_ticks":%d,"converter_sys_ticks":%d,"backend_cpu_ticks":%d,"clk_tck":%d,"converter_hwm_kib":%d,"converter_hwm_before_kib":%d,"converter_rss_kib":%d,"own_before":"%s","own_after":"%s","loadavg":"%s"' \
        "$run" "$kind" "$side" "$conns" "$secs" $((cu1 + cs1 - cu0 - cs0)) $((cu1 - cu0)) $((cs1 - cs0)) \
        $((bu1 + bs1 - bu0 - bs0)) "$CLK_TCK" \
        "$hwm" "$hwm_before" "$rss" "$own0" "$own1" "$(cut -d' ' -f1-3 /proc/loadavg)")"
    printf '%s\n' "${json%\}},$extra$RAW_EXTRA}" >>"$RAW"
    python3 - "${json}" "$((cu1 + cs1 - cu0 - cs0))" "$CLK_TCK" "$kind" "$conns" "$run" "$hwm" <<'PY'
import json, sys
d = json.loads(sys.argv[1]); ticks, tck = int(sys.argv[2]), int(sys.argv[3])
kind, conns, run, hwm = sys.argv[4], sys.argv[5], sys.argv[6], int(sys.argv[7])
rps = d["requests"] / (d["duration_us"] / 1e6)
cpu = "" if not kind.startswith("soap") else f"  converter CPU {ticks / tck / d['requests'] * 1e6:7.1f} us/req  peak RSS {hwm / 1024:5.1f} MiB"
hs = ""
if "_reconnect_" in kind:
    hs = (f"  handshakes {d['handshakes_resumed']} resumed / {d['handshakes_full']} full,"
          f" TLS p50 {d['tls_handshake_p50_us'] / 1000:.3f} ms")
print(f"  run {run} {kind:22s} c{conns:<4s} {d['requests']:7d} req {rps:8.0f} req/s  p50 {d['p50_us'] / 1000:7.3f} ms  p99 {d['p99_us'] / 1000:7.3f} ms{cpu}{hs}")
PY
}

# phase NAME KIND... -- KIND... -- warm-up, then BENCH_RUNS runs of each KIND at concurrency 1
# and 32; every other run in the second (reversed) order, so that a drift in the machine's load
# does not favour one side of a pair.
phase() {
    local name="$1" kind run conns
    shift
    local forward=() backward=()
    while (($# > 0)) && [[ "$1" != -- ]]; do
        forward+=("$1")
        shift
    done
    shift
    backward=("$@")
    section "$name: warm-up, ${WARMUP} s per scenario at concurrency 32"
    for kind in "${forward[@]}"; do
        measure 0 "$kind" 32 "$WARMUP"
    done
    for run in $(seq 1 "$RUNS"); do
        section "$name: run $run of $RUNS (${DURATION} s per measurement)"
        for conns in 1 32; do
            if ((run % 2)); then
                for kind in "${forward[@]}"; do measure "$run" "$kind" "$conns" "$DURATION"; done
            else
                for kind in "${backward[@]}"; do measure "$run" "$kind" "$conns" "$DURATION"; done
            fi
        done
    done
}

# at_256 KIND -- BENCH_RUNS measurements of KIND at 256 connections: the converter's peak RSS
# there (and its throughput).
at_256() {
    local run
    for run in $(seq 1 "$RUNS"); do
        section "$1 at 256 connections, run $run of $RUNS (${DURATION_256} s)"
        measure "$run" "$1" 256 "$DURATION_256"
    done
}

run_load() {
    ensure_tools wrk
    build_release
    mkdir -p "$OUT"
    TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/vos-bench.XXXXXX")"
    RAW="$OUT/load-raw.jsonl"
    : >"$RAW"
    start_pair
    local startup_hwm="$STARTUP_HWM"
    seed_backend
    check_requests
    local env_json="$OUT/load-env.json"
    write_env "$env_json" "$startup_hwm"

    # Reads first, then creates: the creates add thousands of contact groups, and the
    # backend's GetKontaktgrupper/status reads grow slower with every contact group in the
    # database (docs/performance.md, "backend"), which would shift the read pairs run by run.
    local reads=(soap_read rest_kontaktgrupper rest_status rest_personkategorier)
    local reads_reversed=(rest_personkategorier rest_status rest_kontaktgrupper soap_read)
    local creates=(soap_create rest_create)
    local creates_reversed=(rest_create soap_create)
    local kind
    phase reads "${reads[@]}" -- "${reads_reversed[@]}"
    at_256 soap_read
    phase creates "${creates[@]}" -- "${creates_reversed[@]}"
    at_256 soap_create
    section "summary"
    python3 "$HERE/summarize.py" load "$RAW" "$env_json" "$OUT/summary.json"
}

SETUP="vos-converter backend --dev (own process, fresh SQLite) + vos-converter serve --rest-url <backend> --cutover 2099-01-01 --identity header (own process)"
# The TLS mode: dev certificates, both processes with mutual TLS, the load of run_load (the
# keep-alive pairs) plus reconnects with and without session resumption, by tls_load.
run_tls() {
    ensure_tools
    build_release_tls
    mkdir -p "$OUT"
    TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/vos-bench.XXXXXX")"
    RAW="$OUT/tls-raw.jsonl"
    : >"$RAW"
    section "start: dev certificates, backend and converter with mutual TLS (release build)"
    cp "$BIN" "$TMP_DIR/vos-converter"
    cp "$LOAD_BIN" "$TMP_DIR/tls_load"
    info "binary: ${BIN#"$ROOT"/} built $(date -r "$BIN" '+%F %T'), sha256 $(sha256sum "$BIN" | cut -c1-16)"
    info "load generator: ${LOAD_BIN#"$ROOT"/} built $(date -r "$LOAD_BIN" '+%F %T')"
    CERTS="$TMP_DIR/certs"
    "$TMP_DIR/vos-converter" dev-certs "$CERTS" >"$TMP_DIR/dev-certs.stdout" ||
        fail "vos-converter dev-certs failed: $(cat "$TMP_DIR/dev-certs.stdout")"
    LOADGEN=tls_load
    ORG_CODE=55570117 # STAR's CVR: star.pem's agreement covers 5:55570117
    CURL_TLS=(--cacert "$CERTS/ca.pem" --cert "$CERTS/star.pem" --key "$CERTS/star-key.pem")
    BACKEND_TLS_ARGS=(--tls-cert "$CERTS/server.pem" --tls-key "$CERTS/server-key.pem"
        --client-ca "$CERTS/ca.pem" --trusted-client-cvr 55570117)
    CONVERTER_TLS_ARGS=(--tls-cert "$CERTS/server.pem" --tls-key "$CERTS/server-key.pem"
        --client-ca "$CERTS/ca.pem" --agreements "$CERTS/agreements.toml"
        --rest-client-cert "$CERTS/converter.pem" --rest-client-key "$CERTS/converter-key.pem"
        --rest-ca "$CERTS/ca.pem")
    SETUP="vos-converter backend --dev --tls-cert server.pem --client-ca ca.pem --trusted-client-cvr 55570117 (own process) + vos-converter serve --rest-url https://<backend> --cutover 2099-01-01 --tls-cert server.pem --client-ca ca.pem --agreements agreements.toml --rest-client-cert converter.pem --rest-ca ca.pem (own process); every client presents star.pem, organisation 5:55570117"
    start_backend "$TMP_DIR/vos-converter"
    [[ "$BACKEND_URL" == https://* ]] || fail "the backend does not listen with TLS: $BACKEND_URL"
    CONVERTER_BIN="$TMP_DIR/vos-converter" start_converter
    [[ "$CONVERTER_URL" == https://* ]] || fail "the converter does not listen with TLS: $CONVERTER_URL"
    grep -q "identity: certificate" "$TMP_DIR/converter.stdout" ||
        fail "the converter does not say it identifies callers by certificate"
    grep -q "REST upstream: $BACKEND_URL (mutual TLS)" "$TMP_DIR/converter.stdout" ||
        fail "the converter does not say it calls REST with mutual TLS"
    local startup_hwm
    startup_hwm="$(status_kib VmHWM "$CONVERTER_PID")"
    info "converter RSS after start: $(status_kib VmRSS "$CONVERTER_PID") KiB (peak $startup_hwm KiB)"
    seed_backend
    check_requests
    local env_json="$OUT/tls-env.json"
    write_env "$env_json" "$startup_hwm"

    # As run_load (reads first, then creates), with the reconnects among the reads.
    local reads=(soap_read rest_kontaktgrupper rest_status rest_personkategorier
        soap_read_reconnect_resumed soap_read_reconnect_full
        rest_kontaktgrupper_reconnect_resumed rest_kontaktgrupper_reconnect_full)
    local reads_reversed=(rest_kontaktgrupper_reconnect_full rest_kontaktgrupper_reconnect_resumed
        soap_read_reconnect_full soap_read_reconnect_resumed
        rest_personkategorier rest_status rest_kontaktgrupper soap_read)
    local creates=(soap_create rest_create)
    local creates_reversed=(rest_create soap_create)
    phase reads "${reads[@]}" -- "${reads_reversed[@]}"
    at_256 soap_read
    phase creates "${creates[@]}" -- "${creates_reversed[@]}"
    at_256 soap_create
    section "summary"
    python3 "$HERE/summarize.py" tls "$RAW" "$env_json" "$OUT/tls-summary.json"
}

write_env() { # FILE STARTUP_HWM_KIB -- the machine and the setup, for the summary
    local file="$1" hwm="$2"
    python3 - "$file" "$hwm" "$RUNS" "$DURATION" "$DURATION_256" "$WARMUP" "$RUST_LOG_LEVEL" \
        "$BACKEND_URL" "$CONVERTER_URL" "$ROOT" "$REST_LATENCY_MS" "$SETUP" "$LOADGEN" <<'PY'
import json, os, platform, subprocess, sys
f, hwm, runs, dur, dur256, warm, log, backend, conv, root, latency, setup, loadgen = sys.argv[1:]
def run(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=30).stdout.strip()
    except Exception:
        return ""
model = ""
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
json.dump({
    "cpus": os.cpu_count(),
    "cpu_model": model,
    "kernel": platform.release(),
    "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
    "mem_total_kib": next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), None),
    "rustc": run("rustc", "--version"),
    "git_head": run("git", "rev-parse", "--short", "HEAD"),
    "git_dirty": bool(run("git", "status", "--porcelain", "--untracked-files=no")),
    "loadgen": "wrk" if loadgen == "wrk" else "examples/tls_load.rs (hyper-util client, rustls, aws-lc-rs)",
    "wrk": ((run("wrk", "-v") or "").splitlines() or [""])[0] if loadgen == "wrk" else "",
    "runs": int(runs), "duration_s": int(dur), "duration_256_s": int(dur256), "warmup_s": int(warm),
    "rust_log": log,
    "rest_latency_ms": int(latency),
    "converter_startup_hwm_kib": int(hwm),
    "setup": setup,
}, open(f, "w"), indent=2)
PY
}

# ---------------------------------------------------------------------------------------------
# scale: GetPersonHistory with N contact group versions

# scale_cpr N -- the fictitious person of history length N: day 31, month 01, then 85 and N
# (four digits); the load's numbers never look like that.
scale_cpr() { printf '310185%04d' "$1"; }

run_scale() {
    RUNS="${BENCH_RUNS:-3}"
    DURATION="${BENCH_DURATION:-5}"
    WARMUP="${BENCH_WARMUP:-2}"
    local ns=() n largest=0
    read -r -a ns <<<"${BENCH_SCALE_NS:-1 50 400 2000}"
    ((${#ns[@]} > 0)) || fail "BENCH_SCALE_NS is empty"
    for n in "${ns[@]}"; do
        [[ "$n" =~ ^[1-9][0-9]{0,3}$ ]] || fail "BENCH_SCALE_NS: $n is not a number from 1 to 9999"
        ((n > largest)) && largest=$n
    done
    ensure_tools wrk
    build_release
    mkdir -p "$OUT"
    TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/vos-bench.XXXXXX")"
    RAW="$OUT/scale-raw.jsonl"
    : >"$RAW"
    local sizes="$OUT/scale-sizes.jsonl"
    : >"$sizes"
    start_pair
    local startup_hwm="$STARTUP_HWM"

    section "seed: one person per N = ${ns[*]}, one contact group with N versions, one person category"
    for n in "${ns[@]}"; do
        python3 "$HERE/history.py" seed "$BACKEND_URL" "$(scale_cpr "$n")" "$n" ||
            fail "seeding the history of N = $n failed"
    done
    section "check: per N, N <ContactGroupHistory> via the converter and N versions from REST"
    for n in "${ns[@]}"; do
        python3 "$HERE/history.py" verify "$BACKEND_URL" "$CONVERTER_URL" "$(scale_cpr "$n")" "$n" >>"$sizes" ||
            fail "the history of N = $n is not answered whole"
    done
    SETUP="$SETUP; per N one person with one contact group of N versions (1 create + N-1 updates) and one person category (scripts/bench/history.py)"
    local env_json="$OUT/scale-env.json"
    write_env "$env_json" "$startup_hwm"

    local forward=(soap_history rest_kontaktgruppehistorik rest_personkategorihistorik)
    local backward=(rest_personkategorihistorik rest_kontaktgruppehistorik soap_history)
    local kind run
    for n in "${ns[@]}"; do
        READ_CPRS=("$(scale_cpr "$n")")
        RAW_EXTRA=",\"n\":$n"
        section "N = $n: warm-up, ${WARMUP} s per scenario at concurrency 1"
        for kind in "${forward[@]}"; do measure 0 "$kind" 1 "$WARMUP"; done
        for run in $(seq 1 "$RUNS"); do
            section "N = $n: run $run of $RUNS (${DURATION} s per measurement, concurrency 1)"
            if ((run % 2)); then
                for kind in "${forward[@]}"; do measure "$run" "$kind" 1 "$DURATION"; done
            else
                for kind in "${backward[@]}"; do measure "$run" "$kind" 1 "$DURATION"; done
            fi
        done
    done
    READ_CPRS=("$(scale_cpr "$largest")")
    RAW_EXTRA=",\"n\":$largest"
    at_256 soap_history
    RAW_EXTRA=""
    section "summary"
    python3 "$HERE/summarize.py" scale "$RAW" "$env_json" "$sizes" "$OUT/scale-summary.json"
}

# ---------------------------------------------------------------------------------------------
# wsb: WSB delivery's cost to a create, its lag and its throughput

# The binary and the receiver (examples/wsb_receiver.rs), release; with BENCH_BIN only the
# receiver is built.
build_release_wsb() {
    section "build: release binary and examples/wsb_receiver"
    if [[ "${BENCH_SKIP_BUILD:-}" == 1 && -x "$BIN" && -x "$RECEIVER_BIN" ]]; then
        info "BENCH_SKIP_BUILD=1: using $BIN and $RECEIVER_BIN as they are"
        return 0
    fi
    local targets=(--example wsb_receiver)
    if [[ -n "${BENCH_BIN:-}" ]]; then
        [[ -x "$BIN" ]] || fail "BENCH_BIN=$BIN is not an executable"
        info "BENCH_BIN: using $BIN as it is"
    else
        targets+=(--bin vos-converter)
    fi
    (cd "$ROOT" && cargo build --release --locked "${targets[@]}")
    [[ -x "$BIN" ]] || fail "no binary at $BIN"
    [[ -x "$RECEIVER_BIN" ]] || fail "no receiver at $RECEIVER_BIN"
}

start_receiver() {
    "$TMP_DIR/wsb_receiver" --listen 127.0.0.1:0 \
        >"$TMP_DIR/receiver.stdout" 2>"$TMP_DIR/receiver.stderr" &
    RECEIVER_PID=$!
    RECEIVER_URL="$(wait_listening "$RECEIVER_PID" "$TMP_DIR/receiver.stdout" receiver)"
    info "receiver pid $RECEIVER_PID at $RECEIVER_URL"
}

# receiver METHOD PATH -- a control request to the receiver (stats, hold); the answer on stdout.
receiver() {
    local status
    status="$(curl -sS -o "$TMP_DIR/receiver.out" -w '%{http_code}' -X "$1" "$RECEIVER_URL$2")" ||
        fail "receiver $1 $2: curl failed"
    [[ "$status" == 2?? ]] || fail "receiver $1 $2 answered $status"
    cat "$TMP_DIR/receiver.out"
}

WSB_SUBS=() # the current subscriptions' ids
# Three STAR subscriptions to the receiver, at /wsb/a, /wsb/b and /wsb/c.
wsb_subscribe() {
    WSB_SUBS=()
    local p id
    for p in a b c; do
        rest POST "$API/wsb/abonnementer" 201 \
            "{\"endpoint\":\"$RECEIVER_URL/wsb/$p\",\"entiteter\":[\"Kontaktgruppe\",\"Personkategori\",\"CprSkift\"]}"
        id="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["id"])' "$LAST_BODY")" ||
            fail "no subscription id in $LAST_BODY"
        WSB_SUBS+=("$id")
    done
}

wsb_unsubscribe() {
    local id
    for id in "${WSB_SUBS[@]}"; do
        rest DELETE "$API/wsb/abonnementer/$id" 204
    done
    WSB_SUBS=()
}

# paced_once RATE SECONDS SLOT -- RATE creates a second on one connection (wsb.py paced);
# prints its BENCHJSON.
paced_once() {
    local log="$TMP_DIR/paced.log" json
    python3 "$HERE/wsb.py" paced "$BACKEND_URL" "$1" "$2" "$3" >"$log" 2>&1 || {
        cat "$log" >&2
        fail "paced creates at $1/s failed"
    }
    json="$(sed -n 's/^BENCHJSON //p' "$log")"
    if ! python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(1 if d["non2xx"] or d["errors"] or not d["requests"] else 0)' "$json"; then
        cat "$log" >&2
        fail "paced creates at $1/s: non-2xx answers or errors: $json"
    fi
    printf '%s\n' "$json"
}

# wsb_measure RUN VARIANT LOAD SECONDS [ORDER] -- creates against the backend (LOAD cN: wrk
# rest_create with N connections; rN: N a second, paced), with no subscription (VARIANT
# none) or three (subs3: made before, the backlog waited for and the subscriptions deleted
# after), or the held backlog (burst: three subscriptions, the receiver answering 503 while
# the creates run, then 204); the backend's WSB metrics before and after, its and the
# receiver's CPU; appended to $RAW.
wsb_measure() {
    local run="$1" variant="$2" load="$3" secs="$4" order="${5:-}" conns=1
    local slot=$NEXT_SLOT
    NEXT_SLOT=$((NEXT_SLOT + 1))
    ((slot < 84)) || fail "out of CPR number blocks: fewer runs"
    local m0="$TMP_DIR/wsb-m0.json" m1="$TMP_DIR/wsb-m1.json" st="$TMP_DIR/wsb-receiver.json"
    local json b0 b1 b2 r0 r2 t_start t_end t_release="" refused=0
    receiver DELETE /stats >/dev/null
    if [[ "$variant" == burst ]]; then
        receiver PUT /hold >/dev/null
    fi
    if [[ "$variant" != none ]]; then
        wsb_subscribe
    fi
    python3 "$HERE/wsb.py" metrics "$BACKEND_URL" >"$m0" || fail "cannot read the backend's metrics"
    b0="$(cpu_ticks "$BACKEND_PID")"
    r0="$(cpu_ticks "$RECEIVER_PID")"
    t_start="$(date +%s.%N)"
    case "$load" in
    c*)
        conns="${load#c}"
        json="$(wrk_once rest_create "$BACKEND_URL" "$conns" "$secs" "$slot")"
        ;;
    r*) json="$(paced_once "${load#r}" "$secs" "$slot")" ;;
    *) fail "wsb_measure: unknown load $load" ;;
    esac
    t_end="$(date +%s.%N)"
    b1="$(cpu_ticks "$BACKEND_PID")"
    if [[ "$variant" == none ]]; then
        python3 "$HERE/wsb.py" metrics "$BACKEND_URL" >"$m1" || fail "cannot read the backend's metrics"
        echo '{}' >"$st"
    else
        if [[ "$variant" == burst ]]; then
            sleep 0.5 # the creates still in flight when wrk stopped commit
            refused="$(receiver GET /stats | python3 -c 'import json, sys; print(json.load(sys.stdin)["refused"])')"
            receiver DELETE /stats >/dev/null
            t_release="$(date +%s.%N)"
            receiver DELETE /hold >/dev/null
        fi
        python3 "$HERE/wsb.py" wait "$BACKEND_URL" "$m0" "${#WSB_SUBS[@]}" 600 "${WSB_SUBS[@]}" >"$m1" ||
            fail "$variant $load: the events were not all delivered"
        receiver GET /stats >"$st"
    fi
    b2="$(cpu_ticks "$BACKEND_PID")"
    r2="$(cpu_ticks "$RECEIVER_PID")"
    local subs
    subs="$(
        IFS=,
        echo "${WSB_SUBS[*]}"
    )"
    [[ "$variant" == none ]] || wsb_unsubscribe
    local bu0 bs0 bu1 bs1 bu2 bs2 ru0 rs0 ru2 rs2
    read -r bu0 bs0 <<<"$b0"
    read -r bu1 bs1 <<<"$b1"
    read -r bu2 bs2 <<<"$b2"
    read -r ru0 rs0 <<<"$r0"
    read -r ru2 rs2 <<<"$r2"
    python3 "$HERE/wsb.py" record "$RAW" "$json" "$m0" "$m1" "$st" \
        "run=$run" "variant=$variant" "load=$load" "connections=$conns" "seconds=$secs" "order=$order" \
        "t_start=$t_start" "t_end=$t_end" "t_release=$t_release" "refused_while_held=$refused" \
        "backend_ticks=$((bu1 + bs1 - bu0 - bs0))" "backend_drain_ticks=$((bu2 + bs2 - bu1 - bs1))" \
        "receiver_ticks=$((ru2 + rs2 - ru0 - rs0))" "clk_tck=$CLK_TCK" "subscriptions=$subs" \
        "loadavg=$(cut -d' ' -f1-3 /proc/loadavg)" || fail "cannot record the $variant measurement"
}

# One create with three subscriptions: each gets its event, with a readable tidspunkt.
wsb_check() {
    section "check: a create's event reaches three subscriptions"
    local m0="$TMP_DIR/wsb-m0.json"
    receiver DELETE /stats >/dev/null
    wsb_subscribe
    python3 "$HERE/wsb.py" metrics "$BACKEND_URL" >"$m0" || fail "cannot read the backend's metrics"
    # A CPR number of day 29, which the creates' numbers (days 01-28) never use.
    rest POST "$API/kontaktgrupper" 201 \
        '{"cpr":"2912990003","kontaktgruppetype":1,"startdato":"2025-01-06","haendelsestidspunkt":"2025-01-06T08:30:00Z"}'
    python3 "$HERE/wsb.py" wait "$BACKEND_URL" "$m0" 3 30 "${WSB_SUBS[@]}" >/dev/null ||
        fail "the create's event did not reach the three subscriptions"
    local stats
    stats="$(receiver GET /stats)"
    python3 - "$stats" <<'PY' || fail "the receiver did not get one event per subscription: $stats"
import json, sys
s = json.loads(sys.argv[1])
ok = s["count"] == 3 and sorted(s["paths"]) == ["/wsb/a", "/wsb/b", "/wsb/c"] and s["lag"]["n"] == 3
sys.exit(0 if ok else 1)
PY
    info "one create -> one event at each of /wsb/a, /wsb/b, /wsb/c: $stats"
    wsb_unsubscribe
    receiver DELETE /stats >/dev/null
}

run_wsb() {
    RUNS="${BENCH_RUNS:-3}"
    DURATION="${BENCH_DURATION:-5}"
    WARMUP="${BENCH_WARMUP:-2}"
    local RATE="${BENCH_WSB_RATE:-100}"
    [[ "$RATE" =~ ^[1-9][0-9]{0,3}$ ]] || fail "BENCH_WSB_RATE: $RATE is not a number from 1 to 9999"
    ensure_tools wrk
    build_release_wsb
    mkdir -p "$OUT"
    TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/vos-bench.XXXXXX")"
    RAW="$OUT/wsb-raw.jsonl"
    : >"$RAW"
    section "start: backend and WSB receiver as separate processes (release build)"
    cp "$BIN" "$TMP_DIR/vos-converter"
    cp "$RECEIVER_BIN" "$TMP_DIR/wsb_receiver"
    info "binary: ${BIN#"$ROOT"/} built $(date -r "$BIN" '+%F %T'), sha256 $(sha256sum "$BIN" | cut -c1-16)"
    info "receiver: ${RECEIVER_BIN#"$ROOT"/} built $(date -r "$RECEIVER_BIN" '+%F %T')"
    info "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    BACKEND_EXTRA_ARGS=(--wsb-retry-initial-ms 20 --wsb-retry-max-ms 100)
    start_backend "$TMP_DIR/vos-converter"
    start_receiver
    wsb_check
    SETUP="vos-converter backend --dev --wsb-retry-initial-ms 20 --wsb-retry-max-ms 100 (own process, fresh SQLite) + examples/wsb_receiver (own process, one thread, answers 204); creates: wrk rest_create POST kontaktgrupper direct as STAR; subs3: three STAR subscriptions to the receiver at three paths"
    local env_json="$OUT/wsb-env.json"
    write_env "$env_json" 0

    local run load variant
    section "warm-up: ${WARMUP} s of creates at concurrency 32, without and with three subscriptions"
    wsb_measure 0 none c32 "$WARMUP"
    wsb_measure 0 subs3 c32 "$WARMUP"
    for run in $(seq 1 "$RUNS"); do
        section "run $run of $RUNS (${DURATION} s per measurement)"
        for load in "r$RATE" c1 c32; do
            if ((run % 2)); then
                for variant in none subs3; do wsb_measure "$run" "$variant" "$load" "$DURATION" none-first; done
            else
                for variant in subs3 none; do wsb_measure "$run" "$variant" "$load" "$DURATION" subs3-first; done
            fi
        done
    done
    section "backlog: ${DURATION} s of creates at concurrency 32 while the receiver answers 503, then its drain"
    wsb_measure 1 burst c32 "$DURATION"
    section "summary"
    python3 "$HERE/wsb.py" summary "$RAW" "$env_json" "$OUT/wsb.json"
}

# ---------------------------------------------------------------------------------------------
# callgrind

# callgrind_run KIND N -- the converter under callgrind, N requests of KIND, stopped; the
# profile's total Ir.
callgrind_run() {
    local kind="$1" n="$2" file="$OUT/callgrind.$1.$2.out"
    rm -f "$file"
    CONVERTER_BIN="$CG_BIN" CONVERTER_TAG="converter-$kind-$n" \
        start_converter valgrind --tool=callgrind --callgrind-out-file="$file" --dump-instr=no
    local slot=$NEXT_SLOT
    NEXT_SLOT=$((NEXT_SLOT + 1))
    python3 "$HERE/client.py" "$CONVERTER_URL" "$kind" "$n" "$slot" "${READ_CPRS[@]}" >/dev/null ||
        fail "the $kind requests under callgrind failed"
    stop_process "$CONVERTER_PID" converter 30
    CONVERTER_PID=""
    [[ -s "$file" ]] || fail "callgrind wrote no profile for $kind $n"
    local total
    total="$(sed -n 's/^totals: *\([0-9]*\).*/\1/p; s/^summary: *\([0-9]*\).*/\1/p' "$file" | head -n1)"
    [[ -n "$total" ]] || fail "no total in $file"
    info "$kind x $n: $total Ir in all (start, $n requests, stop)"
    echo "$kind $n $total" >>"$OUT/callgrind-raw.txt"
}

run_callgrind() {
    ensure_tools valgrind
    build_callgrind
    mkdir -p "$OUT"
    TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/vos-bench.XXXXXX")"
    : >"$OUT/callgrind-raw.txt"
    section "start: backend (own process), seed"
    cp "$CG_BIN" "$TMP_DIR/vos-converter-cg"
    CG_BIN="$TMP_DIR/vos-converter-cg"
    start_backend "$CG_BIN"
    seed_backend
    local kind n2=$((CG_N * 2))
    for kind in soap_read soap_create; do
        section "callgrind: $kind, $CG_N and $n2 requests (valgrind --tool=callgrind)"
        callgrind_run "$kind" "$CG_N"
        callgrind_run "$kind" "$n2"
        # Per-request profile: each function's Ir of the longer run minus the shorter, / N.
        local mode
        for mode in yes no; do
            callgrind_annotate --auto=no --inclusive="$mode" --threshold=100 \
                "$OUT/callgrind.$kind.$CG_N.out" >"$OUT/callgrind.$kind.$CG_N.inclusive-$mode.txt" ||
                fail "callgrind_annotate failed"
            callgrind_annotate --auto=no --inclusive="$mode" --threshold=100 \
                "$OUT/callgrind.$kind.$n2.out" >"$OUT/callgrind.$kind.$n2.inclusive-$mode.txt" ||
                fail "callgrind_annotate failed"
        done
    done
    section "summary"
    python3 "$HERE/summarize.py" callgrind "$OUT/callgrind-raw.txt" "$CG_N" "$OUT"
}

# ---------------------------------------------------------------------------------------------
# criterion

run_micro() {
    section "cargo bench --bench convert (criterion: parse, map, write, fault, all)"
    mkdir -p "$OUT"
    local args
    read -r -a args <<<"${BENCH_MICRO_ARGS:---warm-up-time 1 --measurement-time 3}"
    (cd "$ROOT" && cargo bench --locked --bench convert -- "${args[@]}") | tee "$OUT/micro.txt"
    python3 "$HERE/summarize.py" micro "$OUT/micro.txt" "$OUT/micro.json"
}

# Starts the backend and the converter as separate processes from a private copy of $BIN (a
# rebuild of target/release during the run changes nothing here); sets STARTUP_HWM, the
# converter's peak RSS after start (KiB).
start_pair() {
    section "start: backend and converter as separate processes (release build)"
    cp "$BIN" "$TMP_DIR/vos-converter"
    info "binary: ${BIN#"$ROOT"/} built $(date -r "$BIN" '+%F %T'), sha256 $(sha256sum "$BIN" | cut -c1-16)"
    start_backend "$TMP_DIR/vos-converter"
    CONVERTER_BIN="$TMP_DIR/vos-converter" start_converter
    STARTUP_HWM="$(status_kib VmHWM "$CONVERTER_PID")"
    info "converter RSS after start: $(status_kib VmRSS "$CONVERTER_PID") KiB (peak $STARTUP_HWM KiB)"
}

main() {
    local mode="${1:-load}"
    case "$mode" in
    load) run_load ;;
    callgrind) run_callgrind ;;
    micro) run_micro ;;
    tls) run_tls ;;
    scale) run_scale ;;
    wsb) run_wsb ;;
    all)
        run_load
        stop_process "$CONVERTER_PID" converter 30
        stop_process "$BACKEND_PID" backend
        CONVERTER_PID="" BACKEND_PID=""
        rm -rf "$TMP_DIR"
        run_callgrind
        run_micro
        ;;
    *)
        echo "usage: scripts/bench.sh [load|callgrind|micro|tls|scale|wsb|all]" >&2
        exit 2
        ;;
    esac
}

main "$@"
