"""[server] workers = N (issue 18): N event loops, one listener each on the
same port (SO_REUSEPORT), probes served on every worker, queues and timers
owned by worker 0 and reached from the other workers through the hop
(docs/ARCHITECTURE.md, "Workers").

The kernel spreads connections over the workers by a hash of the addresses,
so no test can pick a worker for a connection: each opens CONNS connections
(the chance that all of them land on one of two workers is 2 / 2**CONNS) and
checks, from the per-worker metrics, that both workers had some.
"""

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import unittest

import test_logs
import test_systemd
from awaitd_test import (AWAITD, HOST, Daemon, PooledJournalTestCase, RawConn, free_port,
                         journal_daemon)

CONNS = 16
RESERVE = b"POST /queues/%s/reserve?wait=%d HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"


def per_worker(m, name):
    """{worker: value} of a per-worker metric."""
    out = {}
    for k, v in m.items():
        if k.startswith(name + "{worker=\""):
            out[int(k.split('"')[1])] = v
    return out


class WorkersTest(PooledJournalTestCase):
    config = {"server": {"workers": "2"}}
    tmp_prefix = "awaitd-w-"
    pool_workers = 2 * CONNS

    def newq(self):
        name = "%s-%d" % (self._testMethodName[5:][:40], next(type(self)._names))
        r = self.d.http("PUT", "/queues/" + name)
        self.assertEqual(r.status, 201, r)
        return name

    def conns(self, n=CONNS):
        cs = [RawConn(self.d.port, timeout=30) for _ in range(n)]
        for c in cs:
            self.addCleanup(c.close)
        return cs

    def get(self, c, path):
        c.send(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())
        return c.read_response()

    def assertBothWorkers(self, name="awaitd_worker_connections_open"):
        m = self.d.metrics()
        w = per_worker(m, name)
        self.assertEqual(sorted(w), [0, 1], m)
        self.assertTrue(all(v > 0 for v in w.values()), "%s: %r" % (name, w))
        return m

    def test_connections_spread_and_probes_on_both_workers(self):
        before = per_worker(self.d.metrics(), "awaitd_worker_requests_total")
        cs = self.conns()
        for i, c in enumerate(cs):
            r = self.get(c, "/get?n=%d" % i)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["args"], {"n": str(i)})
            r = self.get(c, "/status/418")
            self.assertEqual(r.status, 418, r)
            r = self.get(c, "/bytes/200000")  # streamed on the worker in slices
            self.assertEqual((r.status, len(r.body)), (200, 200000))
        m = self.assertBothWorkers()
        # Every connection's requests were answered where it lives: both counts grew.
        after = per_worker(m, "awaitd_worker_requests_total")
        self.assertTrue(all(after[w] > before.get(w, 0) for w in (0, 1)), (before, after))
        # The plain counters are the sum over the workers.
        open_ = per_worker(m, "awaitd_worker_connections_open")
        self.assertEqual(m["awaitd_connections_open"], sum(open_.values()), m)
        total = sum(v for k, v in m.items() if k.startswith("awaitd_requests_total{"))
        self.assertEqual(total, sum(after.values()), m)

    def test_delay_on_every_worker(self):
        cs = self.conns()
        t0 = time.monotonic()
        for c in cs:
            c.send(b"GET /delay/1 HTTP/1.1\r\nHost: t\r\n\r\n")
        # The gauge is the sum of every worker's waiting delays.
        self.d.wait_metric("awaitd_delays_pending", lambda v: v == CONNS)
        self.assertBothWorkers()
        for c in cs:
            self.assertEqual(c.read_response().status, 200)
        # Concurrent, not one after the other on one loop.
        self.assertLess(time.monotonic() - t0, 5.0)

    def test_health_and_metrics_from_every_worker(self):
        cs = self.conns()
        for c in cs:  # every connection accepted before they are counted
            self.assertEqual(self.get(c, "/get").status, 200)
        for c in cs:
            r = self.get(c, "/health")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["status"], "ok")
            self.assertGreaterEqual(r.json()["connections"], CONNS)
            r = self.get(c, "/metrics")
            self.assertEqual(r.status, 200, r)
            self.assertIn(b"awaitd_worker_hops_total", r.body)
        self.assertBothWorkers()

    def test_put_on_one_connection_reserve_on_another(self):
        q = self.newq()
        hops0 = self.d.metric("awaitd_worker_hops_total")
        cs = self.conns()
        for i, c in enumerate(cs):
            c.send(b"POST /queues/%s/jobs HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\njob%d"
                   % (q.encode(), len(b"job%d" % i), i))
            r = c.read_response()
            self.assertEqual(r.status, 201, r)
        got = set()
        for c in reversed(cs):
            c.send(RESERVE % (q.encode(), 0))
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            got.add(r.body)
            jid = r.header("Job-Id")
            c.send(b"POST /queues/%s/jobs/%s/ack HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
                   % (q.encode(), jid.encode()))
            self.assertEqual(c.read_response().status, 200)
        self.assertEqual(got, {b"job%d" % i for i in range(CONNS)})
        self.assertBothWorkers()
        # Some of them went through the hop (those on worker 1).
        self.assertGreater(self.d.metric("awaitd_worker_hops_total"), hops0)
        self.assertEqual(self.stats(q)["unfinished"], 0)

    def stats(self, q):
        r = self.d.http("GET", "/queues/" + q)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def wait_stats(self, q, key, want, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats(q)
            if st[key] == want or time.monotonic() > deadline:
                self.assertEqual(st[key], want, st)
                return st
            time.sleep(0.05)

    def test_long_poll_woken_by_put_on_another_worker(self):
        q = self.newq()
        cs = self.conns()
        for c in cs:
            c.send(RESERVE % (q.encode(), 20))
        self.wait_stats(q, "getters", CONNS)
        self.assertGreater(self.d.metric("awaitd_worker_hops_pending"), 0)
        t0 = time.monotonic()
        for i in range(CONNS):
            r = self.d.http("POST", "/queues/%s/jobs" % q, body=b"wake%d" % i)
            self.assertEqual(r.status, 201, r)
        got = set()
        for c in cs:
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            got.add(r.body)
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assertEqual(got, {b"wake%d" % i for i in range(CONNS)})
        self.assertEqual(self.d.metric("awaitd_worker_hops_pending"), 0)
        self.assertEqual(self.stats(q)["getters"], 0)

    def test_client_leaving_a_long_poll_cancels_its_waiter(self):
        q = self.newq()
        cancelled0 = self.d.metric("awaitd_worker_hops_cancelled_total")
        cs = [RawConn(self.d.port, timeout=30) for _ in range(CONNS)]
        for c in cs:
            self.addCleanup(c.close)
            c.send(RESERVE % (q.encode(), 30))
        self.wait_stats(q, "getters", CONNS)
        pending = self.d.metric("awaitd_worker_hops_pending")
        self.assertGreater(pending, 0)
        for c in cs:
            c.close()
        # Every waiter goes, those behind the hop too: none is left to eat a job.
        self.wait_stats(q, "getters", 0)
        self.d.wait_metric("awaitd_worker_hops_pending", lambda v: v == 0)
        self.assertEqual(self.d.metric("awaitd_worker_hops_cancelled_total") - cancelled0, pending)
        r = self.d.http("POST", "/queues/%s/jobs" % q, body=b"kept")
        self.assertEqual(r.status, 201, r)
        r = self.d.http("POST", "/queues/%s/reserve" % q)
        self.assertEqual((r.status, r.body), (200, b"kept"))

    def test_timers_and_awaits_from_every_worker(self):
        q = self.newq()
        r = self.d.http("POST", "/timers", body=json.dumps({"queue": q, "payload": "tick",
                                                           "after": 0.5}))
        self.assertEqual(r.status, 201, r)
        tid = r.json()["id"]
        cs = self.conns()
        for c in cs:
            c.send(b"GET /timers/%d?wait=10 HTTP/1.1\r\nHost: t\r\n\r\n" % tid)
        for c in cs:
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["state"], "completed", r)
        r = self.d.http("POST", "/queues/%s/reserve" % q)
        self.assertEqual((r.status, r.body), (200, b"tick"))
        self.assertBothWorkers()

    def test_loops_run_sched_batch(self):
        # Each loop's thread (the main one and worker 1) runs SCHED_BATCH: a
        # loop woken on a shared core does not preempt the other mid-batch.
        pid = self.d.proc.pid
        policies = {int(t): os.sched_getscheduler(int(t)) for t in os.listdir("/proc/%d/task" % pid)}
        self.assertEqual(policies[pid], os.SCHED_BATCH, policies)
        self.assertEqual(sum(p == os.SCHED_BATCH for p in policies.values()), 2, policies)


