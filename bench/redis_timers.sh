#!/usr/bin/env bash
# Timers on Redis (issue 13): how many ticks per second 1, 2 and 3 awaitd
# nodes fire from one redis-server, how late, what each fire costs Redis,
# and how many claim calls each due tick takes as nodes are added (every
# node learns the same shard heads, so a due time may be claimed by more
# than one node: only one wins, the others' calls are waste).
#
# Per run: a fresh redis-server (CPU 0, no persistence), N awaitd nodes
# (CPU 1) sharing it, TIMERS one-shot timers created through node 1 (not
# measured), due over SPREAD seconds starting 3 s later; then a herd of
# HERD timers all due in the same millisecond. Figures, from the nodes'
# /metrics (summed) and Redis's /proc CPU over the firing window:
#   fired/s      ticks fired / SPREAD (the offered rate: the target is to keep up)
#   late avg     awaitd_timer_lateness_seconds sum / count (Redis's clock)
#   claims/tick  awaitd_timer_claims_total / ticks fired
#   lost races   claims that took nothing (claims - claims that took ticks)
#   Redis us/fire  redis-server utime+stime over the window / ticks fired
#   herd late    the herd's last job in the queue, after its due time
#
#   bench/redis_timers.sh [--quick]
#
# Prints a table and writes bench/out/redis_timers.json. Exit 0, or 2 when
# it could not run.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ME=bench/redis_timers

usage() { echo "usage: bench/redis_timers.sh [--quick]"; }
quick_args "$@"
if ((QUICK)); then TIMERS=${BENCH_TIMERS:-2000} HERD=1000; else TIMERS=${BENCH_TIMERS:-10000} HERD=5000; fi
SPREAD=2

want redis-server redis-server
want taskset util-linux
install_wanted
need_built awaitd

work_begin /tmp/awaitd-redis-timers-bench.XXXXXX
mkdir -p "$OUT"
: >"$WORK/rows.jsonl"
# One run: NODES awaitd nodes on the redis-server at RD_PORT (RD_PID), one JSON row.
run_nodes() { # nodes
    python3 - "$ROOT/src/awaitd" "$WORK/r$1" "$TIMERS" "$HERD" "$SPREAD" "$1" "$RD_PORT" "$RD_PID" \
        >>"$WORK/rows.jsonl" <<'EOF'
import concurrent.futures, datetime, http.client, json, os, socket, subprocess, sys, time

AWAITD, D, TIMERS, HERD, SPREAD = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \
    float(sys.argv[5])
NODES, RPORT, RPID = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
HZ = os.sysconf("SC_CLK_TCK")
procs = []

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def ticks(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])

def wait_http(port, path, ok, secs=15):
    end = time.time() + secs
    while time.time() < end:
        try:
            st, body = req(port, "GET", path)
            if ok(st, body):
                return body
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("redis_timers: %s on %d never got ready" % (path, port))

def req(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, body=body)
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, data

def metrics(port):
    out = {}
    for line in req(port, "GET", "/metrics")[1].decode().splitlines():
        if line and not line.startswith("#") and " " in line:
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out

