#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# crash.sh - crash soak: a real ecertd under continuous load (hand-ins by
# bo-issuer, pulls and acknowledgements by ec-nppo, mail push to an
# smtp-sink) is killed with SIGKILL at random moments and restarted, KILLS
# times.  After each restart and at the end:
#   - every hand-in answered with success is stored, byte-exact;
#   - no envelope acknowledged with success is offered again;
#   - PRAGMA integrity_check is ok;
# and at the end, once the load has stopped and the daemon has run with the
# sink up, every delivery is final (pull: acknowledged; mail: delivered or
# dead) and every delivered message reached the sink.
#
# Run from the project root after `make all build/hubclient`:
#     KILLS=20 bash tests/soak/crash.sh
# Environment: KILLS (default 20), MAX_SECONDS (hard bound on the kill
# phase), HANDIN_LOOPS (parallel hand-in loops, default 2), KEEP=1 keeps the
# temporary directory; ECERTD, ECERTCTL, HUBCLIENT, SMTP_SINK, SAMPLES
# override the defaults.  Prints a figures line
#     crash: kills=K handins=H lost=0 duplicates_after_ack=0 integrity=ok ...
# and a last line "soak: P passed, F failed"; exits 1 if any check failed.

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

KILLS=${KILLS:-20}
MAX_SECONDS=${MAX_SECONDS:-$(( KILLS * 10 + 60 ))}
HANDIN_LOOPS=${HANDIN_LOOPS:-2}
MAX_HANDINS=${MAX_HANDINS:-100000}     # per hand-in loop
DRAIN_SECONDS=${DRAIN_SECONDS:-90}     # end: time allowed to drain

. "$HERE/common.sh"

finish() {
    if [ "$FAIL" -gt 0 ] && [ -s "${DLOG:-/nonexistent}" ]; then
        echo "# ---- last lines of the daemon log ($DLOG) ----"
        tail -n 40 "$DLOG" | sed 's/^/# /'
    fi
    echo "soak: $PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
    exit $?
}

for f in "$ECERTD" "$ECERTCTL" "$HUBCLIENT" "$SINK"; do
    if [ ! -x "$f" ]; then
        not_ok "$f is there" "make all build/hubclient; smtp-sink is in the postfix package"
        finish
    fi
done
for tool in openssl sqlite3 ss sha256sum pkill; do
    command -v "$tool" >/dev/null || { not_ok "$tool is installed" "missing"; finish; }
done
[ -r "$SAMPLE" ] || { not_ok "the sample certificate is there" "$SAMPLE"; finish; }

# ==== processes and clean-up ====================================================

T=$(mktemp -d "${TMPDIR:-/tmp}/ecert-soak.XXXXXX") || exit 1
chmod 755 "$T"
CA=$T/ca
CONF=$T/ecertd.conf
DB=$T/ecert.db
DLOG=$T/ecertd.log
W=$T/work
STOP=$T/stop
mkdir -p "$W/in" "$W/pulled" "$W/check" "$T/mail"
chmod 777 "$T/mail"
: >"$T/handins"; : >"$T/offers"; : >"$T/acks"; : >"$T/dedupe"

DPID=
SINKPID=
LOOP_PIDS=()

