#!/usr/bin/env bash
# The interop suite of vos-converter: real third-party clients against the real binary.
#
# What it does, in order:
#   1. setup_python      a Python venv in .interop/venv with a pinned schemathesis from PyPI
#                        (reused when it already has the pinned version).
#   2. build_release     cargo build --release (--locked when Cargo.lock exists).
#   3. start_backend     the reference REST service on an ephemeral port, fresh temporary
#                        database, --dev; killed on exit.
#   4. seed_backend      a few fictitious persons through SetPersonRegister, one contact group
#                        and one person category, so generated requests can hit real data.
#   5. run_schemathesis  the OpenAPI contract test, with the STAR identity fixed.
#   6. run_schemathesis_noident
#                        a shorter pass (half the examples) where schemathesis generates
#                        the identity headers too.
#   7. check_logs        no CPR number in the backend's log (rule: CPR numbers never in logs).
#   8. start_converter   `vos-converter serve` on an ephemeral port with a fresh data directory:
#                        the embedded backend in dev mode, seeded with mappings/dev-seed.toml
#                        (0101701111 and 0202702222 of municipality 101, the latter enrolled;
#                        0303703333 of 147; 0404704444 of 751, enrolled); the default cutover,
#                        and Jobcenter 1:101 and A-kasse 2:34 with their own 60 days ahead;
#                        WSRM subscribers Jobcenter 1:101 and A-kasse 2:12 (their legacy queues
#                        filled through the converter's own WSB subscription); killed on exit.
#   9. validate_wsdl     the WSDL it serves at /PersonRegistrationService/9?wsdl: well-formed
#                        (xmllint), its inline schemas compile and validate sample messages
#                        (xmllint --schema and xmlschema), it validates against the WSDL 1.1
#                        schema xmlschema ships, both addresses are the converter's URL.
#  10. run_zeep          zeep (PyPI, pinned, in the same venv) loads the served WSDL and drives
#                        every PersonRegistrationService operation over the SOAP 1.1 and 1.2
#                        ports: ids, rule faults 100028/100029/900509/900203, the retired
#                        operation 900510, a retried wsa:MessageID (scripts/interop/zeep_prs.py).
#  11. run_zeep_reads    zeep loads the served PersonStatusService v20 and PersonHistoryService v4
#                        WSDLs and reads over the SOAP 1.1 and 1.2 ports: before the cutover
#                        (Jobcenter 1:101 after registering through PRS: current contact groups and
#                        person categories, every version oldest first with RegistrationTime,
#                        PeriodStartDate/PeriodEndDate, Danish dates and offsets, fault 900203 for
#                        another municipality's citizen; A-kasse 2:34: its contact group types
#                        only, no person categories), and past it (Kommune 3:101, A-kasse 2:12:
#                        the collections present and empty, no REST call by /metrics)
#                        (scripts/interop/zeep_reads.py).
#  12. run_npm_soap      the npm package soap (pinned by scripts/interop/package-lock.json, npm
#                        ci into .interop/node) loads the served WSDL and creates and updates a
#                        contact group over both ports, fault 100028 included
#                        (scripts/interop/npm_soap_prs.js).
#  13. run_wsrm          zeep and npm soap as legacy WSRM subscribers: the served WsrmService v3
#                        and WsrmMessageService v10 WSDLs over the SOAP 1.1 and 1.2 ports. zeep
#                        (scripts/interop/zeep_wsrm.py): Jobcenter 1:101's queue drained, then
#                        contact groups of type 1 and 13 and a person category registered through
#                        PRS for 0101701111 (municipality 101, a-kasse 12); CreateSequence names
#                        V5 3, V4 3, V1 1; the messages carry PRS's ids, RegisteringAuthority 1/101
#                        (V5/V1, not V4), Created/Updated; CloseSequence gives them again with
#                        the same MessageIdentifiers, TerminateSequence never again; A-kasse 2:12
#                        gets only the type 13's V5; 900530 for another's sequence, 900531 for a
#                        non-subscriber (1:147). npm soap (scripts/interop/npm_soap_wsrm.js):
#                        drain, a contact group through PRS, CreateSequence, V5/V4,
#                        TerminateSequence.
#  14. check_dashboard   a scripted mix of SOAP calls from three organisations (Jobcenter 1:101
#                        PRS creates and a PSS read before its own cutover, A-kasse 2:12 PSS
#                        reads, Kommune 3:147 PHS reads and a fault), then: /metrics and
#                        /api/migration agree (scripts/interop/migration_agree.py); the Grafana
#                        dashboard deploy/grafana/vos-converter.json is importable, its PromQL
#                        parses (promql-parser, PyPI, pinned) and names only exposed metrics
#                        (scripts/interop/grafana_check.py); /dashboard in headless Chromium
#                        (Debian's chromium driven by playwright-core from the npm registry, no
#                        request allowed but to the converter) shows the three organisations and
#                        a drawn chart that match /api/migration
#                        (scripts/interop/dashboard_check.js), screenshot in
#                        target/dashboard.png; no CPR number in the page, /metrics or
#                        /api/migration.
#  15. check_converter_logs
#                        no CPR number in the converter's log either (check_dashboard's calls
#                        included).
#  16. https_door        the HTTPS door, with the certificates of `vos-converter dev-certs` (and a
#                        second set whose CA nobody trusts), every process of its own on loopback:
#                        (1) `serve --tls-cert --client-ca --client-crl --agreements`: zeep with
#                        jobcenter-101.pem (OCES3) creates a contact group as 1:101 and reads it
#                        back from REST, reads as 3:101, and its claim of STAR 5:55570117 is fault
#                        900511 over both ports; no client certificate, or one of the other CA, or
#                        no ca.pem to verify the server: the handshake fails
#                        (scripts/interop/zeep_tls.py); npm soap (ClientSSLSecurity) with
#                        akasse-12.pem (OCES2) reads as 2:12 and is refused as 2:34 and 1:101
#                        (900511) (scripts/interop/npm_soap_tls.js);
#                        (2) Debian's nginx (ssl_verify_client on, $ssl_client_escaped_cert in
#                        X-Client-Cert, X-Forwarded-Host/-Proto) in front of `serve --trusted-proxy
#                        127.0.0.1/32` (identity proxy): the same zeep calls through it, the WSDLs
#                        name https://localhost:NGINXPORT, nginx answers 400 without a certificate
#                        or with the other CA's; bypassing nginx from 127.0.0.2 with a forged
#                        X-Client-Cert is 900512 and its X-Forwarded-* are ignored, from 127.0.0.1
#                        without the header, or with the other CA's certificate in it, 900512;
#                        (3) `backend --tls-cert --client-ca --trusted-client-cvr 55570117`, seeded
#                        over mutual TLS with converter.pem; jobcenter-101.pem's identity headers
#                        are problem+json fejlkode 900205, no client certificate fails the
#                        handshake; `serve --rest-url` without a door refuses to start; `serve
#                        --rest-url https://localhost:PORT --rest-client-cert converter.pem` with
#                        the TLS door: the zeep calls end to end through both TLS hops.
#
# Later interop sections are new functions called from main() through `timed`; they can use
# $BASE_URL, $CONVERTER_URL, $INTEROP, $LOG_DIR, $VENV and the helpers below.
#
# Runs as root on a possibly new Debian machine (CI) as well as on a developer's machine.
# Downloads nothing but registry packages (Debian packages when python3-venv, curl, xmllint,
# Node.js, chromium or nginx is missing, PyPI for schemathesis, zeep, xmlschema and promql-parser, the
# npm registry for soap and playwright-core; never a browser build).
# Exit status: 0 when every section passed.
#
# Environment:
#   INTEROP_MAX_EXAMPLES   examples per operation in the main pass (default 50)
#   INTEROP_SEED           the hypothesis seed of both passes (default 20251127)
#   INTEROP_SKIP_BUILD=1   use the existing target/release binary as it is
#   INTEROP_ONLY=https-door
#                          only the tools, the build and the HTTPS door section (its own
#                          processes; none of the main backend's or converter's)
#   INTEROP_ONLY=schemathesis
#                          only the tools, the build, the backend and its schemathesis passes
#                          and log check
#   NGINX                  the nginx binary of the HTTPS door section (default /usr/sbin/nginx)
#   INTEROP_RUST_LOG       the RUST_LOG of the backend and of the converter
#                          (default info,vos_converter=debug)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INTEROP="$ROOT/.interop"
VENV="$INTEROP/venv"
LOG_DIR="$INTEROP/logs"
BIN="$ROOT/target/release/vos-converter"

SCHEMATHESIS_VERSION="4.32.5"
# The SOAP sections' Python packages, in the same venv. zeep brings lxml.
ZEEP_VERSION="4.3.3"
XMLSCHEMA_VERSION="4.3.2"
# The dashboard section's PromQL parser (PyPI, same venv) and browser (Debian's chromium, driven
# by playwright-core, pinned in scripts/interop/package.json like soap).
PROMQL_PARSER_VERSION="0.11.0"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
# The npm soap client: its version is pinned in scripts/interop/package.json and, with every
# dependency, in scripts/interop/package-lock.json (no download addresses in it).
NODE_DIR="$INTEROP/node"
NPM_SPEC_DIR="$ROOT/scripts/interop"
MAX_EXAMPLES="${INTEROP_MAX_EXAMPLES:-50}"
SEED="${INTEROP_SEED:-20251127}"

# The fixed identity of the main pass: STAR may do everything.
ORG_TYPE="5"
ORG_CODE="12345678"
API="/personvisitering/v1"

# Fictitious CPR numbers (ten digits, a valid day and month first). Every one of them is fed
# to the person register, and none of them may ever appear in the backend's log.
SEED_CPRS=(0101800001 1502920002 3112650003 2806000004)

BACKEND_PID=""
TMP_DIR=""
BASE_URL=""
CONVERTER_PID=""
CONVERTER_DIR=""
CONVERTER_URL=""  # http://127.0.0.1:PORT
PRS_URL=""        # $CONVERTER_URL/PersonRegistrationService/9
KONTAKTGRUPPE_ID=""
PERSONKATEGORI_ID=""
KONTAKTGRUPPETYPER=""
PERSONKATEGORITYPER=""
FAILED_SECTIONS=()
SECTION_TIMES=()

