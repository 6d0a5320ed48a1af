#!/usr/bin/env bash
# awaitd's queues in Redis ([store] backend = redis) against BullMQ, the most
# used Redis job queue, on the same redis-server in one run (issue 13):
#   a) cycles: CONNS loops of put -> reserve -> ack (awaitload --scenario
#      queue) vs BullMQ Queue.add + a Worker with an empty processor and
#      concurrency CONNS, CONNS producers; 100-byte payloads.
#   b) batched: awaitd --batch BATCH (framed put, reserve count=, one batch
#      ack: POST .../acks) vs BullMQ addBulk of BATCH.
#   c) scale-out: two awaitd nodes on the one Redis, an awaitload each.
# Figures: job cycles/s, and Redis's CPU per cycle (utime + stime of
# redis-server from /proc), which sets the ceiling of a Redis (and of each
# master of a cluster). Redis runs alone on CPU 0; awaitd with its load
# client, or BullMQ's node process, on CPU 1 (bench/../shared BENCH.md).
# Redis runs without persistence here: this measures CPU, not disks.
#
#   bench/redis.sh [--quick]
#
# BullMQ is installed with npm into bench/out/bullmq (ignored by git).
# Prints a table and writes bench/out/redis.json. Exit 0, or 2 when it
# could not run. Targets (issue 13): awaitd >= 2x BullMQ's cycles/s, <= half
# its Redis CPU per cycle, batched >= 5x BullMQ's addBulk rate; reported,
# not enforced yet (exit 0 either way).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ME=bench/redis

usage() { echo "usage: bench/redis.sh [--quick]"; }
quick_args "$@"

RAW=$OUT/redis-raw
ROUNDS=3
CONNS=50
BATCH=50
if ((QUICK)); then SECS=2; else SECS=5; fi
CPU_PIN=0    # redis-server (and awaitd's lib.sh default: overridden below)
CLIENT_PIN=1 # awaitd + awaitload, or BullMQ's node

want redis-server redis-server
want node nodejs
want npm npm
want taskset util-linux
install_wanted
need_built awaitd awaitload

if [ ! -d "$OUT/bullmq/node_modules/bullmq" ]; then
    mkdir -p "$OUT/bullmq"
    (cd "$OUT/bullmq" && npm install --no-audit --no-fund --silent bullmq@5) ||
        die "npm install bullmq failed"
fi
cp "$BENCH/bullmq_cycle.mjs" "$OUT/bullmq/"

work_begin /tmp/awaitd-redis-bench.XXXXXX
mkdir -p "$WORK/bin"
cp "$ROOT/src/awaitd" "$ROOT/src/awaitload" "$WORK/bin/"
AWAITD=$WORK/bin/awaitd
AWAITLOAD=$WORK/bin/awaitload

start_redis 0 "$WORK"

start_node() { # name: AW_PID, AW_PORT (awaitd on CPU 1, beside its client)
    AW_PORT=$(free_port)
    cat >"$WORK/$1.conf" <<EOF
[server]
listen = 127.0.0.1:$AW_PORT
max_connections = 1000
log_level = warn
shutdown_grace = 0
max_body = 16m
[store]
backend = redis
[redis]
nodes = 127.0.0.1:$RD_PORT
prefix = bench-$1:
EOF
    CPU_PIN=1 start_awaitd_conf "$WORK/$1.conf" "$RAW/awaitd-$1.log"
    local i
    for ((i = 0; i < 50; i++)); do
        http_get "$AW_PORT" /health | grep -q '"ok"' && return 0
        sleep 0.1
    done
    die "awaitd $1 did not reach Redis (see $RAW/awaitd-$1.log)"
}

results_begin "awaitd (backend = redis) vs BullMQ $(jget "$OUT/bullmq/node_modules/bullmq/package.json" version) on redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
say "redis on CPU 0 alone; awaitd + awaitload or BullMQ's node on CPU 1; 100-byte jobs; $CONNS loops; ${SECS}s runs"

start_node a
A_PORT=$AW_PORT A_PID=$AW_PID
qurl() { echo "http://127.0.0.1:$1/queues/$2"; }

awaitd_run() { # name port extra-args...: record cycles, jobs/s, redis us/cycle
    local name=$1 port=$2 out=$RAW/$1.json t0 t1
    shift 2
    t0=$(cpu_ticks "$RD_PID")
    run_client "$out" $((SECS + 60)) "$AWAITLOAD" --json --scenario queue -c "$CONNS" -d "${SECS}s" "$@" \
        "$(qurl "$port" "$name")" || die "awaitload failed (see $out.err)"
    t1=$(cpu_ticks "$RD_PID")
    check_awaitload "$out" "$name"
    record "$name" "$(jget "$out" cycles)" "$(jget "$out" jobs_acked)" "$(jget "$out" duration_s)" "$((t1 - t0))"
}

