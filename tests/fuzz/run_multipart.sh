#!/bin/sh
# A short libFuzzer run of the multipart parser, part of make check.
# Builds the target with clang (ASan + UBSan) and fuzzes for FUZZ_SECONDS
# (default 30) from its seed corpus. Any crash, leak, sanitizer report or
# broken invariant fails the test.
set -eu
src=${AWAITD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$src/src" "$src/tests/fuzz/fuzz_multipart.c" "$src/src/http/multipart.c" -o "$out/fuzz"
mkdir "$out/corpus"
rc=0
"$out/fuzz" -max_total_time="${FUZZ_SECONDS:-30}" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$out/" "$out/corpus" "$src/tests/fuzz/corpus_multipart" >"$out/log" 2>&1 || rc=$?
tail -n 40 "$out/log"
exit "$rc"
