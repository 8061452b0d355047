#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# run.sh - the ecert-gateway benchmarks (make bench, make bench-scale).
#
#   bash tests/bench/run.sh            pull, hand-in, push, memory, latency
#                                      and the 10 k store; < 20 min
#   bash tests/bench/run.sh --scale    the store at SCALE_N certificates
#                                      against 10 k (may take long)
#
# Every figure is set against a reference measured in the same run on the
# same machine: nginx for pull, the same daemon without fsync (and the
# disk's own fsync rate) for hand-in, Postfix's smtp-source for push, the
# 10 k store for scale.  Everything runs on 127.0.0.1 in a temporary
# directory; every process started here is stopped on exit.
#
# Environment (defaults): BENCH_SECS=10 (seconds per load run, 2 of them
# warm-up), CONNS=50, PUSH_N=2000, PUSH_C=16 (mail concurrency),
# LAT_SECS=15, PROBE_RATE=20, PROFILE=1 (perf, when installed), REPEAT=2
# (ours and the reference run interleaved this many times; best of each),
# SCALE_N=10000000 (--scale), SCALE_SMALL=10000, KEEP=1 keeps the
# temporary directory.  Output: the table on stdout and in
# tests/bench/results/latest.md (--scale: scale-latest.md).

set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1

MODE=bench
[ "${1:-}" = --scale ] && MODE=scale

BIN=$ROOT/build/bench
ECERTD=$ROOT/build/ecertd
ECERTD_STATS=$BIN/ecertd-stats
CTL=$ROOT/build/ecertctl
SAMPLE=$(cd "$ROOT/../shared/samples/spscert" 2>/dev/null && pwd)/agrocalidad-qa-BO-to-EC-491412337BO.xml
SECS=${BENCH_SECS:-10}
WARM=2
CONNS=${CONNS:-50}
PUSH_N=${PUSH_N:-2000}
PUSH_C=${PUSH_C:-16}
LAT_SECS=${LAT_SECS:-15}
PROBE_RATE=${PROBE_RATE:-20}
PROFILE=${PROFILE:-1}
REPEAT=${REPEAT:-2}
SCALE_N=${SCALE_N:-10000000}
SCALE_SMALL=${SCALE_SMALL:-10000}
NS=http://ephyto.ippc.int/IDeliveryService

die() { echo "bench: $*" >&2; exit 1; }

for f in "$ECERTD" "$CTL" "$BIN/loadgen" "$BIN/filler" "$BIN/fsyncrate" "$BIN/latprobe" \
         "$ECERTD_STATS"; do
    [ -x "$f" ] || die "$f missing (make all bench-tools)"
done
[ -r "$SAMPLE" ] || die "sample $SAMPLE missing"
for t in curl openssl ss sqlite3; do
    command -v "$t" >/dev/null || die "$t missing (make deps)"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
SINK=/usr/sbin/smtp-sink
SOURCE=/usr/sbin/smtp-source
PERF=$(command -v perf || true)
[ "$PROFILE" = 1 ] || PERF=

T=$(mktemp -d "${TMPDIR:-/tmp}/ecert-bench.XXXXXX") || exit 1
chmod 755 "$T"
PIDS=()
T_START=$(date +%s)

# ---- processes ---------------------------------------------------------------

# stop PID: TERM, up to 10 s, then KILL; reaps it.
stop() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

