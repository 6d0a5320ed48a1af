#!/usr/bin/env bash
# awaitd's HTTPS benchmark: awaitd against nginx in one run, same certificate
# (RSA 2048, made here), same protocol policy (Mozilla intermediate: TLS 1.2
# and 1.3, the same TLS 1.2 ciphers, TLS 1.3 suites and groups), session
# tickets on in both, servers pinned to one CPU and clients to the other.
# Three figures:
#
#   1. server CPU per keep-alive HTTPS request (wrk -t1 -c100, GET /get),
#      interleaved A B A B A B, median of the ratios   target: <= nginx's
#   2. full TLS handshakes per second (awaitload, a new connection per
#      request, no resumption), interleaved likewise   target: >= 0.95 x nginx's
#      The target is judged on handshakes per second of server CPU (1e6 / the
#      server's CPU us per handshake: what one saturated core does), as
#      BENCH.md measures costs that do not depend on the client or on other
#      work the shared machine runs; the wall-clock rate is shown beside it
#      (here the client, doing an X25519 and the TLS work of its side on one
#      core, is nearly as busy as the server, and a neighbour on either CPU
#      moves the rate but not the cost).
#   3. memory per idle TLS keep-alive connection, 5,000 held (each did one
#      GET /get, then stays open)                      target: <= nginx's
#
#   bench/tls.sh [--quick]
#
# Prints a table and writes it as JSON to bench/out/tls.json; raw outputs go
# to bench/out/raw-tls/. Exit status: 0 when every target is met, 1 when one
# is missed, 2 when the suite could not run. Conventions as bench/run.sh.
set -euo pipefail

usage() {
    echo "usage: bench/tls.sh [--quick]"
    echo "  --quick   shorter runs, to check the script itself (figures are rough)"
}

