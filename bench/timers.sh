#!/usr/bin/env bash
# awaitd's timer benchmark: 100,000 periodic 1-second timers created over
# HTTP, firing into a queue for 15 s while awaitload loads GET /get. Figures:
# firing lateness (p99, from awaitd_timer_lateness_seconds), /get latency (p99)
# meanwhile, the server's CPU and memory per timer; then 1,000,000 timers
# created and cancelled over HTTP, and the engine-level bench/task_bench.
# See "Timer benchmark" in bench/README.md for what each figure means.
#
#   bench/timers.sh [--quick] [--fsync MODE]
#
# Prints a table and writes it as JSON to bench/out/timers.json; the raw
# outputs of every run go to bench/out/timers-raw/. Exit status: 0 when every
# target is met, 1 when one is missed, 2 when the benchmark could not run.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ME=bench/timers

usage() {
    echo "usage: bench/timers.sh [--quick] [--fsync MODE]"
    echo "  --quick        fewer timers, shorter windows, no 1,000,000 part (rough figures)"
    echo "  --fsync MODE   awaitd's [journal] fsync: off (default), batch or always"
}

QUICK=0
FSYNC=off
while (($#)); do
    case $1 in
    --fsync)
        shift
        case ${1:-} in off | batch | always) FSYNC=$1 ;; *) usage >&2; exit 2 ;; esac
        ;;
    *) quick_arg "$1" ;;
    esac
    shift
done

RAW=$OUT/timers-raw

# ---- what is measured, and how long --------------------------------------
# One firing run each: jitter (s) and what happens to the jobs. "purge": the
# queue (maxsize 0) is purged every PURGE_EVERY s; "full": the queue is kept
# full (maxsize 1), every tick is skipped and nothing is purged: the control
# that shows the firing path without the purges' pauses (bench/README.md).
RUNS="0.9:purge 0.05:purge 0:purge 0:full"
PERIOD=1             # seconds between ticks of every timer
CREATE_CONNS=50      # awaitload connections creating timers
GET_CONNS=10         # awaitload connections on GET /get during the window
PURGE_EVERY=1        # seconds between POST /queues/q/purge
SETTLE=2             # seconds between the last create and the window
if ((QUICK)); then
    TIMERS=20000 QUIET_SECS=2 GET_SECS=3 BIG=0
else
    TIMERS=100000 QUIET_SECS=5 GET_SECS=10 BIG=1000000
fi
WINDOW=$((QUIET_SECS + GET_SECS)) # the lateness window: timers alone, then with /get load
CPU_PIN=0    # awaitd (and task_bench)
CLIENT_PIN=1 # awaitload, the purger, the cancel client

# Targets (the timer issue).
T_LATE_P99=5 # ms, firing lateness p99 in the window
T_GET_P99=5  # ms, GET /get p99 while the timers fire (strictly below)

# ---- 1. what the benchmark needs ------------------------------------------
want python3 python3
want gcc gcc libc6-dev
want make make
want taskset util-linux
install_wanted
need_built awaitd awaitload
if [ -f "$ROOT/Makefile" ]; then
    make -C "$ROOT" -s bench/task_bench >/dev/null || die "make bench/task_bench failed"
fi
[ -x "$ROOT/bench/task_bench" ] || die "no bench/task_bench (run make bench/task_bench)"

# ---- processes: everything started is stopped on exit --------------------
work_begin /tmp/awaitd-timers-bench.XXXXXX # config and journal

# The binaries are copied: a rebuild in the tree during the run changes nothing here.
mkdir -p "$WORK/bin"
cp "$ROOT/src/awaitd" "$ROOT/src/awaitload" "$ROOT/bench/task_bench" "$WORK/bin/"
AWAITD=$WORK/bin/awaitd
AWAITLOAD=$WORK/bin/awaitload
TASK_BENCH=$WORK/bin/task_bench

# ---- small helpers ---------------------------------------------------------
metrics_to() { http_req "$AW_PORT" GET /metrics >"$1"; } # file

