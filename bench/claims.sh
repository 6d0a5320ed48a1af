#!/usr/bin/env bash
# The article's claim, measured: awaitd (one event loop) against a thread per
# connection, Python asyncio (aiohttp, on asyncio's loop and on uvloop),
# nginx (one worker) and Go's net/http, from 100 to 19,000 connections.
# Three workloads per server and size: idle keep-alive connections, every
# connection looping GET /delay/1, and keep-alive GET /get at full speed.
# See bench/README.md ("The claim") for what each figure means.
#
#   bench/claims.sh [--quick] [--servers a,b,...] [--sizes n,n,...]
#   (also: make bench-report)
#
# Writes bench/out/claims/: report.html with SVG charts, results.json,
# results.csv, and raw/ (every client's output, the servers' logs).
# Exit status: 0 when the report was written, 2 when the run could not go on.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ME=claims

ALL_SERVERS=awaitd,threaded,aiohttp,uvloop,nginx,go
usage() {
    echo "usage: bench/claims.sh [--quick] [--servers LIST] [--sizes LIST]"
    echo "  --quick          sizes 100 and 1,000, short runs (to check the script; rough figures)"
    echo "  --servers LIST   a subset of $ALL_SERVERS (default: all)"
    echo "  --sizes LIST     connection counts, e.g. 100,1000 (at most 19000)"
}
QUICK=0 SERVERS=$ALL_SERVERS SIZES_ARG=""
while (($#)); do
    case $1 in
    --servers) SERVERS=${2:?}; shift ;;
    --sizes) SIZES_ARG=${2:?}; shift ;;
    *) quick_arg "$1" ;;
    esac
    shift
done

CLAIMS=$OUT/claims
RAW=$CLAIMS/raw
PY=/usr/bin/python3 # Debian's: aiohttp, uvloop and matplotlib are its packages

# ---- what is measured, and how long --------------------------------------
if ((QUICK)); then
    SIZES="100 1000" SETTLE=1 WINDOW=3
else
    SIZES="100 1000 5000 10000 19000" SETTLE=2 WINDOW=6
fi
[ -z "$SIZES_ARG" ] || SIZES=${SIZES_ARG//,/ }
CONNECT_RATE=5000 # new connections per second (the listen backlog is 4096)
TIMEOUT=5s        # a response slower than this is an error
STACK_KB=64       # the threaded server's stack per connection thread
CPU_PIN=0         # servers
CLIENT_PIN=1      # clients, and the readers of /proc

# ---- what the run needs (its own list; scripts/setup is not involved) ----
ECHO_MODULE=/usr/lib/nginx/modules/ngx_http_echo_module.so
want_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' || MISSING+=("$1"); }
for p in nginx-light libnginx-mod-http-echo python3 python3-aiohttp python3-uvloop \
    python3-matplotlib golang-go gcc libc6-dev util-linux; do
    want_pkg "$p"
done
install_wanted
need_built awaitd awaitload
raise_nofile
for n in $SIZES; do
    ((n <= 19000)) || die "at most 19000 connections here (20,000 descriptors per process)"
done

work_begin /tmp/awaitd-claims.XXXXXX
rm -rf "$CLAIMS"
mkdir -p "$RAW"
RESULTS=$RAW/results.tsv
: >"$RESULTS"

# Binaries copied or built in WORK: a rebuild in the tree during the run
# changes nothing.
cp "$ROOT/src/awaitd" "$ROOT/src/awaitload" "$WORK/"
AWAITD=$WORK/awaitd
LOAD=$WORK/awaitload
gcc -O2 -Wall -Wextra -o "$WORK/holdconns" "$BENCH/holdconns.c" || die "cannot build holdconns"
gcc -O2 -Wall -Wextra -pthread -o "$WORK/threaded" "$BENCH/peers/threaded.c" || die "cannot build threaded"
if [[ ,$SERVERS, == *,go,* ]]; then
    if ! GOCACHE=$WORK/gocache GOPATH=$WORK/gopath GO111MODULE=off GOFLAGS= \
        go build -o "$WORK/go_server" "$BENCH/peers/go_server.go" 2>"$RAW/go-build.txt"; then
        say "claims: cannot build the Go peer (see $RAW/go-build.txt); it is left out"
        SERVERS=${SERVERS//go/}
    fi
fi

# ---- the servers: one at a time, pinned to CPU 0, on 127.0.0.1 -------------
# SRV_PID is the process measured (nginx: its worker), SRV_PORT its port.
SRV_PID="" SRV_PORT="" SRV_NAME=""
start_bg() { # log argv...
    local log=$1
    shift
    taskset -c "$CPU_PIN" "$@" >>"$log" 2>&1 &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
}
# A free port below the ephemeral range (32768-60999): after 19,000 client
# connections close, their TIME_WAIT entries can fill that range and bind(0)
# fails with EADDRINUSE.
server_port() {
    "$PY" -c 'import random, socket
for _ in range(1000):
    p = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    print(p)
    break'
}
start_server() { # name
    SRV_NAME=$1
    SRV_PORT=$(server_port)
    [ -n "$SRV_PORT" ] || die "no free port for $1"
    local log=$RAW/$1.log
    case $1 in
    awaitd)
        probe_conf "$WORK/aw/awaitd.conf" "$SRV_PORT" 19900
        start_bg "$log" "$AWAITD" -c "$WORK/aw/awaitd.conf" ;;
    threaded) start_bg "$log" "$WORK/threaded" -p "$SRV_PORT" -s "$STACK_KB" -b 4096 ;;
    aiohttp) start_bg "$log" "$PY" "$BENCH/peers/aio_server.py" --port "$SRV_PORT" --loop asyncio ;;
    uvloop) start_bg "$log" "$PY" "$BENCH/peers/aio_server.py" --port "$SRV_PORT" --loop uvloop ;;
    go) start_bg "$log" env GOGC=100 "$WORK/go_server" -port "$SRV_PORT" ;;
    nginx)
        start_nginx_claims
        return 0 ;;
    *) die "unknown server $1" ;;
    esac
    wait_port "$SRV_PORT" "$SRV_PID" || die "$1 did not start (see $log)"
}
# nginx closes idle keep-alive connections once fewer than 1/16 of
# worker_connections are free, so 19,000 clients need more than 20,267 (it
# warns that this exceeds the 20,000 descriptors, which is true and harmless).
start_nginx_claims() {
    NG_PORT=$SRV_PORT NG_CONNS=21000
    start_nginx "load_module $ECHO_MODULE;" "" "backlog=4096" \
"        location = /get { return 200 '{\"ok\":true}\\n'; }
        location = /delay/1 { echo_sleep 1; echo '{\"ok\":true}'; }"
    SRV_PID=$NG_PID
}
stop_server() {
    if [ "$SRV_NAME" = nginx ]; then
        stop_servers
    else
        stop_pid "$SRV_PID"
    fi
    SRV_PID=""
}

