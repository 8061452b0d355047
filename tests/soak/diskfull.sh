#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# diskfull.sh - the store's file system runs full under a real ecertd:
#   - hand-ins until the disk is full: the failing hand-in is answered with
#     a SOAP Fault whose faultcode ends in "Server" ("try again later"), and
#     nothing partial is stored (certificates = successes, each with its
#     delivery; integrity_check ok);
#   - while full, what is stored can still be read (GetImportEnvelopeHeaders,
#     PULLImportEnvelope, PULLSingleImportEnvelope), content byte-exact;
#   - once space is freed (a filler file deleted; then, on tmpfs, the file
#     system remounted bigger), hand-ins succeed again;
#   - the daemon never crashed (same PID throughout) and stops cleanly.
#
# Needs root (mount).  The store lives on a small tmpfs (FS=tmpfs, the
# default) or a loop-mounted ext4 image (FS=ext4; used by itself when tmpfs
# cannot be mounted).  Run from the project root after
# `make all build/hubclient`:
#     bash tests/soak/diskfull.sh
# KEEP=1 keeps the temporary directory; ECERTD, ECERTCTL, HUBCLIENT, SAMPLES
# override the defaults.  Last line "diskfull: P passed, F failed".

set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/soak
ECERTD=${ECERTD:-$ROOT/build/ecertd}
ECERTCTL=${ECERTCTL:-$ROOT/build/ecertctl}
HUBCLIENT=${HUBCLIENT:-$ROOT/build/hubclient}
SINK=${SMTP_SINK:-/usr/sbin/smtp-sink}
SAMPLES=${SAMPLES:-$ROOT/../shared/samples/spscert}
SAMPLE=$SAMPLES/agrocalidad-qa-BO-to-EC-491412337BO.xml
SAMPLE_NUMBER=491412337BO
FS=${FS:-tmpfs}
HEADROOM_KB=${HEADROOM_KB:-256}     # free space left beside the filler
MAX_FILL=${MAX_FILL:-300}           # hand-ins tried before giving up on "full"

. "$HERE/common.sh"

finish() {
    if [ "$FAIL" -gt 0 ] && [ -s "${DLOG:-/nonexistent}" ]; then
        echo "# ---- last lines of the daemon log ($DLOG) ----"
        tail -n 30 "$DLOG" | sed 's/^/# /'
    fi
    echo "diskfull: $PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
    exit $?
}

if [ "$(id -u)" -ne 0 ]; then
    echo "# SKIP diskfull.sh needs root (mount)"
    finish
fi
for f in "$ECERTD" "$ECERTCTL" "$HUBCLIENT"; do
    [ -x "$f" ] || { not_ok "$f is there" "make all build/hubclient"; finish; }
done
for tool in sqlite3 ss sha256sum mount umount df; do
    command -v "$tool" >/dev/null || { not_ok "$tool is installed" "missing"; finish; }
done
[ -r "$SAMPLE" ] || { not_ok "the sample certificate is there" "$SAMPLE"; finish; }

# ==== processes, mount and clean-up =================================================

T=$(mktemp -d "${TMPDIR:-/tmp}/ecert-diskfull.XXXXXX") || exit 1
CA=$T/ca
CONF=$T/ecertd.conf
MNT=$T/store
DB=$MNT/ecert.db
DLOG=$T/ecertd.log
W=$T/work
mkdir -p "$W/in" "$MNT"
: >"$T/handins"
DPID=
SINKPID=
MOUNTED=0