QUICK=0
while (($#)); do
    case $1 in
    --quick) QUICK=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
OUT=$BENCH/out
RAW=$OUT/raw-tls
AWAITD=$ROOT/src/awaitd
AWAITLOAD=$ROOT/src/awaitload

PAIRS=3        # figures 1 and 2: A B A B A B
CPU_CONNS=100  # figure 1: wrk -t1 -c100
HS_CONNS=64    # figure 2: connections opening, asking once, closing
IDLE_N=5000    # figure 3: idle TLS keep-alive connections held
IDLE_RATE=1000 # figure 3: new connections per second
if ((QUICK)); then
    CPU_SECS=1 HS_SECS=1 PAIRS=1
else
    CPU_SECS=5 HS_SECS=5
fi
CPU_PIN=0    # servers
CLIENT_PIN=1 # clients

# Mozilla intermediate (what awaitd builds in; src/tls.c).
TLS12_CIPHERS="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
TLS13_SUITES="TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
TLS_GROUPS="X25519:prime256v1:secp384r1"

say() { printf '%s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 2; }

# ---- what the suite needs ----------------------------------------------------
install_missing() {
    local pkgs=()
    command -v nginx >/dev/null || pkgs+=(nginx-light)
    command -v wrk >/dev/null || pkgs+=(wrk)
    command -v python3 >/dev/null || pkgs+=(python3)
    command -v openssl >/dev/null || pkgs+=(openssl)
    command -v taskset >/dev/null || pkgs+=(util-linux)
    ((${#pkgs[@]})) || return 0
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    say "bench: installing ${pkgs[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
}

install_missing
nginx -V 2>&1 | grep -q -- --with-http_ssl_module || die "this nginx has no ssl module"
if [ ! -x "$AWAITD" ] || [ ! -x "$AWAITLOAD" ]; then
    say "bench: building awaitd"
    "$ROOT/scripts/setup"
fi
if [ ! -x "$AWAITD" ] || [ ! -x "$AWAITLOAD" ]; then die "no $AWAITD or $AWAITLOAD after the build"; fi
ulimit -n 20000 2>/dev/null || die "cannot raise the open-file limit to 20000 (hard limit: $(ulimit -Hn))"
CLK_TCK=$(getconf CLK_TCK)

# ---- processes: everything started is stopped on exit ------------------------
WORK=$(mktemp -d /tmp/awaitd-bench-tls.XXXXXX)
PIDS=()
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

run_client() { # out limit argv...: pinned, bounded, in the background (signals stay prompt)
    local out=$1 limit=$2 rc=0 pid
    shift 2
    taskset -c "$CLIENT_PIN" timeout -k 5 "$limit" "$@" >"$out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    forget_pid "$pid"
    return "$rc"
}

part_end() {
    local psi pct="-"
    psi=$(psi_us 2>/dev/null || echo "")
    if [ -n "$psi" ] && [ -n "$PART_PSI0" ]; then
        pct=$(awk -v p=$((psi - PART_PSI0)) -v t=$(($(now_us) - PART_T0)) 'BEGIN { printf "%.0f", 100 * p / t }')
    fi
    record pressure "$1" "$pct"
    say "  (CPU pressure during this part: $pct% of the time a task waited for a CPU)"
}

wrk_requests() { awk '/ requests in / { print $1 }' "$1"; }
wrk_errors() {
    awk '/Socket errors:/ { gsub(",", ""); n += $4 + $6 + $8 + $10 }
         /Non-2xx or 3xx responses:/ { n += $NF }
         END { print n + 0 }' "$1"
}
wrk_rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
jget() { # file key...: a value from awaitload's --json summary
    python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v[k]
print(sum(v.values()) if isinstance(v, dict) else v)' "$@"
}

# ---- one certificate for both ------------------------------------------------------
CERT=$WORK/cert.pem KEY=$WORK/key.pem
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$KEY" -out "$CERT" -days 7 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>"$WORK/openssl.log" ||
    die "cannot make a certificate (see $WORK/openssl.log)"

# ---- the servers ---------------------------------------------------------------------
AW_PID="" AW_PORT="" NG_MASTER="" NG_PID="" NG_PORT=""

start_awaitd() {
    local plain
    AW_PORT=$(free_port)
    plain=$(free_port)
    mkdir -p "$WORK/awaitd"
    cat >"$WORK/awaitd/awaitd.conf" <<EOF
[server]
listen = 127.0.0.1:$plain
max_connections = 12000
backlog = 4096
keepalive_timeout = 75s
shutdown_grace = 0
log_level = error

[tls]
listen = 127.0.0.1:$AW_PORT
cert = $CERT
key = $KEY

[journal]
path = $WORK/awaitd/journal
fsync = off
EOF
    taskset -c "$CPU_PIN" "$AWAITD" -c "$WORK/awaitd/awaitd.conf" 2>>"$RAW/awaitd.log" &
    AW_PID=$!
    PIDS+=("$AW_PID")
    wait_port "$AW_PORT" "$AW_PID" || die "awaitd did not start (see $RAW/awaitd.log)"
}

start_nginx() {
    local dir=$WORK/nginx i
    NG_PORT=$(free_port)
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 19000; }
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
    ssl_certificate $CERT;
    ssl_certificate_key $KEY;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers $TLS12_CIPHERS;
    ssl_conf_command Ciphersuites $TLS13_SUITES;
    ssl_ecdh_curve $TLS_GROUPS;
    ssl_prefer_server_ciphers off;
    ssl_session_tickets on;
    server {
        listen 127.0.0.1:$NG_PORT ssl backlog=4096;
        location = /get { return 200 '{"ok":true}\n'; }
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

stop_servers() {
    if [ -n "$AW_PID" ]; then stop_pid "$AW_PID"; fi
    if [ -n "$NG_MASTER" ]; then
        stop_pid "$NG_MASTER"
        stop_pid "$NG_PID"
        cat "$WORK/nginx/error.log" >>"$RAW/nginx-error.log" 2>/dev/null || true
    fi
    AW_PID="" NG_MASTER="" NG_PID=""
}

server_pid() { if [ "$1" = awaitd ]; then echo "$AW_PID"; else echo "$NG_PID"; fi; }
server_port() { if [ "$1" = awaitd ]; then echo "$AW_PORT"; else echo "$NG_PORT"; fi; }

# ---- results ------------------------------------------------------------------------
rm -rf "$RAW"
mkdir -p "$RAW"
RESULTS=$RAW/results.tsv
: >"$RESULTS"
record() { (IFS=$'\t'; echo "$*") >>"$RESULTS"; }

say "awaitd HTTPS benchmark$( ((QUICK)) && echo ' (--quick: rough figures)')"
say "servers on CPU $CPU_PIN, clients on CPU $CLIENT_PIN; one RSA 2048 certificate; raw outputs in bench/out/raw-tls/"

# ---- 1. server CPU per keep-alive HTTPS request ------------------------------------
say ""
say "== 1. server CPU per request: wrk -t1 -c$CPU_CONNS -d${CPU_SECS}s https://.../get, keep-alive"
part_begin
start_awaitd
start_nginx
for s in awaitd nginx; do
    out=$RAW/cpu-$s-warmup.txt
    run_client "$out" 30 wrk -t1 -c"$CPU_CONNS" -d1s "https://127.0.0.1:$(server_port "$s")/get" ||
        die "wrk failed against $s (see $out)"
    [ "$(wrk_errors "$out")" = 0 ] || die "$s answers /get over HTTPS with errors (see $out)"
done
for ((i = 1; i <= PAIRS; i++)); do
    for s in awaitd nginx; do
        pid=$(server_pid "$s")
        out=$RAW/cpu-$s-$i.txt
        t0=$(cpu_ticks "$pid")
        run_client "$out" $((CPU_SECS + 30)) wrk -t1 -c"$CPU_CONNS" -d"${CPU_SECS}s" \
            "https://127.0.0.1:$(server_port "$s")/get" || die "wrk failed against $s (see $out)"
        t1=$(cpu_ticks "$pid")
        reqs=$(wrk_requests "$out")
        us=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.3f", t * 1e6 / hz / n }')
        record cpu "$s" "$i" "$us" "$reqs" "$(wrk_rps "$out")" "$(wrk_errors "$out")"
        printf '  run %d  %-6s  %7.2f us/request  %9d requests  %9.0f req/s  errors %s\n' \
            "$i" "$s" "$us" "$reqs" "$(wrk_rps "$out")" "$(wrk_errors "$out")"
    done
done
stop_servers
part_end cpu

# ---- 2. full handshakes per second -----------------------------------------------------
say ""
say "== 2. full TLS handshakes: awaitload -c$HS_CONNS -d${HS_SECS}s, Connection: close (a new connection per request, no resumption)"
part_begin
start_awaitd
start_nginx
for s in awaitd nginx; do
    out=$RAW/hs-$s-warmup.json
    run_client "$out" 30 "$AWAITLOAD" --json --insecure -c 8 -d 1s -H "Connection: close" \
        "https://127.0.0.1:$(server_port "$s")/get" || die "awaitload failed against $s (see $out)"
done
for ((i = 1; i <= PAIRS; i++)); do
    for s in awaitd nginx; do
        pid=$(server_pid "$s")
        out=$RAW/hs-$s-$i.json
        t0=$(cpu_ticks "$pid")
        run_client "$out" $((HS_SECS + 30)) "$AWAITLOAD" --json --insecure -c "$HS_CONNS" \
            -d "${HS_SECS}s" -H "Connection: close" "https://127.0.0.1:$(server_port "$s")/get" ||
            die "awaitload failed against $s (see $out)"
        t1=$(cpu_ticks "$pid")
        hs=$(jget "$out" tls_handshakes)
        secs=$(jget "$out" duration_s)
        errs=$(jget "$out" errors)
        rate=$(awk -v n="$hs" -v t="$secs" 'BEGIN { printf "%.1f", n / t }')
        us=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$hs" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
        p50=$(jget "$out" handshake_us p50)
        record hs "$s" "$i" "$rate" "$hs" "$us" "$errs" "$p50"
        printf '  run %d  %-6s  %8.1f handshakes/s  %7.1f us CPU each  handshake p50 %s us  errors %s\n' \
            "$i" "$s" "$rate" "$us" "$p50" "$errs"
    done
done
stop_servers
part_end handshakes

# ---- 3. memory per idle TLS keep-alive connection ----------------------------------------
say ""
say "== 3. memory per idle TLS keep-alive connection: $IDLE_N connections, one GET /get each, then held"
cat >"$WORK/tls_hold.py" <<'EOF'
# Open N TLS connections, one GET /get on each, then hold them idle until
# SIGUSR1 or SIGTERM (or HOLD_S). Prints "ready answered=A failed=F", then
# "done held=H closed_by_peer=C".
import asyncio, signal, ssl, sys

port, n, rate, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])
REQ = b"GET /get HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

async def one(held):
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=ctx), 30)
    w.write(REQ)
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head[:80])
    cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    await asyncio.wait_for(r.readexactly(int(cl[0].split(b":")[1])), 30)
    held.append((r, w))

async def main():
    held, tasks = [], []
    for i in range(n):
        tasks.append(asyncio.create_task(one(held)))
        if i % 50 == 49:
            await asyncio.sleep(50 / rate)
    res = await asyncio.gather(*tasks, return_exceptions=True)
    failed = [x for x in res if isinstance(x, BaseException)]
    print("ready answered=%d failed=%d%s" % (len(held), len(failed),
          (" first=%r" % failed[0]) if failed else ""), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), hold)
    except asyncio.TimeoutError:
        pass
    closed = sum(1 for r, w in held if r.at_eof())
    print("done held=%d closed_by_peer=%d" % (len(held) - closed, closed), flush=True)
    for r, w in held:
        w.transport.abort()

