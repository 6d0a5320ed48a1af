"""[store] backend = redis (docs/REDIS.md): the queue API against a real
redis-server (Debian's, started here on a free loopback port in a temp dir
with appendonly yes and appendfsync always, stopped at the end).

- RedisQueueApiTest: the queue suite of test_queue.py (QueueApiTest), run
  unchanged against the Redis backend, minus the cases listed in
  NOT_YET (each with the reason).
- RedisTwoNodesTest: two awaitd nodes on one Redis: maxsize holds across
  nodes, a waiting reserve on B is woken by a put on A, join on A returns
  after the last ack on B, a SIGKILLed node's reserved job is redelivered
  by the other after its lease.
- RedisFaultTest: Redis stopped -> 503 naming the backend and /health
  degraded, recovery without restarting awaitd; SIGKILL of redis-server
  under load and a restart -> every 201'd, unacked job is there and no
  acked job comes back.
"""

import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import awaitd_test
from awaitd_test import Daemon, free_port, HOST
import test_queue as tq

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """One redis-server of our own: AOF on, fsync always, no RDB snapshots."""

    def __init__(self, replica_of=None):
        self.dir = tempfile.mkdtemp(prefix="awaitd-redis-")
        self.port = free_port()
        self.proc = None
        self.password = None
        self.replica_of = replica_of

    def start(self, timeout=10.0):
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", HOST, "--dir", self.dir,
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--daemonize", "no", "--protected-mode", "yes"] +
            (["--requirepass", self.password] if self.password else []) +
            (["--replicaof", HOST, str(self.replica_of)] if self.replica_of else []),
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.cmd("PING") == "+PONG":
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("redis-server did not start: %s"
                             % open(os.path.join(self.dir, "redis.log")).read()[-2000:])

    def cmd(self, *args, timeout=5.0):
        """One command (RESP); the first line of the answer, or for a bulk string its value."""
        req = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a), a) for a in
            (x if isinstance(x, bytes) else str(x).encode() for x in args))
        if self.password:
            req = (b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(self.password), self.password.encode())
                   + req)
        with socket.create_connection((HOST, self.port), timeout=timeout) as s:
            s.sendall(req)
            if self.password:
                buf = b""
                while b"\r\n" not in buf:
                    buf += s.recv(1)
            buf = b""
            while b"\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            line = buf.split(b"\r\n", 1)[0].decode()
            if line.startswith("$") and line != "$-1":
                n = int(line[1:])
                rest = buf.split(b"\r\n", 1)[1]
                while len(rest) < n + 2:
                    rest += s.recv(65536)
                return rest[:n].decode()
            return line

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.log.close()

    def stop(self):
        self.kill(signal.SIGTERM)

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_config(port, extra=None):
    cfg = {"store": {"backend": "redis"},
           "redis": {"nodes": "%s:%d" % (HOST, port), "command_timeout": "2s",
                     "connect_timeout": "1s"}}
    for sec, keys in (extra or {}).items():
        cfg.setdefault(sec, {}).update(keys)
    return cfg


# ---- the queue suite against Redis ----------------------------------------------------

def redis_variant(base, not_yet, extra=None):
    """base (a test_queue class) with [store] backend = redis on a redis-server of its own;
    not_yet: {test name: why it does not pass against Redis yet}, left out; extra: more
    config (redis_config's)."""

    class Variant(base):
        redis = None
        per_queue_metrics = False  # docs/REDIS.md: no per-queue series on /metrics yet

        @classmethod
        def setUpClass(cls):
            cls.redis = RedisServer().start()
            cls.config = {k: dict(v) for k, v in base.config.items()}
            cls.config.update(redis_config(cls.redis.port, extra))
            try:
                super().setUpClass()
            except Exception:
                cls.redis.cleanup()
                raise

        @classmethod
        def tearDownClass(cls):
            try:
                super().tearDownClass()
            finally:
                cls.redis.cleanup()

    for name in not_yet:
        setattr(Variant, name, None)
    Variant.__name__ = Variant.__qualname__ = "Redis" + base.__name__
    Variant.not_yet = not_yet
    return Variant


RedisQueueApiTest = redis_variant(tq.QueueApiTest, {})
RedisQueueLimitsTest = redis_variant(tq.QueueLimitsTest, {
    "test_mem_limit_503": "[queues] mem_limit is the local engine's; with Redis the limit is "
                          "Redis's own maxmemory (docs/REDIS.md)",
})
RedisQueueAuthTest = redis_variant(tq.QueueAuthTest, {})


