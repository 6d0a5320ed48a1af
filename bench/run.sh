#!/usr/bin/env bash
# awaitd's benchmark suite: awaitd against nginx on this machine, three
# figures (CPU per request, memory per idle connection, 10,000 connections
# looping /delay/1). See bench/README.md for what each figure means.
#
#   bench/run.sh [--quick]      (also: make bench)
#
# Prints a table and writes it as JSON to bench/out/results.json; the raw
# outputs of every run go to bench/out/raw/. Exit status: 0 when every
# target is met, 1 when one is missed, 2 when the suite could not run.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ME=bench

usage() {
    echo "usage: bench/run.sh [--quick]"
    echo "  --quick   shorter runs, to check the script itself (figures are rough)"
}
quick_args "$@"

RAW=$OUT/raw
AWAITD=$ROOT/src/awaitd

# ---- what is measured, and how long --------------------------------------
PAIRS=3            # target 1: A B A B A B
CPU_CONNS=100      # target 1: wrk -t1 -c100 (keep-alive GET /get)
IDLE_N=10000       # target 2: idle keep-alive connections held
IDLE_RATE=5000     # target 2: new connections per second (backlog is 4096)
ACTIVE_N=10000     # target 3: connections looping GET /delay/1
WRK_TIMEOUT=5s     # target 3: a response slower than this counts as an error
if ((QUICK)); then
    CPU_SECS=1 ACTIVE_SECS=5
else
    CPU_SECS=5 ACTIVE_SECS=15
fi
CPU_PIN=0    # servers
CLIENT_PIN=1 # wrk, holdconns

# ---- 1. what the suite needs ---------------------------------------------
ECHO_MODULE=/usr/lib/nginx/modules/ngx_http_echo_module.so

nginx_has_echo() {
    [ -f "$ECHO_MODULE" ] || { command -v nginx >/dev/null && nginx -V 2>&1 | grep -q echo; }
}

{ command -v nginx >/dev/null && nginx_has_echo; } || MISSING+=(nginx-light)
want wrk wrk
want python3 python3
want gcc gcc libc6-dev
want taskset util-linux
install_wanted
nginx_has_echo || die "nginx has no echo module (expected $ECHO_MODULE from libnginx-mod-http-echo)"
need_built awaitd
raise_nofile

# ---- processes: everything started is stopped on exit --------------------
work_begin /tmp/awaitd-bench.XXXXXX

# ---- the servers -----------------------------------------------------------
# Each figure starts both servers afresh, so one figure's traffic does not
# shape the next one's memory. Both listen on 127.0.0.1 only, pinned to CPU 0.
start_awaitd() {
    AW_PORT=$(free_port)
    probe_conf "$WORK/awaitd/awaitd.conf" "$AW_PORT" 12000
    # BENCH_ACCESS_LOG=1: both servers write an access log (issue 16).
    if [ -n "${BENCH_ACCESS_LOG:-}" ]; then
        printf '\n[log]\naccess = %s\n' "$WORK/awaitd/access.log" >>"$WORK/awaitd/awaitd.conf"
    fi
    start_awaitd_conf "$WORK/awaitd/awaitd.conf" "$RAW/awaitd.log"
}

start_servers() {
    local load=""
    start_awaitd
    # Debian's nginx-light has the echo module as a dynamic module.
    [ -f "$ECHO_MODULE" ] && load="load_module $ECHO_MODULE;"
    # With BENCH_ACCESS_LOG, nginx's combined log buffered as awaitd's is (64 KiB).
    local alog=""
    [ -n "${BENCH_ACCESS_LOG:-}" ] &&
        alog="        access_log $WORK/nginx/access.log combined buffer=64k flush=1s;"
    start_nginx "$load" "" "backlog=4096" \
        "$alog
        location = /get { return 200 '{\"ok\":true}\n'; }
        location = /delay/1 { echo_sleep 1; echo '{\"ok\":true}'; }"
}

# ---- results -----------------------------------------------------------------
results_begin "awaitd benchmark suite"
say "servers on CPU $CPU_PIN, clients on CPU $CLIENT_PIN; raw outputs in bench/out/raw/"

# ---- target 1: server CPU per keep-alive request ---------------------------
part_begin "== 1. server CPU per request: wrk -t1 -c$CPU_CONNS -d${CPU_SECS}s, GET /get, keep-alive"
start_servers
cpu_per_request http /get
stop_servers
part_end cpu

