"""[store] backend = redis on a Redis Cluster (docs/REDIS.md, issue 13): six
redis-server processes of our own on loopback ports (3 masters, 3 replicas,
made a cluster by `redis-cli --cluster create --cluster-replicas 1`, with a
short cluster-node-timeout), every one of them killed at the end.

- ClusterQueueApiTest: the queue suite of test_queue.py (QueueApiTest)
  run unchanged against the cluster (put, reserve, ack, nack, delay,
  priority, batch, dead letters, join, stats, list, ...).
- ClusterFailedOverQueueApiTest: the same suite after the master holding
  awaitd's subscriber was SIGKILLed under the running daemon (replica
  promoted, awaitd followed): the suites pass again, jobs put before are there.
- RedisClusterTest: queues land on different masters and each works; a
  reserve waiting on node B is woken by a put on node A whatever master
  the queue lives on (one SUBSCRIBE hears the whole cluster); SIGKILL of
  a master -> its replica is promoted, awaitd follows (connection loss,
  slot map asked again, MOVED), /health says degraded meanwhile, the
  operations pass again, and with replicas_ack = 1 no job that got a 201
  is lost across the failover.
"""

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
from test_redis import RedisServer, RedisCase

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
NODE_TIMEOUT_MS = 1000


def resp(port, *args, timeout=5.0):
    """One command; the whole decoded answer (nested lists for arrays)."""
    req = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in
        (x if isinstance(x, bytes) else str(x).encode() for x in args))
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(req)
        with s.makefile("rb") as f:
            return read_resp(f)


def resp_asking(port, *args, timeout=5.0):
    """ASKING, then one command, on one connection: the command's answer."""
    enc = [x if isinstance(x, bytes) else str(x).encode() for x in args]
    req = b"*1\r\n$6\r\nASKING\r\n" + b"*%d\r\n" % len(enc) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in enc)
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(req)
        with s.makefile("rb") as f:
            read_resp(f)
            return read_resp(f)


def read_resp(f):
    """One RESP value from f (a binary file)."""
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind in (b"+", b"-"):
        return (kind + rest).decode()
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:n].decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [read_resp(f) for _ in range(n)]
    raise AssertionError("bad answer %r" % line)


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when the test process dies (a killed test run
    leaves no redis-server behind)."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ClusterNode(RedisServer):
    """One cluster-enabled redis-server: AOF always, a short node timeout."""

    preexec_fn = staticmethod(die_with_parent)

    def args(self):
        if not getattr(self, "bus_port", None):  # kept across a restart (nodes.conf has it)
            self.bus_port = free_port()  # not port + 10000, which may be taken or out of range
        return ["--cluster-enabled", "yes",
                "--cluster-port", str(self.bus_port),
                "--cluster-config-file", os.path.join(self.dir, "nodes.conf"),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-replica-validity-factor", "0",
                "--cluster-require-full-coverage", "no"]