cleanup() {
    [ -n "$DPID" ] && stop_pid "$DPID" 10
    [ -n "$SINKPID" ] && stop_pid "$SINKPID" 5
    if [ "$MOUNTED" = 1 ]; then
        umount "$MNT" 2>/dev/null || { sleep 1; umount "$MNT" 2>/dev/null; } || umount -l "$MNT" 2>/dev/null
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "# kept $T (store unmounted)"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_store() {
    if [ "$FS" = tmpfs ]; then
        if mount -t tmpfs -o size=2m,mode=0755 tmpfs "$MNT" 2>"$T/mount.err"; then
            MOUNTED=1
            return 0
        fi
        echo "# tmpfs: $(cat "$T/mount.err"); trying a loop-mounted ext4 image"
        FS=ext4
    fi
    truncate -s 4M "$T/fs.img" &&
        mkfs.ext4 -q -F -m 0 "$T/fs.img" >"$T/mkfs.log" 2>&1 &&
        mount -o loop "$T/fs.img" "$MNT" 2>"$T/mount.err" || return 1
    MOUNTED=1
}

free_kb() { df -P -k "$MNT" | awk 'NR == 2 { print $4 }'; }

start_daemon() {
    "$ECERTD" -f -c "$CONF" >>"$DLOG" 2>&1 &
    DPID=$!
    wait_port "$PORT" 10 "$DPID"
}

alive() { [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null && [ "$DPID" = "$PID0" ]; }

# ==== set-up ===========================================================================

if ! mount_store; then
    not_ok "a small file system for the store (tmpfs or loop ext4)" "$(cat "$T/mount.err" "$T/mkfs.log" 2>/dev/null)"
    finish
fi
ok "store on a $FS of $(df -P -k "$MNT" | awk 'NR == 2 { print $2 }') KB at $MNT"

if ! bash "$ROOT/deploy/dev-ca.sh" "$CA" bo-issuer ec-nppo pe-nppo >"$T/dev-ca.log" 2>&1 ||
   [ ! -s "$CA/ec-nppo.fp" ]; then
    not_ok "deploy/dev-ca.sh makes the CA and the certificates" "$(cat "$T/dev-ca.log")"
    finish
fi
PORT=$(free_port)
URL=https://127.0.0.1:$PORT/hub/DeliveryService

# With Postfix's smtp-sink, ec-nppo also gets mail: the push workers then
# write to the full store too.  NDEL = deliveries per certificate.
NDEL=1
MAILCONF=
if [ -x "$SINK" ]; then
    SINK_PORT=$(free_port)
    "$SINK" -u nobody "127.0.0.1:$SINK_PORT" 64 >>"$T/sink.log" 2>&1 &
    SINKPID=$!
    if wait_port "$SINK_PORT" 5 "$SINKPID"; then
        NDEL=2
        MAILCONF="mail = { sender = \"ecert@gw.invalid\"; ehlo = \"gw.invalid\";
  signing = { cert = \"$CA/mail-signer.crt\"; key = \"$CA/mail-signer.key\"; };
  relay = { host = \"127.0.0.1\"; port = $SINK_PORT; starttls = \"off\"; };
  retry = { first_delay = 1; factor = 2.0; max_delay = 2; max_age = 600; };
  timeout = 5; workers = 2; };"
    fi
fi
echo "# mail push to smtp-sink: $([ "$NDEL" = 2 ] && echo yes || echo "no ($SINK missing)")"
EC_MAIL=
[ "$NDEL" = 2 ] && EC_MAIL='mail = { to = [ "nppo@ec.invalid" ]; };'
cat >"$CONF" <<EOF
# diskfull.sh configuration
country = "BO";
listen = { address = "127.0.0.1"; port = $PORT; };
tls = { cert = "$CA/server.crt"; key = "$CA/server.key"; ca = "$CA/ca.crt"; };
store = "$DB";
schema_dir = "$ROOT/wsdl/spscert";
limits = { recv_timeout = 10; send_timeout = 10; idle_timeout = 10; workers = 4; };
partners = (
  { id = "bo-issuer"; country = "BO"; roles = [ "submit" ];
    fingerprint = "$(cat "$CA/bo-issuer.fp")"; },
  { id = "ec-nppo"; country = "EC"; roles = [ "pull" ];
    fingerprint = "$(cat "$CA/ec-nppo.fp")"; $EC_MAIL },
  { id = "pe-nppo"; country = "PE"; roles = [ "pull" ];
    fingerprint = "$(cat "$CA/pe-nppo.fp")"; }
);
$MAILCONF
EOF
if ! start_daemon; then
    not_ok "ecertd starts with the store on $FS" "$(tail -n 20 "$DLOG")"
    finish
fi
PID0=$DPID
ok "ecertd (pid $PID0) listens on 127.0.0.1:$PORT"

SEQ=0
# handin: hand in the next distinct certificate (or, with an argument, the
# certificate number given again).  HANDED=1 and a record in $T/handins on
# success; output in OUT, status in RC.
handin() {
    local n f
    if [ -n "${1:-}" ]; then
        n=$1
    else
        SEQ=$((SEQ + 1))
        n=$(printf 'DF%07dBO' "$SEQ")
    fi
    f=$W/in/$n.xml
    [ -f "$f" ] || variant "$n" "$f"
    LAST_NUMBER=$n
    hc bo-issuer deliver "$f" BO EC 851 70 "$n"
    HANDED=0
    if [ "$RC" -eq 0 ]; then
        HANDED=1
        echo "$(tracking_of "$OUT") $(sha_of "$f") $n" >>"$T/handins"
    fi
}

successes() { wc -l <"$T/handins"; }

# fill_until_full: hand-ins until one fails; FULL_OUT/FULL_RC its answer.
fill_until_full() {
    local i
    FULL_RC=0
    FULL_OUT=
    for i in $(seq 1 "$MAX_FILL"); do
        handin
        if [ "$HANDED" -ne 1 ]; then
            FULL_RC=$RC
            FULL_OUT=$OUT
            FULL_NUMBER=$LAST_NUMBER
            return 0
        fi
    done
    return 1
}

# store_consistent WHEN: certificates = successes, each with exactly its
# NDEL deliveries (ec-nppo pull, and mail), no delivery or event without its parent, and
# every recorded hand-in stored with its SHA-256; integrity_check ok.
store_consistent() {
    local when=$1 n s bad ic
    n=$(sql "SELECT count(*) FROM certificate")
    s=$(successes)
    check "$when: certificates stored ($n) = hand-ins answered with success ($s)" \
        "$(sql "SELECT number FROM certificate" | sort | comm -23 - <(awk '{ print $3 }' "$T/handins" | sort) | head -n 3)" \
        test "$n" = "$s"
    bad=$(sql "SELECT
        (SELECT count(*) FROM certificate c WHERE (SELECT count(*) FROM delivery d WHERE d.cert_id = c.id) != $NDEL)
      + (SELECT count(*) FROM delivery d WHERE NOT EXISTS (SELECT 1 FROM certificate c WHERE c.id = d.cert_id))
      + (SELECT count(*) FROM event e WHERE NOT EXISTS (SELECT 1 FROM delivery d WHERE d.id = e.delivery_id))
      + (SELECT count(*) FROM delivery d WHERE NOT EXISTS (SELECT 1 FROM event e WHERE e.delivery_id = d.id))")
    check "$when: nothing partial (each certificate has its $NDEL deliveries and their history)" \
        "$bad inconsistent rows" test "$bad" = 0
    sql "SELECT tracking, lower(hex(sha256)) FROM certificate" >"$W/db.hash"
    bad=$(awk -F'[ |]' 'NR == FNR { h[$1] = $2; next } h[$1] != $2 { print $1 " (" $3 ")" }' \
        "$W/db.hash" "$T/handins" | head -n 3)
    check "$when: every successful hand-in is stored with its SHA-256" "$bad" test -z "$bad"
    ic=$(sql "PRAGMA integrity_check")
    check "$when: PRAGMA integrity_check = ok" "$ic" test "$ic" = ok
}

# ==== 1. fill the file system ===========================================================

for i in 1 2 3; do handin; done
check "3 hand-ins succeed before the file system is full" "rc=$RC $OUT" test "$(successes)" = 3

dd if=/dev/zero of="$MNT/filler" bs=16k 2>/dev/null
truncate -s "-${HEADROOM_KB}K" "$MNT/filler" 2>/dev/null || truncate -s 0 "$MNT/filler"
sync
echo "# filler $(( $(stat -c %s "$MNT/filler") / 1024 )) KB; free $(free_kb) KB"

before=$(successes)
if fill_until_full; then
    ok "the disk ran full after $(( $(successes) - before )) more hand-ins (free $(free_kb) KB)"
else
    not_ok "the disk runs full within $MAX_FILL hand-ins" "free $(free_kb) KB"
    finish
fi
RC=$FULL_RC OUT=$FULL_OUT
check "disk full: the failing hand-in gets a SOAP Fault with faultcode ...Server" \
    "rc=$FULL_RC $FULL_OUT" is_fault Server
check "disk full: the fault says to try again later" "$FULL_OUT" \
    eval 'printf "%s" "$FULL_OUT" | grep -qi "try again later"'
echo "# disk full answer: $(printf '%s' "$FULL_OUT" | head -n 1 | cut -c1-300)"
check "disk full: the daemon is still running (pid $PID0)" "$(tail -n 5 "$DLOG")" alive

# A few more while full: each a Server fault, never a crash or a dropped connection.
others=
for i in 1 2 3; do
    handin
    if [ "$HANDED" -eq 1 ]; then others="$others success?"
    elif ! is_fault Server; then others="$others rc=$RC:$(printf '%s' "$OUT" | head -n 1)"; fi
done
check "disk full: 3 more hand-ins (new and the same again) are Server faults too" "$others" \
    test -z "$others"
handin "$FULL_NUMBER"
check "disk full: the failed certificate handed in again is a Server fault" "rc=$RC $OUT" is_fault Server

store_consistent "disk full"

# ==== 2. reading while full ================================================================

S=$(successes)
hc ec-nppo headers
nh=$(printf '%s\n' "$OUT" | grep -c '^header ')
check "disk full: GetImportEnvelopeHeaders works and lists all $S stored envelopes" \
    "rc=$RC headers=$nh $(printf '%s' "$OUT" | grep -v '^header ' | head -n 2)" \
    test "$RC:$nh" = "0:$S"

mkdir -p "$W/pull"
hc ec-nppo pull --out "$W/pull"
np=$(printf '%s\n' "$OUT" | grep -c '^envelope ')
check "disk full: PULLImportEnvelope works (returns the stored envelopes)" \
    "rc=$RC envelopes=$np $(printf '%s' "$OUT" | grep -v '^envelope ' | head -n 2)" \
    test "$RC" -eq 0 -a "$np" -gt 0
bad=$( (cd "$W/pull" && ls | grep '\.content$' | xargs -r sha256sum) |
    awk 'NR == FNR { h[$1] = $2; next } { t = $2; sub(/\.content$/, "", t); if (h[t] != $1) print t }' "$T/handins" -)
check "disk full: the pulled content is byte-exact ($np envelopes)" "$bad" test -z "$bad"

T1=$(awk 'NR == 2 { print $1 }' "$T/handins")
SHA1=$(awk 'NR == 2 { print $2 }' "$T/handins")
hc ec-nppo pullone "$T1" --out "$W/one.content"
check "disk full: PULLSingleImportEnvelope works, content byte-exact" \
    "rc=$RC $OUT" eval '[ "$RC" -eq 0 ] && [ "$(sha_of "$W/one.content")" = "$SHA1" ]'
hc bo-issuer track "$T1"
check "disk full: GetEnvelopeTrackingInfo works" "rc=$RC $OUT" test "$RC" -eq 0

# An acknowledgement writes: success or a Server fault are both acceptable.
hc ec-nppo ack "$T1"
ACK_FULL="rc=$RC $(printf '%s' "$OUT" | head -n 1)"
check "disk full: an acknowledgement succeeds or is a Server fault (retryable)" "$ACK_FULL" \
    eval '[ "$RC" -eq 0 ] || is_fault Server'
echo "# disk full: acknowledgement answered $ACK_FULL"
v=$("$ECERTCTL" --store "$DB" status 2>&1); rc=$?
check "disk full: ecertctl status works" "rc=$rc $v" test "$rc" -eq 0
check "disk full: the daemon is still running (pid $PID0) after the reads" "$(tail -n 5 "$DLOG")" alive

# While full the daemon must not spin (e.g. push workers retrying a failed
# claim without pause): CPU time used over 3 idle seconds.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$DPID/stat" 2>/dev/null || echo 0; }
c0=$(cpu_ticks); sleep 3; c1=$(cpu_ticks)
ms=$(( (c1 - c0) * 1000 / $(getconf CLK_TCK) ))
check "disk full: the idle daemon does not spin (${ms} ms CPU in 3 s)" "${ms} ms" test "$ms" -lt 1000

# ==== 3. space freed: the filler deleted ======================================================

rm -f "$MNT/filler"
echo "# filler deleted; free $(free_kb) KB"
handin "$FULL_NUMBER"
check "space freed: the certificate that failed is accepted now" "rc=$RC $OUT" test "$HANDED" -eq 1
good=0
for i in 1 2 3 4 5; do handin; [ "$HANDED" -eq 1 ] && good=$((good + 1)); done
check "space freed: 5 more hand-ins succeed" "$good of 5; last rc=$RC $OUT" test "$good" = 5
hc ec-nppo ack "$T1"
check "space freed: the acknowledgement succeeds" "rc=$RC $OUT" test "$RC" -eq 0
store_consistent "space freed"

# ==== 4. full again, then the file system grows ===================================================

if [ "$FS" = tmpfs ]; then
    before=$(successes)
    if fill_until_full; then
        RC=$FULL_RC OUT=$FULL_OUT
        check "full again after $(( $(successes) - before )) hand-ins: a Server fault" \
            "rc=$FULL_RC $FULL_OUT" is_fault Server
    else
        not_ok "the disk runs full again within $MAX_FILL hand-ins" "free $(free_kb) KB"
    fi
    check "full again: the daemon is still running (pid $PID0)" "$(tail -n 5 "$DLOG")" alive
    store_consistent "full again"
    if mount -o remount,size=8m "$MNT" 2>"$T/mount.err"; then
        echo "# remounted with size=8m; free $(free_kb) KB"
        handin "$FULL_NUMBER"
        check "after remount size=8m: the failed certificate is accepted" "rc=$RC $OUT" test "$HANDED" -eq 1
        good=0
        for i in 1 2 3 4 5; do handin; [ "$HANDED" -eq 1 ] && good=$((good + 1)); done
        check "after remount size=8m: 5 more hand-ins succeed" "$good of 5; last rc=$RC $OUT" test "$good" = 5
    else
        not_ok "mount -o remount,size=8m" "$(cat "$T/mount.err")"
    fi
fi

# ==== 5. the end =====================================================================================

# ec-nppo takes everything: pull + acknowledge until nothing waits.
for round in $(seq 1 20); do
    hc ec-nppo pull
    list=$(printf '%s\n' "$OUT" | sed -n 's/^envelope tracking=\([^ ]*\).*/\1/p')
    [ -n "$list" ] || break
    for trk in $list; do hc ec-nppo ack "$trk"; done
done
for i in $(seq 1 60); do
    v=$(sql "SELECT count(*) FROM delivery WHERE state != 3")
    [ "$v" = 0 ] && break
    sleep 0.5
done
check "end: every delivery delivered (pull: acknowledged; mail: sent) within 30 s" \
    "$v not: $(sql "SELECT channel, state, count(*), max(attempts) FROM delivery WHERE state != 3 GROUP BY 1, 2" | tr '\n' ' ')" \
    test "$v" = 0
check "end: the daemon never crashed (still pid $PID0)" "$(tail -n 5 "$DLOG")" alive
store_consistent "end"

# content of every stored certificate = what was sent
mkdir -p "$W/content"
sql "SELECT writefile('$W/content/' || tracking, content) FROM certificate" >/dev/null
bad=$( (cd "$W/content" && ls | xargs -r sha256sum) |
    awk 'NR == FNR { h[$1] = $2; next } h[$2] != $1 { print $2 }' "$T/handins" - | head -n 3)
check "end: every stored certificate's content is the bytes handed in" "$bad" test -z "$bad"

kill -TERM "$DPID"
if wait_gone "$DPID" 15; then
    wait "$DPID"; rc=$?
    DPID=
    check "end: ecertd stops on SIGTERM with status 0" "status $rc" test "$rc" -eq 0
else
    not_ok "end: ecertd stops on SIGTERM within 15 s" "still running"
fi
ic=$(sql "PRAGMA integrity_check")
check "end: PRAGMA integrity_check = ok after the daemon stopped" "$ic" test "$ic" = ok

# ==== 6. start-up on a full disk ========================================================================

# (a) Two envelopes left waiting for ec-nppo, the daemon killed (its WAL
# and shared-memory files stay), the disk filled: it must start and serve
# what is stored.
NWAIT=0
if start_daemon; then
    for i in 1 2 3 4; do
        handin
        [ "$HANDED" -eq 1 ] && NWAIT=$((NWAIT + 1))
        [ "$NWAIT" -eq 2 ] && break
    done
    kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
fi
dd if=/dev/zero of="$MNT/filler2" bs=16k 2>/dev/null
echo "# disk filled again for start-up (free $(free_kb) KB; $(cd "$MNT" && ls | tr '\n' ' '))"
TL=$(awk 'END { print $1 }' "$T/handins")
SL=$(awk 'END { print $2 }' "$T/handins")
what="start-up on a full disk after SIGKILL"
if start_daemon; then
    ok "$what: ecertd starts"
    hc ec-nppo headers
    nh=$(printf '%s\n' "$OUT" | grep -c '^header ')
    check "$what: GetImportEnvelopeHeaders lists the $NWAIT waiting envelopes" \
        "rc=$RC headers=$nh $(printf '%s' "$OUT" | head -n 1); store: $(sql "SELECT c.number, d.channel, d.state, d.pull_count
            FROM delivery d JOIN certificate c ON c.id = d.cert_id WHERE d.state != 3" | tr '\n' ' ')" \
        test "$RC:$nh" = "0:$NWAIT"
    hc ec-nppo pull
    np=$(printf '%s\n' "$OUT" | grep -c '^envelope ')
    check "$what: PULLImportEnvelope returns the $NWAIT waiting envelopes" \
        "rc=$RC $(printf '%s' "$OUT" | head -n 1)" test "$RC:$np" = "0:$NWAIT"
    hc ec-nppo pullone "$TL" --out "$W/startup.content"
    check "$what: PULLSingleImportEnvelope serves a stored envelope byte-exact" \
        "rc=$RC $(printf '%s' "$OUT" | head -n 1)" \
        eval '[ "$RC" -eq 0 ] && [ "$(sha_of "$W/startup.content")" = "$SL" ]'
    handin
    check "$what: a hand-in is a Server fault" "rc=$RC $OUT" is_fault Server
    # (b) a clean stop removes the WAL files; a start on the still full disk
    # may refuse (exit status != 0, naming the store) or must serve reads.
    kill -TERM "$DPID"; wait_gone "$DPID" 15; wait "$DPID" 2>/dev/null; DPID=
    what="start-up on a full disk after a clean stop"
    n0=$(wc -l <"$DLOG")
    if start_daemon; then
        hc ec-nppo pullone "$TL" --out "$W/startup.content"
        check "$what: ecertd starts and serves a stored envelope byte-exact" \
            "rc=$RC $(printf '%s' "$OUT" | head -n 1)" \
            eval '[ "$RC" -eq 0 ] && [ "$(sha_of "$W/startup.content")" = "$SL" ]'
    else
        wait "$DPID" 2>/dev/null; rc=$?
        v=$(tail -n +"$((n0 + 1))" "$DLOG" | head -n 3)
        check "$what: ecertd refuses with a clear message (status $rc)" "$v" \
            eval '[ "$rc" -ne 0 ] && printf "%s" "$v" | grep -q "store"'
        echo "# $what: $v"
        DPID=
    fi
else
    # It may also refuse to start when it cannot open its store (SQLite
    # must write to recover the WAL): then with a message naming the store.
    wait "$DPID" 2>/dev/null; rc=$?
    v=$(tail -n 3 "$DLOG")
    check "$what: ecertd refuses with a clear message (status $rc)" "$v" \
        eval '[ "$rc" -ne 0 ] && printf "%s" "$v" | grep -q "store"'
    echo "# $what: $v"
    stop_pid "$DPID" 1; DPID=
fi
rm -f "$MNT/filler2"
if [ -z "$DPID" ] || ! kill -0 "$DPID" 2>/dev/null; then start_daemon; fi
handin
check "start-up on a full disk: after freeing space a hand-in succeeds" "rc=$RC $OUT" test "$HANDED" -eq 1
kill -TERM "$DPID"
wait_gone "$DPID" 15 && { wait "$DPID"; rc=$?; DPID=; }
check "start-up on a full disk: ecertd stops on SIGTERM with status 0" "status ${rc:-?}" \
    eval '[ -z "$DPID" ] && [ "${rc:-1}" -eq 0 ]'
ic=$(sql "PRAGMA integrity_check")
check "start-up on a full disk: PRAGMA integrity_check = ok" "$ic" test "$ic" = ok
n=$(sql "SELECT count(*) FROM certificate")
check "start-up on a full disk: certificates stored ($n) = hand-ins answered with success" \
    "$(successes) successes" test "$n" = "$(successes)"

echo "# daemon log lines about the full disk:"
grep -i -E 'full|space|error' "$DLOG" | sed -E 's/^[0-9T:.-]+Z //' | sort | uniq -c | sort -rn | head -n 6 | sed 's/^/#   /'
echo "# hand-ins answered with success: $(successes); file system $FS"
finish