# ---- the server --------------------------------------------------------------
start_awaitd() { # name
    local dir=$WORK/$1
    AW_PORT=$(free_port)
    mkdir -p "$dir"
    cat >"$dir/awaitd.conf" <<EOF
[server]
listen = 127.0.0.1:$AW_PORT
max_connections = 1000
log_level = warn
shutdown_grace = 0

[journal]
path = $dir/journal
fsync = $FSYNC

[queues]
mem_limit = 4g
EOF
    start_awaitd_conf "$dir/awaitd.conf" "$RAW/awaitd-$1.log"
    http_req "$AW_PORT" PUT /queues/q '{"maxsize": 0}' | head -n 1 | grep -q ' 201 ' ||
        die "PUT /queues/q failed"
}

# Create $2 timers with body $3 over HTTP (awaitload, keep-alive, $CREATE_CONNS connections).
create_timers() { # out n body
    run_client "$1" 600 "$AWAITLOAD" --json -m POST -H 'Content-Type: application/json' \
        -b "$3" -c "$CREATE_CONNS" -n "$2" "http://127.0.0.1:$AW_PORT/timers" ||
        die "awaitload failed creating timers (see $1.err)"
    check_awaitload "$1" "creating timers"
    local got
    got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"]["2xx"])' "$1")
    [ "$got" = "$2" ] || die "created $got timers, not $2 (see $1)"
}

# Create $2 periodic timers that do not fire in the run (every 3600 s) and
# check they are all scheduled; VmRSS before and after in RSS_BEFORE, RSS_AFTER.
create_idle_timers() { # out n part
    RSS_BEFORE=$(rss_kb "$AW_PID")
    create_timers "$1" "$2" '{"queue": "q", "every": 3600}'
    sleep 0.5
    RSS_AFTER=$(rss_kb "$AW_PID")
    local sched
    sched=$(metric "$AW_PORT" 'awaitd_timers{state="scheduled"}')
    [ "$sched" = "$2" ] || die "$3) $sched timers scheduled, not $2"
}

# POST /queues/q/purge every $PURGE_EVERY s, on the client CPU, until stopped.
PURGER=""
start_purger() { # log
    (
        trap 'exit 0' TERM
        while :; do
            sleep "$PURGE_EVERY"
            http_req "$AW_PORT" POST /queues/q/purge | tail -n 1 >>"$1" || true
            echo >>"$1"
        done
    ) &
    PURGER=$!
    PIDS+=("$PURGER")
    taskset -pc "$CLIENT_PIN" "$PURGER" >/dev/null
}
stop_purger() {
    [ -z "$PURGER" ] || stop_pid "$PURGER"
    PURGER=""
}

# ---- results -----------------------------------------------------------------
results_begin "awaitd timer benchmark"
say "awaitd on CPU $CPU_PIN, clients on CPU $CLIENT_PIN; journal fsync = $FSYNC; raw outputs in bench/out/timers-raw/"

# ---- a. memory per timer -------------------------------------------------------
part_begin "== a. memory: $TIMERS periodic timers created over HTTP (every 3600 s: none fires)"
start_awaitd memory
run_client "$RAW/a-warmup.json" 60 "$AWAITLOAD" --json -c "$CREATE_CONNS" -n 20000 "http://127.0.0.1:$AW_PORT/get" ||
    die "awaitload failed (see $RAW/a-warmup.json.err)"
sleep 0.5
create_idle_timers "$RAW/a-create.json" "$TIMERS" a
before=$RSS_BEFORE after=$RSS_AFTER
per=$(bytes_each "$before" "$after" "$TIMERS")
cps=$(jget "$RAW/a-create.json" rps)
record memory "$per" "$before" "$after" "$TIMERS" "$cps"
printf '  %.1f B per timer  (VmRSS %d -> %d kB); created at %.0f/s\n' "$per" "$before" "$after" "$cps"
stop_servers
part_end memory

