#!/bin/sh
# make soak: SOAK_SECONDS (default 600) of mixed load on one awaitd, then
# a verdict on its resources. Not part of make check.
#
# Load, all at once: awaitload on the probes (/health, /bytes/4096, /delay/0
# over 40 keep-alive connections), awaitload --scenario queue (put, reserve,
# ack over 8 connections), and a timer client that creates timers (after,
# every with a count, cron) putting into a queue and cancels about half
# of them, plus a client that opens and drops short connections.
#
# Measured at the start (after a 5 s warm-up of the same load, so that the
# allocator and the buffers are at their working size) and at the end
# (after the load stops and the daemon is idle again): RSS, open
# descriptors, and the error counts (5xx answers, reply failures, awaitload
# errors, timer client errors).
#
# The rule: it fails when
#   - any error count is above zero, or
#   - the descriptors at the end exceed those at the start by more than 4
#     (the clients are gone by then: nothing should be held), or
#   - RSS grew by more than 16 MiB + what the retained state explains:
#     for every timer the daemon still holds (finished timers stay visible
#     for an hour) 1 KiB + its payload, and for every job still queued
#     256 bytes + its payload, each counted by the daemon's own /metrics.
# 16 MiB covers allocator fragmentation and the journal writer's buffers
# at the end of a run; a leak of even 100 bytes per request goes past it
# within a few minutes of this load (millions of requests).
#
# Environment: AWAITD, AWAITLOAD (binaries; default the build's),
# SOAK_SECONDS (default 600).
set -eu
src=${AWAITD_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
AWAITD=${AWAITD:-$src/src/awaitd}
AWAITLOAD=${AWAITLOAD:-$(dirname "$AWAITD")/awaitload}
SOAK_SECONDS=${SOAK_SECONDS:-600}
export AWAITD AWAITLOAD SOAK_SECONDS

exec python3 - <<'EOF'
import http.client, json, os, random, re, shutil, signal, socket, subprocess, sys
import tempfile, threading, time

AWAITD, AWAITLOAD = os.environ["AWAITD"], os.environ["AWAITLOAD"]
SECONDS = int(os.environ["SOAK_SECONDS"])
WARMUP = 5
TIMER_PAYLOAD = 200
JOB_PAYLOAD = 100  # awaitload's default payload

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

tmp = tempfile.mkdtemp(prefix="awaitd-soak-")
port = free_port()
conf = os.path.join(tmp, "awaitd.conf")
with open(conf, "w") as f:
    f.write("[server]\nlisten = 127.0.0.1:%d\nmax_connections = 2000\n"
            "[journal]\npath = %s/journal\nfsync = batch\n" % (port, tmp))
err = open(os.path.join(tmp, "stderr.log"), "wb")
d = subprocess.Popen([AWAITD, "-c", conf], stdin=subprocess.DEVNULL, stdout=err, stderr=err)
base = "http://127.0.0.1:%d" % port

def request(method, path, body=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()

for _ in range(100):
    try:
        if request("GET", "/health")[0] == 200:
            break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("soak: awaitd did not start")

def sample():
    with open("/proc/%d/status" % d.pid) as f:
        rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) * 1024
    fds = len(os.listdir("/proc/%d/fd" % d.pid))
    text = request("GET", "/metrics")[1].decode()
    def metric(name):
        return sum(float(v) for v in re.findall(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name),
                                                text, re.M))
    return {"rss": rss, "fds": fds,
            "5xx": float(re.search(r'awaitd_requests_total\{class="5xx"\} (\S+)', text).group(1)),
            "reply_failures": metric("awaitd_reply_failures_total"),
            "requests": sum(float(v) for v in
                            re.findall(r'^awaitd_requests_total\{[^}]*\} (\S+)$', text, re.M)),
            "timers": metric("awaitd_timers"),
            "jobs": metric("awaitd_queue_unfinished")}

stop = threading.Event()
counts = {"timers_created": 0, "timers_cancelled": 0, "timer_errors": 0, "conn_churn": 0,
          "churn_errors": 0}
errors = []

def timer_client():
    rng = random.Random(1)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    payload = "t" * TIMER_PAYLOAD
    specs = [{"after": 0.5}, {"after": 30}, {"every": 0.2, "count": 3}, {"cron": "* * * * *"}]
    live = []
    while not stop.is_set():
        spec = dict(rng.choice(specs), queue="timed", payload=payload)
        try:
            c.request("POST", "/timers", body=json.dumps(spec))
            r = c.getresponse()
            body = r.read()
            if r.status != 201:
                counts["timer_errors"] += 1
                errors.append(("create", r.status, body[:200]))
            else:
                counts["timers_created"] += 1
                live.append(json.loads(body)["id"])
            if live and rng.random() < 0.5:
                tid = live.pop(rng.randrange(len(live)))
                c.request("DELETE", "/timers/%d" % tid)
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    counts["timer_errors"] += 1
                    errors.append(("cancel", r.status))
                else:
                    counts["timers_cancelled"] += 1
        except (OSError, http.client.HTTPException) as e:
            counts["timer_errors"] += 1
            errors.append(("timer client", repr(e)))
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        time.sleep(0.01)
    c.close()

