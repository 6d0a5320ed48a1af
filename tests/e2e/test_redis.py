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
import subprocess
import tempfile
import threading
import time
import unittest

import awaitd_test
from awaitd_test import Daemon, free_port, HOST
import test_queue as tq
import test_queue_acks as tqa

# The redis-server helpers live in redis_test.py; these names stay importable from here.
from redis_test import REDIS_SERVER, RedisServer, redis_config  # noqa: F401


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
RedisQueueAcksTest = redis_variant(tqa.QueueAcksTest, {})


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


class RedisBatchAckTest(RedisCase):

    def fcalls(self):
        info = self.redis.cmd("INFO", "commandstats")
        for line in info.splitlines():
            if line.startswith("cmdstat_fcall:"):
                return int(line.split("calls=")[1].split(",")[0])
        return 0

    def test_one_fcall_per_batch_ack_and_acks_across_nodes(self):
        """50 jobs reserved on node A are acked on node B in one request: one
        FCALL, and a join waiting on A is woken by it."""
        a, b = self.node(), self.node()
        self.declare(a, "bq")
        r = self.req(a, "POST", "/queues/bq/jobs?batch=1",
                     body=tq.frame_put([b"%d" % i for i in range(50)]))
        self.assertEqual(r.status, 201, r)
        r = self.reserve(a, "bq", count=50)
        self.assertEqual(r.status, 200, r)
        got = [(f[0], f[1]) for f in tq.parse_frames(r.body)]
        self.assertEqual(len(got), 50)
        body = b"".join(b"%d %d\n" % g for g in got[:49]) + b"424242\n"
        before = self.fcalls()  # no waiter anywhere: nothing else calls
        r = self.req(b, "POST", "/queues/bq/acks", body=body)
        after = self.fcalls()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(after - before, 1, "a batch ack of 50 ids made %d FCALLs" % (after - before))
        res = r.json()
        self.assertEqual(res["acked"], 49, res)
        self.assertEqual(res["results"][-1]["id"], 424242)
        self.assertEqual(res["results"][-1]["status"], 404)
        join = self.bg(self.req, a, "GET", "/queues/bq/join?wait=10", timeout=20)
        deadline = time.monotonic() + 5
        while self.stats(a, "bq")["joiners"] != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        t0 = time.monotonic()
        r = self.req(b, "POST", "/queues/bq/acks", body=b"%d %d\n" % got[49])
        self.assertEqual(r.json()["acked"], 1, r)
        r, t1 = join.result(15)
        self.assertEqual((r.status, r.json()), (200, {"unfinished": 0}), r)
        self.assertLess(t1 - t0, 0.8, "the join on A was woken only after %.3f s" % (t1 - t0))
        st = self.stats(b, "bq")
        self.assertEqual((st["total_acked"], st["unfinished"]), (50, 0), st)

    def test_batch_ack_503_while_redis_is_down(self):
        d = self.node()
        self.declare(d, "down")
        self.redis.kill()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            r = self.req(d, "POST", "/queues/down/acks", body=b"1\n")
            if r.status == 503:
                break
            time.sleep(0.05)
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json()["reason"], "storage", r)
        self.assertIn("redis", r.json()["error"])


