#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# mail.sh - the mail push integration suite: a real ecertd pushing S/MIME
# messages through Postfix's smtp-sink, one sink per relay, with faults
# (4xx, 5xx, relay down, slow relay, daemon killed) and the operator's
# repair verbs (hold, release, retry).
#
# Run from the project root after `make all`:
#     bash tests/integration/mail.sh
# KEEP=1 keeps the temporary directory; ECERTD, ECERTCTL, SMTP_SINK and
# SAMPLES override the defaults.  Needs openssl, curl, python3, ss and
# Postfix's smtp-sink.  Prints "ok N - ..." / "not ok N - ... (why)" per
# check and a last line "mail: P passed, F failed"; exits 1 if any failed.

set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ECERTD=${ECERTD:-$ROOT/build/ecertd}
CTL=${ECERTCTL:-$ROOT/build/ecertctl}
SINK=${SMTP_SINK:-/usr/sbin/smtp-sink}
SAMPLES=${SAMPLES:-$ROOT/../shared/samples/spscert}
SAMPLE=$SAMPLES/agrocalidad-qa-BO-to-EC-491412337BO.xml
SAMPLE_NUMBER=491412337BO
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi

POLL=0.2                 # seconds between polls of the store
BULK=${BULK:-200}        # messages of the throughput measurement

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
        "$(printf '%s' "${2:-}" | tr '\n' ' ' | cut -c1-500)"
}

# check DESC WHY COMMAND...: ok when COMMAND succeeds, else not ok with WHY.
check() {
    local desc=$1 why=$2
    shift 2
    if "$@"; then ok "$desc"; else not_ok "$desc" "$why"; fi
}

