#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# run.sh - integration suite: a real ecertd on 127.0.0.1 with real mutual
# TLS, driven by the client generated from the ePhyto Hub's own WSDL
# (build/hubclient) and by curl with raw SOAP requests.
#
# Run from the project root after `make all build/hubclient`:
#     bash tests/integration/run.sh          (or: make integration)
# KEEP=1 keeps the temporary directory for inspection; ECERTD, ECERTCTL and
# HUBCLIENT override the binaries under build/.

set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/integration
PAYLOADS=$HERE/payloads
ECERTD=${ECERTD:-$ROOT/build/ecertd}
ECERTCTL=${ECERTCTL:-$ROOT/build/ecertctl}
HUBCLIENT=${HUBCLIENT:-$ROOT/build/hubclient}
SAMPLES=$(cd "$ROOT/../shared/samples/spscert" 2>/dev/null && pwd)
SAMPLE=$SAMPLES/agrocalidad-qa-BO-to-EC-491412337BO.xml

. "$HERE/lib.sh"

for bin in "$ECERTD" "$ECERTCTL" "$HUBCLIENT"; do
    if [ ! -x "$bin" ]; then
        echo "integration: $bin missing (make all build/hubclient)" >&2
        echo "integration: 0 passed, 1 failed"
        exit 1
    fi