# ---- helpers for the cases below --------------------------------------------------------

class RedisCase(unittest.TestCase):
    """A redis-server per test and daemons started on demand (stopped at the end)."""

    def setUp(self):
        self.redis = RedisServer().start()
        self.daemons = []
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=16)

    def tearDown(self):
        self.pool.shutdown(wait=True)
        for d in self.daemons:
            if d.alive():
                d.stop()
            else:
                d._kill()
                d.cleanup()
        self.redis.cleanup()

    def node(self, extra=None, extra_config=""):
        d = Daemon(redis_config(self.redis.port, extra), extra_config).start()
        self.daemons.append(d)
        return d

    def req(self, d, method, path, body=None, timeout=10.0, headers=None):
        return d.http(method, path, body=body, headers=headers, timeout=timeout)

    def declare(self, d, q, **settings):
        r = self.req(d, "PUT", "/queues/" + q, body=json.dumps(settings) if settings else None,
                     headers={"Content-Type": "application/json"} if settings else None)
        self.assertIn(r.status, (200, 201), r)

    def put(self, d, q, payload=b"x", **params):
        return self.req(d, "POST", tq.qs("/queues/%s/jobs" % q, **params), body=payload)

    def reserve(self, d, q, timeout=10.0, **params):
        params.setdefault("wait", 0)
        return self.req(d, "POST", tq.qs("/queues/%s/reserve" % q, **params), timeout=timeout)

    def ack(self, d, q, jid, **params):
        return self.req(d, "POST", tq.qs("/queues/%s/jobs/%d/ack" % (q, jid), **params))

    def stats(self, d, q):
        r = self.req(d, "GET", "/queues/" + q)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def bg(self, fn, *args, **kw):
        def run():
            try:
                r = fn(*args, **kw)
            except Exception as e:  # noqa: BLE001 - reported by the test
                r = e
            return r, time.monotonic()
        return self.pool.submit(run)


class RedisTwoNodesTest(RedisCase):

    def test_maxsize_holds_across_nodes_and_put_on_a_wakes_reserve_on_b(self):
        a, b = self.node(), self.node()
        self.declare(a, "shared", maxsize=2)
        self.assertEqual(self.put(a, "shared", b"1").status, 201)
        self.assertEqual(self.put(b, "shared", b"2").status, 201)
        r = self.put(a, "shared", b"3")
        self.assertEqual(r.status, 503, r)
        self.assertIn("full", r.json()["error"])
        self.assertEqual((r.json()["reason"], r.header("Retry-After")), ("queue full", "1"), r)
        # A put waiting on A is woken by a reserve on B (room freed across nodes).
        waiting_put = self.bg(self.put, a, "shared", b"3", wait=10)
        time.sleep(0.3)
        self.assertFalse(waiting_put.done())
        jid = int(self.reserve(b, "shared").header("Job-Id"))
        r, _ = waiting_put.result(15)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.ack(b, "shared", jid).status, 200)
        # Drain both, then a reserve waiting on B is woken by a put on A within a short time.
        for _ in range(2):
            got = self.reserve(b, "shared")
            self.assertEqual(got.status, 200)
            self.ack(b, "shared", int(got.header("Job-Id")))
        fut = self.bg(self.reserve, b, "shared", wait=10, timeout=15)
        time.sleep(0.3)
        self.assertFalse(fut.done(), "the reserve did not wait")
        t0 = time.monotonic()
        self.assertEqual(self.put(a, "shared", b"wake").status, 201)
        r, t1 = fut.result(15)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"wake")
        # The safety re-check runs once a second: well under that means the notification woke it.
        self.assertLess(t1 - t0, 0.5, "the reserve on B was woken only after %.3f s" % (t1 - t0))
        self.assertEqual(self.ack(b, "shared", int(r.header("Job-Id"))).status, 200)

    def test_producer_on_a_consumers_on_b_join_on_a(self):
        a, b = self.node(), self.node()
        self.declare(a, "work", maxsize=2)
        n = 20
        seen, lock = [], threading.Lock()

        def consumer():
            while True:
                r = self.reserve(b, "work", wait=2, timeout=10)
                if r.status == 204:
                    return
                self.assertEqual(r.status, 200, r)
                with lock:
                    seen.append(r.body)
                self.assertEqual(self.ack(b, "work", int(r.header("Job-Id"))).status, 200)

        consumers = [self.bg(consumer) for _ in range(2)]
        for i in range(n):
            r = self.put(a, "work", b"job-%d" % i, wait=10)
            self.assertEqual(r.status, 201, r)
            self.assertLessEqual(self.stats(a, "work")["size"], 2)
        r = self.req(a, "GET", "/queues/work/join?wait=10", timeout=15)
        self.assertEqual(r.status, 200, r)
        for c in consumers:
            res, _ = c.result(20)
            self.assertNotIsInstance(res, Exception, res)
        self.assertEqual(sorted(seen), sorted(b"job-%d" % i for i in range(n)))
        st = self.stats(b, "work")
        self.assertEqual((st["unfinished"], st["total_put"], st["total_acked"]), (0, n, n))

    def test_sigkilled_node_reserved_job_redelivered_by_other_after_lease(self):
        a, b = self.node(), self.node()
        self.declare(a, "lease", lease=1)
        self.assertEqual(self.put(a, "lease", b"precious").status, 201)
        r = self.reserve(a, "lease")
        self.assertEqual(r.status, 200)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(10)
        t0 = time.monotonic()
        r = self.reserve(b, "lease", wait=5, timeout=10)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"precious")
        self.assertEqual(r.header("Job-Attempt"), "2")
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertEqual(self.ack(b, "lease", int(r.header("Job-Id"))).status, 200)
        self.daemons.remove(a)
        a._kill()
        a.cleanup()


