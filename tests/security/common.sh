# SPDX-License-Identifier: GPL-2.0-or-later
#
# common.sh - shared set-up of the security suite (sourced by authz.sh and
# hostile.sh): temporary directory, certificates (including an expired one
# and one from a foreign CA for a configured partner's key), configuration,
# daemon start/stop and cleanup of every process started.
#
# Uses the helpers of tests/integration/lib.sh (ok/not_ok/check, free_port,
# wait_port, hc, post, store_state, ...), which it sources.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SEC=$ROOT/tests/security
ECERTD=${ECERTD:-$ROOT/build/ecertd}
ECERTCTL=${ECERTCTL:-$ROOT/build/ecertctl}
HUBCLIENT=${HUBCLIENT:-$ROOT/build/hubclient}
SAMPLES=$(cd "$ROOT/../shared/samples/spscert" 2>/dev/null && pwd)
SAMPLE=$SAMPLES/agrocalidad-qa-BO-to-EC-491412337BO.xml

. "$ROOT/tests/integration/lib.sh"

# SUITE (the script's name) must be set by the caller.
bail() {
    echo "$SUITE: $*" >&2
    echo "$SUITE: 0 passed, 1 failed"
    exit 1
}

for bin in "$ECERTD" "$ECERTCTL" "$HUBCLIENT"; do
    [ -x "$bin" ] || bail "$bin missing (make all build/hubclient)"
done
for tool in curl openssl ss sqlite3 cc; do
    command -v "$tool" >/dev/null || bail "$tool missing"
done
[ -s "$SAMPLE" ] || bail "sample $SAMPLE missing"

T=$(mktemp -d "${TMPDIR:-/tmp}/ecert-sec.XXXXXX")
CA=$T/ca
CA2=$T/ca2
CONF=$T/ecertd.conf
DB=$T/ecert.db
DLOG=$T/ecertd.log
W=$T/work
mkdir -p "$W"
DPID=
BGPIDS=""

# Every background process this suite starts is registered here.
bg_add() { BGPIDS="$BGPIDS $1"; }