# ---------------------------------------------------------------------------------------------
# Helpers

SCRIPT_NAME=interop
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

# The one EXIT trap: stops the converter and the backend, removes their temporary folders.
cleanup() {
    local rc=$?
    door_stop_all
    stop_process "$CONVERTER_PID" converter
    stop_process "$BACKEND_PID" backend
    local dir
    for dir in "$CONVERTER_DIR" "$TMP_DIR" "$DOOR_DIR"; do
        if [[ -n "$dir" && -d "$dir" ]]; then
            rm -rf "$dir"
        fi
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# api METHOD PATH EXPECTED_STATUS [JSON_BODY] -- one request with the STAR identity; the
# response body goes to $LAST_BODY. Fails unless the status is the expected one.
LAST_BODY=""
api() {
    local method="$1" path="$2" expected="$3" body="${4:-}"
    local out="$TMP_DIR/response.json" status
    local args=(-sS -o "$out" -w '%{http_code}' -X "$method"
        -H "X-Organisation-Type: $ORG_TYPE" -H "X-Organisation-Code: $ORG_CODE"
        -H "X-User-Id: interop")
    if [[ -n "$body" ]]; then
        args+=(-H 'Content-Type: application/json' --data-binary "$body")
    fi
    status="$(curl "${args[@]}" "$BASE_URL$path")" || fail "$method $path: curl failed"
    LAST_BODY="$(cat "$out")"
    if [[ "$status" != "$expected" ]]; then
        printf '%s\n' "$LAST_BODY" >&2
        fail "$method $path answered $status, expected $expected"
    fi
    info "$method $path -> $status"
}

# json_field FIELD -- a top-level field of $LAST_BODY.
json_field() {
    "$VENV/bin/python" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' \
        "$LAST_BODY" "$1"
}

# codes_of_list -- the codes of the code list in $LAST_BODY, as "1, 2, 4".
codes_of_list() {
    "$VENV/bin/python" -c \
        'import json, sys; print(", ".join(str(k["kode"]) for k in json.loads(sys.argv[1])["koder"]))' \
        "$LAST_BODY"
}

# ---------------------------------------------------------------------------------------------
# Tools

# Debian packages the suite needs, when missing (CI runs as root on a fresh machine).
ensure_system_packages() {
    local missing=()
    command -v curl >/dev/null 2>&1 || missing+=(curl ca-certificates)
    if ! command -v python3 >/dev/null 2>&1; then
        missing+=(python3 python3-venv)
    elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
    ((${#missing[@]} == 0)) && return 0
    apt_install "${missing[@]}" || fail "could not install ${missing[*]}"
}

# zeep and xmlschema in the venv at their pinned versions (installed when either is missing
# or another version; the venv itself is setup_python's).
setup_python_soap() {
    local want have
    want="xmlschema==$XMLSCHEMA_VERSION zeep==$ZEEP_VERSION" # as sort -f orders them
    have="$("$VENV/bin/python" -m pip list --format=freeze --disable-pip-version-check 2>/dev/null |
        grep -iE '^(zeep|xmlschema)==' | sort -f | tr '\n' ' ')"
    if [[ "${have% }" == "$want" ]]; then
        info "reusing zeep $ZEEP_VERSION and xmlschema $XMLSCHEMA_VERSION in ${VENV#"$ROOT"/}"
        return 0
    fi
    info "installing zeep $ZEEP_VERSION and xmlschema $XMLSCHEMA_VERSION into ${VENV#"$ROOT"/}"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "zeep==$ZEEP_VERSION" "xmlschema==$XMLSCHEMA_VERSION"
}

setup_python() {
    section "tools: Python venv with schemathesis $SCHEMATHESIS_VERSION"
    ensure_system_packages
    mkdir -p "$INTEROP"
    if [[ -x "$VENV/bin/schemathesis" ]] &&
        [[ "$("$VENV/bin/python" -m pip show schemathesis 2>/dev/null |
            sed -n 's/^Version: //p')" == "$SCHEMATHESIS_VERSION" ]]; then
        info "reusing $VENV"
    else
        info "creating $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            "schemathesis==$SCHEMATHESIS_VERSION"
    fi
    info "$("$VENV/bin/schemathesis" --version)"
}

build_release() {
    section "build: release binary"
    if [[ "${INTEROP_SKIP_BUILD:-}" == 1 && -x "$BIN" ]]; then
        info "INTEROP_SKIP_BUILD=1: using $BIN as it is"
        return 0
    fi
    local locked=()
    [[ -f "$ROOT/Cargo.lock" ]] && locked=(--locked)
    (cd "$ROOT" && cargo build --release "${locked[@]}")
    [[ -x "$BIN" ]] || fail "no binary at $BIN"
}

# ---------------------------------------------------------------------------------------------
# Durability in the system calls (issue 14 point 7)

# A converter with its embedded backend, run under strace: one acknowledged create, then
# SIGTERM. SQLite in WAL mode with synchronous=FULL syncs the WAL at every commit (NORMAL
# would wait for a checkpoint), so the create's 200 must follow an fsync of
# vos-backend.db-wal made after the create was sent; the usage file at shutdown is written
# to migration-usage.json.tmp, synced, renamed over migration-usage.json, and its folder
# synced, in that order.
durability_strace() {
    section "durability: the WAL synced per commit, the usage file synced and renamed (strace)"
    if ! command -v strace >/dev/null 2>&1; then
        apt_install strace || {
            info "strace is missing and cannot be installed here"
            FAILED_SECTIONS+=("durability-strace")
            return 0
        }
    fi
    local dir trace="$LOG_DIR/durability.strace" out="$LOG_DIR/durability.stdout"
    dir="$(mktemp -d "${TMPDIR:-/tmp}/vos-interop-durable.XXXXXX")"
    env -u VOS_LISTEN -u VOS_REST_URL -u VOS_DATA_DIR RUST_LOG=info NO_COLOR=1 \
        strace -f -qq -y -e trace=fsync,fdatasync,rename,renameat,renameat2 -o "$trace" \
        "$BIN" serve --listen 127.0.0.1:0 --data-dir "$dir/data" \
        >"$out" 2>"$LOG_DIR/durability.stderr" &
    local strace_pid=$! pid="" line="" url=""
    for _ in $(seq 1 150); do
        line="$(grep -m1 -o 'listening on http://127\.0\.0\.1:[0-9]*' "$out" || true)"
        [[ -n "$line" ]] && break
        kill -0 "$strace_pid" 2>/dev/null || break
        sleep 0.2
    done
    pid="$(pgrep -P "$strace_pid" -x vos-converter || true)"
    if [[ -z "$line" || -z "$pid" ]]; then
        info "the converter under strace did not start (${LOG_DIR#"$ROOT"/}/durability.*)"
        kill "$strace_pid" 2>/dev/null || true
        FAILED_SECTIONS+=("durability-strace")
        return 0
    fi
    url="${line#listening on }"
    local ns="urn:dk:star:dfdg:PersonRegistrationService:9" before status ok=1
    before="$(wc -l <"$trace")"
    status="$(soap_envelope 1.1 1 101 "<CreateContactGroupRequest xmlns=\"$ns\"><PersonCivilRegistrationIdentifier>0202702222</PersonCivilRegistrationIdentifier><ContactGroup><ContactGroupTypeIdentifier>2</ContactGroupTypeIdentifier><ContactGroupStartTime>2025-01-06T00:00:00+01:00</ContactGroupStartTime><ContactGroupEventTime>2025-01-06T09:30:00</ContactGroupEventTime></ContactGroup></CreateContactGroupRequest>" |
        curl -sS -o "$LOG_DIR/durability-create.xml" -w '%{http_code}' -H 'Content-Type: text/xml; charset=utf-8' \
            -H "SOAPAction: \"$ns/CreateContactGroup\"" --data-binary @- "$url/PersonRegistrationService/9")" || status=curl
    # The lines strace wrote while the create was in flight (the answer came after them).
    local during
    during="$(tail -n +"$((before + 1))" "$trace")"
    kill -TERM "$pid"
    wait "$strace_pid" || true
    if [[ "$status" != 200 ]]; then
        info "the create answered $status, expected 200"
        ok=0
    elif ! grep -Eq '(fsync|fdatasync)\([0-9]+<[^>]*/vos-backend\.db-wal>' <<<"$during"; then
        info "no fsync of vos-backend.db-wal while the create was answered: is synchronous FULL?"
        ok=0
    else
        info "the create's commit synced vos-backend.db-wal before its 200"
    fi
    # The usage file: fsync of the temporary file, rename over the real one, fsync of the folder.
    # (strace splits a call another thread interrupts into "<unfinished ...>" and "resumed"
    # lines, so each call is matched by its start.)
    local sync_tmp rename_at sync_dir
    sync_tmp="$({ grep -n -E 'fsync\([0-9]+<[^>]*/migration-usage\.json\.tmp>' "$trace" || true; } | tail -1 | cut -d: -f1)"
    rename_at="$({ grep -n -E 'rename(at2?)?\(.*migration-usage\.json\.tmp", .*migration-usage\.json"' "$trace" || true; } | tail -1 | cut -d: -f1)"
    sync_dir="$({ grep -n -E "fsync\\([0-9]+<$dir/data>" "$trace" || true; } | tail -1 | cut -d: -f1)"
    if [[ -n "$sync_tmp" && -n "$rename_at" && -n "$sync_dir" ]] && ((sync_tmp < rename_at && rename_at < sync_dir)); then
        info "migration-usage.json: tmp synced (line $sync_tmp), renamed ($rename_at), folder synced ($sync_dir)"
    else
        info "migration-usage.json not written durably: tmp fsync '${sync_tmp}', rename '${rename_at}', folder fsync '${sync_dir}'"
        ok=0
    fi
    rm -rf "$dir"
    ((ok)) || FAILED_SECTIONS+=("durability-strace")
}

# ---------------------------------------------------------------------------------------------
# The backend

start_backend() {
    section "backend: start on an ephemeral port, fresh database, dev mode"
    TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/vos-interop.XXXXXX")"
    rm -rf "$LOG_DIR"
    mkdir -p "$LOG_DIR"
    # The crate's own debug lines too: they must not carry a CPR number either.
    RUST_LOG="${INTEROP_RUST_LOG:-info,vos_converter=debug}" NO_COLOR=1 \
        "$BIN" backend --listen 127.0.0.1:0 --db "$TMP_DIR/vos-backend.db" --dev \
        >"$LOG_DIR/backend.stdout" 2>"$LOG_DIR/backend.stderr" &
    BACKEND_PID=$!
    local line=""
    for _ in $(seq 1 150); do
        line="$(grep -m1 -o 'listening on http://127\.0\.0\.1:[0-9]*' "$LOG_DIR/backend.stdout" || true)"
        [[ -n "$line" ]] && break
        if ! kill -0 "$BACKEND_PID" 2>/dev/null; then
            cat "$LOG_DIR/backend.stdout" "$LOG_DIR/backend.stderr" >&2 || true
            fail "the backend exited before it listened"
        fi
        sleep 0.2
    done
    [[ -n "$line" ]] || fail "the backend did not say where it listens within 30 s"
    BASE_URL="${line#listening on }"
    info "backend pid $BACKEND_PID at $BASE_URL (logs in ${LOG_DIR#"$ROOT"/})"
    curl -fsS -o /dev/null "$BASE_URL/openapi.json" || fail "no OpenAPI document at $BASE_URL/openapi.json"
}

seed_backend() {
    section "backend: seed persons, a contact group and a person category"
    # cpr, municipality, a-kasse ("-" for none), enrolled
    local -a people=(
        "${SEED_CPRS[0]} 101 $ORG_CODE true"
        "${SEED_CPRS[1]} 851 - false"
        "${SEED_CPRS[2]} 461 42 true"
        "${SEED_CPRS[3]} 101 - false"
    )
    api GET "$API/kodelister/kontaktgruppetyper" 200
    KONTAKTGRUPPETYPER="$(codes_of_list)"
    api GET "$API/kodelister/personkategorityper" 200
    PERSONKATEGORITYPER="$(codes_of_list)"
    local p cpr kommune akasse tilmeldt akasse_json
    for p in "${people[@]}"; do
        read -r cpr kommune akasse tilmeldt <<<"$p"
        if [[ "$akasse" == - ]]; then akasse_json=null; else akasse_json="\"$akasse\""; fi
        api PUT "$API/personregister" 204 \
            "{\"cpr\":\"$cpr\",\"kommunekode\":\"$kommune\",\"akasse\":$akasse_json,\"tilmeldt\":$tilmeldt}"
    done
    api POST "$API/kontaktgrupper" 201 \
        "{\"cpr\":\"${SEED_CPRS[0]}\",\"kontaktgruppetype\":1,\"startdato\":\"2024-01-01\",\"haendelsestidspunkt\":\"2024-01-01T09:00:00Z\"}"
    KONTAKTGRUPPE_ID="$(json_field id)"
    api POST "$API/personkategorier" 201 \
        "{\"cpr\":\"${SEED_CPRS[0]}\",\"personkategoritype\":2,\"startdato\":\"2024-01-01\",\"haendelsestidspunkt\":\"2024-01-01T09:00:00Z\"}"
    PERSONKATEGORI_ID="$(json_field id)"
    info "contact group $KONTAKTGRUPPE_ID, person category $PERSONKATEGORI_ID"
    # The reads schemathesis will make must work with the seeded data (CPR in X-Cpr only).
    local out="$TMP_DIR/check.json"
    curl -fsS -o "$out" -H "X-Organisation-Type: $ORG_TYPE" -H "X-Organisation-Code: $ORG_CODE" \
        -H "X-Cpr: ${SEED_CPRS[0]}" "$BASE_URL$API/kontaktgrupper/$KONTAKTGRUPPE_ID" ||
        fail "GetKontaktgruppe of the seeded contact group failed"
    info "GET $API/kontaktgrupper/{id} with X-Cpr -> 200"
}

# ---------------------------------------------------------------------------------------------
# schemathesis

# The dictionaries of known values both passes use.
schemathesis_dictionaries() {
    local cprs
    cprs="$(printf '"%s", ' "${SEED_CPRS[@]}")"
    cat <<EOF
[dictionaries.cpr]
values = [${cprs%, }]

[dictionaries.kontaktgruppe]
values = ["$KONTAKTGRUPPE_ID"]

[dictionaries.personkategori]
values = ["$PERSONKATEGORI_ID"]

[dictionaries.kontaktgruppetype]
values = [$KONTAKTGRUPPETYPER]

[dictionaries.personkategoritype]
values = [$PERSONKATEGORITYPER]

[dictionaries.bruger]
values = ["interop", "sagsbehandler-1"]

[dictionaries.organisationstype]
values = [1, 2, 3, 4, 5]

[dictionaries.organisationskode]
values = ["101", "851", "461", "42", "$ORG_CODE"]
EOF
}

# The parameter bindings both passes share. A binding replaces a generated value with a known
# one with the given probability, so some generated requests carry a seeded CPR number (header
# X-Cpr or body field cpr), a seeded id, a valid type code or a plausible user id, and reach
# real data and the business rules instead of 400/401/404 only; the others keep what
# schemathesis generated. Goes last in a config: it ends with [[operations]] tables.
# schemathesis_bindings USER_ID_PROBABILITY [EXTRA_LINE...] -- extra "key = value" lines go
# into [parameters]. (Hypothesis' favourite X-User-Id is "", which the service refuses with 401.)
schemathesis_bindings() {
    local user_id_probability="$1"
    shift
    cat <<EOF
[parameters]
"header.X-Cpr" = { dictionary = "cpr", probability = 0.5 }
"header.X-User-Id" = { dictionary = "bruger", probability = $user_id_probability }
"body.cpr" = { dictionary = "cpr", probability = 0.5 }
"body.kontaktgruppetype" = { dictionary = "kontaktgruppetype", probability = 0.5 }
"body.personkategoritype" = { dictionary = "personkategoritype", probability = 0.5 }
EOF
    (($# > 0)) && printf '%s\n' "$@"
    cat <<'EOF'

[[operations]]
include-path-regex = '/kontaktgrupper/\{id\}$'
parameters = { "path.id" = { dictionary = "kontaktgruppe", probability = 0.5 } }

[[operations]]
include-path-regex = '/personkategorier/\{id\}$'
parameters = { "path.id" = { dictionary = "personkategori", probability = 0.5 } }
EOF
}

# The main pass: the STAR identity fixed, every response checked against the contract.
write_schemathesis_config() {
    cat >"$INTEROP/schemathesis.toml" <<EOF
# Written by scripts/interop.sh; edit it there.
seed = $SEED
workers = 1
request-timeout = 10
wait-for-schema = 30
continue-on-failure = true

# The caller. X-User-Id too: the schema allows any string, the service refuses "" (401), and
# "" is what the coverage phase puts in every request it does not vary that header in, so
# without it most of that phase would stop at 401. Generated X-User-Id values are sent in the
# second pass.
[headers]
X-Organisation-Type = "$ORG_TYPE"
X-Organisation-Code = "$ORG_CODE"
X-User-Id = "interop"

[generation]
max-examples = $MAX_EXAMPLES
database = "none"

# negative_data_rejection runs in the fuzzing and stateful phases only. In the coverage phase,
# schemathesis 4.32.5 reports false failures with it on every operation: it negates
# X-Organisation-Type (sends 0, or adds an undeclared header) while the fixed header above
# replaces the value with a valid "5", and its guards that should spot this re-validate the
# header strings as sent against the declared integer type, which a string never matches.
[phases.coverage.checks]
negative_data_rejection.enabled = false

[checks]
enabled = false
not_a_server_error.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
response_schema_conformance.enabled = true
response_headers_conformance.enabled = true
negative_data_rejection.enabled = true

$(schemathesis_dictionaries)

$(schemathesis_bindings 0.5)
EOF
}

# The second pass: no fixed identity, so generated X-Organisation-Type, X-Organisation-Code
# and X-User-Id values are sent (three in four replaced by a real organisation type and the
# code of a seeded person's municipality or a-kasse, so every organisation type's access rules
# are reached too; the coverage phase still sends its boundary values). Only what must hold
# for any caller is checked.
write_schemathesis_noident_config() {
    cat >"$INTEROP/schemathesis-noident.toml" <<EOF
# Written by scripts/interop.sh; edit it there.
seed = $SEED
workers = 1
request-timeout = 10
wait-for-schema = 30
continue-on-failure = true

[generation]
max-examples = $(((MAX_EXAMPLES + 1) / 2))
database = "none"

[checks]
enabled = false
not_a_server_error.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true

$(schemathesis_dictionaries)

$(schemathesis_bindings 0.75 \
        '"header.X-Organisation-Type" = { dictionary = "organisationstype", probability = 0.75 }' \
        '"header.X-Organisation-Code" = { dictionary = "organisationskode", probability = 0.75 }')
EOF
}

# schemathesis_pass NAME CONFIG -- one run against the served OpenAPI document. Runs inside
# .interop/ (hypothesis writes .hypothesis/ into the working directory). A failing pass is
# recorded; the suite goes on, and fails at the end.
schemathesis_pass() {
    local name="$1" config="$2" rc=0
    info "config ${config#"$ROOT"/}, seed $SEED"
    (
        cd "$INTEROP" &&
            "$VENV/bin/schemathesis" --no-color --config-file "$config" run \
                --report junit,har --report-dir "$LOG_DIR/schemathesis-$name" \
                "$BASE_URL/openapi.json"
    ) || rc=$?
    if ((rc != 0)); then
        info "schemathesis ($name) failed with exit status $rc"
        FAILED_SECTIONS+=("schemathesis-$name")
    else
        info "schemathesis ($name) passed"
    fi
}

run_schemathesis() {
    section "schemathesis: contract test, STAR identity ($MAX_EXAMPLES examples per operation)"
    write_schemathesis_config
    schemathesis_pass main "$INTEROP/schemathesis.toml"
}

run_schemathesis_noident() {
    section "schemathesis: generated identity headers"
    write_schemathesis_noident_config
    schemathesis_pass noident "$INTEROP/schemathesis-noident.toml"
}

# ---------------------------------------------------------------------------------------------
# Logs

# No CPR number in the backend's output: neither a seeded one nor any CPR-shaped value that
# schemathesis sent in X-Cpr or a body's cpr field (taken from its HAR reports).
check_logs() {
    section "logs: no CPR number in the backend's output"
    local cprs="$TMP_DIR/sent-cprs.txt" logs=("$LOG_DIR/backend.stdout" "$LOG_DIR/backend.stderr")
    printf '%s\n' "${SEED_CPRS[@]}" >"$cprs"
    "$VENV/bin/python" - "$LOG_DIR" >>"$cprs" <<'PY'
import glob, json, re, sys
pattern = re.compile(r"(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9]{6}")
found = set()
for path in glob.glob(f"{sys.argv[1]}/schemathesis-*/har*.json"):
    with open(path, encoding="utf-8") as f:
        har = json.load(f)
    for entry in har.get("log", {}).get("entries", []):
        request = entry.get("request", {})
        for h in request.get("headers", []):
            if h.get("name", "").lower() == "x-cpr":
                found.update(m.group(0) for m in pattern.finditer(h.get("value", "")))
        text = (request.get("postData") or {}).get("text") or ""
        found.update(m.group(0) for m in pattern.finditer(text))
print("\n".join(sorted(found)))
PY
    sort -u -o "$cprs" "$cprs"
    sed -i '/^$/d' "$cprs"
    # An empty log would make this check vacuous: one line per request is expected.
    if ! grep -q 'request' "$LOG_DIR/backend.stderr"; then
        info "the backend logged no requests; RUST_LOG=${INTEROP_RUST_LOG:-info,vos_converter=debug}"
        FAILED_SECTIONS+=("no-backend-log")
    fi
    info "looking for $(wc -l <"$cprs") CPR numbers ($(wc -l <"$LOG_DIR/backend.stderr") log lines)"
    local leaks
    leaks="$(grep -n -F -f "$cprs" "${logs[@]}" || true)"
    if [[ -n "$leaks" ]]; then
        # Show where, not what: the line numbers, with the digits masked.
        sed -E 's/[0-9]{10}/**********/g' <<<"$leaks" | head -20 >&2
        info "a CPR number appears in the backend's log"
        FAILED_SECTIONS+=("cpr-in-logs")
    else
        info "no CPR number in the log"
    fi
}

# ---------------------------------------------------------------------------------------------
# The converter and real SOAP clients

start_converter() {
    section "converter: vos-converter serve on an ephemeral port, fresh data directory"
    CONVERTER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/vos-interop-serve.XXXXXX")"
    mkdir -p "$LOG_DIR"
    # Flags only: no VOS_* setting of the caller's environment may move it elsewhere. The
    # default cutover (2025-03-01) is past; Jobcenter 101 gets its own, 60 days ahead, so the
    # dashboard has an organisation before its cutover and two past theirs (PRS calls do not
    # depend on the cutover). A-kasse 34 gets the same, so that run_zeep_reads has an a-kasse
    # before its cutover (A-kasse 12, the dashboard's, stays on the default one). Jobcenter 101
    # and A-kasse 12 are legacy WSRM subscribers (run_wsrm): in dev mode the converter
    # subscribes itself to the embedded backend's WSB events and fills their queues.
    local jc_cutover
    jc_cutover="$(TZ=Europe/Copenhagen date -d '+60 days' +%F)"
    env -u VOS_LISTEN -u VOS_REST_URL -u VOS_DATA_DIR -u VOS_CUTOVER -u VOS_CUTOVER_OVERRIDE \
        -u VOS_WSRM_SUBSCRIBER -u VOS_WSB_RECEIVER_URL \
        RUST_LOG="${INTEROP_RUST_LOG:-info,vos_converter=debug}" NO_COLOR=1 \
        "$BIN" serve --listen 127.0.0.1:0 --data-dir "$CONVERTER_DIR" \
        --cutover-override "1:101=$jc_cutover" --cutover-override "2:34=$jc_cutover" \
        --wsrm-subscriber 1:101 --wsrm-subscriber 2:12 \
        >"$LOG_DIR/converter.stdout" 2>"$LOG_DIR/converter.stderr" &
    CONVERTER_PID=$!
    local line=""
    for _ in $(seq 1 150); do
        line="$(grep -m1 -o 'listening on http://127\.0\.0\.1:[0-9]*' "$LOG_DIR/converter.stdout" || true)"
        [[ -n "$line" ]] && break
        if ! kill -0 "$CONVERTER_PID" 2>/dev/null; then
            cat "$LOG_DIR/converter.stdout" "$LOG_DIR/converter.stderr" >&2 || true
            info "the converter exited before it listened"
            FAILED_SECTIONS+=("converter-start")
            CONVERTER_PID=""
            return 0
        fi
        sleep 0.2
    done
    if [[ -z "$line" ]]; then
        info "the converter did not say where it listens within 30 s"
        FAILED_SECTIONS+=("converter-start")
        return 0
    fi
    CONVERTER_URL="${line#listening on }"
    PRS_URL="$CONVERTER_URL/PersonRegistrationService/9"
    info "converter pid $CONVERTER_PID at $CONVERTER_URL (logs in ${LOG_DIR#"$ROOT"/}/converter.*)"
    sed -n 's/^ *\(REST upstream:.*\|WSRM:.*\)/\1/p' "$LOG_DIR/converter.stdout" | while read -r l; do info "$l"; done
    if ! curl -fsS -o /dev/null "$PRS_URL?wsdl"; then
        info "no WSDL at $PRS_URL?wsdl"
        FAILED_SECTIONS+=("converter-start")
        PRS_URL=""
    fi
}

# needs_converter -- status 1 (and says so) when the converter is not serving.
needs_converter() {
    [[ -n "$PRS_URL" ]] && return 0
    info "skipped: the converter did not start (see converter-start)"
    return 1
}

validate_wsdl() {
    section "WSDL: the served PersonRegistrationService v9 WSDL (xmllint, xmlschema)"
    needs_converter || return 0
    local dir="$LOG_DIR/wsdl" wsdl="$LOG_DIR/wsdl/PersonRegistrationService-9.wsdl" failed=0
    rm -rf "$dir"
    mkdir -p "$dir"
    if ! command -v xmllint >/dev/null 2>&1 && ! apt_install libxml2-utils; then
        FAILED_SECTIONS+=("wsdl")
        return 0
    fi
    info "$(xmllint --version 2>&1 | head -1)"
    if ! setup_python_soap; then
        FAILED_SECTIONS+=("wsdl")
        return 0
    fi
    if ! curl -fsS -o "$wsdl" "$PRS_URL?wsdl"; then
        info "GET $PRS_URL?wsdl failed"
        FAILED_SECTIONS+=("wsdl")
        return 0
    fi
    info "GET $PRS_URL?wsdl -> ${wsdl#"$ROOT"/} ($(wc -c <"$wsdl") bytes)"
    if xmllint --noout "$wsdl"; then
        info "xmllint: well-formed"
    else
        info "xmllint: the served WSDL is not well-formed"
        failed=1
    fi
    # Extracts the inline schemas and sample messages, compiles and checks them with xmlschema,
    # validates the WSDL against the WSDL 1.1 schema, checks the addresses.
    "$VENV/bin/python" "$ROOT/scripts/interop/wsdl_check.py" "$wsdl" "$PRS_URL" "$dir/schemas" ||
        failed=1
    # The same schemas and samples through libxml2: 0 valid, 3 invalid, anything else means
    # the schema did not compile.
    local schema sample expect rc
    if [[ -f "$dir/schemas/xmllint-pairs.txt" ]]; then
        while read -r schema sample expect; do
            [[ -n "$schema" ]] || continue
            rc=0
            xmllint --noout --schema "$schema" "$sample" >"$dir/xmllint.out" 2>&1 || rc=$?
            case "$rc/$expect" in
            0/valid | 3/invalid)
                info "xmllint --schema $(basename "$schema"): $(basename "$sample") ${expect/invalid/refused}" ;;
            *)
                cat "$dir/xmllint.out" >&2
                info "xmllint --schema $(basename "$schema") $(basename "$sample"): exit $rc, expected $expect"
                failed=1
                ;;
            esac
        done <"$dir/schemas/xmllint-pairs.txt"
    else
        info "no schemas were extracted"
        failed=1
    fi
    if ((failed)); then
        FAILED_SECTIONS+=("wsdl")
    else
        info "the served WSDL passed"
    fi
}

run_zeep() {
    section "zeep $ZEEP_VERSION: every PersonRegistrationService operation over SOAP 1.1 and 1.2"
    needs_converter || return 0
    if ! setup_python_soap; then
        FAILED_SECTIONS+=("zeep")
        return 0
    fi
    local rc=0
    "$VENV/bin/python" "$ROOT/scripts/interop/zeep_prs.py" "$PRS_URL" "$LOG_DIR/zeep-exchanges.log" ||
        rc=$?
    if ((rc != 0)); then
        info "zeep failed with exit status $rc (exchanges in ${LOG_DIR#"$ROOT"/}/zeep-exchanges.log)"
        FAILED_SECTIONS+=("zeep")
    fi
}

# PersonStatusService v20 and PersonHistoryService v4 through zeep, before and after the
# cutover (start_converter's: Jobcenter 1:101 and A-kasse 2:34 before theirs, everybody else
# past the default one). Registers its own data through PRS first, so it runs after run_zeep.
run_zeep_reads() {
    section "zeep $ZEEP_VERSION: PersonStatusService and PersonHistoryService reads before and after the cutover, SOAP 1.1 and 1.2"
    needs_converter || return 0
    if ! setup_python_soap; then
        FAILED_SECTIONS+=("zeep-reads")
        return 0
    fi
    local rc=0
    "$VENV/bin/python" "$ROOT/scripts/interop/zeep_reads.py" "$CONVERTER_URL" \
        "$LOG_DIR/zeep-reads-exchanges.log" || rc=$?
    if ((rc != 0)); then
        info "zeep reads failed with exit status $rc (exchanges in ${LOG_DIR#"$ROOT"/}/zeep-reads-exchanges.log)"
        FAILED_SECTIONS+=("zeep-reads")
    fi
}

# The npm soap client in .interop/node: npm ci from the committed package.json and
# package-lock.json (reused while both are unchanged and the install is complete).
setup_npm_soap() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm || return 1
    fi
    info "node $(node --version), npm $(npm --version)"
    if cmp -s "$NPM_SPEC_DIR/package.json" "$NODE_DIR/package.json" &&
        cmp -s "$NPM_SPEC_DIR/package-lock.json" "$NODE_DIR/package-lock.json" &&
        [[ -f "$NODE_DIR/node_modules/.package-lock.json" && -f "$NODE_DIR/node_modules/soap/package.json" &&
        -f "$NODE_DIR/node_modules/playwright-core/package.json" ]]; then
        info "reusing ${NODE_DIR#"$ROOT"/}"
    else
        info "npm ci into ${NODE_DIR#"$ROOT"/}"
        rm -rf "$NODE_DIR"
        mkdir -p "$NODE_DIR"
        cp "$NPM_SPEC_DIR/package.json" "$NPM_SPEC_DIR/package-lock.json" "$NODE_DIR/"
        (cd "$NODE_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || return 1
    fi
    info "soap $(node -p 'require(process.argv[1]).version' "$NODE_DIR/node_modules/soap/package.json")"
}

run_npm_soap() {
    section "npm soap: CreateContactGroup and UpdateContactGroup over SOAP 1.1 and 1.2"
    needs_converter || return 0
    if ! setup_npm_soap; then
        info "could not install the npm soap client"
        FAILED_SECTIONS+=("npm-soap")
        return 0
    fi
    local rc=0
    NODE_PATH="$NODE_DIR/node_modules" node "$ROOT/scripts/interop/npm_soap_prs.js" \
        "$PRS_URL" "$LOG_DIR/npm-soap-exchanges.log" || rc=$?
    if ((rc != 0)); then
        info "npm soap failed with exit status $rc (exchanges in ${LOG_DIR#"$ROOT"/}/npm-soap-exchanges.log)"
        FAILED_SECTIONS+=("npm-soap")
    fi
}

# The legacy WSRM pull queue (issue 16): zeep and npm soap as the subscribers start_converter
# configured (Jobcenter 1:101, A-kasse 2:12), over the SOAP 1.1 and 1.2 ports. Their queues
# fill from the converter's own WSB subscription at the embedded backend (dev mode); both
# scripts register through PRS themselves and drain what the earlier sections left first.
run_wsrm() {
    section "WSRM: zeep and npm soap as legacy subscribers (WsrmService v3, WsrmMessageService v10) over SOAP 1.1 and 1.2"
    needs_converter || return 0
    local rc=0
    if ! setup_python_soap; then
        FAILED_SECTIONS+=("zeep-wsrm")
    else
        info "zeep $ZEEP_VERSION: Jobcenter 1:101, A-kasse 2:12, Jobcenter 1:147 (no subscriber)"
        "$VENV/bin/python" "$ROOT/scripts/interop/zeep_wsrm.py" "$CONVERTER_URL" \
            "$LOG_DIR/zeep-wsrm-exchanges.log" || rc=$?
        if ((rc != 0)); then
            info "zeep (WSRM) failed with exit status $rc (exchanges in ${LOG_DIR#"$ROOT"/}/zeep-wsrm-exchanges.log)"
            FAILED_SECTIONS+=("zeep-wsrm")
        fi
    fi
    if ! setup_npm_soap; then
        info "could not install the npm soap client"
        FAILED_SECTIONS+=("npm-soap-wsrm")
        return 0
    fi
    info "npm soap: Jobcenter 1:101"
    rc=0
    NODE_PATH="$NODE_DIR/node_modules" node "$ROOT/scripts/interop/npm_soap_wsrm.js" \
        "$CONVERTER_URL" "$LOG_DIR/npm-soap-wsrm-exchanges.log" || rc=$?
    if ((rc != 0)); then
        info "npm soap (WSRM) failed with exit status $rc (exchanges in ${LOG_DIR#"$ROOT"/}/npm-soap-wsrm-exchanges.log)"
        FAILED_SECTIONS+=("npm-soap-wsrm")
    fi
}

# ---------------------------------------------------------------------------------------------
# The migration dashboard: /metrics, /api/migration, /dashboard in headless Chromium, Grafana

# Debian's chromium (never a browser download) and a font for the screenshot, when missing.
ensure_chromium() {
    local missing=()
    [[ -x "$CHROMIUM" ]] || missing+=(chromium)
    if ! command -v fc-list >/dev/null 2>&1 || [[ -z "$(fc-list 2>/dev/null | head -1)" ]]; then
        missing+=(fontconfig fonts-dejavu-core)
    fi
    if ((${#missing[@]} > 0)); then
        apt_install "${missing[@]}" || return 1
    fi
    [[ -x "$CHROMIUM" ]] || return 1
    info "$("$CHROMIUM" --version 2>/dev/null | head -1)"
}

# promql-parser in the venv at its pinned version.
setup_python_promql() {
    if [[ "$("$VENV/bin/python" -m pip show promql-parser 2>/dev/null | sed -n 's/^Version: //p')" == \
        "$PROMQL_PARSER_VERSION" ]]; then
        return 0
    fi
    info "installing promql-parser $PROMQL_PARSER_VERSION into ${VENV#"$ROOT"/}"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "promql-parser==$PROMQL_PARSER_VERSION"
}

# soap_envelope VERSION TYPE CODE BODY -- a request envelope from organisation TYPE:CODE.
soap_envelope() {
    local version="$1" type="$2" code="$3" body="$4" env_ns
    if [[ "$version" == 1.2 ]]; then
        env_ns="http://www.w3.org/2003/05/soap-envelope"
    else
        env_ns="http://schemas.xmlsoap.org/soap/envelope/"
    fi
    printf '<s:Envelope xmlns:s="%s" xmlns:d="urn:dk:star:dfdg:common:1"><s:Header><d:RequestUserMetadata>' "$env_ns"
    printf '<d:OrganisationType>%s</d:OrganisationType><d:OrganisationCode>%s</d:OrganisationCode>' "$type" "$code"
    printf '<d:UserIdentifier>interop-dashboard</d:UserIdentifier></d:RequestUserMetadata></s:Header>'
    printf '<s:Body>%s</s:Body></s:Envelope>' "$body"
}

# mix_call VERSION SERVICE_PATH OPERATION TYPE CODE BODY -- one SOAP call of the dashboard mix.
# Counts it in MIX_CALLS/MIX_OPS/MIX_FAULTS under TYPE:CODE by what the converter answered
# (200: ok; otherwise the fault's first ErrorCode); status 1 when curl itself failed.
declare -A MIX_CALLS=() MIX_OPS=() MIX_FAULTS=()
MIX_LAST=""
mix_call() {
    local version="$1" path="$2" operation="$3" type="$4" code="$5" body="$6"
    local service="${path%%/*}" ver="${path##*/}" ns action status out="$TMP_DIR/mix-response.xml"
    ns="urn:dk:star:dfdg:$service:$ver"
    action="$ns/$operation"
    local headers=()
    if [[ "$version" == 1.2 ]]; then
        headers=(-H "Content-Type: application/soap+xml; charset=utf-8; action=\"$action\"")
    else
        headers=(-H 'Content-Type: text/xml; charset=utf-8' -H "SOAPAction: \"$action\"")
    fi
    status="$(soap_envelope "$version" "$type" "$code" "<${operation}Request xmlns=\"$ns\">$body</${operation}Request>" |
        curl -sS -o "$out" -w '%{http_code}' "${headers[@]}" --data-binary @- "$CONVERTER_URL/$path")" || return 1
    local key="$type:$code" fault=""
    MIX_CALLS[$key]=$((${MIX_CALLS[$key]:-0} + 1))
    MIX_OPS[$key|$service/$operation]=$((${MIX_OPS[$key|$service/$operation]:-0} + 1))
    if [[ "$status" != 200 ]]; then
        fault="$(grep -o -m1 '<[A-Za-z0-9]*:*ErrorCode>[0-9]*' "$out" | sed 's/.*>//' || true)"
        fault="${fault:-none}"
        MIX_FAULTS[$key|$fault]=$((${MIX_FAULTS[$key|$fault]:-0} + 1))
    fi
    MIX_LAST="${fault:-ok}"
    info "$key SOAP $version $service $operation -> $status ${fault:+fault $fault}"
}

# The scripted mix: three organisations, three services, both SOAP versions, one fault at least.
# CPR numbers of mappings/dev-seed.toml, in the bodies only.
dashboard_mix() {
    local cpr_jc="<PersonCivilRegistrationIdentifier>0202702222</PersonCivilRegistrationIdentifier>"
    local cpr_ak="<PersonCivilRegistrationIdentifier>0101701111</PersonCivilRegistrationIdentifier>"
    local cpr_ko="<PersonCivilRegistrationIdentifier>0303703333</PersonCivilRegistrationIdentifier>"
    local type
    # Jobcenter 101 (before its own cutover): registrations, and one read that still calls REST.
    for type in 1 2 4; do
        mix_call 1.1 PersonRegistrationService/9 CreateContactGroup 1 101 \
            "$cpr_jc<ContactGroup><ContactGroupTypeIdentifier>$type</ContactGroupTypeIdentifier><ContactGroupStartTime>2025-01-06T00:00:00+01:00</ContactGroupStartTime><ContactGroupEventTime>2025-01-06T09:30:00</ContactGroupEventTime></ContactGroup>" ||
            return 1
    done
    mix_call 1.1 PersonStatusService/20 GetVariablePersonStatus 1 101 "$cpr_jc" || return 1
    # A-kasse 12 (past the default cutover): status reads, one over SOAP 1.2.
    mix_call 1.1 PersonStatusService/20 GetVariablePersonStatus 2 12 "$cpr_ak" || return 1
    mix_call 1.1 PersonStatusService/20 GetVariablePersonStatus 2 12 "$cpr_ak" || return 1
    mix_call 1.2 PersonStatusService/20 GetVariablePersonStatus 2 12 "$cpr_ak" || return 1
    mix_call 1.1 PersonStatusService/20 GetVariablePersonStatus 2 12 "$cpr_ak" || return 1
    # Kommune 147 (past the default cutover): history reads, and one with a date that is none.
    mix_call 1.1 PersonHistoryService/4 GetPersonHistory 3 147 \
        "$cpr_ko<PeriodStartDate>2024-01-01</PeriodStartDate><PeriodEndDate>2024-12-31</PeriodEndDate>" || return 1
    mix_call 1.2 PersonHistoryService/4 GetPersonHistory 3 147 "$cpr_ko" || return 1
    mix_call 1.1 PersonHistoryService/4 GetPersonHistory 3 147 "$cpr_ko" || return 1
    mix_call 1.1 PersonHistoryService/4 GetPersonHistory 3 147 \
        "$cpr_ko<PeriodStartDate>not-a-date</PeriodStartDate>" || return 1
    if [[ "$MIX_LAST" != 900508 ]]; then
        info "Kommune 147's read with an invalid PeriodStartDate answered ${MIX_LAST}, expected fault 900508"
        return 1
    fi
}

# The mix as migration_agree.py's EXPECTED_JSON.
mix_expected_json() {
    local k
    {
        for k in "${!MIX_CALLS[@]}"; do printf 'calls\t%s\t%s\n' "$k" "${MIX_CALLS[$k]}"; done
        for k in "${!MIX_OPS[@]}"; do printf 'op\t%s\t%s\n' "$k" "${MIX_OPS[$k]}"; done
        for k in "${!MIX_FAULTS[@]}"; do printf 'fault\t%s\t%s\n' "$k" "${MIX_FAULTS[$k]}"; done
    } | "$VENV/bin/python" -c '
import json, sys
out = {}
for line in sys.stdin:
    kind, key, n = line.rstrip("\n").split("\t")
    org, _, sub = key.partition("|")
    o = out.setdefault(org, {"calls": 0, "faults": {}, "operations": {}})
    if kind == "calls":
        o["calls"] = int(n)
    elif kind == "op":
        o["operations"][sub] = int(n)
    else:
        o["faults"][sub] = int(n)
print(json.dumps(out, indent=1, sort_keys=True))'
}

# cpr_scan NAME FILE... -- no CPR number in the files: neither a seeded one (dev-seed.toml, the
# mix's bodies) nor any CPR-shaped run of ten digits (the JSON's string values only, and the
# label values only of the metrics text, whose float samples may hold any digits).
cpr_scan() {
    local name="$1" rc=0
    shift
    "$VENV/bin/python" - "$ROOT/mappings/dev-seed.toml" "$@" <<'PY' || rc=$?
import json, re, sys
seed = set(re.findall(r'cpr\s*=\s*"(\d{10})"', open(sys.argv[1], encoding="utf-8").read()))
shape = re.compile(r"(?<![0-9A-Za-z-])(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9]{6}(?![0-9A-Za-z-])")
bad = 0
for path in sys.argv[2:]:
    text = open(path, encoding="utf-8").read()
    if path.endswith(".json"):
        strings = []
        def walk(v):
            if isinstance(v, dict):
                for k, x in v.items():
                    strings.append(k)
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
            elif isinstance(v, str):
                strings.append(v)
        walk(json.loads(text))
        scanned = "\n".join(strings)
    elif path.endswith(".txt") and "metrics" in path.rsplit("/", 1)[-1]:
        scanned = "\n".join(re.findall(r'="((?:[^"\\]|\\.)*)"', text))
    else:
        scanned = text
    hits = [c for c in seed if c in text] + [m.group(0) for m in shape.finditer(scanned)]
    if hits:
        bad += 1
        print(f"  a CPR number in {path.rsplit('/', 1)[-1]} ({len(hits)} places)")
sys.exit(1 if bad else 0)
PY
    if ((rc == 0)); then
        info "no CPR number in $name"
    fi
    return "$rc"
}

check_dashboard() {
    section "dashboard: three organisations; /metrics, /api/migration, /dashboard (Chromium), Grafana"
    needs_converter || return 0
    local dir="$LOG_DIR/dashboard" png="$ROOT/target/dashboard.png" t0
    rm -rf "$dir"
    mkdir -p "$dir" "$ROOT/target"
    rm -f "$png"
    if ! curl -fsS -o "$dir/metrics-before.txt" "$CONVERTER_URL/metrics"; then
        info "GET $CONVERTER_URL/metrics failed"
        FAILED_SECTIONS+=("dashboard")
        return 0
    fi

    t0=$SECONDS
    MIX_CALLS=() MIX_OPS=() MIX_FAULTS=()
    if ! dashboard_mix; then
        info "the scripted mix of SOAP calls failed"
        FAILED_SECTIONS+=("dashboard-mix")
        return 0
    fi
    mix_expected_json >"$dir/mix-expected.json"
    info "mix: ${#MIX_CALLS[@]} organisations, $(($(printf '%s+' "${MIX_CALLS[@]}")0)) calls ($((SECONDS - t0)) s)"

    # /metrics and /api/migration, taken together after the mix.
    if ! curl -fsS -o "$dir/metrics-after.txt" "$CONVERTER_URL/metrics" ||
        ! curl -fsS -o "$dir/migration.json" "$CONVERTER_URL/api/migration"; then
        info "GET /metrics or /api/migration failed"
        FAILED_SECTIONS+=("dashboard-agree")
        return 0
    fi
    info "/metrics and /api/migration: do they agree?"
    "$VENV/bin/python" "$ROOT/scripts/interop/migration_agree.py" "$dir/metrics-before.txt" \
        "$dir/metrics-after.txt" "$dir/migration.json" "$dir/mix-expected.json" ||
        FAILED_SECTIONS+=("dashboard-agree")

    info "Grafana: deploy/grafana/vos-converter.json"
    if setup_python_promql; then
        "$VENV/bin/python" "$ROOT/scripts/interop/grafana_check.py" "$ROOT/deploy/grafana/vos-converter.json" \
            "$dir/metrics-after.txt" "$ROOT/src/observe/metrics.rs" || FAILED_SECTIONS+=("dashboard-grafana")
    else
        info "could not install promql-parser"
        FAILED_SECTIONS+=("dashboard-grafana")
    fi

    info "headless Chromium: $CONVERTER_URL/dashboard"
    t0=$SECONDS
    local rc=0
    if ! ensure_chromium; then
        info "no chromium at $CHROMIUM"
        FAILED_SECTIONS+=("dashboard-chromium")
    elif ! setup_npm_soap; then
        info "could not install the npm packages (playwright-core)"
        FAILED_SECTIONS+=("dashboard-chromium")
    else
        CHROMIUM="$CHROMIUM" NODE_PATH="$NODE_DIR/node_modules" node "$ROOT/scripts/interop/dashboard_check.js" \
            "$CONVERTER_URL" "$png" "$dir/page.txt" 1:101 2:12 3:147 2>&1 | tee "$dir/chromium-check.log" ||
            rc=$?
        if ((rc != 0)); then
            info "the dashboard check failed (log in ${dir#"$ROOT"/}/chromium-check.log)"
            FAILED_SECTIONS+=("dashboard-chromium")
        else
            info "dashboard in Chromium passed ($((SECONDS - t0)) s); screenshot ${png#"$ROOT"/}"
        fi
    fi

    local scanned=("$dir/metrics-after.txt" "$dir/migration.json")
    [[ -f "$dir/page.txt" ]] && scanned+=("$dir/page.txt")
    cpr_scan "the page, /metrics or /api/migration" "${scanned[@]}" || FAILED_SECTIONS+=("cpr-in-dashboard")
}

# No CPR number in the converter's output (its embedded backend logs there too): the SOAP
# clients sent the seeded persons' and fictitious ones. Any CPR-shaped run of ten digits
# counts that is not part of a longer word, a number or a UUID.
check_converter_logs() {
    section "logs: no CPR number in the converter's output"
    [[ -n "$CONVERTER_PID" ]] || {
        info "skipped: the converter did not start"
        return 0
    }
    local logs=("$LOG_DIR/converter.stdout" "$LOG_DIR/converter.stderr") leaks
    # An empty log would make this check vacuous: one line per SOAP call is expected.
    if ! grep -qiE 'soap call|operation=' "$LOG_DIR/converter.stderr"; then
        info "the converter logged no SOAP requests; RUST_LOG=${INTEROP_RUST_LOG:-info,vos_converter=debug}"
        FAILED_SECTIONS+=("no-converter-log")
    fi
    info "scanning $(wc -l <"$LOG_DIR/converter.stderr") log lines"
    leaks="$(grep -n -E '(^|[^0-9A-Za-z-])(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9]{6}($|[^0-9A-Za-z-])' \
        "${logs[@]}" || true)"
    if [[ -n "$leaks" ]]; then
        sed -E 's/[0-9]{10}/**********/g' <<<"$leaks" | head -20 >&2
        info "a CPR number appears in the converter's log"
        FAILED_SECTIONS+=("cpr-in-converter-logs")
    else
        info "no CPR number in the log"
    fi
}

# ---------------------------------------------------------------------------------------------
# The HTTPS door: client certificates and connection agreements, nginx in front, mutual TLS
# to REST

# Every process https_door starts, as "PID:NAME", stopped in reverse order by door_stop_all
# (at the section's end, and by cleanup when the script ends early).
DOOR_PIDS=()
DOOR_DIR=""
DOOR_URL=""

# DOOR_UNSET: env's -u for every VOS_* variable of the caller's environment (flags only:
# nothing may move a process of this section elsewhere). Filled by door_unset_vos; used as
# `env "${DOOR_UNSET[@]}" CMD... &`, so that $! is CMD's own pid (env execs it).
DOOR_UNSET=()
door_unset_vos() {
    local v
    DOOR_UNSET=()
    for v in $(compgen -e); do
        if [[ "$v" == VOS_* ]]; then DOOR_UNSET+=(-u "$v"); fi
    done
}

door_stop_all() {
    local i
    for ((i = ${#DOOR_PIDS[@]} - 1; i >= 0; i--)); do
        stop_process "${DOOR_PIDS[i]%%:*}" "${DOOR_PIDS[i]#*:}"
    done
    DOOR_PIDS=()
}

# door_start NAME LOG CMD... -- CMD in the background (output in LOG.stdout and LOG.stderr),
# no VOS_* setting of the caller's environment; waits up to 30 s for its "listening on URL"
# line. DOOR_URL is that URL. Status 1 (and says why) when it exits first or says nothing.
door_start() {
    local name="$1" log="$2"
    shift 2
    door_unset_vos
    env "${DOOR_UNSET[@]}" RUST_LOG="${INTEROP_RUST_LOG:-info,vos_converter=debug}" NO_COLOR=1 \
        "$@" >"$log.stdout" 2>"$log.stderr" &
    local pid=$! line=""
    DOOR_PIDS+=("$pid:$name")
    DOOR_URL=""
    for _ in $(seq 1 150); do
        line="$(grep -m1 -oE 'listening on https?://127\.0\.0\.1:[0-9]+' "$log.stdout" || true)"
        if [[ -n "$line" ]]; then
            DOOR_URL="${line#listening on }"
            info "$name: pid $pid at $DOOR_URL (logs in ${log#"$ROOT"/}.*)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$log.stdout" "$log.stderr" >&2 || true
            info "the $name exited before it listened"
            return 1
        fi
        sleep 0.2
    done
    info "the $name did not say where it listens within 30 s"
    return 1
}

# door_seed CERTS URL -- the backend's person register fed with mappings/dev-seed.toml as
# STAR (SetPersonRegister, dev mode), over mutual TLS with the converter's certificate.
door_seed() {
    local certs="$1" url="$2" body status n=0
    while IFS= read -r body; do
        status="$(curl -sS -o "$DOOR_DIR/seed-response.json" -w '%{http_code}' -X PUT \
            --cacert "$certs/ca.pem" --cert "$certs/converter.pem" --key "$certs/converter-key.pem" \
            -H 'X-Organisation-Type: 5' -H 'X-Organisation-Code: 55570117' -H 'X-User-Id: interop-seed' \
            -H 'Content-Type: application/json' --data-binary "$body" "$url$API/personregister")" || return 1
        if [[ "$status" != 204 ]]; then
            cat "$DOOR_DIR/seed-response.json" >&2
            info "SetPersonRegister over mutual TLS answered $status, expected 204"
            return 1
        fi
        n=$((n + 1))
    done < <("$VENV/bin/python" -c '
import json, sys, tomllib
for p in tomllib.load(open(sys.argv[1], "rb"))["person"]:
    print(json.dumps(p))' "$ROOT/mappings/dev-seed.toml")
    ((n > 0)) || return 1
    info "seeded $n persons of mappings/dev-seed.toml over mutual TLS (converter.pem, CVR 55570117)"
}

# Debian's nginx, when missing. The package's scripts would start the system's nginx on port
# 80: for the install only, a policy-rc.d forbids that (when the machine has none).
NGINX="${NGINX:-/usr/sbin/nginx}"
ensure_nginx() {
    if [[ ! -x "$NGINX" ]]; then
        local policy=/usr/sbin/policy-rc.d added="" rc=0
        if [[ "$(id -u)" == 0 && ! -e "$policy" ]]; then
            printf '#!/bin/sh\n# scripts/interop.sh: no service starts while it installs nginx\nexit 101\n' >"$policy"
            chmod 755 "$policy"
            added=1
        fi
        apt_install nginx || rc=$?
        [[ -n "$added" ]] && rm -f "$policy"
        ((rc == 0)) || return 1
    fi
    [[ -x "$NGINX" ]] || return 1
    info "$("$NGINX" -v 2>&1)"
}

# free_port -- a TCP port free on 127.0.0.1 just now (for nginx, which cannot pick one).
free_port() {
    "$VENV/bin/python" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# door_nginx CERTS PORT UPSTREAM DIR -- nginx on 127.0.0.1:PORT, TLS with a required client
# certificate of CERTS/ca.pem, in front of UPSTREAM; config, pid, logs and temp files in DIR.
# Runs in the foreground of its own process (daemon off), so it is stopped by its pid.
door_nginx() {
    local certs="$1" port="$2" upstream="$3" dir="$4"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
# Written by scripts/interop.sh (https_door).
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 64; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    # Started as root, the worker runs as nobody, which cannot reach these folders: bodies
    # and answers stay in memory (SOAP messages and the WSDLs are small).
    client_body_buffer_size 1m;
    proxy_max_temp_file_size 0;
    server {
        listen 127.0.0.1:$port ssl;
        server_name localhost;
        ssl_certificate $certs/server.pem;
        ssl_certificate_key $certs/server-key.pem;
        ssl_client_certificate $certs/ca.pem;
        ssl_verify_client on;
        location / {
            proxy_pass $upstream;
            proxy_set_header X-Client-Cert \$ssl_client_escaped_cert;
            proxy_set_header X-Forwarded-Host \$host:\$server_port;
            proxy_set_header X-Forwarded-Proto https;
        }
    }
}
EOF
    "$NGINX" -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" 2>"$dir/config-test.txt" || {
        cat "$dir/config-test.txt" >&2
        info "nginx -t refused the generated config"
        return 1
    }
    "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/nginx.stdout" 2>"$dir/nginx.stderr" &
    local pid=$!
    DOOR_PIDS+=("$pid:nginx")
    for _ in $(seq 1 50); do
        # Any HTTP answer (nginx's 400 to a client without a certificate) means it listens.
        if curl -s -o /dev/null --cacert "$certs/ca.pem" "https://localhost:$port/"; then
            info "nginx: pid $pid at https://localhost:$port -> $upstream (config in $dir)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$dir/nginx.stderr" "$dir/error.log" >&2 || true
            info "nginx exited before it listened"
            return 1
        fi
        sleep 0.2
    done
    info "nginx did not answer on port $port within 10 s"
    return 1
}

# door_zeep NAME ARGS... -- zeep_tls.py; a failure is recorded as NAME.
door_zeep() {
    local name="$1" rc=0
    shift
    "$VENV/bin/python" "$ROOT/scripts/interop/zeep_tls.py" "$@" || rc=$?
    if ((rc != 0)); then
        info "zeep over the HTTPS door failed with exit status $rc (exchanges in ${5#"$ROOT"/})"
        FAILED_SECTIONS+=("$name")
    fi
}

# 1. `serve` terminating TLS itself: zeep with jobcenter-101.pem, npm soap with akasse-12.pem.
door_certificate_mode() {
    local certs="$1" foreign="$2" ldir="$3" cutover="$4" port rc=0
    door_start "converter (HTTPS, identity certificate)" "$ldir/converter-tls" \
        "$BIN" serve --listen 127.0.0.1:0 --data-dir "$DOOR_DIR/data-tls" --dev \
        --tls-cert "$certs/server.pem" --tls-key "$certs/server-key.pem" --client-ca "$certs/ca.pem" \
        --client-crl "$certs/crl.pem" --agreements "$certs/agreements.toml" \
        --cutover-override "1:101=$cutover" || {
        FAILED_SECTIONS+=("https-door-tls")
        return 0
    }
    port="${DOOR_URL##*:}"
    sed -n 's/^ *\(identity:.*\)/\1/p' "$ldir/converter-tls.stdout" | while read -r l; do info "$l"; done
    info "zeep $ZEEP_VERSION: https://localhost:$port, jobcenter-101.pem (OCES3)"
    door_zeep https-door-tls certificate "https://localhost:$port" "$certs" "$foreign" \
        "$ldir/zeep-tls-exchanges.log"
    info "npm soap: https://127.0.0.1:$port, akasse-12.pem (OCES2)"
    if ! setup_npm_soap; then
        info "could not install the npm soap client"
        FAILED_SECTIONS+=("https-door-npm")
        return 0
    fi
    NODE_PATH="$NODE_DIR/node_modules" node "$ROOT/scripts/interop/npm_soap_tls.js" \
        "https://127.0.0.1:$port" "$certs" "$ldir/npm-soap-tls-exchanges.log" || rc=$?
    if ((rc != 0)); then
        info "npm soap over the HTTPS door failed with exit status $rc (exchanges in ${ldir#"$ROOT"/}/npm-soap-tls-exchanges.log)"
        FAILED_SECTIONS+=("https-door-npm")
    fi
}

# 2. nginx terminating TLS, `serve` in proxy mode behind it on loopback.
door_proxy_mode() {
    local certs="$1" foreign="$2" ldir="$3" cutover="$4" port direct
    if ! ensure_nginx; then
        info "no nginx at $NGINX"
        FAILED_SECTIONS+=("https-door-nginx")
        return 0
    fi
    door_start "converter (plain HTTP, identity proxy)" "$ldir/converter-proxy" \
        "$BIN" serve --listen 127.0.0.1:0 --data-dir "$DOOR_DIR/data-proxy" --dev \
        --trusted-proxy 127.0.0.1/32 --client-cert-header X-Client-Cert --client-ca "$certs/ca.pem" \
        --agreements "$certs/agreements.toml" --cutover-override "1:101=$cutover" || {
        FAILED_SECTIONS+=("https-door-nginx")
        return 0
    }
    direct="$DOOR_URL"
    sed -n 's/^ *\(identity:.*\)/\1/p' "$ldir/converter-proxy.stdout" | while read -r l; do info "$l"; done
    port="$(free_port)"
    door_nginx "$certs" "$port" "$direct" "$DOOR_DIR/nginx" || {
        FAILED_SECTIONS+=("https-door-nginx")
        return 0
    }
    info "zeep $ZEEP_VERSION: https://localhost:$port (nginx), jobcenter-101.pem; the converter at $direct"
    door_zeep https-door-nginx proxy "https://localhost:$port" "$certs" "$foreign" \
        "$ldir/zeep-nginx-exchanges.log" "$direct"
    cp "$DOOR_DIR/nginx/nginx.conf" "$ldir/nginx.conf" 2>/dev/null || true
    cp "$DOOR_DIR/nginx/access.log" "$ldir/nginx-access.log" 2>/dev/null || true
    cp "$DOOR_DIR/nginx/error.log" "$ldir/nginx-error.log" 2>/dev/null || true
}

# 3. The reference backend over mutual TLS, trusting the converter's CVR only; `serve` calls it
# with its own certificate and terminates TLS itself.
door_mtls_backend() {
    local certs="$1" foreign="$2" ldir="$3" cutover="$4" backend rest port status rc=0
    local tls=(--cacert "$certs/ca.pem")
    local star=(-H 'X-Organisation-Type: 5' -H 'X-Organisation-Code: 55570117' -H 'X-User-Id: interop')
    local out="$DOOR_DIR/backend-response.json"
    door_start "backend (mutual TLS)" "$ldir/backend-mtls" \
        "$BIN" backend --listen 127.0.0.1:0 --db "$DOOR_DIR/backend-mtls.db" --dev \
        --tls-cert "$certs/server.pem" --tls-key "$certs/server-key.pem" --client-ca "$certs/ca.pem" \
        --trusted-client-cvr 55570117 || {
        FAILED_SECTIONS+=("https-door-mtls")
        return 0
    }
    backend="$DOOR_URL"
    rest="https://localhost:${backend##*:}"
    if ! door_seed "$certs" "$rest"; then
        info "seeding the backend over mutual TLS failed"
        FAILED_SECTIONS+=("https-door-mtls")
        return 0
    fi

    # Who may set the identity headers: the converter's CVR, not a jobcenter's, nobody without
    # a certificate.
    local failed=0 url="$rest$API/kodelister/kontaktgruppetyper"
    status="$(curl -sS -o "$out" -w '%{http_code}' "${tls[@]}" --cert "$certs/converter.pem" \
        --key "$certs/converter-key.pem" "${star[@]}" "$url")" || status="curl failed"
    if [[ "$status" == 200 ]]; then
        info "backend, converter.pem (CVR 55570117, trusted): GET $API/kodelister/kontaktgruppetyper -> 200"
    else
        info "backend, converter.pem (CVR 55570117, trusted): GET $API/kodelister/kontaktgruppetyper -> $status, expected 200"
        failed=1
    fi
    local ctype fejlkode
    ctype="$(curl -sS -o "$out" -w '%{http_code} %{content_type}' "${tls[@]}" --cert "$certs/jobcenter-101.pem" \
        --key "$certs/jobcenter-101-key.pem" "${star[@]}" "$url")" || ctype="curl failed"
    fejlkode="$("$VENV/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("fejlkode"))' \
        "$out" 2>/dev/null || true)"
    if [[ "$ctype" == *application/problem+json* && "$fejlkode" == 900205 ]]; then
        info "backend, jobcenter-101.pem (CVR 11111111, not trusted) with identity headers -> ${ctype%% *}, fejlkode 900205"
    else
        cat "$out" >&2 2>/dev/null || true
        info "backend, jobcenter-101.pem (CVR 11111111, not trusted) -> $ctype, fejlkode ${fejlkode:-none}; expected problem+json with fejlkode 900205"
        failed=1
    fi
    rc=0
    curl -sS -o /dev/null "${tls[@]}" "${star[@]}" "$url" 2>"$DOOR_DIR/curl-no-cert.txt" || rc=$?
    if ((rc != 0)); then
        info "backend without a client certificate: curl exit $rc ($(head -1 "$DOOR_DIR/curl-no-cert.txt"))"
    else
        info "backend without a client certificate: answered, expected the handshake to fail"
        failed=1
    fi

    # Outside dev mode `serve` does not start with unverified identities unless told to.
    rc=0
    door_unset_vos
    env "${DOOR_UNSET[@]}" timeout 10 "$BIN" serve --listen 127.0.0.1:0 --data-dir "$DOOR_DIR/data-refused" --rest-url "$rest" \
        >"$ldir/converter-no-door.stdout" 2>"$ldir/converter-no-door.stderr" || rc=$?
    if ((rc != 0 && rc != 124)) && grep -q 'identity' "$ldir/converter-no-door.stderr"; then
        info "serve --rest-url without TLS, proxy or --identity header: refused to start (exit $rc)"
    else
        cat "$ldir/converter-no-door.stderr" >&2 || true
        info "serve --rest-url without TLS, proxy or --identity header: exit $rc, expected a refusal naming identity"
        failed=1
    fi

    door_start "converter (HTTPS, mutual TLS to REST)" "$ldir/converter-mtls" \
        "$BIN" serve --listen 127.0.0.1:0 --data-dir "$DOOR_DIR/data-mtls" --rest-url "$rest" \
        --rest-client-cert "$certs/converter.pem" --rest-client-key "$certs/converter-key.pem" \
        --rest-ca "$certs/ca.pem" \
        --tls-cert "$certs/server.pem" --tls-key "$certs/server-key.pem" --client-ca "$certs/ca.pem" \
        --agreements "$certs/agreements.toml" --cutover-override "1:101=$cutover" || {
        FAILED_SECTIONS+=("https-door-mtls")
        return 0
    }
    port="${DOOR_URL##*:}"
    sed -n 's/^ *\(REST upstream:.*\)/\1/p' "$ldir/converter-mtls.stdout" | while read -r l; do info "$l"; done
    if ! grep -q "REST upstream: $rest (mutual TLS)" "$ldir/converter-mtls.stdout"; then
        info "the converter does not say it calls $rest with mutual TLS"
        failed=1
    fi
    local before after
    before="$(grep -c 'request' "$ldir/backend-mtls.stderr" || true)"
    info "zeep $ZEEP_VERSION: https://localhost:$port -> $rest, jobcenter-101.pem"
    door_zeep https-door-mtls backend "https://localhost:$port" "$certs" "$foreign" \
        "$ldir/zeep-mtls-exchanges.log"
    after="$(grep -c 'request' "$ldir/backend-mtls.stderr" || true)"
    if ((after > before)); then
        info "the backend logged $((after - before)) more request lines during the zeep calls"
    else
        info "the backend logged no request during the zeep calls: did they reach it?"
        failed=1
    fi
    ((failed == 0)) || FAILED_SECTIONS+=("https-door-mtls")
}

https_door() {
    section "HTTPS door: client certificates (zeep, npm soap), nginx in front, mutual TLS to REST"
    local ldir="$LOG_DIR/https-door" certs foreign cutover
    rm -rf "$ldir"
    mkdir -p "$ldir"
    if ! setup_python_soap; then
        FAILED_SECTIONS+=("https-door")
        return 0
    fi
    DOOR_DIR="$(mktemp -d "${TMPDIR:-/tmp}/vos-interop-door.XXXXXX")"
    certs="$DOOR_DIR/certs"
    foreign="$DOOR_DIR/foreign"
    # Two sets: the one everything here trusts, and one of another CA nothing trusts.
    if ! "$BIN" dev-certs "$certs" >"$ldir/dev-certs.txt" || ! "$BIN" dev-certs "$foreign" >/dev/null; then
        info "vos-converter dev-certs failed"
        FAILED_SECTIONS+=("https-door")
        return 0
    fi
    info "dev-certs: $(cd "$certs" && printf '%s ' *)"
    if "$BIN" check --agreements "$certs/agreements.toml" >"$ldir/check.txt" 2>&1; then
        info "vos-converter check: $(head -1 "$ldir/check.txt")"
    else
        cat "$ldir/check.txt" >&2
        info "vos-converter check --agreements refused the agreements dev-certs wrote"
        FAILED_SECTIONS+=("https-door")
    fi
    # Jobcenter 1:101 before its own cutover: its reads reach REST.
    cutover="$(TZ=Europe/Copenhagen date -d '+60 days' +%F)"

    local t0=$SECONDS
    info "-- 1. serve --tls-cert --client-ca --agreements (identity certificate)"
    door_certificate_mode "$certs" "$foreign" "$ldir" "$cutover"
    door_stop_all
    info "($((SECONDS - t0)) s)"
    t0=$SECONDS
    info "-- 2. nginx (ssl_verify_client on) in front of serve --trusted-proxy 127.0.0.1/32 (identity proxy)"
    door_proxy_mode "$certs" "$foreign" "$ldir" "$cutover"
    door_stop_all
    info "($((SECONDS - t0)) s)"
    t0=$SECONDS
    info "-- 3. backend over mutual TLS (--trusted-client-cvr 55570117), serve --rest-url https://..."
    door_mtls_backend "$certs" "$foreign" "$ldir" "$cutover"
    door_stop_all
    info "($((SECONDS - t0)) s)"
}

# ---------------------------------------------------------------------------------------------

# timed FUNCTION -- runs a section and keeps its duration for the summary.
timed() {
    local t0=$SECONDS
    "$@"
    SECTION_TIMES+=("$(printf '%-26s %4d s' "$1" $((SECONDS - t0)))")
}

main() {
    local start=$SECONDS
    cd "$ROOT"
    case "${INTEROP_ONLY:-}" in
    "" | https-door | schemathesis) ;;
    *) fail "INTEROP_ONLY=$INTEROP_ONLY: the sections that run alone are https-door and schemathesis" ;;
    esac
    timed setup_python
    timed build_release
    if [[ "${INTEROP_ONLY:-}" == https-door ]]; then
        mkdir -p "$LOG_DIR"
    elif [[ "${INTEROP_ONLY:-}" == schemathesis ]]; then
        timed start_backend
        timed seed_backend
        timed run_schemathesis
        timed run_schemathesis_noident
        timed check_logs
    else
        timed start_backend
        timed seed_backend
        timed run_schemathesis
        timed run_schemathesis_noident
        timed check_logs
        timed start_converter
        timed validate_wsdl
        timed run_zeep
        timed run_zeep_reads
        timed run_npm_soap
        timed run_wsrm
        timed check_dashboard
        timed check_converter_logs
        timed durability_strace
    fi
    [[ "${INTEROP_ONLY:-}" == schemathesis ]] || timed https_door

    section "result"
    local t
    for t in "${SECTION_TIMES[@]}"; do
        info "$t"
    done
    if [[ -n "$BACKEND_PID" ]] && ! kill -0 "$BACKEND_PID" 2>/dev/null; then
        FAILED_SECTIONS+=("backend-died")
    fi
    if [[ -n "$CONVERTER_PID" ]] && ! kill -0 "$CONVERTER_PID" 2>/dev/null; then
        FAILED_SECTIONS+=("converter-died")
    fi
    if ((${#FAILED_SECTIONS[@]} > 0)); then
        info "FAILED: ${FAILED_SECTIONS[*]} ($((SECONDS - start)) s)"
        info "logs and reports: ${LOG_DIR#"$ROOT"/}/"
        exit 1
    fi
    info "all interop sections passed ($((SECONDS - start)) s)"
}

main "$@"