cleanup() {
    local p
    for p in "${PIDS[@]}"; do stop "$p"; done
    if [ "${KEEP:-0}" = 1 ]; then echo "bench: kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

free_port() {
    local p=$((20000 + RANDOM % 30000)) i
    for i in $(seq 1 500); do
        port_in_use "$p" || { echo "$p"; return 0; }
        p=$((p + 1))
    done
    die "no free port"
}

# wait_port PORT PID: until something listens (20 s), while PID lives.
wait_port() {
    local i
    for i in $(seq 1 400); do
        port_in_use "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# start_ecertd NAME CONF [ENV=VALUE...]: sets DPID, DPORT from the config.
start_ecertd() {
    local name=$1 conf=$2 bin=$ECERTD
    shift 2
    [ "${USE_STATS:-0}" = 1 ] && bin=$ECERTD_STATS
    env "$@" "$bin" -f -c "$conf" >"$T/$name.log" 2>&1 &
    DPID=$!
    PIDS+=("$DPID")
    DPORT=$(sed -n 's/^listen = { address = "127.0.0.1"; port = \([0-9]*\);.*/\1/p' "$conf")
    wait_port "$DPORT" "$DPID" || { tail -20 "$T/$name.log" >&2; die "ecertd ($name) did not start"; }
}

stop_ecertd() { stop "$DPID"; DPID=; }

vmhwm_mb() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null; }

# ---- configuration, requests ---------------------------------------------------

CA=$T/ca
bash deploy/dev-ca.sh "$CA" >"$T/dev-ca.log" 2>&1 || die "dev-ca.sh failed: $(cat "$T/dev-ca.log")"

# write_conf FILE PORT STORE WORKERS [MAILPORT MAILC [MAIL_PARTNER_EXTRA]]
# Partners: bo-issuer (submit), ec-nppo, pe-nppo (pull; pe-nppo receives by
# mail when MAILPORT is given), plus the lines of $EXTRA_PARTNERS.
write_conf() {
    local f=$1 port=$2 store=$3 workers=$4 mport=${5:-} mc=${6:-4} pemail="" mail=""
    if [ -n "$mport" ]; then
        pemail='mail = { to = [ "pe-nppo@partner.invalid" ]; };'
        mail="mail = {
  sender = \"ecert@gateway.invalid\"; ehlo = \"gateway.invalid\";
  signing = { cert = \"$CA/mail-signer.crt\"; key = \"$CA/mail-signer.key\"; };
  relay = { host = \"127.0.0.1\"; port = $mport; starttls = \"off\"; concurrency = $mc; };
  retry = { first_delay = 1; factor = 2.0; max_delay = 60; max_age = 3600; };
  timeout = 30; workers = $mc; };"
    fi
    cat >"$f" <<EOF
# SPDX-License-Identifier: GPL-2.0-or-later
# benchmark configuration (tests/bench/run.sh)
country = "BO";
listen = { address = "127.0.0.1"; port = $port; };
tls = { cert = "$CA/server.crt"; key = "$CA/server.key"; ca = "$CA/ca.crt"; };
store = "$store";
schema_dir = "$ROOT/wsdl/spscert";
limits = { max_request_bytes = 1048576; xml_depth = 64; max_pull = 50;
  recv_timeout = 30; send_timeout = 30; idle_timeout = 60;
  workers = $workers; max_connections = 1024; };
$mail
partners = (
  { id = "bo-issuer"; country = "BO"; roles = [ "submit" ]; certificate = "$CA/bo-issuer.crt"; },
${EXTRA_PARTNERS:-}
  { id = "ec-nppo"; country = "EC"; roles = [ "submit", "pull" ]; certificate = "$CA/ec-nppo.crt"; },
  { id = "pe-nppo"; country = "PE"; roles = [ "submit", "pull" ]; certificate = "$CA/pe-nppo.crt"; $pemail }
);
EOF
}

xml_escape() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'; }

# deliver_tmpl NUMBER TO: a DeliverEnvelope request for the sample with
# certificate number NUMBER (may hold @N@), addressed to TO (EC or PE).
deliver_tmpl() {
    local num=$1 to=$2
    printf '%s' '<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><ns:DeliverEnvelope xmlns:ns="http://ephyto.ippc.int/"><ns:env>'
    printf '<hub:From xmlns:hub="http://ephyto.ippc.int/HUB.Entities">BO</hub:From>'
    printf '<hub:To xmlns:hub="http://ephyto.ippc.int/HUB.Entities">%s</hub:To>' "$to"
    printf '<hub:CertificateType xmlns:hub="http://ephyto.ippc.int/HUB.Entities">851</hub:CertificateType>'
    printf '<hub:CertificateStatus xmlns:hub="http://ephyto.ippc.int/HUB.Entities">70</hub:CertificateStatus>'
    printf '<hub:NPPOCertificateNumber xmlns:hub="http://ephyto.ippc.int/HUB.Entities">%s</hub:NPPOCertificateNumber>' "$num"
    printf '<hub:Content xmlns:hub="http://ephyto.ippc.int/HUB.Entities">'
    sed -e "s#<ram:ID>491412337BO</ram:ID>#<ram:ID>$num</ram:ID>#" \
        -e "/<ram:ImportSPSCountry>/,/<\/ram:ImportSPSCountry>/ s#<ram:ID>EC</ram:ID>#<ram:ID>$to</ram:ID>#" \
        "$SAMPLE" | xml_escape
    printf '</hub:Content></ns:env></ns:DeliverEnvelope></soap:Body></soap:Envelope>\n'
}

soap_body() {  # soap_body OPERATION [INNER-XML]
    printf '<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><ns:%s xmlns:ns="http://ephyto.ippc.int/">%s</ns:%s></soap:Body></soap:Envelope>\n' "$1" "${2:-}" "$1"
}

# post PORT WHO ACTION BODYFILE OUT: curl POST; HTTP code on stdout.
post() {
    curl -sS --max-time 30 --cacert "$CA/ca.crt" --cert "$CA/$2.crt" --key "$CA/$2.key" \
        -H 'Content-Type: text/xml; charset=utf-8' -H "SOAPAction: \"$NS/$3\"" \
        --data-binary @"$4" -o "$5" -w '%{http_code}' "https://127.0.0.1:$1/hub/DeliveryService"
}

tracking_in() { grep -o 'hubDeliveryNumber>[^<]*' "$1" | head -n 1 | sed 's/.*>//'; }

# lg LABEL PORT WHO ACTION [loadgen args...]: one loadgen run; its line is
# kept in $T/lg-LABEL.txt and on stdout.
lg() {
    local label=$1 port=$2 who=$3 action=$4
    shift 4
    "$BIN/loadgen" -u "https://127.0.0.1:$port/hub/DeliveryService" --cert "$CA/$who.crt" \
        --key "$CA/$who.key" --cacert "$CA/ca.crt" -a "$NS/$action" --label "$label" "$@" \
        >"$T/lg-$label.txt" 2>"$T/lg-$label.err"
    cat "$T/lg-$label.txt"
    [ -s "$T/lg-$label.err" ] && sed 's/^/  /' "$T/lg-$label.err" | head -5 >&2
    CMDS+=("loadgen --label $label -u https://127.0.0.1:PORT/hub/DeliveryService --cert $who.crt -a .../$action ${*//$T/TMP}")
}

# kv FILE KEY: the value of the first KEY=VALUE word in FILE.
kv() { awk -v k="$2" '{ for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) { print substr($i, length(k) + 2); exit } }' "$1" 2>/dev/null; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }" 2>/dev/null; }

# ---- results -----------------------------------------------------------------

ROWS=()
CMDS=()
NOTES=()
# row FIGURE OURS REFERENCE RATIO TARGET MET
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }
met() { awk "BEGIN { exit !($1) }" 2>/dev/null && echo yes || echo NO; }
note() { NOTES+=("$*"); echo "bench: $*"; }

# profile NAME PID SECS: perf samples of PID while load runs elsewhere.
profile() {
    [ -n "$PERF" ] || return 0
    "$PERF" record -F 299 --call-graph dwarf,16384 -p "$2" -o "$T/perf-$1.data" -- sleep "$3" \
        >"$T/perf-$1.log" 2>&1
    {
        echo "by object:"
        "$PERF" report -i "$T/perf-$1.data" --no-children --stdio --sort dso -g none \
            --percent-limit 2 2>/dev/null | grep -v '^#' | grep -v '^$' | head -10
        echo "by function, self:"
        "$PERF" report -i "$T/perf-$1.data" --no-children --stdio --sort dso,symbol \
            -g none --percent-limit 0.8 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
        echo "by function, inclusive (children), user space:"
        "$PERF" report -i "$T/perf-$1.data" --children --stdio --sort symbol \
            -g none --percent-limit 3 2>/dev/null | grep -v '^#' | grep -v '^$' |
            grep -v ' 0x0000' | grep -v '\[k\]' | head -45
    } >"$T/profile-$1.txt"
}

# ==== fsync rate of the store's file system ====================================

fsync_phase() {
    "$BIN/fsyncrate" "$T" 3 >"$T/fsync.txt" || die "fsyncrate failed"
    FSYNC_RATE=$(kv "$T/fsync.txt" rate)
    cat "$T/fsync.txt" >>"$T/fsync-all.txt"
    CMDS+=("fsyncrate TMPDIR 3    # 512-byte appends + fdatasync, before and after the hand-in runs")
    echo "bench: disk: $FSYNC_RATE fsyncs/s (512-byte append + fdatasync)"
}

# ==== pull: ecertd against nginx ================================================

pull_phase() {
    local port nport npid conf=$T/pull.conf trk ours ref r be bn
    port=$(free_port)
    write_conf "$conf" "$port" "$T/pull.db" $((CONNS + 6))
    start_ecertd pull "$conf"
    deliver_tmpl 491412337BO EC >"$T/deliver-one.xml"
    [ "$(post "$port" bo-issuer DeliverEnvelope "$T/deliver-one.xml" "$T/deliver-one.out")" = 200 ] ||
        die "hand-in of the sample failed: $(head -c 400 "$T/deliver-one.out")"
    trk=$(tracking_in "$T/deliver-one.out")
    [ -n "$trk" ] || die "no tracking number: $(head -c 400 "$T/deliver-one.out")"
    soap_body PULLSingleImportEnvelope "<ns:hubTrackingNumber>$trk</ns:hubTrackingNumber>" >"$T/pullone.xml"
    mkdir -p "$T/www/hub"
    [ "$(post "$port" ec-nppo PULLSingleImportEnvelope "$T/pullone.xml" "$T/www/hub/DeliveryService")" = 200 ] ||
        die "PULLSingleImportEnvelope failed"
    grep -q 491412337BO "$T/www/hub/DeliveryService" || die "pulled answer lacks the certificate"
    chmod -R a+rX "$T/www"
    PULL_BYTES=$(wc -c <"$T/www/hub/DeliveryService")

    # nginx: same certificate, key, client CA, TLS 1.3, keep-alive; the POST
    # is answered 200 with ecertd's answer bytes (405 -> 200 static file).
    nport=$(free_port)
    mkdir -p "$T/nginx/body"
    cat >"$T/nginx/nginx.conf" <<NGINXCONF
# SPDX-License-Identifier: GPL-2.0-or-later
worker_processes auto;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $T/nginx/body;
    keepalive_timeout 60;
    keepalive_requests 1000;
    server {
        listen 127.0.0.1:$nport ssl;
        ssl_certificate $CA/server.crt;
        ssl_certificate_key $CA/server.key;
        ssl_client_certificate $CA/ca.crt;
        ssl_verify_client on;
        ssl_protocols TLSv1.3;
        root $T/www;
        location = /hub/DeliveryService {
            types { }
            default_type "text/xml; charset=utf-8";
            error_page 405 =200 \$uri;
        }
    }
}
NGINXCONF
    "$NGINX" -e "$T/nginx/error.log" -p "$T/nginx" -c "$T/nginx/nginx.conf" -g 'daemon off;' \
        >"$T/nginx/out.log" 2>&1 &
    npid=$!
    PIDS+=("$npid")
    wait_port "$nport" "$npid" || die "nginx did not start: $(cat "$T/nginx/error.log" "$T/nginx/out.log")"
    [ "$(post "$nport" ec-nppo PULLSingleImportEnvelope "$T/pullone.xml" "$T/nginx/check.out")" = 200 ] &&
        cmp -s "$T/nginx/check.out" "$T/www/hub/DeliveryService" ||
        die "nginx does not answer the POST with the same bytes"
    CMDS+=("nginx -p TMP/nginx -c TMP/nginx/nginx.conf -g 'daemon off;'  # nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'); both servers up, runs interleaved")

    for r in $(seq 1 "$REPEAT"); do
        lg "pull-ecertd-$r" "$port" ec-nppo PULLSingleImportEnvelope -c "$CONNS" -d "$SECS" -w "$WARM" \
            -b "$T/pullone.xml" --expect 491412337BO
        lg "pull-nginx-$r" "$nport" ec-nppo PULLSingleImportEnvelope -c "$CONNS" -d "$SECS" -w "$WARM" \
            -b "$T/pullone.xml" --expect 491412337BO
    done
    stop "$npid"
    if [ -n "$PERF" ]; then
        "$BIN/loadgen" -u "https://127.0.0.1:$port/hub/DeliveryService" --cert "$CA/ec-nppo.crt" \
            --key "$CA/ec-nppo.key" --cacert "$CA/ca.crt" -a "$NS/PULLSingleImportEnvelope" \
            -c "$CONNS" -d 7 -b "$T/pullone.xml" --label prof >/dev/null 2>&1 &
        local lpid=$!
        PIDS+=("$lpid")
        sleep 1
        profile pull "$DPID" 5
        wait "$lpid"
    fi
    stop_ecertd

    # ecertd's peak memory with 200 connections: 200 workers, then CONNS + 6
    # workers as in the runs above (idle connections are parked between
    # requests, so every connection is served either way).
    write_conf "$T/mem.conf" "$port" "$T/pull.db" 200
    start_ecertd mem "$T/mem.conf"
    lg mem-200 "$port" ec-nppo PULLSingleImportEnvelope -c 200 -d 6 -w 1 --timeout 10 \
        -b "$T/pullone.xml" --expect 491412337BO
    MEM200=$(vmhwm_mb "$DPID")
    stop_ecertd
    write_conf "$T/mem56.conf" "$port" "$T/pull.db" $((CONNS + 6))
    start_ecertd mem56 "$T/mem56.conf"
    lg mem-200-w56 "$port" ec-nppo PULLSingleImportEnvelope -c 200 -d 6 -w 1 --timeout 10 \
        -b "$T/pullone.xml" --expect 491412337BO
    MEM200W=$(vmhwm_mb "$DPID")
    stop_ecertd

    be=$(best pull-ecertd); bn=$(best pull-nginx)
    ours=$(kv "$T/lg-$be.txt" rps)
    ref=$(kv "$T/lg-$bn.txt" rps)
    PULL_RATIO=$(calc "$ours / $ref")
    row "pull PULLSingleImportEnvelope, $CONNS conns (req/s; ${PULL_BYTES} B answer)" "$ours" \
        "$ref (nginx)" "$PULL_RATIO" "≥ 0.7" "$(met "$PULL_RATIO >= 0.7")"
    row "pull p99 latency, $CONNS conns (ms)" "$(kv "$T/lg-$be.txt" p99_ms)" \
        "$(kv "$T/lg-$bn.txt" p99_ms) (nginx)" \
        "$(calc "$(kv "$T/lg-$be.txt" p99_ms) / $(kv "$T/lg-$bn.txt" p99_ms)")" "-" "-"
    row "ecertd peak RSS (VmHWM), 200 conns, $((CONNS + 6)) workers (MB; $(kv "$T/lg-mem-200-w56.txt" rps) req/s, $(kv "$T/lg-mem-200-w56.txt" all_errors) failed)" \
        "$MEM200W" "-" "-" "≤ 64" "$(met "$MEM200W <= 64 && $(kv "$T/lg-mem-200-w56.txt" all_errors) == 0")"
    row "ecertd peak RSS (VmHWM), 200 conns, 200 workers (MB; $(kv "$T/lg-mem-200.txt" rps) req/s; one worker per connection, for comparison)" \
        "$MEM200" "-" "-" "-" "-"
}

