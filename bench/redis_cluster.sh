#!/usr/bin/env bash
# awaitd's queues on a Redis Cluster vs one standalone Redis (issue 13), in
# one run: the same load (three awaitload runs at once, one queue each,
# put -> reserve -> ack, 100-byte payloads) through one awaitd node, against
#   a) one redis-server;
#   b) a cluster of 3 masters (no replicas: this measures CPU, not failover),
#      with the three queues on three different masters.
# Figures: job cycles/s, and Redis CPU per cycle summed over every
# redis-server (utime + stime from /proc): what routing, per-master
# connections and cluster-wide PUBLISH (the bus forwards each notification
# to every node) cost on top of the FCALLs. Every redis-server runs on
# CPU 0, awaitd and the clients on CPU 1: on this 2-core machine the
# cluster cannot show more cycles/s than one Redis core; the CPU per cycle
# says what N masters on N cores give (docs/REDIS.md).
#
#   bench/redis_cluster.sh [--quick]
#
# Prints a table and writes bench/out/redis_cluster.json. Exit 0, or 2 when
# it could not run.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ME=bench/redis_cluster

usage() { echo "usage: bench/redis_cluster.sh [--quick]"; }
quick_args "$@"

RAW=$OUT/redis-cluster-raw
CONNS=${BENCH_CONNS:-16} # per queue; three queues (BENCH_CONNS: a smoke run)
if ((QUICK)); then SECS=${BENCH_SECS:-2} ROUNDS=1; else SECS=5 ROUNDS=3; fi
CPU_PIN=1    # awaitd, beside its clients
CLIENT_PIN=1 # awaitload

want redis-server redis-server
want redis-cli redis-tools
want taskset util-linux
install_wanted
need_built awaitd awaitload

work_begin /tmp/awaitd-redis-cluster-bench.XXXXXX
mkdir -p "$WORK/bin"
cp "$ROOT/src/awaitd" "$ROOT/src/awaitload" "$WORK/bin/"
AWAITD=$WORK/bin/awaitd
AWAITLOAD=$WORK/bin/awaitload

REDIS_PIDS=()
start_redis_at() { # port [cluster]: lib.sh's start_redis on CPU 0, a cluster node if asked
    local dir=$WORK/redis-$1
    start_redis 0 "$dir" "$1" ${2:+--cluster-enabled yes --cluster-port "$(free_port)" \
        --cluster-config-file "$dir/nodes.conf"}
    REDIS_PIDS+=("$RD_PID")
}

redis_ticks() { # CPU ticks of every redis-server started
    local t=0 p
    for p in "${REDIS_PIDS[@]}"; do t=$((t + $(cpu_ticks "$p"))); done
    echo "$t"
}

start_node() { # name nodes: AW_PORT, once /health is ok
    AW_PORT=$(free_port)
    cat >"$WORK/$1.conf" <<EOF
[server]
listen = 127.0.0.1:$AW_PORT
max_connections = 1000
log_level = warn
shutdown_grace = 0
[store]
backend = redis
[redis]
nodes = $2
prefix = b$1:
EOF
    start_awaitd_conf "$WORK/$1.conf" "$RAW/awaitd-$1.log"
    local i
    for ((i = 0; i < 100; i++)); do
        http_get "$AW_PORT" /health | grep -q '"ok"' && return 0
        sleep 0.1
    done
    die "awaitd $1 did not reach Redis (see $RAW/awaitd-$1.log)"
}

# Queue names whose slots fall on three different masters of the cluster.
spread_names() { # prefix port
    python3 - "$1" "$2" <<'EOF2' || die "no three queues on three masters"
import socket, sys
prefix, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
def cmd(*args):
    s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args))
    return read()
def read():
    line = f.readline().rstrip(b"\r\n")
    k, r = line[:1], line[1:]
    if k == b":": return int(r)
    if k == b"$": return f.read(int(r) + 2)[:-2].decode()
    if k == b"*": return [read() for _ in range(int(r))]
    return r.decode()
slots = cmd("CLUSTER", "SLOTS")
names, owners = [], set()
for i in range(1000):
    slot = cmd("CLUSTER", "KEYSLOT", "{%sq%d}" % (prefix, i))
    owner = [e[2][1] for e in slots if e[0] <= slot <= e[1]][0]
    if owner not in owners:
        owners.add(owner)
        names.append("q%d" % i)
    if len(names) == 3:
        print(" ".join(names))
        sys.exit(0)