class RedisFaultTest(RedisCase):

    def test_redis_down_503_and_health_degraded_then_recovery(self):
        d = self.node()
        self.declare(d, "f")
        self.assertEqual(self.put(d, "f", b"before").status, 201)
        self.redis.stop()
        deadline = time.monotonic() + 10
        while True:
            h = self.req(d, "GET", "/health")
            if h.status == 503:
                break
            self.assertLess(time.monotonic(), deadline, "/health never said degraded: %r" % h)
            time.sleep(0.05)
        self.assertEqual(h.json()["status"], "degraded")
        self.assertIn("redis", h.json()["why"])
        for r in (self.put(d, "f", b"during"), self.reserve(d, "f"),
                  self.req(d, "GET", "/queues/f")):
            self.assertEqual(r.status, 503, r)
            self.assertIn("redis", r.json()["error"])
            # issue 16: a storage failure, not a full queue; no Retry-After
            self.assertEqual((r.json()["reason"], r.header("Retry-After")), ("storage", None), r)
        # Same port, same data directory: awaitd reconnects by itself.
        self.redis.start()
        deadline = time.monotonic() + 10
        while self.req(d, "GET", "/health").status != 200:
            self.assertLess(time.monotonic(), deadline, "awaitd did not recover")
            time.sleep(0.05)
        r = self.reserve(d, "f")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"before")
        self.assertEqual(self.ack(d, "f", int(r.header("Job-Id"))).status, 200)
        self.assertEqual(self.put(d, "f", b"after").status, 201)

    def test_waiting_reserve_served_after_redis_restart(self):
        d = self.node()
        self.declare(d, "w")
        fut = self.bg(self.reserve, d, "w", wait=15, timeout=20)
        time.sleep(0.3)
        self.redis.stop()
        time.sleep(0.5)
        self.redis.start()
        deadline = time.monotonic() + 10
        while self.req(d, "GET", "/health").status != 200:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        self.assertEqual(self.put(d, "w", b"late").status, 201)
        r, _ = fut.result(20)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"late")

    def test_sigkill_redis_under_load_loses_no_acknowledged_job(self):
        d = self.node()
        self.declare(d, "load", lease=1)
        # An ack whose answer was lost (Redis killed after applying it) may have happened:
        # such jobs may be gone or back, nothing else may.
        put_ok, acked, maybe_acked, lock = set(), set(), set(), threading.Lock()
        stop = threading.Event()

        def producer(k):
            i = 0
            while not stop.is_set():
                payload = b"p%d-%d" % (k, i)
                i += 1
                try:
                    r = self.put(d, "load", payload)
                except OSError:
                    continue
                if r.status == 201:
                    with lock:
                        put_ok.add(payload)

        def consumer():
            while not stop.is_set():
                try:
                    r = self.reserve(d, "load")
                    if r.status != 200:
                        continue
                except OSError:
                    continue
                try:
                    a = self.ack(d, "load", int(r.header("Job-Id")))
                    status = a.status
                except OSError:
                    status = None
                with lock:
                    (acked if status == 200 else maybe_acked).add(r.body)

        workers = [self.bg(producer, k) for k in range(3)] + [self.bg(consumer) for _ in range(2)]
        time.sleep(1.0)
        self.redis.kill(signal.SIGKILL)
        time.sleep(0.5)
        stop.set()
        for w in workers:
            w.result(30)
        self.redis.start()
        deadline = time.monotonic() + 10
        while self.req(d, "GET", "/health").status != 200:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        time.sleep(1.5)  # leases of reserves whose answer was lost run out: those jobs are ready
        self.assertGreater(len(put_ok), 10, "the load put too little to mean anything")
        self.assertGreater(len(acked), 5, "the load acked too little to mean anything")
        left = []
        while True:
            r = self.reserve(d, "load", count=100, lease=60)
            if r.status == 204:
                break
            self.assertEqual(r.status, 200, r)
            left.extend(p for (_, _, _, _, p) in tq.parse_frames(r.body))
        left = set(left)
        self.assertFalse(left & acked, "acked jobs came back: %r" % sorted(left & acked)[:5])
        self.assertTrue(left, "nothing was left unacked: the check below would mean nothing")
        missing = put_ok - acked - maybe_acked - left
        self.assertFalse(missing, "%d jobs that got a 201 and were not acked are gone: %r"
                         % (len(missing), sorted(missing)[:5]))