# best PREFIX: the label PREFIX-N of the run with the highest rate.
best() {
    local f
    for f in "$T"/lg-"$1"-[0-9]*.txt; do
        echo "$(kv "$f" rps) $(basename "$f" .txt)"
    done | sort -rn | head -n 1 | sed 's/^[^ ]* lg-//'
}

# ==== hand-in: durable against no fsync ============================================

# handin_run NAME PREFIX [ENV=VALUE...]: a fresh store, CONNS connections of
# distinct certificates; hand-ins per commit in $T/NAME.percommit.
handin_run() {
    local name=$1 prefix=$2 port h0 c0 h1 c1 pc=-
    shift 2
    port=$(free_port)
    rm -f "$T/$name.db" "$T/$name.db-wal" "$T/$name.db-shm"
    write_conf "$T/$name.conf" "$port" "$T/$name.db" $((CONNS + 6))
    USE_STATS=1 start_ecertd "$name" "$T/$name.conf" \
        ECERTD_BENCH_STATS="$T/$name.stats" ECERTD_BENCH_STORE="$T/$name.db" "$@"
    deliver_tmpl "$prefix@N@" EC >"$T/$name.tmpl"
    sleep 0.5
    h0=$(kv "$T/$name.stats" handins); c0=$(kv "$T/$name.stats" commits)
    lg "$name" "$port" bo-issuer DeliverEnvelope -c "$CONNS" -d "$SECS" -w "$WARM" \
        -t "$T/$name.tmpl" --expect hubDeliveryNumber
    sleep 0.5
    h1=$(kv "$T/$name.stats" handins); c1=$(kv "$T/$name.stats" commits)
    if [ -n "$h1" ] && [ -n "$c1" ] && [ "$((c1 - ${c0:-0}))" -gt 0 ]; then
        pc=$(calc "($h1 - ${h0:-0}) / ($c1 - ${c0:-0})" 1)
    fi
    echo "$pc" >"$T/$name.percommit"
    echo "bench: $name: $(sqlite3 -readonly "$T/$name.db" 'select count(*) from certificate' 2>/dev/null) certificates stored, $pc hand-ins per commit"
}