# ---- readings, taken from CPU 1 --------------------------------------------
# Context switches, voluntary plus involuntary, summed over every thread.
ctxsw() { # pid
    taskset -c "$CLIENT_PIN" "$PY" - "$1" <<'EOF' 2>/dev/null || echo 0
import glob, sys
n = 0
for f in glob.glob(f"/proc/{sys.argv[1]}/task/*/status"):
    try:
        for line in open(f):
            if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                n += int(line.split()[1])
    except OSError:
        pass  # the thread ended
print(n)
EOF
}
threads_of() { awk '/^Threads:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
rss_now() { rss_kb "$1" 2>/dev/null || echo 0; } # 0 once the server is gone
slab_kb() { awk '/^Slab:/ { print $2 }' /proc/meminfo; }
kstack_kb() { awk '/^(KernelStack|PageTables):/ { s += $2 } END { print s + 0 }' /proc/meminfo; }
sock_pages() { awk '/^TCP:/ { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat; }

warm_up() { # a few answered GET /get, so the baseline is a server that has served
    run_client_log "$RAW/$SRV_NAME-$1-warmup.txt" 30 "$WORK/holdconns" -p "$SRV_PORT" -n 10 -t 0 ||
        die "$SRV_NAME does not answer /get (see $RAW/$SRV_NAME-$1-warmup.txt)"
    sleep 0.5
}

# ---- idle keep-alive connections -------------------------------------------
idle_cell() { # n
    local n=$1 base slab0 sock0 ks0 during slab1 sock1 ks1 thr out
    start_server "$SRV_NAME"
    warm_up "idle-$n"
    base=$(rss_kb "$SRV_PID") slab0=$(slab_kb) sock0=$(sock_pages) ks0=$(kstack_kb)
    out=$RAW/$SRV_NAME-idle-$n.txt
    hold_begin "$out" 900 "holdconns did not get ready against $SRV_NAME" \
        "$WORK/holdconns" -p "$SRV_PORT" -n "$n" -r "$CONNECT_RATE" -s 60 -t 120
    during=$(rss_now "$SRV_PID") slab1=$(slab_kb) sock1=$(sock_pages) ks1=$(kstack_kb) thr=$(threads_of "$SRV_PID")
    hold_end "$out"
    kill -0 "$SRV_PID" 2>/dev/null || say "  $SRV_NAME died while holding $n connections"
    record idle "$SRV_NAME" "$n" "$base" "$during" "${ANSWERED:-0}" "${HELD:-0}" "$thr" \
        $((slab1 - slab0)) $((sock1 - sock0)) $((ks1 - ks0))
    printf '  idle     %-8s %6d conns  %8.0f B/conn  (VmRSS %d -> %d kB, answered %s, held %s, threads %s)\n' \
        "$SRV_NAME" "$n" "$(bytes_each "$base" "$during" "$n")" "$base" "$during" "${ANSWERED:-0}" "${HELD:-0}" "$thr"
    stop_server
}

# ---- a load run: awaitload -c N, stopped once the window has been read -------
# The window opens SETTLE seconds after the server holds all N connections
# (ss counts them; at most 60 s of waiting) and lasts WINDOW seconds; CPU and
# context switches are read at both ends, and the responses inside it come
# from awaitload's per-second timeline (claims_report.py interpolates the
# window's fractional seconds). awaitload is then stopped with SIGTERM, which
# makes it print its JSON summary. p50 and p99 cover the whole run, the
# connect ramp included.
established() { # port: the server's established TCP connections
    taskset -c "$CLIENT_PIN" ss -Htn state established "( sport = :$1 )" 2>/dev/null | wc -l
}
load_run() { # kind path n: sets the L_* values
    local kind=$1 path=$2 n=$3 out samples sampler lp i est=0 tl w0 w1 t0 c0 t1 c1 thr
    out=$RAW/$SRV_NAME-$kind-$n.json
    L_OUT=$out
    samples=$RAW/$SRV_NAME-$kind-$n-rss.txt
    (while kill -0 "$SRV_PID" 2>/dev/null; do rss_now "$SRV_PID"; sleep 0.25; done) >"$samples" 2>/dev/null &
    sampler=$!
    PIDS+=("$sampler")
    tl=$(now_us)
    # -d 240s bounds it; taskset execs awaitload, so lp is awaitload itself
    taskset -c "$CLIENT_PIN" "$LOAD" -c "$n" -d 240s --timeout "$TIMEOUT" \
        --connect-rate "$CONNECT_RATE" --json "http://127.0.0.1:$SRV_PORT$path" >"$out" 2>"$out.err" &
    lp=$!
    PIDS+=("$lp")
    for ((i = 0; i < 120; i++)); do
        sleep 0.5
        est=$(established "$SRV_PORT")
        ((est >= n)) && break
        kill -0 "$lp" 2>/dev/null || break
    done
    sleep "$SETTLE"
    w0=$(now_us) t0=$(cpu_ticks "$SRV_PID" 2>/dev/null || echo 0) c0=$(ctxsw "$SRV_PID")
    sleep "$WINDOW"
    w1=$(now_us) t1=$(cpu_ticks "$SRV_PID" 2>/dev/null || echo "$t0") c1=$(ctxsw "$SRV_PID") thr=$(threads_of "$SRV_PID")
    # SIGTERM, not SIGINT: a background job of a script starts with SIGINT
    # ignored, and an ignored signal is discarded even where it is awaited.
    kill -TERM "$lp" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$lp" 2>/dev/null || break
        sleep 0.1
    done
    stop_pid "$lp"
    stop_pid "$sampler"
    L_W0=$(awk -v a="$w0" -v b="$tl" 'BEGIN { printf "%.3f", (a - b) / 1e6 }')
    L_W1=$(awk -v a="$w1" -v b="$tl" 'BEGIN { printf "%.3f", (a - b) / 1e6 }')
    L_TICKS=$((t1 - t0)) L_CTX=$((c1 - c0)) L_THREADS=$thr L_EST=$est
    L_PEAK=$(sort -n "$samples" | tail -n 1)
    [ -n "$L_PEAK" ] || L_PEAK=0
}

active_and_get_cell() { # n
    local n=$1 base
    start_server "$SRV_NAME"
    warm_up "active-$n"
    base=$(rss_kb "$SRV_PID")
    load_run active /delay/1 "$n"
    record active "$SRV_NAME" "$n" "$L_OUT" "$L_W0" "$L_W1" "$L_TICKS" "$L_CTX" "$base" "$L_PEAK" "$L_THREADS" "$L_EST"
    summary active "$n" "$base"
    if kill -0 "$SRV_PID" 2>/dev/null; then
        sleep 1
        load_run get /get "$n"
        record get "$SRV_NAME" "$n" "$L_OUT" "$L_W0" "$L_W1" "$L_TICKS" "$L_CTX" "$base" "$L_PEAK" "$L_THREADS" "$L_EST"
        summary get "$n" "$base"
    else
        say "  $SRV_NAME died under $n connections looping /delay/1"
        record died "$SRV_NAME" "$n" active
    fi
    stop_server
}
summary() { # kind n base: one line from awaitload's JSON
    "$PY" - "$L_OUT" "$SRV_NAME" "$1" "$2" "$L_W0" "$L_W1" "$L_TICKS" "$L_CTX" "$3" "$L_PEAK" "$CLK_TCK" <<'EOF'
import json, sys
f, name, kind, n, w0, w1, ticks, ctx, base, peak, hz = sys.argv[1:]
n, ticks, ctx, base, peak, hz = int(n), int(ticks), int(ctx), int(base), int(peak), int(hz)
w0, w1 = float(w0), float(w1)
try:
    d = json.load(open(f))
except Exception:
    print(f"  {kind:8} {name:8} {n:6d} conns  awaitload printed no JSON (see {f}.err)")
    sys.exit(0)
if "error" in d:
    print(f"  {kind:8} {name:8} {n:6d} conns  awaitload: {d['error']}")
    sys.exit(0)
tl = d["timeline"]["responses"]
r = sum(v * max(0.0, min(i + 1, w1) - max(i, w0)) for i, v in enumerate(tl))
errs = sum(d["errors"].values()) + d["status"]["4xx"] + d["status"]["5xx"]
lat = d["latency_us"]
us = ticks / hz * 1e6 / r if r else float("nan")
print(f"  {kind:8} {name:8} {n:6d} conns  {r / (w1 - w0):9.0f} resp/s  p50 {lat['p50'] / 1e3:8.1f} ms"
      f"  p99 {lat['p99'] / 1e3:8.1f} ms  cpu {100 * ticks / hz / (w1 - w0):5.1f}%  {us:7.2f} us/resp"
      f"  ctxsw/resp {ctx / r if r else float('nan'):6.3f}  {(peak - base) * 1024 / n:8.0f} B/conn  errors {errs}")
EOF
}

# ---- the run -----------------------------------------------------------------
say "claims: $(date -u '+%Y-%m-%d %H:%M UTC')$( ((QUICK)) && echo ' (--quick: rough figures)')"
say "servers on CPU $CPU_PIN, clients on CPU $CLIENT_PIN; sizes: $SIZES; raw outputs in bench/out/claims/raw/"
T_START=$(now_us) PSI_START=$(psi_us 2>/dev/null || echo "")
for s in ${SERVERS//,/ }; do
    say ""
    say "== $s"
    SRV_NAME=$s
    for n in $SIZES; do
        idle_cell "$n"
        active_and_get_cell "$n"
    done
done
PSI_END=$(psi_us 2>/dev/null || echo "")
if [ -n "$PSI_START" ] && [ -n "$PSI_END" ]; then
    record pressure all "$(awk -v p=$((PSI_END - PSI_START)) -v t=$(($(now_us) - T_START)) 'BEGIN { printf "%.0f", 100 * p / t }')"
fi

# ---- the machine and the versions ------------------------------------------
{
    echo "date	$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "quick	$QUICK"
    echo "commit	$(git_commit)"
    echo "kernel	$(uname -r)"
    echo "cpu	$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo) x $(nproc)"
    echo "memory	$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "load	$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "clk_tck	$CLK_TCK"
    echo "nofile	$(ulimit -n)"
    echo "pid_max	$(cat /proc/sys/kernel/pid_max)"
    echo "threads_max	$(cat /proc/sys/kernel/threads-max)"
    echo "awaitd	$("$AWAITD" -V 2>&1 | head -n 1)"
    echo "threaded	bench/peers/threaded.c, gcc $(gcc -dumpfullversion), ${STACK_KB} KiB stacks"
    echo "aiohttp	aiohttp $("$PY" -c 'import aiohttp; print(aiohttp.__version__)'), Python $("$PY" -c 'import platform; print(platform.python_version())')"
    echo "uvloop	uvloop $("$PY" -c 'import uvloop; print(uvloop.__version__)')"
    echo "nginx	$(nginx_version), echo module"
    echo "go	$(go version 2>/dev/null | cut -d' ' -f3), net/http, GOMAXPROCS 1 (pinned)"
    echo "settle_s	$SETTLE"
    echo "window_s	$WINDOW"
    echo "connect_rate	$CONNECT_RATE"
    echo "stack_kb	$STACK_KB"
} >"$RAW/machine.tsv"

say ""
"$PY" "$BENCH/claims_report.py" "$RAW" "$CLAIMS" "$OUT/report.html" || die "the report failed"
say "claims: report in bench/out/report.html (figures in bench/out/claims/)"