class RedisAuthTest(unittest.TestCase):

    def test_password_file_and_wrong_password(self):
        redis = RedisServer()
        redis.password = "s3cret-for-awaitd"
        redis.start()
        d = bad = None
        try:
            pw = os.path.join(redis.dir, "pw")
            with open(pw, "w") as f:
                f.write(redis.password + "\n")
            d = Daemon(redis_config(redis.port, {"redis": {"password_file": pw}})).start()
            self.assertEqual(d.http("PUT", "/queues/a").status, 201)
            self.assertEqual(d.http("POST", "/queues/a/jobs", body=b"x").status, 201)
            bad = Daemon(redis_config(redis.port, {"redis": {"password": "wrong"}}))
            with self.assertRaises(AssertionError):
                bad.start(timeout=2)  # never healthy
            bad = Daemon(redis_config(redis.port, {"redis": {"password": "wrong"}}))
            bad.start_timeout = None
            bad.tmpdir = tempfile.mkdtemp(prefix="awaitd-e2e-")
            bad.conf_path = os.path.join(bad.tmpdir, "awaitd.conf")
            bad.stderr_path = os.path.join(bad.tmpdir, "stderr.log")
            bad._write_config()
            bad._stderr_file = open(bad.stderr_path, "wb")
            bad.proc = subprocess.Popen([bad.binary, "-c", bad.conf_path], stdout=bad._stderr_file,
                                        stderr=bad._stderr_file, cwd=bad.tmpdir)
            deadline = time.monotonic() + 10
            while True:
                try:
                    h = bad.http("GET", "/health", timeout=1)
                    if h.status == 503 and "AUTH" in h.json().get("why", ""):
                        break
                except OSError:
                    pass
                self.assertLess(time.monotonic(), deadline, "no degraded /health naming AUTH")
                time.sleep(0.05)
            r = bad.http("POST", "/queues/a/jobs", body=b"x")
            self.assertEqual(r.status, 503, r)
            self.assertIn("redis", r.json()["error"])
        finally:
            if d:
                d.stop()
            if bad and bad.alive():
                bad.stop()
            redis.cleanup()