handin_phase() {
    local a b ba bb ratio perfsync f1 f2 r lpid
    fsync_phase; f1=$FSYNC_RATE
    for r in $(seq 1 "$REPEAT"); do
        handin_run "handin-durable-$r" "HD${r}N"
        if [ "$r" = 1 ] && [ -n "$PERF" ]; then
            deliver_tmpl "HP@N@" EC >"$T/prof.tmpl"
            "$BIN/loadgen" -u "https://127.0.0.1:$DPORT/hub/DeliveryService" --cert "$CA/bo-issuer.crt" \
                --key "$CA/bo-issuer.key" --cacert "$CA/ca.crt" -a "$NS/DeliverEnvelope" \
                -c "$CONNS" -d 7 -t "$T/prof.tmpl" --label prof >/dev/null 2>&1 &
            lpid=$!
            PIDS+=("$lpid")
            sleep 1
            profile handin "$DPID" 5
            wait "$lpid"
        fi
        stop_ecertd
        handin_run "handin-nofsync-$r" "HN${r}N" ECERTD_BENCH_NO_FSYNC=1
        stop_ecertd
    done
    fsync_phase; f2=$FSYNC_RATE
    FSYNC_RATE=$(calc "($f1 + $f2) / 2" 0)
    note "disk fsync rate before / after the hand-in runs: $f1 / $f2 per s"
    ba=$(best handin-durable); bb=$(best handin-nofsync)
    a=$(kv "$T/lg-$ba.txt" rps); b=$(kv "$T/lg-$bb.txt" rps)
    HANDIN_PEAK=$a
    ratio=$(calc "$a / $b")
    perfsync=$(calc "$a / $FSYNC_RATE" 2)
    row "hand-in DeliverEnvelope durable (a), distinct certs, $CONNS conns (certs/s)" "$a" \
        "-" "-" "≥ 2000" "$(met "$a >= 2000")"
    row "hand-in durable (a) vs ECERTD_BENCH_NO_FSYNC=1 (b) (certs/s)" "$a" "$b (no fsync)" \
        "$ratio" "≥ 0.5" "$(met "$ratio >= 0.5")"
    row "hand-in p99 latency (a) / (b) (ms)" "$(kv "$T/lg-$ba.txt" p99_ms)" \
        "$(kv "$T/lg-$bb.txt" p99_ms) (no fsync)" "-" "-" "-"
    row "hand-ins per commit (queue_stats), (a)" "$(cat "$T/$ba.percommit")" "-" "-" "-" "-"
    row "hand-ins/s (a) per disk fsync/s" "$a" "$FSYNC_RATE fsync/s (disk)" "$perfsync" "-" "-"
}

