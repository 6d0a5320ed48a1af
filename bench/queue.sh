#!/usr/bin/env bash
# awaitd's queue benchmark: awaitd's work queues against beanstalkd on this
# machine, four figures (server CPU per put -> reserve -> ack cycle, batched
# jobs/s, durable puts/s with fsync on every commit, memory per queued job).
# See "Queue benchmark" in bench/README.md for what each figure means.
#
#   bench/queue.sh [--quick]
#
# Prints a table and writes it as JSON to bench/out/queue.json; the raw
# outputs of every run go to bench/out/queue-raw/. Exit status: 0 when every
# target is met, 1 when one is missed, 2 when the benchmark could not run.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ME=bench/queue

usage() {
    echo "usage: bench/queue.sh [--quick]"
    echo "  --quick   shorter runs and a smaller memory fill, to check the script (rough figures)"
}
quick_args "$@"

RAW=$OUT/queue-raw

# ---- what is measured, and how long --------------------------------------
ROUNDS=3          # a, b and c interleaved: (awaitd, beanstalkd, awaitd batch) x 3
CONNS=50          # a, b, c: connections looping cycles
BATCH=50          # c: jobs per put, per reserve (count=), one batch ack
PRODUCERS=100     # d: concurrent producers, fsync = always
MEM_BATCH=1000    # e: jobs per batch put while filling
PAYLOAD=100       # bytes per job, everywhere (awaitload's default body: 100 x's)
if ((QUICK)); then
    SECS=1 DURABLE_SECS=1 BS_DURABLE_SECS=1 MEM_JOBS=100000
else
    SECS=5 DURABLE_SECS=5 BS_DURABLE_SECS=3 MEM_JOBS=1000000
fi
CPU_PIN=0    # servers
CLIENT_PIN=1 # awaitload, beanstalk_cycle

# Targets (docs and the shared benchmarking notes).
T_CPU_RATIO=0.80     # awaitd us/cycle <= 0.80 x beanstalkd us/cycle (issue 19)
T_BATCH_RATIO=5      # awaitd batched jobs/s >= 5 x beanstalkd cycles/s
T_DURABLE=10000      # awaitd durable puts/s (fsync = always)
T_MEM=100            # awaitd bytes per queued job beyond its payload

# ---- 1. what the benchmark needs ------------------------------------------
want beanstalkd beanstalkd
want python3 python3
want gcc gcc libc6-dev
want taskset util-linux
install_wanted
# Debian's package also installs a beanstalkd service; ours is started here,
# on a free port, and the service is left as it was.
need_built awaitd awaitload

# ---- processes: everything started is stopped on exit --------------------
work_begin /tmp/awaitd-queue-bench.XXXXXX # on disk here (ext4): fsync means something

# The binaries are copied: a rebuild in the tree during the run changes nothing here.
mkdir -p "$WORK/bin"
cp "$ROOT/src/awaitd" "$ROOT/src/awaitload" "$WORK/bin/"
AWAITD=$WORK/bin/awaitd
AWAITLOAD=$WORK/bin/awaitload
"$AWAITLOAD" -h | grep -q -- '--producers' ||
    die "src/awaitload has no queue scenario (stale build? run make)"
BSC=$WORK/bin/beanstalk_cycle
gcc -O2 -Wall -Wextra -o "$BSC" "$BENCH/beanstalk_cycle.c" || die "cannot build bench/beanstalk_cycle.c"

# ---- the servers -----------------------------------------------------------
start_awaitd() { # name fsync
    local dir=$WORK/$1
    AW_PORT=$(free_port)
    mkdir -p "$dir"
    cat >"$dir/awaitd.conf" <<EOF
[server]
listen = 127.0.0.1:$AW_PORT
max_connections = 1000
log_level = warn
shutdown_grace = 0
max_body = 16m

[journal]
path = $dir/journal
fsync = $2

[queues]
mem_limit = 4g
EOF
    start_awaitd_conf "$dir/awaitd.conf" "$RAW/awaitd-$1.log"
}