sys.exit(1)
EOF2
}

run_three() { # name port q1 q2 q3: the three loads at once; record cycles, secs, ticks
    local name=$1 port=$2 t0 t1 q pids=() c=0
    shift 2
    t0=$(redis_ticks)
    for q in "$@"; do
        run_client "$RAW/$name-$q.json" $((SECS + 60)) "$AWAITLOAD" --json --scenario queue \
            -c "$CONNS" -d "${SECS}s" "http://127.0.0.1:$port/queues/$q" &
        pids+=($!)
    done
    for q in "${pids[@]}"; do wait "$q" || die "awaitload failed ($name)"; done
    t1=$(redis_ticks)
    for q in "$@"; do
        check_awaitload "$RAW/$name-$q.json" "$name $q"
        c=$((c + $(jget "$RAW/$name-$q.json" jobs_acked)))
    done
    record "$name" "$c" "$(jget "$RAW/$name-$1.json" duration_s)" "$((t1 - t0))"
}

results_begin "awaitd (backend = redis): one redis-server vs a 3-master Redis Cluster, $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
say "every redis-server on CPU 0; awaitd + 3 awaitload on CPU 1; 3 queues x $CONNS loops; ${SECS}s runs"

# a) standalone
SA_PORT=$(free_port)
start_redis_at "$SA_PORT"
start_node sa "127.0.0.1:$SA_PORT"
SA_AW=$AW_PORT
run_three warm-sa "$SA_AW" w1 w2 w3
for ((i = 1; i <= ROUNDS; i++)); do run_three "sa-$i" "$SA_AW" "s${i}a" "s${i}b" "s${i}c"; done
stop_pid "$AW_PID"
stop_pid "${REDIS_PIDS[0]}"
REDIS_PIDS=()

# b) cluster of 3 masters
PORTS=()
for i in 1 2 3; do
    p=$(free_port)
    start_redis_at "$p" cluster
    PORTS+=("$p")
done
redis-cli --cluster create "${PORTS[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes \
    >"$RAW/cluster-create.log" 2>&1 || die "redis-cli --cluster create failed (see $RAW/cluster-create.log)"
for ((i = 0; i < 100; i++)); do
    ok=1
    for p in "${PORTS[@]}"; do
        redis-cli -p "$p" CLUSTER INFO | grep -q cluster_state:ok || ok=0
    done
    ((ok)) && break
    sleep 0.1
done
((ok)) || die "the cluster did not become ok"
start_node cl "127.0.0.1:${PORTS[0]}, 127.0.0.1:${PORTS[1]}"
CL_AW=$AW_PORT
read -r -a NAMES <<<"$(spread_names bcl: "${PORTS[0]}")"
run_three warm-cl "$CL_AW" "${NAMES[@]}"
for ((i = 1; i <= ROUNDS; i++)); do run_three "cl-$i" "$CL_AW" "${NAMES[@]}"; done

python3 - "$RESULTS" "$OUT/redis_cluster.json" "$CLK_TCK" "$(git_commit)" <<'EOF'
import json, statistics, sys
results, out_path, clk_tck, commit = sys.argv[1:]
clk = float(clk_tck)
rows = [l.rstrip("\n").split("\t") for l in open(results) if l.strip()]
out = {"commit": commit}
print("%-40s %12s %24s" % ("", "cycles/s", "Redis CPU us per cycle"))
for key, label in (("sa-", "one redis-server"), ("cl-", "cluster, 3 masters (sum of all)")):
    rs = [r for r in rows if r[0].startswith(key)]
    cps = statistics.median(float(r[1]) / float(r[2]) for r in rs)
    us = statistics.median(float(r[3]) * 1e6 / clk / float(r[1]) for r in rs)
    out[key.strip("-")] = {"cycles_per_s": round(cps, 1), "redis_us_per_cycle": round(us, 2)}
    print("%-40s %12.0f %24.2f" % (label, cps, us))
sa, cl = out["sa"], out["cl"]
print("cluster / standalone Redis CPU per cycle: %.2f; N masters on N cores give about N x %.0f"
      " cycles/s with queues spread over them"
      % (cl["redis_us_per_cycle"] / sa["redis_us_per_cycle"], 1e6 / cl["redis_us_per_cycle"]))
json.dump(out, open(out_path, "w"), indent=1)
EOF
