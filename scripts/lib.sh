# Shell helpers shared by scripts/interop.sh, bench.sh, soak.sh and ha.sh, which source this file
# after setting SCRIPT_NAME (the prefix of their section lines and failures).

section() { printf '\n==== %s: %s ====\n' "$SCRIPT_NAME" "$*"; }
info() { printf '  %s\n' "$*"; }
fail() {
    printf '%s: FAIL: %s\n' "$SCRIPT_NAME" "$*" >&2
    exit 1
}

# stop_process PID NAME [SECONDS] -- TERM, up to SECONDS (10) for it to end, then KILL.
# Only the script's own children, by their pid.
stop_process() {
    local pid="$1" name="$2" seconds="${3:-10}"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    info "stopping the $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((seconds * 5))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        info "the $name (pid $pid) did not stop in $seconds s: KILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# apt_install PACKAGE... -- Debian packages with apt-get (needs root: CI is). Status 1 when
# that cannot be done here.
APT_UPDATED=""
apt_install() {
    info "missing system packages: $*"
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        info "install $* (needs root and apt-get to do it here)"
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [[ -z "$APT_UPDATED" ]]; then
        apt-get update -qq || return 1
        APT_UPDATED=1
    fi
    apt-get install -y -qq --no-install-recommends "$@"
}

# listening_url PID STDOUT -- the URL of the process's "listening on http://..." line, once
# it is there (up to 60 s); nothing when the process ended first or did not say it in time.
listening_url() {
    local pid="$1" file="$2" line=""
    for _ in $(seq 1 1200); do
        line="$(grep -m1 -o 'listening on http://127\.0\.0\.1:[0-9]*' "$file" 2>/dev/null || true)"
        if [[ -n "$line" ]]; then
            printf '%s' "${line#listening on }"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
}
