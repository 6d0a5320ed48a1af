#!/bin/sh
# Short libFuzzer runs of the probes' parsers, part of make check: the
# multipart parser, then the Cookie and auth-param parsers. Each is built
# with clang (ASan + UBSan) and fuzzed for FUZZ_SECONDS (default 30, split
# between them) from its seed corpus. Any crash, leak, sanitizer report or
# broken invariant fails the test.
set -eu
src=${AWAITD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
half=$(( (${FUZZ_SECONDS:-30} + 1) / 2 ))
run() { # name corpus sources...
    name=$1 corpus=$2
    shift 2
    clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I"$src/src" "$@" -o "$out/$name"
    mkdir "$out/corpus-$name"
    rc=0
    "$out/$name" -max_total_time="$half" -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="$out/" "$out/corpus-$name" "$src/tests/fuzz/$corpus" >"$out/log" 2>&1 || rc=$?
    tail -n 20 "$out/log"
    return "$rc"
}
run multipart corpus_multipart "$src/tests/fuzz/fuzz_multipart.c" "$src/src/http/multipart.c"
run params corpus_params "$src/tests/fuzz/fuzz_params.c" "$src/src/http/cookie.c" \
    "$src/src/http/auth_param.c"