# ---- b. firing: lateness, /get latency, CPU ---------------------------------------
for run in $RUNS; do
    J=${run%%:*} MODE=${run#*:}
    say ""
    if [ "$MODE" = full ]; then
        say "== b. jitter $J: $TIMERS timers every ${PERIOD}s into queue q, kept full (maxsize 1: every tick skipped, no purges);"
    else
        say "== b. jitter $J: $TIMERS timers every ${PERIOD}s into queue q (purged every ${PURGE_EVERY}s);"
    fi
    say "   ${WINDOW}s window: ${QUIET_SECS}s timers alone, then ${GET_SECS}s with awaitload -c $GET_CONNS GET /get"
    part_begin
    name=fire-j$J-$MODE
    start_awaitd "$name"
    run_client "$RAW/$name-warmup.json" 60 "$AWAITLOAD" --json -c "$GET_CONNS" -d 1s "http://127.0.0.1:$AW_PORT/get" ||
        die "awaitload failed (see $RAW/$name-warmup.json.err)"
    rss0=$(rss_kb "$AW_PID")
    if [ "$MODE" = full ]; then
        http_req "$AW_PORT" PUT /queues/q '{"maxsize": 1}' | head -n 1 | grep -q ' 200 ' || die "PUT /queues/q maxsize 1 failed"
        http_req "$AW_PORT" POST /queues/q/jobs x | head -n 1 | grep -q ' 201 ' || die "put into q failed"
    else
        start_purger "$RAW/$name-purges.txt"
    fi
    create_timers "$RAW/$name-create.json" "$TIMERS" "{\"queue\": \"q\", \"every\": $PERIOD, \"jitter\": $J}"
    sleep "$SETTLE"
    peak=0
    metrics_to "$RAW/$name-m0.txt"
    c0=$(cpu_ticks "$AW_PID")
    for ((s = 0; s < QUIET_SECS; s++)); do
        sleep 1
        r=$(rss_kb "$AW_PID")
        if ((r > peak)); then peak=$r; fi
    done
    metrics_to "$RAW/$name-m1.txt"
    c1=$(cpu_ticks "$AW_PID")
    out=$RAW/$name-get.json
    run_client "$out" $((GET_SECS + 60)) "$AWAITLOAD" --json -c "$GET_CONNS" -d "${GET_SECS}s" \
        "http://127.0.0.1:$AW_PORT/get" || die "awaitload failed (see $out.err)"
    metrics_to "$RAW/$name-m2.txt"
    c2=$(cpu_ticks "$AW_PID")
    r=$(rss_kb "$AW_PID")
    if ((r > peak)); then peak=$r; fi
    check_awaitload "$out" "b) jitter $J /get"
    stop_purger
    sched=$(metric "$AW_PORT" 'awaitd_timers{state="scheduled"}')
    [ "$sched" = "$TIMERS" ] || die "b) $sched timers still scheduled, not $TIMERS"
    record fire "$J" "$MODE" "$RAW/$name-m0.txt" "$RAW/$name-m1.txt" "$RAW/$name-m2.txt" \
        $((c1 - c0)) $((c2 - c1)) "$QUIET_SECS" "$GET_SECS" "$out" "$rss0" "$peak" \
        "$(jget "$RAW/$name-create.json" rps)"
    python3 - "$RAW/$name-m0.txt" "$RAW/$name-m1.txt" "$RAW/$name-m2.txt" "$out" <<'EOF'
import json, sys
def m(path):
    out = {}
    for line in open(path, errors="replace"):
        if line.startswith("awaitd_timer_") and " " in line:
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out
a, b, c = (m(p) for p in sys.argv[1:4])
g = json.load(open(sys.argv[4]))
def ticks(x, y):
    return sum(y[k] - x[k] for k in ("awaitd_timer_fires_total", "awaitd_timer_skips_total"))
print("  ticks: %d alone, %d under load (%d skipped); /get %.0f req/s, p99 %.2f ms"
      % (ticks(a, b), ticks(b, c), c["awaitd_timer_skips_total"] - a["awaitd_timer_skips_total"],
         g["rps"], g["latency_us"]["p99"] / 1000))
EOF
    stop_servers
    part_end "$name"
done

# ---- c. 1,000,000 timers created, then cancelled over HTTP ---------------------------
if ((BIG)); then
    part_begin "== c. $BIG periodic timers (every 3600 s) created over HTTP, then each cancelled (DELETE, pipelined)"
    start_awaitd big
    sleep 0.3
    create_idle_timers "$RAW/c-create.json" "$BIG" c
    before=$RSS_BEFORE mid=$RSS_AFTER
    # The cancel client: one keep-alive connection, DELETE /timers/1..N pipelined
    # (at most 20,000 outstanding), counting "200" answers.
    out=$RAW/c-cancel.json
    cat >"$WORK/cancel.py" <<'EOF'
import json, socket, sys, threading, time
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=60)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
window = threading.Semaphore(20000)
BATCH = 500
def writer():
    for start in range(1, n + 1, BATCH):
        ids = range(start, min(start + BATCH, n + 1))
        for _ in ids:
            window.acquire()
        s.sendall(b"".join(b"DELETE /timers/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in ids))
t0 = time.monotonic()
th = threading.Thread(target=writer, daemon=True)
th.start()
got = ok = 0
tail = b""
while got < n:
    data = s.recv(1 << 20)
    if not data:
        sys.exit("connection closed after %d answers" % got)
    buf = tail + data
    k = buf.count(b"HTTP/1.1 ")
    ok += buf.count(b"HTTP/1.1 200 ")
    # keep the last bytes in case a status line is split across reads
    tail = buf[-12:]
    k -= tail.count(b"HTTP/1.1 ")
    ok -= tail.count(b"HTTP/1.1 200 ")
    got += k
    for _ in range(k):
        window.release()
took = time.monotonic() - t0
print(json.dumps({"cancelled": n, "ok": ok + tail.count(b"HTTP/1.1 200 "), "seconds": took, "per_s": n / took}))
EOF
    run_client "$out" 600 python3 "$WORK/cancel.py" "$AW_PORT" "$BIG" || die "the cancel client failed (see $out.err)"
    sleep 0.5
    after=$(rss_kb "$AW_PID")
    cancelled=$(metric "$AW_PORT" 'awaitd_timers{state="cancelled"}')
    [ "$cancelled" = "$BIG" ] || die "c) $cancelled timers cancelled, not $BIG"
    [ "$(jget "$out" ok)" = "$BIG" ] || die "c) $(jget "$out" ok) of $BIG DELETEs answered 200 (see $out)"
    per=$(bytes_each "$before" "$mid" "$BIG")
    cps=$(jget "$RAW/c-create.json" rps)
    dps=$(jget "$out" per_s)
    record big "$BIG" "$cps" "$dps" "$per" "$before" "$mid" "$after"
    printf '  created at %.0f/s, %.1f B per timer (VmRSS %d -> %d kB); cancelled at %.0f/s (VmRSS after %d kB: cancelled timers stay visible for an hour)\n' \
        "$cps" "$per" "$before" "$mid" "$dps" "$after"
    stop_servers
    part_end big
fi

# ---- d. the engine alone: bench/task_bench ----------------------------------------------
part_begin "== d. the engine alone: bench/task_bench (pinned to CPU $CPU_PIN)"
taskset -c "$CPU_PIN" timeout 300 "$TASK_BENCH" >"$RAW/task_bench.txt" 2>&1 &
pid=$!
PIDS+=("$pid")
wait "$pid" || die "bench/task_bench failed (see $RAW/task_bench.txt)"
forget_pid "$pid"
sed 's/^/  /' "$RAW/task_bench.txt"
part_end task_bench

# ---- the table -------------------------------------------------------------
say ""
rc=0
python3 - "$RESULTS" "$OUT/timers.json" "$QUICK" "$CLK_TCK" "$RAW/task_bench.txt" \
    "$(git_commit)" "$T_LATE_P99" "$T_GET_P99" "$TIMERS" "$PERIOD" "$FSYNC" "$GET_CONNS" "$PURGE_EVERY" <<'EOF' || rc=$?
import json, re, sys, time

(results, out_path, quick, clk_tck, task_bench, commit, t_late, t_get, timers, period, fsync,
 get_conns, purge_every) = sys.argv[1:]
clk_tck, t_late, t_get, timers, period = int(clk_tck), float(t_late), float(t_get), int(timers), float(period)
rows = [line.rstrip("\n").split("\t") for line in open(results) if line.strip()]

def metrics(path):
    out = {}
    for line in open(path, errors="replace"):
        if line.startswith("awaitd_timer") and " " in line:
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out

def late_hist(a, b):
    """[(le_ms, count)] of the firings between two scrapes (le = inf for +Inf)."""
    out = []
    for k, v in b.items():
        m = re.match(r'awaitd_timer_lateness_seconds_bucket\{le="([^"]+)"\}', k)
        if m:
            le = float("inf") if m.group(1) == "+Inf" else float(m.group(1)) * 1000.0
            out.append((le, v - a.get(k, 0)))
    return sorted(out)

def quantile(hist, q):
    """Linear interpolation within the bucket, as Prometheus' histogram_quantile:
    bucket le=L holds lateness in (previous le, L] (awaitd measures it in
    microseconds and prints the bounds in seconds; late_hist gives ms)."""
    total = hist[-1][1] if hist else 0
    if total <= 0:
        return None, None
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in hist:
        if c >= rank:
            if le == float("inf"):
                return prev_le, float("inf")
            lo = prev_le
            return lo + (le - lo) * ((rank - prev_c) / (c - prev_c) if c > prev_c else 1.0), le
        prev_le, prev_c = le, c
    return None, None

figures = []

def fig(name, key, value, unit, target=None, ok=None, note=""):
    figures.append({"figure": name, "key": key, "value": value, "unit": unit,
                    "target": target, "pass": ok, "note": note})

runs = []
for r in rows:
    if r[0] == "memory":
        per, before, after, n, cps = float(r[1]), int(r[2]), int(r[3]), int(r[4]), float(r[5])
        fig("RSS per timer, %d periodic timers" % n, "rss_bytes_per_timer", per, "B",
            note="VmRSS %d -> %d kB" % (before, after))
        fig("timers created over HTTP (awaitload -c 50)", "creates_per_s", cps, "/s")
        runs.append({"part": "memory", "timers": n, "bytes_per_timer": per,
                     "rss_before_kb": before, "rss_after_kb": after, "creates_per_s": cps})
for r in rows:
    if r[0] != "fire":
        continue
    j, mode = r[1], r[2]
    m0, m1, m2 = metrics(r[3]), metrics(r[4]), metrics(r[5])
    quiet_ticks, load_ticks, quiet_s, load_s = int(r[6]), int(r[7]), float(r[8]), float(r[9])
    get = json.load(open(r[10]))
    rss0, peak, cps = int(r[11]), int(r[12]), float(r[13])
    whole, alone, loaded = late_hist(m0, m2), late_hist(m0, m1), late_hist(m1, m2)
    p99, p99_le = quantile(whole, 0.99)
    p99_alone, _ = quantile(alone, 0.99)
    p99_loaded, _ = quantile(loaded, 0.99)
    p50, _ = quantile(whole, 0.50)

    def delta(name, x, y):
        return y[name] - x[name]

    fires = delta("awaitd_timer_fires_total", m0, m2)
    skips = delta("awaitd_timer_skips_total", m0, m2)
    ticks_alone = delta("awaitd_timer_fires_total", m0, m1) + delta("awaitd_timer_skips_total", m0, m1)
    cpu_alone = quiet_ticks / clk_tck / quiet_s
    us_per_tick = quiet_ticks / clk_tck * 1e6 / ticks_alone if ticks_alone else None
    get_p99 = get["latency_us"]["p99"] / 1000.0
    label = "jitter %s" % j if mode == "purge" else "jitter %s, queue full" % j
    key = "j%s_%s" % (j, mode)
    expected = timers / period
    fig("%s: ticks/s in the window (nominal %s)" % (label, "{:,.0f}".format(expected)),
        "ticks_per_s_" + key, (fires + skips) / (quiet_s + load_s), "/s",
        note="%d fired, %d skipped" % (fires, skips))
    fig("%s: firing lateness p99, %gs window" % (label, quiet_s + load_s), "lateness_p99_ms_" + key,
        p99, "ms", "<= %g" % t_late, p99 is not None and p99 <= t_late,
        note="bucket le=%s; p50 %.2f; alone %.2f, under /get load %.2f" % (
            "%g" % p99_le if p99_le is not None else "-", p50 or 0, p99_alone or 0, p99_loaded or 0))
    fig("%s: GET /get p99 (awaitload -c %s, %gs)" % (label, get_conns, load_s), "get_p99_ms_" + key,
        get_p99, "ms", "< %g" % t_get, get_p99 < t_get,
        note="%.0f req/s" % get["rps"])
    fig("%s: server CPU, timers alone" % label, "cpu_alone_" + key, 100 * cpu_alone, "% of a core",
        note="%.2f us per tick (%sjournal included)" % (
            us_per_tick, "purges and " if mode == "purge" else "") if us_per_tick else "")
    fig("%s: server CPU under /get load" % label, "cpu_loaded_" + key,
        100 * load_ticks / clk_tck / load_s, "% of a core")
    fig("%s: peak RSS while firing" % label, "peak_rss_kb_" + key, peak, "kB",
        note="%.0f B per timer over the idle %d kB (queue churn included)" % (
            (peak - rss0) * 1024 / timers, rss0))
    runs.append({"part": "fire", "jitter": float(j), "mode": mode, "timers": timers,
                 "period_s": period, "creates_per_s": cps, "fires": fires, "skips": skips,
                 "lateness_hist_window": whole, "lateness_hist_alone": alone,
                 "lateness_hist_loaded": loaded, "lateness_p99_ms": p99, "lateness_p50_ms": p50,
                 "lateness_p99_alone_ms": p99_alone, "lateness_p99_loaded_ms": p99_loaded,
                 "cpu_ticks_alone": quiet_ticks, "cpu_ticks_loaded": load_ticks,
                 "us_per_tick": us_per_tick, "get": get, "rss_idle_kb": rss0, "rss_peak_kb": peak})
for r in rows:
    if r[0] == "big":
        n, cps, dps, per = int(r[1]), float(r[2]), float(r[3]), float(r[4])
        fig("%s timers created over HTTP" % "{:,}".format(n), "big_creates_per_s", cps, "/s")
        fig("   RSS per timer at %s" % "{:,}".format(n), "big_rss_bytes_per_timer", per, "B",
            note="VmRSS %s -> %s kB" % (r[5], r[6]))
        fig("   cancelled over HTTP (DELETE, pipelined)", "big_cancels_per_s", dps, "/s",
            note="VmRSS after %s kB" % r[7])
        runs.append({"part": "big", "timers": n, "creates_per_s": cps, "cancels_per_s": dps,
                     "bytes_per_timer": per, "rss_kb": [int(r[5]), int(r[6]), int(r[7])]})

engine = open(task_bench).read()
for line in engine.splitlines():
    m = re.match(r"(once|every|cron)\s+create\s+([\d.]+) M/s\s+cancel by id\s+([\d.]+) M/s.*?:\s+([\d.]+) malloc", line)
    if m:
        fig("engine: bytes per %s task beyond its action" % m.group(1),
            "engine_bytes_%s" % m.group(1), float(m.group(4)), "B", "<= 128",
            float(m.group(4)) <= 128, note="create %s M/s, cancel %s M/s" % (m.group(2), m.group(3)))
real = engine.split("on the real clock", 1)[1] if "on the real clock" in engine else ""
for line in real.splitlines():
    m = re.match(r"(.+?)\s+jitter\s+(\d+) ms: .*?p99 ([\d.]+) ms", line)
    if m:
        v = float(m.group(3))
        fig("engine: real clock, %s, jitter %s ms: lateness p99" % (m.group(1).strip(), m.group(2)),
            "engine_p99_%s_%s" % (m.group(1).strip().replace(" ", "_"), m.group(2)), v, "ms",
            "<= %g" % t_late, v <= t_late)

def fmt(v):
    if v is None:
        return "-"
    if v == float("inf"):
        return "inf"
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    return "%.2f" % v

head = ("figure", "value", "target", "pass/fail")
table = [head] + [(f["figure"], "%s %s" % (fmt(f["value"]), f["unit"]), f["target"] or "-",
                   "-" if f["pass"] is None else ("pass" if f["pass"] else "FAIL")) for f in figures]
widths = [max(len(r[i]) for r in table) for i in range(len(head))]
for n, r in enumerate(table):
    print("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
    if n == 0:
        print("  ".join("-" * w for w in widths))
print()
for f in figures:
    if f["note"]:
        print("%s: %s" % (f["figure"].strip(), f["note"]))
pressure = {r[1]: r[2] for r in rows if r[0] == "pressure"}
print()
print("journal fsync = %s; queue q purged every %ss; CPU pressure by part: %s" % (
    fsync, purge_every, ", ".join("%s %s%%" % kv for kv in pressure.items())))
if quick == "1":
    print("--quick: fewer timers and shorter windows; the figures are rough")

doc = {
    "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": commit, "quick": quick == "1",
    "clk_tck": clk_tck, "fsync": fsync,
    "setup": {"timers": timers, "period_s": period, "get_connections": int(get_conns),
              "purge_every_s": float(purge_every)},
    "figures": figures, "runs": runs, "pressure": pressure, "task_bench": engine.splitlines(),
}
with open(out_path, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
sys.exit(0 if all(f["pass"] is not False for f in figures) else 1)
EOF
show_awaitd_logs
exit "$rc"
