#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# faults.sh - SMTP fault injection against a real ecertd: each fault is
# played by Postfix's smtp-sink, started afresh with the fault's options,
# and the documented outcome is asserted (README, "Mail push"):
#
#   4xx at EHLO/HELO, MAIL, RCPT, DATA, "."  deferred, reply kept, retried,
#                                            then delivered exactly once
#   5xx at MAIL, RCPT, DATA, "."; 550 abort  dead at once, reply kept, never
#   in mid-DATA (smtp-sink -A)               retried on its own
#   disconnect after DATA / after "."        deferred (no reply), delivered
#   (smtp-sink -q, no reply at all)
#   stall past mail.timeout (MAIL, DATA, ".") deferred within timeout+margin,
#                                            delivered
#   STARTTLS required, relay offers none     deferred, nothing sent in clear,
#                                            dead after max_age, purgeable
#   relay down past retry.max_age            dead: "gave up after N attempts"
#   SMTP AUTH from auth_file                 delivered, authenticated, the
#                                            password in no log and no store
#   a batch of 6 in one session, the relay   the 2 acknowledged delivered, the
#   exits after 2 (smtp-sink -M 3)           rest deferred, then delivered;
#                                            none sent twice once acknowledged
#   a batch of 6 in one session, a scripted  each as its own reply says (250,
#   relay answers "." with 451/554/452       451, 554 dead, 452), then each
#   for some                                 delivered exactly once
#
# Nothing is lost: every certificate handed in ends delivered or dead.
# Duplicates (dumps with the same Message-ID) are counted per case: a
# fault sink's dump only counts as "accepted" if the sink answered 2xx to
# "."; the at-least-once rule allows a second copy only then.
#
# Run from the project root after `make all`:   bash tests/smtp/faults.sh
# KEEP=1 keeps the temporary directory; ECERTD, ECERTCTL, SMTP_SINK and
# SAMPLES override the defaults.  Prints "ok N - ..." / "not ok N - ..."
# per check and a last line "smtp: P passed, F failed"; exits 1 if any
# check failed.  Takes about 90 seconds (retry.max_age = 60 is the
# configuration's minimum).

set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ECERTD=${ECERTD:-$ROOT/build/ecertd}
CTL=${ECERTCTL:-$ROOT/build/ecertctl}
SINK=${SMTP_SINK:-/usr/sbin/smtp-sink}
SAMPLES=${SAMPLES:-$ROOT/../shared/samples/spscert}
SAMPLE=$SAMPLES/agrocalidad-qa-BO-to-EC-491412337BO.xml
SAMPLE_NUMBER=491412337BO
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi

POLL=0.2           # seconds between polls of the store
TIMEOUT=2          # mail.timeout (seconds per SMTP step)
STALL=5            # how long a stalling sink waits (> TIMEOUT)
MAX_AGE=60         # mail.retry.max_age (the configuration's minimum)
PASSWORD='s3cr3t:Pa55-ecert-faults'   # the relay AUTH password (holds ':')
T_START=$(date +%s)

# ==== results ================================================================

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
        "$(printf '%s' "${2:-}" | tr '\n' ' ' | cut -c1-400)"
}

# check DESC WHY COMMAND...: ok when COMMAND succeeds, else not ok with WHY.
check() {
    local desc=$1 why=$2
    shift 2
    if "$@"; then ok "$desc"; else not_ok "$desc" "$why"; fi
}

note() { printf '# %s\n' "$*"; }

finish() {
    if [ "$FAIL" -gt 0 ] && [ -s "${DLOG:-/nonexistent}" ]; then
        echo "# ---- daemon log, last 40 lines ----"
        tail -n 40 "$DLOG" | sed 's/^/# /'
    fi
    echo "smtp: $PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
    exit $?
}

# ==== prerequisites ==========================================================

for f in "$ECERTD" "$CTL" "$SINK"; do
    if [ ! -x "$f" ]; then
        not_ok "$f is there" "run make all; smtp-sink is in the postfix package"
        finish
    fi
done
for tool in openssl ss sqlite3 base64 "$PY"; do
    if ! command -v "$tool" >/dev/null; then
        not_ok "$tool is installed" "missing"
        finish
    fi
done
if [ ! -r "$SAMPLE" ]; then
    not_ok "the sample certificate is there" "$SAMPLE not readable"
    finish
fi

# ==== processes and clean-up =================================================

T=$(mktemp -d "${TMPDIR:-/tmp}/ecert-smtp.XXXXXX") || exit 1
chmod 755 "$T"
CA=$T/ca
CONF=$T/ecertd.conf
DLOG=$T/ecertd.log
DB=$T/ecert.db
W=$T/work
mkdir -p "$W"

DPID=
declare -A SINK_PID=() SINK_PORT=()
USED_PORTS=" "

