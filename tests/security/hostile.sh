#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# hostile.sh - hostile input against the live daemon: XML entity attacks
# (XXE file/http, external DTD, parameter entities, billion laughs) in the
# SOAP envelope and inside Content, guard evasions (DOCTYPE split across
# HTTP chunks, UTF-16 envelope, base64 Content), deep nesting, 100 000
# repeated elements, oversized bodies, invalid UTF-8, truncated TLS,
# slowloris and idle connection floods while a well-behaved partner keeps
# polling.  Each case: a fault or a closed connection, the daemon stays up
# (same PID), the store is unchanged.  ecertd runs under
# `strace -f -e trace=connect`: no AF_INET/AF_INET6 connect() may happen,
# and a listening "spy" sees no connection from the entity URLs.
#
# Run from the project root after `make all build/hubclient`:
#     bash tests/security/hostile.sh        (or: make security)
# KEEP=1 keeps the temporary directory.  STORM_SECONDS (default 20) is how
# long each flood lasts.

set -u
export LC_ALL=C                          # bytes, not characters
SUITE=security
. "$(dirname "$0")/common.sh"

STORM_SECONDS=${STORM_SECONDS:-20}
RSS_LIMIT_KB=$((64 * 1024))
PROBE_LIMIT_MS=1000
command -v strace >/dev/null || bail "strace missing (apt-get install strace)"

# ==== set-up =====================================================================

make_ca "$CA" || bail "cannot make the certificates (see $CA.log)"
hostile_client_build || bail "cannot build hostile_client: $(cat "$T/hostile_client.log")"
PORT=$(free_port) || bail "no free port"
SPY_PORT=$(free_port) || bail "no free port"
[ "$SPY_PORT" != "$PORT" ] || SPY_PORT=$((PORT + 1))
URL=https://127.0.0.1:$PORT/hub/DeliveryService
SPY=http://127.0.0.1:$SPY_PORT
write_conf >"$CONF"
echo "# limits: $(sed -n '/^limits/,/};/p' "$CONF" | tr -s ' \n' ' ')"

"$HOSTILE_CLIENT" spy "$SPY_PORT" 3600 >"$T/spy.out" 2>&1 &
SPYPID=$!
bg_add "$SPYPID"

STRACE_OUT=$T/strace.out
strace_opts=(-f -qq -e trace=connect,accept,accept4 -o "$STRACE_OUT")
strace --seccomp-bpf -f -e trace=connect -o /dev/null true 2>/dev/null && strace_opts=(--seccomp-bpf "${strace_opts[@]}")
: >"$DLOG"
if daemon_start strace "${strace_opts[@]}"; then
    ok "ecertd (PID $DPID) listens on 127.0.0.1:$PORT under strace -f -e trace=connect"
else
    not_ok "ecertd listens under strace" "see $DLOG"
    finish
fi
PID0=$DPID

# One envelope waits for ec-nppo, so the probe's answer is not empty.
cert_variant 123450001BO BO EC "CONSIGNEE-S" "$W/s.xml"
hc bo-issuer deliver "$W/s.xml" BO EC 851 70 123450001BO
T_S=$(tracking_of "$OUT")
cert_variant 123450002BO BO EC "CONSIGNEE-U" "$W/u.xml"
hc bo-issuer deliver "$W/u.xml" BO EC 851 70 123450002BO
T_U=$(tracking_of "$OUT")
check "set-up: two envelopes for ec-nppo" test -n "$T_S" -a -n "$T_U"

S0=$(store_state)
SC=$S0                                   # the store before the current case
RSS0=$(daemon_rss_kb)
hc ec-nppo headers
assert_eq "a GetImportEnvelopeHeaders poll leaves the store unchanged (the probe is harmless)" "$S0" "$(store_state)"

# ==== one hostile request ==========================================================

# verdict DESC: after a post (OUT/HTTP/RC): refused (fault, 4xx or closed,
# not a timeout), nothing from /etc/passwd, same PID, store unchanged.
verdict() {
    local desc=$1 why="" st rss
    if [ "$RC" -eq 28 ]; then
        why="no answer within ${CURL_MAX:-15} s (curl timed out)"
    elif ! post_refused ""; then
        why="not refused: HTTP $HTTP rc=$RC $(printf '%s' "$OUT" | head -c 300)"
    fi
    if printf '%s' "$OUT" | grep -q 'root:.*:0:0:'; then why="$why; /etc/passwd content in the answer"; fi
    if ! kill -0 "$PID0" 2>/dev/null || [ "$DPID" != "$PID0" ]; then why="$why; daemon gone"; fi
    st=$(store_state)
    if [ "$st" != "$SC" ]; then why="$why; store changed"; SC=$st; fi
    rss=$(daemon_rss_kb)
    echo "${rss:-0} $desc" >>"$T/rss.log"
    if [ -z "$why" ]; then
        ok "$desc -> $(answer_word), daemon up, store unchanged"
    else
        not_ok "$desc" "$why"
    fi
}