# ---- target 2: memory per idle keep-alive connection ----------------------
say ""
say "== 2. memory per idle keep-alive connection: $IDLE_N connections, one GET /get each, then held"
HOLDCONNS=$WORK/holdconns
gcc -O2 -Wall -Wextra -o "$HOLDCONNS" "$BENCH/holdconns.c" || die "cannot build holdconns"
part_begin
start_servers
for s in awaitd nginx; do
    pid=$(server_pid "$s")
    port=$(server_port "$s")
    run_client_log "$RAW/idle-$s-warmup.txt" 30 "$HOLDCONNS" -p "$port" -n 10 -t 0 ||
        die "$s does not answer /get (see $RAW/idle-$s-warmup.txt)"
    sleep 0.5
    before=$(rss_kb "$pid")
    out=$RAW/idle-$s.txt
    # the holder gives up after 60 s itself
    hold_begin "$out" 700 "holdconns did not get ready against $s" \
        "$HOLDCONNS" -p "$port" -n "$IDLE_N" -r "$IDLE_RATE" -s 60 -t 120
    during=$(rss_kb "$pid")
    open=""
    if [ "$s" = awaitd ]; then
        open=$(metric "$port" awaitd_connections_open)
    fi
    hold_end "$out"
    per=$(bytes_each "$before" "$during" "$IDLE_N")
    record idle "$s" "$per" "$before" "$during" "$ANSWERED" "${HELD:-0}" "${open:-}"
    printf '  %-6s  %7.1f B/connection  (VmRSS %d -> %d kB; answered %s, held %s%s)\n' \
        "$s" "$per" "$before" "$during" "$ANSWERED" "${HELD:-?}" "${open:+, awaitd_connections_open $open}"
done
stop_servers
part_end idle

# ---- target 3: 10,000 connections looping GET /delay/1 --------------------
part_begin "== 3. $ACTIVE_N connections looping GET /delay/1: wrk -t1 -c$ACTIVE_N -d${ACTIVE_SECS}s --latency --timeout $WRK_TIMEOUT"
start_servers
for s in awaitd nginx; do
    pid=$(server_pid "$s")
    url="http://127.0.0.1:$(server_port "$s")/delay/1"
    out=$RAW/active-$s-warmup.txt
    run_client_log "$out" 30 wrk -t1 -c10 -d2s "$url" || die "wrk failed against $s (see $out)"
    [ "$(wrk_errors "$out")" = 0 ] || die "$s answers /delay/1 with errors (see $out)"
    sleep 0.5
    base=$(rss_kb "$pid")
    samples=$RAW/active-$s-rss.txt
    (while kill -0 "$pid" 2>/dev/null; do rss_kb "$pid"; sleep 0.25; done) >"$samples" 2>/dev/null &
    sampler=$!
    PIDS+=("$sampler")
    out=$RAW/active-$s.txt
    run_client_log "$out" $((ACTIVE_SECS + 60)) wrk -t1 -c"$ACTIVE_N" -d"${ACTIVE_SECS}s" --latency \
        --timeout "$WRK_TIMEOUT" "$url" || die "wrk failed against $s (see $out)"
    stop_pid "$sampler"
    peak=$(sort -n "$samples" | tail -n 1)
    per=$(bytes_each "$base" "$peak" "$ACTIVE_N")
    rps=$(wrk_rps "$out")
    p99=$(wrk_p99 "$out")
    errs=$(wrk_errors "$out")
    record active "$s" "$rps" "$p99" "$per" "$errs" "$(wrk_requests "$out")" "$base" "$peak"
    printf '  %-6s  %8.0f responses/s  p99 %.3f s  %7.1f B/connection (VmRSS %d -> peak %d kB)  errors %s\n' \
        "$s" "$rps" "$p99" "$per" "$base" "$peak" "$errs"
    if [ "$s" = awaitd ]; then
        http_get "$AW_PORT" /metrics >"$RAW/active-awaitd-metrics.txt" || true
    fi
done
stop_servers
part_end active

# ---- the table -------------------------------------------------------------
say ""
rc=0
python3 "$BENCH/report.py" --quick "$QUICK" --clk-tck "$CLK_TCK" \
    --nginx "$(nginx_version)" --commit "$(git_commit)" \
    "$RESULTS" "$OUT/results.json" || rc=$?
if [ -s "$RAW/awaitd.log" ]; then
    say ""
    say "awaitd logged (warn and above), see bench/out/raw/awaitd.log:"
    sort "$RAW/awaitd.log" | uniq -c | sort -rn | head -n 5
fi
exit "$rc"
