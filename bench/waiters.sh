#!/usr/bin/env bash
# Memory per waiting reserve (issue 13: "per-waiter memory stays what it is
# with the local backend"): WAITERS connections each holding a long-poll
# reserve on an empty queue, against the same connections idle, with the
# local backend and with the Redis backend (a fresh redis-server). The
# figure is the growth of awaitd's VmRSS per waiter beyond an idle
# keep-alive connection (bench/waiters.py).
#
#   bench/waiters.sh [--quick]
#
# Prints a table and writes bench/out/waiters.json. Exit 0, or 2 when it
# could not run.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ME=bench/waiters

usage() { echo "usage: bench/waiters.sh [--quick]"; }
quick_args "$@"
if ((QUICK)); then WAITERS=1000; else WAITERS=5000; fi
CPU_PIN=0 # awaitd (start_awaitd_conf)
AWAITD=$ROOT/src/awaitd

want redis-server redis-server
want python3 python3
want taskset util-linux
install_wanted
need_built awaitd
raise_nofile
work_begin /tmp/awaitd-waiters.XXXXXX

start_redis 1 "$WORK"

measure() { # backend: one JSON line
    AW_PORT=$(free_port)
    mkdir -p "$WORK/$1"
    {
        printf '[server]\nlisten = 127.0.0.1:%s\nmax_connections = %d\nlog_level = warn\nshutdown_grace = 0\n' \
            "$AW_PORT" $((WAITERS + 100))
        printf '[journal]\npath = %s/journal\nfsync = off\n' "$WORK/$1"
        [ "$1" = redis ] && printf '[store]\nbackend = redis\n[redis]\nnodes = 127.0.0.1:%s\n' "$RD_PORT"
    } >"$WORK/$1/awaitd.conf"
    start_awaitd_conf "$WORK/$1/awaitd.conf" "$WORK/$1/awaitd.log"
    taskset -c 1 python3 "$BENCH/waiters.py" "$AW_PORT" "$AW_PID" "$WAITERS" ||
        die "bench/waiters.py failed against the $1 backend"
    stop_pid "$AW_PID"
}

say "awaitd memory per waiting reserve, $WAITERS waiters (awaitd on CPU 0, client and redis-server on CPU 1)"
LOCAL=$(measure local)
REDIS=$(measure redis)
python3 - "$LOCAL" "$REDIS" "$OUT/waiters.json" <<'EOF'
import json, sys
local, redis, path = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
for name, r in (("local", local), ("redis", redis)):
    print("  %-6s %7.0f B per waiter beyond an idle connection  (VmRSS %d -> %d kB, %d getters seen)"
          % (name, r["bytes_per_waiter"], r["rss_before_kb"], r["rss_after_kb"], r["getters_seen"]))
json.dump({"local": local, "redis": redis}, open(path, "w"), indent=1)
EOF
