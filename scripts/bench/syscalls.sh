#!/usr/bin/env bash
# System calls and thread wake-ups per request, counted by strace on a running process.
#
#   scripts/bench/syscalls.sh BIN [N] [OUT]
#
# Starts BIN's backend and converter as scripts/bench.sh does (separate processes, info log
# to a file, the bench's four persons), warms each kind up with 20 requests, then attaches
# `strace -f -c` to every thread of the process under test while scripts/bench/client.py
# sends N requests of the kind on one keep-alive connection, and divides by N. Kinds:
# soap_read and soap_create (the converter), rest_status and rest_both (the backend, for
# the one-call question of GetVariablePersonStatus). Also keeps `strace -f -tt` of three
# requests of each kind (OUT/<kind>.tt.txt) to read the thread hops from. Prints one line
# per kind and syscall, and OUT/syscalls.json. Needs strace, python3, curl.
set -euo pipefail

BIN="$(realpath "${1:?usage: syscalls.sh BIN [N] [OUT]}")"
N="${2:-200}"
OUT="$(realpath -m "${3:-target/bench-syscalls}")"
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$OUT"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/vos-syscalls.XXXXXX")"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

listening() {
    local file="$1"
    for _ in $(seq 1 300); do
        if grep -q -m1 -o 'listening on http://127\.0\.0\.1:[0-9]*' "$file" 2>/dev/null; then
            grep -m1 -o 'listening on http://127\.0\.0\.1:[0-9]*' "$file" | sed 's/listening on //'
            return 0
        fi
        sleep 0.1
    done
    echo "syscalls.sh: no listener in $file" >&2
    return 1
}

RUST_LOG=info NO_COLOR=1 "$BIN" backend --listen 127.0.0.1:0 --db "$TMP/backend.db" --dev \
    >"$TMP/backend.stdout" 2>"$TMP/backend.stderr" &
BACKEND_PID=$!
PIDS+=("$BACKEND_PID")
BACKEND="$(listening "$TMP/backend.stdout")"
CPRS=(2901801001 3003802002 3105803003 2908804004)
rest() {
    curl -sS -o /dev/null -w '%{http_code}' -X "$1" -H 'X-Organisation-Type: 5' \
        -H 'X-Organisation-Code: 12345678' -H 'X-User-Id: bench-seed' \
        -H 'Content-Type: application/json' --data-binary "$2" "$BACKEND/personvisitering/v1$3" >/dev/null
}
for cpr in "${CPRS[@]}"; do
    rest PUT "{\"cpr\":\"$cpr\",\"kommunekode\":\"101\",\"akasse\":null,\"tilmeldt\":false}" /personregister
    rest POST "{\"cpr\":\"$cpr\",\"kontaktgruppetype\":2,\"startdato\":\"2024-03-31\",\"haendelsestidspunkt\":\"2024-03-31T07:15:00Z\"}" /kontaktgrupper
    rest POST "{\"cpr\":\"$cpr\",\"kontaktgruppetype\":1,\"startdato\":\"2024-10-28\",\"haendelsestidspunkt\":\"2024-10-28T08:30:00Z\"}" /kontaktgrupper
    rest POST "{\"cpr\":\"$cpr\",\"personkategoritype\":2,\"startdato\":\"2024-01-15\",\"haendelsestidspunkt\":\"2024-01-15T12:00:00Z\"}" /personkategorier
done
mkdir -p "$TMP/conv"
RUST_LOG=info NO_COLOR=1 "$BIN" serve --listen 127.0.0.1:0 --rest-url "$BACKEND" \
    --data-dir "$TMP/conv" --cutover 2099-01-01 --identity header \
    >"$TMP/conv.stdout" 2>"$TMP/conv.stderr" &
CONVERTER_PID=$!
PIDS+=("$CONVERTER_PID")
CONVERTER="$(listening "$TMP/conv.stdout")"

# attach PID OUTFILE ARGS... -- strace on every thread of PID (and threads it starts).
attach() {
    local pid="$1" file="$2"
    shift 2
    local args=()
    for t in /proc/"$pid"/task/*; do args+=(-p "${t##*/}"); done
    strace -f "$@" -o "$file" "${args[@]}" 2>"$file.err" &
    STRACE_PID=$!
    sleep 1
}

slot=0
echo "{" >"$OUT/syscalls.json"
first=1
for kind in soap_read soap_create rest_status rest_both; do
    case "$kind" in
    soap_*) pid=$CONVERTER_PID url=$CONVERTER ;;
    *) pid=$BACKEND_PID url=$BACKEND ;;
    esac
    python3 "$HERE/client.py" "$url" "$kind" 20 $((slot++)) "${CPRS[@]}" >/dev/null
    attach "$pid" "$OUT/$kind.c.txt" -c
    python3 "$HERE/client.py" "$url" "$kind" "$N" $((slot++)) "${CPRS[@]}" >/dev/null
    sleep 0.5
    kill -INT "$STRACE_PID"
    wait "$STRACE_PID" 2>/dev/null || true
    attach "$pid" "$OUT/$kind.tt.txt" -tt
    python3 "$HERE/client.py" "$url" "$kind" 3 $((slot++)) "${CPRS[@]}" >/dev/null
    sleep 0.5
    kill -INT "$STRACE_PID"
    wait "$STRACE_PID" 2>/dev/null || true
    [[ $first == 1 ]] || echo "," >>"$OUT/syscalls.json"
    first=0
    python3 - "$OUT/$kind.c.txt" "$N" "$kind" "$OUT/$kind.tt.txt" >>"$OUT/syscalls.json" <<'PY'
import json, re, sys
path, n, kind, tt = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
calls = {}
for line in open(path):
    f = line.split()
    # % time, seconds, usecs/call, calls, [errors], syscall
    if len(f) >= 5 and re.match(r"^[0-9.]+$", f[0]) and f[-1] != "total":
        calls[f[-1]] = int(f[3])
per = {k: round(v / n, 2) for k, v in sorted(calls.items(), key=lambda kv: -kv[1])}
total = round(sum(calls.values()) / n, 2)
# Thread hops: in the -tt trace, how many distinct threads make system calls per request,
# and how many times the trace switches from one thread to another.
tids, switches, last = set(), 0, None
for line in open(tt):
    m = re.match(r"^(\d+)\s+\d", line)
    if not m:
        continue
    t = m.group(1)
    tids.add(t)
    if last is not None and t != last:
        switches += 1
    last = t
print(f"{kind}: {total} syscalls per request: " + ", ".join(f"{k} {v}" for k, v in per.items()), file=sys.stderr)
print(f"{kind}: threads with syscalls in 3 requests: {len(tids)}, thread switches {switches}", file=sys.stderr)
print(json.dumps(kind) + ": " + json.dumps({"per_request": total, "by_call": per, "threads_3req": len(tids), "switches_3req": switches}))
PY
done
echo "}" >>"$OUT/syscalls.json"