answer_word() {
    if post_is_fault; then
        printf 'fault (%s)' "$(printf '%s' "$OUT" | grep -o '<faultstring>[^<]*' | head -n1 | cut -c14-90)"
    elif [ "${HTTP:-000}" != 000 ] && [ "${HTTP:-000}" -ge 400 ]; then
        printf 'HTTP %s' "$HTTP"
    else
        printf 'closed'
    fi
}

# hpost DESC WHO ACTION BODY-FILE [curl args]: a hostile POST and its verdict.
hpost() {
    local desc=$1 who=$2 action=$3 body=$4 t0
    shift 4
    t0=$(now_ms)
    CURL_MAX=${CURL_MAX:-15} post "$who" "$action" "$body"
    verdict "$desc ($(( $(now_ms) - t0 )) ms)"
}

# raw_tls WHO REQUEST-FILE: the request bytes exactly as written, over TLS
# (openssl s_client); the answer in OUT, HTTP status in HTTP.
raw_tls() {
    local who=$1 req=$2 logged
    logged=$(grep -c 'DOCTYPE and ENTITY declarations are not allowed' "$DLOG")
    OUT=$(timeout 15 openssl s_client -quiet -ign_eof -connect "127.0.0.1:$PORT" \
        -CAfile "$CA/ca.crt" -cert "$CA/$who.crt" -key "$CA/$who.key" <"$req" 2>/dev/null)
    RC=$?
    # A chunked request refused inside its body is closed without an
    # answer (gSOAP has already closed it): count that as closed when the
    # daemon logged the refusal for it.
    if [ -z "$OUT" ] && [ "$RC" -eq 0 ] &&
       [ "$(grep -c 'DOCTYPE and ENTITY declarations are not allowed' "$DLOG")" -gt "$logged" ]; then
        RC=52
    fi
    [ "$RC" -eq 124 ] && RC=28
    HTTP=$(printf '%s' "$OUT" | sed -n '1s#^HTTP/1\.[01] \([0-9]*\).*#\1#p')
    HTTP=${HTTP:-000}
    # an answer without a fault and without an HTTP error does not count
    # as "closed": make post_refused see it
    [ -n "$OUT" ] && RC=0
    return 0
}

http_head() {  # http_head ACTION [extra header lines]
    printf 'POST /hub/DeliveryService HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nContent-Type: text/xml; charset=utf-8\r\nSOAPAction: "http://ephyto.ippc.int/IDeliveryService/%s"\r\nConnection: close\r\n' "$PORT" "$1"
}

ENV_OPEN='<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
ENV_CLOSE='</soap:Body></soap:Envelope>'
XMLDECL='<?xml version="1.0" encoding="UTF-8"?>'

# env_with_decl DECL ELEMENT-INSIDE-TRACKING: GetEnvelopeTrackingInfo with a
# DOCTYPE before the envelope.
tracking_with_decl() {
    printf '%s\n%s\n%s<ns:GetEnvelopeTrackingInfo xmlns:ns="http://ephyto.ippc.int/"><ns:hubTrackingNumber>%s</ns:hubTrackingNumber></ns:GetEnvelopeTrackingInfo>%s\n' \
        "$XMLDECL" "$1" "$ENV_OPEN" "$2" "$ENV_CLOSE"
}

# doc_with_decl DECL REF NUMBER OUT: a valid certificate with DECL after
# its XML declaration and REF as the consignee's name.
doc_with_decl() {
    cert_variant "$3" BO EC "CONSIGNEE-X" "$4.tmp"
    { sed -n 1p "$4.tmp"; printf '%s\n' "$1"; sed '1d' "$4.tmp" | sed "s#<ram:Name>CONSIGNEE-X</ram:Name>#<ram:Name>$2</ram:Name>#"; } >"$4"
    rm -f "$4.tmp"
}

laughs_decl() {  # laughs_decl ROOT-NAME
    local prev=a n
    printf '<!DOCTYPE %s [\n <!ENTITY a "aaaaaaaaaa">\n' "$1"
    for n in b c d e f g h i j k; do
        printf ' <!ENTITY %s "%s">\n' "$n" "$(printf "&$prev;%.0s" 1 2 3 4 5 6 7 8 9 10)"
        prev=$n
    done
    printf ']>'
}

NUMSEQ=0
next_number() { NUMSEQ=$((NUMSEQ + 1)); n=$(printf '5550%05dBO' "$NUMSEQ"); }

# ==== entity attacks in the SOAP envelope ==========================================

