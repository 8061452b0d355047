#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# authz.sh - authorization matrix of the live daemon: every operation of
# wsdl/DeliveryService.wsdl x every kind of caller, compared exhaustively
# with tests/security/authz-expected.tsv; then "not yours" must read
# byte for byte like "does not exist" and nothing of partner A's data may
# reach partner B.
#
# Run from the project root after `make all build/hubclient`:
#     bash tests/security/authz.sh          (or: make security)
# Writes tests/security/authz-table.md (the observed matrix, markdown).
# KEEP=1 keeps the temporary directory.

set -u
SUITE=authz
. "$(dirname "$0")/common.sh"

EXPECTED=$SEC/authz-expected.tsv
TABLE=${AUTHZ_TABLE:-$SEC/authz-table.md}
[ -s "$EXPECTED" ] || bail "$EXPECTED missing"

OPS="DeliverEnvelope ValidateAndDeliverEnvelope GetImportEnvelopeHeaders
GetUnderDeliveryEnvelope PULLImportEnvelope PULLSingleImportEnvelope
AcknowledgeEnvelopeReceipt AdvancedAcknowledgeEnvelopeReceipt
AcknowledgeFailedEnvelopeReceipt GetEnvelopeTrackingInfo ValidatePhytoXML
GetActiveNppos"
CALLERS="no-cert other-ca unknown expired ec-nppo pe-nppo bo-issuer bo-import"
# Run order: reads first, acknowledgements by A last in their row (callers
# are listed with A last there), hand-ins at the very end so that the
# pull-only partner's lists are still empty when asked.
RUN_OPS="GetActiveNppos ValidatePhytoXML GetImportEnvelopeHeaders
GetUnderDeliveryEnvelope PULLImportEnvelope PULLSingleImportEnvelope
GetEnvelopeTrackingInfo AcknowledgeEnvelopeReceipt
AdvancedAcknowledgeEnvelopeReceipt AcknowledgeFailedEnvelopeReceipt
DeliverEnvelope ValidateAndDeliverEnvelope"
RUN_CALLERS="no-cert other-ca unknown expired pe-nppo bo-issuer bo-import ec-nppo"

# ==== set-up ==================================================================

make_certs || bail "cannot make the certificates (see $CA.log)"
check "certificates: partners, unknown, A's key expired (right CA), A's key from another CA" \
    test -s "$CA/ec-expired.crt" -a -s "$CA/ec-foreign.crt" -a -s "$CA/unknown.crt"
check "expired and foreign certificates carry A's configured public key" \
    test "$(spki_fp "$CA/ec-expired.crt")" = "$(cat "$CA/ec-nppo.fp")" -a \
         "$(spki_fp "$CA/ec-foreign.crt")" = "$(cat "$CA/ec-nppo.fp")"

PORT=$(free_port) || bail "no free port"
URL=https://127.0.0.1:$PORT/hub/DeliveryService
write_conf >"$CONF"
: >"$DLOG"
if daemon_start; then ok "ecertd listens on 127.0.0.1:$PORT"; else not_ok "ecertd listens" "see $DLOG"; finish; fi
PID0=$DPID

# caller_id CALLER: hubclient identity arguments, and curl's cert/key.
caller_args() {
    case $1 in
    no-cert)  HCARGS=(--no-cert); CCERT=-; CKEY=- ;;
    other-ca) HCARGS=(--cert "$CA/ec-foreign.crt" --key "$CA/ec-foreign.key"); CCERT=$CA/ec-foreign.crt; CKEY=$CA/ec-foreign.key ;;
    expired)  HCARGS=(--cert "$CA/ec-expired.crt" --key "$CA/ec-expired.key"); CCERT=$CA/ec-expired.crt; CKEY=$CA/ec-expired.key ;;
    *)        HCARGS=(--cert "$CA/$1.crt" --key "$CA/$1.key"); CCERT=$CA/$1.crt; CKEY=$CA/$1.key ;;
    esac
}