class RedisCluster:
    """3 masters, 3 replicas; stop() kills every process whatever happened."""

    def __init__(self):
        self.nodes = []

    def start(self, timeout=60.0):
        try:
            for _ in range(6):
                self.nodes.append(ClusterNode().start())
            addrs = ["%s:%d" % (HOST, n.port) for n in self.nodes]
            p = subprocess.run([REDIS_CLI, "--cluster", "create"] + addrs +
                               ["--cluster-replicas", "1", "--cluster-yes"],
                               capture_output=True, text=True, timeout=60)
            if p.returncode != 0:
                raise AssertionError("redis-cli --cluster create failed: %s%s"
                                     % (p.stdout[-2000:], p.stderr[-2000:]))
            self.wait_healthy(timeout)
            return self
        except BaseException:
            self.stop()
            raise

    def alive(self):
        return [n for n in self.nodes if n.proc and n.proc.poll() is None]

    def wait_healthy(self, timeout):
        """Every live node says cluster_state:ok, 3 masters each with a synced replica."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                ok = all("cluster_state:ok" in resp(n.port, "CLUSTER", "INFO")
                         for n in self.alive())
                masters = self.masters()
                synced = ok and len(masters) == 3 and all(
                    "master_link_status:up" in resp(n.port, "INFO", "replication")
                    for n in self.alive() if n not in masters)
                if synced and len(self.alive()) - len(masters) == 3:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the cluster did not become healthy")
            time.sleep(0.2)

    def masters(self):
        """The live nodes that hold slots as masters (per the first live node's view)."""
        view = resp(self.alive()[0].port, "CLUSTER", "SLOTS")
        ports = {entry[2][1] for entry in view}
        return [n for n in self.alive() if n.port in ports]

    def owner(self, key):
        """The live master that holds key's slot (the one that does not answer MOVED)."""
        for n in self.masters():
            r = resp(n.port, "EXISTS", key)
            if isinstance(r, int):
                return n
        return None

    def seeds(self):
        """Every node, masters first (awaitd subscribes on the first seed that answers)."""
        masters = self.masters()
        return ", ".join("%s:%d" % (HOST, n.port) for n in
                         masters + [n for n in self.nodes if n not in masters])

    def stop(self):
        for n in self.nodes:
            try:
                n.cleanup()
            except Exception:  # noqa: BLE001 - kill the others whatever happens
                if n.proc and n.proc.poll() is None:
                    n.proc.kill()


def cluster_config(cluster, extra=None):
    cfg = {"store": {"backend": "redis"},
           "redis": {"nodes": cluster.seeds(), "command_timeout": "2s",
                     "connect_timeout": "1s"}}
    for sec, keys in (extra or {}).items():
        cfg.setdefault(sec, {}).update(keys)
    return cfg


# ---- the queue suite against the cluster --------------------------------------------------

def on_cluster(base):
    """base (a DaemonTestCase suite) with a 3-master, 3-replica Redis Cluster of its own,
    started before its daemon and stopped after it; the daemon's config is base's plus
    cluster_config."""
    class OnCluster(base):
        cluster = None

        @classmethod
        def setUpClass(cls):
            cls.cluster = RedisCluster().start()
            cls.config = {k: dict(v) for k, v in base.config.items()}
            cls.config.update(cluster_config(cls.cluster))
            try:
                super().setUpClass()
            except BaseException:
                cls.cluster.stop()
                raise

        @classmethod
        def tearDownClass(cls):
            try:
                super().tearDownClass()
            finally:
                cls.cluster.stop()
    OnCluster.__name__ = OnCluster.__qualname__ = "OnCluster" + base.__name__
    return OnCluster


class ClusterQueueApiTest(on_cluster(tq.QueueApiTest)):
    per_queue_metrics = False  # as test_redis.py: no per-queue series on /metrics with redis


def fail_over(cluster, d, timeout=60.0):
    """SIGKILL the master d's subscriber connection is on (so both the slots it serves and
    d's wake-ups have to move), wait until its replica is promoted and d's /health says ok
    again; the killed node stays down (the promoted master runs without a replica, which
    replicas_ack = 0 does not need). Returns (the killed node, its heir)."""
    subs = [n for n in cluster.masters()
            if resp(n.port, "PUBSUB", "NUMSUB", "awaitd:events")[1] > 0]
    assert len(subs) == 1, "the subscriber is not on one master: %r" % subs
    victim = subs[0]
    heir = [n for n in cluster.alive() if n not in cluster.masters() and
            "master_port:%d\r" % victim.port in resp(n.port, "INFO", "replication")][0]
    victim.kill()
    deadline = time.monotonic() + timeout
    while True:
        try:
            promoted = ("role:master" in resp(heir.port, "INFO", "replication") and
                        "cluster_state:ok" in resp(heir.port, "CLUSTER", "INFO"))
        except OSError:
            promoted = False
        if promoted and d.http("GET", "/health", timeout=5).json().get("status") == "ok":
            break
        if time.monotonic() > deadline:
            raise AssertionError("no failover followed: awaitd's log ends:\n%s"
                                 % d.stderr()[-3000:])
        time.sleep(0.1)
    assert heir in cluster.masters() and victim not in cluster.alive()
    return victim, heir


class ClusterFailedOverQueueApiTest(ClusterQueueApiTest):
    """The queue suite again, on a cluster whose master was SIGKILLed while awaitd ran: its
    replica is promoted, awaitd follows (MOVED, slot map refresh, subscriber moved) and every
    case passes against the promoted cluster, with the same daemon."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            d = cls.daemon
            # Jobs on every master before the failover, so the victim held some.
            for i in range(12):
                q = "pre%d" % i
                assert d.http("PUT", "/queues/" + q).status in (200, 201)
                assert d.http("POST", "/queues/%s/jobs" % q, body=b"before").status == 201
            cls.victim, cls.heir = fail_over(cls.cluster, d)
        except BaseException:
            cls.tearDownClass()
            raise

    def test_failed_over_master_serves_the_jobs_put_before(self):
        """The promoted master answers for the victim's slots; no job put before is lost."""
        self.assertEqual(len(self.cluster.masters()), 3)
        self.assertNotIn(self.victim, self.cluster.alive())
        self.assertIn("awaitd_redis_masters 3\n", self.d.http("GET", "/metrics").body.decode())
        on_heir = 0
        for i in range(12):
            q = "pre%d" % i
            on_heir += self.cluster.owner("{awaitd:%s}:m" % q) is self.heir
            r = self.d.http("POST", "/queues/%s/reserve?wait=0" % q)
            self.assertEqual((r.status, r.body), (200, b"before"), (q, r))
            jid = int(r.header("Job-Id"))
            self.assertEqual(self.d.http("POST", "/queues/%s/jobs/%d/ack" % (q, jid)).status, 200)
        self.assertGreater(on_heir, 0, "no queue lived on the killed master")


# ---- spread, wake-ups across nodes, failover ----------------------------------------------

class RedisClusterTest(RedisCase):

    def setUp(self):
        self.cluster = RedisCluster()
        self.daemons = []
        import concurrent.futures
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=16)
        self.stop = threading.Event()  # background loops end when it is set
        self.addCleanup(self.cluster.stop)  # runs even when start() or a test fails
        self.cluster.start()

    def tearDown(self):
        self.stop.set()
        self.pool.shutdown(wait=True)
        for d in self.daemons:
            if d.alive():
                d.stop()
            else:
                d._kill()
                d.cleanup()

    def node(self, extra=None, extra_config=""):
        d = Daemon(cluster_config(self.cluster, extra), extra_config).start()
        self.daemons.append(d)
        return d

    def spread_queues(self, per_master=2):
        """Queue names whose slots cover every master, per_master of each."""
        by_master = {}
        for i in range(200):
            name = "spread%d" % i
            slot = resp(self.cluster.nodes[0].port, "CLUSTER", "KEYSLOT", "{awaitd:%s}" % name)
            owner = [e for e in resp(self.cluster.nodes[0].port, "CLUSTER", "SLOTS")
                     if e[0] <= slot <= e[1]][0][2][1]
            lst = by_master.setdefault(owner, [])
            if len(lst) < per_master:
                lst.append(name)
            if len(by_master) == 3 and all(len(v) == per_master for v in by_master.values()):
                break
        self.assertEqual(len(by_master), 3)
        return by_master

    def wait_health(self, d, status, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            r = d.http("GET", "/health", timeout=5)
            body = r.json()
            if body.get("status") == status:
                return body
            self.assertLess(time.monotonic(), deadline, "health stayed %r" % body)
            time.sleep(0.05)

    def test_queues_land_on_every_master_and_work(self):
        d = self.node()
        self.wait_health(d, "ok")
        by_master = self.spread_queues()
        names = [q for qs in by_master.values() for q in qs]
        for q in names:
            self.declare(d, q, maxsize=5)
        # Each queue's keys are on the master its hash tag names (the one not answering MOVED).
        owners = {q: self.cluster.owner("{awaitd:%s}:m" % q).port for q in names}
        self.assertEqual(len(set(owners.values())), 3, owners)
        for port, qs in by_master.items():
            for q in qs:
                self.assertEqual(owners[q], port, q)
        for q in names:
            r = self.put(d, q, b"p-" + q.encode(), priority=1)
            self.assertEqual(r.status, 201, r)
            r = self.req(d, "POST", tq.qs("/queues/%s/jobs" % q, delay=0.2), body=b"later")
            self.assertEqual(r.status, 201, r)
            got = self.reserve(d, q)
            self.assertEqual(got.status, 200, got)
            self.assertEqual(got.body, b"p-" + q.encode())
            self.assertEqual(self.ack(d, q, int(got.header("Job-Id"))).status, 200)
            got = self.reserve(d, q, wait=5)  # the delayed one, woken by its due time
            self.assertEqual(got.body, b"later")
            self.assertEqual(self.ack(d, q, int(got.header("Job-Id"))).status, 200)
            st = self.stats(d, q)
            self.assertEqual((st["total_put"], st["total_acked"], st["unfinished"]), (2, 2, 0))
        metrics = d.http("GET", "/metrics").body.decode()
        self.assertIn("awaitd_redis_masters 3\n", metrics)
        self.assertIn("awaitd_redis_degraded 0\n", metrics)
        # The directory (one key, its own slot) lists queues of every master.
        r = self.req(d, "GET", "/queues?limit=1000")
        self.assertEqual(r.status, 200, r)
        listed = {q["name"] for q in r.json()["queues"]}
        self.assertTrue(set(names) <= listed, (names, listed))
        # The function library is on every master, one version.
        versions = {resp(n.port, "FCALL", "awaitd_version", "0") for n in self.cluster.masters()}
        self.assertEqual(len(versions), 1, versions)
        self.assertFalse(next(iter(versions)).startswith("-"), versions)
        # One SUBSCRIBE (on one node) hears the PUBLISHes of every master: a reserve waiting on
        # B is woken by a put on A for a queue of each master.
        b = self.node()
        self.wait_health(b, "ok")
        for q in [qs[0] for qs in by_master.values()]:
            fut = self.bg(self.reserve, b, q, wait=10, timeout=15)
            time.sleep(0.3)
            self.assertFalse(fut.done(), "the reserve did not wait")
            t0 = time.monotonic()
            self.assertEqual(self.put(d, q, b"wake").status, 201)
            r, t1 = fut.result(15)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"wake")
            # The safety re-check runs once a second: well under that, the notification woke it.
            self.assertLess(t1 - t0, 0.5, "woken only after %.3f s (%s)" % (t1 - t0, q))
        # A master that lost the library (FUNCTION FLUSH) gets it back: each master is checked
        # and loaded, not only the first.
        for qs in by_master.values():
            q = qs[0]
            owner = self.cluster.owner("{awaitd:%s}:m" % q)
            self.assertEqual(resp(owner.port, "FUNCTION", "FLUSH"), "+OK")
            deadline = time.monotonic() + 15
            while self.put(d, q, b"again").status != 201:
                self.assertLess(time.monotonic(), deadline, "the library was not loaded on %d"
                                % owner.port)
                time.sleep(0.05)

    def node_id(self, n):
        return resp(n.port, "CLUSTER", "MYID")

    def move_slot(self, slot, src, dst, midway=None):
        """Move slot (and its keys) from master src to master dst, as redis-cli --cluster
        reshard does: IMPORTING/MIGRATING, MIGRATE of every key, then SETSLOT NODE everywhere.
        midway() runs when the keys are on dst but the slot is still src's (ASK time)."""
        sid, did = self.node_id(src), self.node_id(dst)
        self.assertEqual(resp(dst.port, "CLUSTER", "SETSLOT", slot, "IMPORTING", sid), "+OK")
        self.assertEqual(resp(src.port, "CLUSTER", "SETSLOT", slot, "MIGRATING", did), "+OK")
        while True:
            keys = resp(src.port, "CLUSTER", "GETKEYSINSLOT", slot, 100)
            if not keys:
                break
            r = resp(src.port, "MIGRATE", HOST, dst.port, "", 0, 5000, "KEYS", *keys)
            self.assertEqual(r, "+OK", r)
        if midway:
            midway()
        for n in self.cluster.masters():
            self.assertEqual(resp(n.port, "CLUSTER", "SETSLOT", slot, "NODE", did), "+OK")

    def test_slot_moved_while_running_ask_then_moved_followed(self):
        d = self.node()
        self.wait_health(d, "ok")
        q = "moving"
        self.declare(d, q)
        self.assertEqual(self.put(d, q, b"before").status, 201)
        key = "{awaitd:%s}:m" % q
        src = self.cluster.owner(key)
        dst = [n for n in self.cluster.masters() if n.port != src.port][0]
        slot = resp(src.port, "CLUSTER", "KEYSLOT", key)

        def midway():
            # The keys are on dst, the slot still src's: src answers ASK, the call is sent to
            # dst after ASKING (the map does not change).
            r = self.put(d, q, b"midway")
            self.assertEqual(r.status, 201, r)
            self.assertEqual(resp_asking(dst.port, "HLEN", "{awaitd:%s}:p" % q), 2)
        self.move_slot(slot, src, dst, midway)
        self.assertEqual(self.cluster.owner(key).port, dst.port)
        # awaitd still routes the slot to src, which answers MOVED: the command is resent to
        # dst at once, so the very first calls succeed.
        r = self.put(d, q, b"after")
        self.assertEqual(r.status, 201, r)
        got = self.reserve(d, q)
        self.assertEqual((got.status, got.body), (200, b"before"), got)
        self.assertEqual(self.ack(d, q, int(got.header("Job-Id"))).status, 200)
        for want in (b"midway", b"after"):
            got = self.reserve(d, q)
            self.assertEqual((got.status, got.body), (200, want), got)
            self.assertEqual(self.ack(d, q, int(got.header("Job-Id"))).status, 200)
        st = self.stats(d, q)
        self.assertEqual((st["total_put"], st["total_acked"], st["unfinished"]), (3, 3, 0))

    def test_manual_failover_followed(self):
        # CLUSTER FAILOVER on a replica: the old master stays up (now a replica) and answers
        # MOVED to a master awaitd never connected to; awaitd connects, sends the call there,
        # checks the library there, and the queue goes on with its jobs.
        d = self.node()
        self.wait_health(d, "ok")
        q = "handover"
        self.declare(d, q)
        for i in range(5):
            self.assertEqual(self.put(d, q, b"j%d" % i).status, 201)
        old = self.cluster.owner("{awaitd:%s}:m" % q)
        replica = [n for n in self.cluster.alive() if n not in self.cluster.masters() and
                   "master_port:%d\r" % old.port in resp(n.port, "INFO", "replication")][0]
        self.assertEqual(resp(replica.port, "CLUSTER", "FAILOVER"), "+OK")
        deadline = time.monotonic() + 30
        while "role:master" not in resp(replica.port, "INFO", "replication"):
            self.assertLess(time.monotonic(), deadline, "the replica was not promoted")
            time.sleep(0.05)
        # The old master answers MOVED to the new one, which awaitd has not connected to: the
        # call waits for that connection and goes there. No call fails.
        r = self.put(d, q, b"after")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.cluster.owner("{awaitd:%s}:m" % q).port, replica.port)
        got = []
        while True:
            r = self.reserve(d, q)
            if r.status == 204:
                break
            self.assertEqual(r.status, 200, r)
            got.append(r.body)
            self.assertEqual(self.ack(d, q, int(r.header("Job-Id"))).status, 200)
        self.assertEqual(got[:5], [b"j%d" % i for i in range(5)])
        self.assertIn(b"after", got[5:])
        self.wait_health(d, "ok")
        self.assertIn("awaitd_redis_masters 3\n", d.http("GET", "/metrics").body.decode())

    def test_master_killed_replica_promoted_no_201_lost(self):
        d = self.node({"redis": {"replicas_ack": "1", "command_timeout": "1s"}})
        self.wait_health(d, "ok")
        by_master = self.spread_queues(per_master=1)
        # The victim: the master d's subscriber connection is on, so both the queue on it and
        # the wake-ups have to move.
        subs = [n for n in self.cluster.masters()
                if resp(n.port, "PUBSUB", "NUMSUB", "awaitd:events")[1] > 0]
        self.assertEqual(len(subs), 1, "the subscriber is not on one master")
        victim = subs[0]
        victim_port = victim.port
        names = by_master[victim_port] + [qs[0] for p, qs in by_master.items()
                                          if p != victim_port]
        for q in names:
            self.declare(d, q)
        put_ok = {q: set() for q in names}
        for q in names:
            for i in range(20):
                r = self.put(d, q, ("%s-%d" % (q, i)).encode())
                self.assertEqual(r.status, 201, r)
                put_ok[q].add("%s-%d" % (q, i))
        # Kill the master of the first queue while producers keep putting to it (and the loop
        # below to every queue).
        self.assertEqual(self.cluster.owner("{awaitd:%s}:m" % names[0]).port, victim_port)
        heir = [n for n in self.cluster.alive() if n not in self.cluster.masters() and
                "master_port:%d\r" % victim_port in resp(n.port, "INFO", "replication")][0]
        stop = self.stop  # set by tearDown too, before it waits for the producers

        def producer(k):
            kept, n = set(), 0
            while not stop.is_set():
                payload = "%s-p%d-%d" % (names[0], k, n)
                n += 1
                try:
                    r = self.req(d, "POST", "/queues/%s/jobs" % names[0], body=payload.encode())
                except OSError:
                    continue
                if r.status == 201:
                    kept.add(payload)
            return kept
        producers = [self.pool.submit(producer, k) for k in range(4)]
        time.sleep(0.3)
        victim.kill()
        saw_degraded = None
        deadline = time.monotonic() + 60
        i = 20
        ok_after = {q: 0 for q in names}
        restarted = False
        last_err = None
        while any(v < 3 for v in ok_after.values()):
            if time.monotonic() > deadline:
                self.fail("operations did not pass again after the failover: %r; last error %r;"
                          " awaitd's log ends:\n%s" % (ok_after, last_err, d.stderr()[-3000:]))
            for q in names:
                payload = "%s-%d" % (q, i)
                r = self.put(d, q, payload.encode())
                if r.status == 201:
                    # Before the killed node is back, the promoted replica has no replica of
                    # its own: replicas_ack = 1 cannot be met, so no 201 on its queue.
                    self.assertTrue(restarted or q != names[0], "a 201 without a replica")
                    put_ok[q].add(payload)
                    ok_after[q] += 1
                    continue
                # Not a 201: unknown (maybe applied), never counted as kept.
                self.assertEqual(r.status, 503, r)
                err = last_err = r.json()["error"]
                self.assertIn("redis", err)
            if not restarted and "role:master" in resp(heir.port, "INFO", "replication"):
                # The replica took over: bring the killed node back (it rejoins as the new
                # master's replica, so replicas_ack can be met again).
                victim.start()
                restarted = True
            i += 1
            if saw_degraded is None:
                h = d.http("GET", "/health", timeout=5).json()
                if h.get("status") == "degraded":
                    saw_degraded = h
            time.sleep(0.05)
        stop.set()
        for f in producers:
            put_ok[names[0]] |= f.result(30)
        self.assertTrue(restarted)
        self.assertIsNotNone(saw_degraded, "/health never said degraded during the failover")
        self.assertIn("redis", saw_degraded.get("why", json.dumps(saw_degraded)))
        # The replica took over the victim's slots.
        new_owner = self.cluster.owner("{awaitd:%s}:m" % names[0])
        self.assertIsNotNone(new_owner)
        self.assertNotEqual(new_owner.port, victim_port)
        self.wait_health(d, "ok")
        # Every job that got a 201 is there (replicas_ack = 1: it was on the replica before the
        # answer), and the queue works end to end: reserve all, ack all.
        for q in names:
            got = set()
            while True:
                r = self.reserve(d, q, count=50)
                if r.status == 204:
                    break
                self.assertEqual(r.status, 200, r)
                for jid, _, _, _, payload in tq.parse_frames(r.body):
                    got.add(payload.decode())
                    self.assertEqual(self.ack(d, q, jid).status, 200)
            self.assertEqual(put_ok[q] - got, set(), "jobs lost on %s" % q)
            self.assertEqual(self.stats(d, q)["unfinished"], 0)
        # A second node started now works too, and d's subscription moved off the dead node:
        # a reserve waiting on d is woken by a put on b.
        b = self.node()
        self.wait_health(b, "ok")
        fut = self.bg(self.reserve, d, names[0], wait=10, timeout=15)
        time.sleep(0.3)
        self.assertFalse(fut.done(), "the reserve did not wait")
        t0 = time.monotonic()
        self.assertEqual(self.put(b, names[0], b"after").status, 201)
        r, t1 = fut.result(15)
        self.assertEqual((r.status, r.body), (200, b"after"), r)
        self.assertLess(t1 - t0, 0.5, "woken only after %.3f s" % (t1 - t0))


if __name__ == "__main__":
    awaitd_test.main()
