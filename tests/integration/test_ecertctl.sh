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

# write_config DIR COUNTRY [MAX_REQUEST_BYTES [mail]]: DIR/ecertd.conf, store
# in DIR; "mail" adds the mail group and lets ec-nppo receive by mail too
write_config() {
    local mail_group="" partner_mail=""
    if [ "${4:-}" = mail ]; then
        mail_group='mail = { sender = "ecert@gw.invalid"; ehlo = "gw.invalid";
  signing = { cert = "../tls/server.crt"; key = "../tls/server.key"; };
  relay = { host = "127.0.0.1"; port = 2525; starttls = "off"; }; };'
        partner_mail=' mail = { to = [ "x@ec.invalid" ]; };'
    fi
    mkdir -p "$1"
    cat >"$1/ecertd.conf" <<EOF
# test configuration for ecertctl
country = "$2";
listen = { address = "127.0.0.1"; port = 8443; };
tls = { cert = "../tls/server.crt"; key = "../tls/server.key"; ca = "../tls/ca.crt"; };
store = "ecert.db";
schema_dir = "$SCHEMA_DIR";
limits = { max_request_bytes = ${3:-4194304}; xml_depth = 64; max_pull = 50; };
$mail_group
partners = (
  { id = "bo-issuer"; country = "BO"; roles = [ "submit" ]; fingerprint = "$FP_ISSUER"; },
  { id = "ec-nppo";  country = "EC"; roles = [ "submit", "pull" ]; fingerprint = "$FP_EC";$partner_mail }
);
EOF
}

write_config "$T/bo" BO
write_config "$T/nl" NL
write_config "$T/small" BO 1024
write_config "$T/mail" BO 4194304 mail
BO_CONF=$T/bo/ecertd.conf
NL_CONF=$T/nl/ecertd.conf
STORE=$T/bo/ecert.db
MAIL_CONF=$T/mail/ecertd.conf
MAIL_STORE=$T/mail/ecert.db

# A configuration with a syntax error on line 3.
mkdir -p "$T/bad"
printf 'country = "BO";\nstore = "ecert.db";\nlisten = { address = "127.0.0.1"; port = ; };\n' \
    >"$T/bad/ecertd.conf"

# No configuration unless a check names one.
export ECERT_CONFIG=$T/nonexistent.conf

# ---- general usage --------------------------------------------------------
run --help
check "--help exits 0 and lists the commands" \
    eval 'rc_is 0 && out_has submit && out_has "retry TRACKING\|--partner P" &&
          out_has "purge TRACKING --yes"'
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
          out_has "^number: +491412337BO$" && out_has "^sender: +@operator$" &&
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

# ---- repair: retry, hold, release, purge ----------------------------------
# The push worker does not run here: the mail delivery is moved by hand.

# sql STATEMENT: run it on the mail store
sql() { sqlite3 "$MAIL_STORE" "$1"; }

# smtp_row FIELD: the field of the (first) smtp delivery in `list --json`
# output; all_of FIELD: that field of every delivery, sorted, space separated
all_of() { json "\" \".join(sorted(str(r[\"$1\"]) for r in d))"; }
smtp_row() { json "[r[\"$1\"] for r in d if r[\"channel\"] == \"smtp\"][0]"; }

if ! command -v sqlite3 >/dev/null 2>&1; then
    rc=127
    : >"$T/out"
    echo "sqlite3 not found" >"$T/err"
    not_ok "sqlite3 is installed (needed for the repair checks)"
    finish
fi

run -c "$MAIL_CONF" submit "$BO_SAMPLE" --to EC
MT=$(head -n 1 "$T/out")
run -c "$MAIL_CONF" list
check "submit with a mail partner: a pull and an smtp delivery, waiting" \
    eval 'rc_is 0 && [ -n "$MT" ] && out_has "$MT +ec-nppo +pull +waiting " &&
          out_has "$MT +ec-nppo +smtp +waiting "'

sql "UPDATE delivery SET state = 7, attempts = 3,
     last_error = '550 5.1.1 no such user' WHERE channel = 2"
run -c "$MAIL_CONF" list --state dead
check "list --state dead: the smtp delivery with its last error" \
    eval 'rc_is 0 && out_has "$MT +ec-nppo +smtp +dead +3 .*550 5\.1\.1 no such user$" &&
          ! out_has " pull "'

run -c "$MAIL_CONF" list --state dead --json
check "list --state dead --json: last_error" \
    eval 'rc_is 0 && json_ok && [ "$(json "d[0][\"last_error\"]")" = "550 5.1.1 no such user" ]'

BEFORE=$(date +%s)
run -c "$MAIL_CONF" retry "$MT"
check "retry TRACKING: 1 delivery due now" eval 'rc_is 0 && out_has "^1 delivery due now$"'

run -c "$MAIL_CONF" list --json
check "after retry: smtp deferred, attempts kept, due now; pull untouched" \
    eval 'rc_is 0 && json_ok && [ "$(smtp_row state)" = deferred ] &&
          [ "$(smtp_row attempts)" = 3 ] && [ "$(all_of state)" = "deferred waiting" ] &&
          NA=$(smtp_row next_attempt) &&
          [ "$(date -u -d "$NA" +%s)" -ge "$((BEFORE - 1))" ] &&
          [ "$(date -u -d "$NA" +%s)" -le "$(($(date +%s) + 1))" ]'

run -c "$MAIL_CONF" status
check "status: the smtp row shows the next retry time" \
    eval 'rc_is 0 && out_has "ec-nppo +smtp +deferred +1 +[0-9T:-]+Z +[0-9]{4}-[0-9T:-]+Z$"'