hcx() {  # hcx CALLER ARGS...: hubclient as CALLER
    caller_args "$1"; shift
    OUT=$("$HUBCLIENT" -u "$URL" --cacert "$CA/ca.crt" "${HCARGS[@]}" "$@" 2>&1)
    RC=$?
}

# The data: envelopes bo-issuer addresses to A (EC) and to B (PE).  A's
# certificates carry a marker as the consignee's name and their own
# numbers; none of it may ever reach B.
MARK_A="SECRET-CONSIGNEE-A-$RANDOM$RANDOM"
MARK_B="SECRET-CONSIGNEE-B-$RANDOM$RANDOM"
declare -A TRK NUM
for k in a1 a2 a3 a4 b1; do
    case $k in
    a*) NUM[$k]="77000${k#a}1BO"; cert_variant "${NUM[$k]}" BO EC "$MARK_A" "$W/$k.xml"; to=EC ;;
    b*) NUM[$k]="88000${k#b}1BO"; cert_variant "${NUM[$k]}" BO PE "$MARK_B" "$W/$k.xml"; to=PE ;;
    esac
    hcx bo-issuer deliver "$W/$k.xml" BO "$to" 851 70 "${NUM[$k]}"
    TRK[$k]=$(tracking_of "$OUT")
    [ "$RC" -eq 0 ] && [ -n "${TRK[$k]}" ] || bail "set-up hand-in $k failed: rc=$RC $OUT"
done
ok "set-up: bo-issuer handed in a1..a4 (BO->EC, for A) and b1 (BO->PE, for B)"

# Hand-ins of the matrix: each caller hands in from its own country.
handin_file() {  # handin_file OP CALLER -> FILE FROM TO NUMBER in HI_*
    local n
    n=$(( ${HI_SEQ:-0} + 1 )); HI_SEQ=$n
    case $2 in
    ec-nppo|no-cert|other-ca|unknown|expired)
        HI_FROM=EC; HI_TO=BO; HI_NUM="EC-SEC-$n" ;;
    pe-nppo) HI_FROM=PE; HI_TO=BO; HI_NUM="PE-SEC-$n" ;;
    *)       HI_FROM=BO; HI_TO=EC; HI_NUM="99000${n}BO" ;;
    esac
    HI_FILE=$W/hi-$n.xml
    cert_variant "$HI_NUM" "$HI_FROM" "$HI_TO" "HANDIN-$n" "$HI_FILE"
}

# op_args OP CALLER: hubclient operation and arguments for the cell, and the
# raw body (for curl) in $W/raw-OP-CALLER.xml.
op_args() {
    local op=$1 who=$2 t inner
    case $op in
    PULLSingleImportEnvelope|GetEnvelopeTrackingInfo) t=${TRK[a1]} ;;
    AcknowledgeEnvelopeReceipt) t=${TRK[a2]} ;;
    AdvancedAcknowledgeEnvelopeReceipt) t=${TRK[a3]} ;;
    AcknowledgeFailedEnvelopeReceipt) t=${TRK[a4]} ;;
    esac
    case $op in
    DeliverEnvelope|ValidateAndDeliverEnvelope)
        handin_file "$op" "$who"
        OPARGS=(deliver "$HI_FILE" "$HI_FROM" "$HI_TO" 851 70 "$HI_NUM")
        [ "$op" = ValidateAndDeliverEnvelope ] && OPARGS+=(--validate)
        deliver_body "$HI_FROM" "$HI_TO" 851 70 "$HI_NUM" "$HI_FILE" "$op" >"$W/raw-$op-$who.xml"
        return ;;
    GetImportEnvelopeHeaders) OPARGS=(headers); inner= ;;
    GetUnderDeliveryEnvelope) OPARGS=(underdelivery); inner= ;;
    PULLImportEnvelope) OPARGS=(pull); inner= ;;
    GetActiveNppos) OPARGS=(nppos); inner= ;;
    PULLSingleImportEnvelope) OPARGS=(pullone "$t"); inner="<ns:hubTrackingNumber>$t</ns:hubTrackingNumber>" ;;
    GetEnvelopeTrackingInfo) OPARGS=(track "$t"); inner="<ns:hubTrackingNumber>$t</ns:hubTrackingNumber>" ;;
    AcknowledgeEnvelopeReceipt) OPARGS=(ack "$t"); inner="<ns:hubTrackingNumber>$t</ns:hubTrackingNumber>" ;;
    AdvancedAcknowledgeEnvelopeReceipt) OPARGS=(advack "$t" "minor issue")
        inner="<ns:hubTrackingNumber>$t</ns:hubTrackingNumber><ns:warningMessage>minor issue</ns:warningMessage>" ;;
    AcknowledgeFailedEnvelopeReceipt) OPARGS=(failack "$t" "unreadable")
        inner="<ns:hubTrackingNumber>$t</ns:hubTrackingNumber><ns:message>unreadable</ns:message>" ;;
    ValidatePhytoXML) OPARGS=(validate "$SAMPLE")
        inner="<ns:ePhytoXML>$(xml_escape "$SAMPLE")</ns:ePhytoXML>" ;;
    esac
    soap_body "$op" "$inner" >"$W/raw-$op-$who.xml"
}