bullmq_run() { # name bulk
    local out=$RAW/$1.json t0 t1
    t0=$(cpu_ticks "$RD_PID")
    run_client "$out" $((SECS + 60)) node "$OUT/bullmq/bullmq_cycle.mjs" "$RD_PORT" "$CONNS" "$SECS" "$2" ||
        die "BullMQ failed (see $out.err)"
    t1=$(cpu_ticks "$RD_PID")
    local n
    n=$(jget "$out" cycles)
    record "$1" "$n" "$n" "$(jget "$out" seconds)" "$((t1 - t0))"
}

awaitd_run warmup "$A_PORT" -d 1s
bullmq_run bullmq-warmup 0
for ((i = 1; i <= ROUNDS; i++)); do
    awaitd_run "cycle-awaitd-$i" "$A_PORT"
    bullmq_run "cycle-bullmq-$i" 0
    awaitd_run "batch-awaitd-$i" "$A_PORT" --batch "$BATCH"
    bullmq_run "batch-bullmq-$i" "$BATCH"
done

# c) two nodes, one Redis: both clients at once
start_node b
B_PORT=$AW_PORT
for ((i = 1; i <= ROUNDS; i++)); do
    t0=$(cpu_ticks "$RD_PID")
    run_client "$RAW/two-a-$i.json" $((SECS + 60)) "$AWAITLOAD" --json --scenario queue -c $((CONNS / 2)) \
        -d "${SECS}s" "$(qurl "$A_PORT" "two-$i")" &
    pa=$!
    run_client "$RAW/two-b-$i.json" $((SECS + 60)) "$AWAITLOAD" --json --scenario queue -c $((CONNS / 2)) \
        -d "${SECS}s" "$(qurl "$B_PORT" "two-$i")" || die "awaitload failed against node b"
    wait "$pa" || die "awaitload failed against node a"
    t1=$(cpu_ticks "$RD_PID")
    c=$(($(jget "$RAW/two-a-$i.json" jobs_acked) + $(jget "$RAW/two-b-$i.json" jobs_acked)))
    record "two-awaitd-$i" "$c" "$c" "$(jget "$RAW/two-a-$i.json" duration_s)" "$((t1 - t0))"
done

python3 - "$RESULTS" "$OUT/redis.json" "$CLK_TCK" "$(git_commit)" <<'EOF'
import json, statistics, sys
results, out_path, clk_tck, commit = sys.argv[1:]
clk = float(clk_tck)
rows = [l.rstrip("\n").split("\t") for l in open(results) if l.strip()]
def fig(prefix):
    rs = [r for r in rows if r[0].startswith(prefix)]
    cps = statistics.median(float(r[2]) / float(r[3]) for r in rs)
    us = statistics.median(float(r[4]) * 1e6 / clk / float(r[2]) for r in rs)
    return cps, us
out = {"commit": commit}
print("%-34s %14s %22s" % ("", "jobs/s", "Redis CPU us per job"))
for key, label in (("cycle-awaitd", "awaitd put->reserve->ack"), ("cycle-bullmq", "BullMQ add + Worker"),
                   ("batch-awaitd", "awaitd batched (50)"), ("batch-bullmq", "BullMQ addBulk (50) + Worker"),
                   ("two-awaitd", "awaitd, two nodes, one Redis")):
    cps, us = fig(key + "-")
    out[key] = {"jobs_per_s": round(cps, 1), "redis_us_per_job": round(us, 2)}
    print("%-34s %14.0f %22.2f" % (label, cps, us))
a, b = out["cycle-awaitd"], out["cycle-bullmq"]
print("cycles/s ratio awaitd/BullMQ %.2f (target >= 2); Redis CPU per cycle ratio %.2f (target <= 0.5)"
      % (a["jobs_per_s"] / b["jobs_per_s"], a["redis_us_per_job"] / b["redis_us_per_job"]))
print("batched awaitd / BullMQ addBulk %.2f (target >= 5)"
      % (out["batch-awaitd"]["jobs_per_s"] / out["batch-bullmq"]["jobs_per_s"]))
print("one Redis core caps awaitd at about %.0f cycles/s; N cluster masters, about N times that"
      % (1e6 / a["redis_us_per_job"]))
json.dump(out, open(out_path, "w"), indent=1)
EOF
