#!/usr/bin/env bash
# Shared by the bench scripts (sourced first thing, before their settings):
# the command line, what to install, the work directory and its cleanup, the
# processes they start and stop (stop_pid: SIGTERM, then SIGKILL after 3 s;
# also for non-children such as nginx's worker), awaitd's and nginx's start,
# clients, ports, /proc readings, wrk's and awaitload's outputs, and results;
# and a fresh redis-server for the Redis benchmarks (start_redis).
# It sets ROOT, BENCH and OUT; the caller sets ME (the prefix of its
# messages), a usage function, RAW, and CPU_PIN and CLIENT_PIN before it
# starts anything.
# shellcheck disable=SC2034

# The tree, this folder, and where the results go.
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
OUT=$BENCH/out

say() { printf '%s\n' "$*"; }
die() { printf '%s: %s\n' "$ME" "$*" >&2; exit 2; }

# ---- the command line --------------------------------------------------------
quick_arg() { # one argument that is not the script's own: --quick, -h or an error
    case $1 in
    --quick) QUICK=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
}
quick_args() { # all the arguments of a script whose only option is --quick
    QUICK=0
    while (($#)); do
        quick_arg "$1"
        shift
    done
}

# ---- what a script needs -----------------------------------------------------
MISSING=()      # Debian packages to install
want() { # command package...: the packages, when the command is missing
    command -v "$1" >/dev/null || MISSING+=("${@:2}")
}
install_wanted() {
    ((${#MISSING[@]})) || return 0
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    say "$ME: installing ${MISSING[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${MISSING[@]}"
}

# Build the tree with scripts/setup when one of the binaries (src/NAME) is
# missing; a stale one is not rebuilt (run make first).
need_built() { # name...
    local n names="" missing=0
    for n in "$@"; do
        names+="${names:+ and }$n"
        [ -x "$ROOT/src/$n" ] || missing=1
    done
    if ((missing)); then
        say "$ME: building $names"
        "$ROOT/scripts/setup"
    fi
    for n in "$@"; do
        [ -x "$ROOT/src/$n" ] || die "no src/${names// and / or src/} after the build"
    done
}

# 10,000 connections need more than 10,000 descriptors in both the server and
# the client; 20,000 is this machine's hard limit.
raise_nofile() {
    ulimit -n 20000 2>/dev/null || die "cannot raise the open-file limit to 20000 (hard limit: $(ulimit -Hn))"
}

# ---- the work directory and every process started: all gone on exit ---------
work_begin() { # mktemp template
    WORK=$(mktemp -d "$1")
    PIDS=() # every process started here and not yet stopped
    CLK_TCK=$(getconf CLK_TCK)
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    trap - EXIT INT TERM HUP
    local pid
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
    done
    rm -rf "$WORK"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # port pid: until something accepts there, or the server died
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$2" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# ---- the servers: pinned to CPU_PIN, on 127.0.0.1 ------------------------------
AW_PID="" AW_PORT="" NG_MASTER="" NG_PID="" NG_PORT="" BS_PID="" BS_PORT=""

# probe_conf FILE PORT MAXCONN: the config every probe benchmark gives awaitd
# (keep-alive as nginx's, delays up to 5 s, a journal that never fsyncs).
probe_conf() {
    mkdir -p "$(dirname "$1")"
    cat >"$1" <<EOF
[server]
listen = 127.0.0.1:$2
max_connections = $3
backlog = 4096
keepalive_timeout = 75s
shutdown_grace = 0
log_level = warn

[probe]
max_delay = 5s

[journal]
path = $(dirname "$1")/journal
fsync = off
EOF
}

start_awaitd_conf() { # config log: AW_PID, once it accepts on AW_PORT
    taskset -c "$CPU_PIN" "$AWAITD" -c "$1" 2>>"$2" &
    AW_PID=$!
    PIDS+=("$AW_PID")
    wait_port "$AW_PORT" "$AW_PID" || die "awaitd did not start (see $2)"
}

# nginx from a generated config in $WORK/nginx: one worker, no daemon, no
# access log, pure keep-alive; NG_PID is the worker, the process measured.
# start_nginx TOP HTTP LISTEN-OPTIONS SERVER: one pinned worker. NG_PORT and
# NG_CONNS (worker_connections, default 19000), when set, choose the port
# and the room for clients.
start_nginx() {
    local dir=$WORK/nginx i
    NG_PORT=${NG_PORT:-$(free_port)}
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
$1
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections ${NG_CONNS:-19000}; }
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
$2
    server {
        listen 127.0.0.1:$NG_PORT $3;
$4
    }
}
EOF
    nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" || die "bad nginx config: $dir/nginx.conf"
    taskset -c "$CPU_PIN" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
    NG_MASTER=$!
    PIDS+=("$NG_MASTER")
    wait_port "$NG_PORT" "$NG_MASTER" || die "nginx did not start (see $dir/error.log)"
    NG_PID=""
    for ((i = 0; i < 50; i++)); do
        read -r NG_PID _ <"/proc/$NG_MASTER/task/$NG_MASTER/children" || true
        [ -z "$NG_PID" ] || break
        sleep 0.1
    done
    [ -n "$NG_PID" ] || die "no nginx worker process"
    PIDS+=("$NG_PID")
}
nginx_version() { nginx -v 2>&1 | sed 's/^nginx version: //'; }

stop_servers() { # whichever of awaitd, nginx and beanstalkd runs
    [ -z "$AW_PID" ] || stop_pid "$AW_PID"
    [ -z "$BS_PID" ] || stop_pid "$BS_PID"
    if [ -n "$NG_MASTER" ]; then
        stop_pid "$NG_MASTER"
        stop_pid "$NG_PID"
        cat "$WORK/nginx/error.log" >>"$RAW/nginx-error.log" 2>/dev/null || true
    fi
    AW_PID="" BS_PID="" NG_MASTER="" NG_PID="" NG_PORT=""
}

# A fresh redis-server (redis.sh, redis_timers.sh, waiters.sh, redis_cluster.sh):
# pinned to CPU, no persistence, its files and redis.log in DIR, on PORT of
# 127.0.0.1 (default: a free one), with any further redis-server options.
# Stopped with the other processes on exit, or by stop_pid.
RD_PID="" RD_PORT=""
start_redis() { # cpu dir [port [option...]]: RD_PID, once it accepts on RD_PORT
    RD_PORT=${3:-$(free_port)}
    mkdir -p "$2"
    taskset -c "$1" redis-server --port "$RD_PORT" --bind 127.0.0.1 --dir "$2" --save '' \
        --appendonly no --daemonize no "${@:4}" >"$2/redis.log" 2>&1 &
    RD_PID=$!
    PIDS+=("$RD_PID")
    wait_port "$RD_PORT" "$RD_PID" || die "redis-server did not start (see $2/redis.log)"
}

server_pid() { if [ "$1" = awaitd ]; then echo "$AW_PID"; else echo "$NG_PID"; fi; }
server_port() { if [ "$1" = awaitd ]; then echo "$AW_PORT"; else echo "$NG_PORT"; fi; }

# ---- clients: pinned to CLIENT_PIN, bounded in time ------------------------------
# In the background, so that a signal to the script is handled at once (bash
# delays traps until a foreground command ends).
run_client_to() { # stderr out limit argv...
    local err=$1 out=$2 limit=$3 rc=0 pid
    shift 3
    taskset -c "$CLIENT_PIN" timeout -k 5 "$limit" "$@" >"$out" 2>"$err" &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    forget_pid "$pid"
    return "$rc"
}
run_client() { run_client_to "$1.err" "$@"; }   # out limit argv...: stderr to out.err
run_client_log() { run_client_to "$1" "$@"; }   # out limit argv...: stderr to out too

# A client that holds connections (holdconns, tls_hold.py): it prints "ready
# ... answered=A ..." once they are open, and "done held=H ..." when told
# SIGUSR1 to let go. hold_begin returns once it is ready (and 1 s settled).
HOLDER=""
hold_begin() { # out tries(0.1 s) "what did not get ready" argv...
    local out=$1 tries=$2 what=$3 j
    shift 3
    : >"$out"
    taskset -c "$CLIENT_PIN" "$@" >"$out" 2>&1 &
    HOLDER=$!
    PIDS+=("$HOLDER")
    for ((j = 0; j < tries; j++)); do
        grep -q '^ready' "$out" && break
        kill -0 "$HOLDER" 2>/dev/null || break
        sleep 0.1
    done
    grep -q '^ready' "$out" || die "$what (see $out)"
    sleep 1 # let the server settle
}
hold_end() { # out: sets ANSWERED and HELD from the holder's lines
    kill -USR1 "$HOLDER" 2>/dev/null || true
    wait "$HOLDER" || true
    forget_pid "$HOLDER"
    ANSWERED=$(sed -n 's/^ready.* answered=\([0-9]*\).*/\1/p' "$1")
    HELD=$(sed -n 's/^done held=\([0-9]*\).*/\1/p' "$1")
}

# ---- HTTP over bash's /dev/tcp ---------------------------------------------------
http_req() { # port method path [body]: the whole answer
    local body=${4:-}
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        "$2" "$3" "${#body}" "$body" >&3
    timeout 10 cat <&3 || true
    exec 3<&-
}
http_get() { http_req "$1" GET "$2"; } # port path
metric() { # port name
    http_get "$1" /metrics | awk -v n="$2" '$1 == n { print $2 }'
}

# ---- clients' outputs ------------------------------------------------------------
# wrk's: requests completed, errors (socket errors + non-2xx/3xx), requests/s,
# and p99 latency in seconds (with --latency).
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

jget() { # file key[.key...]: a value from a JSON object (an object: the sum of its values)
    python3 - "$1" "$2" <<'EOF'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[k]
print(sum(v.values()) if isinstance(v, dict) else v)
EOF
}

# An awaitload run must be clean: no errors and no 4xx or 5xx in its JSON
# (but the queue scenario's "full" answers, which it counts as 5xx too).
check_awaitload() { # file what
    local errs first
    errs=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(sum(s["errors"].values()) + s["status"]["4xx"] + s["status"]["5xx"] - s.get("full", 0))' "$1") ||
        die "$2: awaitload printed no JSON (see $1 and $1.err)"
    if [ "$errs" != 0 ]; then
        first=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("first_error", ""))' "$1")
        die "$2: awaitload saw $errs errors (see $1)${first:+: $first}"
    fi
}

# ---- /proc readings and the arithmetic on them ---------------------------------------
cpu_ticks() { # utime + stime (fields 14 and 15 of /proc/PID/stat)
    local stat rest f
    stat=$(<"/proc/$1/stat")
    rest=${stat##*) } # the command name may hold spaces; fields 3.. follow ") "
    read -r -a f <<<"$rest"
    echo $((f[11] + f[12]))
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

us_each() { # ticks n [decimals]: microseconds of CPU per unit of work
    awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" -v f="%.${3:-3}f" 'BEGIN { printf f, t * 1e6 / hz / n }'
}
bytes_each() { # before_kb after_kb n [minus]: memory growth per unit, in bytes
    awk -v a="$1" -v b="$2" -v n="$3" -v p="${4:-0}" 'BEGIN { printf "%.1f", (b - a) * 1024 / n - p }'
}

# ---- results ---------------------------------------------------------------------
results_begin() { # title: RAW afresh, RESULTS in it (one line per measurement)
    rm -rf "$RAW"
    mkdir -p "$RAW"
    RESULTS=$RAW/results.tsv
    : >"$RESULTS"
    say "$1$( ((QUICK)) && echo ' (--quick: rough figures)')"
}
record() { (IFS=$'\t'; echo "$*") >>"$RESULTS"; }
git_commit() { git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown; }

# What awaitd logged (its logs are RAW/awaitd-NAME.log).
show_awaitd_logs() {
    local log
    for log in "$RAW"/awaitd-*.log; do
        if [ -s "$log" ]; then
            say ""
            say "awaitd logged (warn and above) in $(basename "$log"):"
            sort "$log" | uniq -c | sort -rn | head -n 5
        fi
    done
}

# The machine is shared. Linux's pressure stall information says how much of
# the time some runnable task waited for a CPU: near 0 in a quiet run, high
# when other work competed with the servers or clients.
psi_us() { awk '/^some/ { sub("total=", "", $5); print $5 }' /proc/pressure/cpu; }
now_us() { date +%s%6N; }
part_begin() { # [heading lines]: printed after an empty line
    local line
    if (($#)); then
        say ""
        for line in "$@"; do say "$line"; done
    fi
    PART_T0=$(now_us)
    PART_PSI0=$(psi_us 2>/dev/null || echo "")
}

# Report how much CPU pressure a part of the run saw.
part_end() { # name
    local psi pct="-"
    psi=$(psi_us 2>/dev/null || echo "")
    if [ -n "$psi" ] && [ -n "$PART_PSI0" ]; then
        pct=$(awk -v p=$((psi - PART_PSI0)) -v t=$(($(now_us) - PART_T0)) 'BEGIN { printf "%.0f", 100 * p / t }')
    fi
    record pressure "$1" "$pct"
    say "  (CPU pressure during this part: $pct% of the time a task waited for a CPU)"
}

# ---- server CPU per request: run.sh, tls.sh, h2.sh --------------------------------------
# A 1-second warm-up of each server (not measured; also checks the answers),
# then awaitd and nginx alternating PAIRS times, each run of CPU_SECS between
# two readings of the server's CPU ticks. The caller's functions:
#   cpu_run FILE SECONDS SERVER TIMEOUT   the client against SERVER for SECONDS, its
#                                 output in FILE, killed after TIMEOUT s (dies on failure)
#   cpu_check FILE SERVER         dies when the warm-up's answers had errors
#   cpu_note SERVER RUN FILE TICKS   records and prints one run
cpu_pairs() {
    local s i pid out t0 t1
    for s in awaitd nginx; do
        out=$RAW/cpu-$s-warmup.txt
        cpu_run "$out" 1 "$s" 30
        cpu_check "$out" "$s"
    done
    for ((i = 1; i <= PAIRS; i++)); do
        for s in awaitd nginx; do
            pid=$(server_pid "$s")
            out=$RAW/cpu-$s-$i.txt
            t0=$(cpu_ticks "$pid")
            cpu_run "$out" "$CPU_SECS" "$s" $((CPU_SECS + 30))
            t1=$(cpu_ticks "$pid")
            cpu_note "$s" "$i" "$out" $((t1 - t0))
        done
    done
}

# Server CPU per keep-alive request (run.sh, tls.sh): wrk -t1 -c$CPU_CONNS on
# GET /get, as cpu_pairs.
cpu_per_request() { # scheme, what the answers are called in an error
    CPU_SCHEME=$1 CPU_WHAT=$2
    cpu_run() {
        run_client_log "$1" "$4" wrk -t1 -c"$CPU_CONNS" -d"$2s" \
            "$CPU_SCHEME://127.0.0.1:$(server_port "$3")/get" || die "wrk failed against $3 (see $1)"
    }
    cpu_check() {
        [ "$(wrk_errors "$1")" = 0 ] || die "$2 answers $CPU_WHAT with errors (see $1)"
    }
    cpu_note() {
        local reqs errs us
        reqs=$(wrk_requests "$3")
        errs=$(wrk_errors "$3")
        us=$(us_each "$4" "$reqs")
        record cpu "$1" "$2" "$us" "$reqs" "$(wrk_rps "$3")" "$errs" "$4"
        printf '  run %d  %-6s  %7.2f us/request  %9d requests  %9.0f req/s  errors %s\n' \
            "$2" "$1" "$us" "$reqs" "$(wrk_rps "$3")" "$errs"
    }
    cpu_pairs
}