asyncio.run(main())
EOF
part_begin
start_awaitd
start_nginx
for s in awaitd nginx; do
    pid=$(server_pid "$s")
    port=$(server_port "$s")
    run_client "$RAW/idle-$s-warmup.txt" 60 python3 "$WORK/tls_hold.py" "$port" 20 1000 0 ||
        die "$s does not answer /get over TLS (see $RAW/idle-$s-warmup.txt)"
    sleep 0.5
    before=$(rss_kb "$pid")
    out=$RAW/idle-$s.txt
    : >"$out"
    taskset -c "$CLIENT_PIN" python3 "$WORK/tls_hold.py" "$port" "$IDLE_N" "$IDLE_RATE" 120 >"$out" 2>&1 &
    holder=$!
    PIDS+=("$holder")
    for ((j = 0; j < 900; j++)); do
        grep -q '^ready' "$out" && break
        kill -0 "$holder" 2>/dev/null || break
        sleep 0.1
    done
    grep -q '^ready' "$out" || die "the holder did not get ready against $s (see $out)"
    sleep 1
    during=$(rss_kb "$pid")
    kill -USR1 "$holder" 2>/dev/null || true
    wait "$holder" || true
    forget_pid "$holder"
    answered=$(sed -n 's/^ready answered=\([0-9]*\).*/\1/p' "$out")
    held=$(sed -n 's/^done held=\([0-9]*\).*/\1/p' "$out")
    per=$(awk -v a="$before" -v b="$during" -v n="$IDLE_N" 'BEGIN { printf "%.1f", (b - a) * 1024 / n }')
    record idle "$s" "$per" "$before" "$during" "$answered" "${held:-0}"
    printf '  %-6s  %7.1f B/connection  (VmRSS %d -> %d kB; answered %s, held %s)\n' \
        "$s" "$per" "$before" "$during" "$answered" "${held:-?}"