run -c "$MAIL_CONF" status --json
check "status --json: the smtp row has next_attempt, a time" \
    eval 'rc_is 0 && json_ok &&
          [ "$(json "[r[\"next_attempt\"] for r in d[\"deliveries\"] if r[\"channel\"] == \"smtp\"][0][:2]")" = 20 ]'

run -c "$MAIL_CONF" hold "$MT"
check "hold TRACKING: both deliveries held" eval 'rc_is 0 && out_has "^2 deliveries held$"'

run -c "$MAIL_CONF" list --state held --json
check "after hold: the pull and the smtp delivery are held" \
    eval 'rc_is 0 && json_ok && [ "$(all_of channel)" = "pull smtp" ]'

run -c "$MAIL_CONF" --json hold "$MT"
check "hold again --json: parses, changed 0" \
    eval 'rc_is 0 && json_ok && [ "$(json "d[\"changed\"]")" = 0 ]'

run -c "$MAIL_CONF" release "$MT" --json
check "release --json: parses, changed 2" \
    eval 'rc_is 0 && json_ok && [ "$(json "d[\"changed\"]")" = 2 ]'

run -c "$MAIL_CONF" list --json
check "after release: both waiting" \
    eval 'rc_is 0 && json_ok && [ "$(all_of state)" = "waiting waiting" ]'

run -c "$MAIL_CONF" purge "$MT"
check "purge without --yes: exit 2" \
    eval 'rc_is 2 && err_has "purge deletes deliveries; add --yes"'

run -c "$MAIL_CONF" purge "$MT" --yes
check "purge --yes of waiting deliveries: 0 deleted" \
    eval 'rc_is 0 && out_has "^0 deliveries deleted$"'

run -c "$MAIL_CONF" list --json
check "after purging nothing: both deliveries still there" \
    eval 'rc_is 0 && json_ok && [ "$(json "len(d)")" = 2 ]'

sql "UPDATE delivery SET state = 7, last_error = '550 5.1.1 no such user' WHERE channel = 2"
run -c "$MAIL_CONF" --json retry --partner ec-nppo
check "retry --partner --json: parses, changed 1 (mail only)" \
    eval 'rc_is 0 && json_ok && [ "$(json "d[\"changed\"]")" = 1 ]'

run --store "$MAIL_STORE" hold --partner ec-nppo
check "hold --partner with --store only: both held" eval 'rc_is 0 && out_has "^2 deliveries held$"'

run --store "$MAIL_STORE" release --partner ec-nppo
check "release --partner: both released" eval 'rc_is 0 && out_has "^2 deliveries released$"'

sql "UPDATE delivery SET state = 7, last_error = '550 5.1.1 no such user' WHERE channel = 2"
run -c "$MAIL_CONF" purge --yes "$MT"
check "purge --yes of a dead delivery: 1 deleted" \
    eval 'rc_is 0 && out_has "^1 delivery deleted$"'

run -c "$MAIL_CONF" list --json
check "after purge: only the pull delivery is left" \
    eval 'rc_is 0 && json_ok && [ "$(all_of channel)" = pull ]'

run -c "$MAIL_CONF" show "$MT"
check "after purge: the certificate stays, history notes the operator" \
    eval 'rc_is 0 && out_has "^number: +491412337BO$" && out_has "pull +held +operator$" &&
          ! out_has " smtp "'

run --json -c "$MAIL_CONF" purge --yes "$MT"
check "purge --json: parses, changed 0" \
    eval 'rc_is 0 && json_ok && [ "$(json "d[\"changed\"]")" = 0 ]'

for verb in retry hold release; do
    run -c "$MAIL_CONF" "$verb" NO-SUCH-TRACKING-0000
    check "$verb of an unknown tracking number: exit 1" \
        eval 'rc_is 1 && err_has "NO-SUCH-TRACKING-0000: no such tracking number"'
done
run -c "$MAIL_CONF" purge NO-SUCH-TRACKING-0000 --yes
check "purge of an unknown tracking number: exit 1" \
    eval 'rc_is 1 && err_has "no such tracking number"'

run -c "$MAIL_CONF" retry "$MT" --partner ec-nppo
check "retry with both TRACKING and --partner: exit 2" eval 'rc_is 2 && err_has "usage:"'
run -c "$MAIL_CONF" hold
check "hold with neither TRACKING nor --partner: exit 2" eval 'rc_is 2 && err_has "usage:"'
run -c "$MAIL_CONF" release "$MT" extra
check "release with two arguments: exit 2" eval 'rc_is 2 && err_has extra'
run -c "$MAIL_CONF" purge --partner ec-nppo --yes
check "purge --partner: exit 2" eval 'rc_is 2 && err_has "--partner"'
run -c "$MAIL_CONF" retry "$MT" --yes
check "retry --yes: exit 2" eval 'rc_is 2 && err_has "--yes"'

run -c "$MAIL_CONF" retry --partner no-such-partner
check "retry --partner unknown to the config: exit 1" \
    eval 'rc_is 1 && err_has "no-such-partner: no such partner"'
run --store "$MAIL_STORE" retry --partner no-such-partner
check "retry --partner with --store only: accepted, 0 changed" \
    eval 'rc_is 0 && out_has "^0 deliveries due now$"'

run --store "$T/not-a-dir/ecert.db" hold "$MT"
check "hold on a store that cannot be opened: exit 3" eval 'rc_is 3'

finish
