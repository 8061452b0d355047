# SPDX-License-Identifier: GPL-2.0-or-later
#
# lib.sh - helpers for the integration suite (sourced by run.sh).
#
# Results are printed TAP-like ("ok N - ..." / "not ok N - ... (why)") and
# counted in PASS / FAIL.  Every helper that talks to the daemon leaves the
# output in $OUT and the exit status in $RC so a check can look at both.

PASS=0
FAIL=0
NTEST=0

ok() {
    NTEST=$((NTEST + 1)); PASS=$((PASS + 1))
    printf 'ok %d - %s\n' "$NTEST" "$1"
}

not_ok() {
    NTEST=$((NTEST + 1)); FAIL=$((FAIL + 1))
    printf 'not ok %d - %s (%s)\n' "$NTEST" "$1" "$(printf '%s' "$2" | tr '\n' ' ' | cut -c1-400)"
}

# check DESC CONDITION-COMMAND... : ok when the command succeeds.
check() {
    local desc=$1; shift
    if "$@"; then ok "$desc"; else not_ok "$desc" "${WHY:-rc=$RC out=$OUT}"; fi
    WHY=
}

# assert_eq DESC EXPECTED ACTUAL
assert_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected '$2', got '$3'"; fi
}

# assert_ne DESC A B: A and B must differ (and A must not be empty).
assert_ne() {
    if [ -n "$2" ] && [ "$2" != "$3" ]; then ok "$1"; else not_ok "$1" "'$2' vs '$3'"; fi
}

# assert_match DESC ERE TEXT
assert_match() {
    if printf '%s' "$3" | grep -Eq -- "$2"; then ok "$1"; else not_ok "$1" "no /$2/ in: $3"; fi
}

# assert_nomatch DESC ERE TEXT
assert_nomatch() {
    if printf '%s' "$3" | grep -Eq -- "$2"; then not_ok "$1" "found /$2/ in: $3"; else ok "$1"; fi
}

# ---- ports, processes ------------------------------------------------------