done
stop_servers
part_end idle

# ---- the table ---------------------------------------------------------------------------
say ""
python3 - "$RESULTS" "$OUT/tls.json" "$QUICK" "$(nginx -v 2>&1 | sed 's/^nginx version: //')" \
    "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'EOF'
import json, statistics, sys

path, out, quick, nginx, commit = sys.argv[1:6]
cpu, hs, idle, pressure = {}, {}, {}, {}
for line in open(path):
    v = line.rstrip("\n").split("\t")
    if v[0] == "cpu":
        cpu.setdefault(int(v[2]), {})[v[1]] = float(v[3])
    elif v[0] == "hs":
        hs.setdefault(int(v[2]), {})[v[1]] = {"per_s": float(v[3]), "cpu_us": float(v[5]),
                                               "errors": int(float(v[6]))}
    elif v[0] == "idle":
        idle[v[1]] = {"bytes": float(v[2]), "answered": int(v[5] or 0), "held": int(v[6] or 0)}
    elif v[0] == "pressure":
        pressure[v[1]] = v[2]

def med(xs):
    return statistics.median(xs) if xs else float("nan")

cpu_ratio = med([r["awaitd"] / r["nginx"] for r in cpu.values() if "awaitd" in r and "nginx" in r])
hs_ratio = med([r["awaitd"]["per_s"] / r["nginx"]["per_s"] for r in hs.values()
                if "awaitd" in r and "nginx" in r])