done
for tool in curl openssl ss sqlite3; do
    command -v "$tool" >/dev/null || { echo "integration: $tool missing" >&2; echo "integration: 0 passed, 1 failed"; exit 1; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/ecert-it.XXXXXX")
DPID=
cleanup() {
    if [ -n "${DPID:-}" ]; then
        kill -TERM "$DPID" 2>/dev/null
        wait_gone "$DPID" 5 || kill -9 "$DPID" 2>/dev/null
        wait "$DPID" 2>/dev/null
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CA=$T/ca
CA2=$T/ca2
CONF=$T/ecertd.conf
DB=$T/ecert.db
DLOG=$T/ecertd.log
W=$T/work
mkdir -p "$W"

finish() {
    if [ "$FAIL" -gt 0 ]; then daemon_log_tail 60; fi
    echo "integration: $PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
    exit $?
}

# ==== certificates, configuration ==========================================

make_ca "$CA" bo-issuer bo-import unknown
check "dev-ca.sh makes the CA, server and client certificates" \
    test -s "$CA/ca.crt" -a -s "$CA/server.crt" -a -s "$CA/server.key" \
         -a -s "$CA/bo-issuer.crt" -a -s "$CA/bo-import.key" -a -s "$CA/ec-nppo.crt" \
         -a -s "$CA/pe-nppo.key" -a -s "$CA/unknown.crt" -a -s "$CA/ec-nppo.fp"
make_ca "$CA2" intruder
check "a second, unrelated CA for the intruder" test -s "$CA2/intruder.crt" -a -s "$CA2/intruder.key"
if [ ! -s "$CA/ec-nppo.crt" ] || [ ! -s "$CA/server.crt" ]; then
    echo "# dev-ca.sh output:"; sed 's/^/# /' "$CA.log"
    finish
fi

fp_ok=1
for n in bo-issuer bo-import ec-nppo pe-nppo; do
    [ "$(cat "$CA/$n.fp" 2>/dev/null)" = "$(spki_fp "$CA/$n.crt")" ] || fp_ok=0
done
check "NAME.fp holds sha256:<SPKI SHA-256> of NAME.crt" test "$fp_ok" = 1

PORT=$(free_port)
URL=https://127.0.0.1:$PORT/hub/DeliveryService

write_conf() {
    cat <<EOF
# SPDX-License-Identifier: GPL-2.0-or-later
country = "BO";
listen = { address = "127.0.0.1"; port = $PORT; };
tls = { cert = "ca/server.crt"; key = "ca/server.key"; ca = "ca/ca.crt"; };
store = "ecert.db";
schema_dir = "$ROOT/wsdl/spscert";
limits = { max_request_bytes = 1048576; xml_depth = 64; max_pull = 50; recv_timeout = 10; send_timeout = 10; idle_timeout = 10; workers = 4; max_connections = 64; };
partners = (
  { id = "bo-issuer"; country = "BO"; roles = [ "submit" ]; fingerprint = "$1"; },
  { id = "bo-import"; country = "BO"; roles = [ "pull" ]; fingerprint = "$(cat "$CA/bo-import.fp")"; },
  { id = "ec-nppo"; country = "EC"; roles = [ "submit", "pull" ]; fingerprint = "$(cat "$CA/ec-nppo.fp")"; },
  { id = "pe-nppo"; country = "PE"; roles = [ "submit", "pull" ]; fingerprint = "$(cat "$CA/pe-nppo.fp")"; }
);
EOF
}

write_conf "sha256:not-a-fingerprint" >"$T/bad.conf"
OUT=$("$ECERTD" -t -c "$T/bad.conf" 2>&1); RC=$?
check "ecertd -t refuses a configuration with a malformed fingerprint, naming it" \
    eval '[ "$RC" -ne 0 ] && [ "$RC" -lt 126 ] && printf "%s" "$OUT" | grep -qi "fingerprint"'

write_conf "$(cat "$CA/bo-issuer.fp")" >"$CONF"
OUT=$("$ECERTD" -t -c "$CONF" 2>&1); RC=$?
check "ecertd -t: configuration OK" eval '[ "$RC" -eq 0 ] && printf "%s" "$OUT" | grep -q "configuration OK"'

: >"$DLOG"
if start_daemon; then
    ok "ecertd -f listens on 127.0.0.1:$PORT"
else
    not_ok "ecertd -f listens on 127.0.0.1:$PORT" "not listening after 10 s"
    finish
fi

# ==== service-wide operations ===============================================

hc ec-nppo nppos
countries=$(printf '%s\n' "$OUT" | sed -n 's/^nppo country=\([^ ]*\).*/\1/p' | sort -u | tr '\n' ' ')
check "GetActiveNppos (hub client) answers" test "$RC" -eq 0
assert_eq "GetActiveNppos lists exactly the configured countries" "BO EC PE " "$countries"

for f in sgcan-intercom-template.xml sgcan-intercom-template-annotated.xml \
         agrocalidad-qa-BO-to-EC-491412337BO.xml; do
    hc bo-issuer validate "$SAMPLES/$f"
    check "ValidatePhytoXML: $f is valid" eval '[ "$RC" -eq 0 ] && printf "%s" "$OUT" | grep -qx "valid=yes"'
done
for f in sgcan-intercom-template-xmldsig-signed.xml mattilsynet-test-SPSCertificateContent.xml; do
    hc bo-issuer validate "$SAMPLES/$f"
    check "ValidatePhytoXML: $f is invalid, with a SEVERE result" \
        eval '[ "$RC" -eq 0 ] && printf "%s" "$OUT" | grep -qx "valid=no" && printf "%s" "$OUT" | grep -q "^result level=SEVERE field=..* msg=.."'
done

for op in GetTreatmentTypes DeliverPhytoEnvelope GetProfile; do
    hc ec-nppo raw "$op"
    check "$op (hub client) -> Client fault 'not supported by this gateway'" \
        eval 'is_fault Client && printf "%s" "$OUT" | grep -q "not supported by this gateway"'
done
payload unsupported-operation.xml >"$W/unsupported.xml"
post ec-nppo GetTreatmentTypes "$W/unsupported.xml"
check "GetTreatmentTypes (curl) -> SOAP 1.1 fault 'not supported by this gateway'" \
    eval 'post_is_fault Client && printf "%s" "$OUT" | grep -q "not supported by this gateway"'

# ==== TLS and partner identification ========================================

"$HUBCLIENT" -u "$URL" --cacert "$CA/ca.crt" --no-cert headers >"$W/nocert.out" 2>&1; RC=$?
OUT=$(cat "$W/nocert.out")
check "no client certificate (hub client) -> refused at transport level (exit 5)" \
    eval '[ "$RC" -eq 5 ] && ! grep -q "^header " "$W/nocert.out"'
OUT=$(curl -sS --max-time 20 --cacert "$CA/ca.crt" -H 'Content-Type: text/xml; charset=utf-8' \
    -H 'SOAPAction: "http://ephyto.ippc.int/IDeliveryService/GetImportEnvelopeHeaders"' \
    --data-binary @<(payload get-import-envelope-headers.xml) "$URL" 2>&1); RC=$?
check "no client certificate (curl) -> refused" \
    eval '[ "$RC" -ne 0 ] && ! printf "%s" "$OUT" | grep -q "Envelope"'

hc_as "$CA2/intruder.crt" "$CA2/intruder.key" headers
check "certificate from another CA (hub client) -> refused at transport level" \
    eval '[ "$RC" -eq 5 ] && ! printf "%s" "$OUT" | grep -q "^header "'
hc_as "$CA2/ec-nppo.crt" "$CA2/ec-nppo.key" headers
check "ec-nppo certificate from another CA -> refused" \
    eval '[ "$RC" -eq 5 ] && ! printf "%s" "$OUT" | grep -q "^header "'
OUT=$(curl -sS --max-time 20 --cacert "$CA/ca.crt" --cert "$CA2/intruder.crt" --key "$CA2/intruder.key" \
    -H 'Content-Type: text/xml; charset=utf-8' --data-binary @<(payload get-import-envelope-headers.xml) \
    "$URL" 2>&1); RC=$?
check "certificate from another CA (curl) -> refused" \
    eval '[ "$RC" -ne 0 ] && ! printf "%s" "$OUT" | grep -q "Envelope"'

hc unknown headers
check "unknown certificate of the right CA -> fault or closed, no data" \
    eval '{ [ "$RC" -eq 4 ] || [ "$RC" -eq 5 ]; } && ! printf "%s" "$OUT" | grep -q "^header "'
S0=$(store_state)
hc unknown deliver "$SAMPLE" BO EC 851 70 491412337BO
check "unknown certificate cannot hand in" eval '[ "$RC" -eq 4 ] || [ "$RC" -eq 5 ]'
assert_eq "store unchanged after the unknown partner's hand-in" "$S0" "$(store_state)"

hc ec-nppo --tls1.1 headers
check "TLS 1.1 (hub client) -> refused by the server" \
    eval '[ "$RC" -eq 5 ] && printf "%s" "$OUT" | grep -Eqi "protocol version|wrong version|unsupported protocol|handshake failure|connection closed"'
OUT=$(curl -sS --max-time 20 --tlsv1.1 --tls-max 1.1 --ciphers 'DEFAULT:@SECLEVEL=0' \
    --cacert "$CA/ca.crt" --cert "$CA/ec-nppo.crt" --key "$CA/ec-nppo.key" \
    -H 'Content-Type: text/xml; charset=utf-8' --data-binary @<(payload get-import-envelope-headers.xml) \
    "$URL" 2>&1); RC=$?
check "TLS 1.1 (curl) -> refused" eval '[ "$RC" -ne 0 ] && ! printf "%s" "$OUT" | grep -q "Envelope"'
check "daemon still running after the refused connections" kill -0 "$DPID"

# ==== hand-in ================================================================

# variant NUMBER OUTFILE: the BO->EC sample with another certificate number.
variant() {
    sed "s#<ram:ID>491412337BO</ram:ID>#<ram:ID>$1</ram:ID>#" "$SAMPLE" >"$2"
}
swap_countries() {  # swap_countries EXPORT IMPORT IN OUT
    sed -e "/<ram:ExportSPSCountry>/,/<\/ram:ExportSPSCountry>/ s#<ram:ID>BO</ram:ID>#<ram:ID>$1</ram:ID>#" \
        -e "/<ram:ImportSPSCountry>/,/<\/ram:ImportSPSCountry>/ s#<ram:ID>EC</ram:ID>#<ram:ID>$2</ram:ID>#" "$3" >"$4"
}

S0=$(store_state)
hc bo-issuer deliver "$SAMPLE" BO EC 851 70 491412337BO
T1=$(tracking_of "$OUT")
check "DeliverEnvelope (hub client) BO->EC sample by bo-issuer -> tracking number" \
    eval '[ "$RC" -eq 0 ] && [ -n "$T1" ]'
assert_ne "store changed by the hand-in" "$S0" "$(store_state)"

hc bo-issuer deliver "$SAMPLE" BO EC 851 70 491412337BO
assert_eq "same certificate handed in again -> same tracking number" "$T1" "$(tracking_of "$OUT")"

sed 's#<ram:Name>Santa Cruz</ram:Name>#<ram:Name>Santa Cruz de la Sierra</ram:Name>#' "$SAMPLE" >"$W/changed.xml"
hc bo-issuer deliver "$W/changed.xml" BO EC 851 70 491412337BO
T1B=$(tracking_of "$OUT")
check "changed content, same number -> accepted" eval '[ "$RC" -eq 0 ] && [ -n "$T1B" ]'
assert_ne "changed content, same number -> a new tracking number" "$T1B" "$T1"

variant 491412338BO "$W/v2.xml"
hc bo-issuer deliver "$W/v2.xml" BO EC 851 70 491412338BO --validate
T2=$(tracking_of "$OUT")
check "ValidateAndDeliverEnvelope (hub client) -> tracking number" eval '[ "$RC" -eq 0 ] && [ -n "$T2" ]'

variant 491412339BO "$W/v3.xml"
hc bo-issuer deliver "$W/v3.xml" BO EC 851 70 491412339BO --base64
T3=$(tracking_of "$OUT")
check "DeliverEnvelope with base64 Content -> tracking number" eval '[ "$RC" -eq 0 ] && [ -n "$T3" ]'

variant 491412340BO "$W/v4.xml"
deliver_body BO EC 851 70 491412340BO "$W/v4.xml" >"$W/deliver-v4.xml"
post bo-issuer DeliverEnvelope "$W/deliver-v4.xml"
T4=$(printf '%s' "$OUT" | grep -o '<[A-Za-z0-9_]*:\{0,1\}hubDeliveryNumber>[^<]*' | sed 's/.*>//' | head -n1)
check "DeliverEnvelope (curl, README form) -> HTTP 200 with hubDeliveryNumber" \
    eval '[ "$HTTP" = 200 ] && [ -n "$T4" ] && ! post_is_fault'

nums="$T1 $T1B $T2 $T3 $T4"
distinct=$(printf '%s\n' $nums | sort -u | wc -l)
assert_eq "five distinct tracking numbers" 5 "$distinct"

# --- refused hand-ins: each a Client fault naming the field; store unchanged
S0=$(store_state)
hc bo-issuer deliver "$SAMPLE" BO EC 851 70 WRONG-NUMBER-1
check "header NPPOCertificateNumber != SPSExchangedDocument/ID -> Client fault naming it" \
    eval 'is_fault Client && printf "%s" "$OUT" | grep -q "NPPOCertificateNumber"'
hc bo-issuer deliver "$SAMPLE" BO PE 851 70 491412337BO
check "header To != ImportSPSCountry/ID -> Client fault naming To" \
    eval 'is_fault Client && printf "%s" "$OUT" | grep -Eq "To|ImportSPSCountry"'
hc bo-issuer deliver "$SAMPLE" BO EC 657 70 491412337BO
check "header CertificateType != TypeCode -> Client fault naming it" \
    eval 'is_fault Client && printf "%s" "$OUT" | grep -Eq "CertificateType|TypeCode"'
hc bo-issuer deliver "$SAMPLE" BO EC 851 39 491412337BO
check "header CertificateStatus != StatusCode -> Client fault naming it" \
    eval 'is_fault Client && printf "%s" "$OUT" | grep -Eq "CertificateStatus|StatusCode"'
hc bo-issuer deliver "$SAMPLES/sgcan-intercom-template.xml" CO PE 851 70 123456789CO
check "bo-issuer hands in a CO->PE certificate -> Client fault naming From" \
    eval 'is_fault Client && printf "%s" "$OUT" | grep -Eq "From"'
hc bo-import deliver "$W/v2.xml" BO EC 851 70 491412338BO
check "bo-import (pull role only) cannot hand in -> Client fault" eval 'is_fault Client'
hc ec-nppo deliver "$SAMPLE" BO EC 851 70 491412337BO
check "ec-nppo hands in with From=BO (not its country) -> Client fault" eval 'is_fault Client'
swap_countries EC PE "$SAMPLE" "$W/ec-pe.xml"
hc ec-nppo deliver "$W/ec-pe.xml" EC PE 851 70 491412337BO
check "ec-nppo hands in EC->PE (foreign to foreign) -> Client fault" eval 'is_fault Client'
variant 491412350BO "$W/v50.xml"
sed '/<ram:ConsignorSPSParty>/,/<\/ram:ConsignorSPSParty>/d' "$W/v50.xml" >"$W/schema-bad.xml"
hc bo-issuer deliver "$W/schema-bad.xml" BO EC 851 70 491412350BO
check "schema failure (ConsignorSPSParty removed) -> Client fault naming the element or line" \
    eval 'is_fault Client && printf "%s" "$OUT" | grep -Eq "ConsigneeSPSParty|ConsignorSPSParty|line"'
assert_eq "store unchanged by the refused hand-ins" "$S0" "$(store_state)"

# --- a foreign partner hands in to the gateway's country
swap_countries EC BO "$SAMPLE" "$W/ec-bo.xml"
sed -i 's#<ram:ID>491412337BO</ram:ID>#<ram:ID>EC-2025-0001</ram:ID>#' "$W/ec-bo.xml"
hc ec-nppo deliver "$W/ec-bo.xml" EC BO 851 70 EC-2025-0001
T5=$(tracking_of "$OUT")
check "ec-nppo hands in EC->BO -> tracking number" eval '[ "$RC" -eq 0 ] && [ -n "$T5" ]'

# ==== pull side ==============================================================

hc ec-nppo headers
H=$OUT
check "GetImportEnvelopeHeaders (ec-nppo) answers" test "$RC" -eq 0
assert_match "headers: exact header line for the first hand-in" \
    "^header tracking=$T1 from=BO to=EC type=851 status=70 number=491412337BO$" "$H"
ids=$(printf '%s\n' "$H" | sed -n 's/^header tracking=\([^ ]*\).*/\1/p' | sort | tr '\n' ' ')
assert_eq "headers (ec-nppo): exactly the five waiting envelopes" \
    "$(printf '%s\n' $nums | sort | tr '\n' ' ')" "$ids"
assert_nomatch "headers (ec-nppo): not the EC->BO envelope" "tracking=$T5 " "$H"

hc ec-nppo underdelivery
ids=$(printf '%s\n' "$OUT" | sed -n 's/^header tracking=\([^ ]*\).*/\1/p' | sort | tr '\n' ' ')
assert_eq "GetUnderDeliveryEnvelope (ec-nppo): the five waiting envelopes" \
    "$(printf '%s\n' $nums | sort | tr '\n' ' ')" "$ids"

mkdir -p "$W/pull1"
hc ec-nppo pull --out "$W/pull1"
check "PULLImportEnvelope (ec-nppo) returns five envelopes" \
    eval '[ "$RC" -eq 0 ] && [ "$(printf "%s\n" "$OUT" | grep -c "^envelope ")" -eq 5 ]'
check "pulled Content of the sample is byte-identical" cmp -s "$SAMPLE" "$W/pull1/$T1.content"
check "pulled Content of the changed version is byte-identical" cmp -s "$W/changed.xml" "$W/pull1/$T1B.content"
check "pulled Content (ValidateAndDeliver) is byte-identical" cmp -s "$W/v2.xml" "$W/pull1/$T2.content"
check "pulled Content (curl hand-in) is byte-identical" cmp -s "$W/v4.xml" "$W/pull1/$T4.content"
b64=$(openssl base64 -A <"$W/v3.xml")
check "pulled Content of the base64 hand-in is the document or its base64 as sent" \
    eval 'cmp -s "$W/v3.xml" "$W/pull1/$T3.content" || [ "$(cat "$W/pull1/$T3.content")" = "$b64" ]'

hc ec-nppo pullone "$T2" --out "$W/one-t2.xml"
check "PULLSingleImportEnvelope (ec-nppo) -> Content byte-identical" \
    eval '[ "$RC" -eq 0 ] && cmp -s "$W/v2.xml" "$W/one-t2.xml"'

hc bo-import headers
ids=$(printf '%s\n' "$OUT" | sed -n 's/^header tracking=\([^ ]*\).*/\1/p' | tr '\n' ' ')
assert_eq "headers (bo-import): only the EC->BO envelope" "$T5 " "$ids"
hc bo-import pullone "$T5" --out "$W/one-t5.xml"
check "bo-import pulls the EC->BO envelope byte-identical" \
    eval '[ "$RC" -eq 0 ] && cmp -s "$W/ec-bo.xml" "$W/one-t5.xml"'

hc bo-issuer track "$T1"
assert_match "tracking by the sender: PendingDelivery" "^tracking=$T1 state=PendingDelivery" "$OUT"
hc ec-nppo track "$T1"
assert_match "tracking by the addressee: PendingDelivery" "^tracking=$T1 state=PendingDelivery" "$OUT"

# --- another partner sees nothing of it
S0=$(store_state)
hc pe-nppo headers
check "pe-nppo: headers empty" eval '[ "$RC" -eq 0 ] && ! printf "%s" "$OUT" | grep -q "^header "'
hc pe-nppo underdelivery
check "pe-nppo: under delivery empty" eval '[ "$RC" -eq 0 ] && ! printf "%s" "$OUT" | grep -q "^header "'
hc pe-nppo pull
check "pe-nppo: pull empty" eval '[ "$RC" -eq 0 ] && ! printf "%s" "$OUT" | grep -q "^envelope "'
hc pe-nppo pullone "$T1"
check "pe-nppo: PULLSingleImportEnvelope of ec-nppo's envelope -> fault" eval 'is_fault && ! printf "%s" "$OUT" | grep -q "^envelope "'
hc pe-nppo ack "$T1"
check "pe-nppo: acknowledge ec-nppo's envelope -> fault" eval 'is_fault'
# The brief asks for a fault; the hub itself answers HUBTrackingInfo
# EnvelopeNotExists.  Either is accepted, as long as "not yours" and "does
# not exist" cannot be told apart.
not_found() { is_fault Client || printf '%s' "$OUT" | grep -Eq '^tracking=[^ ]* state=EnvelopeNotExists$'; }
hc pe-nppo track "$T1"
check "pe-nppo: tracking info of ec-nppo's envelope -> fault or EnvelopeNotExists" not_found
r_other=$(printf '%s' "$OUT" | sed "s/$T1/#/g")
MADE=9${T1}77
hc pe-nppo track "$MADE"
r_none=$(printf '%s' "$OUT" | sed "s/$MADE/#/g")
assert_eq "pe-nppo: 'not yours' reads exactly like 'does not exist'" "$r_none" "$r_other"
hc pe-nppo pullone "$T2"
r_other=$(printf '%s' "$OUT" | sed "s/$T2/#/g")
hc pe-nppo pullone "$MADE"
r_none=$(printf '%s' "$OUT" | sed "s/$MADE/#/g")
assert_eq "pe-nppo: pullone 'not yours' reads exactly like 'does not exist'" "$r_none" "$r_other"
assert_eq "store unchanged by pe-nppo's attempts" "$S0" "$(store_state)"

# --- not acknowledged -> offered again
mkdir -p "$W/pull2"
hc ec-nppo pull --out "$W/pull2"
check "not acknowledged -> offered again (five envelopes)" \
    eval '[ "$RC" -eq 0 ] && [ "$(printf "%s\n" "$OUT" | grep -c "^envelope ")" -eq 5 ]'
check "offered again with the same Content" cmp -s "$SAMPLE" "$W/pull2/$T1.content"

# --- acknowledgements
hc ec-nppo ack "$T1"
check "AcknowledgeEnvelopeReceipt (ec-nppo) succeeds" test "$RC" -eq 0
hc ec-nppo ack "$T1"
check "AcknowledgeEnvelopeReceipt again -> succeeds (idempotent)" test "$RC" -eq 0
hc ec-nppo headers
assert_nomatch "acknowledged envelope no longer in headers" "tracking=$T1 " "$OUT"
assert_match "the other envelopes still in headers" "tracking=$T1B " "$OUT"
hc ec-nppo pull
assert_nomatch "acknowledged envelope no longer pulled" "tracking=$T1 " "$OUT"
hc bo-issuer track "$T1"
assert_match "tracking by the sender after ack: Delivered" "^tracking=$T1 state=Delivered( |$)" "$OUT"
hc ec-nppo track "$T1"
assert_match "tracking by the addressee after ack: Delivered" "^tracking=$T1 state=Delivered( |$)" "$OUT"

hc ec-nppo advack "$T2" "certificate number printed twice"
check "AdvancedAcknowledgeEnvelopeReceipt succeeds (hub's SOAPAction quirk)" test "$RC" -eq 0
hc bo-issuer track "$T2"
assert_match "advanced acknowledgement -> DeliveredWithWarnings" "^tracking=$T2 state=DeliveredWithWarnings" "$OUT"
hc ec-nppo failack "$T4" "cannot read the attachment"
check "AcknowledgeFailedEnvelopeReceipt succeeds" test "$RC" -eq 0
hc bo-issuer track "$T4"
assert_match "failed acknowledgement -> DeliveredNotReadable" "^tracking=$T4 state=DeliveredNotReadable" "$OUT"
hc ec-nppo headers
ids=$(printf '%s\n' "$OUT" | sed -n 's/^header tracking=\([^ ]*\).*/\1/p' | sort | tr '\n' ' ')
assert_eq "after three acknowledgements only two envelopes wait" \
    "$(printf '%s\n' "$T1B" "$T3" | sort | tr '\n' ' ')" "$ids"

hc ec-nppo ack "$MADE"
check "acknowledge an unknown tracking number -> Client fault" eval 'is_fault Client'
hc ec-nppo pullone "$MADE"
check "pull an unknown tracking number -> Client fault" eval 'is_fault Client'
hc ec-nppo track "$MADE"
check "tracking info of an unknown tracking number -> Client fault or EnvelopeNotExists" not_found

# ==== curl, as in the README ================================================

payload get-import-envelope-headers.xml >"$W/headers.xml"
OUT=$(cd "$W" && curl -sS --max-time 30 --cacert "$CA/ca.crt" --cert "$CA/ec-nppo.crt" --key "$CA/ec-nppo.key" \
    -H 'Content-Type: text/xml; charset=utf-8' \
    -H 'SOAPAction: "http://ephyto.ippc.int/IDeliveryService/GetImportEnvelopeHeaders"' \
    --data @headers.xml "https://127.0.0.1:$PORT/hub/DeliveryService" 2>&1); RC=$?
check "README curl GetImportEnvelopeHeaders -> SOAP envelope with the waiting header" \
    eval '[ "$RC" -eq 0 ] && printf "%s" "$OUT" | grep -q "Envelope" && printf "%s" "$OUT" | grep -q "hubDeliveryNumber>$T3<"'

# ==== hostile input ==========================================================

S0=$(store_state)
C0=$(cert_count)

hostile() {  # hostile DESC ACTION BODY-FILE [code]
    post bo-issuer "$2" "$3"
    if post_refused "${4:-}"; then
        if printf '%s' "$OUT" | grep -q 'root:'; then
            not_ok "$1" "/etc/passwd content in the answer"
        else
            ok "$1"
        fi
    else
        not_ok "$1" "HTTP $HTTP rc=$RC: $OUT"
    fi
}

payload malformed-content.xml 491412399BO >"$W/h-malformed.xml"
hostile "malformed XML inside Content -> Client fault" DeliverEnvelope "$W/h-malformed.xml" Client

deliver_body BO EC 851 70 491412350BO "$W/schema-bad.xml" >"$W/h-schema.xml"
hostile "schema failure inside Content (curl) -> Client fault" DeliverEnvelope "$W/h-schema.xml" Client
check "schema fault names the element or the line" \
    eval 'printf "%s" "$OUT" | grep -Eq "faultstring>[^<]*(ConsigneeSPSParty|ConsignorSPSParty|line)"'

variant 491412341BO "$W/v5.xml"
deliver_body BO EC 851 70 491412999BO "$W/v5.xml" >"$W/h-mismatch.xml"
hostile "header NPPOCertificateNumber mismatch (curl) -> Client fault" DeliverEnvelope "$W/h-mismatch.xml" Client
check "mismatch fault carries detail HubWebException/message" \
    eval 'printf "%s" "$OUT" | grep -Eq "<([A-Za-z0-9_]+:)?HubWebException[ >]" && printf "%s" "$OUT" | grep -Eq "<([A-Za-z0-9_]+:)?message>[^<]"'

# 2 MiB body (limit 1 MiB): a comment of padding before the operation.
deliver_body BO EC 851 70 491412342BO "$W/v5.xml" >"$W/h-big-t.xml"
body=$(cat "$W/h-big-t.xml")
{
    printf '%s<!-- ' "${body%%<ns:DeliverEnvelope*}"
    head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' 'x'
    printf ' -->%s\n' "<ns:DeliverEnvelope${body#*<ns:DeliverEnvelope}"
} >"$W/h-big.xml"
big=$(stat -c %s "$W/h-big.xml")
check "oversized request body is over 2 MiB" test "$big" -gt $((2 * 1024 * 1024))
nlog=$(wc -l <"$DLOG")
hostile "body over max_request_bytes -> fault, HTTP 413 or closed" DeliverEnvelope "$W/h-big.xml"
newlog=$(log_since "$nlog")
# Whether curl still reads the answer after the daemon stops reading is a
# race; the daemon's own log line says what it answered.
WHY="HTTP $HTTP rc=$RC answer: $(printf '%s' "$OUT" | grep -o 'faultstring>[^<]*') log: $newlog"
check "oversized body: the refusal says why (size / limit)" \
    eval '[ "$HTTP" = 413 ] || { ! post_is_fault || printf "%s" "$OUT" | grep -Eqi "faultstring>[^<]*(large|size|bytes|limit|max_request)"; } && ! printf "%s" "$newlog" | grep -q "not supported"'

sed '1a <!DOCTYPE rsm:SPSCertificate [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>' "$SAMPLE" \
    | sed 's#<ram:ID>491412337BO</ram:ID>#<ram:ID>\&xxe;</ram:ID>#' >"$W/xxe-doc.xml"
deliver_body BO EC 851 70 491412337BO "$W/xxe-doc.xml" >"$W/h-xxe.xml"
hostile "XXE (SYSTEM file:///etc/passwd) inside Content -> Client fault" DeliverEnvelope "$W/h-xxe.xml" Client
deliver_body BO EC 851 70 491412337BO "$W/xxe-doc.xml" ValidateAndDeliverEnvelope >"$W/h-xxe2.xml"
hostile "XXE inside Content (ValidateAndDeliverEnvelope) -> Client fault" ValidateAndDeliverEnvelope "$W/h-xxe2.xml" Client
{
    printf '<ns:ValidatePhytoXML xmlns:ns="http://ephyto.ippc.int/"><ns:ePhytoXML>'
    xml_escape "$W/xxe-doc.xml"
    printf '</ns:ePhytoXML></ns:ValidatePhytoXML>'
} >"$W/xxe-validate-body"
{
    printf '<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    cat "$W/xxe-validate-body"
    printf '</soap:Body></soap:Envelope>\n'
} >"$W/h-xxe3.xml"
post bo-issuer ValidatePhytoXML "$W/h-xxe3.xml"
check "XXE inside ValidatePhytoXML -> not valid (or fault), no /etc/passwd" \
    eval '! printf "%s" "$OUT" | grep -q "root:" && { post_is_fault || printf "%s" "$OUT" | grep -q "SEVERE"; }'

{
    sed -n 1p "$SAMPLE"
    echo '<!DOCTYPE rsm:SPSCertificate ['
    echo ' <!ENTITY a "aaaaaaaaaa">'
    prev=a
    for n in b c d e f g h i j; do
        printf ' <!ENTITY %s "%s">\n' "$n" "$(printf "&$prev;%.0s" 1 2 3 4 5 6 7 8 9 10)"
        prev=$n
    done
    echo ']>'
    sed '1d' "$SAMPLE" | sed 's#<ram:Name>Santa Cruz</ram:Name>#<ram:Name>\&j;</ram:Name>#'
} >"$W/laughs-doc.xml"
deliver_body BO EC 851 70 491412337BO "$W/laughs-doc.xml" >"$W/h-laughs.xml"
t0=$(date +%s)
hostile "billion laughs inside Content -> Client fault" DeliverEnvelope "$W/h-laughs.xml" Client
check "billion laughs answered within 10 s" test $(( $(date +%s) - t0 )) -le 10

payload xxe-envelope.xml >"$W/h-xxe-env.xml"
hostile "DOCTYPE/XXE in the SOAP envelope (tracking info) -> fault" GetEnvelopeTrackingInfo "$W/h-xxe-env.xml"
payload xxe-envelope-deliver.xml >"$W/h-xxe-env2.xml"
hostile "DOCTYPE/XXE in the SOAP envelope (hand-in) -> fault" DeliverEnvelope "$W/h-xxe-env2.xml"
payload doctype-envelope.xml >"$W/h-doctype-env.xml"
post ec-nppo GetImportEnvelopeHeaders "$W/h-doctype-env.xml"
check "a DOCTYPE in the SOAP envelope of an otherwise valid request -> fault" \
    eval 'post_is_fault && ! printf "%s" "$OUT" | grep -q "EnvelopeHeader"'
payload billion-laughs-envelope.xml >"$W/h-laughs-env.xml"
hostile "billion laughs in the SOAP envelope -> fault" GetEnvelopeTrackingInfo "$W/h-laughs-env.xml"

{
    printf '<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><ns:GetEnvelopeTrackingInfo xmlns:ns="http://ephyto.ippc.int/"><ns:hubTrackingNumber>'
    for i in $(seq 1 5000); do printf '<a>'; done
    for i in $(seq 1 5000); do printf '</a>'; done
    printf '</ns:hubTrackingNumber></ns:GetEnvelopeTrackingInfo></soap:Body></soap:Envelope>\n'
} >"$W/h-deep.xml"
hostile "5000-deep nesting in the SOAP envelope -> fault" GetEnvelopeTrackingInfo "$W/h-deep.xml"

# Bodies that are not a SOAP envelope: a prompt fault (or HTTP 4xx), not
# a connection held open until the receive timeout.
printf 'this is not XML at all\r\n' >"$W/h-garbage.xml"
printf '<notsoap xmlns="urn:x"/>' >"$W/h-notsoap.xml"
for g in garbage notsoap; do
    CURL_MAX=5 post bo-issuer DeliverEnvelope "$W/h-$g.xml"
    check "a body that is $g -> prompt fault or HTTP 4xx (within 5 s)" \
        eval 'post_is_fault || [ "${HTTP:-000}" -ge 400 -a "${HTTP:-000}" -lt 500 ]'
done

assert_eq "store unchanged by all hostile requests" "$S0" "$(store_state)"
assert_eq "certificate count unchanged by all hostile requests" "$C0" "$(cert_count)"
hc ec-nppo headers
check "daemon still answers after the hostile requests" test "$RC" -eq 0
if grep -q 'root:x:0:0' "$DLOG"; then
    not_ok "/etc/passwd content never reaches the daemon log" "found in $DLOG"
else
    ok "/etc/passwd content never reaches the daemon log"
fi

# ==== durability: kill -9 after answered hand-ins ============================

mkdir -p "$W/dur"
for i in $(seq 1 20); do
    variant "$(printf '5000%05dBO' "$i")" "$W/dur/$i.xml"
done
for lane in 0 1 2 3; do
    (
        for i in $(seq $((lane + 1)) 4 20); do
            "$HUBCLIENT" -u "$URL" --cert "$CA/bo-issuer.crt" --key "$CA/bo-issuer.key" --cacert "$CA/ca.crt" \
                deliver "$W/dur/$i.xml" BO EC 851 70 "$(printf '5000%05dBO' "$i")" >"$W/dur/$i.out" 2>&1
            echo $? >"$W/dur/$i.rc"
        done
    ) &
done
for j in $(jobs -p); do [ "$j" = "$DPID" ] || wait "$j"; done
answered=0
for i in $(seq 1 20); do
    if [ "$(cat "$W/dur/$i.rc")" = 0 ] && [ -n "$(tracking_of "$(cat "$W/dur/$i.out")")" ]; then
        answered=$((answered + 1))
    fi
done
assert_eq "20 concurrent hand-ins all answered with a tracking number" 20 "$answered"

stop_daemon_hard
if start_daemon; then ok "ecertd restarts after kill -9"; else not_ok "ecertd restarts after kill -9" "not listening"; finish; fi

lost=""
for i in $(seq 1 20); do
    tr_no=$(tracking_of "$(cat "$W/dur/$i.out")")
    [ -n "$tr_no" ] || continue
    hc ec-nppo pullone "$tr_no" --out "$W/dur/$i.back"
    if [ "$RC" -ne 0 ] || ! cmp -s "$W/dur/$i.xml" "$W/dur/$i.back"; then lost="$lost $i($tr_no rc=$RC)"; fi
done
assert_eq "every answered hand-in survives kill -9, Content byte-identical" "" "$lost"
hc ec-nppo headers
n=$(printf '%s\n' "$OUT" | grep -c "^header ")
assert_eq "headers after restart: 2 earlier + 20 new waiting envelopes" 22 "$n"
hc bo-issuer track "$T2"
assert_match "acknowledgement state survives kill -9" "state=DeliveredWithWarnings" "$OUT"

# ==== graceful stop with requests in flight =================================

mkdir -p "$W/term"
nlog=$(wc -l <"$DLOG")
lanes=""
for i in $(seq 1 8); do
    variant "$(printf '6000%05dBO' "$i")" "$W/term/$i.xml"
    (
        "$HUBCLIENT" -u "$URL" --cert "$CA/bo-issuer.crt" --key "$CA/bo-issuer.key" --cacert "$CA/ca.crt" \
            deliver "$W/term/$i.xml" BO EC 851 70 "$(printf '6000%05dBO' "$i")" >"$W/term/$i.out" 2>&1
        echo $? >"$W/term/$i.rc"
    ) &
    lanes="$lanes $!"
done
for i in $(seq 1 100); do   # until the first of them has been answered
    log_since "$nlog" | grep -q "op=DeliverEnvelope" && break
    sleep 0.02
done
kill -TERM "$DPID"
if wait_gone "$DPID" 10; then
    wait "$DPID"; rc=$?
    DPID=
    assert_eq "SIGTERM with hand-ins in flight -> ecertd exits 0" 0 "$rc"
else
    not_ok "SIGTERM with hand-ins in flight -> ecertd exits 0" "still running after 10 s"
    kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
fi
for j in $lanes; do wait "$j"; done
odd=""; answered=0
for i in $(seq 1 8); do
    case "$(cat "$W/term/$i.rc")" in
    0) answered=$((answered + 1)) ;;
    5) ;;                                   # refused: the daemon was gone
    *) odd="$odd $i:$(cat "$W/term/$i.out")" ;;
    esac