# classify OP: the outcome of the last hubclient call.
classify() {
    case $RC in
    5)  if printf '%s' "$OUT" | grep -Eq '^(header|envelope|nppo|valid=|tracking=|acknowledged)'; then
            echo "answered-rc5"
        else
            echo refused-tls
        fi ;;
    4)  echo fault ;;
    0)  case $1 in
        GetImportEnvelopeHeaders|GetUnderDeliveryEnvelope|PULLImportEnvelope)
            if printf '%s' "$OUT" | grep -Eq '^(header|envelope) '; then echo ok; else echo ok-empty; fi ;;
        GetEnvelopeTrackingInfo)
            if printf '%s' "$OUT" | grep -Eq '^tracking=[^ ]* state=EnvelopeNotExists$'; then
                echo not-exists
            else
                echo ok
            fi ;;
        *)  echo ok ;;
        esac ;;
    *)  echo "error-rc$RC" ;;
    esac
}

# ==== the matrix ==================================================================

declare -A GOT EXP
while IFS=$'\t' read -r op who exp; do
    case $op in ''|'#'*|operation) continue ;; esac
    EXP["$op/$who"]=$exp
done <"$EXPECTED"

mkdir -p "$W/cells"
tls_log0=$(grep -c 'tls: .*handshake failed\|tls: .*more connection problems' "$DLOG")
nrefused=0
for op in $RUN_OPS; do
    for who in $RUN_CALLERS; do
        op_args "$op" "$who"
        hcx "$who" "${OPARGS[@]}"
        got=$(classify "$op")
        printf '%s\n' "$OUT" >"$W/cells/$op.$who.out"
        if [ "$got" = refused-tls ]; then
            # the same cell with curl: refused too, no SOAP answer
            caller_args "$who"
            CURL_MAX=10 raw_post "$CCERT" "$CKEY" "$op" "$W/raw-$op-$who.xml" "$W/cells/$op.$who.curl"
            if [ "$RC" -eq 0 ] || grep -q 'Envelope' "$W/cells/$op.$who.curl" 2>/dev/null; then
                got="answered-curl-http$HTTP"
            fi
            nrefused=$((nrefused + 1))
        fi
        GOT["$op/$who"]=$got
    done
done

nexp=0
for op in $OPS; do
    for who in $CALLERS; do
        e=${EXP["$op/$who"]:-missing}
        g=${GOT["$op/$who"]:-missing}
        [ "$e" != missing ] && nexp=$((nexp + 1))
        assert_eq "$op as $who -> $e" "$e" "$g"
    done
done
assert_eq "authz-expected.tsv has one row per operation x caller" 96 "$nexp"
tls_log1=$(grep -c 'tls: .*handshake failed\|tls: .*more connection problems' "$DLOG")
check "daemon log: every refused cell (hub client + curl) failed in the TLS handshake" \
    test $((tls_log1 - tls_log0)) -ge $((2 * nrefused))