class WorkersLifecycleTest(unittest.TestCase):
    """Reload and drain with two workers: each test has its own daemon."""

    def start(self, **server):
        cfg = {"server": dict({"workers": "2", "shutdown_grace": "30s"}, **server)}
        d = journal_daemon(cfg, prefix="awaitd-wl-").start()
        self.addCleanup(d.cleanup)
        self.addCleanup(lambda: d.alive() and d._kill())
        return d

    def test_sighup_reload_reaches_every_worker(self):
        d = self.start()
        new_port = free_port()
        d.overrides["server"]["max_body"] = "100"
        d.overrides["server"]["listen"] = ["%s:%d" % (HOST, d.port), "%s:%d" % (HOST, new_port)]
        d._write_config()
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while b"configuration reloaded" not in open(d.stderr_path, "rb").read():
            self.assertLess(time.monotonic(), deadline, d.stderr())
            time.sleep(0.05)
        time.sleep(0.3)  # the workers reload from their inboxes right after
        # Every worker has the new limit (a body over it is 413 on every connection)...
        cs = [RawConn(d.port) for _ in range(CONNS)]
        for c in cs:
            self.addCleanup(c.close)
            c.send(b"POST /anything HTTP/1.1\r\nHost: t\r\nContent-Length: 200\r\n\r\n" + b"x" * 200)
            self.assertEqual(c.read_response().status, 413)
            c.close()
        # ...and listens on the new address: connections there reach both workers.
        cs = [RawConn(new_port) for _ in range(CONNS)]
        for c in cs:
            self.addCleanup(c.close)
            c.send(b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertEqual(c.read_response().status, 200)
        w = per_worker(d.metrics(), "awaitd_worker_connections_open")
        self.assertTrue(w.get(0, 0) > 0 and w.get(1, 0) > 0, w)
        for c in cs:
            c.close()
        d.stop()

    def test_sigterm_drains_every_worker(self):
        d = self.start()
        r = d.http("PUT", "/queues/dq")
        self.assertEqual(r.status, 201, r)
        cs = [RawConn(d.port, timeout=30) for _ in range(CONNS)]
        for c in cs:
            c.send(RESERVE % (b"dq", 25))
        d.wait_metric("awaitd_worker_hops_pending", lambda v: v > 0)
        deadline = time.monotonic() + 10
        while d.http("GET", "/queues/dq").json()["getters"] < CONNS:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        idle = [RawConn(d.port) for _ in range(CONNS)]
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        # Waiting reserves are answered (draining), on both workers, at once.
        for c in cs:
            r = c.read_response(timeout=10)
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.header("Connection"), "close", r)
        for c in idle:
            self.assertTrue(c.closed_within(10))
        self.assertEqual(d.wait(15), 0, d.stderr())
        self.assertLess(time.monotonic() - t0, 10, "the drain waited for the grace period")
        for c in cs + idle:
            c.close()
        d.check_stderr()