done
assert_eq "clients during shutdown: answered in full or refused, nothing half-done" "" "$odd"
check "at least one hand-in was answered while stopping" test "$answered" -ge 1

if start_daemon; then ok "ecertd starts again after SIGTERM"; else not_ok "ecertd starts again after SIGTERM" "not listening"; finish; fi
lost=""
for i in $(seq 1 8); do
    tr_no=$(tracking_of "$(cat "$W/term/$i.out")")
    [ -n "$tr_no" ] || continue
    hc ec-nppo pullone "$tr_no" --out "$W/term/$i.back"
    if [ "$RC" -ne 0 ] || ! cmp -s "$W/term/$i.xml" "$W/term/$i.back"; then lost="$lost $i($tr_no rc=$RC)"; fi
done
assert_eq "every hand-in answered during shutdown is stored, byte-identical" "" "$lost"

kill -TERM "$DPID"
if wait_gone "$DPID" 10; then
    wait "$DPID"; rc=$?
    DPID=
    assert_eq "SIGTERM (idle) -> ecertd exits 0" 0 "$rc"
else
    not_ok "SIGTERM (idle) -> ecertd exits 0" "still running after 10 s"
fi
n=$(grep -c "partner=" "$DLOG")
check "daemon log: one line per request (at least 100 request lines)" test "$n" -ge 100

# ==== the operator CLI's own suite ==========================================

if [ -f "$HERE/test_ecertctl.sh" ]; then
    OUT=$(cd "$ROOT" && bash "$HERE/test_ecertctl.sh" 2>&1); RC=$?
    printf '%s\n' "$OUT" | tail -n 30 | sed 's/^/# ecertctl: /'
    check "tests/integration/test_ecertctl.sh" test "$RC" -eq 0
fi

finish
