# SPDX-License-Identifier: GPL-2.0-or-later
#
# common.sh - helpers shared by the soak tests (sourced by crash.sh and
# diskfull.sh).  Results are printed TAP-like ("ok N - ..." /
# "not ok N - ... (why)") and counted in PASS / FAIL.

PASS=0
FAIL=0
NTEST=0

ok() {
    NTEST=$((NTEST + 1)); PASS=$((PASS + 1))
    printf 'ok %d - %s\n' "$NTEST" "$1"
}

not_ok() {
    NTEST=$((NTEST + 1)); FAIL=$((FAIL + 1))
    printf 'not ok %d - %s (%s)\n' "$NTEST" "$1" \
        "$(printf '%s' "${2:-}" | tr '\n' ' ' | cut -c1-600)"
}

# check DESC WHY COMMAND...: ok when COMMAND succeeds, else not ok with WHY.
check() {
    local desc=$1 why=$2
    shift 2
    if "$@"; then ok "$desc"; else not_ok "$desc" "$why"; fi
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# ---- ports, processes ---------------------------------------------------------

USED_PORTS=" "

port_in_use() { ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

# free_port: a port nobody listens on and that this script has not handed out.
free_port() {
    local p=$((20000 + RANDOM % 30000)) i
    for i in $(seq 1 500); do
        if ! port_in_use "$p" && [[ $USED_PORTS != *" $p "* ]]; then
            USED_PORTS="$USED_PORTS$p "
            echo "$p"
            return 0
        fi
        p=$((p + 1))
    done
    return 1
}

# wait_port PORT SECS [PID]: until something listens on PORT (PID alive).
wait_port() {
    local i
    for i in $(seq 1 $(( $2 * 20 ))); do
        port_in_use "$1" && return 0
        if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then return 1; fi
        sleep 0.05
    done
    return 1
}

# wait_gone PID SECS
wait_gone() {
    local i
    for i in $(seq 1 $(( $2 * 20 ))); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.05
    done
    return 1
}

# stop_pid PID [SECS]: SIGTERM, then SIGKILL after SECS (default 5); also
# the direct children of PID (a load loop's client in flight).
stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    pkill -TERM -P "$pid" 2>/dev/null
    kill -TERM "$pid" 2>/dev/null
    if ! wait_gone "$pid" "${2:-5}"; then
        pkill -KILL -P "$pid" 2>/dev/null
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}

# ---- certificates ---------------------------------------------------------------

# variant NUMBER OUT: the BO->EC sample with certificate number NUMBER.
variant() {
    sed "s#<ram:ID>$SAMPLE_NUMBER</ram:ID>#<ram:ID>$1</ram:ID>#" "$SAMPLE" >"$2"
}

sha_of() { sha256sum "$1" | cut -c1-64; }

# hc PARTNER ARGS...: the hub client as PARTNER; output in OUT, status in RC.
hc() {
    local who=$1
    shift
    OUT=$("$HUBCLIENT" -u "$URL" --cert "$CA/$who.crt" --key "$CA/$who.key" \
        --cacert "$CA/ca.crt" --timeout "${HC_TIMEOUT:-10}" "$@" 2>&1)
    RC=$?
}

tracking_of() {
    printf '%s\n' "$1" | sed -n 's/^tracking=\([^ ]*\).*/\1/p' | head -n 1
}

# is_fault SUFFIX: the last hc call answered a SOAP fault whose faultcode
# ends in SUFFIX.
is_fault() {
    [ "$RC" -eq 4 ] && printf '%s' "$OUT" | grep -Eq "^fault code=[^ ]*${1:-}( |$)"
}

# sql QUERY: read-only sqlite3 on the store.
sql() { sqlite3 -readonly "$DB" "$1" 2>&1; }