# ==== push: signed mail to smtp-sink against smtp-source =====================================

wait_sql() {  # wait_sql DB SQL VALUE SECONDS: until the query answers >= VALUE
    local i n=$(( $4 * 10 )) v
    for i in $(seq 1 "$n"); do
        v=$(sqlite3 -readonly "$1" "$2" 2>/dev/null || echo 0)
        [ "${v:-0}" -ge "$3" ] && return 0
        sleep 0.1
    done
    return 1
}

# start_sink NAME [ARGS...]: smtp-sink on a free port; sets SPORT, SPID.
start_sink() {
    local name=$1
    shift
    SPORT=$(free_port)
    "$SINK" -u nobody "$@" "127.0.0.1:$SPORT" 256 >"$T/sink-$name.log" 2>&1 &
    SPID=$!
    PIDS+=("$SPID")
    wait_port "$SPORT" "$SPID" || die "smtp-sink did not start"
}

# push_run R: PUSH_N certificates loaded while ecertd is stopped, then
# started; the rate runs from the first claim to the last delivery as the
# store recorded them (event table).
push_run() {
    local r=$1 port db=$T/push-$1.db span n wall t0 t1
    port=$(free_port)
    start_sink "push-$r"
    write_conf "$T/push-$r.conf" "$port" "$db" 4 "$SPORT" "$PUSH_C"
    "$BIN/filler" -s "$db" -n "$PUSH_N" -p 1 -0 pe-nppo:PE -c smtp -i "$SAMPLE" -x "PUSH$r-" \
        >"$T/filler-push-$r.txt" || die "filler failed"
    t0=$(date +%s.%N)
    start_ecertd "push-$r" "$T/push-$r.conf"
    [ "$r" = 1 ] && profile push "$DPID" 5
    wait_sql "$db" "select count(*) from delivery where channel=2 and state=3" "$PUSH_N" 600 ||
        note "push: not all $PUSH_N mails delivered in 600 s"
    t1=$(date +%s.%N)
    span=$(sqlite3 -readonly "$db" "select max(case when state=3 then at_ms end) - min(case when state=1 then at_ms end) from event")
    n=$(sqlite3 -readonly "$db" "select count(*) from delivery where channel=2 and state=3")
    stop_ecertd
    stop "$SPID"
    wall=$(calc "$t1 - $t0" 2)
    echo "label=push-ecertd-$r mails=$n span_ms=$span wall_s=$wall rps=$(calc "$n / ($span / 1000.0)" 1)" |
        tee "$T/lg-push-ecertd-$r.txt"
}