idle_ratio = idle["awaitd"]["bytes"] / idle["nginx"]["bytes"] if idle.get("nginx", {}).get("bytes") else float("nan")
cap = {s: med([1e6 / r[s]["cpu_us"] for r in hs.values()]) for s in ("awaitd", "nginx")}
cap_ratio = med([r["nginx"]["cpu_us"] / r["awaitd"]["cpu_us"] for r in hs.values()])
rows = [
    ("CPU per keep-alive HTTPS request (us)", med([r["awaitd"] for r in cpu.values()]),
     med([r["nginx"] for r in cpu.values()]), cpu_ratio, "<= 1.00", cpu_ratio <= 1.0),
    ("full handshakes per s of server CPU", cap["awaitd"], cap["nginx"], cap_ratio, ">= 0.95",
     cap_ratio >= 0.95),
    ("  server CPU per full handshake (us)", med([r["awaitd"]["cpu_us"] for r in hs.values()]),
     med([r["nginx"]["cpu_us"] for r in hs.values()]),
     med([r["awaitd"]["cpu_us"] / r["nginx"]["cpu_us"] for r in hs.values()]), "(info)", True),
    ("  full handshakes per s, wall clock", med([r["awaitd"]["per_s"] for r in hs.values()]),
     med([r["nginx"]["per_s"] for r in hs.values()]), hs_ratio, "(info)", True),
    ("memory per idle TLS connection (B)", idle["awaitd"]["bytes"], idle["nginx"]["bytes"],
     idle_ratio, "<= 1.00", idle_ratio <= 1.0),
]
errors = sum(r[s]["errors"] for r in hs.values() for s in r)
held_ok = all(idle[s]["held"] == idle[s]["answered"] > 0 for s in idle)
print("%-40s %12s %12s %8s %9s  %s" % ("figure", "awaitd", "nginx", "ratio", "target", "met"))
for name, a, n, r, t, ok in rows:
    print("%-40s %12.1f %12.1f %8.3f %9s  %s" % (name, a, n, r, t,
          "" if t == "(info)" else "yes" if ok else "NO"))
print("handshake run errors: %d; idle connections all held: %s; CPU pressure %% by part: %s"
      % (errors, "yes" if held_ok else "NO", pressure))
print("(ratios: medians of per-pair ratios, servers interleaved; nginx %s, commit %s%s)"
      % (nginx, commit, ", --quick" if quick == "1" else ""))
doc = {"nginx": nginx, "commit": commit, "quick": quick == "1", "pressure_percent": pressure,
       "cpu_us_per_request": cpu, "handshakes": hs, "idle": idle,
       "targets": {name: {"awaitd": a, "nginx": n, "ratio": r, "target": t, "met": ok}
                   for name, a, n, r, t, ok in rows}}
with open(out, "w") as f:
    json.dump(doc, f, indent=1)
sys.exit(0 if all(r[5] for r in rows) and errors == 0 and held_ok else 1)
EOF
