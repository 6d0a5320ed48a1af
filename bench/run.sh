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

usage() {
    echo "usage: bench/run.sh [--quick]"
    echo "  --quick   shorter runs, to check the script itself (figures are rough)"
}

QUICK=0
while (($#)); do
    case $1 in
    --quick) QUICK=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
OUT=$BENCH/out
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

say() { printf '%s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 2; }

# ---- 1. what the suite needs ---------------------------------------------
ECHO_MODULE=/usr/lib/nginx/modules/ngx_http_echo_module.so

nginx_has_echo() {
    [ -f "$ECHO_MODULE" ] || { command -v nginx >/dev/null && nginx -V 2>&1 | grep -q echo; }
}

install_missing() {
    local pkgs=()
    command -v nginx >/dev/null && nginx_has_echo || pkgs+=(nginx-light)
    command -v wrk >/dev/null || pkgs+=(wrk)
    command -v python3 >/dev/null || pkgs+=(python3)
    command -v gcc >/dev/null || pkgs+=(gcc libc6-dev)
    command -v taskset >/dev/null || pkgs+=(util-linux)
    ((${#pkgs[@]})) || return 0
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    say "bench: installing ${pkgs[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
    nginx_has_echo || die "nginx has no echo module (expected $ECHO_MODULE from libnginx-mod-http-echo)"
}

install_missing
if [ ! -x "$AWAITD" ]; then
    say "bench: building awaitd"
    "$ROOT/scripts/setup"
fi
[ -x "$AWAITD" ] || die "no $AWAITD after the build"

# 10,000 connections need more than 10,000 descriptors in both the server and
# the client; 20,000 is this machine's hard limit.
ulimit -n 20000 2>/dev/null || die "cannot raise the open-file limit to 20000 (hard limit: $(ulimit -Hn))"

CLK_TCK=$(getconf CLK_TCK)

# ---- processes: everything started is stopped on exit --------------------
WORK=$(mktemp -d /tmp/awaitd-bench.XXXXXX)
RAW=$OUT/raw
PIDS=() # every process started here and not yet stopped
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Run a client pinned to the client CPU, bounded in time, its output to $1.
# It runs in the background so that a signal to this script is handled at
# once (bash delays traps until a foreground command ends).
run_client() {
    local out=$1 limit=$2 rc=0 pid
    shift 2
    taskset -c "$CLIENT_PIN" timeout -k 5 "$limit" "$@" >"$out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    forget_pid "$pid"
    return "$rc"
}

# ---- small helpers ---------------------------------------------------------

http_get() { # port path: the whole answer, over bash's /dev/tcp
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
    timeout 5 cat <&3 || true
    exec 3<&-
}

# wrk's output: requests completed, errors (socket errors + non-2xx/3xx),
# requests/s, and p99 latency in seconds (with --latency).
wrk_requests() { awk '/ requests in / { print $1 }' "$1"; }
wrk_errors() {
    awk '/Socket errors:/ { gsub(",", ""); n += $4 + $6 + $8 + $10 }
         /Non-2xx or 3xx responses:/ { n += $NF }
         END { print n + 0 }' "$1"
}
wrk_rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
wrk_p99() {
    awk '$1 == "99%" {
        v = $2; u = v; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        m = (u == "us") ? 1e-6 : (u == "ms") ? 1e-3 : (u == "m") ? 60 : (u == "h") ? 3600 : 1
        printf "%.6f\n", v * m
    }' "$1"
}

# ---- the servers -----------------------------------------------------------
# Each figure starts both servers afresh, so one figure's traffic does not
# shape the next one's memory. Both listen on 127.0.0.1 only, pinned to CPU 0.
AW_PID="" AW_PORT="" NG_MASTER="" NG_PID="" NG_PORT=""

start_awaitd() {
    AW_PORT=$(free_port)
    mkdir -p "$WORK/awaitd"
    cat >"$WORK/awaitd/awaitd.conf" <<EOF
[server]
listen = 127.0.0.1:$AW_PORT
max_connections = 12000
backlog = 4096
keepalive_timeout = 75s
shutdown_grace = 0
log_level = warn

[probe]
max_delay = 5s

[journal]
path = $WORK/awaitd/journal
fsync = off
EOF
    taskset -c "$CPU_PIN" "$AWAITD" -c "$WORK/awaitd/awaitd.conf" 2>>"$RAW/awaitd.log" &
    AW_PID=$!
    PIDS+=("$AW_PID")
    wait_port "$AW_PORT" "$AW_PID" || die "awaitd did not start (see $RAW/awaitd.log)"
}

start_nginx() {
    local dir=$WORK/nginx i load=""
    NG_PORT=$(free_port)
    mkdir -p "$dir"
    # Debian's nginx-light has the echo module as a dynamic module.
    [ -f "$ECHO_MODULE" ] && load="load_module $ECHO_MODULE;"
    cat >"$dir/nginx.conf" <<EOF
$load
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 19000; }
http {
    access_log off;
    default_type application/json;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        listen 127.0.0.1:$NG_PORT backlog=4096;
        location = /get { return 200 '{"ok":true}\n'; }
        location = /delay/1 { echo_sleep 1; echo '{"ok":true}'; }
    }
}
EOF
    nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" || die "bad nginx config: $dir/nginx.conf"
    taskset -c "$CPU_PIN" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
    NG_MASTER=$!
    PIDS+=("$NG_MASTER")
    wait_port "$NG_PORT" "$NG_MASTER" || die "nginx did not start (see $dir/error.log)"
    # The one worker does all the work: that is the process measured.
    NG_PID=""
    for ((i = 0; i < 50; i++)); do
        read -r NG_PID _ <"/proc/$NG_MASTER/task/$NG_MASTER/children" || true
        [ -z "$NG_PID" ] || break
        sleep 0.1
    done
    [ -n "$NG_PID" ] || die "no nginx worker process"
    PIDS+=("$NG_PID")
}

stop_servers() {
    if [ -n "$AW_PID" ]; then
        stop_pid "$AW_PID"
    fi
    if [ -n "$NG_MASTER" ]; then
        stop_pid "$NG_MASTER"
        stop_pid "$NG_PID"
        cat "$WORK/nginx/error.log" >>"$RAW/nginx-error.log" 2>/dev/null || true
    fi
    AW_PID="" NG_MASTER="" NG_PID=""
}

server_pid() { if [ "$1" = awaitd ]; then echo "$AW_PID"; else echo "$NG_PID"; fi; }
server_port() { if [ "$1" = awaitd ]; then echo "$AW_PORT"; else echo "$NG_PORT"; fi; }

# ---- results -----------------------------------------------------------------
rm -rf "$RAW"
mkdir -p "$RAW"
RESULTS=$RAW/results.tsv # one line per measurement; bench/report.py reads it
: >"$RESULTS"
record() { (IFS=$'\t'; echo "$*") >>"$RESULTS"; }

say "awaitd benchmark suite$( ((QUICK)) && echo ' (--quick: rough figures)')"
say "servers on CPU $CPU_PIN, clients on CPU $CLIENT_PIN; raw outputs in bench/out/raw/"

# ---- target 1: server CPU per keep-alive request ---------------------------
say ""
say "== 1. server CPU per request: wrk -t1 -c$CPU_CONNS -d${CPU_SECS}s, GET /get, keep-alive"
part_begin
start_awaitd
start_nginx
for s in awaitd nginx; do # warm-up, not measured; also checks the answers
    out=$RAW/cpu-$s-warmup.txt
    run_client "$out" 30 wrk -t1 -c"$CPU_CONNS" -d1s "http://127.0.0.1:$(server_port "$s")/get" ||
        die "wrk failed against $s (see $out)"
    [ "$(wrk_errors "$out")" = 0 ] || die "$s answers /get with errors (see $out)"
done
for ((i = 1; i <= PAIRS; i++)); do
    for s in awaitd nginx; do
        pid=$(server_pid "$s")
        out=$RAW/cpu-$s-$i.txt
        t0=$(cpu_ticks "$pid")
        run_client "$out" $((CPU_SECS + 30)) wrk -t1 -c"$CPU_CONNS" -d"${CPU_SECS}s" \
            "http://127.0.0.1:$(server_port "$s")/get" || die "wrk failed against $s (see $out)"
        t1=$(cpu_ticks "$pid")
        reqs=$(wrk_requests "$out")
        errs=$(wrk_errors "$out")
        us=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.3f", t * 1e6 / hz / n }')
        record cpu "$s" "$i" "$us" "$reqs" "$(wrk_rps "$out")" "$errs" $((t1 - t0))
        printf '  run %d  %-6s  %7.2f us/request  %9d requests  %9.0f req/s  errors %s\n' \
            "$i" "$s" "$us" "$reqs" "$(wrk_rps "$out")" "$errs"
    done
done
stop_servers
part_end cpu

# ---- target 2: memory per idle keep-alive connection ----------------------
say ""
say "== 2. memory per idle keep-alive connection: $IDLE_N connections, one GET /get each, then held"
HOLDCONNS=$WORK/holdconns
gcc -O2 -Wall -Wextra -o "$HOLDCONNS" "$BENCH/holdconns.c" || die "cannot build holdconns"
part_begin
start_awaitd
start_nginx
for s in awaitd nginx; do
    pid=$(server_pid "$s")
    port=$(server_port "$s")
    run_client "$RAW/idle-$s-warmup.txt" 30 "$HOLDCONNS" -p "$port" -n 10 -t 0 ||
        die "$s does not answer /get (see $RAW/idle-$s-warmup.txt)"
    sleep 0.5
    before=$(rss_kb "$pid")
    out=$RAW/idle-$s.txt
    : >"$out"
    taskset -c "$CLIENT_PIN" "$HOLDCONNS" -p "$port" -n "$IDLE_N" -r "$IDLE_RATE" -s 60 -t 120 >"$out" 2>&1 &
    holder=$!
    PIDS+=("$holder")
    for ((j = 0; j < 700; j++)); do # the holder gives up after 60 s itself
        grep -q '^ready' "$out" && break
        kill -0 "$holder" 2>/dev/null || break
        sleep 0.1
    done
    grep -q '^ready' "$out" || die "holdconns did not get ready against $s (see $out)"
    sleep 1 # let the server settle
    during=$(rss_kb "$pid")
    open=""
    if [ "$s" = awaitd ]; then
        open=$(http_get "$port" /metrics | awk '$1 == "awaitd_connections_open" { print $2 }')
    fi
    kill -USR1 "$holder" 2>/dev/null || true
    wait "$holder" || true
    forget_pid "$holder"
    answered=$(sed -n 's/^ready.* answered=\([0-9]*\).*/\1/p' "$out")
    held=$(sed -n 's/^done held=\([0-9]*\).*/\1/p' "$out")
    per=$(awk -v a="$before" -v b="$during" -v n="$IDLE_N" 'BEGIN { printf "%.1f", (b - a) * 1024 / n }')
    record idle "$s" "$per" "$before" "$during" "$answered" "${held:-0}" "${open:-}"
    printf '  %-6s  %7.1f B/connection  (VmRSS %d -> %d kB; answered %s, held %s%s)\n' \
        "$s" "$per" "$before" "$during" "$answered" "${held:-?}" "${open:+, awaitd_connections_open $open}"
done
stop_servers
part_end idle

# ---- target 3: 10,000 connections looping GET /delay/1 --------------------
say ""
say "== 3. $ACTIVE_N connections looping GET /delay/1: wrk -t1 -c$ACTIVE_N -d${ACTIVE_SECS}s --latency --timeout $WRK_TIMEOUT"
part_begin
start_awaitd
start_nginx
for s in awaitd nginx; do
    pid=$(server_pid "$s")
    url="http://127.0.0.1:$(server_port "$s")/delay/1"
    out=$RAW/active-$s-warmup.txt
    run_client "$out" 30 wrk -t1 -c10 -d2s "$url" || die "wrk failed against $s (see $out)"
    [ "$(wrk_errors "$out")" = 0 ] || die "$s answers /delay/1 with errors (see $out)"
    sleep 0.5
    base=$(rss_kb "$pid")
    samples=$RAW/active-$s-rss.txt
    (while kill -0 "$pid" 2>/dev/null; do rss_kb "$pid"; sleep 0.25; done) >"$samples" 2>/dev/null &
    sampler=$!
    PIDS+=("$sampler")
    out=$RAW/active-$s.txt
    run_client "$out" $((ACTIVE_SECS + 60)) wrk -t1 -c"$ACTIVE_N" -d"${ACTIVE_SECS}s" --latency \
        --timeout "$WRK_TIMEOUT" "$url" || die "wrk failed against $s (see $out)"
    stop_pid "$sampler"
    peak=$(sort -n "$samples" | tail -n 1)
    per=$(awk -v a="$base" -v b="$peak" -v n="$ACTIVE_N" 'BEGIN { printf "%.1f", (b - a) * 1024 / n }')
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
    --nginx "$(nginx -v 2>&1 | sed 's/^nginx version: //')" \
    --commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$RESULTS" "$OUT/results.json" || rc=$?
if [ -s "$RAW/awaitd.log" ]; then
    say ""
    say "awaitd logged (warn and above), see bench/out/raw/awaitd.log:"
    sort "$RAW/awaitd.log" | uniq -c | sort -rn | head -n 5
fi
exit "$rc"
