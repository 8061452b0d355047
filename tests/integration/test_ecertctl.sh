#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test_ecertctl.sh - the operator CLI against a real store, real schemas and
# the sample certificates.
#
# Run from the project root after `make`:
#     bash tests/integration/test_ecertctl.sh
# Environment: ECERTCTL (default build/ecertctl), SAMPLES (default
# ../shared/samples/spscert).  Prints "ok - ..." / "not ok - ..." per check
# and a last line "ecertctl: N passed, M failed"; exits 1 if any failed.

set -u

CTL=${ECERTCTL:-build/ecertctl}
SAMPLES=${SAMPLES:-../shared/samples/spscert}
SCHEMA_DIR=$PWD/wsdl/spscert
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi

BO_SAMPLE=$SAMPLES/agrocalidad-qa-BO-to-EC-491412337BO.xml
VALID_SAMPLES="sgcan-intercom-template.xml sgcan-intercom-template-annotated.xml
agrocalidad-qa-BO-to-EC-491412337BO.xml"
INVALID_SAMPLES="sgcan-intercom-template-xmldsig-signed.xml
mattilsynet-test-SPSCertificateContent.xml"

passed=0
failed=0
rc=0

ok() {
    passed=$((passed + 1))
    echo "ok - $1"
}

# not_ok DESCRIPTION: counts a failure and shows what the last run printed
not_ok() {
    failed=$((failed + 1))
    echo "not ok - $1"
    echo "#   exit status: $rc"
    [ -s "$T/out" ] && head -c 2000 "$T/out" | sed 's/^/#   stdout: /'
    [ -s "$T/err" ] && head -c 2000 "$T/err" | sed 's/^/#   stderr: /'
    return 0
}