# source_run R: smtp-source, same count, size and concurrency, unsigned.
source_run() {
    local r=$1 t0 t1
    start_sink "ref-$r"
    t0=$(date +%s.%N)
    "$SOURCE" -s "$PUSH_C" -m "$PUSH_N" -l "$MAIL_BYTES" "127.0.0.1:$SPORT" >"$T/source-$r.log" 2>&1 ||
        note "smtp-source failed: $(tail -2 "$T/source-$r.log")"
    t1=$(date +%s.%N)
    stop "$SPID"
    echo "label=push-source-$r mails=$PUSH_N secs=$(calc "$t1 - $t0" 2) rps=$(calc "$PUSH_N / ($t1 - $t0)" 1)" |
        tee "$T/lg-push-source-$r.txt"
}

push_phase() {
    local port size ours ref r be bs
    [ -x "$SINK" ] && [ -x "$SOURCE" ] || { note "push: smtp-sink/smtp-source missing (postfix)"; return; }
    port=$(free_port)

    # Size of one signed message: one certificate through a dumping sink.
    mkdir -p "$T/calib-mail"
    chmod 777 "$T/calib-mail"
    start_sink calib -d "$T/calib-mail/m."
    write_conf "$T/calib.conf" "$port" "$T/calib.db" 4 "$SPORT" 1
    "$BIN/filler" -s "$T/calib.db" -n 1 -p 1 -0 pe-nppo:PE -c smtp -i "$SAMPLE" -x CAL >/dev/null ||
        die "filler failed"
    start_ecertd calib "$T/calib.conf"
    wait_sql "$T/calib.db" "select count(*) from delivery where channel=2 and state=3" 1 30 ||
        die "calibration mail not delivered: $(tail -5 "$T/calib.log")"
    stop_ecertd
    stop "$SPID"
    size=$(find "$T/calib-mail" -type f -printf '%s\n' | head -n 1)
    [ -n "$size" ] || die "no dumped calibration mail"
    MAIL_BYTES=$size

    for r in $(seq 1 "$REPEAT"); do
        push_run "$r"
        source_run "$r"
    done
    CMDS+=("filler -s push.db -n $PUSH_N -p 1 -0 pe-nppo:PE -c smtp -i SAMPLE   # then:")
    CMDS+=("smtp-sink -u nobody 127.0.0.1:PORT 256; ecertd -f -c push.conf   # mail.workers = relay.concurrency = $PUSH_C; until $PUSH_N smtp deliveries are state 3")
    CMDS+=("smtp-source -s $PUSH_C -m $PUSH_N -l $MAIL_BYTES 127.0.0.1:PORT   # against a fresh smtp-sink; runs interleaved")
    be=$(best push-ecertd); bs=$(best push-source)
    ours=$(kv "$T/lg-$be.txt" rps); ref=$(kv "$T/lg-$bs.txt" rps)
    PUSH_RATIO=$(calc "$ours / $ref")
    row "push: signed mails/s to smtp-sink, concurrency $PUSH_C ($MAIL_BYTES B each)" "$ours" \
        "$ref (smtp-source)" "$PUSH_RATIO" "≥ 0.5" "$(met "$PUSH_RATIO >= 0.5")"
}

# ==== latency at half the durable peak =====================================================