cleanup() {
    local p
    touch "$STOP" 2>/dev/null
    for p in "${LOOP_PIDS[@]}"; do stop_pid "$p" 5; done
    [ -n "${CHECK_PID:-}" ] && stop_pid "$CHECK_PID" 5
    [ -n "$DPID" ] && stop_pid "$DPID" 10
    [ -n "$SINKPID" ] && stop_pid "$SINKPID" 5
    if [ "${KEEP:-0}" = 1 ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_daemon() {
    "$ECERTD" -f -c "$CONF" >>"$DLOG" 2>&1 &
    DPID=$!
    wait_port "$PORT" 10 "$DPID"
}

start_sink() {
    local user=()
    [ "$(id -u)" -eq 0 ] && user=(-u nobody)
    "$SINK" "${user[@]}" -d "$T/mail/%M%S." "127.0.0.1:$SINK_PORT" 64 >>"$T/sink.log" 2>&1 &
    SINKPID=$!
    wait_port "$SINK_PORT" 5 "$SINKPID"
}

# ==== set-up =======================================================================

if ! bash "$ROOT/deploy/dev-ca.sh" "$CA" bo-issuer ec-nppo pe-nppo >"$T/dev-ca.log" 2>&1 ||
   [ ! -s "$CA/mail-signer.crt" ] || [ ! -s "$CA/ec-nppo.fp" ]; then
    not_ok "deploy/dev-ca.sh makes the CA and the certificates" "$(cat "$T/dev-ca.log")"
    finish
fi

PORT=$(free_port)
SINK_PORT=$(free_port)
URL=https://127.0.0.1:$PORT/hub/DeliveryService

cat >"$CONF" <<EOF
# crash.sh soak configuration
country = "BO";
listen = { address = "127.0.0.1"; port = $PORT; };
tls = { cert = "$CA/server.crt"; key = "$CA/server.key"; ca = "$CA/ca.crt"; };
store = "$DB";
schema_dir = "$ROOT/wsdl/spscert";
limits = { recv_timeout = 10; send_timeout = 10; idle_timeout = 10; workers = 4;
           max_connections = 64; };
partners = (
  { id = "bo-issuer"; country = "BO"; roles = [ "submit" ];
    fingerprint = "$(cat "$CA/bo-issuer.fp")"; },
  { id = "ec-nppo"; country = "EC"; roles = [ "pull" ];
    fingerprint = "$(cat "$CA/ec-nppo.fp")";
    mail = { to = [ "nppo@ec.invalid" ]; }; },
  { id = "pe-nppo"; country = "PE"; roles = [ "pull" ];
    fingerprint = "$(cat "$CA/pe-nppo.fp")"; }
);
mail = {
  sender = "ecert@gw.invalid";
  ehlo = "gw.invalid";
  signing = { cert = "$CA/mail-signer.crt"; key = "$CA/mail-signer.key"; };
  relay = { host = "127.0.0.1"; port = $SINK_PORT; starttls = "off"; concurrency = 2; };
  retry = { first_delay = 1; factor = 2.0; max_delay = 2; max_age = 60; };
  timeout = 5;
  workers = 2;
};
EOF

OUT=$("$ECERTD" -t -c "$CONF" 2>&1)
if [ $? -ne 0 ]; then
    not_ok "ecertd -t accepts the soak configuration" "$OUT"
    finish
fi
if ! start_sink; then
    not_ok "smtp-sink listens on 127.0.0.1:$SINK_PORT" "$(cat "$T/sink.log")"
    finish
fi
if ! start_daemon; then
    not_ok "ecertd starts and listens on 127.0.0.1:$PORT" "$(tail -n 20 "$DLOG")"
    finish
fi
ok "ecertd (pid $DPID) and smtp-sink are up"

T_START=$(date +%s)
DEADLINE=$(( T_START + MAX_SECONDS ))

# ==== the load ======================================================================

# handin_loop ID: hand in distinct certificates as bo-issuer.  A hand-in
# that fails (daemon down, fault) is retried with the same content, as a
# partner would.  Every success is recorded in $T/handins as
# "TRACKING SHA256 NUMBER".  Every 8th success is handed in again: the
# answer must be the same tracking number (recorded in $T/dedupe).
handin_loop() {
    local id=$1 i=0 n f sha tries trk
    while [ ! -e "$STOP" ] && [ "$i" -lt "$MAX_HANDINS" ] && [ "$(date +%s)" -lt "$DEADLINE" ]; do
        i=$((i + 1))
        n=$(printf 'SK%d%07dBO' "$id" "$i")
        f=$W/in/$n.xml
        variant "$n" "$f"
        sha=$(sha_of "$f")
        for tries in 1 2 3 4 5 6 7 8 9 10; do
            [ -e "$STOP" ] && break
            hc bo-issuer deliver "$f" BO EC 851 70 "$n"
            if [ "$RC" -eq 0 ]; then
                trk=$(tracking_of "$OUT")
                echo "$trk $sha $n" >>"$T/handins"
                if [ $((i % 8)) -eq 0 ]; then
                    hc bo-issuer deliver "$f" BO EC 851 70 "$n"
                    [ "$RC" -eq 0 ] && echo "$trk $(tracking_of "$OUT") $n" >>"$T/dedupe"
                fi
                break
            fi
            echo "$n rc=$RC ${OUT%%$'\n'*}" >>"$T/handin-errors"
            sleep 0.2
        done
    done
}

# pull_loop: ec-nppo alternates PULLImportEnvelope (then acknowledges each
# envelope) and GetImportEnvelopeHeaders.  Every tracking number offered is
# recorded in $T/offers as "START-NS TRACKING OP" (START-NS: when the
# request was sent), every successful acknowledgement in $T/acks as
# "END-NS TRACKING" (END-NS: when the answer was in).  Pulled content is
# kept in $W/pulled/ for comparison.
pull_loop() {
    local k=0 t0 trk list
    while [ ! -e "$STOP" ] && [ "$(date +%s)" -lt "$DEADLINE" ]; do
        k=$((k + 1))
        t0=$(date +%s%N)
        if [ $((k % 3)) -eq 0 ]; then
            hc ec-nppo headers
            if [ "$RC" -eq 0 ]; then
                printf '%s\n' "$OUT" | sed -n "s/^header tracking=\([^ ]*\).*/$t0 \1 headers/p" >>"$T/offers"
            else
                sleep 0.2
            fi
            continue
        fi
        rm -rf "$W/pull.tmp"
        mkdir -p "$W/pull.tmp"
        hc ec-nppo pull --out "$W/pull.tmp"
        if [ "$RC" -ne 0 ]; then sleep 0.2; continue; fi
        list=$(printf '%s\n' "$OUT" | sed -n 's/^envelope tracking=\([^ ]*\).*/\1/p')
        [ -n "$list" ] || { sleep 0.1; continue; }
        printf '%s\n' "$list" | sed "s/^/$t0 /; s/\$/ pull/" >>"$T/offers"
        for trk in $list; do
            [ -f "$W/pull.tmp/$trk.content" ] && mv -f "$W/pull.tmp/$trk.content" "$W/pulled/$trk.content"
            [ -e "$STOP" ] && break
            hc ec-nppo ack "$trk"
            [ "$RC" -eq 0 ] && echo "$(date +%s%N) $trk" >>"$T/acks"
        done
    done
}

# ==== the checks ======================================================================
#
# A check round runs in the background right after each restart (so that
# the next kill still comes 0.2-1.5 s after the restart), one round at a
# time; findings go to files under $W/check:
#   bad         "TRACKING what" per recorded hand-in missing or not byte-exact
#   integrity   integrity_check answers other than "ok"
#   checked_id  certificates up to this row id have had their content hashed

C=$W/check
: >"$C/bad"; : >"$C/integrity"; echo 0 >"$C/checked_id"
RESTART_FAIL=0
CHECK_PID=

# snapshot_handins: complete lines of the hand-in record.
snapshot_handins() {
    awk 'NF == 3 && length($2) == 64' "$T/handins" | sort -u >"$C/handins"
}

# verify_store [all]: every recorded hand-in is in the store with its
# SHA-256; the content of every certificate not yet checked (all: every
# certificate) hashes to its recorded and to its stored SHA-256.
verify_store() {
    local from dir maxid
    from=$(cat "$C/checked_id")
    [ "${1:-}" = all ] && from=0
    snapshot_handins
    # maxid first: every row up to it is then in db.hash (ids grow in
    # commit order), and every recorded hand-in was committed before both.
    maxid=$(sql "SELECT coalesce(max(id), 0) FROM certificate")
    if ! sql "SELECT tracking, lower(hex(sha256)) FROM certificate" >"$C/db.hash"; then
        echo "- sqlite3: $(head -n 1 "$C/db.hash")" >>"$C/bad"
        return
    fi
    # recorded vs stored SHA-256
    awk -F'[ |]' 'NR == FNR { h[$1] = $2; next }
        !($1 in h) { print $1 " missing (" $3 ")"; next }
        h[$1] != $2 { print $1 " sha256 differs (" $3 ")" }' "$C/db.hash" "$C/handins" >>"$C/bad"
    # content of the certificates not yet checked, written out by sqlite3
    dir=$C/content
    rm -rf "$dir"; mkdir -p "$dir"
    if sql "SELECT writefile('$dir/' || tracking, content) FROM certificate
            WHERE id > $from AND id <= $maxid" >/dev/null; then
        ( cd "$dir" && find . -type f -printf '%f\n' | xargs -r sha256sum ) |
            awk '{ print $2 "|" $1 }' >"$C/content.hash"
        awk -F'|' 'FILENAME == ARGV[1] { h[$1] = $2; next }
            FILENAME == ARGV[2] { split($0, a, " "); r[a[1]] = a[2]; n[a[1]] = a[3]; next }
            { if (!($1 in h) || h[$1] != $2) print $1 " content differs from the stored sha256"
              if ($1 in r && r[$1] != $2) print $1 " content differs from what was sent (" n[$1] ")" }' \
            "$C/db.hash" "$C/handins" "$C/content.hash" >>"$C/bad"
        echo "$maxid" >"$C/checked_id"
    else
        echo "- sqlite3 writefile failed" >>"$C/bad"
    fi
    rm -rf "$dir"
}

lost_count() { awk '{ print $1 }' "$C/bad" | sort -u | grep -c .; }

# verify_acks: DUPS = tracking numbers acknowledged with success and offered
# again by a request sent after the acknowledgement's answer.
verify_acks() {
    awk 'NR == FNR { if (NF == 2 && (!($2 in a) || $1 < a[$2])) a[$2] = $1; next }
        NF == 3 && ($2 in a) && $1 > a[$2] { print $2 " offered by " $3 " " ($1 - a[$2]) / 1e9 " s after its ack" }' \
        "$T/acks" "$T/offers" >"$C/dups"
    DUPS=$(grep -c . "$C/dups")
}

verify_integrity() {
    local r
    r=$(sql "PRAGMA integrity_check")
    [ "$r" = ok ] || printf '%s: %s\n' "$1" "$(printf '%s' "$r" | head -n 3 | tr '\n' ' ')" >>"$C/integrity"
}

# check_round LABEL: the checks after a restart.
check_round() {
    verify_store
    verify_integrity "$1"
    verify_acks
    printf '# %s: %d hand-ins recorded, %d acks; lost %d, duplicates after ack %d, integrity %s\n' \
        "$1" "$(wc -l <"$C/handins")" "$(wc -l <"$T/acks")" "$(lost_count)" "$DUPS" \
        "$( [ -s "$C/integrity" ] && echo FAILED || echo ok)"
}

# ==== kill, restart, check ==============================================================

for k in $(seq 1 "$HANDIN_LOOPS"); do
    handin_loop "$k" >/dev/null 2>&1 &
    LOOP_PIDS+=($!)
done
pull_loop >/dev/null 2>&1 &
LOOP_PIDS+=($!)

KILLED=0
STARTUP_KILLS=0
RESTARTS_SLOW=0
while [ "$KILLED" -lt "$KILLS" ] && [ "$(date +%s)" -lt "$DEADLINE" ]; do
    ms=$(( 200 + RANDOM % 1301 ))
    sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
    if ! kill -0 "$DPID" 2>/dev/null; then
        wait "$DPID" 2>/dev/null
        not_ok "ecertd was still running before kill $((KILLED + 1))" "exit status $?; $(tail -n 5 "$DLOG")"
        RESTART_FAIL=$((RESTART_FAIL + 1))
    else
        kill -KILL "$DPID"
        wait "$DPID" 2>/dev/null
    fi
    KILLED=$((KILLED + 1))
    echo "# ---- soak: SIGKILL $KILLED at $(date +%T.%N | cut -c1-12) ----" >>"$DLOG"
    t0=$(now_ms)
    # Every 5th kill also hits the daemon while it starts (store opened,
    # mail recovery, listener not yet or just up): counted as a kill.
    if [ $((KILLED % 5)) -eq 0 ] && [ "$KILLED" -lt "$KILLS" ]; then
        "$ECERTD" -f -c "$CONF" >>"$DLOG" 2>&1 &
        DPID=$!
        ms=$(( RANDOM % 600 ))
        sleep "$(printf '0.%03d' "$ms")"
        kill -KILL "$DPID" 2>/dev/null
        wait "$DPID" 2>/dev/null
        KILLED=$((KILLED + 1))
        STARTUP_KILLS=$((STARTUP_KILLS + 1))
        echo "# ---- soak: SIGKILL $KILLED ${ms} ms after start ----" >>"$DLOG"
    fi
    started=0
    for try in 1 2 3; do
        if start_daemon; then started=1; break; fi
        stop_pid "$DPID" 2
        sleep 0.5
    done
    if [ "$started" -ne 1 ]; then
        RESTART_FAIL=$((RESTART_FAIL + 1))
        not_ok "ecertd restarts after kill $KILLED" "$(tail -n 10 "$DLOG")"
        break
    fi
    [ $(( $(now_ms) - t0 )) -gt 5000 ] && RESTARTS_SLOW=$((RESTARTS_SLOW + 1))
    [ -n "$CHECK_PID" ] && wait "$CHECK_PID"
    check_round "after kill $KILLED" &
    CHECK_PID=$!
done
[ -n "$CHECK_PID" ] && wait "$CHECK_PID"
T_KILLS=$(( $(date +%s) - T_START ))

# ==== stop the load, drain ===============================================================

touch "$STOP"
for p in "${LOOP_PIDS[@]}"; do
    wait_gone "$p" 30 || stop_pid "$p" 2
    wait "$p" 2>/dev/null
done
LOOP_PIDS=()

check "the kill loop did all $KILLS kills within MAX_SECONDS=$MAX_SECONDS" \
    "only $KILLED kills in ${T_KILLS} s" test "$KILLED" -ge "$KILLS"
check "ecertd restarted after every kill (listening within 10 s)" \
    "$RESTART_FAIL failures" test "$RESTART_FAIL" -eq 0
[ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null || { start_daemon || true; }

# ec-nppo pulls and acknowledges what is left, until nothing is waiting.
end=$(( $(date +%s) + DRAIN_SECONDS ))
while [ "$(date +%s)" -lt "$end" ]; do
    t0=$(date +%s%N)
    rm -rf "$W/pull.tmp"; mkdir -p "$W/pull.tmp"
    hc ec-nppo pull --out "$W/pull.tmp"
    [ "$RC" -eq 0 ] || { sleep 0.2; continue; }
    list=$(printf '%s\n' "$OUT" | sed -n 's/^envelope tracking=\([^ ]*\).*/\1/p')
    [ -n "$list" ] || break
    printf '%s\n' "$list" | sed "s/^/$t0 /; s/\$/ pull/" >>"$T/offers"
    for trk in $list; do
        [ -f "$W/pull.tmp/$trk.content" ] && mv -f "$W/pull.tmp/$trk.content" "$W/pulled/$trk.content"
        hc ec-nppo ack "$trk"
        [ "$RC" -eq 0 ] && echo "$(date +%s%N) $trk" >>"$T/acks"
    done
done
t0=$(date +%s%N)
hc ec-nppo headers
printf '%s\n' "$OUT" | sed -n "s/^header tracking=\([^ ]*\).*/$t0 \1 headers/p" >>"$T/offers"
check "drain: ec-nppo's header list is empty after pulling and acknowledging everything" \
    "rc=$RC $(printf '%s' "$OUT" | head -n 3)" \
    eval '[ "$RC" -eq 0 ] && ! printf "%s" "$OUT" | grep -q "^header "'
hc pe-nppo headers
check "pe-nppo (nothing addressed to PE) sees no envelope" \
    "rc=$RC $(printf '%s' "$OUT" | head -n 3)" \
    eval '[ "$RC" -eq 0 ] && ! printf "%s" "$OUT" | grep -q "^header "'

# mail: with the sink up, every smtp delivery ends delivered (or dead).
while [ "$(date +%s)" -lt "$end" ]; do
    open=$(sql "SELECT count(*) FROM delivery WHERE channel = 2 AND state IN (0, 1, 2)")
    [ "$open" = 0 ] && break
    sleep 0.5
done
T_TOTAL_DRAIN=$(( $(date +%s) - T_START - T_KILLS ))

# ==== final checks =============================================================================

verify_store all
verify_acks
snapshot_handins
LOST=$(lost_count)
H=$(wc -l <"$C/handins")
STORED=$(sql "SELECT count(*) FROM certificate")
check "every hand-in answered with success is stored byte-exact ($H hand-ins, after $KILLED restarts and at the end)" \
    "lost=$LOST: $(head -n 3 "$C/bad" | tr '\n' ' ')" test "$LOST" -eq 0
check "some hand-ins were answered (the load ran)" "handins=$H" test "$H" -gt 0
v=$(awk 'NR == FNR { t[$1]++; next } END { for (x in t) if (t[x] > 1) print x }' "$C/handins" /dev/null)
check "no two hand-ins were answered with the same tracking number" "$v" test -z "$v"
v=$(awk '$1 != $2' "$T/dedupe")
check "a hand-in repeated after success answers the same tracking number ($(wc -l <"$T/dedupe") repeats)" \
    "$(printf '%s' "$v" | head -n 3 | tr '\n' ' ')" test -z "$v"
check "no acknowledged envelope was offered again ($(wc -l <"$T/acks") acks, $(wc -l <"$T/offers") offers)" \
    "duplicates_after_ack=$DUPS: $(head -n 3 "$C/dups" | tr '\n' ' ')" test "$DUPS" -eq 0

# pulled content = what was handed in
bad=
nb=0
if ls "$W/pulled" | grep -q .; then
    bad=$( (cd "$W/pulled" && find . -name '*.content' -printf '%f\n' | xargs -r sha256sum) |
        awk 'NR == FNR { h[$1] = $2; next } { t = $2; sub(/\.content$/, "", t)
             if (t in h && h[t] != $1) print t }' "$C/handins" -)
    nb=$(ls "$W/pulled" | wc -l)
fi
check "every pulled envelope's content is the bytes handed in ($nb compared)" \
    "differs: $(printf '%s' "$bad" | head -n 3 | tr '\n' ' ')" test -z "$bad"

v=$(sql "SELECT count(*) FROM certificate c WHERE (SELECT count(*) FROM delivery d WHERE d.cert_id = c.id) != 2")
check "each certificate has exactly its 2 deliveries (ec-nppo pull + smtp)" "$v without" test "$v" = 0
v=$(sql "SELECT count(*) FROM delivery WHERE channel = 1 AND (partner != 'ec-nppo' OR state != 3)")
check "every pull delivery ended acknowledged (delivered)" \
    "$v not; $(sql "SELECT partner, state, count(*) FROM delivery WHERE channel = 1 GROUP BY 1, 2" | tr '\n' ' ')" \
    test "$v" = 0
v=$(sql "SELECT count(*) FROM delivery WHERE channel = 2 AND state NOT IN (3, 7)")
check "every mail delivery ended delivered or dead within ${DRAIN_SECONDS} s of the end of the load" \
    "$v not; $(sql "SELECT state, count(*), max(attempts) FROM delivery WHERE channel = 2 GROUP BY 1" | tr '\n' ' ')" \
    test "$v" = 0
MAIL_DELIVERED=$(sql "SELECT count(*) FROM delivery WHERE channel = 2 AND state = 3")
MAIL_DEAD=$(sql "SELECT count(*) FROM delivery WHERE channel = 2 AND state = 7")
check "no mail delivery is dead (the sink was up throughout)" \
    "$(sql "SELECT c.tracking, d.last_error FROM delivery d JOIN certificate c ON c.id = d.cert_id
            WHERE d.channel = 2 AND d.state = 7 LIMIT 3" | tr '\n' ' ')" test "$MAIL_DEAD" = 0

# every delivered mail reached the sink (at least once)
grep -h -i -o '^Message-ID: *<[^>]*>' "$T/mail"/* 2>/dev/null |
    sed 's/^[^<]*<\([^.]*\)\.ec-nppo@gw\.invalid>$/\1/' | sort >"$C/sink.ids"
SINK_MSGS=$(wc -l <"$C/sink.ids")
SINK_DUPS=$(uniq -d "$C/sink.ids" | wc -l)
sql "SELECT c.tracking FROM delivery d JOIN certificate c ON c.id = d.cert_id
     WHERE d.channel = 2 AND d.state = 3" | sort >"$C/delivered.ids"
v=$(sort -u "$C/sink.ids" | comm -23 "$C/delivered.ids" - | head -n 3 | tr '\n' ' ')
check "every delivered mail delivery's Message-ID reached the sink" "missing: $v" test -z "$v"
echo "# sink: $SINK_MSGS messages, $SINK_DUPS Message-IDs received more than once (at-least-once after kills)"

# the daemon stops cleanly; the store is intact
DPID_END=$DPID
kill -TERM "$DPID"
if wait_gone "$DPID" 15; then
    wait "$DPID"; rc=$?
    DPID=
    check "ecertd stops on SIGTERM with status 0" "status $rc" test "$rc" -eq 0
else
    not_ok "ecertd stops on SIGTERM within 15 s" "pid $DPID_END still running"
    stop_pid "$DPID" 1; DPID=
fi
verify_integrity "at the end"
INTEGRITY=ok
[ -s "$C/integrity" ] && INTEGRITY=failed
check "PRAGMA integrity_check = ok (after each restart and at the end)" \
    "$(head -n 3 "$C/integrity" | tr '\n' ' ')" test "$INTEGRITY" = ok
v=$("$ECERTCTL" --store "$DB" check 2>&1); rc=$?
check "ecertctl check passes" "rc=$rc $v" test "$rc" -eq 0

nerr=$(grep -c -E 'level=(error|fatal)|error: |ERROR|AddressSanitizer|runtime error' "$DLOG")
echo "# daemon log: $(wc -l <"$DLOG") lines, $nerr error lines; hand-in client errors: $(wc -l <"$T/handin-errors" 2>/dev/null || echo 0)"
if [ "$nerr" -gt 0 ]; then
    grep -E 'level=(error|fatal)|error: |ERROR|AddressSanitizer|runtime error' "$DLOG" |
        sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z?//; s/(tracking|id|pid|ms|elapsed_ms|peer)=[^ ]*//g' |
        sort | uniq -c | sort -rn | head -n 8 | sed 's/^/#   /'
fi
echo "# kills: $KILLED ($STARTUP_KILLS of them 0-600 ms after start), restarts slower than 5 s: $RESTARTS_SLOW"
echo "# time: kill phase ${T_KILLS} s, drain ${T_TOTAL_DRAIN} s; stored certificates $STORED (hand-ins answered $H)"

echo "crash: kills=$KILLED handins=$H lost=$LOST duplicates_after_ack=$DUPS integrity=$INTEGRITY mail_delivered=$MAIL_DELIVERED mail_dead=$MAIL_DEAD"
finish