port_in_use() {
    ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

free_port() {
    local p i
    p=$((20000 + RANDOM % 30000))
    for i in $(seq 1 200); do
        if ! port_in_use "$p"; then echo "$p"; return 0; fi
        p=$((p + 1))
    done
    return 1
}

# wait_port PORT SECONDS: poll until something listens on 127.0.0.1:PORT.
wait_port() {
    local i n=$(( $2 * 20 ))
    for i in $(seq 1 "$n"); do
        port_in_use "$1" && return 0
        if [ -n "${DPID:-}" ] && ! kill -0 "$DPID" 2>/dev/null; then return 1; fi
        sleep 0.05
    done
    return 1
}

# wait_gone PID SECONDS
wait_gone() {
    local i n=$(( $2 * 20 ))
    for i in $(seq 1 "$n"); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.05
    done
    return 1
}

# ---- daemon ----------------------------------------------------------------

start_daemon() {
    "$ECERTD" -f -c "$CONF" >>"$DLOG" 2>&1 &
    DPID=$!
    wait_port "$PORT" 10
}

stop_daemon_hard() {
    [ -n "${DPID:-}" ] || return 0
    { kill -9 "$DPID"; wait "$DPID"; } 2>/dev/null
    DPID=
}

daemon_log_tail() {
    echo "# ---- last lines of the daemon log ($DLOG) ----"
    tail -n "${1:-40}" "$DLOG" 2>/dev/null | sed 's/^/# /'
}

# ---- certificates ----------------------------------------------------------

# SPKI SHA-256 of a certificate, "sha256:<hex>".
spki_fp() {
    echo "sha256:$(openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER \
        | openssl dgst -sha256 -r | cut -d' ' -f1)"
}

# make_ca DIR NAME...: deploy/dev-ca.sh, which makes ca.crt, server.crt/.key and
# the default client certs plus NAME.crt/.key/.fp for each extra name.
make_ca() {
    local dir=$1; shift
    bash "$ROOT/deploy/dev-ca.sh" "$dir" "$@" >"$dir.log" 2>&1
}

# ---- SOAP ------------------------------------------------------------------

# hc PARTNER [hubclient args...]: call the hub client as PARTNER.
hc() {
    local who=$1; shift
    OUT=$("$HUBCLIENT" -u "$URL" --cert "$CA/$who.crt" --key "$CA/$who.key" \
        --cacert "$CA/ca.crt" "$@" 2>&1)
    RC=$?
}

# hc_as CERT KEY [hubclient args...]: with an explicit certificate.
hc_as() {
    local c=$1 k=$2; shift 2
    OUT=$("$HUBCLIENT" -u "$URL" --cert "$c" --key "$k" --cacert "$CA/ca.crt" "$@" 2>&1)
    RC=$?
}

# Tracking number from a "tracking=..." answer (first line).
tracking_of() {
    printf '%s\n' "$1" | sed -n 's/^tracking=\([^ ]*\).*/\1/p' | head -n1
}

# is_fault CODE-SUFFIX: the last hc call answered with a SOAP fault whose
# faultcode ends in CODE-SUFFIX (Client / Server).
is_fault() {
    [ "$RC" -eq 4 ] && printf '%s' "$OUT" | grep -Eq "^fault code=[^ ]*${1:-}( |$)"
}

# XML-escape a file for use as element text.
xml_escape() {
    sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' "$1"
}

# payload NAME: a request body from payloads/ without its licence line,
# with @NUMBER@ replaced by $2 (if given).
payload() {
    tail -n +2 "$PAYLOADS/$1" | sed -e "s/@NUMBER@/${2:-X}/g"
}

# deliver_body FROM TO TYPE STATUS NUMBER CONTENT-FILE [OP]: a DeliverEnvelope
# request (README form) with the file XML-escaped in Content.
deliver_body() {
    local op=${7:-DeliverEnvelope} el=env
    [ "$op" = ValidateAndDeliverEnvelope ] && el=envelope
    printf '%s' '<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    printf '<ns:%s xmlns:ns="http://ephyto.ippc.int/"><ns:%s>' "$op" "$el"
    printf '<hub:From xmlns:hub="http://ephyto.ippc.int/HUB.Entities">%s</hub:From>' "$1"
    printf '<hub:To xmlns:hub="http://ephyto.ippc.int/HUB.Entities">%s</hub:To>' "$2"
    printf '<hub:CertificateType xmlns:hub="http://ephyto.ippc.int/HUB.Entities">%s</hub:CertificateType>' "$3"
    printf '<hub:CertificateStatus xmlns:hub="http://ephyto.ippc.int/HUB.Entities">%s</hub:CertificateStatus>' "$4"
    printf '<hub:NPPOCertificateNumber xmlns:hub="http://ephyto.ippc.int/HUB.Entities">%s</hub:NPPOCertificateNumber>' "$5"
    printf '<hub:Content xmlns:hub="http://ephyto.ippc.int/HUB.Entities">'
    xml_escape "$6"
    printf '</hub:Content></ns:%s></ns:%s></soap:Body></soap:Envelope>\n' "$el" "$op"
}

# post PARTNER ACTION BODY-FILE: POST with curl as PARTNER; response body in
# $OUT, HTTP status in $HTTP, curl exit status in $RC.
post() {
    local who=$1 action=$2 body=$3 resp
    resp=$(mktemp "$T/resp.XXXXXX")
    HTTP=$(curl -sS --max-time "${CURL_MAX:-30}" --cacert "$CA/ca.crt" --cert "$CA/$who.crt" --key "$CA/$who.key" \
        -H 'Content-Type: text/xml; charset=utf-8' \
        -H "SOAPAction: \"http://ephyto.ippc.int/IDeliveryService/$action\"" \
        --data-binary @"$body" -o "$resp" -w '%{http_code}' "$URL" 2>"$resp.err")
    RC=$?
    OUT=$(cat "$resp" "$resp.err")
    rm -f "$resp" "$resp.err"
}

# The last post answered with a SOAP 1.1 fault (faultcode ending in $1).
post_is_fault() {
    printf '%s' "$OUT" | grep -Eq '<([A-Za-z0-9_-]+:)?Fault[ >]' \
        && printf '%s' "$OUT" | grep -Eq "<faultcode>[^<]*${1:-}</faultcode>"
}

# The last post was refused: a SOAP fault, HTTP 413 or the connection closed.
post_refused() {
    post_is_fault "$1" || [ "$HTTP" = 413 ] || { [ "$RC" -ne 0 ] && [ -z "$(printf '%s' "$OUT" | grep -v '^curl:')" ]; }
}

# ---- store -----------------------------------------------------------------

# A summary of the store that changes whenever anything is handed in,
# acknowledged or pulled.
store_state() {
    if sqlite3 -readonly "$DB" 'select count(*) from certificate' >/dev/null 2>&1; then
        sqlite3 -readonly "$DB" 'select count(*) from certificate; select * from delivery order by 1' 2>/dev/null \
            || sqlite3 -readonly "$DB" 'select count(*) from certificate'
    else
        "$ECERTCTL" --store "$DB" --json list 2>&1
    fi
}

cert_count() {
    sqlite3 -readonly "$DB" 'select count(*) from certificate' 2>/dev/null \
        || "$ECERTCTL" --store "$DB" --json list 2>/dev/null | grep -o '"number"' | wc -l
}

# log_since N: the daemon log after its first N lines (waits up to 1 s for
# something new, since the daemon logs after answering).
log_since() {
    local i
    for i in $(seq 1 20); do
        [ "$(wc -l <"$DLOG")" -gt "$1" ] && break
        sleep 0.05
    done
    tail -n +"$(( $1 + 1 ))" "$DLOG"
}