finish() {
    if [ "$FAIL" -gt 0 ] && [ -s "${DLOG:-/nonexistent}" ]; then
        echo "# ---- daemon log, last 60 lines other than hand-ins and plain deliveries ----"
        grep -v -E 'op=DeliverEnvelope|outcome=delivered ms=[0-9]+ reply="DATA: 250' "$DLOG" |
            tail -n 60 | sed 's/^/# /'
    fi
    echo "mail: $PASS passed, $FAIL failed"
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
for tool in openssl curl ss base64 cmp "$PY"; do
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

T=$(mktemp -d "${TMPDIR:-/tmp}/ecert-mail.XXXXXX") || exit 1
chmod 755 "$T"
CA=$T/ca
CONF=$T/ecertd.conf
DLOG=$T/ecertd.log
W=$T/work
mkdir -p "$W"

DPID=
declare -A SINK_PID=() SINK_PORT=()
USED_PORTS=" "

cleanup() {
    local i
    if [ -n "$DPID" ]; then
        kill -TERM "$DPID" 2>/dev/null
        for i in $(seq 1 50); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DPID" 2>/dev/null
        wait "$DPID" 2>/dev/null
    fi
    for i in "${!SINK_PID[@]}"; do
        [ -n "${SINK_PID[$i]}" ] || continue
        kill -TERM "${SINK_PID[$i]}" 2>/dev/null
        wait "${SINK_PID[$i]}" 2>/dev/null
    done
    if [ "${KEEP:-0}" = 1 ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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

# wait_port PORT SECS [PID]: until something listens (PID still alive).
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

# start_sink N [SMTP-SINK OPTIONS...]: the sink of relay N (1: ec-relay,
# 2: pe-relay) on its port, each message dumped into $T/mailN/.
start_sink() {
    local n=$1 user=()
    shift
    [ "$(id -u)" -eq 0 ] && user=(-u nobody)
    mkdir -p "$T/mail$n"
    chmod 777 "$T/mail$n"
    "$SINK" "${user[@]}" "$@" -d "$T/mail$n/%M%S." "127.0.0.1:${SINK_PORT[$n]}" 64 \
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

# restart_sink N [OPTIONS...]
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

kill_daemon_hard() {
    [ -n "$DPID" ] || return 0
    kill -KILL "$DPID" 2>/dev/null
    wait "$DPID" 2>/dev/null
    DPID=
}

# ==== certificates to hand in ================================================

# mkcert DEST NUMBER [crlf]: prints the path of a copy of the sample
# addressed to DEST (ImportSPSCountry) with certificate number NUMBER,
# with CRLF line ends if asked.
mkcert() {
    local f=$W/$2.xml
    sed -e "/<ram:ImportSPSCountry>/,/<\/ram:ImportSPSCountry>/s|<ram:ID>EC</ram:ID>|<ram:ID>$1</ram:ID>|" \
        -e "s/$SAMPLE_NUMBER/$2/g" "$SAMPLE" >"$f"
    [ "${3:-}" = crlf ] && sed -i 's/$/\r/' "$f"
    echo "$f"
}

SEQ=0
# next_number: NUM = a certificate number not used before in this run.
next_number() {
    SEQ=$((SEQ + 1))
    NUM=$(printf '49%07dBO' "$SEQ")
}

# submit FILE CC: hand in as the operator; TRK = the tracking number.
submit() {
    TRK=$("$CTL" -c "$CONF" submit "$1" --to "$2" 2>"$W/submit.err")
    SUBMIT_RC=$?
    TRK=$(printf '%s' "$TRK" | tr -d '[:space:]')
    [ "$SUBMIT_RC" -eq 0 ] && [ -n "$TRK" ]
}

# ==== the store ===============================================================

# mail_info TRACKING PARTNER: M_STATE, M_ATT, M_ERR of its smtp delivery
# (M_STATE "none" if there is none).
mail_info() {
    local out
    out=$("$CTL" -c "$CONF" --json show "$1" 2>/dev/null |
        "$PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    print("none\t0\t"); sys.exit(0)
for x in d.get("deliveries", []):
    if x.get("channel") == "smtp" and x.get("partner") == sys.argv[1]:
        e = (x.get("last_error") or "").replace("\t", " ").replace("\n", " ")
        print("%s\t%s\t%s" % (x.get("state"), x.get("attempts"), e)); break
else:
    print("none\t0\t")' "$2")
    IFS=$'\t' read -r M_STATE M_ATT M_ERR <<<"$out"
    M_ERR=${M_ERR:-}
}

# wait_state TRACKING PARTNER STATE SECS [MIN-ATTEMPTS]: poll until the
# smtp delivery is in STATE with at least MIN-ATTEMPTS attempts.
wait_state() {
    local end=$(( $(date +%s%N) / 1000000 + $4 * 1000 ))
    while :; do
        mail_info "$1" "$2"
        if [ "$M_STATE" = "$3" ] && [ "${M_ATT:-0}" -ge "${5:-0}" ]; then return 0; fi
        [ $(( $(date +%s%N) / 1000000 )) -ge "$end" ] && return 1
        sleep "$POLL"
    done
}

# smtp_count PARTNER STATE: how many smtp deliveries of PARTNER are in STATE
# ("open": waiting, sending, deferred or held).
smtp_count() {
    "$CTL" -c "$CONF" --json status 2>/dev/null | "$PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    print(-1); sys.exit(0)
want = sys.argv[2].split(",") if sys.argv[2] != "open" else ["waiting", "sending", "deferred", "held"]
print(sum(r["count"] for r in d.get("deliveries", [])
          if r.get("channel") == "smtp" and (sys.argv[1] == "*" or r.get("partner") == sys.argv[1])
          and r.get("state") in want))' "$1" "$2"
}

# ==== the dumped messages =====================================================

# dumps_of TRACKING N: the files in $T/mailN holding a message of TRACKING.
dumps_of() {
    grep -l -F -- "$1" "$T/mail$2"/* 2>/dev/null
}

# wait_dump TRACKING N: DUMP = the (first) file of TRACKING, waiting up to 3 s.
wait_dump() {
    local i
    DUMP=
    for i in $(seq 1 30); do
        DUMP=$(dumps_of "$1" "$2" | head -n 1)
        [ -n "$DUMP" ] && return 0
        sleep 0.1
    done
    return 1
}

# hdr FILE NAME: the value of the first header NAME of the message in FILE
# (unfolded); the header block ends at the first empty line.
hdr() {
    awk -v want="$(printf '%s' "$2" | tr 'A-Z' 'a-z')" '
        { sub(/\r$/, "") }
        $0 == "" { exit }
        /^[ \t]/ { if (hit && !done) v = v " " substr($0, 2); next }
        {
            if (hit) { print v; done = 1; exit }
            i = index($0, ":")
            if (i > 1 && tolower(substr($0, 1, i - 1)) == want) {
                hit = 1; v = substr($0, i + 1); sub(/^[ \t]+/, "", v)
            }
        }
        END { if (hit && !done) print v }' "$1"
}

# attachment MIME-FILE NUMBER OUT: decode the base64 body of the part whose
# filename is NUMBER.xml into OUT.
attachment() {
    awk -v name="$2.xml" '
        { sub(/\r$/, "") }
        st == 0 && /filename=/ && index($0, name) { st = 1; next }
        st == 1 && $0 == "" { st = 2; next }
        st == 2 && ($0 == "" || /^--/) { exit }
        st == 2 { print }' "$1" | base64 -d >"$3" 2>/dev/null
    [ -s "$3" ]
}

# verify FILE OUT: S/MIME signature check against the dev CA; the signed
# content goes to OUT, the signer's certificate to OUT.signer.
verify() {
    openssl cms -verify -CAfile "$CA/ca.crt" -in "$1" -out "$2" \
        -signer "$2.signer" >"$2.log" 2>&1
}

same_cert() {
    [ "$(openssl x509 -in "$1" -noout -fingerprint -sha256 2>/dev/null)" = \
      "$(openssl x509 -in "$2" -noout -fingerprint -sha256 2>/dev/null)" ] &&
        [ -n "$(openssl x509 -in "$1" -noout -fingerprint -sha256 2>/dev/null)" ]
}

# check_message DESC TRACKING PARTNER N NUMBER ORIGINAL [encrypted]: the
# dump of TRACKING at sink N verifies (after decryption) and carries
# ORIGINAL byte for byte as NUMBER.xml.
check_message() {
    local desc=$1 trk=$2 partner=$3 n=$4 num=$5 orig=$6 enc=${7:-} d=$W/$2
    local signed
    if ! wait_dump "$trk" "$n"; then
        not_ok "$desc: a message arrived at the sink" "no dump holds $trk in $T/mail$n"
        return 1
    fi
    signed=$DUMP
    if [ "$enc" = encrypted ]; then
        if openssl cms -decrypt -recip "$CA/$partner.crt" -inkey "$CA/$partner.key" \
                -in "$DUMP" -out "$d.dec" >"$d.dec.log" 2>&1; then
            ok "$desc: decrypts with the partner's key"
        else
            not_ok "$desc: decrypts with the partner's key" "$(cat "$d.dec.log")"
            return 1
        fi
        signed=$d.dec
    fi
    if verify "$signed" "$d.inner"; then
        ok "$desc: S/MIME signature verifies against the CA"
    else
        not_ok "$desc: S/MIME signature verifies against the CA" "$(cat "$d.inner.log")"
        return 1
    fi
    check "$desc: signed by the gateway's mail-signer certificate" \
        "signer is $(openssl x509 -in "$d.inner.signer" -noout -subject 2>&1)" \
        same_cert "$d.inner.signer" "$CA/mail-signer.crt"
    if attachment "$d.inner" "$num" "$d.att" && cmp -s "$d.att" "$orig"; then
        ok "$desc: attachment $num.xml is byte-identical to the file handed in"
    else
        not_ok "$desc: attachment $num.xml is byte-identical to the file handed in" \
            "$(cmp "$d.att" "$orig" 2>&1; ls -l "$d.att" 2>&1)"
        return 1
    fi
    return 0
}

# ==== set-up ===================================================================

if ! bash "$ROOT/deploy/dev-ca.sh" "$CA" ec-nppo pe-nppo bo-issuer >"$T/dev-ca.log" 2>&1 ||
   [ ! -s "$CA/mail-signer.crt" ] || [ ! -s "$CA/bo-issuer.fp" ]; then
    not_ok "deploy/dev-ca.sh makes the CA and the certificates" "$(cat "$T/dev-ca.log")"
    finish
fi

PORT=$(free_port)
SINK_PORT[1]=$(free_port)
SINK_PORT[2]=$(free_port)

cat >"$CONF" <<EOF
# mail.sh test configuration
country = "BO";
listen = { address = "127.0.0.1"; port = $PORT; };
tls = { cert = "$CA/server.crt"; key = "$CA/server.key"; ca = "$CA/ca.crt"; };
store = "$T/ecert.db";
schema_dir = "$ROOT/wsdl/spscert";
partners = (
  { id = "bo-issuer"; country = "BO"; roles = [ "submit" ];
    fingerprint = "$(cat "$CA/bo-issuer.fp")"; },
  { id = "ec-nppo"; country = "EC"; roles = [ "pull" ];
    certificate = "$CA/ec-nppo.crt";
    mail = { to = [ "nppo@ec.invalid" ]; relay = "ec-relay"; }; },
  { id = "pe-nppo"; country = "PE"; roles = [ "pull" ];
    certificate = "$CA/pe-nppo.crt";
    mail = { to = [ "nppo@pe.invalid" ]; certificate = "$CA/pe-nppo.crt";
             relay = "pe-relay"; }; }
);
mail = {
  sender = "ecert@gw.invalid";
  ehlo = "gw.invalid";
  signing = { cert = "$CA/mail-signer.crt"; key = "$CA/mail-signer.key"; };
  relays = (
    { name = "ec-relay"; host = "127.0.0.1"; port = ${SINK_PORT[1]};
      starttls = "off"; concurrency = 2; },
    { name = "pe-relay"; host = "127.0.0.1"; port = ${SINK_PORT[2]};
      starttls = "off"; concurrency = 2; }
  );
  retry = { first_delay = 1; factor = 2.0; max_delay = 2; max_age = 60; };
  timeout = 5;
  workers = 4;
  batch = 2;             # small, so that check 8 has more EC mail due than
                         # one session carries
};
EOF

if ! start_sink 1 || ! start_sink 2; then
    not_ok "smtp-sink listens on 127.0.0.1:${SINK_PORT[1]} and :${SINK_PORT[2]}" \
        "$(cat "$T"/sink*.log 2>/dev/null)"
    finish
fi
if ! start_daemon; then
    not_ok "ecertd starts and listens on 127.0.0.1:$PORT" "$(tail -n 20 "$DLOG")"
    finish
fi

# ==== 1. a certificate for EC is delivered, signed, intact =====================

NUM1=$SAMPLE_NUMBER
if submit "$SAMPLE" EC; then
    TRK1=$TRK
    if wait_state "$TRK1" ec-nppo delivered 10; then
        ok "1 delivered: the EC certificate's mail delivery ends delivered ($M_ATT attempt(s))"
    else
        not_ok "1 delivered: the EC certificate's mail delivery ends delivered" \
            "state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
    fi
    if check_message "1 delivered" "$TRK1" ec-nppo 1 "$NUM1" "$SAMPLE"; then
        D1=$DUMP
        v=$(hdr "$D1" Message-ID)
        check "1 delivered: Message-ID is <$TRK1.ec-nppo@gw.invalid>" "Message-ID: $v" \
            test "$v" = "<$TRK1.ec-nppo@gw.invalid>"
        v=$(hdr "$D1" Subject)
        check "1 delivered: Subject names the certificate number" "Subject: $v" \
            eval '[[ $v == *"$NUM1"* ]]'
        v="$(hdr "$D1" From) / $(hdr "$D1" To) / $(hdr "$D1" X-Mail-Args) / $(hdr "$D1" X-Rcpt-Args)"
        check "1 delivered: From/To headers and envelope are the configured addresses" "$v" \
            test "$v" = "ecert@gw.invalid / nppo@ec.invalid / <ecert@gw.invalid> / <nppo@ec.invalid>"
        v=$(hdr "$D1" X-ECert-SHA256)
        check "1 delivered: X-ECert-SHA256 is the SHA-256 of the file handed in" "X-ECert-SHA256: $v" \
            test "$v" = "$(sha256sum "$SAMPLE" | cut -d' ' -f1)"
        check "1 delivered: nothing went to the PE relay" "$(dumps_of "$TRK1" 2)" \
            test -z "$(dumps_of "$TRK1" 2)"
    fi
else
    not_ok "1 delivered: ecertctl submit hands in the EC sample" "rc=$SUBMIT_RC $(cat "$W/submit.err")"
fi

# ==== 2. CRLF line ends and non-ASCII text ======================================

next_number; NUM2=$NUM
F2=$(mkcert EC "$NUM2" crlf)
if ! grep -q $'\r$' "$F2" || ! LC_ALL=C grep -q -P '[\x80-\xff]' "$F2"; then
    not_ok "2 crlf: the CRLF sample has CR LF line ends and non-ASCII bytes" "$(file "$F2")"
elif submit "$F2" EC; then
    TRK2=$TRK
    if wait_state "$TRK2" ec-nppo delivered 10; then
        ok "2 crlf: a CRLF, non-ASCII certificate is delivered"
        check_message "2 crlf" "$TRK2" ec-nppo 1 "$NUM2" "$F2"
    else
        not_ok "2 crlf: a CRLF, non-ASCII certificate is delivered" \
            "state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
    fi
else
    not_ok "2 crlf: ecertctl submit hands in the CRLF sample" "rc=$SUBMIT_RC $(cat "$W/submit.err")"
fi

# ==== 3. a changed byte breaks the signature ====================================

if [ -n "${D1:-}" ]; then
    awk -v name="$NUM1.xml" '
        { line = $0; cr = sub(/\r$/, "", line) }
        st == 2 && !done {
            c = substr(line, 20, 1); r = (c == "A") ? "B" : "A"
            $0 = substr(line, 1, 19) r substr(line, 21) (cr ? "\r" : ""); done = 1
        }
        st == 1 && line == "" { st = 2 }
        st == 0 && /filename=/ && index(line, name) { st = 1 }
        { print }' "$D1" >"$W/tampered"
    if cmp -s "$D1" "$W/tampered"; then
        not_ok "3 tamper: one base64 character of the attachment changed" "no attachment found in $D1"
    elif verify "$W/tampered" "$W/tampered.inner"; then
        not_ok "3 tamper: openssl cms -verify fails after one attachment byte changed" \
            "verification succeeded: $(cat "$W/tampered.inner.log")"
    else
        ok "3 tamper: openssl cms -verify fails after one attachment byte changed"
    fi
else
    not_ok "3 tamper: openssl cms -verify fails after one attachment byte changed" "no message from check 1"
fi

# ==== 4. encrypted to PE ========================================================

next_number; NUM4=$NUM
F4=$(mkcert PE "$NUM4")
if submit "$F4" PE; then
    TRK4=$TRK
    if wait_state "$TRK4" pe-nppo delivered 10; then
        ok "4 encrypted: the PE certificate's mail delivery ends delivered"
    else
        not_ok "4 encrypted: the PE certificate's mail delivery ends delivered" \
            "state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
    fi
    if wait_dump "$TRK4" 2; then
        D4=$DUMP
        v=$(hdr "$D4" Content-Type)
        check "4 encrypted: the message is application/pkcs7-mime (enveloped)" "Content-Type: $v" \
            eval '[[ $v == application/pkcs7-mime* ]]'
        check "4 encrypted: the attachment is not readable in the message" \
            "$(grep -c -F "$NUM4.xml" "$D4") occurrences of $NUM4.xml" \
            eval '! grep -q -F "$NUM4.xml" "$D4" && ! grep -q "Algarrobo" "$D4"'
        v=$(hdr "$D4" Message-ID)
        check "4 encrypted: Message-ID is <$TRK4.pe-nppo@gw.invalid>" "Message-ID: $v" \
            test "$v" = "<$TRK4.pe-nppo@gw.invalid>"
        check "4 encrypted: another partner's key cannot decrypt it" "decrypted with ec-nppo.key" \
            eval '! openssl cms -decrypt -recip "$CA/ec-nppo.crt" -inkey "$CA/ec-nppo.key" -in "$D4" -out "$W/wrong.dec" >/dev/null 2>&1'
    fi
    check_message "4 encrypted" "$TRK4" pe-nppo 2 "$NUM4" "$F4" encrypted
    check "4 encrypted: nothing for PE went to the EC relay" "$(dumps_of "$TRK4" 1)" \
        test -z "$(dumps_of "$TRK4" 1)"
else
    not_ok "4 encrypted: ecertctl submit hands in the PE variant" "rc=$SUBMIT_RC $(cat "$W/submit.err")"
fi

# ==== 5. 4xx: deferred, retried, delivered ======================================

next_number; NUM5=$NUM
F5=$(mkcert EC "$NUM5")
if ! restart_sink 1 -r RCPT -b "451 4.7.1 ecert-test try again later"; then
    not_ok "5 4xx: smtp-sink restarts soft-rejecting RCPT" "$(tail -n 5 "$T/sink1.log")"
elif submit "$F5" EC; then
    TRK5=$TRK
    if wait_state "$TRK5" ec-nppo deferred 10 1; then
        ok "5 4xx: a 451 reply makes the delivery deferred"
        check "5 4xx: last error keeps the 451 reply" "last_error=$M_ERR" \
            eval '[[ $M_ERR == *451* && $M_ERR == *"ecert-test try again later"* ]]'
        a1=$M_ATT
        if wait_state "$TRK5" ec-nppo deferred 10 $((a1 + 1)); then
            ok "5 4xx: it is retried (attempts $a1 -> $M_ATT) and stays deferred"
        else
            not_ok "5 4xx: it is retried and stays deferred" \
                "state=$M_STATE attempts=$M_ATT (was $a1) last_error=$M_ERR"
        fi
        check "5 4xx: no message was taken while rejecting" "$(dumps_of "$TRK5" 1)" \
            test -z "$(dumps_of "$TRK5" 1)"
    else
        not_ok "5 4xx: a 451 reply makes the delivery deferred" \
            "state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
    fi
    restart_sink 1
    if wait_state "$TRK5" ec-nppo delivered 10; then
        ok "5 4xx: delivered once the relay accepts again (attempts $M_ATT)"
        check_message "5 4xx" "$TRK5" ec-nppo 1 "$NUM5" "$F5"
    else
        not_ok "5 4xx: delivered once the relay accepts again" \
            "state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
    fi
else
    not_ok "5 4xx: ecertctl submit" "rc=$SUBMIT_RC $(cat "$W/submit.err")"
fi

# ==== 6. 5xx: dead at once ======================================================

next_number; NUM6=$NUM
F6=$(mkcert EC "$NUM6")
TRK6=
if ! restart_sink 1 -f RCPT -B "550 5.1.1 ecert-test no such mailbox"; then
    not_ok "6 5xx: smtp-sink restarts hard-rejecting RCPT" "$(tail -n 5 "$T/sink1.log")"
elif submit "$F6" EC; then
    TRK6=$TRK
    if wait_state "$TRK6" ec-nppo dead 10; then
        check "6 5xx: a 550 reply makes the delivery dead at the first attempt" \
            "attempts=$M_ATT" test "$M_ATT" = 1
        check "6 5xx: last error keeps the reply text" "last_error=$M_ERR" \
            eval '[[ $M_ERR == *550* && $M_ERR == *"ecert-test no such mailbox"* ]]'
        "$CTL" -c "$CONF" --json list --state dead --channel smtp >"$W/dead.json" 2>&1
        v=$("$PY" -c '
import json, sys
for x in json.load(open(sys.argv[1])):
    if x["tracking"] == sys.argv[2]: print(x["state"], x["last_error"])' "$W/dead.json" "$TRK6" 2>&1)
        check "6 5xx: ecertctl list --state dead shows it with the reply" "$v" \
            eval '[[ $v == "dead "*"550"*"ecert-test no such mailbox"* ]]'
    else
        not_ok "6 5xx: a 550 reply makes the delivery dead" \
            "state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
    fi
else
    not_ok "6 5xx: ecertctl submit" "rc=$SUBMIT_RC $(cat "$W/submit.err")"
fi

# ==== 7. relay down: deferred, then delivered ===================================

next_number; NUM7=$NUM
F7=$(mkcert EC "$NUM7")
stop_sink 1
if submit "$F7" EC; then
    TRK7=$TRK
    if wait_state "$TRK7" ec-nppo deferred 10 1; then
        ok "7 down: with the relay's port closed the delivery is deferred"
        check "7 down: last error says the connection failed" "last_error=$M_ERR" \
            eval 'printf "%s" "$M_ERR" | grep -Eiq "refused|connect"'
    else
        not_ok "7 down: with the relay's port closed the delivery is deferred" \
            "state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
    fi
    start_sink 1
    if wait_state "$TRK7" ec-nppo delivered 10; then
        ok "7 down: delivered once the relay is back (attempts $M_ATT)"
        check_message "7 down" "$TRK7" ec-nppo 1 "$NUM7" "$F7"
    else
        not_ok "7 down: delivered once the relay is back" \
            "state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
    fi
else
    not_ok "7 down: ecertctl submit" "rc=$SUBMIT_RC $(cat "$W/submit.err")"
fi

# ==== 8. isolation: one partner's dead or slow relay does not delay another =====

stop_sink 1
next_number; F8A=$(mkcert EC "$NUM")
next_number; NUM8B=$NUM
F8B=$(mkcert PE "$NUM8B")
if submit "$F8A" EC && TRK8A=$TRK && wait_state "$TRK8A" ec-nppo deferred 10 1; then
    if submit "$F8B" PE; then
        TRK8B=$TRK
        t0=$(date +%s%N)
        if wait_state "$TRK8B" pe-nppo delivered 5; then
            ms=$(( ($(date +%s%N) - t0) / 1000000 ))
            ok "8 isolation: PE delivered within 5 s ($ms ms) while the EC relay is down"
        else
            not_ok "8 isolation: PE delivered within 5 s while the EC relay is down" \
                "state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
        fi
        mail_info "$TRK8A" ec-nppo
        check "8 isolation: the earlier EC delivery is still not delivered" \
            "state=$M_STATE attempts=$M_ATT" eval '[ "$M_STATE" = deferred ] || [ "$M_STATE" = sending ]'
    else
        not_ok "8 isolation: ecertctl submit (PE)" "rc=$SUBMIT_RC $(cat "$W/submit.err")"
    fi
else
    not_ok "8 isolation: an EC delivery is deferred while its relay is down" \
        "rc=$SUBMIT_RC state=${M_STATE:-} attempts=${M_ATT:-} last_error=${M_ERR:-}"
fi

# A slow EC relay (answers MAIL only after 30 s; our timeout is 5 s) with
# more EC mail due than its concurrency (2) sessions of mail.batch (2)
# messages carry when the push workers start (a daemon restart: all 4
# workers look for work at once), and a PE certificate due behind them: at
# most 2 sessions may go to the EC relay, so a worker is left for PE mail,
# which goes out at once instead of after the EC timeouts.
if ! stop_daemon; then
    not_ok "8 isolation: ecertd stops on SIGTERM" "$(tail -n 5 "$DLOG")"
fi
restart_sink 1 -W MAIL:30
for i in 1 2 3 4 5; do next_number; submit "$(mkcert EC "$NUM")" EC; done
next_number; NUM8C=$NUM
F8C=$(mkcert PE "$NUM8C")
if submit "$F8C" PE && start_daemon; then
    TRK8C=$TRK
    t0=$(date +%s%N)
    maxsend=0
    maxconn=0
    delivered=0
    ms=0
    # Sessions are counted as the daemon's connections to the EC sink; the
    # sampling goes on for 2 s (the EC sessions hang for 5 s) even after PE
    # got through, so that they are seen.
    for i in $(seq 1 40); do
        s=$(smtp_count ec-nppo sending)
        [ "${s:-0}" -gt "$maxsend" ] && maxsend=$s
        c=$(ss -Htn state established "( dport = :${SINK_PORT[1]} )" | wc -l)
        [ "$c" -gt "$maxconn" ] && maxconn=$c
        if [ "$delivered" = 0 ]; then
            mail_info "$TRK8C" pe-nppo
            if [ "$M_STATE" = delivered ]; then
                delivered=1
                ms=$(( ($(date +%s%N) - t0) / 1000000 ))
            fi
        fi
        [ "$delivered" = 1 ] && [ $(( ($(date +%s%N) - t0) / 1000000 )) -ge 2000 ] && break
        sleep "$POLL"
    done
    [ "$delivered" = 1 ] || ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    check "8 isolation: PE delivered within 4 s of start-up while EC mail hangs on a slow relay" \
        "PE state=$M_STATE after $ms ms; $maxconn EC sessions, $maxsend EC deliveries sending at once" \
        test "$delivered:$((ms < 4000))" = "1:1"
    check "8 isolation: at most 2 SMTP sessions to the EC relay at once (relay concurrency 2), and seen" \
        "saw $maxconn connections to the EC relay at once ($maxsend EC deliveries sending)" \
        test "$maxconn" -ge 1 -a "$maxconn" -le 2
    check "8 isolation: at most 2 x mail.batch = 4 EC deliveries sending at once" \
        "saw $maxsend EC deliveries sending at once" test "$maxsend" -le 4
else
    not_ok "8 isolation: hand in behind a slow relay and restart ecertd" \
        "submit rc=$SUBMIT_RC; $(tail -n 5 "$DLOG")"
    [ -n "$DPID" ] || start_daemon
fi

# ==== 9. kill -9 in flight: at-least-once =======================================

# The sink waits 1 s before answering DATA, so messages are in flight.
restart_sink 1 -w 1
CRASH_TRK=()
CRASH_NUM=()
for i in $(seq 1 10); do
    next_number; n=$NUM
    if submit "$(mkcert EC "$n")" EC; then
        CRASH_TRK+=("$TRK")
        CRASH_NUM+=("$n")
    fi
done
sleep 0.05
kill_daemon_hard
inflight=$(smtp_count ec-nppo sending)
echo "# crash: daemon killed with $inflight EC mail deliveries sending, $(smtp_count ec-nppo waiting,deferred) waiting or deferred"
check "9 crash: all 10 certificates were handed in" "${#CRASH_TRK[@]} tracking numbers" \
    test "${#CRASH_TRK[@]}" = 10
restart_sink 1
loglines=$(wc -l <"$DLOG")
if start_daemon; then
    ok "9 crash: ecertd starts again on the same store"
else
    not_ok "9 crash: ecertd starts again on the same store" "$(tail -n 20 "$DLOG")"
fi
if [ "${inflight:-0}" -gt 0 ]; then
    v=$(tail -n +"$((loglines + 1))" "$DLOG" | grep -o 'push: [0-9]* mail deliveries were in flight' | head -n 1)
    check "9 crash: start-up recovers the $inflight deliveries left sending" "log: '$v'" \
        test "$v" = "push: $inflight mail deliveries were in flight"
fi
end=$(( $(date +%s) + 40 ))
while [ "$(smtp_count '*' waiting,sending,deferred)" != 0 ] && [ "$(date +%s)" -lt "$end" ]; do
    sleep "$POLL"
done
v=$(smtp_count '*' waiting,sending,deferred)
check "9 crash: no mail delivery left waiting, sending or deferred" "$v open" test "$v" = 0
missing=""
for i in "${!CRASH_TRK[@]}"; do
    mail_info "${CRASH_TRK[$i]}" ec-nppo
    [ "$M_STATE" = delivered ] || missing="$missing ${CRASH_TRK[$i]}=$M_STATE"
done
check "9 crash: each of the 10 has a delivered mail delivery" "${missing# }" test -z "$missing"
nodump=""
dups=0
partial=0
for i in "${!CRASH_TRK[@]}"; do
    good=0
    for f in $(grep -l -i -F "Message-ID: <${CRASH_TRK[$i]}.ec-nppo@gw.invalid>" "$T/mail1"/* 2>/dev/null); do
        if verify "$f" "$W/crash.inner" && attachment "$W/crash.inner" "${CRASH_NUM[$i]}" "$W/crash.att" &&
           cmp -s "$W/crash.att" "$W/${CRASH_NUM[$i]}.xml"; then
            good=$((good + 1))
        else
            partial=$((partial + 1))
        fi
    done
    [ "$good" -ge 1 ] || nodump="$nodump ${CRASH_TRK[$i]}"
    [ "$good" -gt 1 ] && dups=$((dups + good - 1))
done
echo "# crash: $dups duplicate message(s), $partial incomplete or unverifiable dump(s)"
check "9 crash: every Message-ID arrived complete and verified at least once" \
    "missing:$nodump" test -z "$nodump"

# ==== 10. the repair verbs: hold, release, retry ================================

next_number; NUM10=$NUM
F10=$(mkcert EC "$NUM10")
stop_sink 1
if submit "$F10" EC && TRK10=$TRK && wait_state "$TRK10" ec-nppo deferred 10 1; then
    out=$("$CTL" -c "$CONF" hold "$TRK10" 2>&1)
    rc=$?
    mail_info "$TRK10" ec-nppo
    check "10 repair: ecertctl hold makes the deferred delivery held" \
        "rc=$rc out=$out state=$M_STATE" test "$rc:$M_STATE" = "0:held"
    held_att=$M_ATT
    start_sink 1
    sleep 3.5            # longer than max_delay plus the workers' idle wait
    mail_info "$TRK10" ec-nppo
    check "10 repair: a held delivery is not sent when the relay is back" \
        "state=$M_STATE attempts=$M_ATT (held at $held_att) dumps=$(dumps_of "$TRK10" 1)" \
        test "$M_STATE:$M_ATT:$(dumps_of "$TRK10" 1)" = "held:$held_att:"
    out=$("$CTL" -c "$CONF" release "$TRK10" 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ] && wait_state "$TRK10" ec-nppo delivered 10; then
        ok "10 repair: ecertctl release -> delivered"
        check_message "10 repair" "$TRK10" ec-nppo 1 "$NUM10" "$F10"
    else
        not_ok "10 repair: ecertctl release -> delivered" \
            "rc=$rc out=$out state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
    fi
else
    not_ok "10 repair: an EC delivery is deferred while its relay is down" \
        "rc=$SUBMIT_RC state=${M_STATE:-} last_error=${M_ERR:-}"
    start_sink 1
fi
if [ -n "$TRK6" ]; then
    mail_info "$TRK6" ec-nppo
    check "10 repair: the dead delivery of check 6 was not retried on its own" \
        "state=$M_STATE attempts=$M_ATT" test "$M_STATE:$M_ATT" = "dead:1"
    out=$("$CTL" -c "$CONF" retry "$TRK6" 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ] && wait_state "$TRK6" ec-nppo delivered 10; then
        ok "10 repair: ecertctl retry of the dead delivery -> delivered (attempts $M_ATT)"
        check_message "10 repair (retry)" "$TRK6" ec-nppo 1 "$NUM6" "$F6"
    else
        not_ok "10 repair: ecertctl retry of the dead delivery -> delivered" \
            "rc=$rc out=$out state=$M_STATE attempts=$M_ATT last_error=$M_ERR"
    fi
else
    not_ok "10 repair: ecertctl retry of the dead delivery -> delivered" "no dead delivery from check 6"
fi

# ==== 11. throughput ===========================================================

# Handed in over SOAP as bo-issuer (the daemon wakes its push workers at
# once), 4 clients in parallel; the bodies are made before the clock starts.
mkdir -p "$W/bulk"
for i in $(seq 1 "$BULK"); do
    next_number; n=$NUM
    {
        printf '<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        printf '<ns:DeliverEnvelope xmlns:ns="http://ephyto.ippc.int/" xmlns:hub="http://ephyto.ippc.int/HUB.Entities"><ns:env>'
        printf '<hub:From>BO</hub:From><hub:To>EC</hub:To><hub:CertificateType>851</hub:CertificateType>'
        printf '<hub:CertificateStatus>70</hub:CertificateStatus><hub:NPPOCertificateNumber>%s</hub:NPPOCertificateNumber><hub:Content>' "$n"
        sed -e "s/$SAMPLE_NUMBER/$n/g" -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' "$SAMPLE"
        printf '</hub:Content></ns:env></ns:DeliverEnvelope></soap:Body></soap:Envelope>\n'
    } >"$W/bulk/$i.req"
done
post_range() {
    local i
    for i in $(seq "$1" 4 "$BULK"); do
        curl -sS --max-time 30 --cacert "$CA/ca.crt" --cert "$CA/bo-issuer.crt" --key "$CA/bo-issuer.key" \
            -H 'Content-Type: text/xml; charset=utf-8' \
            -H 'SOAPAction: "http://ephyto.ippc.int/IDeliveryService/DeliverEnvelope"' \
            --data-binary @"$W/bulk/$i.req" -o "$W/bulk/$i.resp" \
            "https://127.0.0.1:$PORT/hub/DeliveryService" 2>"$W/bulk/$i.err"
    done
}
base=$(smtp_count ec-nppo delivered)
t0=$(date +%s%N)
CURL_PIDS=()
for k in 1 2 3 4; do post_range "$k" & CURL_PIDS+=($!); done
for p in "${CURL_PIDS[@]}"; do wait "$p"; done
t_in=$(( ($(date +%s%N) - t0) / 1000000 ))
answered=$(grep -l 'hubDeliveryNumber>ECG' "$W"/bulk/*.resp 2>/dev/null | wc -l)
check "11 measure: $BULK hand-ins answered with a tracking number" \
    "$answered answered; $(cat "$W"/bulk/*.err 2>/dev/null | sort | uniq -c | head -n 3)" \
    test "$answered" = "$BULK"
end=$(( $(date +%s) + 90 ))
while :; do
    now_done=$(smtp_count ec-nppo delivered)
    [ "$((now_done - base))" -ge "$answered" ] && break
    [ "$(date +%s)" -ge "$end" ] && break
    sleep "$POLL"
done
t_all=$(( ($(date +%s%N) - t0) / 1000000 ))
got=$((now_done - base))
check "11 measure: all $answered delivered" "$got delivered within 90 s" test "$got" -ge "$answered"
echo "# measure: hand-in of $BULK took $(awk -v m="$t_in" 'BEGIN { printf "%.2f", m / 1000 }') s"
awk -v n="$got" -v m="$t_all" 'BEGIN { r = (m > 0) ? n * 1000 / m : 0
    printf "mail: %d messages in %.2f s = %.1f msg/s\n", n, m / 1000, r }'

# ==== at the end ===============================================================

v=$(smtp_count '*' open)
check "end: no mail delivery is left waiting, sending, deferred or held" "$v open" test "$v" = 0
v=$(grep -c 'error: ' "$DLOG")
check "end: the daemon logged no errors" "$(grep 'error: ' "$DLOG" | head -n 3)" test "$v" = 0

finish