class WorkersTlsTest(unittest.TestCase):
    """TLS on two workers: handshakes, queue requests through the hop with the
    client's TLS identity, and a session ticket from one worker resuming on
    the other (one ticket key for every worker)."""

    @classmethod
    def setUpClass(cls):
        import test_tls
        cls.tls = test_tls
        if test_tls.PKI is None:
            test_tls.PKI = test_tls.Pki()
            cls.own_pki = True
        else:
            cls.own_pki = False
        cls.tls_port = free_port()
        cfg = test_tls.tls_config(cls.tls_port, test_tls.PKI.server,
                                  {"client_ca": test_tls.PKI.ca["cert"]}, {"workers": "2"})
        cfg["auth"] = {"token": "0123456789abcdef0123", "client_subject": "O=client,CN=ops"}
        cfg["metrics"] = {"public": "on"}
        cls.d = journal_daemon(cfg, prefix="awaitd-wt-").start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        if cls.own_pki:
            cls.tls.PKI.cleanup()
            cls.tls.PKI = None

    def test_tls_on_both_workers(self):
        t = self.tls
        ctx = t.client_ctx(t.PKI.client)
        r = self.d.http("PUT", "/queues/tq", headers={"Authorization": "Bearer 0123456789abcdef0123"})
        self.assertEqual(r.status, 201, r)
        first = t.TlsConn(self.tls_port, ctx=ctx)
        self.assertEqual(first.request("GET", "/get").status, 200)
        session = first.sock.session
        first.close()
        cs = [t.TlsConn(self.tls_port, ctx=ctx, session=session) for _ in range(CONNS)]
        resumed = 0
        for i, c in enumerate(cs):
            self.assertEqual(c.request("GET", "/get").status, 200)
            # The client certificate stands in for the token, through the hop too.
            r = c.request("POST", "/queues/tq/jobs", body=b"t%d" % i)
            self.assertEqual(r.status, 201, r)
            resumed += c.sock.session_reused
        for c in cs:
            r = c.request("POST", "/queues/tq/reserve")
            self.assertEqual(r.status, 200, r)
            c.close()
        w = per_worker(self.d.metrics(), "awaitd_worker_requests_total")
        self.assertTrue(w.get(0, 0) > 0 and w.get(1, 0) > 0, w)
        # Session tickets resume whichever worker took the connection.
        self.assertEqual(resumed, CONNS)


