#!/usr/bin/env bash
# Shared by the bench scripts (sourced): the processes they start and stop
# (stop_pid: SIGTERM, then SIGKILL after 3 s; also for non-children such as
# nginx's worker), ports, and /proc readings. The caller sets WORK and
# PIDS=() first; part_end (in each script) reads PART_T0 and PART_PSI0.
# shellcheck disable=SC2034

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

cpu_ticks() { # utime + stime (fields 14 and 15 of /proc/PID/stat)
    local stat rest f
    stat=$(<"/proc/$1/stat")
    rest=${stat##*) } # the command name may hold spaces; fields 3.. follow ") "
    read -r -a f <<<"$rest"
    echo $((f[11] + f[12]))
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# The machine is shared. Linux's pressure stall information says how much of
# the time some runnable task waited for a CPU: near 0 in a quiet run, high
# when other work competed with the servers or clients.
psi_us() { awk '/^some/ { sub("total=", "", $5); print $5 }' /proc/pressure/cpu; }
now_us() { date +%s%6N; }
part_begin() {
    PART_T0=$(now_us)
    PART_PSI0=$(psi_us 2>/dev/null || echo "")
}

# Run a client pinned to CLIENT_PIN, bounded in time, stdout to $1 and
# stderr to $1.err; in the background so a signal to the script acts at once.
run_client() {
    local out=$1 limit=$2 rc=0 pid
    shift 2
    taskset -c "$CLIENT_PIN" timeout -k 5 "$limit" "$@" >"$out" 2>"$out.err" &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    forget_pid "$pid"
    return "$rc"
}

# Report how much CPU pressure a part of the run saw (needs record and say).
part_end() { # name
    local psi pct="-"
    psi=$(psi_us 2>/dev/null || echo "")
    if [ -n "$psi" ] && [ -n "$PART_PSI0" ]; then
        pct=$(awk -v p=$((psi - PART_PSI0)) -v t=$(($(now_us) - PART_T0)) 'BEGIN { printf "%.0f", 100 * p / t }')
    fi
    record pressure "$1" "$pct"
    say "  (CPU pressure during this part: $pct% of the time a task waited for a CPU)"
}