class RedisCostTest(RedisCase):
    """What a cycle costs inside Redis (issue 13): the commands the functions
    run, counted by INFO commandstats, and the shortcuts behind the counts
    (pdue: no scan for due jobs before one can be due; gw: no PUBLISH while
    no getter can be waiting) keeping their meaning."""

    def cmdstats(self):
        out = {}
        for line in self.redis.cmd("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, rest = line[8:].split(":", 1)
                out[name] = int(rest.split("calls=")[1].split(",")[0])
        return out

    def test_commands_per_cycle(self):
        d = self.node()
        self.declare(d, "cost")
        for _ in range(3):  # the first operation on a new queue looks for due jobs once
            self.assertEqual(self.put(d, "cost", b"x").status, 201)
            r = self.reserve(d, "cost")
            self.assertEqual(self.ack(d, "cost", int(r.header("Job-Id")),
                                     attempt=r.header("Job-Attempt")).status, 200)
        self.assertEqual(self.put(d, "cost", b"keep").status, 201)  # so the ack does not end a join
        before = self.cmdstats()
        n = 10
        for _ in range(n):
            self.assertEqual(self.put(d, "cost", b"x").status, 201)
            r = self.reserve(d, "cost")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(self.ack(d, "cost", int(r.header("Job-Id")),
                                     attempt=r.header("Job-Attempt")).status, 200)
        after = self.cmdstats()
        per = {k: (after.get(k, 0) - before.get(k, 0)) / n for k in after}
        self.assertEqual(per.get("fcall"), 3, per)
        inner = sum(v for k, v in per.items() if k not in ("fcall", "info"))
        # 33 before pdue, gw, next_id as total_put and the leased() reorder; 23 before
        # an ack's ZREM told whether the job was leased, B:n left alone while no job had
        # a priority and total_acked derived in stats
        self.assertLessEqual(inner, 20, "commands per put->reserve->ack: %r" % per)
        for k in ("publish", "zrangebyscore"):
            self.assertEqual(per.get(k, 0), 0, "%s per cycle: %r" % (k, per))

    def test_counters_and_priorities_behind_the_shortcuts(self):
        """The ack's shortcuts keep their meaning: total_acked (derived in stats,
        not counted) after acks, a dead letter purged, a dead letter requeued and
        acked, jobs purged and refused acks; a job's priority forgotten when it is
        acked (B:n empty again) once the queue has had a priority."""
        d = self.node()
        self.declare(d, "cnt", max_attempts=1)
        hlen = ("local n = 0 for _, k in ipairs(redis.call('KEYS', '*cnt}:n')) do "
                "n = n + redis.call('HLEN', k) end return n")

        def take():
            r = self.reserve(d, "cnt")
            self.assertEqual(r.status, 200, r)
            return int(r.header("Job-Id")), r.header("Job-Attempt")

        for i in range(3):
            self.assertEqual(self.put(d, "cnt", b"a%d" % i).status, 201)
        for _ in range(2):
            jid, att = take()
            self.assertEqual(self.ack(d, "cnt", jid, attempt=int(att) + 1).status, 409)
            self.assertEqual(self.ack(d, "cnt", jid, attempt=att).status, 200)
            self.assertEqual(self.ack(d, "cnt", jid).status, 404)
        jid, _ = take()  # dies (max_attempts 1), then is purged from the dead letters
        self.assertEqual(self.req(d, "POST", "/queues/cnt/jobs/%d/nack" % jid).status, 200)
        self.assertEqual(self.ack(d, "cnt", jid).status, 409)
        self.assertEqual(self.req(d, "POST", "/queues/cnt/dead/purge").status, 200)
        self.assertEqual(self.redis.cmd("EVAL", hlen, "0"), ":0")
        for p in (-5, 0, -7):  # -7 first, then -5
            self.assertEqual(self.put(d, "cnt", b"p%d" % p, priority=p).status, 201)
        self.assertEqual(self.redis.cmd("EVAL", hlen, "0"), ":2")
        jid, _ = take()  # -7 dies, is requeued, then acked with -5
        self.assertEqual(self.req(d, "POST", "/queues/cnt/jobs/%d/nack" % jid).status, 200)
        self.assertEqual(self.req(d, "POST", "/queues/cnt/dead/requeue").status, 200)
        for _ in range(2):
            jid, att = take()
            self.assertEqual(self.ack(d, "cnt", jid, attempt=att).status, 200)
        self.assertEqual(self.redis.cmd("EVAL", hlen, "0"), ":0")
        self.assertEqual(self.req(d, "POST", "/queues/cnt/purge").status, 200)  # drops p0
        st = self.stats(d, "cnt")
        self.assertEqual((st["total_put"], st["total_acked"], st["unfinished"]), (6, 4, 0), st)

    def test_a_put_publishes_only_while_a_getter_may_wait(self):
        a, b = self.node(), self.node()
        self.declare(a, "gw")
        p0 = self.cmdstats().get("publish", 0)
        for _ in range(5):
            self.assertEqual(self.put(a, "gw", b"x").status, 201)
        self.assertEqual(self.cmdstats().get("publish", 0), p0, "puts with no getter waiting published")
        for _ in range(5):
            r = self.reserve(b, "gw")
            self.assertEqual(self.ack(b, "gw", int(r.header("Job-Id"))).status, 200)
        # a getter waiting on B: the put on A must wake it at once
        fut = self.bg(self.reserve, b, "gw", wait=10, timeout=15)
        deadline = time.monotonic() + 5
        while self.stats(b, "gw")["getters"] != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        t0 = time.monotonic()
        self.assertEqual(self.put(a, "gw", b"wake").status, 201)
        r, t1 = fut.result(15)
        self.assertEqual((r.status, r.body), (200, b"wake"), r)
        self.assertLess(t1 - t0, 0.5, "woken only after %.3f s" % (t1 - t0))
        # a delayed put with a getter waiting: 't' makes it re-check when the job is due
        fut = self.bg(self.reserve, b, "gw", wait=10, timeout=15)
        while self.stats(b, "gw")["getters"] != 1 and time.monotonic() < deadline + 5:
            time.sleep(0.02)
        t0 = time.monotonic()
        self.assertEqual(self.put(a, "gw", b"later", delay=0.3).status, 201)
        r, t1 = fut.result(15)
        self.assertEqual((r.status, r.body), (200, b"later"), r)
        self.assertLess(t1 - t0, 0.9, "the delayed job reached the getter after %.3f s" % (t1 - t0))

    def test_due_jobs_move_on_time_behind_a_long_lease(self):
        """pdue keeps up with every score: a long lease first, then a touch to
        a short one, a nack with a delay and a delayed put, each due before it."""
        d = self.node()
        self.declare(d, "due", lease=60)
        for p in (b"long", b"short"):
            self.assertEqual(self.put(d, "due", p).status, 201)
        long_ = self.reserve(d, "due")
        short = self.reserve(d, "due")
        self.assertEqual((long_.body, short.body), (b"long", b"short"))
        sid = int(short.header("Job-Id"))
        r = self.req(d, "POST", "/queues/due/jobs/%d/touch?lease=0.3" % sid)
        self.assertEqual(r.status, 200, r)
        r = self.reserve(d, "due", wait=5)
        self.assertEqual((r.status, r.body, r.header("Job-Attempt")), (200, b"short", "2"), r)
        self.assertEqual(self.req(d, "POST", "/queues/due/jobs/%d/nack?delay=0.3" % sid).status, 200)
        self.assertEqual(self.put(d, "due", b"delayed", delay=0.5).status, 201)
        t0 = time.monotonic()
        r = self.reserve(d, "due", wait=5)
        self.assertEqual((r.status, r.body), (200, b"short"), r)
        r2 = self.reserve(d, "due", wait=5)
        self.assertEqual((r2.status, r2.body), (200, b"delayed"), r2)
        self.assertLess(time.monotonic() - t0, 2.0)
        st = self.stats(d, "due")
        self.assertEqual((st["reserved"], st["delayed"], st["size"], st["total_put"]),
                         (3, 0, 0, 3), st)


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

    def test_started_before_redis_degraded_logged_then_served(self):
        """Redis not running when awaitd starts: the node starts anyway, /health is 503
        degraded naming the backend, calls are 503s naming it, the failure is logged once at
        warning level with the backoff, and once Redis is up the node serves without a restart."""
        self.redis.stop()
        d = Daemon(redis_config(self.redis.port))
        self.daemons.append(d)
        started = self.bg(d.start, timeout=60)  # start() returns once /health says 200
        deadline = time.monotonic() + 10
        while True:
            try:
                h = self.req(d, "GET", "/health", timeout=2) if d.port else None
            except OSError:
                h = None
            if h is not None and h.status == 503:
                break
            self.assertLess(time.monotonic(), deadline, "/health never answered degraded")
            time.sleep(0.05)
        self.assertEqual(h.json()["status"], "degraded", h)
        self.assertIn("backend redis", h.json()["why"])
        r = self.put(d, "early", b"x")
        self.assertEqual(r.status, 503, r)
        self.assertIn("the queue backend (redis)", r.json()["error"])
        time.sleep(1.0)  # a few retries: 100, 200, 400 ms...
        log = d.stderr()
        # once per connection set (the queues' and the timers'), not once per retry
        for channel in ("awaitd:events", "awaitd:timers"):
            self.assertEqual(log.count("channel %s retry with backoff" % channel), 1, log)
        self.redis.start()
        r, _ = started.result(60)
        self.assertIs(r, d, r)
        self.declare(d, "early")
        self.assertEqual(self.put(d, "early", b"x").status, 201)

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


class RedisMemoryTest(RedisCase):

    def test_node_memory_does_not_grow_with_queued_jobs(self):
        """40,000 jobs of 200 bytes (8 MB of payloads) queued through a node: they are in
        Redis, and the node's resident memory grows by far less than they take."""
        asan = os.environ.get("ASAN_OPTIONS")
        if asan is not None:
            # The sanitizer build (.ci/run): ASan keeps freed blocks in a quarantine (256 MB
            # by default), so the node's RSS grows with everything it ever freed. Without
            # it, RSS measures what the node holds, as in the plain build.
            os.environ["ASAN_OPTIONS"] = asan + ":quarantine_size_mb=0"
        try:
            d = self.node()
        finally:
            if asan is not None:
                os.environ["ASAN_OPTIONS"] = asan
        self.declare(d, "mem")
        # one small cycle first so the node's buffers and pools exist before the baseline
        for _ in range(3):
            self.assertEqual(self.req(d, "POST", "/queues/mem/jobs?batch=1",
                                      body=tq.frame_put([b"w" * 200] * 500)).status, 201)
        self.req(d, "POST", "/queues/mem/purge")

        def rss_kb():
            with open("/proc/%d/status" % d.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
            raise AssertionError("no VmRSS")

        used0 = int(self.redis.info("memory").split("used_memory:")[1].split()[0])
        rss0 = rss_kb()
        for i in range(80):
            r = self.req(d, "POST", "/queues/mem/jobs?batch=1",
                         body=tq.frame_put([b"%06d" % i + b"p" * 194] * 500))
            self.assertEqual(r.status, 201, r)
        self.assertEqual(self.stats(d, "mem")["size"], 40000)
        grown_kb = rss_kb() - rss0
        used1 = int(self.redis.info("memory").split("used_memory:")[1].split()[0])
        self.assertGreater(used1 - used0, 8000000)  # the jobs are in Redis
        self.assertLess(grown_kb, 1024, "the node grew by %d kB for 8 MB of jobs" % grown_kb)


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

    def test_older_library_version_replaced_at_start(self):
        """Redis holds another version of the awaitd library (an older awaitd loaded it): a
        starting node replaces it (FUNCTION LOAD REPLACE), and the queues work."""
        old = "#!lua name=awaitd\nredis.register_function('awaitd_version', function() return 'old' end)"
        self.assertEqual(self.redis.cmd("FUNCTION", "LOAD", old), "awaitd")
        self.assertEqual(self.redis.cmd("FCALL", "awaitd_version", "0"), "old")
        d = self.node()
        self.declare(d, "up")
        self.assertEqual(self.put(d, "up", b"x").status, 201)
        version = self.redis.cmd("FCALL", "awaitd_version", "0")
        self.assertNotEqual(version, "old")
        self.assertIn(d.stderr().count("loaded the awaitd function library"), (1, 2), d.stderr())

    def test_replicas_ack(self):
        replica = self.redis.start_replica()
        try:
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
        replica = self.redis.start_replica()
        try:
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
        return server.info("replication")


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

    def test_local_limits_named_as_not_applied(self):
        """[queues] mem_limit and [timers] max_timers set with backend = redis: -t accepts the
        file and says on stderr that they are not applied (naming their lines), and the start
        logs it; without them nothing is said."""
        tmp = tempfile.mkdtemp(prefix="awaitd-redis-t-")
        try:
            path = os.path.join(tmp, "a.conf")
            with open(path, "w") as f:
                f.write("[store]\nbackend = redis\n[redis]\nnodes = 127.0.0.1:1\n"
                        "[queues]\nmem_limit = 64M\n[timers]\nmax_timers = 10\n")
            p = subprocess.run([awaitd_test.AWAITD, "-t", "-c", path], capture_output=True,
                               text=True, timeout=10)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("[queues] mem_limit (line 6), [timers] max_timers (line 8) not applied "
                          "with [store] backend = redis", p.stderr)
            self.assertIn("maxmemory", p.stderr)
            with open(path, "w") as f:
                f.write("[store]\nbackend = redis\n[redis]\nnodes = 127.0.0.1:1\n")
            p = subprocess.run([awaitd_test.AWAITD, "-t", "-c", path], capture_output=True,
                               text=True, timeout=10)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertNotIn("not applied", p.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        redis = RedisServer().start()
        d = None
        try:
            d = Daemon(redis_config(redis.port, {"timers": {"max_timers": "10"}})).start()
            self.assertEqual(d.http("GET", "/health").status, 200)
            err = d.stderr()
            self.assertIn("[timers] max_timers (line", err)
            self.assertIn("not applied with [store] backend = redis", err)
            self.assertNotIn("mem_limit", err)
        finally:
            if d:
                d.stop()
            redis.cleanup()

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