tracking_with_decl '<!DOCTYPE soap:Envelope [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>' '&xxe;' >"$W/e-xxe-file.xml"
hpost "envelope: XXE SYSTEM file:///etc/passwd" ec-nppo GetEnvelopeTrackingInfo "$W/e-xxe-file.xml"
tracking_with_decl "<!DOCTYPE soap:Envelope [ <!ENTITY xxe SYSTEM \"$SPY/env-xxe\"> ]>" '&xxe;' >"$W/e-xxe-http.xml"
hpost "envelope: XXE SYSTEM http:// (spy)" ec-nppo GetEnvelopeTrackingInfo "$W/e-xxe-http.xml"
tracking_with_decl '<!DOCTYPE soap:Envelope [ <!ENTITY xxe SYSTEM "http://xxe-probe.invalid/x"> ]>' '&xxe;' >"$W/e-xxe-dns.xml"
hpost "envelope: XXE SYSTEM http:// (name to resolve)" ec-nppo GetEnvelopeTrackingInfo "$W/e-xxe-dns.xml"
tracking_with_decl "<!DOCTYPE soap:Envelope SYSTEM \"$SPY/env-external.dtd\">" 'x' >"$W/e-extdtd.xml"
hpost "envelope: external DTD (http://, spy)" ec-nppo GetEnvelopeTrackingInfo "$W/e-extdtd.xml"
tracking_with_decl "<!DOCTYPE soap:Envelope [ <!ENTITY % p SYSTEM \"$SPY/env-param\"> %p; ]>" 'x' >"$W/e-param.xml"
hpost "envelope: parameter entity SYSTEM http:// (spy)" ec-nppo GetEnvelopeTrackingInfo "$W/e-param.xml"
tracking_with_decl "$(laughs_decl soap:Envelope)" '&k;' >"$W/e-laughs.xml"
hpost "envelope: billion laughs (10^10)" ec-nppo GetEnvelopeTrackingInfo "$W/e-laughs.xml"
next_number
cert_variant "$n" BO EC "CONSIGNEE-Y" "$W/ok-doc.xml"
deliver_body BO EC 851 70 "$n" "$W/ok-doc.xml" | sed "1a <!DOCTYPE soap:Envelope [ <!ENTITY xxe SYSTEM \"$SPY/env-deliver\"> ]>" \
    | sed "s#<hub:From xmlns:hub=\"http://ephyto.ippc.int/HUB.Entities\">BO#&\&xxe;#" >"$W/e-xxe-deliver.xml"
hpost "envelope: XXE in an otherwise valid DeliverEnvelope" bo-issuer DeliverEnvelope "$W/e-xxe-deliver.xml"

# ==== entity attacks inside Content ================================================

content_case() {  # content_case DESC DECL REF [base64]
    local f
    next_number
    f=$W/c-$NUMSEQ
    doc_with_decl "$2" "$3" "$n" "$f.doc"
    if [ "${4:-}" = base64 ]; then
        openssl base64 -A -in "$f.doc" >"$f.b64"
        deliver_body BO EC 851 70 "$n" "$f.b64" >"$f.xml"
    else
        deliver_body BO EC 851 70 "$n" "$f.doc" >"$f.xml"
    fi
    hpost "Content${4:+ ($4)}: $1" bo-issuer DeliverEnvelope "$f.xml"
}
content_case "XXE SYSTEM file:///etc/passwd" '<!DOCTYPE rsm:SPSCertificate [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>' '&xxe;'
content_case "XXE SYSTEM http:// (spy)" "<!DOCTYPE rsm:SPSCertificate [ <!ENTITY xxe SYSTEM \"$SPY/content-xxe\"> ]>" '&xxe;'
content_case "XXE SYSTEM http:// (name to resolve)" '<!DOCTYPE rsm:SPSCertificate [ <!ENTITY xxe SYSTEM "http://xxe-probe.invalid/c"> ]>' '&xxe;'
content_case "external DTD (http://, spy)" "<!DOCTYPE rsm:SPSCertificate SYSTEM \"$SPY/content-external.dtd\">" 'x'
content_case "parameter entity SYSTEM http:// (spy)" "<!DOCTYPE rsm:SPSCertificate [ <!ENTITY % p SYSTEM \"$SPY/content-param\"> %p; ]>" 'x'
content_case "billion laughs (10^10)" "$(laughs_decl rsm:SPSCertificate)" '&k;'
content_case "XXE SYSTEM http:// (spy)" "<!DOCTYPE rsm:SPSCertificate [ <!ENTITY xxe SYSTEM \"$SPY/content-b64-xxe\"> ]>" '&xxe;' base64
content_case "external DTD (http://, spy)" "<!DOCTYPE rsm:SPSCertificate SYSTEM \"$SPY/content-b64.dtd\">" 'x' base64
content_case "billion laughs (10^10)" "$(laughs_decl rsm:SPSCertificate)" '&k;' base64

