#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# dev-ca.sh DIR [NAME...] - a throwaway certificate authority for
# development and tests.  NEVER use these certificates in production.
#
# Writes into DIR (created mode 700):
#   ca.crt ca.key              the CA (EC P-256, 10 years)
#   server.crt server.key      for localhost (DNS:localhost, IP:127.0.0.1),
#                              extendedKeyUsage serverAuth
#   mail-signer.crt .key       the gateway's S/MIME signing certificate
#                              (emailProtection) for mail push
#   NAME.crt NAME.key NAME.fp  one client certificate per partner
#                              (clientAuth; emailProtection + keyAgreement
#                              so mail can be encrypted to it):
#                              bo-issuer bo-import ec-nppo pe-nppo nl-nppo,
#                              plus every NAME given as argument
# NAME.fp holds "sha256:<64 hex>", the SHA-256 of the certificate's DER
# SubjectPublicKeyInfo: the `fingerprint` form of a partner in ecertd.conf.
# Keys are mode 600.
#
# Idempotent: whatever already exists is kept; only missing certificates
# (and .fp files) are made, signed by the existing CA.
set -euo pipefail

DEFAULT_CLIENTS=(bo-issuer bo-import ec-nppo pe-nppo nl-nppo)
DAYS=3650

die() { echo "dev-ca.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: dev-ca.sh DIR [CLIENT-NAME...]"
dir=$1
shift
clients=("${DEFAULT_CLIENTS[@]}" "$@")

for n in "${clients[@]}"; do
    [[ $n =~ ^[A-Za-z0-9._-]{1,63}$ ]] || die "bad client name '$n'"
    case $n in ca|server|mail-signer) die "client name '$n' is reserved" ;; esac
done

command -v openssl >/dev/null || die "openssl not found"

umask 077
mkdir -p "$dir"
chmod 700 "$dir"

# Nothing to do when the CA, the server and every client are there.
complete=1
for n in ca server mail-signer "${clients[@]}"; do
    [ -s "$dir/$n.crt" ] && [ -s "$dir/$n.key" ] || complete=0
done
for n in "${clients[@]}"; do
    [ -s "$dir/$n.fp" ] || complete=0
done
[ $complete = 1 ] && exit 0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

serial() { echo "0x$(openssl rand -hex 15)"; }

fingerprint() {
    local hex
    hex=$(openssl x509 -in "$1" -pubkey -noout |
          openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
    [[ $hex =~ ^[0-9a-f]{64}$ ]] || die "cannot fingerprint $1"
    echo "sha256:$hex"
}

# The CA.
if [ ! -s "$dir/ca.crt" ] || [ ! -s "$dir/ca.key" ]; then
    if [ -e "$dir/ca.crt" ] || [ -e "$dir/ca.key" ]; then
        die "$dir has only half of the CA (ca.crt/ca.key); remove both"
    fi
    cat >"$tmp/ca.ext" <<'EOF'
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -nodes -days "$DAYS" -set_serial "$(serial)" \
        -subj "/O=ecert-gateway development/CN=ecert-gateway dev CA" \
        -config "$tmp/ca.ext" -extensions v3_ca \
        -keyout "$tmp/ca.key" -out "$tmp/ca.crt" 2>/dev/null
    chmod 600 "$tmp/ca.key"
    chmod 644 "$tmp/ca.crt"
    mv "$tmp/ca.key" "$dir/ca.key"
    mv "$tmp/ca.crt" "$dir/ca.crt"
    echo "dev-ca.sh: made CA $dir/ca.crt"
fi

# issue NAME USAGE SAN [KEYUSAGE]: key + certificate signed by the CA.
issue() {
    local name=$1 usage=$2 san=$3 ku=${4:-digitalSignature}
    if [ -s "$dir/$name.crt" ] && [ -s "$dir/$name.key" ]; then
        return 0
    fi
    {
        echo "basicConstraints = critical, CA:false"
        echo "keyUsage = critical, $ku"
        echo "extendedKeyUsage = $usage"
        echo "subjectKeyIdentifier = hash"
        echo "authorityKeyIdentifier = keyid"
        [ -z "$san" ] || echo "subjectAltName = $san"
    } >"$tmp/$name.ext"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/O=ecert-gateway development/CN=$name" \
        -keyout "$tmp/$name.key" -out "$tmp/$name.csr" 2>/dev/null
    openssl x509 -req -in "$tmp/$name.csr" -days "$DAYS" \
        -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -set_serial "$(serial)" \
        -extfile "$tmp/$name.ext" -out "$tmp/$name.crt" 2>/dev/null
    chmod 600 "$tmp/$name.key"
    chmod 644 "$tmp/$name.crt"
    mv "$tmp/$name.key" "$dir/$name.key"
    mv "$tmp/$name.crt" "$dir/$name.crt"
    rm -f "$dir/$name.fp"
    echo "dev-ca.sh: made $dir/$name.crt"
}

issue server serverAuth "DNS:localhost,IP:127.0.0.1"
# The gateway's S/MIME signer (mail push).
issue mail-signer emailProtection "email:ecert@gateway.invalid" \
    "digitalSignature, nonRepudiation"
# Partners: TLS client authentication, and mail encrypted to them (ECDH).
for n in "${clients[@]}"; do
    issue "$n" "clientAuth, emailProtection" "" "digitalSignature, keyAgreement"
    if [ ! -s "$dir/$n.fp" ]; then
        fingerprint "$dir/$n.crt" >"$tmp/$n.fp"
        chmod 644 "$tmp/$n.fp"
        mv "$tmp/$n.fp" "$dir/$n.fp"
    fi
done