def with_workers(config, n="2"):
    cfg = {s: dict(v) for s, v in (config or {}).items()}
    cfg.setdefault("server", {}).setdefault("workers", n)
    return cfg


# The systemd and access-log suites again, with two workers: sd_notify
# (READY, RELOADING, STOPPING, STATUS, the watchdog), socket activation (the
# passed sockets shared by both workers), and access lines (one file, a
# descriptor and a buffer per worker; SIGUSR1 reopens every worker's).
class WorkersNotifyTest(test_systemd.NotifyTest):
    def daemon(self, config, env=None, **kw):
        return super().daemon(with_workers(config), env=env, **kw)


class WorkersSocketActivationTest(test_systemd.SocketActivationTest):
    def daemon(self, config, env=None, **kw):
        return super().daemon(with_workers(config), env=env, **kw)


class WorkersAccessLogTest(test_logs.AccessLogTest):
    config = with_workers(test_logs.AccessLogTest.config)


class WorkersConfigTest(unittest.TestCase):
    def check(self, text):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write(text)
            f.flush()
            return subprocess.run([AWAITD, "-T", "-c", f.name], capture_output=True, text=True,
                                  timeout=10)

    def test_auto_and_counts(self):
        p = self.check("[server]\nworkers = auto\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("workers = auto\n", p.stdout)
        p = self.check("[server]\nworkers = 3\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("workers = 3\n", p.stdout)
        p = self.check("[server]\n")
        self.assertIn("workers = 1\n", p.stdout)

    def test_bad_value_names_the_key(self):
        for bad in ("two", "-1", "1000", "1.5"):
            p = self.check("[server]\nworkers = %s\n" % bad)
            self.assertEqual(p.returncode, 1, (bad, p.stdout))
            self.assertIn("workers", p.stderr)

    def test_one_worker_is_the_single_loop(self):
        d = Daemon({"server": {"workers": "1"}}).start()
        try:
            text = d.http("GET", "/metrics").body
            self.assertNotIn(b"awaitd_worker_", text)
            self.assertNotIn("workers (event loops)", d.stderr())
            tasks = os.listdir("/proc/%d/task" % d.proc.pid)
            self.assertNotIn(os.SCHED_BATCH, [os.sched_getscheduler(int(t)) for t in tasks])
        finally:
            d.stop()

    def test_auto_runs_one_per_cpu(self):
        d = Daemon({"server": {"workers": "auto"}}).start()
        try:
            n = os.cpu_count()
            w = per_worker(d.metrics(), "awaitd_worker_connections_open")
            if n > 1:
                self.assertEqual(sorted(w), list(range(n)))
            else:
                self.assertEqual(w, {})
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