latency_phase() {
    local port sport spid bg rate lpid
    [ -x "$SINK" ] || return 0
    port=$(free_port)
    sport=$(free_port)
    mkdir -p "$T/lat-mail"
    chmod 777 "$T/lat-mail"
    "$SINK" -u nobody -d "$T/lat-mail/m." "127.0.0.1:$sport" 256 >"$T/sink-lat.log" 2>&1 &
    spid=$!
    PIDS+=("$spid")
    wait_port "$sport" "$spid" || die "smtp-sink did not start"
    write_conf "$T/lat.conf" "$port" "$T/lat.db" $((CONNS + 6)) "$sport" 4
    start_ecertd lat "$T/lat.conf"
    deliver_tmpl "LB@N@" EC >"$T/lat-bg.tmpl"
    deliver_tmpl "LP@N@" PE >"$T/lat-probe.tmpl"
    rate=$(calc "${HANDIN_PEAK:-100} * 0.5 - $PROBE_RATE" 0)
    [ "$rate" -gt 0 ] 2>/dev/null || rate=1
    "$BIN/loadgen" -u "https://127.0.0.1:$port/hub/DeliveryService" --cert "$CA/bo-issuer.crt" \
        --key "$CA/bo-issuer.key" --cacert "$CA/ca.crt" -a "$NS/DeliverEnvelope" -c "$CONNS" \
        -d $((LAT_SECS + 4)) -w 2 --rate "$rate" -t "$T/lat-bg.tmpl" --expect hubDeliveryNumber \
        --label lat-background >"$T/lg-lat-bg.txt" 2>"$T/lg-lat-bg.err" &
    lpid=$!
    PIDS+=("$lpid")
    sleep 2
    "$BIN/latprobe" -u "https://127.0.0.1:$port/hub/DeliveryService" --cacert "$CA/ca.crt" \
        --cert-in "$CA/bo-issuer.crt" --key-in "$CA/bo-issuer.key" \
        --cert-pull "$CA/pe-nppo.crt" --key-pull "$CA/pe-nppo.key" \
        -t "$T/lat-probe.tmpl" -r "$PROBE_RATE" -d "$LAT_SECS" -m "$T/lat-mail" >"$T/latprobe.txt" 2>"$T/latprobe.err"
    wait "$lpid"
    stop_ecertd
    stop "$spid"
    cat "$T/lg-lat-bg.txt" "$T/latprobe.txt"
    CMDS+=("loadgen --rate $rate -c $CONNS (background, BO->EC) + latprobe -r $PROBE_RATE -d $LAT_SECS (BO->PE, pull + mail to a dumping smtp-sink)")
    local f=$T/latprobe.txt tot
    tot=$(calc "$(kv "$T/lg-lat-bg.txt" rps) + $PROBE_RATE" 0)
    row "hand-in → visible in GetImportEnvelopeHeaders p50 / p99 (ms) at ${tot}/s" \
        "$(kv "$f" pull_p50_ms) / $(kv "$f" pull_p99_ms)" "-" "-" "-" \
        "seen $(kv "$f" pull_seen)/$(kv "$f" probes)"
    row "hand-in → mail accepted by smtp-sink p50 / p99 (ms) at ${tot}/s" \
        "$(kv "$f" mail_p50_ms) / $(kv "$f" mail_p99_ms)" "-" "-" "-" \
        "seen $(kv "$f" mail_seen)/$(kv "$f" probes)"
}

# ==== scale: the store at N certificates =================================================

# scale_run N LABEL: fill, serve, measure; sets S_P99_ONE S_P99_HDR S_STATUS
# S_BPC S_MEM S_FILL_RATE.
scale_run() {
    local n=$1 label=$2 port db=$T/scale-$2.db first st i t0 t1 times=()
    port=$(free_port)
    EXTRA_PARTNERS=$("$BIN/filler" --partners 100) write_conf "$T/scale-$label.conf" "$port" "$db" $((CONNS + 6))
    "$BIN/filler" -s "$db" -n "$n" -p 100 -w 100 -i "$SAMPLE" -x "S$label-" -o "$T/scale-$label.trk" \
        >"$T/filler-$label.txt" || die "filler ($label) failed"
    cat "$T/filler-$label.txt"
    CMDS+=("filler -s scale.db -n $n -p 100 -w 100 -i SAMPLE   # 100 partners; ec-nppo keeps 100 waiting")
    S_FILL_RATE=$(kv "$T/filler-$label.txt" rate)
    S_BPC=$(kv "$T/filler-$label.txt" bytes_per_cert)
    first=$(sed -n 's/^first=\([^ ]*\).*/\1/p' "$T/scale-$label.trk")
    soap_body PULLSingleImportEnvelope "<ns:hubTrackingNumber>$first</ns:hubTrackingNumber>" >"$T/scale-one.xml"
    soap_body GetImportEnvelopeHeaders >"$T/scale-hdr.xml"
    sync
    start_ecertd "scale-$label" "$T/scale-$label.conf"
    lg "scale-$label-one" "$port" ec-nppo PULLSingleImportEnvelope -c "$CONNS" -d "$SECS" -w "$WARM" \
        -b "$T/scale-one.xml" --expect "$first"
    lg "scale-$label-hdr" "$port" ec-nppo GetImportEnvelopeHeaders -c "$CONNS" -d "$SECS" -w "$WARM" \
        -b "$T/scale-hdr.xml" --expect hubDeliveryNumber
    S_MEM=$(vmhwm_mb "$DPID")
    for i in 1 2 3; do
        t0=$(date +%s.%N)
        "$CTL" --store "$db" status >"$T/status-$label.txt" 2>&1 || note "ecertctl status failed ($label)"
        t1=$(date +%s.%N)
        times+=("$(calc "$t1 - $t0" 3)")
    done
    S_STATUS=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
    stop_ecertd
    S_P99_ONE=$(kv "$T/lg-scale-$label-one.txt" p99_ms)
    S_P99_HDR=$(kv "$T/lg-scale-$label-hdr.txt" p99_ms)
    CMDS+=("ecertctl --store scale.db status   # median of 3")
}

scale_small_phase() {
    scale_run "$SCALE_SMALL" small
    SM_ONE=$S_P99_ONE SM_HDR=$S_P99_HDR SM_STATUS=$S_STATUS SM_BPC=$S_BPC
    if [ "$MODE" = bench ]; then
        row "store $SCALE_SMALL certs: pull one p99 / headers p99 (ms)" "$SM_ONE / $SM_HDR" "-" "-" "-" "-"
        row "store $SCALE_SMALL certs: ecertctl status (s)" "$SM_STATUS" "-" "-" "≤ 1 (at 10 M)" "-"
        row "store size per certificate (bytes; sample $(wc -c <"$SAMPLE") B)" "$SM_BPC" "-" "-" "-" "-"
        row "filler: queue_handin rate, fsync off (certs/s)" "$S_FILL_RATE" "-" "-" "-" \
            "10 M ≈ $(calc "10000000 / $S_FILL_RATE / 60" 0) min"
    fi
}

