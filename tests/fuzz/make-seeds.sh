#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make-seeds.sh OUTDIR - seed inputs for the fuzz harnesses that are made
# from files not kept in tests/fuzz/corpus: the shared SPSCertificate
# samples (../shared/samples/spscert, override with SAMPLES=dir) and
# config/ecertd.example.conf.  Writes OUTDIR/{soap,sps,config,mime}/.
# Run from anywhere; without the samples only the config seed is made.

set -eu
out=${1:?usage: make-seeds.sh OUTDIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
samples=${SAMPLES:-$root/../shared/samples/spscert}
agro=$samples/agrocalidad-qa-BO-to-EC-491412337BO.xml

rm -rf "$out"
mkdir -p "$out/soap" "$out/sps" "$out/config" "$out/mime"

cp "$root/config/ecertd.example.conf" "$out/config/example.conf"

if [ ! -f "$agro" ]; then
    echo "make-seeds: no samples in $samples: SOAP/SPS seeds from them skipped" >&2
    exit 0
fi

# XML text as the content of an element.
escape() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' "$1"; }

# envelope BODY-ELEMENT-XML: a SOAP 1.1 envelope around it.
envelope() {
    printf '<?xml version="1.0" encoding="UTF-8"?>\n'
    printf '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"'
    printf ' xmlns:ns="http://ephyto.ippc.int/" xmlns:hub="http://ephyto.ippc.int/HUB.Entities">\n'
    printf '  <soap:Body>\n'
    cat
    printf '\n  </soap:Body>\n</soap:Envelope>\n'
}

# http ACTION [EXTRA-HEADER]: an HTTP POST around the body on stdin.
http() {
    local body
    body=$(mktemp)
    cat >"$body"
    printf 'POST /DeliveryService HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n'
    printf 'Content-Type: text/xml; charset=utf-8\r\n'
    printf 'SOAPAction: "http://ephyto.ippc.int/IDeliveryService/%s"\r\n' "$1"
    [ -n "${2:-}" ] && printf '%s\r\n' "$2"
    printf 'Content-Length: %d\r\n\r\n' "$(wc -c <"$body")"
    cat "$body"
    rm -f "$body"
}

# envelope_el OP FROM TO NUMBER CONTENT-FILE(already escaped or base64)
env_el() {
    printf '    <ns:%s><ns:%s>' "$1" "$2"
    printf '<hub:From>%s</hub:From><hub:To>%s</hub:To>' "$3" "$4"
    printf '<hub:CertificateType>851</hub:CertificateType>'
    printf '<hub:CertificateStatus>70</hub:CertificateStatus>'
    printf '<hub:NPPOCertificateNumber>%s</hub:NPPOCertificateNumber>' "$5"
    printf '<hub:Content>'
    cat "$6"
    printf '</hub:Content></ns:%s></ns:%s>' "$2" "$1"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
escape "$agro" >"$tmp/agro.esc"
base64 -w 76 "$agro" >"$tmp/agro.b64"

# ---- soap: requests carrying the sample --------------------------------
env_el DeliverEnvelope env BO EC 491412337BO "$tmp/agro.esc" | envelope |
    http DeliverEnvelope >"$out/soap/deliver-envelope.http"
env_el DeliverEnvelope env BO EC 491412337BO "$tmp/agro.b64" | envelope |
    http DeliverEnvelope >"$out/soap/deliver-envelope-b64.http"
env_el ValidateAndDeliverEnvelope envelope BO EC 491412337BO "$tmp/agro.esc" |
    envelope >"$out/soap/validate-and-deliver-raw.xml"
env_el DeliverEnvelope env BO EC 491412337BO "$tmp/agro.esc" | envelope |
    http DeliverEnvelope "X-Fuzz-Partner: ec-nppo" >"$out/soap/deliver-envelope-wrong-partner.http"
{ printf '    <ns:ValidatePhytoXML><ns:ePhytoXML>'; cat "$tmp/agro.esc"
  printf '</ns:ePhytoXML></ns:ValidatePhytoXML>'; } | envelope |
    http ValidatePhytoXML >"$out/soap/validate-phyto.http"

# ---- sps: the samples, as text and as base64 (UTF-8 and UTF-16) --------
for f in "$samples"/*.xml; do
    cp "$f" "$out/sps/$(basename "$f")"
done
cp "$tmp/agro.b64" "$out/sps/agrocalidad.b64"
if command -v iconv >/dev/null; then
    { printf '\xff\xfe'; iconv -f UTF-8 -t UTF-16LE "$agro"; } | base64 -w 0 \
        >"$out/sps/agrocalidad-utf16.b64"
fi

# ---- mime: the sample as content behind a 24-byte header ----------------
# flags=0, lengths 11 (number) 28 (tracking) 7 (partner) 2 2 15, date,
# type/status/version, then the strings and the content.
{ printf '\x00\x0b\x1c\x07\x02\x02\x0f\x00\x00\x00'
  printf '\x00\xe1\xf5\x65\x00\x00\x00\x00'
  printf '\x53\x03\x46\x00\x01\x00'
  printf '491412337BOECG20240101-00000000000000a1ec-nppoBOECgateway.invalid'
  cat "$agro"; } >"$out/mime/agrocalidad.bin"

chmod -R u+w "$out"
n=$(find "$out" -type f | wc -l)
echo "make-seeds: $n seeds in $out"
