#!/usr/bin/env bash
# awaitd's HTTP/2 benchmark (issue 15): awaitd against nginx in one run, both
# h2c with prior knowledge on a plain port (nginx: `listen ... http2`, one
# worker), servers pinned to one CPU and h2load to the other. Two figures:
#
#   1. server CPU per request at 100 streams over 10 connections
#      (h2load -c10 -m10, GET /get, duration mode), interleaved A B A B A B,
#      median of the ratios                           target: <= nginx's
#      The same with our own client (awaitload --h2 --streams 10), one pair.
#   2. 10,000 concurrent /delay/1 streams over 100 connections
#      (awaitload --h2 -n10000 -c100 --streams 100; nginx's echo module
#      sleeps 1 s): VmRSS growth per stream while they wait, and the p99
#                                                     target: p99 <= 1.05 s
#
#   bench/h2.sh [--quick]
#
# Prints a table and writes it as JSON to bench/out/h2.json; raw outputs go
# to bench/out/raw-h2/. Exit status: 0 when every target is met, 1 when one
# is missed, 2 when the suite could not run. Conventions as bench/run.sh.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ME=bench

usage() {
    echo "usage: bench/h2.sh [--quick]"
    echo "  --quick   shorter runs, to check the script itself (figures are rough)"
}
quick_args "$@"

RAW=$OUT/raw-h2
AWAITD=$ROOT/src/awaitd
AWAITLOAD=$ROOT/src/awaitload

PAIRS=3         # figure 1: A B A B A B
CPU_CONNS=10    # figure 1: h2load -c10 -m10 = 100 streams
CPU_STREAMS=10
DELAY_N=10000   # figure 2: streams, all at once
DELAY_CONNS=100
if ((QUICK)); then
    CPU_SECS=1 PAIRS=1 DELAY_N=2000 DELAY_CONNS=20
else
    CPU_SECS=5
fi
CPU_PIN=0    # servers
CLIENT_PIN=1 # h2load
ECHO_MODULE=/usr/lib/nginx/modules/ngx_http_echo_module.so

want nginx nginx-light
want h2load nghttp2-client
want python3 python3
want taskset util-linux
install_wanted
need_built awaitd awaitload
raise_nofile

work_begin /tmp/awaitd-bench-h2.XXXXXX

start_servers() {
    AW_PORT=$(free_port)
    mkdir -p "$WORK/awaitd"
    cat >"$WORK/awaitd/awaitd.conf" <<EOF
[server]
listen = 127.0.0.1:$AW_PORT
max_connections = 12000
shutdown_grace = 0
log_level = error

[journal]
path = $WORK/awaitd/journal
fsync = off

[http2]
max_concurrent_streams = 128
EOF
    start_awaitd_conf "$WORK/awaitd/awaitd.conf" "$RAW/awaitd.log"
    local load=""
    [ -f "$ECHO_MODULE" ] && load="load_module $ECHO_MODULE;"
    start_nginx "$load" "" "http2" \
        "        location = /get { return 200 '{\"ok\":true}\\n'; }
        location = /delay/1 { echo_sleep 1; echo '{\"ok\":true}'; }"
}

h2_field() { # file what: from h2load's "requests: N total, N started, N done, N succeeded, ..."
    awk -v w="$2" '/^requests:/ { for (i = 2; i < NF; i++) if ($(i + 1) ~ "^" w) { gsub(",", "", $i); print $i } }' "$1"
}

results_begin "awaitd HTTP/2 benchmark"
say "servers on CPU $CPU_PIN, h2load on CPU $CLIENT_PIN; h2c with prior knowledge; raw outputs in bench/out/raw-h2/"

# ---- 1. server CPU per request ---------------------------------------------------
part_begin "== 1. server CPU per request: h2load -c$CPU_CONNS -m$CPU_STREAMS -D$CPU_SECS http://.../get"
start_servers
cpu_run() {
    run_client_log "$1" "$4" h2load -c "$CPU_CONNS" -m "$CPU_STREAMS" -D "$2" \
        "http://127.0.0.1:$(server_port "$3")/get" || die "h2load failed against $3 (see $1)"
}
cpu_check() {
    [ "$(h2_field "$1" failed)" = 0 ] || die "$2 answers /get with errors (see $1)"
}
cpu_note() {
    local reqs errs us
    reqs=$(h2_field "$3" succeeded)
    errs=$(h2_field "$3" failed)
    us=$(us_each "$4" "$reqs")
    record cpu "$1" "$2" "$us" "$reqs" "$errs"
    printf '  run %d  %-6s  %7.2f us/request  %9d requests  errors %s\n' "$2" "$1" "$us" "$reqs" "$errs"
}
cpu_pairs
for s in awaitd nginx; do # our own client, one pair (info)
    pid=$(server_pid "$s")
    out=$RAW/cpu-al-$s.json
    t0=$(cpu_ticks "$pid")
    run_client "$out" $((CPU_SECS + 30)) "$AWAITLOAD" --json --h2 --streams "$CPU_STREAMS" \
        -c "$CPU_CONNS" -d "${CPU_SECS}s" "http://127.0.0.1:$(server_port "$s")/get" ||
        die "awaitload --h2 failed against $s (see $out)"
    t1=$(cpu_ticks "$pid")
    reqs=$(jget "$out" requests)
    us=$(us_each $((t1 - t0)) "$reqs")
    record cpu_al "$s" "$us" "$reqs" "$(jget "$out" errors)"
    printf '  awaitload --h2  %-6s  %7.2f us/request  %9d requests\n' "$s" "$us" "$reqs"