scale_big_phase() {
    local need avail r1 r2
    need=$(( SCALE_N / 1000 * 6 ))        # ~6 KB per certificate, in KB
    avail=$(df -Pk "$T" | awk 'NR == 2 { print $4 }')
    if [ "$need" -gt "$((avail * 9 / 10))" ]; then
        note "scale: $SCALE_N certificates need ~$((need / 1048576)) GB; only $((avail / 1048576)) GB free: not run (set SCALE_N)"
        return
    fi
    scale_run "$SCALE_N" big
    r1=$(calc "$S_P99_ONE / $SM_ONE")
    r2=$(calc "$S_P99_HDR / $SM_HDR")
    row "pull one (PULLSingleImportEnvelope) p99 at $SCALE_N vs $SCALE_SMALL (ms)" "$S_P99_ONE" "$SM_ONE" \
        "$r1" "≤ 2" "$(met "$r1 <= 2")"
    row "headers (GetImportEnvelopeHeaders, 100 waiting) p99 at $SCALE_N vs $SCALE_SMALL (ms)" \
        "$S_P99_HDR" "$SM_HDR" "$r2" "≤ 2" "$(met "$r2 <= 2")"
    row "ecertctl status at $SCALE_N vs $SCALE_SMALL (s)" "$S_STATUS" "$SM_STATUS" \
        "$(calc "$S_STATUS / $SM_STATUS" 1)" "≤ 1 s" "$(met "$S_STATUS <= 1")"
    if [ "$SCALE_N" -lt 10000000 ]; then
        local proj
        proj=$(calc "$S_STATUS * 10000000 / $SCALE_N" 1)
        row "ecertctl status projected to 10 M (linear from $SCALE_N) (s)" "$proj" "-" "-" "≤ 1 s" \
            "$(met "$proj <= 1")"
    fi
    row "store size per certificate at $SCALE_N vs $SCALE_SMALL (bytes)" "$S_BPC" "$SM_BPC" \
        "$(calc "$S_BPC / $SM_BPC")" "-" "-"
    row "filler rate (queue_handin, fsync off) at $SCALE_N (certs/s)" "$S_FILL_RATE" "-" "-" "-" \
        "10 M ≈ $(calc "10000000 / $S_FILL_RATE / 60" 0) min"
    row "ecertd peak RSS after the $SCALE_N run (MB)" "$S_MEM" "-" "-" "≤ 64" "$(met "$S_MEM <= 64")"
}

# ==== run ===================================================================================

echo "bench: $MODE in $T"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "$MODE" = bench ]; then
    # BENCH_PHASES: a part only, while working on one path; its table goes
    # to partial.md, not to the published latest.md
    for ph in ${BENCH_PHASES:-pull handin push latency scale_small}; do
        case $ph in
        pull|handin|push|latency|scale_small) "${ph}_phase" ;;
        *) die "BENCH_PHASES: unknown phase $ph (pull handin push latency scale_small)" ;;
        esac
    done
    OUTFILE=$ROOT/tests/bench/results/latest.md
    [ -n "${BENCH_PHASES:-}" ] && OUTFILE=$ROOT/tests/bench/results/partial.md
else
    scale_small_phase
    scale_big_phase
    OUTFILE=$ROOT/tests/bench/results/scale-latest.md
fi
T_END=$(date +%s)

# ---- report --------------------------------------------------------------------------------
mkdir -p "$(dirname "$OUTFILE")"
{
    echo "# ecert-gateway benchmark ($MODE)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- machine: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo)"
    echo "- kernel: $(uname -r); $(curl --version | head -n 1 | cut -d' ' -f1-2); $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
    echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' + local changes')"
    echo "- load generator and servers share the same $(nproc) cores (loopback)"
    echo "- load average (1/5/15 min) at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews absolute figures)"
    echo "- took: $((T_END - T_START)) s"
    echo
    echo "| figure | ours | reference | ratio | target | met? |"
    echo "|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    if [ ${#NOTES[@]} -gt 0 ]; then
        echo "Notes:"
        printf -- '- %s\n' "${NOTES[@]}"
        echo
    fi
    echo "Raw lines:"
    echo
    echo '```'
    cat "$T"/fsync-all.txt "$T"/lg-*.txt "$T"/filler-*.txt "$T"/latprobe.txt 2>/dev/null
    echo '```'
    echo
    for p in pull handin push; do
        [ -s "$T/profile-$p.txt" ] || continue
        echo "Profile ($p: perf record -F 299 --call-graph dwarf, 5 s under load):"
        echo
        echo '```'
        cat "$T/profile-$p.txt"
        echo '```'
        echo
    done
    echo "Commands (from the project root, after make all bench-tools):"
    echo
    echo '```'
    if [ "$MODE" = bench ]; then echo "make bench   # = bash tests/bench/run.sh"; else echo "make bench-scale SCALE_N=$SCALE_N"; fi
    printf '%s\n' "${CMDS[@]}"
    echo '```'
} >"$OUTFILE"

echo
echo "| figure | ours | reference | ratio | target | met? |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "bench: written to ${OUTFILE#"$ROOT"/} ($((T_END - T_START)) s)"