# ValidatePhytoXML answers validation results, not faults: it must find the
# document invalid (SEVERE) or refuse it, and fetch nothing.
doc_with_decl "<!DOCTYPE rsm:SPSCertificate [ <!ENTITY xxe SYSTEM \"$SPY/validate-xxe\"> ]>" '&xxe;' 123450001BO "$W/v-xxe.doc"
soap_body ValidatePhytoXML "<ns:ePhytoXML>$(xml_escape "$W/v-xxe.doc")</ns:ePhytoXML>" >"$W/v-xxe.xml"
CURL_MAX=15 post bo-issuer ValidatePhytoXML "$W/v-xxe.xml"
check "ValidatePhytoXML: XXE SYSTEM http:// -> SEVERE or fault, nothing fetched, store unchanged" \
    eval '{ post_is_fault || printf "%s" "$OUT" | grep -q "SEVERE"; } && [ "$(store_state)" = "$SC" ]'

# ==== input-guard evasions ==============================================================

# chunked_req ACTION FILE PIECE...: a chunked request, one chunk per PIECE.
chunked_req() {
    local action=$1 out=$2 p
    shift 2
    {
        http_head "$action"
        printf 'Transfer-Encoding: chunked\r\n\r\n'
        for p in "$@"; do
            printf '%x\r\n%s\r\n' "$(printf '%s' "$p" | wc -c)" "$p"
        done
        printf '0\r\n\r\n'
    } >"$out"
}

# External DTD with "<!DOCTYPE" split across two HTTP chunks: the bytes on
# the wire never hold the keyword in one piece (and there is no ENTITY).
body=$(tracking_with_decl "<!DOCTYPE soap:Envelope SYSTEM \"$SPY/chunked.dtd\">" 'x')
chunked_req GetEnvelopeTrackingInfo "$W/g-chunked.req" "${body%%DOCTYPE*}DOC" "TYPE${body#*DOCTYPE}"
t0=$(now_ms)
raw_tls ec-nppo "$W/g-chunked.req"
verdict "envelope: external DTD, <!DOCTYPE split across HTTP chunks ($(( $(now_ms) - t0 )) ms)"

