#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# run.sh - run one libFuzzer harness and print a one-line summary:
#     fuzz <name>: <execs> execs in <s> s, <n> crashes
#
#   run.sh fuzz NAME SECONDS   fuzz for SECONDS on $FUZZ_DIR/corpus-NAME
#                              (made from tests/fuzz/corpus/NAME and
#                              $FUZZ_DIR/seeds/NAME, never the repository)
#   run.sh regress NAME        run once over tests/fuzz/regress/NAME/ and
#                              the seeds, without fuzzing (-runs=0)
#
# Called from the project root by tests/fuzz/fuzz.mk.  FUZZ_DIR defaults
# to build/fuzz.  Crash inputs go to $FUZZ_DIR/crashes/NAME-*, the whole
# output to $FUZZ_DIR/log-NAME.txt (regress: log-NAME-regress.txt).
# Exit status: 0 when the harness ran clean, 1 otherwise (crash, leak,
# sanitizer report, timeout, set-up failure).

set -u
mode=${1:?mode}
name=${2:?name}
secs=${3:-60}
here=$(cd "$(dirname "$0")" && pwd)
FUZZ_DIR=${FUZZ_DIR:-build/fuzz}
bin=$FUZZ_DIR/fuzz_$name
crashes=$FUZZ_DIR/crashes
mkdir -p "$crashes"

case $name in
    soap)   maxlen=70000 ;;     # the harness's request limit is 65536
    sps)    maxlen=65536 ;;
    config) maxlen=16384 ;;
    mime)   maxlen=8192 ;;
    *)      maxlen=4096 ;;
esac

if [ ! -x "$bin" ]; then
    echo "fuzz $name: $bin missing (make fuzz-build)" >&2
    echo "fuzz $name: 0 execs in 0 s, 0 crashes (not run)"
    exit 1
fi

args=(-print_final_stats=1 -timeout=30 -rss_limit_mb=4096
      "-artifact_prefix=$crashes/$name-")
[ -f "$here/$name.dict" ] && args+=("-dict=$here/$name.dict")

# Third-party global state only; see the file.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/lsan.supp:print_suppressions=0}
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The harnesses' temporary files (store, certificates, config) go under a
# directory of this run, removed at the end even if a crash left them.
run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/ecert-fuzz-run.XXXXXX")
trap 'rm -rf "$run_tmp"' EXIT
export TMPDIR=$run_tmp

dirs=()
if [ "$mode" = fuzz ]; then
    corpus=$FUZZ_DIR/corpus-$name
    mkdir -p "$corpus"
    for d in "$here/corpus/$name" "$FUZZ_DIR/seeds/$name"; do
        [ -d "$d" ] && find "$d" -maxdepth 1 -type f ! -name '.*' \
            -exec cp -n -t "$corpus" {} +
    done
    dirs=("$corpus")
    args+=("-max_total_time=$secs" "-max_len=$maxlen")
    log=$FUZZ_DIR/log-$name.txt
elif [ "$mode" = regress ]; then
    for d in "$here/regress/$name" "$here/corpus/$name" "$FUZZ_DIR/seeds/$name"; do
        [ -d "$d" ] && [ -n "$(ls -A "$d" 2>/dev/null)" ] && dirs+=("$d")
    done
    args+=(-runs=0)
    log=$FUZZ_DIR/log-$name-regress.txt
else
    echo "run.sh: unknown mode $mode" >&2
    exit 2
fi

before=$(find "$crashes" -maxdepth 1 -type f -name "$name-*" | wc -l)
t0=$(date +%s.%N)
if [ ${#dirs[@]} -gt 0 ]; then
    "$bin" "${args[@]}" "${dirs[@]}" >"$log" 2>&1
    rc=$?
else
    echo "no inputs" >"$log"
    rc=0
fi
t1=$(date +%s.%N)
after=$(find "$crashes" -maxdepth 1 -type f -name "$name-*" | wc -l)
ncrash=$((after - before))

execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
[ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
[ -n "$execs" ] || execs=0
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
secs_run=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }')

# A non-zero exit without an artifact (set-up failure, leak at exit) is a
# failure all the same; count it.
if [ "$rc" -ne 0 ] && [ "$ncrash" -eq 0 ]; then
    ncrash=1
fi
echo "fuzz $name: $execs execs in $secs_run s, $ncrash crashes"
if [ "$rc" -ne 0 ]; then
    grep -m 1 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error:|fuzz set-up:)' "$log" \
        | sed "s/^/fuzz $name:   /" >&2
    echo "fuzz $name:   see $log${cov:+ (cov $cov)}" >&2
    exit 1
fi
exit 0