start_beanstalkd() { # name [beanstalkd options]
    local name=$1
    shift
    BS_PORT=$(free_port)
    taskset -c "$CPU_PIN" beanstalkd -l 127.0.0.1 -p "$BS_PORT" "$@" 2>>"$RAW/beanstalkd-$name.log" &
    BS_PID=$!
    PIDS+=("$BS_PID")
    wait_port "$BS_PORT" "$BS_PID" || die "beanstalkd did not start (see $RAW/beanstalkd-$name.log)"
}

qurl() { echo "http://127.0.0.1:$AW_PORT/queues/$1"; }

# ---- results -----------------------------------------------------------------
results_begin "awaitd queue benchmark"
say "servers on CPU $CPU_PIN, clients on CPU $CLIENT_PIN; $PAYLOAD-byte jobs; raw outputs in bench/out/queue-raw/"

# ---- a, b, c: cycles, interleaved -------------------------------------------
part_begin "== a/b/c. $CONNS connections looping cycles for ${SECS}s: awaitd put -> reserve -> ack (fsync off)," \
    "   beanstalkd put -> reserve-with-timeout 0 -> delete (no binlog), awaitd with --batch $BATCH"
start_awaitd cycles off
start_beanstalkd cycles
# warm-up, not measured; also checks that both answer
run_client "$RAW/warmup-awaitd.json" 60 "$AWAITLOAD" --json --scenario queue -c "$CONNS" -d 1s "$(qurl warmup)" ||
    die "awaitload failed against awaitd (see $RAW/warmup-awaitd.json.err)"
check_awaitload "$RAW/warmup-awaitd.json" "warm-up"
run_client "$RAW/warmup-beanstalkd.json" 60 "$BSC" -p "$BS_PORT" -c "$CONNS" -d 1 ||
    die "beanstalk_cycle failed (see $RAW/warmup-beanstalkd.json.err)"
for ((i = 1; i <= ROUNDS; i++)); do
    # a) awaitd cycles
    out=$RAW/a-awaitd-$i.json
    t0=$(cpu_ticks "$AW_PID")
    run_client "$out" $((SECS + 60)) "$AWAITLOAD" --json --scenario queue -c "$CONNS" -d "${SECS}s" "$(qurl "cycles-$i")" ||
        die "awaitload failed (see $out.err)"
    t1=$(cpu_ticks "$AW_PID")
    check_awaitload "$out" "a) run $i"
    cycles=$(jget "$out" cycles)
    [ "$(jget "$out" queue.unfinished)" = 0 ] || die "a) run $i left unfinished jobs in awaitd (see $out)"
    us=$(us_each $((t1 - t0)) "$cycles")
    cps=$(jget "$out" cycles_per_s)
    record cycle awaitd "$i" "$us" "$cycles" "$cps" $((t1 - t0))
    printf '  run %d  %-10s  %7.2f us/cycle   %9d cycles  %9.0f cycles/s\n' "$i" awaitd "$us" "$cycles" "$cps"

    # b) beanstalkd cycles
    out=$RAW/b-beanstalkd-$i.json
    t0=$(cpu_ticks "$BS_PID")
    run_client "$out" $((SECS + 60)) "$BSC" -p "$BS_PORT" -c "$CONNS" -d "$SECS" ||
        die "beanstalk_cycle failed (see $out.err)"
    t1=$(cpu_ticks "$BS_PID")
    cycles=$(jget "$out" cycles)
    us=$(us_each $((t1 - t0)) "$cycles")
    cps=$(jget "$out" cycles_per_s)
    record cycle beanstalkd "$i" "$us" "$cycles" "$cps" $((t1 - t0))
    printf '  run %d  %-10s  %7.2f us/cycle   %9d cycles  %9.0f cycles/s\n' "$i" beanstalkd "$us" "$cycles" "$cps"

    # c) awaitd batches
    out=$RAW/c-awaitd-batch-$i.json
    t0=$(cpu_ticks "$AW_PID")
    run_client "$out" $((SECS + 60)) "$AWAITLOAD" --json --scenario queue -c "$CONNS" --batch "$BATCH" -d "${SECS}s" "$(qurl "batch-$i")" ||
        die "awaitload failed (see $out.err)"
    t1=$(cpu_ticks "$AW_PID")
    check_awaitload "$out" "c) run $i"
    jobs=$(jget "$out" jobs_acked)
    [ "$(jget "$out" queue.unfinished)" = 0 ] || die "c) run $i left unfinished jobs in awaitd (see $out)"
    jps=$(jget "$out" jobs_per_s)
    us=$(us_each $((t1 - t0)) "$jobs")
    record batch awaitd "$i" "$jps" "$jobs" "$us" $((t1 - t0))
    printf '  run %d  %-10s  %7.2f us/job     %9d jobs    %9.0f jobs/s (batch %d)\n' "$i" awaitd "$us" "$jobs" "$jps" "$BATCH"