cleanup() {
    local p
    for p in $BGPIDS; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in $BGPIDS; do
        wait_gone "$p" 5 || kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    daemon_stop
    if [ "${KEEP:-0}" = 1 ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

finish() {
    if [ "$FAIL" -gt 0 ]; then daemon_log_tail 40; fi
    echo "$SUITE: $PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
    exit $?
}

# ---- helper binary ------------------------------------------------------------

# HOSTILE_CLIENT may point at a prebuilt tests/security/hostile_client.c.
hostile_client_build() {
    if [ -n "${HOSTILE_CLIENT:-}" ] && [ -x "$HOSTILE_CLIENT" ]; then
        return 0
    fi
    HOSTILE_CLIENT=$T/hostile_client
    cc -O2 -std=c17 -D_GNU_SOURCE -o "$HOSTILE_CLIENT" "$SEC/hostile_client.c" \
        -lssl -lcrypto 2>"$T/hostile_client.log"
}

# ---- certificates ----------------------------------------------------------------

# csr_for KEY SUBJECT OUT: a CSR for an existing key.
csr_for() {
    openssl req -new -key "$1" -subj "$2" -out "$3" 2>/dev/null
}

client_ext() {
    cat <<'EOF'
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyAgreement
extendedKeyUsage = clientAuth
EOF
}

# expired_cert CADIR KEY OUT: a certificate for KEY signed by CADIR's CA,
# valid from 2020-01-01 to 2021-01-01 only (openssl ca sets the dates).
expired_cert() {
    local ca=$1 key=$2 out=$3 d
    d=$(mktemp -d "$T/exp.XXXXXX")
    mkdir -p "$d/new"
    : >"$d/index.txt"
    echo 1000 >"$d/serial"
    cat >"$d/ca.cnf" <<EOF
[ca]
default_ca = dev
[dev]
database = $d/index.txt
new_certs_dir = $d/new
serial = $d/serial
default_md = sha256
policy = any
unique_subject = no
email_in_dn = no
[any]
commonName = supplied
[ext]
$(client_ext)
EOF
    csr_for "$key" "/O=ecert-gateway development/CN=ec-nppo expired" "$d/req.csr" &&
    openssl ca -batch -notext -config "$d/ca.cnf" -cert "$ca/ca.crt" -keyfile "$ca/ca.key" \
        -startdate 20200101000000Z -enddate 20210101000000Z -extensions ext \
        -in "$d/req.csr" -out "$out" >"$d/log" 2>&1
}

# foreign_cert CADIR KEY OUT: a valid certificate for KEY from another CA.
foreign_cert() {
    local ca=$1 key=$2 out=$3
    csr_for "$key" "/O=somebody else/CN=ec-nppo" "$T/foreign.csr" &&
    openssl x509 -req -in "$T/foreign.csr" -days 30 -CA "$ca/ca.crt" -CAkey "$ca/ca.key" \
        -set_serial 4242 -extfile <(client_ext) -out "$out" 2>/dev/null
}

# make_certs: CA (partners + "unknown"), CA2; ec-nppo's own key under an
# expired certificate of the right CA and under a valid certificate of CA2.
make_certs() {
    make_ca "$CA" unknown || return 1
    make_ca "$CA2" || return 1
    expired_cert "$CA" "$CA/ec-nppo.key" "$CA/ec-expired.crt" || return 1
    cp "$CA/ec-nppo.key" "$CA/ec-expired.key"
    foreign_cert "$CA2" "$CA/ec-nppo.key" "$CA/ec-foreign.crt" || return 1
    cp "$CA/ec-nppo.key" "$CA/ec-foreign.key"
    chmod 600 "$CA"/*.key
}

# ---- configuration, daemon ---------------------------------------------------------

write_conf() {
    cat <<EOF
# SPDX-License-Identifier: GPL-2.0-or-later
country = "BO";
listen = { address = "127.0.0.1"; port = $PORT; };
tls = { cert = "ca/server.crt"; key = "ca/server.key"; ca = "ca/ca.crt"; };
store = "ecert.db";
schema_dir = "$ROOT/wsdl/spscert";
limits = { max_request_bytes = ${MAX_REQ:-4194304}; xml_depth = 64; max_pull = 50;
           recv_timeout = 5; send_timeout = 5; idle_timeout = 5;
           workers = 8; max_connections = 256; };
partners = (
  { id = "bo-issuer"; country = "BO"; roles = [ "submit" ]; fingerprint = "$(cat "$CA/bo-issuer.fp")"; },
  { id = "bo-import"; country = "BO"; roles = [ "pull" ]; fingerprint = "$(cat "$CA/bo-import.fp")"; },
  { id = "ec-nppo"; country = "EC"; roles = [ "submit", "pull" ]; fingerprint = "$(cat "$CA/ec-nppo.fp")"; },
  { id = "pe-nppo"; country = "PE"; roles = [ "submit", "pull" ]; fingerprint = "$(cat "$CA/pe-nppo.fp")"; }
);
EOF
}

# daemon_start [WRAPPER...]: ecertd -f on $CONF, optionally under a wrapper
# (strace); DPID is ecertd's own PID, WPID the wrapper's.
daemon_start() {
    local i
    WPID=
    if [ $# -gt 0 ]; then
        "$@" "$ECERTD" -f -c "$CONF" >>"$DLOG" 2>&1 &
        WPID=$!
        DPID=
        for i in $(seq 1 100); do
            DPID=$(ps -o pid= --ppid "$WPID" 2>/dev/null | tr -d ' ' | head -n1)
            [ -n "$DPID" ] && break
            sleep 0.05
        done
    else
        "$ECERTD" -f -c "$CONF" >>"$DLOG" 2>&1 &
        DPID=$!
    fi
    [ -n "$DPID" ] && wait_port "$PORT" 10
}

daemon_stop() {
    local p
    for p in $DPID $WPID; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in $DPID $WPID; do
        wait_gone "$p" 10 || kill -9 "$p" 2>/dev/null
    done
    [ -n "${WPID:-}" ] && wait "$WPID" 2>/dev/null
    [ -n "${DPID:-}" ] && wait "$DPID" 2>/dev/null
    DPID=
    WPID=
}

daemon_rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$DPID/status" 2>/dev/null
}

# ---- certificates to hand in -------------------------------------------------------

# cert_variant NUMBER EXPORT IMPORT MARKER OUT: the BO->EC sample with
# another number, countries, and MARKER as the consignee's name.
cert_variant() {
    sed -e "s#<ram:ID>491412337BO</ram:ID>#<ram:ID>$1</ram:ID>#" \
        -e "/<ram:ExportSPSCountry>/,/<\/ram:ExportSPSCountry>/ s#<ram:ID>BO</ram:ID>#<ram:ID>$2</ram:ID>#" \
        -e "/<ram:ImportSPSCountry>/,/<\/ram:ImportSPSCountry>/ s#<ram:ID>EC</ram:ID>#<ram:ID>$3</ram:ID>#" \
        -e "s#<ram:Name>IMPORTADORA ECUADOR</ram:Name>#<ram:Name>$4</ram:Name>#" "$SAMPLE" >"$5"
}

# now_ms: milliseconds since the epoch.
now_ms() { date +%s%3N; }

# soap_body OP INNER: a SOAP 1.1 request for OP with INNER inside it.
soap_body() {
    printf '<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><ns:%s xmlns:ns="http://ephyto.ippc.int/">%s</ns:%s></soap:Body></soap:Envelope>\n' "$1" "$2" "$1"
}

# raw_post CERT KEY ACTION BODY-FILE OUT-FILE: curl as CERT (or "-" for no
# certificate); response body in OUT-FILE; HTTP status in $HTTP, curl's exit
# status in $RC.
raw_post() {
    local cert=$1 key=$2 action=$3 body=$4 out=$5
    local -a id=()
    [ "$cert" = - ] || id=(--cert "$cert" --key "$key")
    HTTP=$(curl -sS --max-time "${CURL_MAX:-30}" --cacert "$CA/ca.crt" "${id[@]}" \
        -H 'Content-Type: text/xml; charset=utf-8' \
        -H "SOAPAction: \"http://ephyto.ippc.int/IDeliveryService/$action\"" \
        --data-binary @"$body" -o "$out" -w '%{http_code}' "$URL" 2>"$out.err")
    RC=$?
}