# check DESCRIPTION COMMAND...: ok if COMMAND succeeds
check() {
    local desc=$1
    shift
    if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# run ARGS...: run ecertctl; stdout in $T/out, stderr in $T/err, status in rc
run() {
    "$CTL" "$@" >"$T/out" 2>"$T/err"
    rc=$?
}

rc_is() { [ "$rc" -eq "$1" ]; }
out_has() { grep -Eq -- "$1" "$T/out"; }
err_has() { grep -Eq -- "$1" "$T/err"; }
json_ok() { "$PY" -m json.tool <"$T/out" >/dev/null 2>&1; }

# json EXPR: evaluate a Python expression over the JSON on stdout (as d)
json() {
    "$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
        "$T/out" "$1" 2>/dev/null
}

finish() {
    echo "ecertctl: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

T=$(mktemp -d "${TMPDIR:-/tmp}/test_ecertctl.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

if [ ! -x "$CTL" ]; then
    : >"$T/out"
    : >"$T/err"
    not_ok "$CTL exists (run make first)"
    finish
fi
if [ ! -r "$BO_SAMPLE" ]; then
    not_ok "samples found in $SAMPLES"
    finish
fi

# ---- fixtures: TLS files (only checked for presence and key mode) ---------
mkdir -p "$T/tls"
if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -nodes -keyout "$T/tls/server.key" -out "$T/tls/server.crt" \
        -days 2 -subj "/CN=ecertctl-test" >"$T/out" 2>"$T/err"; then
    rc=1
    not_ok "openssl makes a throwaway key and certificate"
    finish
fi
chmod 600 "$T/tls/server.key"
cp "$T/tls/server.crt" "$T/tls/ca.crt"

FP_ISSUER=sha256:$(printf '%064x' 1)
FP_EC=sha256:$(printf '%064x' 2)

# write_config DIR COUNTRY [MAX_REQUEST_BYTES]: DIR/ecertd.conf, store in DIR
write_config() {
    mkdir -p "$1"
    cat >"$1/ecertd.conf" <<EOF
# test configuration for ecertctl
country = "$2";
listen = { address = "127.0.0.1"; port = 8443; };
tls = { cert = "../tls/server.crt"; key = "../tls/server.key"; ca = "../tls/ca.crt"; };
store = "ecert.db";
schema_dir = "$SCHEMA_DIR";
limits = { max_request_bytes = ${3:-4194304}; xml_depth = 64; max_pull = 50; };
partners = (
  { id = "bo-issuer"; country = "BO"; roles = [ "submit" ]; fingerprint = "$FP_ISSUER"; },
  { id = "ec-nppo";  country = "EC"; roles = [ "submit", "pull" ]; fingerprint = "$FP_EC"; }
);
EOF
}

write_config "$T/bo" BO
write_config "$T/nl" NL
write_config "$T/small" BO 1024
BO_CONF=$T/bo/ecertd.conf
NL_CONF=$T/nl/ecertd.conf
STORE=$T/bo/ecert.db

# A configuration with a syntax error on line 3.
mkdir -p "$T/bad"
printf 'country = "BO";\nstore = "ecert.db";\nlisten = { address = "127.0.0.1"; port = ; };\n' \
    >"$T/bad/ecertd.conf"

# No configuration unless a check names one.
export ECERT_CONFIG=$T/nonexistent.conf

# ---- general usage --------------------------------------------------------
run --help
check "--help exits 0 and lists the commands" eval 'rc_is 0 && out_has submit'
run --version
check "--version exits 0" eval 'rc_is 0 && out_has ecertctl'
run
check "no command: exit 2 with a usage hint" eval 'rc_is 2 && err_has "usage:"'
run frobnicate
check "unknown command: exit 2 naming it" eval 'rc_is 2 && err_has frobnicate && err_has "usage:"'
run --store "$STORE" --bogus status
check "unknown option: exit 2 naming it" eval 'rc_is 2 && err_has "--bogus" && err_has "usage:"'
run --store "$STORE" show
check "show without TRACKING: exit 2" eval 'rc_is 2 && err_has TRACKING'
run -c "$BO_CONF" submit "$BO_SAMPLE"
check "submit without --to: exit 2" eval 'rc_is 2 && err_has "--to"'
run -c "$BO_CONF" submit "$BO_SAMPLE" --to ec
check "submit --to with a bad country code: exit 2" eval 'rc_is 2 && err_has "ec"'
run --store "$STORE" list --to EC
check "an option the command does not take: exit 2" eval 'rc_is 2 && err_has "--to"'
run --store "$STORE" status extra
check "an extra argument: exit 2" eval 'rc_is 2 && err_has extra'

# ---- configuration errors -------------------------------------------------
run -c "$T/bad/ecertd.conf" status
check "config syntax error: exit 3 with file:line" \
    eval 'rc_is 3 && err_has "bad/ecertd.conf:[0-9]+"'
run -c "$T/missing.conf" status
check "missing config file: exit 3 naming it" eval 'rc_is 3 && err_has missing.conf'
run status
check "default config from \$ECERT_CONFIG is used" eval 'rc_is 3 && err_has nonexistent.conf'

# ---- validate ---------------------------------------------------------------
for f in $VALID_SAMPLES; do
    run validate --schema-dir "$SCHEMA_DIR" "$SAMPLES/$f"
    check "validate $f: valid" eval 'rc_is 0 && out_has ": valid$"'
done
for f in $INVALID_SAMPLES; do
    run validate --schema-dir "$SCHEMA_DIR" "$SAMPLES/$f"
    check "validate $f: invalid, issues as FILE[:LINE]: SEVERE" \
        eval 'rc_is 3 && out_has "^[^ ]*$f(:[0-9]+)?: SEVERE " && ! out_has ": valid$"'
done
run validate --json --schema-dir "$SCHEMA_DIR" "$BO_SAMPLE"
check "validate --json (valid) parses, valid true" \
    eval 'rc_is 0 && json_ok && [ "$(json "d[\"valid\"]")" = True ]'
run --json validate --schema-dir "$SCHEMA_DIR" "$SAMPLES/sgcan-intercom-template-xmldsig-signed.xml"
check "validate --json (invalid) parses, valid false, issues listed" \
    eval 'rc_is 3 && json_ok && [ "$(json "d[\"valid\"]")" = False ] &&
          [ "$(json "d[\"issues\"][0][\"level\"]")" = SEVERE ]'
run -c "$BO_CONF" validate "$BO_SAMPLE"
check "validate takes schema_dir from the config" eval 'rc_is 0 && out_has ": valid$"'
run validate --schema-dir "$SCHEMA_DIR" "$T/no-such-file.xml"
check "validate of a missing file: exit 3 naming it" eval 'rc_is 3 && err_has no-such-file.xml'

# ---- submit -----------------------------------------------------------------
run -c "$T/small/ecertd.conf" submit "$SAMPLES/mattilsynet-test-SPSCertificateContent.xml" --to EC
check "submit over max_request_bytes: exit 3 naming the file" \
    eval 'rc_is 3 && err_has "mattilsynet-test-SPSCertificateContent.xml.*1024"'

run -c "$BO_CONF" submit "$SAMPLES/sgcan-intercom-template-xmldsig-signed.xml" --to EC
check "submit of an invalid document: exit 3 with SEVERE issues" \
    eval 'rc_is 3 && err_has "xmldsig-signed.xml(:[0-9]+)?: SEVERE "'

run -c "$BO_CONF" submit "$BO_SAMPLE" --to EC
TRACKING=$(head -n 1 "$T/out")
check "submit BO->EC as BO: exit 0, prints a tracking number" \
    eval 'rc_is 0 && [ -n "$TRACKING" ] && ! out_has duplicate'

run submit --to EC -c "$BO_CONF" "$BO_SAMPLE"
check "submit again: same tracking number, duplicate" \
    eval 'rc_is 0 && [ "$(head -n 1 "$T/out")" = "$TRACKING" ] && out_has "duplicate of earlier hand-in"'

run -c "$BO_CONF" --json submit "$BO_SAMPLE" --to EC
check "submit --json again: parses, same tracking, duplicate true" \
    eval 'rc_is 0 && json_ok && [ "$(json "d[\"tracking\"]")" = "$TRACKING" ] &&
          [ "$(json "d[\"duplicate\"]")" = True ]'

run -c "$NL_CONF" --store "$STORE" submit "$BO_SAMPLE" --to EC
check "submit BO document as NL: exit 3 naming From" \
    eval 'rc_is 3 && err_has "SEVERE" && err_has "[Ff]rom"'

run -c "$BO_CONF" submit "$BO_SAMPLE" --to PE
check "submit to a country no partner receives for: exit 3" eval 'rc_is 3 && err_has PE'

run -c "$BO_CONF" submit "$T/no-such-file.xml" --to EC
check "submit of a missing file: exit 3 naming it" eval 'rc_is 3 && err_has no-such-file.xml'

# ---- list -------------------------------------------------------------------
run -c "$BO_CONF" list
check "list: one delivery, waiting for ec-nppo over pull" \
    eval 'rc_is 0 && [ "$(grep -c -- "$TRACKING" "$T/out")" -eq 1 ] &&
          out_has "$TRACKING +ec-nppo +pull +waiting .*BO->EC +491412337BO +851/70"'

run list --json --store "$STORE"
check "list --json with --store only: parses, one waiting delivery" \
    eval 'rc_is 0 && json_ok && [ "$(json "len(d)")" = 1 ] &&
          [ "$(json "d[0][\"tracking\"]")" = "$TRACKING" ] &&
          [ "$(json "d[0][\"partner\"]+\" \"+d[0][\"state\"]+\" \"+d[0][\"number\"]")" = "ec-nppo waiting 491412337BO" ]'

run --store "$STORE" list --json --partner ec-nppo --state waiting --channel pull --limit 5
check "list with every filter: the delivery" eval 'rc_is 0 && json_ok && [ "$(json "len(d)")" = 1 ]'

run --store "$STORE" list --json --state delivered
check "list --state delivered: empty array" eval 'rc_is 0 && json_ok && [ "$(json "len(d)")" = 0 ]'

run --store "$STORE" list --state bogus
check "list --state bogus: exit 2 naming it and the valid states" \
    eval 'rc_is 2 && err_has bogus && err_has waiting && err_has delivered'

run --store "$STORE" list --channel carrier-pigeon
check "list --channel bad: exit 2 naming it and the valid channels" \
    eval 'rc_is 2 && err_has carrier-pigeon && err_has pull && err_has smtp'

run --store "$STORE" list --limit abc
check "list --limit abc: exit 2" eval 'rc_is 2 && err_has abc'

# ---- show -------------------------------------------------------------------
SHA=$(sha256sum "$BO_SAMPLE" | cut -d' ' -f1)
SIZE=$(wc -c <"$BO_SAMPLE" | tr -d ' ')

run -c "$BO_CONF" show "$TRACKING"
check "show: header with the file's sha256 and size, no content" \
    eval 'rc_is 0 && out_has "^sha256: +$SHA$" && out_has "^size: +$SIZE$" &&
          out_has "^number: +491412337BO$" && out_has "^sender: +operator$" &&
          out_has "ec-nppo +pull +waiting" && ! out_has "SPSCertificate"'

run -c "$BO_CONF" show "$TRACKING" --content
check "show --content: byte-identical to the file" eval 'rc_is 0 && cmp -s "$T/out" "$BO_SAMPLE"'

run --json --store "$STORE" show "$TRACKING"
check "show --json: parses, sha256, size, one delivery" \
    eval 'rc_is 0 && json_ok && [ "$(json "d[\"sha256\"]")" = "$SHA" ] &&
          [ "$(json "d[\"size\"]")" = "$SIZE" ] && [ "$(json "len(d[\"deliveries\"])")" = 1 ] &&
          [ "$(json "d[\"from\"]+d[\"to\"]")" = BOEC ]'

run --store "$STORE" show NO-SUCH-TRACKING-0000
check "show of an unknown tracking number: exit 1" eval 'rc_is 1 && err_has NO-SUCH-TRACKING-0000'

run --store "$STORE" show "$TRACKING" --content --json
check "show --content --json: exit 2" eval 'rc_is 2'

# ---- status and check -------------------------------------------------------
run -c "$BO_CONF" status
check "status: ec-nppo pull waiting 1, oldest waiting shown" \
    eval 'rc_is 0 && out_has "ec-nppo +pull +waiting +1 " && out_has "oldest waiting overall: [0-9]+s"'

run status --store "$STORE" --json
check "status --json: parses, 1 waiting, oldest_waiting_seconds a number" \
    eval 'rc_is 0 && json_ok &&
          [ "$(json "sum(r[\"count\"] for r in d[\"deliveries\"] if r[\"state\"] == \"waiting\")")" = 1 ] &&
          [ "$(json "type(d[\"oldest_waiting_seconds\"]).__name__")" = int ]'

run -c "$BO_CONF" check
check "check: store OK" eval 'rc_is 0 && out_has "^store OK$"'

run --store "$T/not-a-dir/ecert.db" check
check "check on a store that cannot be opened: exit 3" eval 'rc_is 3'

finish