cleanup() {
    local i n
    if [ -n "$DPID" ]; then
        kill -TERM "$DPID" 2>/dev/null
        for i in $(seq 1 50); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DPID" 2>/dev/null
        wait "$DPID" 2>/dev/null
    fi
    for n in "${!SINK_PID[@]}"; do
        [ -n "${SINK_PID[$n]}" ] || continue
        kill -TERM "${SINK_PID[$n]}" 2>/dev/null
        wait "${SINK_PID[$n]}" 2>/dev/null
    done
    if [ "${KEEP:-0}" = 1 ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

# free_port: a port nobody listens on and not handed out before.
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

# wait_port PORT SECS [PID] / wait_port_closed PORT SECS
wait_port() {
    local i
    for i in $(seq 1 $(( $2 * 20 ))); do
        port_in_use "$1" && return 0
        if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then return 1; fi
        sleep 0.05
    done
    return 1
}

wait_port_closed() {
    local i
    for i in $(seq 1 $(( $2 * 20 ))); do
        port_in_use "$1" || return 0
        sleep 0.05
    done
    return 1
}

# start_sink N DIR [SMTP-SINK OPTIONS...]: the sink of relay N on its port,
# each message dumped into DIR (a directory of its own per sink set-up),
# the conversation (-v) logged to $T/sinkN.log.
start_sink() {
    local n=$1 dir=$2 user=()
    shift 2
    [ "$(id -u)" -eq 0 ] && user=(-u nobody)
    mkdir -p "$dir"
    chmod 777 "$dir"
    echo "# ---- start $(date +%T.%N) $* -> $dir" >>"$T/sink$n.log"
    "$SINK" "${user[@]}" -v "$@" -d "$dir/%M%S." "127.0.0.1:${SINK_PORT[$n]}" 64 \
        >>"$T/sink$n.log" 2>&1 &
    SINK_PID[$n]=$!
    wait_port "${SINK_PORT[$n]}" 5 "${SINK_PID[$n]}"
}

stop_sink() {
    local n=$1
    if [ -n "${SINK_PID[$n]:-}" ]; then
        kill -TERM "${SINK_PID[$n]}" 2>/dev/null
        wait "${SINK_PID[$n]}" 2>/dev/null
        SINK_PID[$n]=
    fi
    wait_port_closed "${SINK_PORT[$n]}" 5
}

restart_sink() {
    local n=$1
    shift
    stop_sink "$n" && start_sink "$n" "$@"
}

start_daemon() {
    "$ECERTD" -f -c "$CONF" >>"$DLOG" 2>&1 &
    DPID=$!
    wait_port "$PORT" 10 "$DPID"
}

# ==== certificates ============================================================

SEQ=0
# new_cert DEST: NUM = a fresh certificate number, FILE = a copy of the
# sample addressed to DEST with that number.
new_cert() {
    SEQ=$((SEQ + 1))
    NUM=$(printf '48%07dBO' "$SEQ")
    FILE=$W/$NUM.xml
    sed -e "/<ram:ImportSPSCountry>/,/<\/ram:ImportSPSCountry>/s|<ram:ID>EC</ram:ID>|<ram:ID>$1</ram:ID>|" \
        -e "s/$SAMPLE_NUMBER/$NUM/g" "$SAMPLE" >"$FILE"
}

# submit DEST: hand in a new certificate for DEST as the operator;
# TRK = its tracking number.  T_SUB = when (ms).
submit() {
    new_cert "$1"
    T_SUB=$(( $(date +%s%N) / 1000000 ))
    TRK=$("$CTL" -c "$CONF" submit "$FILE" --to "$1" 2>"$W/submit.err")
    SUBMIT_RC=$?
    TRK=$(printf '%s' "$TRK" | tr -d '[:space:]')
    [ "$SUBMIT_RC" -eq 0 ] && [ -n "$TRK" ]
}

# ==== the store ================================================================

# mail_info TRACKING PARTNER: M_STATE, M_ATT, M_ERR of its smtp delivery
# (M_STATE "none" if there is none), as ecertctl --json show tells.
mail_info() {
    local out
    out=$("$CTL" -c "$CONF" --json show "$1" 2>/dev/null | "$PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    print("none\t0\t-"); sys.exit(0)
for x in d.get("deliveries", []):
    if x.get("channel") == "smtp" and x.get("partner") == sys.argv[1]:
        e = (x.get("last_error") or "").replace("\t", " ").replace("\n", " ")
        print("%s\t%s\t%s" % (x.get("state"), x.get("attempts"), e or "-")); break
else:
    print("none\t0\t-")' "$2")
    IFS=$'\t' read -r M_STATE M_ATT M_ERR <<<"$out"
    [ "${M_ERR:-}" = - ] && M_ERR=
    M_ERR=${M_ERR:-}
    M_ATT=${M_ATT:-0}
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# wait_state TRACKING PARTNER STATE SECS [MIN-ATTEMPTS]: poll until the
# smtp delivery is in STATE with at least MIN-ATTEMPTS attempts.
# T_HIT = when it was seen (ms).
wait_state() {
    local end=$(( $(now_ms) + $4 * 1000 ))
    while :; do
        mail_info "$1" "$2"
        if [ "$M_STATE" = "$3" ] && [ "$M_ATT" -ge "${5:-0}" ]; then
            T_HIT=$(now_ms)
            return 0
        fi
        [ "$(now_ms)" -ge "$end" ] && return 1
        sleep "$POLL"
    done
}

# db_error TRACKING PARTNER: delivery.last_error of its smtp delivery,
# straight from the store.
db_error() {
    sqlite3 -cmd '.timeout 5000' "$DB" \
        "SELECT d.last_error FROM delivery d JOIN certificate c ON c.id = d.cert_id
          WHERE c.tracking = '$1' AND d.partner = '$2' AND d.channel = 2;" 2>&1
}

# ==== the dumps ================================================================

# count_dumps TRACKING PARTNER DIR...: how many dumped messages in DIRs
# carry the Message-ID of TRACKING to PARTNER.
count_dumps() {
    local id="<$1.$2@gw.invalid>" d n=0 c
    shift 2
    for d in "$@"; do
        c=$(grep -l -i -F "Message-ID: $id" "$d"/* 2>/dev/null | wc -l)
        n=$((n + c))
    done
    echo "$n"
}

# verify_dump TRACKING PARTNER DIR: the message of TRACKING in DIR has a
# good S/MIME signature (against the dev CA) and carries the certificate
# number it was handed in with (NUMBER_OF[TRACKING]).
declare -A NUMBER_OF=()
verify_dump() {
    local f
    f=$(grep -l -i -F "Message-ID: <$1.$2@gw.invalid>" "$3"/* 2>/dev/null | head -n 1)
    [ -n "$f" ] || return 1
    openssl cms -verify -CAfile "$CA/ca.crt" -in "$f" -out "$W/$1.inner" \
        >"$W/$1.verify.log" 2>&1 || return 1
    grep -q -F "${NUMBER_OF[$1]}.xml" "$W/$1.inner"
}

ACCEPT1=$T/accept1     # the dumps of sink 1 while it accepts everything

# ==== set-up ===================================================================

if ! bash "$ROOT/deploy/dev-ca.sh" "$CA" ec-nppo pe-nppo co-nppo ar-nppo bo-issuer \
        >"$T/dev-ca.log" 2>&1 || [ ! -s "$CA/mail-signer.crt" ] || [ ! -s "$CA/bo-issuer.fp" ]; then
    not_ok "deploy/dev-ca.sh makes the CA and the certificates" "$(tail -n 5 "$T/dev-ca.log")"
    finish
fi

PORT=$(free_port)
SINK_PORT[1]=$(free_port)     # ec-relay: the fault sink, restarted per case
SINK_PORT[2]=$(free_port)     # pe-relay: STARTTLS required, none offered
SINK_PORT[3]=$(free_port)     # co-relay: nobody listens (relay down)
SINK_PORT[4]=$(free_port)     # ar-relay: SMTP AUTH

printf 'faults-user:%s\n' "$PASSWORD" >"$T/relay.auth"
chmod 600 "$T/relay.auth"

cat >"$CONF" <<EOF
# faults.sh test configuration
country = "BO";
listen = { address = "127.0.0.1"; port = $PORT; };
tls = { cert = "$CA/server.crt"; key = "$CA/server.key"; ca = "$CA/ca.crt"; };
store = "$DB";
schema_dir = "$ROOT/wsdl/spscert";
partners = (
  { id = "bo-issuer"; country = "BO"; roles = [ "submit" ];
    fingerprint = "$(cat "$CA/bo-issuer.fp")"; },
  { id = "ec-nppo"; country = "EC"; roles = [ "pull" ];
    certificate = "$CA/ec-nppo.crt";
    mail = { to = [ "nppo@ec.invalid" ]; relay = "ec-relay"; }; },
  { id = "pe-nppo"; country = "PE"; roles = [ "pull" ];
    certificate = "$CA/pe-nppo.crt";
    mail = { to = [ "nppo@pe.invalid" ]; relay = "pe-relay"; }; },
  { id = "co-nppo"; country = "CO"; roles = [ "pull" ];
    certificate = "$CA/co-nppo.crt";
    mail = { to = [ "nppo@co.invalid" ]; relay = "co-relay"; }; },
  { id = "ar-nppo"; country = "AR"; roles = [ "pull" ];
    certificate = "$CA/ar-nppo.crt";
    mail = { to = [ "nppo@ar.invalid" ]; relay = "ar-relay"; }; }
);
mail = {
  sender = "ecert@gw.invalid";
  ehlo = "gw.invalid";
  signing = { cert = "$CA/mail-signer.crt"; key = "$CA/mail-signer.key"; };
  relays = (
    { name = "ec-relay"; host = "127.0.0.1"; port = ${SINK_PORT[1]};
      starttls = "off"; concurrency = 2; },
    { name = "pe-relay"; host = "127.0.0.1"; port = ${SINK_PORT[2]};
      starttls = "required"; ca = "$CA/ca.crt"; concurrency = 1; },
    { name = "co-relay"; host = "127.0.0.1"; port = ${SINK_PORT[3]};
      starttls = "off"; concurrency = 1; },
    { name = "ar-relay"; host = "127.0.0.1"; port = ${SINK_PORT[4]};
      starttls = "off"; auth_file = "$T/relay.auth"; concurrency = 1; }
  );
  retry = { first_delay = 1; factor = 2.0; max_delay = 2; max_age = $MAX_AGE; };
  timeout = $TIMEOUT;
  workers = 4;
};
EOF

if ! start_sink 1 "$ACCEPT1" || ! start_sink 2 "$T/dump-starttls" ||
   ! start_sink 4 "$T/dump-auth"; then
    not_ok "smtp-sink listens on its ports" "$(cat "$T"/sink*.log 2>/dev/null | tail -n 5)"
    finish
fi
if ! start_daemon; then
    not_ok "ecertd starts and listens on 127.0.0.1:$PORT" "$(tail -n 20 "$DLOG")"
    finish
fi
ok "ecertd runs with 4 relays (fault sink, STARTTLS-required, down, AUTH)"

# ==== long-running cases first: they age while the faults run ==================

# STARTTLS required against smtp-sink (which never offers it), and a relay
# whose port is closed: both are retried until max_age, then dead.
TRK_TLS=
if submit PE; then TRK_TLS=$TRK; NUMBER_OF[$TRK]=$NUM; T_TLS=$T_SUB
else not_ok "starttls: ecertctl submit (PE)" "rc=$SUBMIT_RC $(cat "$W/submit.err")"; fi
TRK_DOWN=
if submit CO; then TRK_DOWN=$TRK; NUMBER_OF[$TRK]=$NUM; T_DOWN=$T_SUB
else not_ok "max-age: ecertctl submit (CO)" "rc=$SUBMIT_RC $(cat "$W/submit.err")"; fi

# ==== the outcome table ===========================================================

declare -a TABLE=()
# row FAULT OUTCOME DUPLICATES
row() { TABLE+=("$(printf '%-28s | %-44s | %s' "$1" "$2" "$3")"); }

# ==== deferring faults: deferred, retried, then delivered ========================

# temp_case NAME RULE SINK-OPTS... -- ERROR-REGEX MAX-SECONDS-TO-DEFER
# Hands in a certificate for EC with sink 1 playing the fault; expects it
# deferred with last_error matching ERROR-REGEX (extended, case-insensitive)
# within MAX-SECONDS-TO-DEFER of the hand-in, retried (attempts grows, same
# error), then, with a plain sink, delivered: exactly one copy accepted
# after the fault, complete.  RULE says what the fault sink may have dumped
# (smtp-sink writes a dump from DATA on, whatever it answers to "."):
#   none      the fault comes before the message text: no copy there;
#   rejected  the sink got the text but answered 4xx or nothing to ".":
#             its copies were never accepted, so exactly 1 accepted in all;
#   maybe     the sink answers 250 to "." after the client gave up: it
#             did accept, so the resend is the one duplicate the
#             at-least-once rule allows (>= 1 in all).
temp_case() {
    local name=$1 rule=$2 opts=() rx secs fdir=$T/fault-$1 trk a1 ms n_acc n_fault dbe
    shift 2
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    rx=$1 secs=$2
    if ! restart_sink 1 "$fdir" "${opts[@]}"; then
        not_ok "$name: smtp-sink starts with ${opts[*]}" "$(tail -n 3 "$T/sink1.log")"
        return
    fi
    if ! submit EC; then
        not_ok "$name: ecertctl submit" "rc=$SUBMIT_RC $(cat "$W/submit.err")"
        return
    fi
    trk=$TRK
    NUMBER_OF[$trk]=$NUM
    if wait_state "$trk" ec-nppo deferred $((secs + 5)) 1; then
        ms=$((T_HIT - T_SUB))
        check "$name: deferred after $ms ms (attempt $M_ATT), within ${secs} s" \
            "took $ms ms" test "$ms" -le $((secs * 1000))
        check "$name: last_error keeps the reply: $M_ERR" "last_error=$M_ERR" \
            eval 'printf "%s" "$M_ERR" | grep -Eiq -- "$rx"'
        dbe=$(db_error "$trk" ec-nppo)
        check "$name: the store's delivery.last_error is the same" \
            "sqlite3: $dbe / ecertctl: $M_ERR" test "$dbe" = "$M_ERR"
        a1=$M_ATT
        if wait_state "$trk" ec-nppo deferred 8 $((a1 + 1)); then
            check "$name: retried on its own (attempts $a1 -> $M_ATT), same error" \
                "last_error=$M_ERR" eval 'printf "%s" "$M_ERR" | grep -Eiq -- "$rx"'
        else
            not_ok "$name: retried on its own, still deferred" \
                "state=$M_STATE attempts=$M_ATT (was $a1) last_error=$M_ERR"
        fi
    else
        not_ok "$name: deferred within $secs s" \
            "state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
        sleep 0.3
        n_fault=$(count_dumps "$trk" ec-nppo "$fdir")
        if [ "$M_STATE" = delivered ]; then
            row "$name" "DELIVERED (\"$(printf '%s' "$M_ERR" | cut -c1-22)\")" \
                "$n_fault at the fault sink ($rule)"
            note "$name: recorded delivered on \"$M_ERR\" although no 2xx to \".\" came" \
                 "within the timeout; fault sink copies: $n_fault"
        else
            row "$name" "NOT deferred: $M_STATE $(printf '%s' "$M_ERR" | cut -c1-26)" "?"
        fi
        restart_sink 1 "$ACCEPT1"
        return
    fi
    local err_kept=$M_ERR att_fault=$M_ATT
    restart_sink 1 "$ACCEPT1"
    if wait_state "$trk" ec-nppo delivered 10; then
        ok "$name: delivered once the relay behaves (attempts $M_ATT)"
    else
        not_ok "$name: delivered once the relay behaves" \
            "state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
    fi
    sleep 0.3                  # let the sink finish writing its dump
    n_acc=$(count_dumps "$trk" ec-nppo "$ACCEPT1")
    n_fault=$(count_dumps "$trk" ec-nppo "$fdir")
    check "$name: exactly one copy accepted after the fault ($n_acc)" \
        "$n_acc dumps in $ACCEPT1" test "$n_acc" = 1
    check "$name: that copy is complete (signature verifies, carries ${NUMBER_OF[$trk]}.xml)" \
        "$(cat "$W/$trk.verify.log" 2>/dev/null | head -n 3)" verify_dump "$trk" ec-nppo "$ACCEPT1"
    case $rule in
    none)
        check "$name: no copy reached the fault sink: exactly 1 in all" \
            "$n_fault dumps at the fault sink" test "$n_fault" = 0
        dup="exactly 1"
        ;;
    rejected)
        check "$name: the fault sink's copies ($n_fault) were never acknowledged: exactly 1 accepted" \
            "$n_fault dumps at the fault sink, $att_fault+ attempts" test "$n_fault" -le "$att_fault"
        dup="exactly 1 accepted (+$n_fault unacked at fault sink)"
        ;;
    maybe)
        note "$name: the fault sink kept $n_fault copy(ies) it answered after the client gave up"
        dup=">=1: $((n_acc + n_fault)) in all ($n_fault late-accepted)"
        ;;
    esac
    row "$name" "deferred (\"$(printf '%s' "$err_kept" | cut -c1-30)\"), delivered" "$dup"
}

# starttls_retrying: the STARTTLS-required delivery is deferred, retried,
# and nothing reached the sink in clear (checked early, long before
# max_age makes it dead).
starttls_retrying() {
    [ -n "$TRK_TLS" ] || return
    if wait_state "$TRK_TLS" pe-nppo deferred 10 3; then
        ok "starttls: deferred and retried (attempts $M_ATT after $(( ($(now_ms) - T_TLS) / 1000 )) s)"
        check "starttls: last_error says: $M_ERR" "last_error=$M_ERR" \
            eval '[[ $M_ERR == *"relay does not offer STARTTLS"* ]]'
    else
        not_ok "starttls: deferred and retried at least 3 times" \
            "state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
    fi
    n=$(ls -A "$T/dump-starttls" | wc -l)
    check "starttls: nothing reached the sink's dump directory" "$n dump(s)" test "$n" = 0
    v=$(grep -c -i -E 'MAIL FROM|RCPT TO|: DATA$' "$T/sink2.log")
    check "starttls: no MAIL/RCPT/DATA in the sink's conversation log" \
        "$(grep -i -m3 -E 'MAIL FROM|RCPT TO|DATA' "$T/sink2.log")" test "$v" = 0
}

# --- 4xx at each command -------------------------------------------------------
temp_case "4xx EHLO+HELO" none -r EHLO,HELO -b "421 4.3.2 ecert-test EHLO busy" -- \
    "421.*ecert-test EHLO busy" 3
temp_case "4xx MAIL" none -r MAIL -b "451 4.3.0 ecert-test MAIL busy" -- \
    "MAIL.*451.*ecert-test MAIL busy" 3
starttls_retrying
temp_case "4xx RCPT" none -r RCPT -b "450 4.2.1 ecert-test RCPT busy" -- \
    "RCPT.*450.*ecert-test RCPT busy" 3
temp_case "4xx DATA" none -r DATA -b "452 4.3.1 ecert-test DATA full" -- \
    "452.*ecert-test DATA full" 3
temp_case "4xx end of data" rejected -r . -b "451 4.3.0 ecert-test dot later" -- \
    "451.*ecert-test dot later" 3

# --- disconnects ------------------------------------------------------------------
temp_case "disconnect after DATA" none -q DATA -- \
    "no reply|connection closed|reset" 3
temp_case "disconnect after ." rejected -q . -- \
    "no reply|connection closed|reset" 3

# --- stalls past mail.timeout -----------------------------------------------------
temp_case "stall MAIL ${STALL}s" none -W "MAIL:$STALL" -- \
    "time|no reply" $((TIMEOUT + 3))
temp_case "stall DATA ${STALL}s (-w)" none -w "$STALL" -- \
    "time|no reply" $((TIMEOUT + 3))
temp_case "stall . ${STALL}s, then 250" maybe -W ".:$STALL" -- \
    "time|no reply" $((TIMEOUT + 3))

# ==== 5xx: dead at once ===========================================================

declare -A HARD_TRK=()
# hard_case NAME SINK-OPTS... -- ERROR-REGEX
hard_case() {
    local name=$1 opts=() rx fdir=$T/fault-$1 trk
    shift
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    rx=$2
    if ! restart_sink 1 "$fdir" "${opts[@]}"; then
        not_ok "$name: smtp-sink starts with ${opts[*]}" "$(tail -n 3 "$T/sink1.log")"
        return
    fi
    if ! submit EC; then
        not_ok "$name: ecertctl submit" "rc=$SUBMIT_RC $(cat "$W/submit.err")"
        return
    fi
    trk=$TRK
    NUMBER_OF[$trk]=$NUM
    if wait_state "$trk" ec-nppo dead 8; then
        HARD_TRK[$name]=$trk
        check "$name: dead at the first attempt" "attempts=$M_ATT" test "$M_ATT" = 1
        check "$name: last_error keeps the reply: $M_ERR" "last_error=$M_ERR" \
            eval 'printf "%s" "$M_ERR" | grep -Eiq -- "$rx"'
        row "$name" "dead at once ($(printf '%s' "$M_ERR" | cut -c1-32))" "0 accepted"
    else
        not_ok "$name: dead at once" "state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
        row "$name" "NOT dead: $M_STATE $(printf '%s' "$M_ERR" | cut -c1-30)" "?"
    fi
}

hard_case "5xx MAIL" -f MAIL -B "553 5.7.1 ecert-test sender refused" -- \
    "MAIL.*553.*ecert-test sender refused"
hard_case "5xx RCPT" -f RCPT -B "550 5.1.1 ecert-test no such mailbox" -- \
    "RCPT.*550.*ecert-test no such mailbox"
hard_case "5xx DATA" -f DATA -B "554 5.5.1 ecert-test no data" -- \
    "554.*ecert-test no data"
hard_case "5xx end of data" -f . -B "554 5.6.0 ecert-test content refused" -- \
    "554.*ecert-test content refused"
# smtp-sink -A answers DATA with 354, then sends "550 5.3.0 ... violates
# SMTP" and hangs up before ".": a 5xx from the relay, so dead at once
# (README), not a silent disconnect (those are -q DATA and -q . above).
hard_case "abort mid-DATA (-A 0)" -A 0 -- "550.*violates SMTP"
T_HARD=$(date +%s)
restart_sink 1 "$ACCEPT1"

# ==== SMTP AUTH ====================================================================

if submit AR; then
    TRK_AUTH=$TRK
    NUMBER_OF[$TRK]=$NUM
    if wait_state "$TRK_AUTH" ar-nppo delivered 10; then
        ok "auth: delivered through the AUTH relay (attempts $M_ATT)"
    else
        not_ok "auth: delivered through the AUTH relay" \
            "state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
    fi
    sleep 0.3
    n=$(count_dumps "$TRK_AUTH" ar-nppo "$T/dump-auth")
    check "auth: exactly one copy at the sink" "$n dumps" test "$n" = 1
    f=$(grep -l -i -F "Message-ID: <$TRK_AUTH.ar-nppo@gw.invalid>" "$T/dump-auth"/* 2>/dev/null | head -n 1)
    v=$(grep -m1 '^X-Mail-Args:' "$f" 2>/dev/null)
    check "auth: the dump shows the envelope ($v)" "no X-Mail-Args in $f" \
        eval '[[ $v == *"<ecert@gw.invalid>"* ]]'
    check "auth: the copy verifies and carries ${NUMBER_OF[$TRK_AUTH]}.xml" \
        "$(head -n 3 "$W/$TRK_AUTH.verify.log" 2>/dev/null)" verify_dump "$TRK_AUTH" ar-nppo "$T/dump-auth"
    # The sink's conversation log (-v) shows the AUTH command; its PLAIN
    # response must decode to the configured user and password.
    authline=$(grep -i -o 'AUTH PLAIN [A-Za-z0-9+/=]*' "$T/sink4.log" | head -n 1)
    authdec=$(printf '%s' "${authline##* }" | base64 -d 2>/dev/null | tr '\0' '|')
    check "auth: the client authenticated with AUTH PLAIN as faults-user" \
        "sink saw: '${authline:-no AUTH PLAIN}' $(grep -i -m3 'auth' "$T/sink4.log" | tr '\n' ' ')" \
        test "$authdec" = "|faults-user|$PASSWORD"
else
    not_ok "auth: ecertctl submit (AR)" "rc=$SUBMIT_RC $(cat "$W/submit.err")"
fi

# ==== batches: several messages in one session ========================================

# With the daemon stopped, certificates pile up; when it starts, one worker
# claims them all in one batch (mail.batch = 32) and sends them over one
# SMTP session.  Each message must end as its own replies say, whatever
# happens to the others, and each must in the end be delivered exactly
# once as far as the store is concerned (one "delivered" record, and one
# copy the relay acknowledged).

# first_outcome TRACKING PARTNER: "STATE|NOTE" of the outcome recorded for
# the first attempt (the history is: created, attempt 1, its outcome, ...).
first_outcome() {
    sqlite3 -cmd '.timeout 5000' "$DB" \
        "SELECT CASE e.state WHEN 3 THEN 'delivered' WHEN 2 THEN 'deferred'
                WHEN 7 THEN 'dead' ELSE e.state END || '|' || e.note
           FROM event e JOIN delivery d ON d.id = e.delivery_id
           JOIN certificate c ON c.id = d.cert_id
          WHERE c.tracking = '$1' AND d.partner = '$2' AND d.channel = 2
          ORDER BY e.id LIMIT 1 OFFSET 2;" 2>&1
}

# delivered_records TRACKING PARTNER: how many times the store recorded
# its smtp delivery as delivered.
delivered_records() {
    sqlite3 -cmd '.timeout 5000' "$DB" \
        "SELECT count(*) FROM event e JOIN delivery d ON d.id = e.delivery_id
           JOIN certificate c ON c.id = d.cert_id
          WHERE c.tracking = '$1' AND d.partner = '$2' AND d.channel = 2
            AND e.state = 3;" 2>&1
}

# wait_first_outcomes SECS TRACKING...: until each has its first outcome.
wait_first_outcomes() {
    local end=$(( $(now_ms) + $1 * 1000 )) t
    shift
    while :; do
        for t in "$@"; do
            [ -n "$(first_outcome "$t" ec-nppo)" ] || break
        done
        [ -n "$(first_outcome "$t" ec-nppo)" ] && return 0
        [ "$(now_ms)" -ge "$end" ] && return 1
        sleep "$POLL"
    done
}

stop_daemon() {
    local i
    [ -n "$DPID" ] || return 0
    kill -TERM "$DPID" 2>/dev/null
    for i in $(seq 1 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$DPID" 2>/dev/null; then
        kill -KILL "$DPID" 2>/dev/null
        wait "$DPID" 2>/dev/null
        DPID=
        return 1
    fi
    wait "$DPID" 2>/dev/null
    DPID=
}

# batch_submit N: stop the daemon, hand in N certificates for EC; BTRK[],
# BNUM[] in hand-in (= due) order.
batch_submit() {
    local i
    BTRK=()
    BNUM=()
    stop_daemon || not_ok "batch: ecertd stops on SIGTERM" "$(tail -n 5 "$DLOG")"
    for i in $(seq 1 "$1"); do
        if submit EC; then
            BTRK+=("$TRK")
            BNUM+=("$NUM")
            NUMBER_OF[$TRK]=$NUM
        else
            not_ok "batch: ecertctl submit" "rc=$SUBMIT_RC $(cat "$W/submit.err")"
        fi
    done
}

# batch_final NAME: every one of BTRK[] but those whose index is in BDEAD
# ends delivered and recorded delivered exactly once (BDEAD ones: dead,
# never recorded delivered).
batch_final() {
    local name=$1 i t bad="" r
    for i in "${!BTRK[@]}"; do
        t=${BTRK[$i]}
        if [[ " ${BDEAD:-} " == *" $i "* ]]; then
            wait_state "$t" ec-nppo dead 1
            r=$(delivered_records "$t" ec-nppo)
            [ "$M_STATE:$r" = dead:0 ] || bad="$bad #$((i + 1))=$M_STATE/$r"
            continue
        fi
        wait_state "$t" ec-nppo delivered 15
        r=$(delivered_records "$t" ec-nppo)
        [ "$M_STATE:$r" = delivered:1 ] || bad="$bad #$((i + 1))=$M_STATE/$r"
    done
    check "$name: in the end each is delivered and recorded delivered exactly once" \
        "state/delivered records:${bad}" test -z "$bad"
}

# batch_copies NAME WANT DIRS...: the copies of each of BTRK[] in DIRS
# (the copies the relays acknowledged), as " #1=N #2=N ...", are WANT.
batch_copies() {
    local name=$1 want=$2 i got=""
    shift 2
    sleep 0.3                  # let a sink finish writing its dump
    for i in "${!BTRK[@]}"; do
        got="$got #$((i + 1))=$(count_dumps "${BTRK[$i]}" ec-nppo "$@")"
    done
    check "$name: acknowledged copies per message:$want" "got:$got" test "$got" = "$want"
}

# --- the relay hangs up part-way: smtp-sink -M 3 takes two messages, then
# exits while the third one's "." waits for its answer.
BDIR=$T/fault-batch-drop
batch_submit 6
if restart_sink 1 "$BDIR" -M 3 && start_daemon &&
   wait_first_outcomes 15 "${BTRK[@]}"; then
    got=""
    for i in "${!BTRK[@]}"; do
        o=$(first_outcome "${BTRK[$i]}" ec-nppo)
        got="$got #$((i + 1))=${o%%|*}"
    done
    check "batch drop: first attempt exact per message (2 delivered, the rest deferred)" \
        "$got" test "$got" = " #1=delivered #2=delivered #3=deferred #4=deferred #5=deferred #6=deferred"
    o=$(first_outcome "${BTRK[2]}" ec-nppo)
    check "batch drop: #3 (sent, \".\" unanswered): ${o#*|}" "$o" \
        eval '[[ $o == "deferred|DATA: no reply"* ]]'
    o=$(first_outcome "${BTRK[3]}" ec-nppo)
    check "batch drop: #4 (after the hang-up): ${o#*|}" "$o" \
        eval '[[ $o == *"no reply to MAIL FROM"* ]]'
    n=$(sed -n '/^# ---- start.*-M 3/,$p' "$T/sink1.log" | grep -c 'connect (AF_INET')
    check "batch drop: the six went over one session ($n connection)" \
        "$(sed -n '/^# ---- start.*-M 3/,$p' "$T/sink1.log" | grep -i -m5 connect)" test "$n" = 1
    n=$(ls -A "$BDIR" | wc -l)
    check "batch drop: the sink kept the text of #1-#3 only ($n dumps)" "$(ls "$BDIR")" test "$n" = 3
else
    not_ok "batch drop: six deliveries claimed together get their first outcomes" \
        "$(tail -n 5 "$DLOG")"
fi
restart_sink 1 "$ACCEPT1"
BDEAD=
batch_final "batch drop"
# #1 and #2 were acknowledged by the fault sink and never sent again; #3
# reached it too, unacknowledged (its dump, not a delivery), so it and the
# rest came through once each after the hang-up.
batch_copies "batch drop (fault sink)" " #1=1 #2=1 #3=1 #4=0 #5=0 #6=0" "$BDIR"
batch_copies "batch drop (after it)" " #1=0 #2=0 #3=1 #4=1 #5=1 #6=1" "$ACCEPT1"
row "batch of 6, relay exits after 2" "2 delivered, 4 deferred, then delivered" "exactly 1 accepted each"

# --- the relay refuses part-way: a scripted relay answers each message's
# "." by its certificate number: 451 for #2, 554 for #4, 452 for #5, 250
# for the others, all in the same session.
cat >"$T/fault-relay.py" <<'PYEOF'
import os, re, socket, sys
port, dump, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rules = dict(r.split("=", 1) for r in sys.argv[4:])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(8)
session = 0
while True:
    conn, _ = srv.accept()
    session += 1
    f = conn.makefile("rb")
    say = lambda s: conn.sendall(s.encode() + b"\r\n")
    say("220 fault-relay ESMTP")
    while True:
        line = f.readline()
        if not line:
            break
        cmd = line[:4].upper()
        if cmd in (b"EHLO", b"HELO"):
            say("250-fault-relay\r\n250 PIPELINING")
        elif cmd in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
            say("250 2.0.0 Ok")
        elif cmd == b"DATA":
            say("354 go ahead")
            text = []
            while True:
                l = f.readline()
                if not l or l == b".\r\n":
                    break
                text.append(l)
            if not l:
                break
            text = b"".join(text)
            m = re.search(rb"^X-ECert-Number: *(\S+)", text, re.M | re.I)
            num = m.group(1).decode() if m else "?"
            reply = rules.get(num, "250 2.0.0 Ok: queued")
            if reply.startswith("2"):
                with open(os.path.join(dump, "%d.%s" % (session, num)), "wb") as d:
                    d.write(text)
            with open(log, "a") as d:
                d.write("%d %s %s\n" % (session, num, reply.split()[0]))
            say(reply)
        elif cmd == b"QUIT":
            say("221 2.0.0 Bye")
            break
        else:
            say("502 5.5.2 what?")
    conn.close()
PYEOF
BDIR=$T/fault-batch-mixed
mkdir -p "$BDIR"
batch_submit 6
stop_sink 1
"$PY" "$T/fault-relay.py" "${SINK_PORT[1]}" "$BDIR" "$T/fault-relay.log" \
    "${BNUM[1]}=451 4.3.0 ecert-test batch later" \
    "${BNUM[3]}=554 5.6.0 ecert-test batch refused" \
    "${BNUM[4]}=452 4.3.1 ecert-test batch full" >>"$T/sink1.log" 2>&1 &
SINK_PID[1]=$!
if wait_port "${SINK_PORT[1]}" 5 "${SINK_PID[1]}" && start_daemon &&
   wait_first_outcomes 15 "${BTRK[@]}"; then
    got=""
    for i in "${!BTRK[@]}"; do
        o=$(first_outcome "${BTRK[$i]}" ec-nppo)
        got="$got #$((i + 1))=$o"
    done
    want=" #1=delivered|DATA: 250 2.0.0 Ok: queued #2=deferred|DATA: 451 4.3.0 ecert-test batch later"
    want="$want #3=delivered|DATA: 250 2.0.0 Ok: queued #4=dead|DATA: 554 5.6.0 ecert-test batch refused"
    want="$want #5=deferred|DATA: 452 4.3.1 ecert-test batch full #6=delivered|DATA: 250 2.0.0 Ok: queued"
    check "batch mixed: first attempt exact per message, reply kept" "$got" test "$got" = "$want"
    s1=$(awk '$1 == 1 { printf " %s=%s", $2, $3 }' "$T/fault-relay.log")
    want=$(printf ' %s=250 %s=451 %s=250 %s=554 %s=452 %s=250' "${BNUM[@]}")
    check "batch mixed: the relay's first session carried all six, in due order" \
        "first session:$s1" test "$s1" = "$want"
    mail_info "${BTRK[3]}" ec-nppo
    check "batch mixed: #4 (554) is dead at once" "state=$M_STATE attempts=$M_ATT" \
        test "$M_STATE:$M_ATT" = dead:1
else
    not_ok "batch mixed: six deliveries claimed together get their first outcomes" \
        "$(tail -n 5 "$DLOG")"
fi
# The two deferred ones keep being refused by this relay; then a plain one.
wait_state "${BTRK[1]}" ec-nppo deferred 10 2 &&
    check "batch mixed: #2 retried on its own, refused again (attempts $M_ATT)" \
        "last_error=$M_ERR" eval '[[ $M_ERR == *"451 4.3.0 ecert-test batch later" ]]' ||
    not_ok "batch mixed: #2 retried on its own" "state=$M_STATE attempts=$M_ATT"
restart_sink 1 "$ACCEPT1"
BDEAD=" 3 "
batch_final "batch mixed"
BDEAD=
batch_copies "batch mixed" " #1=1 #2=1 #3=1 #4=0 #5=1 #6=1" "$BDIR" "$ACCEPT1"
row "batch of 6, 451/554/452 part-way" "each as its reply says; 554 dead" "exactly 1 accepted each"

# ==== 5xx deliveries are not retried on their own ====================================

# At least 3 s after the last of them went dead (and much longer for the first).
sleep $(( T_HARD + 3 - $(date +%s) > 0 ? T_HARD + 3 - $(date +%s) : 0 ))
for name in "5xx MAIL" "5xx RCPT" "5xx DATA" "5xx end of data" "abort mid-DATA (-A 0)"; do
    trk=${HARD_TRK[$name]:-}
    [ -n "$trk" ] || continue
    mail_info "$trk" ec-nppo
    n=$(count_dumps "$trk" ec-nppo "$ACCEPT1")
    check "$name: still dead with 1 attempt $(( $(date +%s) - T_HARD ))+ s later, nothing accepted" \
        "state=$M_STATE attempts=$M_ATT accepted dumps=$n" test "$M_STATE:$M_ATT:$n" = "dead:1:0"
done

# ==== max_age: dead with "gave up after N attempts", purge ============================

# wait_dead_aged TRACKING PARTNER T-SUBMIT(ms) LABEL ERROR-REGEX: dead once
# max_age has passed since the delivery was made, with "gave up after N
# attempts: <the last error>"; the age is read from the store
# (delivery.updated_ms - created_ms), not from when this script looked.
wait_dead_aged() {
    local trk=$1 partner=$2 label=$4 erx=$5 age n
    local left=$(( ($3 + MAX_AGE * 1000 - $(now_ms)) / 1000 + 6 + TIMEOUT ))
    [ "$left" -lt 1 ] && left=1
    if ! wait_state "$trk" "$partner" dead "$left"; then
        not_ok "$label: dead after max_age" "state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
        return 1
    fi
    age=$(sqlite3 -cmd '.timeout 5000' "$DB" \
        "SELECT (d.updated_ms - d.created_ms) / 1000 FROM delivery d
           JOIN certificate c ON c.id = d.cert_id
          WHERE c.tracking = '$trk' AND d.partner = '$partner' AND d.channel = 2;" 2>&1)
    check "$label: dead $age s after it was made (max_age $MAX_AGE, + at most max_delay and a timeout)" \
        "age $age s" test "$age" -ge "$MAX_AGE" -a "$age" -le $((MAX_AGE + 2 + TIMEOUT + 1))
    check "$label: last_error: $M_ERR" "last_error=$M_ERR" \
        eval 'printf "%s" "$M_ERR" | grep -Eq -- "^gave up after [0-9]+ attempts: .*($erx)"'
    n=$(printf '%s' "$M_ERR" | sed -n 's/^gave up after \([0-9]*\) attempts.*/\1/p')
    check "$label: \"gave up after $n attempts\" matches the recorded attempts ($M_ATT)" \
        "message says $n, store says $M_ATT" test "$n" = "$M_ATT"
    return 0
}

if [ -n "$TRK_DOWN" ]; then
    if wait_dead_aged "$TRK_DOWN" co-nppo "$T_DOWN" "max-age (relay down)" "refused|connect"; then
        row "relay down > max_age" "dead: $(printf '%s' "$M_ERR" | cut -c1-40)" "0 accepted"
    else
        row "relay down > max_age" "NOT dead: $M_STATE" "?"
    fi
fi
if [ -n "$TRK_TLS" ]; then
    if wait_dead_aged "$TRK_TLS" pe-nppo "$T_TLS" "starttls" "relay does not offer STARTTLS"; then
        row "STARTTLS required, none" "deferred, then dead after max_age" "0 (none in clear)"
        n=$(ls -A "$T/dump-starttls" | wc -l)
        check "starttls: still nothing sent in clear ($n dumps) after $M_ATT attempts" \
            "$(ls "$T/dump-starttls")" test "$n" = 0
        out=$("$CTL" -c "$CONF" purge "$TRK_TLS" --yes 2>&1)
        rc=$?
        mail_info "$TRK_TLS" pe-nppo
        check "starttls: ecertctl purge removes the dead delivery" \
            "rc=$rc out=$out state=$M_STATE" test "$rc:$M_STATE" = "0:none"
        v=$("$CTL" -c "$CONF" --json show "$TRK_TLS" 2>&1 | "$PY" -c '
import json, sys
print(json.load(sys.stdin).get("tracking", ""))' 2>&1)
        check "starttls: the certificate itself stays after the purge" "show: $v" \
            test "$v" = "$TRK_TLS"
    else
        row "STARTTLS required, none" "NOT dead: $M_STATE" "?"
    fi
fi

# ==== at the end ===================================================================

if [ -n "${TRK_AUTH:-}" ]; then
    v=$(grep -c -F "$PASSWORD" "$DLOG")
    check "auth: the password appears nowhere in the daemon log" "$v line(s)" test "$v" = 0
    pw64=$(printf '%s' "$PASSWORD" | base64)
    v=$(grep -c -F -e "${PASSWORD#*:}" -e "$pw64" "$DLOG")
    check "auth: nor any part or base64 form of it" "$v line(s)" test "$v" = 0
    v=$(cat "$DB"* 2>/dev/null | grep -c -a -F "${PASSWORD#*:}")
    check "auth: nor the store" "$v hit(s)" test "$v" = 0
    row "AUTH PLAIN (auth_file)" "delivered, authenticated, password unlogged" "exactly 1"
fi

# Nothing lost: every delivery ends delivered or dead (the purged one gone).
v=$("$CTL" -c "$CONF" --json status 2>/dev/null | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
print(sum(r["count"] for r in d.get("deliveries", [])
          if r.get("channel") == "smtp" and r.get("state") not in ("delivered", "dead")))' 2>&1)
check "end: no mail delivery left waiting, sending, deferred or held" "$v open" test "$v" = 0
v=$(grep -c 'error: ' "$DLOG")
check "end: the daemon logged no errors" "$(grep 'error: ' "$DLOG" | head -n 3)" test "$v" = 0

echo "# ---- outcomes ----"
printf '# %-28s | %-44s | %s\n' "fault" "outcome" "copies with its Message-ID"
for r in "${TABLE[@]}"; do printf '# %s\n' "$r"; done
echo "# runtime $(( $(date +%s) - T_START )) s"
finish