# ---- the table -------------------------------------------------------------------

{
    echo "<!-- SPDX-License-Identifier: GPL-2.0-or-later -->"
    echo "<!-- generated by tests/security/authz.sh from a live run; do not edit -->"
    echo "# Authorization matrix (observed)"
    echo
    echo "Each cell is what the live daemon answered; \`**x** (expected y)\` marks"
    echo "a mismatch with \`authz-expected.tsv\`. Tracking-number operations name"
    echo "envelopes that bo-issuer addressed to A (ec-nppo, EC)."
    echo
    printf '| operation |'
    for who in $CALLERS; do printf ' %s |' "$who"; done
    echo
    printf '|---|'
    for who in $CALLERS; do printf -- '---|'; done
    echo
    for op in $OPS; do
        printf '| %s |' "$op"
        for who in $CALLERS; do
            e=${EXP["$op/$who"]:-missing}; g=${GOT["$op/$who"]:-missing}
            if [ "$e" = "$g" ]; then printf ' %s |' "$g"; else printf ' **%s** (expected %s) |' "$g" "$e"; fi
        done
        echo
    done
    echo
    echo "Callers: no-cert = no client certificate; other-ca = A's own key in a"
    echo "certificate from another CA; unknown = certificate of the right CA whose key"
    echo "is no partner's; expired = A's own key in an expired certificate of the"
    echo "right CA; ec-nppo = partner A (EC, submit+pull); pe-nppo = partner B (PE,"
    echo "submit+pull); bo-issuer = submit only (BO, the gateway's country);"
    echo "bo-import = pull only (BO)."
    echo
    echo "Outcomes: refused-tls = TLS handshake refused, no SOAP read or answered"
    echo "(hub client and curl); fault = SOAP Fault; ok = answered with data;"
    echo "ok-empty = answered, empty list; not-exists = HUBTrackingInfo"
    echo "EnvelopeNotExists."
} >"$TABLE.tmp" && mv "$TABLE.tmp" "$TABLE"
ok "observed matrix written to ${TABLE#$ROOT/}"

# ==== what the lists hold ===========================================================

c=$W/cells
has() { grep -q "tracking=$2 " "$c/$1.out"; }
for op in GetImportEnvelopeHeaders GetUnderDeliveryEnvelope PULLImportEnvelope; do
    check "$op (A): A's envelopes, not B's" \
        eval 'has $op.ec-nppo ${TRK[a1]} && has $op.ec-nppo ${TRK[a4]} && ! has $op.ec-nppo ${TRK[b1]}'
    check "$op (B): B's envelope, none of A's" \
        eval 'has $op.pe-nppo ${TRK[b1]} && ! grep -Eq "tracking=(${TRK[a1]}|${TRK[a2]}|${TRK[a3]}|${TRK[a4]}) " $c/$op.pe-nppo.out'
done
hcx bo-issuer track "${TRK[a2]}"
assert_match "A's AcknowledgeEnvelopeReceipt -> Delivered" "state=Delivered( |$)" "$OUT"
hcx bo-issuer track "${TRK[a3]}"
assert_match "A's AdvancedAcknowledgeEnvelopeReceipt -> DeliveredWithWarnings" "state=DeliveredWithWarnings" "$OUT"
hcx bo-issuer track "${TRK[a4]}"
assert_match "A's AcknowledgeFailedEnvelopeReceipt -> DeliveredNotReadable" "state=DeliveredNotReadable" "$OUT"

# ==== "not yours" == "does not exist", byte for byte ==================================