done
stop_servers
part_end cycles

# ---- d: durable puts ------------------------------------------------------------
part_begin "== d. durable puts: awaitd fsync = always, $PRODUCERS producers for ${DURABLE_SECS}s;" \
    "   beanstalkd -b DIR -f 0 (fsync after every write), one client for ${BS_DURABLE_SECS}s (reference)"
start_awaitd durable always
mkdir -p "$WORK/binlog"
start_beanstalkd durable -b "$WORK/binlog" -f 0
run_client "$RAW/warmup-durable.json" 60 "$AWAITLOAD" --json --scenario queue --producers "$PRODUCERS" --consumers 0 -d 1s "$(qurl warmup)" ||
    die "awaitload failed against awaitd fsync = always (see $RAW/warmup-durable.json.err)"
check_awaitload "$RAW/warmup-durable.json" "d) warm-up"
for ((i = 1; i <= ROUNDS; i++)); do
    out=$RAW/d-awaitd-$i.json
    f0=$(metric "$AW_PORT" awaitd_journal_fsyncs_total)
    run_client "$out" $((DURABLE_SECS + 60)) "$AWAITLOAD" --json --scenario queue --producers "$PRODUCERS" --consumers 0 \
        -d "${DURABLE_SECS}s" "$(qurl "durable-$i")" || die "awaitload failed (see $out.err)"
    f1=$(metric "$AW_PORT" awaitd_journal_fsyncs_total)
    check_awaitload "$out" "d) run $i"
    puts=$(jget "$out" jobs_put)
    pps=$(jget "$out" puts_per_s)
    fsyncs=$(awk -v a="${f0:-0}" -v b="${f1:-0}" 'BEGIN { printf "%d", b - a }')
    record durable awaitd "$i" "$pps" "$puts" "$fsyncs" "$(jget "$out" steps.put.p99)"
    printf '  run %d  %-10s  %9.0f durable puts/s  (%d puts, %s fsyncs, put p99 %s us)\n' "$i" awaitd "$pps" "$puts" "$fsyncs" "$(jget "$out" steps.put.p99)"

    out=$RAW/d-beanstalkd-$i.json
    run_client "$out" $((BS_DURABLE_SECS + 60)) "$BSC" -p "$BS_PORT" -m put -c 1 -d "$BS_DURABLE_SECS" ||
        die "beanstalk_cycle failed (see $out.err)"
    pps=$(jget "$out" puts_per_s)
    record durable beanstalkd "$i" "$pps" "$(jget "$out" puts)" - -
    printf '  run %d  %-10s  %9.0f durable puts/s  (one client)\n' "$i" beanstalkd "$pps"
done
stop_servers
part_end durable

# ---- e: memory per queued job ---------------------------------------------------
part_begin "== e. memory: $MEM_JOBS queued $PAYLOAD-byte jobs (awaitd: batch puts of $MEM_BATCH, fsync off)"
start_awaitd memory off
start_beanstalkd memory
run_client "$RAW/e-awaitd-warmup.json" 60 "$AWAITLOAD" --json --scenario queue -c 2 -n 10 --batch "$MEM_BATCH" "$(qurl warmup)" ||
    die "awaitload failed (see $RAW/e-awaitd-warmup.json.err)"
