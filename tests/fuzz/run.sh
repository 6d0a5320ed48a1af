#!/bin/sh
# libFuzzer targets for every parser awaitd owns (tests/fuzz/fuzz_*.c),
# built with clang (ASan + UBSan) and run from their seed corpora
# (tests/fuzz/corpus/<target>/). Any crash, leak, invariant failure or
# sanitizer report fails.
#
#   tests/fuzz/run.sh            make check: every seed, then FUZZ_SECONDS
#                                (default 5) of fuzzing per target
#   FUZZ_SECONDS=60 FUZZ_KEEP=DIR tests/fuzz/run.sh
#                                make fuzz: longer, and new inputs are kept
#                                in DIR/<target> for the next run
#   tests/fuzz/run.sh cron query only these targets
#
# Without clang (or libFuzzer) it exits 77, which automake reports as
# SKIP, unless AWAITD_REQUIRE_FUZZ=1 (CI sets it): then it fails.
set -eu
src=${AWAITD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
CLANG=${CLANG:-clang}
seconds=${FUZZ_SECONDS:-5}

# target: max_len and sources (beside tests/fuzz/fuzz_<target>.c), then libraries.
targets="http_parse query config cron queue_body timer_body journal load_resp multipart params ws_frame"
max_len() {
    case $1 in
    journal) echo 8192 ;;
    config) echo 8192 ;;
    *) echo 4096 ;;
    esac
}
sources() {
    case $1 in
    http_parse) echo src/http/http_parse.c ;;
    query) echo src/http/http_query.c src/http/http_parse.c ;;
    config) echo src/core/config.c src/core/config_value.c src/core/config_parse.c \
        src/core/config_check.c src/core/log.c ;;
    cron) echo src/engine/cron.c ;;
    queue_body) echo src/api/api_queue_parse.c ;;
    timer_body) echo src/api/api_timer_spec.c src/svc/tsvc.c src/engine/cron.c ;;
    journal) echo src/journal/journal.c src/journal/journal_scan.c src/journal/queue_journal.c src/journal/task_journal.c \
        src/engine/queue.c src/engine/queue_heap.c src/engine/queue_job.c src/engine/queue_reap.c src/engine/queue_result.c \
        src/engine/queue_tab.c src/engine/task.c src/engine/task_index.c src/engine/task_ops.c src/engine/task_replay.c \
        src/engine/cron.c src/core/timer.c src/core/buf.c ;;
    load_resp) echo tools/awaitload/load_resp.c src/http/http_parse.c ;;
    multipart) echo src/http/multipart.c ;;
    params) echo src/http/cookie.c src/http/auth_param.c ;;
    ws_frame) echo src/http/ws_frame.c ;;
    esac
}
libs() {
    case $1 in
    config) echo -lm ;;
    queue_body) pkg-config --libs jansson 2>/dev/null || echo -ljansson; echo -lm ;;
    timer_body) pkg-config --libs jansson libcrypto 2>/dev/null || echo -ljansson -lcrypto; echo -lm ;;
    esac
}

skip() {
    echo "SKIP: $*"
    if [ "${AWAITD_REQUIRE_FUZZ:-0}" = 1 ]; then
        echo "AWAITD_REQUIRE_FUZZ=1: fuzzing is required here"
        exit 1
    fi
    exit 77
}
command -v "$CLANG" >/dev/null 2>&1 || skip "no $CLANG, the fuzz targets need clang and libFuzzer"

out=$(mktemp -d "${TMPDIR:-/tmp}/awaitd-fuzz.XXXXXX")
trap 'rm -rf "$out"' EXIT
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' >"$out/probe.c"
"$CLANG" -fsanitize=fuzzer,address,undefined "$out/probe.c" -o "$out/probe" >"$out/probe.log" 2>&1 ||
    skip "$CLANG cannot build a libFuzzer target (libclang-rt-dev missing?): $(head -c 300 "$out/probe.log")"

[ $# -gt 0 ] && targets="$*"
jcflags=$(pkg-config --cflags jansson 2>/dev/null || true)
status=0
for t in $targets; do
    srcs=""
    for f in $(sources "$t"); do srcs="$srcs $src/$f"; done
    [ -n "$srcs" ] || { echo "fuzz: unknown target $t"; exit 2; }
    # shellcheck disable=SC2046,SC2086
    "$CLANG" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -D_GNU_SOURCE -I"$src/src" -I"$src/tools/awaitload" $jcflags \
        "$src/tests/fuzz/fuzz_$t.c" $srcs $(libs "$t") -o "$out/fuzz_$t" || { status=1; continue; }
    keep="$out/new_$t"
    [ -n "${FUZZ_KEEP:-}" ] && keep="$FUZZ_KEEP/$t"
    mkdir -p "$keep" "$out/art_$t"
    rc=0
    "$out/fuzz_$t" -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=20 \
        -rss_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$out/art_$t/" \
        "$keep" "$src/tests/fuzz/corpus/$t" >"$out/log_$t" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log_$t")
    if [ "$rc" = 0 ]; then
        echo "fuzz_$t: ok, ${runs:-?} runs in ${seconds}s from $(ls "$src/tests/fuzz/corpus/$t" | wc -l) seeds"
    else
        status=1
        echo "fuzz_$t: FAILED (exit $rc)"
        tail -n 60 "$out/log_$t"
        for a in "$out/art_$t"/*; do
            [ -f "$a" ] || continue
            echo "--- input $(basename "$a") (base64):"
            base64 "$a" | head -c 4000
            echo
            if [ -n "${FUZZ_ARTIFACTS:-}" ]; then
                mkdir -p "$FUZZ_ARTIFACTS" && cp "$a" "$FUZZ_ARTIFACTS/$t-$(basename "$a")"
            fi
        done
    fi
done
exit "$status"