# made_up T: a tracking number of the same length and alphabet that does
# not exist (the digits after the last '-' rotated).
made_up() {
    printf '%s-%s' "${1%-*}" "$(printf '%s' "${1##*-}" | tr '0-9a-fA-F' '1-90b-faB-FA')"
}
T_A=${TRK[a1]}
T_X=$(made_up "$T_A")
check "made-up tracking number: same length, different, unknown" \
    eval '[ ${#T_X} -eq ${#T_A} ] && [ "$T_X" != "$T_A" ]'

S0=$(store_state)
for who in pe-nppo bo-import; do
    caller_args "$who"
    for op in PULLSingleImportEnvelope GetEnvelopeTrackingInfo AcknowledgeEnvelopeReceipt \
              AdvancedAcknowledgeEnvelopeReceipt AcknowledgeFailedEnvelopeReceipt; do
        for v in A X; do
            t=$T_A; [ $v = X ] && t=$T_X
            case $op in
            AdvancedAcknowledgeEnvelopeReceipt) inner="<ns:hubTrackingNumber>$t</ns:hubTrackingNumber><ns:warningMessage>w</ns:warningMessage>" ;;
            AcknowledgeFailedEnvelopeReceipt) inner="<ns:hubTrackingNumber>$t</ns:hubTrackingNumber><ns:message>m</ns:message>" ;;
            *) inner="<ns:hubTrackingNumber>$t</ns:hubTrackingNumber>" ;;
            esac
            soap_body "$op" "$inner" >"$W/leak-$op-$v.xml"
            raw_post "$CCERT" "$CKEY" "$op" "$W/leak-$op-$v.xml" "$W/leak-$who-$op-$v.resp"
            echo "$HTTP" >"$W/leak-$who-$op-$v.http"
            sed "s/$t/#TRACKING#/g" "$W/leak-$who-$op-$v.resp" >"$W/leak-$who-$op-$v.norm"
        done
        WHY="A's: $(head -c 600 "$W/leak-$who-$op-A.norm") | made-up: $(head -c 600 "$W/leak-$who-$op-X.norm")"
        check "$who $op: A's tracking number answered byte-identical to a made-up one (HTTP $(cat "$W/leak-$who-$op-A.http"))" \
            eval 'cmp -s "$W/leak-$who-$op-A.norm" "$W/leak-$who-$op-X.norm" && cmp -s "$W/leak-$who-$op-A.http" "$W/leak-$who-$op-X.http" && [ -s "$W/leak-$who-$op-A.norm" ]'
    done
done
assert_eq "store unchanged by B's and bo-import's attempts on A's envelopes" "$S0" "$(store_state)"
hcx bo-issuer track "$T_A"
assert_match "A's envelope still PendingDelivery after B's attempts" "state=PendingDelivery" "$OUT"

# Every operation as B once more over raw SOAP, to see the full answers.
for op in $OPS; do
    case $op in DeliverEnvelope|ValidateAndDeliverEnvelope) continue ;; esac
    caller_args pe-nppo
    op_args "$op" pe-nppo
    raw_post "$CCERT" "$CKEY" "$op" "$W/raw-$op-pe-nppo.xml" "$W/cells/$op.pe-nppo.raw"
done

leaks=""
for f in "$W"/cells/*.pe-nppo.* "$W"/leak-pe-nppo-*.resp; do
    for s in "$MARK_A" "${NUM[a1]}" "${NUM[a2]}" "${NUM[a3]}" "${NUM[a4]}"; do
        grep -qF -- "$s" "$f" && leaks="$leaks ${f##*/}:$s"
    done
done
nb=$(ls "$W"/cells/*.pe-nppo.* "$W"/leak-pe-nppo-*.resp | wc -l)
assert_eq "no answer to B ($nb responses) holds A's certificate numbers or content" "" "$leaks"
check "B's own answers do hold B's data (the grep can see through)" \
    grep -qF -- "$MARK_B" "$W/cells/PULLImportEnvelope.pe-nppo.raw"
if grep -qF -- "$MARK_A" "$DLOG"; then
    not_ok "certificate content never reaches the daemon log" "marker found in $DLOG"
else
    ok "certificate content never reaches the daemon log"
fi

check "daemon still running, same PID" eval '[ "$DPID" = "$PID0" ] && kill -0 "$DPID"'
finish