sleep 0.5
before=$(rss_kb "$AW_PID")
out=$RAW/e-awaitd.json
run_client "$out" 300 "$AWAITLOAD" --json --scenario queue --producers 2 --consumers 0 --batch "$MEM_BATCH" \
    -n $((MEM_JOBS / MEM_BATCH)) "$(qurl memory)" || die "awaitload failed (see $out.err)"
check_awaitload "$out" "e) fill"
sleep 1
after=$(rss_kb "$AW_PID")
queued=$(jget "$out" queue.size)
[ "$queued" = "$MEM_JOBS" ] || die "e) awaitd holds $queued jobs, not $MEM_JOBS (see $out)"
per=$(bytes_each "$before" "$after" "$MEM_JOBS" "$PAYLOAD")
record memory awaitd "$per" "$before" "$after" "$queued"
printf '  %-10s  %6.1f B/job beyond the payload  (VmRSS %d -> %d kB, %d jobs queued)\n' awaitd "$per" "$before" "$after" "$queued"

run_client "$RAW/e-beanstalkd-warmup.json" 60 "$BSC" -p "$BS_PORT" -c 1 -d 1 || die "beanstalk_cycle failed"
sleep 0.5
before=$(rss_kb "$BS_PID")
out=$RAW/e-beanstalkd.json
run_client "$out" 300 "$BSC" -p "$BS_PORT" -m put -c 10 -P 100 -n "$MEM_JOBS" -d 240 ||
    die "beanstalk_cycle failed (see $out.err)"
sleep 1
after=$(rss_kb "$BS_PID")
queued=$(jget "$out" puts)
per=$(bytes_each "$before" "$after" "$queued" "$PAYLOAD")
record memory beanstalkd "$per" "$before" "$after" "$queued"
printf '  %-10s  %6.1f B/job beyond the payload  (VmRSS %d -> %d kB, %d jobs queued)\n' beanstalkd "$per" "$before" "$after" "$queued"
stop_servers
part_end memory

# ---- the table -------------------------------------------------------------
say ""
rc=0
python3 - "$RESULTS" "$OUT/queue.json" "$QUICK" "$CLK_TCK" \
    "$(beanstalkd -v 2>&1 | head -n 1)" "$(git_commit)" \
    "$T_CPU_RATIO" "$T_BATCH_RATIO" "$T_DURABLE" "$T_MEM" "$CONNS" "$BATCH" "$PRODUCERS" "$MEM_JOBS" "$SECS" <<'EOF' || rc=$?
import json, statistics, sys, time

(results, out_path, quick, clk_tck, bs_version, commit, t_cpu, t_batch, t_durable, t_mem,
 conns, batch, producers, mem_jobs, secs) = sys.argv[1:]
rows = [line.rstrip("\n").split("\t") for line in open(results) if line.strip()]

def runs(kind, server):
    return [r for r in rows if r[0] == kind and r[1] == server]

med = statistics.median
cyc_a = {int(r[2]): float(r[3]) for r in runs("cycle", "awaitd")}
cyc_b = {int(r[2]): float(r[3]) for r in runs("cycle", "beanstalkd")}
cps_a = {int(r[2]): float(r[5]) for r in runs("cycle", "awaitd")}
cps_b = {int(r[2]): float(r[5]) for r in runs("cycle", "beanstalkd")}
jps_c = {int(r[2]): float(r[3]) for r in runs("batch", "awaitd")}
usj_c = {int(r[2]): float(r[5]) for r in runs("batch", "awaitd")}
pairs = sorted(set(cyc_a) & set(cyc_b))
cpu_ratio = med([cyc_a[i] / cyc_b[i] for i in pairs])
batch_ratio = med([jps_c[i] / cps_b[i] for i in sorted(set(jps_c) & set(cps_b))])
dur_a = [float(r[3]) for r in runs("durable", "awaitd")]
dur_b = [float(r[3]) for r in runs("durable", "beanstalkd")]
mem_a = float(runs("memory", "awaitd")[0][2])
mem_b = [float(r[2]) for r in runs("memory", "beanstalkd")]
pressure = {r[1]: r[2] for r in rows if r[0] == "pressure"}