class RedisTimeoutsTest(RedisCase):

    def test_command_timeout_answers_503_then_recovers(self):
        d = self.node({"redis": {"command_timeout": "300ms"}})
        self.declare(d, "slow")
        # Redis stops answering writes for 2 s: a put past command_timeout is a 503 naming the
        # backend (the connection is closed and reopened), and work resumes by itself.
        self.assertEqual(self.redis.cmd("CLIENT", "PAUSE", "2000", "ALL"), "+OK")
        t0 = time.monotonic()
        r = self.put(d, "slow", b"x")
        took = time.monotonic() - t0
        self.assertEqual(r.status, 503, r)
        self.assertIn("redis", r.json()["error"])
        self.assertIn("command_timeout", r.json()["error"])
        self.assertLess(took, 1.8, "the put was not cut at command_timeout")
        deadline = time.monotonic() + 10
        while True:
            r = self.put(d, "slow", b"y")
            if r.status == 201:
                break
            self.assertLess(time.monotonic(), deadline, "no recovery after the pause: %r" % r)
            time.sleep(0.1)

    def test_function_flush_reloads_the_library(self):
        d = self.node()
        self.declare(d, "fl")
        self.assertEqual(self.redis.cmd("FUNCTION", "FLUSH"), "+OK")
        r = self.put(d, "fl", b"x")
        self.assertEqual(r.status, 503, r)  # the call that found the library gone
        self.assertIn("redis", r.json()["error"])
        deadline = time.monotonic() + 10
        while self.put(d, "fl", b"y").status != 201:
            self.assertLess(time.monotonic(), deadline, "the library was not loaded again")
            time.sleep(0.05)

    def test_replicas_ack(self):
        replica = RedisServer(replica_of=self.redis.port).start()
        try:
            deadline = time.monotonic() + 10
            while "master_link_status:up" not in self.redis_info(replica):
                self.assertLess(time.monotonic(), deadline, "the replica did not sync")
                time.sleep(0.1)
            d = self.node({"redis": {"replicas_ack": "1", "command_timeout": "500ms"}})
            self.declare(d, "rep")
            r = self.put(d, "rep", b"safe")
            self.assertEqual(r.status, 201, r)
            self.assertEqual(replica.cmd("HGET", "{awaitd:rep}:p", "%016d" % r.json()["id"]), "safe")
            replica.stop()
            r = self.put(d, "rep", b"unconfirmed")
            self.assertEqual(r.status, 503, r)
            self.assertIn("replicas_ack", r.json()["error"])
        finally:
            replica.cleanup()

    def test_replicas_ack_lagging_waits_do_not_close_the_connection(self):
        # Each change is followed by WAIT (command_timeout / 2) on the pipelined connection;
        # with the replica gone, concurrent changes queue their WAITs behind each other. The
        # connection answers all along, so it stays open: every put answers 503 naming
        # replicas_ack, none "command_timeout" (they did when the age of a queued command
        # alone closed the connection).
        replica = RedisServer(replica_of=self.redis.port).start()
        try:
            deadline = time.monotonic() + 10
            while "master_link_status:up" not in self.redis_info(replica):
                self.assertLess(time.monotonic(), deadline, "the replica did not sync")
                time.sleep(0.1)
            d = self.node({"redis": {"replicas_ack": "1", "command_timeout": "400ms"}})
            self.declare(d, "lag")
            replica.stop()
            futs = [self.bg(self.put, d, "lag", b"x%d" % i) for i in range(12)]
            for f in futs:
                r, _ = f.result(30)
                self.assertEqual(r.status, 503, r)
                self.assertIn("replicas_ack", r.json()["error"])
        finally:
            replica.cleanup()

    @staticmethod
    def redis_info(server):
        with socket.create_connection((HOST, server.port), timeout=5) as s:
            s.sendall(b"*2\r\n$4\r\nINFO\r\n$11\r\nreplication\r\n")
            time.sleep(0.1)
            return s.recv(65536).decode()


class RedisConfigTest(unittest.TestCase):

    def test_check_accepts_redis_with_timers(self):
        tmp = tempfile.mkdtemp(prefix="awaitd-redis-t-")
        try:
            path = os.path.join(tmp, "a.conf")
            with open(path, "w") as f:
                f.write("[store]\nbackend = redis\n[redis]\nnodes = 127.0.0.1:1\n")
            p = subprocess.run([awaitd_test.AWAITD, "-t", "-c", path], capture_output=True,
                               text=True, timeout=10)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertNotIn("timers are not available", p.stderr)  # served since issue 13's timers
            with open(path, "w") as f:
                f.write("[store]\nbackend = redis\n[redis]\nnodes = nohost\n")
            p = subprocess.run([awaitd_test.AWAITD, "-t", "-c", path], capture_output=True,
                               text=True, timeout=10)
            self.assertEqual(p.returncode, 1)
            self.assertIn("[redis] nodes", p.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_timers_are_served(self):
        redis = RedisServer().start()
        d = None
        try:
            d = Daemon(redis_config(redis.port)).start()
            r = d.http("POST", "/timers", body=b'{"after": 1}')
            self.assertEqual(r.status, 400, r)  # no longer 501: the timer suite is test_redis_timers.py
            self.assertIn("queue", r.json()["error"])
        finally:
            if d:
                d.stop()
            redis.cleanup()


if __name__ == "__main__":
    awaitd_test.main()