def run(d, nodes, rport, rpid):
    ports = []
    for i in range(nodes):
        p = free_port(); ports.append(p)
        conf = os.path.join(d, "n%d.conf" % i)
        open(conf, "w").write("[server]\nlisten = 127.0.0.1:%d\nlog_level = warn\nshutdown_grace = 0\n"
                              "[store]\nbackend = redis\n[redis]\nnodes = 127.0.0.1:%d\n" % (p, rport))
        procs.append(subprocess.Popen(["taskset", "-c", "1", AWAITD, "-c", conf],
                                      stdout=open(conf + ".log", "w"), stderr=subprocess.STDOUT))
    for p in ports:
        wait_http(p, "/health", lambda st, b: st == 200)
    req(ports[0], "PUT", "/queues/t")
    req(ports[0], "PUT", "/queues/h")
    pool = concurrent.futures.ThreadPoolExecutor(16)
    now_ms = int(time.time() * 1000)
    start_ms = now_ms + 3000
    def create(q, at_ms):
        at = datetime.datetime.fromtimestamp(at_ms / 1000.0, datetime.timezone.utc)
        body = json.dumps({"queue": q, "payload": "x",
                           "at": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] + "Z"})
        st, b = req(ports[0], "POST", "/timers", body)
        if st != 201:
            sys.exit("redis_timers: create answered %d %s" % (st, b[:200]))
    list(pool.map(lambda i: create("t", start_ms + int(i * SPREAD * 1000 / TIMERS)), range(TIMERS)))
    if time.time() * 1000 > start_ms - 200:
        sys.exit("redis_timers: creating %d timers took past their first due time" % TIMERS)
    m0 = [metrics(p) for p in ports]
    t0 = ticks(rpid)
    time.sleep((start_ms - time.time() * 1000) / 1000.0 + SPREAD + 1.0)
    t1 = ticks(rpid)
    m1 = [metrics(p) for p in ports]
    size = json.loads(req(ports[0], "GET", "/queues/t")[1])["size"]
    def delta(k):
        return sum(b.get(k, 0) - a.get(k, 0) for a, b in zip(m0, m1))
    fires = delta("awaitd_timer_fires_total")
    claims = delta("awaitd_timer_claims_total")
    late_n = delta("awaitd_timer_lateness_seconds_count")
    late = delta("awaitd_timer_lateness_seconds_sum") / late_n if late_n else 0
    within5 = delta('awaitd_timer_lateness_seconds_bucket{le="0.005"}') / late_n if late_n else 0
    # the herd: HERD timers due in the same millisecond
    herd_ms = int(time.time() * 1000) + 3000
    list(pool.map(lambda i: create("h", herd_ms), range(HERD)))
    hm0 = [metrics(p) for p in ports]
    while json.loads(req(ports[0], "GET", "/queues/h")[1])["size"] < HERD:
        if time.time() * 1000 > herd_ms + 30000:
            sys.exit("redis_timers: the herd did not fire")
        time.sleep(0.005)
    herd_late = time.time() - herd_ms / 1000.0
    hm1 = [metrics(p) for p in ports]
    herd_claims = sum(b.get("awaitd_timer_claims_total", 0) - a.get("awaitd_timer_claims_total", 0)
                      for a, b in zip(hm0, hm1))
    row = {"nodes": nodes, "timers": TIMERS, "fired": int(fires), "in_queue": size,
           "fired_per_s": fires / SPREAD, "late_avg_ms": late * 1000, "within_5ms": within5,
           "claims": int(claims), "claims_per_tick": claims / fires if fires else 0,
           "redis_us_per_fire": (t1 - t0) * 1e6 / HZ / fires if fires else 0,
           "herd": HERD, "herd_late_s": herd_late, "herd_claims": int(herd_claims)}
    for p in procs[::-1]:
        p.terminate()
    for p in procs:
        p.wait(10)
    procs.clear()
    return row

try:
    print(json.dumps(run(D, NODES, RPORT, RPID)))
finally:
    for p in procs:
        p.kill()
EOF
}

for n in 1 2 3; do # a fresh redis-server for each run
    start_redis 0 "$WORK/r$n"
    run_nodes "$n"
    stop_pid "$RD_PID"
done
python3 - "$WORK/rows.jsonl" "$TIMERS" "$HERD" "$SPREAD" "$OUT/redis_timers.json" <<'EOF'
import json, sys

ROWS, TIMERS, HERD, SPREAD, OUTJ = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    float(sys.argv[4]), sys.argv[5]
rows = [json.loads(line) for line in open(ROWS)]
print("timers on one redis-server (CPU 0), awaitd nodes on CPU 1; %d one-shots over %g s, then a herd"
      " of %d due at once" % (TIMERS, SPREAD, HERD))
print("%5s %9s %9s %8s %8s %11s %14s %10s %11s" % ("nodes", "fired", "fired/s", "late avg",
      "<=5 ms", "claims/tick", "Redis us/fire", "herd late", "herd claims"))
for r in rows:
    print("%5d %9d %9.0f %6.1fms %7.1f%% %11.2f %14.1f %9.2fs %11d" % (
        r["nodes"], r["fired"], r["fired_per_s"], r["late_avg_ms"], r["within_5ms"] * 100,
        r["claims_per_tick"], r["redis_us_per_fire"], r["herd_late_s"], r["herd_claims"]))
    if r["fired"] != TIMERS or r["in_queue"] != TIMERS:
        sys.exit("redis_timers: %d nodes: fired %d, in the queue %d, of %d"
                 % (r["nodes"], r["fired"], r["in_queue"], TIMERS))
json.dump(rows, open(OUTJ, "w"), indent=1)
EOF