# XXE with both "<!DOCTYPE" and "<!ENTITY" split across chunks.
body=$(tracking_with_decl "<!DOCTYPE soap:Envelope [ <!ENTITY xxe SYSTEM \"$SPY/chunked2\"> ]>" '&xxe;')
p1=${body%%DOCTYPE*}DOC
r1=TYPE${body#*DOCTYPE}
p2=${r1%%ENTITY*}EN
r2=TITY${r1#*ENTITY}
chunked_req GetEnvelopeTrackingInfo "$W/g-chunked2.req" "$p1" "$p2" "$r2"
t0=$(now_ms)
raw_tls ec-nppo "$W/g-chunked2.req"
verdict "envelope: XXE, <!DOCTYPE and <!ENTITY split across HTTP chunks ($(( $(now_ms) - t0 )) ms)"

# UTF-16 envelope (with BOM) carrying a DOCTYPE.
{ printf '\xff\xfe'; tracking_with_decl "<!DOCTYPE soap:Envelope [ <!ENTITY xxe SYSTEM \"$SPY/utf16\"> ]>" '&xxe;' \
    | sed 's/encoding="UTF-8"/encoding="UTF-16"/' | iconv -f UTF-8 -t UTF-16LE; } >"$W/g-utf16.xml"
hpost "envelope: UTF-16 with DOCTYPE/XXE" ec-nppo GetEnvelopeTrackingInfo "$W/g-utf16.xml"

# "<" as the overlong UTF-8 sequence C0 BC before !DOCTYPE and !ENTITY.
LT=$'\xc0\xbc'
tracking_with_decl "${LT}!DOCTYPE soap:Envelope [ ${LT}!ENTITY xxe SYSTEM \"$SPY/overlong\"> ]>" '&xxe;' >"$W/g-overlong.xml"
hpost "envelope: DOCTYPE/XXE with '<' as overlong UTF-8" ec-nppo GetEnvelopeTrackingInfo "$W/g-overlong.xml"

# ==== nesting, repetition ================================================================

{
    printf '%s\n%s<ns:GetEnvelopeTrackingInfo xmlns:ns="http://ephyto.ippc.int/"><ns:hubTrackingNumber>' "$XMLDECL" "$ENV_OPEN"
    head -c 10000 /dev/zero | sed 's/\x0/<a>/g'
    head -c 10000 /dev/zero | sed 's/\x0/<\/a>/g'
    printf '</ns:hubTrackingNumber></ns:GetEnvelopeTrackingInfo>%s\n' "$ENV_CLOSE"
} >"$W/n-deep-env.xml"
hpost "envelope: 10 000-deep nesting" ec-nppo GetEnvelopeTrackingInfo "$W/n-deep-env.xml"

next_number
cert_variant "$n" BO EC "CONSIGNEE-D" "$W/n-deep.doc0"
{
    sed -n '1,/<ram:Name>CONSIGNEE-D/p' "$W/n-deep.doc0" | sed 's#<ram:Name>CONSIGNEE-D</ram:Name>##'
    head -c 10000 /dev/zero | sed 's/\x0/<ram:Name>/g'
    head -c 10000 /dev/zero | sed 's/\x0/<\/ram:Name>/g'
    sed -n '/<ram:Name>CONSIGNEE-D/,$p' "$W/n-deep.doc0" | sed '1s#.*<ram:Name>CONSIGNEE-D</ram:Name>#<ram:Name>x</ram:Name>#'
} >"$W/n-deep.doc"
deliver_body BO EC 851 70 "$n" "$W/n-deep.doc" >"$W/n-deep-content.xml"
hpost "Content: 10 000-deep nesting" bo-issuer DeliverEnvelope "$W/n-deep-content.xml"

# 100 000 repeated elements in an otherwise valid hand-in (if the daemon
# took it, the store would change).
repeat_in_env() {  # repeat_in_env ELEMENT-TEXT OUT: ELEMENT x 100 000 after To
    next_number
    cert_variant "$n" BO EC "CONSIGNEE-R" "$W/r-$NUMSEQ.doc"
    deliver_body BO EC 851 70 "$n" "$W/r-$NUMSEQ.doc" >"$W/r-$NUMSEQ.base"
    b=$(cat "$W/r-$NUMSEQ.base")
    {
        printf '%s</hub:To>' "${b%%</hub:To>*}"
        head -c 100000 /dev/zero | sed "s#\x0#$1#g"
        printf '%s\n' "${b#*</hub:To>}"
    } >"$2"
}
H='xmlns:hub="http://ephyto.ippc.int/HUB.Entities"'
next_number
cert_variant "$n" BO EC "CONSIGNEE-F" "$W/f.doc"
deliver_body BO EC 851 70 "$n" "$W/f.doc" >"$W/f.base"
b=$(cat "$W/f.base")
{
    printf '%s<hub:Forwardings %s>' "${b%%<hub:Content *}" "$H"
    head -c 100000 /dev/zero | sed 's#\x0#<hub:EnvelopeForwarding/>#g'
    printf '</hub:Forwardings><hub:Content %s\n' "${b#*<hub:Content }"
} >"$W/r-forwardings.xml"
sz=$(stat -c %s "$W/r-forwardings.xml")
check "100 000 <hub:EnvelopeForwarding/> body is within max_request_bytes ($sz bytes)" test "$sz" -lt 4194304
hpost "envelope: 100 000 EnvelopeForwarding elements in a valid hand-in" bo-issuer DeliverEnvelope "$W/r-forwardings.xml"
repeat_in_env '<hub:Junk/>' "$W/r-unknown.xml"
hpost "envelope: 100 000 unknown elements in a valid hand-in" bo-issuer DeliverEnvelope "$W/r-unknown.xml"
{
    printf '%s\n<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header xmlns:x="urn:x">' "$XMLDECL"
    head -c 100000 /dev/zero | sed 's#\x0#<x:h soap:mustUnderstand="1"/>#g'
    printf '</soap:Header><soap:Body><ns:GetEnvelopeTrackingInfo xmlns:ns="http://ephyto.ippc.int/"><ns:hubTrackingNumber>%s</ns:hubTrackingNumber></ns:GetEnvelopeTrackingInfo>%s\n' "$T_S" "$ENV_CLOSE"
} >"$W/r-headers.xml"
hpost "envelope: 100 000 mustUnderstand header blocks" ec-nppo GetEnvelopeTrackingInfo "$W/r-headers.xml"
next_number
cert_variant "$n" BO EC "CONSIGNEE-C" "$W/r-content.doc0"
{
    sed -n '1,/<ram:Name>CONSIGNEE-C/p' "$W/r-content.doc0"
    head -c 100000 /dev/zero | sed 's#\x0#<ram:Name>x</ram:Name>#g'
    sed -n '/<ram:Name>CONSIGNEE-C/,$p' "$W/r-content.doc0" | sed 1d
} >"$W/r-content.doc"
deliver_body BO EC 851 70 "$n" "$W/r-content.doc" >"$W/r-content.xml"
hpost "Content: 100 000 repeated elements" bo-issuer DeliverEnvelope "$W/r-content.xml"

# ==== size ==================================================================================

next_number
cert_variant "$n" BO EC "CONSIGNEE-B" "$W/b.doc"
deliver_body BO EC 851 70 "$n" "$W/b.doc" >"$W/b.base"
b=$(cat "$W/b.base")
{
    printf '%s<soap:Body><!-- ' "${b%%<soap:Body>*}"
    head -c $((5 * 1024 * 1024)) /dev/zero | tr '\0' 'x'
    printf ' -->%s\n' "${b#*<soap:Body>}"
} >"$W/b-big.xml"
hpost "body of 5 MiB (limit 4 MiB), Content-Length" bo-issuer DeliverEnvelope "$W/b-big.xml"
t0=$(now_ms)
HTTP=$(curl -sS --max-time 15 --cacert "$CA/ca.crt" --cert "$CA/bo-issuer.crt" --key "$CA/bo-issuer.key" \
    -H 'Content-Type: text/xml; charset=utf-8' -H 'Transfer-Encoding: chunked' \
    -H 'SOAPAction: "http://ephyto.ippc.int/IDeliveryService/DeliverEnvelope"' \
    --data-binary @"$W/b-big.xml" -o "$W/b-chunked.resp" -w '%{http_code}' "$URL" 2>"$W/b-chunked.err")
RC=$?
OUT=$(cat "$W/b-chunked.resp" "$W/b-chunked.err" 2>/dev/null)
verdict "body of 5 MiB (limit 4 MiB), chunked without Content-Length ($(( $(now_ms) - t0 )) ms)"

# ==== invalid UTF-8 ==========================================================================

utf8_case() {  # utf8_case DESC BYTES
    next_number
    cert_variant "$n" BO EC "CONSIGNEE-U" "$W/u-$NUMSEQ.doc"
    sed -i "s#<ram:Name>CONSIGNEE-U</ram:Name>#<ram:Name>Bad $2 name</ram:Name>#" "$W/u-$NUMSEQ.doc"
    deliver_body BO EC 851 70 "$n" "$W/u-$NUMSEQ.doc" >"$W/u-$NUMSEQ.xml"
    hpost "Content: $1" bo-issuer DeliverEnvelope "$W/u-$NUMSEQ.xml"
}
utf8_case 'invalid UTF-8 (\xff\xfe)' $'\xff\xfe'
utf8_case "overlong UTF-8 '<' (\\xc0\\xbc)" $'\xc0\xbc'
utf8_case 'UTF-16 surrogate as UTF-8 (\xed\xa0\x80)' $'\xed\xa0\x80'
utf8_case 'truncated sequence (\xe2\x82)' $'\xe2\x82'
BAD1=$'\xff\xfe' BAD2=$'\xff\xfe\xc0\xbc' BAD3=$'\xed\xa0\x80' BAD4=$'\xff'
soap_body GetEnvelopeTrackingInfo "<ns:hubTrackingNumber>ECG${BAD1}1</ns:hubTrackingNumber>" >"$W/u-env1.xml"
hpost "envelope: invalid UTF-8 in hubTrackingNumber" ec-nppo GetEnvelopeTrackingInfo "$W/u-env1.xml"
soap_body AdvancedAcknowledgeEnvelopeReceipt "<ns:hubTrackingNumber>$T_U</ns:hubTrackingNumber><ns:warningMessage>bad $BAD2 bytes</ns:warningMessage>" >"$W/u-env2.xml"
hpost "envelope: invalid UTF-8 in AdvancedAcknowledge warningMessage" ec-nppo AdvancedAcknowledgeEnvelopeReceipt "$W/u-env2.xml"
soap_body AcknowledgeFailedEnvelopeReceipt "<ns:hubTrackingNumber>$T_U</ns:hubTrackingNumber><ns:message>bad $BAD3 bytes</ns:message>" >"$W/u-env3.xml"
hpost "envelope: invalid UTF-8 in AcknowledgeFailed message" ec-nppo AcknowledgeFailedEnvelopeReceipt "$W/u-env3.xml"
next_number
cert_variant "$n" BO EC "CONSIGNEE-V" "$W/u-env4.doc"
deliver_body BO EC 851 70 "$n" "$W/u-env4.doc" | sed "s#<hub:From \([^>]*\)>BO#<hub:From \1>B${BAD4}O#" >"$W/u-env4.xml"
hpost "envelope: invalid UTF-8 in From of a hand-in" bo-issuer DeliverEnvelope "$W/u-env4.xml"

# ==== truncated TLS ===============================================================================

"$HOSTILE_CLIENT" halfhello 127.0.0.1 "$PORT" >"$W/t-half.out" 2>&1
hc ec-nppo headers
check "half a ClientHello, then close -> daemon up (same PID), next partner served ($(cat "$W/t-half.out"))" \
    eval '[ "$RC" -eq 0 ] && kill -0 "$PID0" && [ "$DPID" = "$PID0" ]'
"$HOSTILE_CLIENT" midrequest 127.0.0.1 "$PORT" "$CA/ca.crt" "$CA/ec-nppo.crt" "$CA/ec-nppo.key" >"$W/t-mid.out" 2>&1
hc ec-nppo headers
check "handshake done, closed mid-request -> daemon up, next partner served ($(head -n1 "$W/t-mid.out"))" \
    eval '[ "$RC" -eq 0 ] && kill -0 "$PID0" && grep -q "handshake done" "$W/t-mid.out"'
for i in $(seq 1 20); do
    "$HOSTILE_CLIENT" halfhello 127.0.0.1 "$PORT" >/dev/null 2>&1
    "$HOSTILE_CLIENT" midrequest 127.0.0.1 "$PORT" "$CA/ca.crt" "$CA/ec-nppo.crt" "$CA/ec-nppo.key" >/dev/null 2>&1
done
hc ec-nppo headers
check "20 x each truncation -> daemon up, store unchanged, next partner served" \
    eval '[ "$RC" -eq 0 ] && kill -0 "$PID0" && [ "$(store_state)" = "$SC" ]'

# ==== floods, with a well-behaved partner polling ===================================================

# probe: one GetImportEnvelopeHeaders as ec-nppo (new connection, as a
# partner's poller makes); prints "RC MS".
probe() {
    local t0 rc
    t0=$(now_ms)
    "$HUBCLIENT" -u "$URL" --cert "$CA/ec-nppo.crt" --key "$CA/ec-nppo.key" --cacert "$CA/ca.crt" \
        --timeout 10 headers >/dev/null 2>&1
    rc=$?
    echo "$rc $(( $(now_ms) - t0 ))"
}

p50() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else print a[int((NR + 1) / 2)] }'; }

# wait_drained: until a probe succeeds fast again (at most 60 s).
wait_drained() {
    local i r
    for i in $(seq 1 60); do
        r=$(probe)
        [ "${r%% *}" = 0 ] && [ "${r#* }" -lt "$PROBE_LIMIT_MS" ] && return 0
        sleep 1
    done
    return 1
}

: >"$W/probe-base"
for i in $(seq 1 10); do probe >>"$W/probe-base"; done
BASE_P50=$(awk '$1 == 0 { print $2 }' "$W/probe-base" | p50)
check "baseline: 10 polls succeed (p50 ${BASE_P50} ms)" eval '[ "$(awk "\$1 != 0" "$W/probe-base" | wc -l)" -eq 0 ]'

RSS_PEAK=$(daemon_rss_kb)
# flood NAME MODE N: MODE (slow|idle|keepalive) with N connections for
# STORM_SECONDS, polling meanwhile; every poll must succeed within
# PROBE_LIMIT_MS.  keepalive connections are pe-nppo's, authenticated.
flood() {
    local name=$1 mode=$2 n=$3 hp end rss fails slowest p cnt
    if [ "$mode" = keepalive ]; then
        "$HOSTILE_CLIENT" keepalive 127.0.0.1 "$PORT" "$CA/ca.crt" "$CA/pe-nppo.crt" \
            "$CA/pe-nppo.key" "$n" "$STORM_SECONDS" >"$W/flood-$mode.out" 2>&1 &
    else
        "$HOSTILE_CLIENT" "$mode" 127.0.0.1 "$PORT" "$n" "$STORM_SECONDS" >"$W/flood-$mode.out" 2>&1 &
    fi
    hp=$!
    bg_add "$hp"
    sleep 2                              # the connections are open
    : >"$W/probe-$mode"
    end=$(( $(date +%s) + STORM_SECONDS - 3 ))
    while [ "$(date +%s)" -lt "$end" ] && kill -0 "$hp" 2>/dev/null; do
        probe >>"$W/probe-$mode"
        rss=$(daemon_rss_kb)
        [ -n "$rss" ] && [ "$rss" -gt "$RSS_PEAK" ] && RSS_PEAK=$rss
        sleep 0.3
    done
    wait "$hp" 2>/dev/null
    cnt=$(wc -l <"$W/probe-$mode")
    fails=$(awk '$1 != 0' "$W/probe-$mode" | wc -l)
    slowest=$(awk '{ print $2 }' "$W/probe-$mode" | sort -n | tail -n1)
    p=$(awk '$1 == 0 { print $2 }' "$W/probe-$mode" | p50)
    echo "# $name: $(cat "$W/flood-$mode.out"); polls=$cnt failed=$fails p50=${p}ms (before ${BASE_P50}ms) slowest=${slowest}ms"
    echo "# $name: polls (rc ms): $(tr '\n' ' ' <"$W/probe-$mode")"
    WHY="$fails of $cnt polls failed, slowest ${slowest} ms"
    check "$name: a partner's GetImportEnvelopeHeaders never fails during it ($cnt polls, $fails failed)" \
        test "$fails" -eq 0 -a "$cnt" -gt 0
    WHY="p50 ${p} ms, slowest ${slowest} ms"
    check "$name: every poll answered within ${PROBE_LIMIT_MS} ms (p50 ${p} ms before ${BASE_P50} ms, slowest ${slowest} ms)" \
        eval '[ "$fails" -eq 0 ] && [ "${slowest:-99999}" -lt "$PROBE_LIMIT_MS" ]'
    check "$name: daemon up (same PID)" eval 'kill -0 "$PID0" && [ "$DPID" = "$PID0" ]'
    WHY="still failing 60 s after the flood"
    check "$name: served normally again after the flood" wait_drained
}

flood "slowloris (200 TLS connections, 1 ClientHello byte/s, ${STORM_SECONDS}s)" slow 200
flood "idle flood (1000 TCP connections without TLS, ${STORM_SECONDS}s)" idle 1000
# More idle authenticated keep-alive connections than workers: parked
# between requests, they hold no worker, so the poller is served.
flood "keep-alive (100 partner connections answered once, then idle; 8 workers; ${STORM_SECONDS}s)" keepalive 100
KA_ANSWERED=$(sed -n 's/.*answered=\([0-9]*\).*/\1/p' "$W/flood-keepalive.out")
KA_FAILED=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' "$W/flood-keepalive.out")
WHY="$(cat "$W/flood-keepalive.out")"
check "keep-alive: all 100 connections were answered, none failed ($(cat "$W/flood-keepalive.out"))" \
    eval '[ "${KA_ANSWERED:-0}" -ge 100 ] && [ "${KA_FAILED:-1}" -eq 0 ]'
# idle_timeout is 5 s: every parked connection is closed by the daemon
# at least once in the flood (the client opens it again).
KA_REOPENED=$(sed -n 's/.*reopened=\([0-9]*\).*/\1/p' "$W/flood-keepalive.out")
check "keep-alive: parked idle connections are closed after idle_timeout (reopened=${KA_REOPENED:-?} of 100)" \
    eval '[ "${KA_REOPENED:-0}" -ge 100 ]'
grep -q 'too many connections' "$DLOG" && echo "# daemon log: $(grep -c 'too many connections' "$DLOG") x 'too many connections: refusing'"

# ==== afterwards ======================================================================================

assert_eq "store unchanged by everything hostile" "$S0" "$(store_state)"
hc ec-nppo headers
check "daemon answers a partner normally at the end" eval '[ "$RC" -eq 0 ] && printf "%s" "$OUT" | grep -q "tracking=$T_S "'
check "daemon still the same process (PID $PID0)" eval 'kill -0 "$PID0" && [ "$DPID" = "$PID0" ]'
RSS1=$(daemon_rss_kb)
[ -n "$RSS1" ] && [ "$RSS1" -gt "$RSS_PEAK" ] && RSS_PEAK=$RSS1
echo "# VmRSS of ecertd: before ${RSS0} kB, peak seen ${RSS_PEAK} kB, after ${RSS1} kB"
awk -v prev="${RSS0:-0}" '$1 - prev > 4096 { printf "# VmRSS grew %d kB with: %s\n", $1 - prev, substr($0, index($0, " ") + 1) } { prev = $1 }' "$T/rss.log"
check "memory bounded: VmRSS before ${RSS0:-?} kB, after ${RSS1:-?} kB (< $RSS_LIMIT_KB kB; peak during the floods ${RSS_PEAK} kB, reported only)" \
    eval '[ -n "$RSS1" ] && [ "$RSS0" -lt "$RSS_LIMIT_KB" ] && [ "$RSS1" -lt "$RSS_LIMIT_KB" ]'
if grep -q 'root:.*:0:0:' "$DLOG"; then
    not_ok "/etc/passwd content never reaches the daemon log" "found in $DLOG"
else
    ok "/etc/passwd content never reaches the daemon log"
fi

kill -TERM "$SPYPID" 2>/dev/null
wait "$SPYPID" 2>/dev/null
spied=$(sed -n 's/^spy connections=//p' "$T/spy.out")
assert_eq "no connection reached the spy listener named in the entities/DTDs" 0 "${spied:-none}"

daemon_stop                              # strace flushes its output
inet=$(grep -E 'connect\(.*sa_family=AF_INET6?' "$STRACE_OUT" | grep -v 'resumed' || true)
nconn=$(grep -c 'connect(' "$STRACE_OUT")
echo "# strace: $nconn connect() calls by ecertd in all: $(grep -o 'sa_family=AF_[A-Z0-9]*' "$STRACE_OUT" | sort | uniq -c | tr -s ' \n' ' ')"
WHY=$(printf '%s' "$inet" | head -n 5)
check "ecertd made no AF_INET/AF_INET6 connect() (strace -f)" test -z "$inet"
naccept=$(grep -Ec 'accept4?\(' "$STRACE_OUT")
check "strace really traced ecertd ($naccept accept() calls seen)" test "$naccept" -gt 0
finish