def churn_client():
    """Short connections: connect, one request, close; and some that leave mid-request."""
    rng = random.Random(2)
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if rng.random() < 0.3:
                s.sendall(b"GET /health HTTP/1.1\r\nHo")  # leaves mid-head
            else:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                while s.recv(4096):
                    pass
            s.close()
            counts["conn_churn"] += 1
        except OSError as e:
            counts["churn_errors"] += 1
            errors.append(("churn", repr(e)))
        time.sleep(0.005)

def loads(seconds):
    procs = []
    for args in (["-c", "20", "%s/health" % base],
                 ["-c", "10", "%s/bytes/4096" % base],
                 ["-c", "10", "%s/delay/0" % base],
                 ["--scenario", "queue", "-c", "8", "%s/queues/soak" % base]):
        procs.append(subprocess.Popen([AWAITLOAD, "--json", "-d", "%ds" % seconds] + args,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    return procs

def finish(procs, seconds):
    out = []
    for p in procs:
        o, e = p.communicate(timeout=seconds + 120)
        try:
            out.append(json.loads(o))
        except ValueError:
            out.append({"unparsed": o.decode()[-500:], "stderr": e.decode()[-500:],
                        "exit": p.returncode})
    return out

def load_errors(res):
    """Failures awaitload counts (its "errors" by kind) and answers other than 2xx."""
    n = 0
    for r in res:
        if "unparsed" in r:
            n += 1
            continue
        n += sum((r.get("errors") or {}).values())
        n += sum(v for k, v in (r.get("status") or {}).items() if k != "2xx")
    return n

request("PUT", "/queues/timed")
threads = [threading.Thread(target=timer_client, daemon=True),
           threading.Thread(target=churn_client, daemon=True)]
def cleanup():
    stop.set()
    if d.poll() is None:
        d.kill()
import atexit
atexit.register(cleanup)
for t in threads:
    t.start()
finish(loads(WARMUP), WARMUP)
time.sleep(1)
start = sample()
t0 = time.monotonic()
results = finish(loads(SECONDS), SECONDS)
stop.set()
for t in threads:
    t.join(30)
time.sleep(2)  # idle: lingering closes done
end = sample()
elapsed = time.monotonic() - t0

d.send_signal(signal.SIGTERM)
rc = d.wait(30)
err.close()
stderr = open(os.path.join(tmp, "stderr.log"), errors="replace").read()

explained = int(end["timers"] * (1024 + TIMER_PAYLOAD) + end["jobs"] * (256 + JOB_PAYLOAD)
                - start["timers"] * (1024 + TIMER_PAYLOAD) - start["jobs"] * (256 + JOB_PAYLOAD))
allowed = 16 * 1024 * 1024 + max(explained, 0)
growth = end["rss"] - start["rss"]
lerr = load_errors(results)
MiB = 1024 * 1024
print("soak: %d s of mixed load, %d requests answered (%.0f/s)"
      % (elapsed, end["requests"] - start["requests"],
         (end["requests"] - start["requests"]) / elapsed))
print("soak:         %12s %12s" % ("start", "end"))
print("soak: RSS     %10.1f MiB %8.1f MiB  (growth %.1f MiB; allowed %.1f MiB = 16 + %.1f "
      "explained)" % (start["rss"] / MiB, end["rss"] / MiB, growth / MiB, allowed / MiB,
                      explained / MiB))
print("soak: fds     %12d %12d" % (start["fds"], end["fds"]))
print("soak: timers  %12d %12d  (held by the daemon; %d created, %d cancelled)"
      % (start["timers"], end["timers"], counts["timers_created"], counts["timers_cancelled"]))
print("soak: jobs    %12d %12d  (queued)" % (start["jobs"], end["jobs"]))
print("soak: 5xx     %12d %12d" % (start["5xx"], end["5xx"]))
print("soak: reply failures %5d %12d" % (start["reply_failures"], end["reply_failures"]))
print("soak: awaitload: %s" % ", ".join(
    "%s %d" % (r.get("url", "?").split("/", 3)[-1], r.get("requests", 0)) for r in results))
print("soak: errors: awaitload %d, timer client %d, connection churn %d (%d connections)"
      % (lerr, counts["timer_errors"], counts["churn_errors"], counts["conn_churn"]))
for r in results:
    if "unparsed" in r:
        print("soak: awaitload output:", r)
fail = []
if growth > allowed:
    fail.append("RSS grew %.1f MiB, more than the %.1f MiB allowed" % (growth / MiB, allowed / MiB))
if end["fds"] > start["fds"] + 4:
    fail.append("descriptors grew from %d to %d" % (start["fds"], end["fds"]))
if end["5xx"] > start["5xx"] or end["reply_failures"] > start["reply_failures"]:
    fail.append("5xx answers or reply failures during the run")
if lerr or counts["timer_errors"] or counts["churn_errors"]:
    fail.append("client errors: %r" % errors[:5])
if rc != 0:
    fail.append("awaitd exited %d on SIGTERM: %s" % (rc, stderr[-2000:]))
for line in stderr.splitlines():
    if "Sanitizer" in line or "runtime error" in line:
        fail.append("sanitizer: " + line)
if fail:
    print("soak: FAIL: " + "; ".join(fail))
    print("soak: files kept in " + tmp)
    sys.exit(1)
shutil.rmtree(tmp, ignore_errors=True)
print("soak: PASS")
EOF