figures = [
    {"figure": "a/b. server CPU per cycle (us)", "key": "cpu_us_per_cycle",
     "awaitd": med(cyc_a.values()), "beanstalkd": med(cyc_b.values()), "ratio": cpu_ratio,
     "target": "ratio <= %s" % t_cpu, "pass": cpu_ratio <= float(t_cpu)},
    {"figure": "   cycles/s (%s connections)" % conns, "key": "cycles_per_s",
     "awaitd": med(cps_a.values()), "beanstalkd": med(cps_b.values()),
     "ratio": med([cps_a[i] / cps_b[i] for i in pairs]), "target": None, "pass": None},
    {"figure": "c. jobs/s, awaitd batch %s vs beanstalkd cycles/s" % batch, "key": "batch_jobs_per_s",
     "awaitd": med(jps_c.values()), "beanstalkd": med(cps_b.values()), "ratio": batch_ratio,
     "target": "ratio >= %s" % t_batch, "pass": batch_ratio >= float(t_batch)},
    {"figure": "   server CPU per batched job (us)", "key": "batch_cpu_us_per_job",
     "awaitd": med(usj_c.values()), "beanstalkd": med(cyc_b.values()),
     "ratio": med(usj_c.values()) / med(cyc_b.values()), "target": None, "pass": None},
    {"figure": "d. durable puts/s (fsync every commit)", "key": "durable_puts_per_s",
     "awaitd": med(dur_a), "beanstalkd": med(dur_b) if dur_b else None,
     "ratio": med(dur_a) / med(dur_b) if dur_b and med(dur_b) > 0 else None,
     "target": "awaitd >= %s" % t_durable, "pass": med(dur_a) >= float(t_durable)},
    {"figure": "e. bytes per queued job beyond payload", "key": "bytes_per_job",
     "awaitd": mem_a, "beanstalkd": mem_b[0] if mem_b else None,
     "ratio": mem_a / mem_b[0] if mem_b and mem_b[0] > 0 else None,
     "target": "awaitd <= %s" % t_mem, "pass": mem_a <= float(t_mem)},
]

def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    return "%.2f" % v

head = ("figure", "awaitd", "beanstalkd", "ratio", "target", "pass/fail")
table = [head] + [(f["figure"], fmt(f["awaitd"]), fmt(f["beanstalkd"]), fmt(f["ratio"]),
                   f["target"] or "-", "-" if f["pass"] is None else ("pass" if f["pass"] else "FAIL"))
                  for f in figures]
widths = [max(len(r[i]) for r in table) for i in range(len(head))]
for n, r in enumerate(table):
    print("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
    if n == 0:
        print("  ".join("-" * w for w in widths))
print()
print("medians of %d interleaved rounds; ratio = awaitd / beanstalkd; d's beanstalkd is one client "
      "(reference, no target); CPU pressure by part: %s" % (len(pairs), ", ".join(
          "%s %s%%" % kv for kv in pressure.items())))
if quick == "1":
    print("--quick: short runs and a smaller fill; the figures are rough")

doc = {
    "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": commit, "quick": quick == "1",
    "beanstalkd": bs_version, "clk_tck": int(clk_tck),
    "setup": {"connections": int(conns), "batch": int(batch), "producers": int(producers),
              "memory_jobs": int(mem_jobs), "seconds": float(secs), "payload_bytes": 100},
    "figures": [{k: v for k, v in f.items()} for f in figures],
    "runs": [r for r in rows],
}
with open(out_path, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
sys.exit(0 if all(f["pass"] is not False for f in figures) else 1)
EOF
show_awaitd_logs
exit "$rc"