done
stop_servers
part_end cpu

# ---- 2. 10,000 concurrent /delay/1 streams ------------------------------------------
part_begin "== 2. $DELAY_N concurrent /delay/1 streams over $DELAY_CONNS connections: awaitload --h2 -n$DELAY_N -c$DELAY_CONNS --streams $((DELAY_N / DELAY_CONNS))"
start_servers
for s in awaitd nginx; do
    [ "$s" = nginx ] && [ ! -f "$ECHO_MODULE" ] && continue
    pid=$(server_pid "$s")
    sleep 0.5
    before=$(rss_kb "$pid")
    out=$RAW/delay-$s.json
    taskset -c "$CLIENT_PIN" timeout -k 5 60 "$AWAITLOAD" --json --h2 -n "$DELAY_N" -c "$DELAY_CONNS" \
        --streams $((DELAY_N / DELAY_CONNS)) "http://127.0.0.1:$(server_port "$s")/delay/1" \
        >"$out" 2>"$out.err" &
    hpid=$!
    PIDS+=("$hpid")
    peak=$before
    for ((j = 0; j < 15; j++)); do # sample while the streams wait
        sleep 0.1
        kb=$(rss_kb "$pid")
        ((kb > peak)) && peak=$kb
    done
    wait "$hpid" || die "awaitload --h2 failed against $s (see $out)"
    forget_pid "$hpid"
    per=$(bytes_each "$before" "$peak" "$DELAY_N")
    done_n=$(jget "$out" status.2xx)
    p99=$(awk -v u="$(jget "$out" latency_us.p99)" 'BEGIN { printf "%.4f", u / 1e6 }')
    record delay "$s" "$per" "$before" "$peak" "$done_n" "$p99"
    printf '  %-6s  %7.1f B/stream  (VmRSS %d -> %d kB)  %s answered 2xx  p99 %s s\n' \
        "$s" "$per" "$before" "$peak" "$done_n" "$p99"
done
stop_servers
part_end delay

say ""
python3 - "$RESULTS" "$OUT/h2.json" "$QUICK" "$(nginx_version)" "$(git_commit)" "$DELAY_N" <<'EOF'
import json, statistics, sys

path, out, quick, nginx, commit, delay_n = sys.argv[1:7]
cpu, cpu_al, delay, pressure = {}, {}, {}, {}
for line in open(path):
    v = line.rstrip("\n").split("\t")
    if v[0] == "cpu":
        cpu.setdefault(int(v[2]), {})[v[1]] = {"us": float(v[3]), "errors": int(v[5] or 0)}
    elif v[0] == "cpu_al":
        cpu_al[v[1]] = float(v[2])
    elif v[0] == "delay":
        delay[v[1]] = {"bytes": float(v[2]), "succeeded": int(float(v[5] or 0)),
                       "p99_s": float(v[6] or "nan")}
    elif v[0] == "pressure":
        pressure[v[1]] = v[2]
med = lambda xs: statistics.median(xs) if xs else float("nan")
ratio = med([r["awaitd"]["us"] / r["nginx"]["us"] for r in cpu.values()])
a = delay.get("awaitd", {})
n = delay.get("nginx", {})
rows = [
    ("CPU per h2 request, 100 streams (us)", med([r["awaitd"]["us"] for r in cpu.values()]),
     med([r["nginx"]["us"] for r in cpu.values()]), ratio, "<= 1.00", ratio <= 1.0),
    ("  same, client awaitload --h2 (us)", cpu_al.get("awaitd", float("nan")),
     cpu_al.get("nginx", float("nan")),
     cpu_al["awaitd"] / cpu_al["nginx"] if cpu_al.get("nginx") else float("nan"), "(info)", True),
    ("memory per waiting stream (B)", a.get("bytes", float("nan")), n.get("bytes", float("nan")),
     a.get("bytes", 0) / n["bytes"] if n.get("bytes") else float("nan"), "(info)", True),
    ("p99 of /delay/1 streams (s)", a.get("p99_s", float("nan")), n.get("p99_s", float("nan")),
     a.get("p99_s", 0) / n["p99_s"] if n.get("p99_s") else float("nan"), "<= 1.05 s",
     a.get("p99_s", 9) <= 1.05),
]
errors = sum(r[s]["errors"] for r in cpu.values() for s in r)
all_done = a.get("succeeded") == int(delay_n)
print("%-40s %12s %12s %8s %9s  %s" % ("figure", "awaitd", "nginx", "ratio", "target", "met"))
for name, x, y, r, t, ok in rows:
    print("%-40s %12.2f %12.2f %8.3f %9s  %s" % (name, x, y, r, t,
          "" if t == "(info)" else "yes" if ok else "NO"))
print("h2load errors: %d; every /delay/1 stream answered 2xx: %s; CPU pressure %% by part: %s"
      % (errors, "yes" if all_done else "NO", pressure))
print("(ratios: medians of per-pair ratios, servers interleaved; nginx %s, commit %s%s)"
      % (nginx, commit, ", --quick" if quick == "1" else ""))
with open(out, "w") as f:
    json.dump({"nginx": nginx, "commit": commit, "quick": quick == "1", "cpu": cpu,
               "cpu_awaitload": cpu_al, "delay": delay, "pressure_percent": pressure,
               "targets": {r[0]: {"awaitd": r[1], "nginx": r[2], "ratio": r[3], "target": r[4],
                                  "met": r[5]} for r in rows}}, f, indent=1)
sys.exit(0 if all(r[5] for r in rows) and errors == 0 and all_done else 1)
EOF
