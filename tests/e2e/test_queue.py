"""Work queues over HTTP (docs/QUEUES.md is the contract): queue management,
put / reserve / ack / nack / touch, blocking puts and gets in arrival order,
disconnecting waiters, framed batches, leases and redelivery, dead letters,
priorities, delays, idempotency keys, purge, shutdown, join, limits, bad
parameters, metrics and bearer-token authentication. Through http.client,
raw sockets and the real curl.

Each daemon journals to its own file in a temp dir. Every test uses queues of
its own (unique names), so tests do not see each other's jobs.
"""

import json
import os
import tempfile
import time
import unittest
import urllib.parse

from awaitd_test import PooledJournalTestCase, RawConn

TOKEN = "0123456789abcdef0123"
FRAMES = "application/x-awaitd-frames"
STATS_FIELDS = ("name", "size", "maxsize", "reserved", "delayed", "dead", "unfinished", "putters",
                "getters", "joiners", "total_put", "total_acked", "total_redelivered",
                "total_dead", "shutdown", "lease", "max_attempts", "max_payload")
RESERVE_REQ = b"POST /queues/%s/reserve?wait=%d HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
BINARY = bytes(range(256)) * 3 + b"\x00\x00\r\n\r\n\x00"


# ---- helpers ------------------------------------------------------------------------

def parse_frames(body):
    """A reserve's framed body -> [(id, attempt, priority, lease_deadline, payload)].
    Raises AssertionError when the framing is wrong."""
    out = []
    pos = 0
    body = bytes(body)
    while pos < len(body):
        nl = body.find(b"\n", pos)
        if nl < 0:
            raise AssertionError("frame header without a newline at %d: %r"
                                 % (pos, body[pos:pos + 80]))
        fields = body[pos:nl].split(b" ")
        if len(fields) != 5:
            raise AssertionError("frame header is not '<id> <attempt> <prio> <deadline> <len>': %r"
                                 % body[pos:nl])
        jid, attempt, prio, deadline, n = (int(fields[0]), int(fields[1]), int(fields[2]),
                                           float(fields[3]), int(fields[4]))
        start = nl + 1
        if len(body) < start + n + 1:
            raise AssertionError("frame payload of %d bytes runs past the body (%d bytes)"
                                 % (n, len(body)))
        if body[start + n:start + n + 1] != b"\n":
            raise AssertionError("frame payload not followed by a newline: %r"
                                 % body[start + n:start + n + 10])
        out.append((jid, attempt, prio, deadline, body[start:start + n]))
        pos = start + n + 1
    return out


def frame_put(payloads):
    return b"".join(b"%d\n%s\n" % (len(p), p) for p in payloads)


def qs(path, **params):
    if not params:
        return path
    return path + "?" + urllib.parse.urlencode(params)


class QueueCase(PooledJournalTestCase):
    """One daemon per class, journaling to <its own temp dir>/j."""

    tmp_prefix = "awaitd-q-"
    fsync = "off"
    token = None
    pool_workers = 32

    # -- requests --
    def h(self, method, path, body=None, headers=None, timeout=10.0, auth=True):
        hdrs = dict(headers or {})
        if self.token and auth:
            hdrs.setdefault("Authorization", "Bearer " + self.token)
        return self.d.http(method, path, body=body, headers=hdrs, timeout=timeout)

    def bg(self, fn, *args, **kw):
        """Run fn in a thread; a future whose result is (Response or exception, t_done)."""
        def run():
            try:
                r = fn(*args, **kw)
            except Exception as e:  # noqa: BLE001 - reported by the test
                r = e
            return r, time.monotonic()
        return self.pool.submit(run)

    def newq(self, settings=None, expect=201):
        name = "%s-%d" % (self._testMethodName[5:][:50], next(type(self)._names))
        body = json.dumps(settings) if settings is not None else None
        r = self.h("PUT", "/queues/" + name, body=body,
                   headers={"Content-Type": "application/json"} if body else None)
        self.assertEqual(r.status, expect, "PUT /queues/%s %s: %r" % (name, body, r))
        return name

    def put(self, q, payload=b"x", expect=201, headers=None, timeout=10.0, **params):
        r = self.h("POST", qs("/queues/%s/jobs" % q, **params), body=payload, headers=headers,
                   timeout=timeout)
        if expect is not None:
            self.assertEqual(r.status, expect, "put %r %r: %r" % (q, params, r))
        if r.status in (200, 201):
            return r.json()["id"]
        return r

    def reserve(self, q, timeout=10.0, **params):
        params.setdefault("wait", 0)
        return self.h("POST", qs("/queues/%s/reserve" % q, **params), timeout=timeout)

    def reserve_ok(self, q, **params):
        r = self.reserve(q, **params)
        self.assertEqual(r.status, 200, "reserve %s %r: %r" % (q, params, r))
        return int(r.header("Job-Id")), int(r.header("Job-Attempt")), r

    def job(self, q, jid, verb, expect=200, **params):
        r = self.h("POST", qs("/queues/%s/jobs/%d/%s" % (q, jid, verb), **params))
        if expect is not None:
            self.assertEqual(r.status, expect, "%s job %d of %s %r: %r" % (verb, jid, q, params, r))
        return r

    def stats(self, q):
        r = self.h("GET", "/queues/" + q)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def wait_stats(self, q, key, pred, timeout=5.0):
        """Poll GET /queues/q until pred(stats[key]); returns the stats."""
        if not callable(pred):
            want = pred
            pred = lambda v: v == want  # noqa: E731
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats(q)
            if pred(st.get(key)):
                return st
            if time.monotonic() > deadline:
                self.fail("queue %s: %s did not reach the expected value within %.1f s; stats %r"
                          % (q, key, timeout, st))
            time.sleep(0.02)

    def result(self, fut, timeout=15.0):
        r, t = fut.result(timeout)
        if isinstance(r, Exception):
            raise AssertionError("background request failed: %r" % (r,))
        return r, t

    def assertErr(self, r, *statuses):
        self.assertIn(r.status, statuses, "expected %s, got %r" % (statuses, r))
        return self.assertJsonError(r)


# ---- the main class -------------------------------------------------------------------

class QueueApiTest(QueueCase):
    config = {"queues": {"max_wait": "20s"}}
    extra_config = ("[queue declared.q]\nmaxsize = 3\nlease = 2s\nmax_attempts = 4\n"
                    "max_payload = 1k\n")

    # ---- queues: create, stats, list, delete ----------------------------------------

    def test_create_update_stats(self):
        name = "create_q.x-1"
        r = self.h("PUT", "/queues/" + name,
                   body=json.dumps({"maxsize": 7, "lease": 0.5, "max_attempts": 3,
                                    "max_payload": 4096}),
                   headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 201, r)
        self.assertIn("application/json", r.header("Content-Type", ""))
        st = r.json()
        for f in STATS_FIELDS:
            self.assertIn(f, st, "stats field %s missing: %r" % (f, st))
        self.assertEqual(st["name"], name)
        self.assertEqual(st["maxsize"], 7)
        self.assertAlmostEqual(float(st["lease"]), 0.5, places=3)
        self.assertEqual(st["max_attempts"], 3)
        self.assertEqual(st["max_payload"], 4096)
        for f in ("size", "reserved", "delayed", "dead", "unfinished", "putters", "getters",
                  "joiners", "total_put", "total_acked", "total_redelivered", "total_dead"):
            self.assertEqual(st[f], 0, "%s of a new queue: %r" % (f, st))
        self.assertFalse(st["shutdown"])
        # again: 200, settings updated
        r = self.h("PUT", "/queues/" + name, body=json.dumps({"maxsize": 9}),
                   headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["maxsize"], 9)
        st = self.stats(name)
        self.assertEqual(st["maxsize"], 9)
        for f in STATS_FIELDS:
            self.assertIn(f, st)
        # no body: default settings, 201
        r = self.h("PUT", "/queues/create_q.default")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json()["name"], "create_q.default")
        self.assertEqual(self.h("PUT", "/queues/create_q.default").status, 200)

    def test_create_bad_settings(self):
        for body in (b"not json", b"[1]", b'{"maxsize": -1}', b'{"maxsize": "x"}',
                     b'{"lease": 0}', b'{"lease": -1}', b'{"lease": "abc"}',
                     b'{"max_payload": -5}', b'{"maxsize": 1', b'{"max_attempts": -1}'):
            with self.subTest(body=body):
                r = self.h("PUT", "/queues/badsettings", body=body,
                           headers={"Content-Type": "application/json"})
                self.assertErr(r, 400)
        self.assertEqual(self.h("GET", "/queues/badsettings").status, 404,
                         "a refused PUT must not create the queue")

    def test_create_unknown_setting(self):
        r = self.h("PUT", "/queues/unknownsetting", body=b'{"maxsize": 1, "bogus": 2}',
                   headers={"Content-Type": "application/json"})
        self.assertErr(r, 400)
        self.assertIn("bogus", r.json()["error"])

    def test_fractional_counts_refused_naming_the_setting(self):
        # 2.7 used to become maxsize 2 and 0.5 max_attempts 0 (unlimited).
        for key, value in (("maxsize", 2.7), ("max_attempts", 0.5), ("max_payload", 100.5)):
            with self.subTest(key=key):
                r = self.h("PUT", "/queues/fractional", body=json.dumps({key: value}).encode(),
                           headers={"Content-Type": "application/json"})
                self.assertErr(r, 400)
                self.assertIn(key, r.json()["error"])
                self.assertIn("whole number", r.json()["error"])
        self.assertEqual(self.h("GET", "/queues/fractional").status, 404)
        # Whole numbers written with a fraction part of zero are whole; seconds may be fractions.
        r = self.h("PUT", "/queues/fractional", body=b'{"maxsize": 3.0, "lease": 0.25}',
                   headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json()["maxsize"], 3)
        self.assertEqual(r.json()["lease"], 0.25)

    def test_out_of_range_setting_names_it(self):
        r = self.h("PUT", "/queues/outofrange", body=b'{"lease": 0}',
                   headers={"Content-Type": "application/json"})
        self.assertErr(r, 400)
        self.assertIn("lease", r.json()["error"])

    def test_update_maxsize_serves_waiting_putter(self):
        q = self.newq({"maxsize": 1})
        self.put(q, b"a")
        fut = self.bg(self.put, q, b"b", expect=None, wait=5, timeout=15)
        self.wait_stats(q, "putters", 1)
        r = self.h("PUT", "/queues/" + q, body=b'{"maxsize": 2}',
                   headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        jid, _ = self.result(fut, 5)
        self.assertIsInstance(jid, int, "the waiting put: %r" % (jid,))
        self.assertEqual(self.stats(q)["size"], 2)

    def test_list(self):
        a, b = self.newq(), self.newq({"maxsize": 4})
        r = self.h("GET", "/queues")
        self.assertEqual(r.status, 200, r)
        self.assertIn("application/json", r.header("Content-Type", ""))
        lst = r.json()["queues"]
        self.assertIsInstance(lst, list)
        by = {s["name"]: s for s in lst}
        self.assertIn(a, by)
        self.assertIn(b, by)
        self.assertEqual(by[b]["maxsize"], 4)
        for f in STATS_FIELDS:
            self.assertIn(f, by[a])

    def test_declared_in_config(self):
        st = self.stats("declared.q")
        self.assertEqual(st["maxsize"], 3)
        self.assertAlmostEqual(float(st["lease"]), 2.0, places=3)
        self.assertEqual(st["max_attempts"], 4)
        self.assertEqual(st["max_payload"], 1024)
        names = [s["name"] for s in self.h("GET", "/queues").json()["queues"]]
        self.assertIn("declared.q", names)

    def test_delete(self):
        q = self.newq()
        self.put(q, b"one")
        r = self.h("DELETE", "/queues/" + q)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"deleted": q})
        self.assertErr(self.h("GET", "/queues/" + q), 404)
        self.assertErr(self.h("DELETE", "/queues/" + q), 404)
        self.assertErr(self.reserve(q), 404)
        self.assertNotIn(q, [s["name"] for s in self.h("GET", "/queues").json()["queues"]])
        # created again: empty
        r = self.h("PUT", "/queues/" + q)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json()["size"], 0)
        self.assertEqual(self.reserve(q).status, 204)

    def test_delete_wakes_waiters_with_410(self):
        qg = self.newq()
        qp = self.newq({"maxsize": 1})
        qj = self.newq()
        self.put(qp, b"full")
        self.put(qj, b"unfinished")
        g = self.bg(self.reserve, qg, wait=10, timeout=20)
        p = self.bg(self.put, qp, b"waits", expect=None, wait=10, timeout=20)
        j = self.bg(self.h, "GET", "/queues/%s/join?wait=10" % qj, timeout=20)
        self.wait_stats(qg, "getters", 1)
        self.wait_stats(qp, "putters", 1)
        self.wait_stats(qj, "joiners", 1)
        t0 = time.monotonic()
        for q in (qg, qp, qj):
            self.assertEqual(self.h("DELETE", "/queues/" + q).status, 200)
        for name, fut in (("getter", g), ("putter", p), ("joiner", j)):
            r, t = self.result(fut, 5)
            with self.subTest(name):
                self.assertErr(r, 410)
                self.assertLess(t - t0, 2.0, "%s answered %.2f s after the delete" % (name, t - t0))

    # ---- names -------------------------------------------------------------------

    def test_bad_names(self):
        ok = "n" * 64
        self.assertEqual(self.h("PUT", "/queues/" + ok).status, 201)
        self.assertEqual(self.h("GET", "/queues/" + ok).status, 200)
        bad = ["n" * 65, "a%20b", "a!b", "a*b", "a:b", "a~b", "a%2Fb", "%C3%A4", "a%00b", "a$b",
               "a'b", "a,b", "a@b", ".", ".."]
        for name in bad:
            with self.subTest(name=name):
                self.assertErr(self.h("PUT", "/queues/" + name), 400)
                self.assertErr(self.h("GET", "/queues/" + name), 400)
                self.assertErr(self.h("POST", "/queues/%s/jobs" % name, body=b"x"), 400)
                self.assertErr(self.h("POST", "/queues/%s/reserve?wait=0" % name), 400)
        for s in self.h("GET", "/queues").json()["queues"]:
            self.assertRegex(s["name"], r"^[A-Za-z0-9_.-]{1,64}$")

    def test_unknown_queue_404_everywhere(self):
        for method, path in (("GET", "/queues/nope"), ("DELETE", "/queues/nope"),
                             ("POST", "/queues/nope/purge"), ("POST", "/queues/nope/shutdown"),
                             ("GET", "/queues/nope/join?wait=0"), ("GET", "/queues/nope/dead"),
                             ("POST", "/queues/nope/dead/requeue"),
                             ("POST", "/queues/nope/dead/purge"),
                             ("POST", "/queues/nope/jobs"), ("POST", "/queues/nope/jobs?batch=1"),
                             ("POST", "/queues/nope/reserve?wait=0"),
                             ("POST", "/queues/nope/reserve?wait=1"),
                             ("POST", "/queues/nope/jobs/1/ack"),
                             ("POST", "/queues/nope/jobs/1/nack"),
                             ("POST", "/queues/nope/jobs/1/touch"),
                             ("GET", "/queues/nope/jobs/1")):
            with self.subTest(method=method, path=path):
                # (An ack or nack with a body carries a result or an error text: test_results.py.)
                body = (b"1\nx\n" if "batch" in path else None if path.endswith("ack")
                        else b"x" if method == "POST" else None)
                t0 = time.monotonic()
                r = self.h(method, path, body=body)
                self.assertErr(r, 404)
                self.assertLess(time.monotonic() - t0, 0.8, "404 must not wait")

    def test_unknown_job_404(self):
        q = self.newq()
        for method, verb in (("POST", "ack"), ("POST", "nack"), ("POST", "touch"), ("GET", "")):
            with self.subTest(verb=verb):
                path = "/queues/%s/jobs/987654321%s" % (q, "/" + verb if verb else "")
                self.assertErr(self.h(method, path, body=b"" if method == "POST" else None), 404)

    # ---- put ---------------------------------------------------------------------

    def test_put(self):
        q = self.newq()
        r = self.h("POST", "/queues/%s/jobs" % q, body=b"hello")
        self.assertEqual(r.status, 201, r)
        self.assertIn("application/json", r.header("Content-Type", ""))
        jid = r.json()["id"]
        self.assertIsInstance(jid, int)
        self.assertEqual(r.header("Job-Id"), str(jid))
        loc = r.header("Location")
        self.assertIsNotNone(loc, r)
        self.assertTrue(loc.endswith("/queues/%s/jobs/%d" % (q, jid)), loc)
        g = self.h("GET", urllib.parse.urlsplit(loc).path)
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.body, b"hello")
        self.assertEqual(g.header("Job-Id"), str(jid))
        self.assertIsNotNone(g.header("Job-State"), g)
        self.assertEqual(g.header("Job-Attempt"), "0")
        self.assertEqual(g.header("Job-Priority"), "0")
        jid2 = self.put(q, b"again")
        self.assertGreater(jid2, jid)
        st = self.stats(q)
        self.assertEqual((st["size"], st["unfinished"], st["total_put"]), (2, 2, 2), st)

    def test_put_empty_and_binary_payloads(self):
        q = self.newq()
        self.put(q, b"")
        self.put(q, BINARY, headers={"Content-Type": "application/octet-stream"})
        jid, _, r = self.reserve_ok(q)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.header("Content-Length"), "0")
        jid2, _, r = self.reserve_ok(q)
        self.assertEqual(r.body, BINARY)
        self.job(q, jid, "ack")
        self.job(q, jid2, "ack")

    def test_put_chunked_body(self):
        q = self.newq()
        with self.d.connect() as c:
            c.send(b"POST /queues/%s/jobs HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" % q.encode())
            r = c.read_response()
        self.assertEqual(r.status, 201, r)
        _, _, r = self.reserve_ok(q)
        self.assertEqual(r.body, b"hello world")

    def test_put_nowait_full_503(self):
        q = self.newq({"maxsize": 2})
        self.put(q, b"1")
        self.put(q, b"2")
        t0 = time.monotonic()
        r = self.put(q, b"3", expect=503)
        self.assertLess(time.monotonic() - t0, 0.8, "put_nowait must answer at once")
        self.assertJsonError(r)
        self.assertRegex(r.header("Retry-After", ""), r"^\d+$", r)
        r = self.put(q, b"3", expect=503, wait=0)
        self.assertRegex(r.header("Retry-After", ""), r"^\d+$", r)
        st = self.stats(q)
        self.assertEqual((st["size"], st["total_put"]), (2, 2), st)

    def test_blocking_put_waits_in_order(self):
        q = self.newq({"maxsize": 2})
        self.put(q, b"1")
        self.put(q, b"2")
        a = self.bg(self.put, q, b"A", expect=None, wait=5, timeout=15)
        self.wait_stats(q, "putters", 1)
        b = self.bg(self.put, q, b"B", expect=None, wait=5, timeout=15)
        self.wait_stats(q, "putters", 2)
        time.sleep(0.2)
        self.assertFalse(a.done() or b.done(), "a put on a full queue answered without waiting")
        # one consumer takes and finishes one job: room for the first putter only
        jid, _, r = self.reserve_ok(q)
        self.assertEqual(r.body, b"1")
        self.job(q, jid, "ack")
        ida, _ = self.result(a, 3)
        self.assertIsInstance(ida, int, "first waiting put: %r" % (ida,))
        time.sleep(0.2)
        self.assertFalse(b.done(), "the second putter got in although the queue is full again")
        self.assertEqual(self.stats(q)["putters"], 1)
        jid, _, r = self.reserve_ok(q)
        self.assertEqual(r.body, b"2")
        self.job(q, jid, "ack")
        idb, _ = self.result(b, 3)
        self.assertIsInstance(idb, int, "second waiting put: %r" % (idb,))
        self.assertLess(ida, idb, "putters not served in arrival order")
        self.assertEqual([self.reserve_ok(q)[2].body for _ in range(2)], [b"A", b"B"])

    def test_blocking_put_answer_is_201_with_id(self):
        q = self.newq({"maxsize": 1})
        self.put(q, b"1")
        fut = self.bg(self.h, "POST", "/queues/%s/jobs?wait=5" % q, body=b"late", timeout=15)
        self.wait_stats(q, "putters", 1)
        self.reserve_ok(q)
        r, _ = self.result(fut, 3)
        self.assertEqual(r.status, 201, r)
        jid = r.json()["id"]
        self.assertEqual(r.header("Job-Id"), str(jid))
        self.assertTrue(r.header("Location", "").endswith("/jobs/%d" % jid), r)

    def test_blocking_put_timeout_503(self):
        q = self.newq({"maxsize": 1})
        self.put(q, b"1")
        t0 = time.monotonic()
        r = self.put(q, b"2", expect=503, wait=1)
        took = time.monotonic() - t0
        self.assertJsonError(r)
        self.assertRegex(r.header("Retry-After", ""), r"^\d+$", r)
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 3.0)
        st = self.stats(q)
        self.assertEqual((st["size"], st["putters"], st["total_put"]), (1, 0, 1), st)

    def test_putter_disconnect_is_dropped(self):
        q = self.newq({"maxsize": 1})
        self.put(q, b"1")
        c = RawConn(self.d.port, timeout=5)
        c.send(b"POST /queues/%s/jobs?wait=10 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\ngone"
               % q.encode())
        self.wait_stats(q, "putters", 1)
        c.close()
        self.wait_stats(q, "putters", 0, timeout=3)
        self.reserve_ok(q)
        time.sleep(0.2)
        st = self.stats(q)
        self.assertEqual((st["size"], st["total_put"]), (0, 1),
                         "a put whose client left was performed: %r" % st)

    # ---- reserve ----------------------------------------------------------------

    def test_reserve_payload_and_headers(self):
        q = self.newq({"lease": 30})
        jid = self.put(q, BINARY, priority=4)
        t0 = time.time()
        r = self.reserve(q)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, BINARY)
        self.assertEqual(r.header("Content-Length"), str(len(BINARY)))
        self.assertEqual(r.header("Job-Id"), str(jid))
        self.assertEqual(r.header("Job-Attempt"), "1")
        self.assertEqual(r.header("Job-Priority"), "4")
        deadline = float(r.header("Lease-Deadline"))
        self.assertLess(abs(deadline - (t0 + 30)), 2.0,
                        "Lease-Deadline %r, now %r" % (deadline, t0))
        st = self.stats(q)
        self.assertEqual((st["size"], st["reserved"], st["unfinished"]), (0, 1, 1), st)
        # lease= per reserve
        self.put(q, b"y")
        t0 = time.time()
        _, _, r = self.reserve_ok(q, lease=5)
        self.assertLess(abs(float(r.header("Lease-Deadline")) - (t0 + 5)), 2.0, r)

    def test_reserve_empty_waits_then_204(self):
        q = self.newq()
        t0 = time.monotonic()
        r = self.reserve(q, wait=0)
        self.assertEqual(r.status, 204, r)
        self.assertLess(time.monotonic() - t0, 0.8)
        self.assertEqual(r.body, b"")
        t0 = time.monotonic()
        r = self.reserve(q, wait=1)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 204, r)
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 3.0)
        t0 = time.monotonic()
        r = self.reserve(q, wait=0.3)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 204, r)
        self.assertGreaterEqual(took, 0.25)
        self.assertLess(took, 2.0)
        self.assertEqual(self.stats(q)["getters"], 0)

    def test_waiting_reserve_answered_by_put(self):
        q = self.newq()
        fut = self.bg(self.reserve, q, wait=10, timeout=20)
        self.wait_stats(q, "getters", 1)
        t0 = time.monotonic()
        jid = self.put(q, b"wake up")
        r, t = self.result(fut, 5)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"wake up")
        self.assertEqual(r.header("Job-Id"), str(jid))
        self.assertLess(t - t0, 0.5,
                        "the waiting getter got the job %.3f s after the put" % (t - t0))
        self.assertEqual(self.stats(q)["getters"], 0)

    def test_getters_in_arrival_order(self):
        q = self.newq()
        futs = []
        for i in range(4):
            futs.append(self.bg(self.reserve, q, wait=10, timeout=20))
            self.wait_stats(q, "getters", i + 1)
        for i in range(4):
            self.put(q, b"job%d" % i)
        got = []
        for f in futs:
            r, _ = self.result(f, 5)
            self.assertEqual(r.status, 200, r)
            got.append(r.body)
        self.assertEqual(got, [b"job0", b"job1", b"job2", b"job3"])

    def test_getter_disconnect_dropped(self):
        q = self.newq()
        req = RESERVE_REQ % (q.encode(), 10)
        # alone: the count goes back to 0 and the next put stays in the queue
        c = RawConn(self.d.port, timeout=5)
        c.send(req)
        self.wait_stats(q, "getters", 1)
        c.close()
        self.wait_stats(q, "getters", 0, timeout=3)
        self.put(q, b"kept")
        st = self.stats(q)
        self.assertEqual((st["size"], st["reserved"]), (1, 0), st)
        _, _, r = self.reserve_ok(q)
        self.assertEqual(r.body, b"kept")
        # a dead getter ahead of a live one: the put goes to the live one
        c = RawConn(self.d.port, timeout=5)
        c.send(req)
        self.wait_stats(q, "getters", 1)
        live = self.bg(self.reserve, q, wait=10, timeout=20)
        self.wait_stats(q, "getters", 2)
        c.close()
        self.wait_stats(q, "getters", 1, timeout=3)
        self.put(q, b"to the live one")
        r, _ = self.result(live, 5)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"to the live one")

    def test_many_getters_half_disconnect_nothing_lost(self):
        q = self.newq()
        req = RESERVE_REQ % (q.encode(), 15)
        conns = []
        for i in range(10):
            c = RawConn(self.d.port, timeout=20)
            c.send(req)
            conns.append(c)
        self.wait_stats(q, "getters", 10)
        for c in conns[::2]:
            c.close()
        self.wait_stats(q, "getters", 5, timeout=3)
        ids = [self.put(q, b"p%d" % i) for i in range(10)]
        got = []
        for c in conns[1::2]:
            r = c.read_response(timeout=5)
            self.assertEqual(r.status, 200, r)
            got.append(int(r.header("Job-Id")))
            self.job(q, got[-1], "ack")
            c.close()
        while True:
            r = self.reserve(q)
            if r.status == 204:
                break
            self.assertEqual(r.status, 200, r)
            got.append(int(r.header("Job-Id")))
            self.job(q, got[-1], "ack")
        self.assertEqual(sorted(got), ids)
        self.assertEqual(self.stats(q)["unfinished"], 0)

    def test_reserve_count_framed(self):
        q = self.newq()
        payloads = [b"a", b"two\nlines\n", b"", BINARY, b"5th"]
        ids = [self.put(q, p, priority=0) for p in payloads]
        t0 = time.time()
        r = self.reserve(q, count=3)
        self.assertEqual(r.status, 200, r)
        self.assertIn(FRAMES, r.header("Content-Type", ""), r)
        frames = parse_frames(r.body)
        self.assertEqual([f[0] for f in frames], ids[:3])
        self.assertEqual([f[4] for f in frames], payloads[:3])
        for jid, attempt, prio, deadline, _ in frames:
            self.assertEqual((attempt, prio), (1, 0))
            self.assertLess(abs(deadline - (t0 + 30)), 2.0, frames)
        r = self.reserve(q, count=3)
        self.assertEqual(r.status, 200, r)
        frames2 = parse_frames(r.body)
        self.assertEqual([f[0] for f in frames2], ids[3:])
        self.assertEqual([f[4] for f in frames2], payloads[3:])
        self.assertEqual(self.reserve(q, count=3).status, 204)
        for jid in ids:
            self.job(q, jid, "ack")
        # one job with count > 1: still framed
        jid = self.put(q, b"single")
        r = self.reserve(q, count=5)
        self.assertEqual(r.status, 200, r)
        self.assertEqual([(f[0], f[4]) for f in parse_frames(r.body)], [(jid, b"single")])
        # a waiting count reserve
        fut = self.bg(self.reserve, q, count=3, wait=10, timeout=20)
        self.wait_stats(q, "getters", 1)
        jid = self.put(q, b"woke")
        r, _ = self.result(fut, 5)
        self.assertEqual(r.status, 200, r)
        self.assertEqual([f[0] for f in parse_frames(r.body)], [jid])

    # ---- ack / nack / touch ------------------------------------------------------

    def test_ack(self):
        q = self.newq()
        jid = self.put(q, b"work")
        r = self.job(q, jid, "ack", expect=409)  # ready, not reserved
        self.assertJsonError(r)
        rid, attempt, _ = self.reserve_ok(q)
        self.assertEqual((rid, attempt), (jid, 1))
        r = self.job(q, jid, "ack")
        self.assertEqual(r.json(), {"acked": jid})
        self.assertIn("application/json", r.header("Content-Type", ""))
        r = self.job(q, jid, "ack", expect=None)
        self.assertErr(r, 404, 409)
        self.assertErr(self.h("GET", "/queues/%s/jobs/%d" % (q, jid)), 404)
        st = self.stats(q)
        self.assertEqual((st["unfinished"], st["reserved"], st["total_acked"]), (0, 0, 1), st)

    def test_ack_with_attempt(self):
        q = self.newq()
        jid = self.put(q)
        _, attempt, _ = self.reserve_ok(q)
        self.assertErr(self.job(q, jid, "ack", expect=None, attempt=attempt + 1), 409)
        self.job(q, jid, "ack", attempt=attempt)

    def test_nack_redelivers(self):
        q = self.newq()
        jid = self.put(q, b"again")
        self.reserve_ok(q)
        r = self.job(q, jid, "nack")
        self.assertEqual(r.json(), {"released": jid})
        self.assertEqual(self.stats(q)["size"], 1)
        rid, attempt, r = self.reserve_ok(q)
        self.assertEqual((rid, attempt, r.body), (jid, 2, b"again"))
        self.assertGreaterEqual(self.stats(q)["total_redelivered"], 1)
        self.assertErr(self.job(q, jid, "nack", expect=None, attempt=1), 409)
        self.job(q, jid, "ack", attempt=2)
        self.assertErr(self.job(q, jid, "nack", expect=None), 404, 409)

    def test_nack_not_reserved_409(self):
        q = self.newq()
        jid = self.put(q)
        self.assertErr(self.job(q, jid, "nack", expect=None), 409)
        self.assertErr(self.job(q, jid, "touch", expect=None), 409)

    def test_nack_with_delay(self):
        q = self.newq()
        jid = self.put(q, b"later")
        self.reserve_ok(q)
        t0 = time.monotonic()
        self.job(q, jid, "nack", delay=1)
        st = self.stats(q)
        self.assertEqual((st["delayed"], st["size"], st["reserved"]), (1, 0, 0), st)
        self.assertEqual(self.reserve(q).status, 204,
                         "a job nacked with delay=1 was reservable at once")
        r = self.reserve(q, wait=5, timeout=15)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.header("Job-Id"), r.header("Job-Attempt")), (str(jid), "2"))
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 3.0)

    def test_touch_extends_lease(self):
        q = self.newq()
        jid = self.put(q, b"slow")
        _, attempt, _ = self.reserve_ok(q, lease=1)
        t0 = time.time()
        r = self.job(q, jid, "touch", lease=3, attempt=attempt)
        dl = r.json()["lease_deadline"]
        self.assertLess(abs(float(dl) - (t0 + 3)), 1.5, r)
        time.sleep(1.6)  # past the first lease
        self.assertEqual(self.reserve(q).status, 204, "touched job was redelivered")
        st = self.stats(q)
        self.assertEqual((st["reserved"], st["total_redelivered"]), (1, 0), st)
        self.job(q, jid, "ack", attempt=attempt)
        self.assertErr(self.job(q, jid, "touch", expect=None), 404, 409)

    def test_lease_expiry_redelivers(self):
        q = self.newq({"lease": 0.5})
        jid = self.put(q, b"leased")
        t0 = time.monotonic()
        _, attempt, r = self.reserve_ok(q)
        self.assertEqual(attempt, 1)
        r = self.reserve(q, wait=5, timeout=15)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.header("Job-Id"), r.header("Job-Attempt"), r.body),
                         (str(jid), "2", b"leased"))
        self.assertGreaterEqual(took, 0.4)
        self.assertLess(took, 2.5)
        # the first consumer's lease is stale
        for verb in ("ack", "nack", "touch"):
            self.assertErr(self.job(q, jid, verb, expect=None, attempt=1), 409)
        self.assertGreaterEqual(self.stats(q)["total_redelivered"], 1)
        self.job(q, jid, "ack", attempt=2)
        self.assertEqual(self.stats(q)["unfinished"], 0)

    # ---- dead letters -------------------------------------------------------------

    def test_dead_after_nacks(self):
        q = self.newq({"max_attempts": 2})
        jid = self.put(q, b"poison", priority=3)
        self.reserve_ok(q)
        self.assertEqual(self.job(q, jid, "nack").json(), {"released": jid})
        _, attempt, _ = self.reserve_ok(q)
        self.assertEqual(attempt, 2)
        self.assertEqual(self.job(q, jid, "nack").json(), {"dead": jid})
        st = self.stats(q)
        self.assertEqual((st["dead"], st["total_dead"], st["unfinished"], st["size"]),
                         (1, 1, 0, 0), st)
        r = self.h("GET", "/queues/%s/dead" % q)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["dead"], [{"id": jid, "priority": 3, "attempt": 2, "len": 6,
                                             "reason": "nacked", "error": None}])
        g = self.h("GET", "/queues/%s/jobs/%d" % (q, jid))
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.body, b"poison")
        self.assertIn("dead", g.header("Job-State", "").lower(), g)
        self.assertEqual(self.reserve(q).status, 204)
        r = self.h("POST", "/queues/%s/dead/requeue" % q)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"requeued": 1})
        rid, attempt, r = self.reserve_ok(q)
        self.assertEqual((rid, attempt, r.body), (jid, 1, b"poison"))
        self.job(q, jid, "nack")
        self.reserve_ok(q)
        self.assertEqual(self.job(q, jid, "nack").json(), {"dead": jid})
        r = self.h("POST", "/queues/%s/dead/purge" % q)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"purged": 1})
        self.assertEqual(self.h("GET", "/queues/%s/dead" % q).json()["dead"], [])
        self.assertEqual(self.stats(q)["dead"], 0)
        self.assertErr(self.h("GET", "/queues/%s/jobs/%d" % (q, jid)), 404)

    def test_dead_after_lease_expiry(self):
        q = self.newq({"max_attempts": 2, "lease": 0.3})
        jid = self.put(q, b"slowpoke")
        self.reserve_ok(q)
        _, attempt, _ = self.reserve_ok(q, wait=5, timeout=15)
        self.assertEqual(attempt, 2)
        st = self.wait_stats(q, "dead", 1, timeout=3)
        self.assertEqual((st["unfinished"], st["reserved"], st["total_dead"]), (0, 0, 1), st)
        dead = self.h("GET", "/queues/%s/dead" % q).json()["dead"]
        self.assertEqual([d["id"] for d in dead], [jid])
        self.assertErr(self.job(q, jid, "ack", expect=None), 409, 404)

    def test_dead_list_paging_requeue_and_purge_by_id(self):
        q = self.newq({"max_attempts": 1})
        ids = []
        for i in range(3):
            jid = self.put(q, b"d%d" % i)
            self.reserve_ok(q)
            self.assertEqual(self.job(q, jid, "nack").json(), {"dead": jid})
            ids.append(jid)
        r = self.h("GET", "/queues/%s/dead?limit=2" % q)
        self.assertEqual(r.status, 200, r)
        self.assertEqual([d["id"] for d in r.json()["dead"]], ids[:2])
        r = self.h("GET", "/queues/%s/dead?after=%d" % (q, ids[1]))
        self.assertEqual([d["id"] for d in r.json()["dead"]], ids[2:])
        r = self.h("GET", "/queues/%s/dead?after=%d&limit=1" % (q, ids[0]))
        self.assertEqual([d["id"] for d in r.json()["dead"]], ids[1:2])
        self.assertEqual(self.h("POST", "/queues/%s/dead/requeue?id=%d" % (q, ids[0])).json(),
                         {"requeued": 1})
        self.assertErr(self.h("POST", "/queues/%s/dead/requeue?id=%d" % (q, ids[0])), 404)
        self.assertEqual(self.h("POST", "/queues/%s/dead/purge?id=%d" % (q, ids[1])).json(),
                         {"purged": 1})
        self.assertEqual([d["id"] for d in self.h("GET", "/queues/%s/dead" % q).json()["dead"]],
                         ids[2:])
        self.assertErr(self.h("POST", "/queues/%s/dead/purge?id=987654321" % q), 404)
        self.assertErr(self.h("GET", "/queues/%s/dead?limit=x" % q), 400)
        self.assertEqual(self.h("POST", "/queues/%s/dead/purge" % q).json(), {"purged": 1})
        rid, _, r = self.reserve_ok(q)
        self.assertEqual((rid, r.body), (ids[0], b"d0"))

    # ---- priority, delay, idempotency, purge ------------------------------------------

    def test_priority_and_fifo(self):
        q = self.newq()
        order = [(5, b"p5"), (1, b"p1a"), (3, b"p3"), (1, b"p1b"), (0, b"p0"), (3, b"p3b")]
        for prio, p in order:
            self.put(q, p, priority=prio)
        got = []
        for _ in order:
            _, _, r = self.reserve_ok(q)
            got.append((int(r.header("Job-Priority")), r.body))
        self.assertEqual(got, [(0, b"p0"), (1, b"p1a"), (1, b"p1b"), (3, b"p3"), (3, b"p3b"),
                               (5, b"p5")])
        # FIFO among equals, many of them
        ids = [self.put(q, b"f%d" % i) for i in range(20)]
        self.assertEqual([self.reserve_ok(q)[0] for _ in ids], ids)

    def test_delay(self):
        q = self.newq()
        t0 = time.monotonic()
        jid = self.put(q, b"not yet", delay=1)
        st = self.stats(q)
        self.assertEqual((st["delayed"], st["size"], st["unfinished"]), (1, 0, 1), st)
        self.assertEqual(self.reserve(q).status, 204, "a delayed job was reservable at once")
        self.put(q, b"now")
        _, _, r = self.reserve_ok(q)
        self.assertEqual(r.body, b"now")
        r = self.reserve(q, wait=5, timeout=15)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.header("Job-Id"), r.body), (str(jid), b"not yet"))
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 3.0)

    def test_idempotency_key(self):
        q = self.newq()
        r1 = self.h("POST", "/queues/%s/jobs" % q, body=b"once", headers={"Idempotency-Key": "k-1"})
        self.assertEqual(r1.status, 201, r1)
        jid = r1.json()["id"]
        r2 = self.h("POST", "/queues/%s/jobs" % q, body=b"once", headers={"Idempotency-Key": "k-1"})
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r2.json(), {"id": jid, "duplicate": True})
        r3 = self.h("POST", "/queues/%s/jobs" % q, body=b"other",
                    headers={"Idempotency-Key": "k-2"})
        self.assertEqual(r3.status, 201, r3)
        self.assertNotEqual(r3.json()["id"], jid)
        st = self.stats(q)
        self.assertEqual((st["size"], st["total_put"]), (2, 2), st)
        # still a duplicate after the first job was acked (within the window)
        rid, _, _ = self.reserve_ok(q)
        self.assertEqual(rid, jid)
        self.job(q, jid, "ack")
        r4 = self.h("POST", "/queues/%s/jobs" % q, body=b"once", headers={"Idempotency-Key": "k-1"})
        self.assertEqual(r4.status, 200, r4)
        self.assertEqual(r4.json()["id"], jid)

    def test_idempotency_key_window(self):
        q = self.newq({"key_window": 0.5})
        a = self.put(q, b"1", headers={"Idempotency-Key": "w"})
        time.sleep(1.0)
        b = self.put(q, b"2", headers={"Idempotency-Key": "w"})
        self.assertNotEqual(a, b)

    def test_purge(self):
        q = self.newq()
        for i in range(3):
            self.put(q, b"r%d" % i)
        self.put(q, b"delayed", delay=30)
        jid, _, _ = self.reserve_ok(q)
        r = self.h("POST", "/queues/%s/purge" % q)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"purged": 3})
        st = self.stats(q)
        self.assertEqual((st["size"], st["delayed"], st["reserved"], st["unfinished"]),
                         (0, 0, 1, 1), st)
        self.job(q, jid, "ack")
        self.assertEqual(self.h("POST", "/queues/%s/purge" % q).json(), {"purged": 0})

    # ---- shutdown ----------------------------------------------------------------

    def test_shutdown_drains(self):
        q = self.newq()
        a = self.put(q, b"a")
        b = self.put(q, b"b")
        r = self.h("POST", "/queues/%s/shutdown" % q)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(self.stats(q)["shutdown"])
        self.assertErr(self.put(q, b"c", expect=None), 410)
        self.assertErr(self.put(q, b"c", expect=None, wait=2), 410)
        self.assertEqual(self.reserve_ok(q)[0], a)
        self.assertEqual(self.reserve_ok(q)[0], b)
        # jobs are reserved, not finished: a getter waits (one may come back)
        fut = self.bg(self.reserve, q, wait=10, timeout=20)
        self.wait_stats(q, "getters", 1)
        self.job(q, a, "nack")
        r, _ = self.result(fut, 5)
        self.assertEqual((r.status, r.header("Job-Id")), (200, str(a)), r)
        self.job(q, a, "ack")
        fut = self.bg(self.reserve, q, wait=10, timeout=20)
        self.wait_stats(q, "getters", 1)
        t0 = time.monotonic()
        self.job(q, b, "ack")  # nothing left: the waiting getter is told
        r, t = self.result(fut, 15)
        self.assertErr(r, 410)
        # told at once, not after its wait=10 (the Cluster variant under make check's
        # load measured 1.0003 s against a 1 s bound once)
        self.assertLess(t - t0, 5.0)
        self.assertErr(self.reserve(q), 410)
        self.assertErr(self.reserve(q, wait=2), 410)
        r = self.h("GET", "/queues/%s/join?wait=1" % q)
        self.assertEqual(r.status, 200, r)

    def test_shutdown_wakes_getters_and_putters(self):
        qg = self.newq()
        qp = self.newq({"maxsize": 1})
        self.put(qp, b"x")
        g = self.bg(self.reserve, qg, wait=10, timeout=20)
        p = self.bg(self.put, qp, b"y", expect=None, wait=10, timeout=20)
        self.wait_stats(qg, "getters", 1)
        self.wait_stats(qp, "putters", 1)
        t0 = time.monotonic()
        self.assertEqual(self.h("POST", "/queues/%s/shutdown" % qg).status, 200)
        self.assertEqual(self.h("POST", "/queues/%s/shutdown" % qp).status, 200)
        for fut in (g, p):
            r, t = self.result(fut, 5)
            self.assertErr(r, 410)
            self.assertLess(t - t0, 1.5)
        # the job already in qp drains
        _, _, r = self.reserve_ok(qp)
        self.assertEqual(r.body, b"x")

    def test_shutdown_immediate(self):
        q = self.newq()
        for i in range(3):
            self.put(q, b"i%d" % i)
        self.put(q, b"delayed", delay=30)
        jid, _, _ = self.reserve_ok(q)
        j = self.bg(self.h, "GET", "/queues/%s/join?wait=10" % q, timeout=20)
        self.wait_stats(q, "joiners", 1)
        r = self.h("POST", "/queues/%s/shutdown?immediate=1" % q)
        self.assertEqual(r.status, 200, r)
        st = self.stats(q)
        self.assertEqual((st["size"], st["delayed"], st["reserved"]), (0, 0, 1), st)
        self.assertTrue(st["shutdown"])
        self.assertErr(self.reserve(q), 410)
        self.assertErr(self.put(q, b"z", expect=None), 410)
        time.sleep(0.2)
        self.assertFalse(j.done(), "join returned while a job is still reserved")
        self.job(q, jid, "ack")  # a reserved job may still be acked
        r, _ = self.result(j, 5)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"unfinished": 0})

    # ---- join --------------------------------------------------------------------

    def test_join(self):
        q = self.newq()
        t0 = time.monotonic()
        r = self.h("GET", "/queues/%s/join?wait=5" % q)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"unfinished": 0})
        self.assertLess(time.monotonic() - t0, 0.8, "join of an empty queue must answer at once")
        a = self.put(q, b"a")
        b = self.put(q, b"b")
        t0 = time.monotonic()
        r = self.h("GET", "/queues/%s/join?wait=0.5" % q)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 204, r)
        self.assertGreaterEqual(took, 0.4)
        self.assertLess(took, 2.5)
        fut = self.bg(self.h, "GET", "/queues/%s/join?wait=10" % q, timeout=20)
        fut2 = self.bg(self.h, "GET", "/queues/%s/join?wait=10" % q, timeout=20)
        self.wait_stats(q, "joiners", 2)
        self.reserve_ok(q)
        self.reserve_ok(q)
        self.job(q, a, "ack")
        time.sleep(0.3)
        self.assertFalse(fut.done(), "join returned with a job unfinished")
        t0 = time.monotonic()
        self.job(q, b, "ack")
        for f in (fut, fut2):
            r, t = self.result(f, 5)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json(), {"unfinished": 0})
            self.assertLess(t - t0, 0.8)
        self.assertEqual(self.stats(q)["joiners"], 0)

    def test_join_counts_dead_as_finished(self):
        q = self.newq({"max_attempts": 1})
        jid = self.put(q)
        fut = self.bg(self.h, "GET", "/queues/%s/join?wait=10" % q, timeout=20)
        self.wait_stats(q, "joiners", 1)
        self.reserve_ok(q)
        self.assertEqual(self.job(q, jid, "nack").json(), {"dead": jid})
        r, _ = self.result(fut, 5)
        self.assertEqual(r.status, 200, r)

    # ---- limits and bad parameters ------------------------------------------------------

    def test_max_payload_413(self):
        q = self.newq({"max_payload": 100})
        self.put(q, b"x" * 100)
        r = self.put(q, b"x" * 101, expect=413)
        self.assertJsonError(r)
        r = self.put(q, b"x" * 5000, expect=413)
        self.assertJsonError(r)
        st = self.stats(q)
        self.assertEqual((st["size"], st["total_put"]), (1, 1), st)
        # the connection stays usable (or is closed cleanly) after a 413
        self.put(q, b"y" * 10)

    def test_bad_parameters_400(self):
        q = self.newq()
        jid = self.put(q)
        self.reserve_ok(q)
        cases = [
            ("POST", "/queues/%s/jobs?wait=abc" % q),
            ("POST", "/queues/%s/jobs?wait=-1" % q),
            ("POST", "/queues/%s/jobs?delay=abc" % q),
            ("POST", "/queues/%s/jobs?delay=-1" % q),
            ("POST", "/queues/%s/jobs?priority=x" % q),
            ("POST", "/queues/%s/jobs?priority=1.5" % q),
            ("POST", "/queues/%s/jobs?priority=99999999999999" % q),
            ("POST", "/queues/%s/jobs?wait=1e999" % q),
            ("POST", "/queues/%s/jobs?wait=nan" % q),
            ("POST", "/queues/%s/reserve?wait=abc" % q),
            ("POST", "/queues/%s/reserve?count=0" % q),
            ("POST", "/queues/%s/reserve?count=x" % q),
            ("POST", "/queues/%s/reserve?count=-2" % q),
            ("POST", "/queues/%s/reserve?lease=-1" % q),
            ("POST", "/queues/%s/reserve?lease=abc" % q),
            ("POST", "/queues/%s/jobs/%d/nack?delay=abc" % (q, jid)),
            ("POST", "/queues/%s/jobs/%d/nack?delay=-1" % (q, jid)),
            ("POST", "/queues/%s/jobs/%d/touch?lease=-1" % (q, jid)),
            ("POST", "/queues/%s/jobs/%d/ack?attempt=x" % (q, jid)),
            ("GET", "/queues/%s/join?wait=abc" % q),
        ]
        for method, path in cases:
            with self.subTest(path=path):
                t0 = time.monotonic()
                r = self.h(method, path, body=b"p" if method == "POST" else None)
                self.assertErr(r, 400)
                self.assertLess(time.monotonic() - t0, 0.8)
        st = self.stats(q)
        self.assertEqual((st["total_put"], st["reserved"], st["total_acked"]), (1, 1, 0), st)
        # a job id that is not a number
        self.assertErr(self.h("POST", "/queues/%s/jobs/abc/ack" % q, body=b""), 400, 404)
        self.job(q, jid, "ack")

    # ---- batch put ---------------------------------------------------------------

    def test_batch_put(self):
        q = self.newq()
        payloads = [b"a", b"", b"x\ny\n", BINARY, b"last"]
        r = self.h("POST", "/queues/%s/jobs?batch=1" % q, body=frame_put(payloads),
                   headers={"Content-Type": FRAMES})
        self.assertEqual(r.status, 201, r)
        ids = r.json()["ids"]
        self.assertEqual(len(ids), len(payloads))
        self.assertEqual(ids, sorted(ids))
        r = self.reserve(q, count=10)
        self.assertEqual(r.status, 200, r)
        frames = parse_frames(r.body)
        self.assertEqual([f[0] for f in frames], ids)
        self.assertEqual([f[4] for f in frames], payloads)
        self.assertEqual(self.stats(q)["total_put"], len(payloads))

    def test_batch_put_wakes_framed_reserve(self):
        """A batch put that wakes a waiting framed reserve: both answers whole.
        (The batch's body was built in a buffer the woken reserve's answer
        reset inside the put, so the put answered a tail like '1, 2, 3]}'.)"""
        q = self.newq()
        futs = [self.bg(self.reserve, q, count=2, wait=5, timeout=15) for _ in range(2)]
        self.wait_stats(q, "getters", 2)
        payloads = [b"p%d" % i for i in range(5)]
        r = self.h("POST", "/queues/%s/jobs?batch=1" % q, body=frame_put(payloads),
                   headers={"Content-Type": FRAMES})
        self.assertEqual(r.status, 201, r)
        try:
            ids = json.loads(r.body)["ids"]
        except ValueError:
            self.fail("the batch put's answer is not JSON: %r" % (r.body,))
        self.assertEqual(len(ids), len(payloads), r.body)
        got = []
        for fut in futs:
            rr, _ = self.result(fut, 5)
            self.assertEqual(rr.status, 200, rr)
            got += [(f[0], f[4]) for f in parse_frames(rr.body)]
        r = self.reserve(q, count=10)
        if r.status == 200:
            got += [(f[0], f[4]) for f in parse_frames(r.body)]
        self.assertEqual(sorted(got), sorted(zip(ids, payloads)))

    def test_batch_put_all_or_nothing(self):
        for name, body, statuses in (
                ("short payload", b"1\na\n3\nab\n", (400,)),
                ("no newline after payload", b"1\nab", (400,)),
                ("bad length", b"x\nab\n", (400,)),
                ("negative length", b"-1\n\n", (400,)),
                ("payload over max_payload", b"1\na\n11\n01234567890\n", (413,)),
                ("more than maxsize: never fits", frame_put([b"1", b"2", b"3", b"4"]), (413,))):
            with self.subTest(name):
                q = self.newq({"max_payload": 10, "maxsize": 3})
                r = self.h("POST", "/queues/%s/jobs?batch=1" % q, body=body,
                           headers={"Content-Type": FRAMES})
                self.assertErr(r, *statuses)
                st = self.stats(q)
                self.assertEqual((st["size"], st["total_put"]), (0, 0),
                                 "a refused batch left jobs behind: %r" % st)
        r = self.h("POST", "/queues/%s/jobs?batch=1" % q, body=frame_put([b"1", b"2", b"3"]),
                   headers={"Content-Type": FRAMES})
        self.assertEqual(r.status, 201, r)

    def test_batch_put_waits_for_room(self):
        """wait= on a batch put waits until the whole batch fits, in arrival
        order with the single putters (it once was accepted and ignored: a
        full queue answered 503 at once); a batch larger than maxsize can
        never fit and is refused at once (413), wait or not."""
        q = self.newq({"maxsize": 3})
        jobs = "/queues/%s/jobs?batch=1" % q
        hdr = {"Content-Type": FRAMES}
        r = self.h("POST", jobs, body=frame_put([b"1", b"2"]), headers=hdr)
        self.assertEqual(r.status, 201, r)
        t0 = time.monotonic()
        fut = self.bg(self.h, "POST", jobs + "&wait=5", body=frame_put([b"3", b"4"]),
                      headers=hdr, timeout=15)
        self.wait_stats(q, "putters", 1)
        time.sleep(0.3)
        self.assertEqual(self.stats(q)["size"], 2)  # room for one is not room for two
        if self.config.get("store", {}).get("backend") != "redis":
            # one global order locally: a single put does not jump the waiting batch
            # (Redis: arrival order per node only, docs/REDIS.md)
            r = self.h("POST", "/queues/%s/jobs" % q, body=b"x")
            self.assertErr(r, 503)
        self.assertFalse(fut.done(), "the batch put answered while there was no room for it")
        self.assertEqual(self.reserve(q).status, 200)  # room for two now
        rr, _ = self.result(fut, 5)
        self.assertEqual(rr.status, 201, rr)
        self.assertGreater(time.monotonic() - t0, 0.3)
        ids = rr.json()["ids"]
        self.assertEqual(len(ids), 2)
        self.assertEqual(ids[1], ids[0] + 1)
        st = self.stats(q)
        self.assertEqual((st["size"], st["putters"], st["total_put"]), (3, 0, 4), st)
        # the wait passes with no room: 503 queue full, nothing put
        r = self.h("POST", jobs + "&wait=0.3", body=frame_put([b"5"]), headers=hdr)
        self.assertErr(r, 503)
        self.assertEqual(r.json().get("reason"), "queue full", r)
        # never fits: at once, with the queue's maxsize named
        t1 = time.monotonic()
        r = self.h("POST", jobs + "&wait=5", body=frame_put([b"a"] * 4), headers=hdr)
        self.assertErr(r, 413)
        self.assertIn("maxsize 3", r.json()["error"])
        self.assertLess(time.monotonic() - t1, 2.0)
        st = self.stats(q)
        self.assertEqual((st["size"], st["total_put"]), (3, 4), st)

    # ---- transports: curl, keep-alive, pipelining ------------------------------------------

    def test_curl(self):
        q = "curlq"
        p = self.d.curl("-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
                        "-H", "Content-Type: application/json", "--data-binary", '{"maxsize": 10}',
                        "{url}/queues/" + q)
        self.assertEqual((p.returncode, p.stdout), (0, b"201"), p.stderr)
        p = self.d.curl("-sS", "--fail", "--data-binary", "@-", "-H",
                        "Content-Type: application/octet-stream", "{url}/queues/%s/jobs" % q,
                        input=BINARY)
        self.assertEqual(p.returncode, 0, p.stderr)
        jid = json.loads(p.stdout)["id"]
        p = self.d.curl("-sS", "--fail", "-X", "POST", "-D", "-",
                        "{url}/queues/%s/reserve?wait=2" % q)
        self.assertEqual(p.returncode, 0, p.stderr)
        head, _, body = p.stdout.partition(b"\r\n\r\n")
        self.assertIn(b"Job-Id: %d" % jid, head)
        self.assertEqual(body, BINARY)
        p = self.d.curl("-sS", "--fail", "-X", "POST", "{url}/queues/%s/jobs/%d/ack" % (q, jid))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout), {"acked": jid})
        p = self.d.curl("-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                        "{url}/queues/%s/reserve?wait=1" % q)
        self.assertEqual(p.stdout, b"204")
        p = self.d.curl("-sS", "--fail", "{url}/queues/%s/join?wait=1" % q)
        self.assertEqual((p.returncode, json.loads(p.stdout)), (0, {"unfinished": 0}), p.stderr)
        p = self.d.curl("-sS", "-X", "DELETE", "{url}/queues/" + q)
        self.assertEqual(json.loads(p.stdout), {"deleted": q})

    def test_keepalive_and_pipelining(self):
        q = self.newq()
        qb = q.encode()
        with self.d.connect() as c:
            c.send(b"POST /queues/%s/jobs HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\none" % qb)
            r = c.read_response()
            self.assertEqual(r.status, 201, r)
            c.send(RESERVE_REQ % (qb, 1))
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"one"), r)
            jid = int(r.header("Job-Id"))
            # pipelined: ack, put, reserve, stats, a waiting reserve answered by a put elsewhere
            c.send(b"POST /queues/%s/jobs/%d/ack HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
                   b"POST /queues/%s/jobs HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\ntwo"
                   b"POST /queues/%s/reserve HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
                   b"GET /queues/%s HTTP/1.1\r\nHost: t\r\n\r\n"
                   % (qb, jid, qb, qb, qb) + RESERVE_REQ % (qb, 10))
            rs = [c.read_response() for _ in range(4)]
            self.assertEqual([r.status for r in rs], [200, 201, 200, 200], rs)
            self.assertEqual(rs[2].body, b"two")
            self.assertEqual(rs[3].json()["reserved"], 1)
            self.wait_stats(q, "getters", 1)
            self.put(q, b"three")
            r = c.read_response(timeout=5)
            self.assertEqual((r.status, r.body), (200, b"three"), r)
            c.send(b"GET /queues/%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % qb)
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["reserved"], 2)

    def test_pipelined_request_behind_waiting_reserve(self):
        # bytes of a pipelined request arriving while a reserve waits are not a disconnect
        q = self.newq()
        qb = q.encode()
        with self.d.connect(timeout=15) as c:
            c.send(RESERVE_REQ % (qb, 10) + b"GET /queues/%s HTTP/1.1\r\nHost: t\r\n\r\n" % qb)
            self.wait_stats(q, "getters", 1)
            time.sleep(0.3)
            self.assertEqual(self.stats(q)["getters"], 1, "the waiting reserve was dropped")
            jid = self.put(q, b"pipelined")
            r1 = c.read_response(timeout=5)
            r2 = c.read_response(timeout=5)
        self.assertEqual((r1.status, r1.body, r1.header("Job-Id")), (200, b"pipelined", str(jid)),
                         r1)
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r2.json()["reserved"], 1)

    def test_many_waiting_getters(self):
        q = self.newq()
        n = 200
        req = RESERVE_REQ % (q.encode(), 15)
        conns = []
        try:
            for _ in range(n):
                c = RawConn(self.d.port, timeout=20)
                c.send(req)
                conns.append(c)
            self.wait_stats(q, "getters", n, timeout=10)
            payloads = [b"many-%d" % i for i in range(n)]
            r = self.h("POST", "/queues/%s/jobs?batch=1" % q, body=frame_put(payloads),
                       headers={"Content-Type": FRAMES})
            self.assertEqual(r.status, 201, r)
            ids = r.json()["ids"]
            got = {}
            for c in conns:
                r = c.read_response(timeout=10)
                self.assertEqual(r.status, 200, r)
                got[int(r.header("Job-Id"))] = r.body
        finally:
            for c in conns:
                c.close()
        self.assertEqual(sorted(got), sorted(ids), "each waiting getter gets one distinct job")
        self.assertEqual(sorted(got.values()), sorted(payloads))
        st = self.stats(q)
        self.assertEqual((st["getters"], st["reserved"], st["size"]), (0, n, 0), st)

    def test_large_payload(self):
        q = self.newq()
        big = os.urandom(1 << 20)  # default max_payload and max_body: 1m
        jid = self.put(q, big, timeout=30)
        _, _, r = self.reserve_ok(q, timeout=30)
        self.assertEqual(len(r.body), len(big))
        self.assertEqual(r.body, big)
        self.job(q, jid, "ack")
        r = self.put(q, big + b"x", expect=413, timeout=30)
        self.assertJsonError(r)
        self.assertEqual(self.stats(q)["total_put"], 1)

    def test_idempotency_key_too_long(self):
        q = self.newq()
        self.put(q, b"k", headers={"Idempotency-Key": "k" * 255})
        r = self.put(q, b"k", expect=400, headers={"Idempotency-Key": "k" * 256})
        self.assertJsonError(r)
        self.assertEqual(self.stats(q)["total_put"], 1)

    def test_job_state_header(self):
        q = self.newq()
        ready = self.put(q, b"r")
        delayed = self.put(q, b"d", delay=30)
        states = {}
        for name, jid in (("ready", ready), ("delayed", delayed)):
            g = self.h("GET", "/queues/%s/jobs/%d" % (q, jid))
            self.assertEqual(g.status, 200, g)
            states[name] = g.header("Job-State", "").lower()
        self.reserve_ok(q)
        g = self.h("GET", "/queues/%s/jobs/%d" % (q, ready))
        states["reserved"] = g.header("Job-State", "").lower()
        self.assertEqual(g.header("Job-Attempt"), "1")
        for name, value in states.items():
            self.assertIn(name, value, "Job-State of a %s job: %r" % (name, states))

    def test_delete_with_reserved_and_dead_jobs(self):
        q = self.newq({"max_attempts": 1})
        dead = self.put(q, b"dead")
        self.reserve_ok(q)
        self.job(q, dead, "nack")
        held = self.put(q, b"held")
        self.reserve_ok(q)
        self.assertEqual(self.h("DELETE", "/queues/" + q).status, 200)
        self.assertErr(self.job(q, held, "ack", expect=None), 404)
        self.assertEqual(self.h("PUT", "/queues/" + q).status, 201)
        st = self.stats(q)
        self.assertEqual((st["size"], st["reserved"], st["dead"], st["unfinished"]),
                         (0, 0, 0, 0), st)
        self.assertErr(self.job(q, held, "ack", expect=None), 404)
        self.assertEqual(self.h("GET", "/queues/%s/dead" % q).json()["dead"], [])

    def test_shutdown_then_immediate(self):
        q = self.newq()
        for i in range(3):
            self.put(q, b"s%d" % i)
        self.assertEqual(self.h("POST", "/queues/%s/shutdown" % q).status, 200)
        self.assertEqual(self.stats(q)["size"], 3)
        self.assertEqual(self.h("POST", "/queues/%s/shutdown?immediate=1" % q).status, 200)
        st = self.stats(q)
        self.assertEqual((st["size"], st["unfinished"]), (0, 0), st)
        self.assertErr(self.reserve(q), 410)
        self.assertEqual(self.h("GET", "/queues/%s/join?wait=1" % q).status, 200)

    # ---- metrics -----------------------------------------------------------------

    def test_metrics(self):
        q = self.newq()
        before = self.d.metrics()
        names = [k for k in before if "queue" in k]
        self.assertTrue(names, "no metric with 'queue' in its name: %r" % sorted(before)[:50])
        for i in range(3):
            self.put(q, b"m")
        jid, _, _ = self.reserve_ok(q)
        self.job(q, jid, "ack")
        after = self.d.metrics()
        changed = [k for k in after if "queue" in k and after.get(k) != before.get(k)]
        self.assertTrue(changed, "no queue metric changed after 3 puts and an ack: %r"
                        % {k: after[k] for k in after if "queue" in k})


# ---- limits from [queues] ------------------------------------------------------------------

class QueueLimitsTest(QueueCase):
    config = {"queues": {"max_wait": "1s", "mem_limit": "8k"}}

    def test_max_wait_caps_waits(self):
        q = self.newq({"maxsize": 1})
        for label, fn, status in (
                ("reserve", lambda: self.reserve(q, wait=30, timeout=15), 204),
                ("join", lambda: self.h("GET", "/queues/%s/join?wait=30" % q, timeout=15), 204),
                ("put", lambda: self.h("POST", "/queues/%s/jobs?wait=30" % q, body=b"2",
                                       timeout=15), 503)):
            with self.subTest(label):
                if label == "join":
                    self.put(q, b"1")
                t0 = time.monotonic()
                r = fn()
                took = time.monotonic() - t0
                self.assertEqual(r.status, status, r)
                self.assertGreaterEqual(took, 0.8)
                self.assertLess(took, 4.0, "%s wait=30 was not cut to max_wait 1s" % label)

    def test_mem_limit_503(self):
        q = self.newq()
        self.put(q, b"x" * 3000)
        self.put(q, b"x" * 3000)
        r = self.put(q, b"x" * 3000, expect=503)
        self.assertJsonError(r)
        self.assertRegex(r.header("Retry-After", ""), r"^\d+$", r)
        jid, _, _ = self.reserve_ok(q)
        self.job(q, jid, "ack")
        self.put(q, b"x" * 3000)


# ---- authentication --------------------------------------------------------------------

class QueueAuthTest(QueueCase):
    config = {"auth": {"token": TOKEN}}
    token = TOKEN

    def test_no_token_401(self):
        for method, path in (("PUT", "/queues/authq"), ("GET", "/queues"),
                             ("GET", "/queues/authq"), ("POST", "/queues/authq/jobs"),
                             ("POST", "/queues/authq/reserve?wait=0"),
                             ("GET", "/queues/nonexistent"), ("DELETE", "/queues/authq"),
                             ("GET", "/queues/bad!name")):
            with self.subTest(method=method, path=path):
                r = self.h(method, path, body=b"x" if method == "POST" else None, auth=False)
                self.assertErr(r, 401)
                self.assertIn("bearer", r.header("WWW-Authenticate", "").lower(), r)
        r = self.h("GET", "/queues")
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("authq", [s["name"] for s in r.json()["queues"]])

    def test_wrong_token_401(self):
        for value in ("Bearer 0123456789abcdef0124", "Bearer " + TOKEN + "x",
                      "Bearer " + TOKEN[:-1], "Bearer", "Bearer ", "Basic " + TOKEN, TOKEN,
                      "Bearer  " + TOKEN + " extra"):
            with self.subTest(value=value):
                r = self.h("GET", "/queues", headers={"Authorization": value})
                self.assertErr(r, 401)

    def test_right_token_works(self):
        q = self.newq()
        jid = self.put(q, b"secret")
        rid, _, r = self.reserve_ok(q)
        self.assertEqual((rid, r.body), (jid, b"secret"))
        self.job(q, jid, "ack")
        p = self.d.curl("-sS", "--fail", "-H", "Authorization: Bearer " + TOKEN,
                        "{url}/queues/" + q)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["total_acked"], 1)
        p = self.d.curl("-sS", "-o", "/dev/null", "-w", "%{http_code}", "{url}/queues/" + q)
        self.assertEqual(p.stdout, b"401")

    def test_probes_stay_open(self):
        for path in ("/get", "/health", "/delay/0", "/status/200"):
            with self.subTest(path=path):
                r = self.h("GET", path, auth=False)
                self.assertEqual(r.status, 200, r)


    def test_metrics_needs_the_token(self):
        """Issue 12, finding 5: /metrics names every queue, so with [auth] it
        needs the token (unless [metrics] public = on); /health stays open."""
        q = self.newq()
        for hdrs in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
            with self.subTest(headers=hdrs):
                r = self.h("GET", "/metrics", headers=hdrs, auth=False)
                self.assertErr(r, 401)
                self.assertIn("bearer", r.header("WWW-Authenticate", "").lower(), r)
                self.assertNotIn(q.encode(), r.body)
        r = self.h("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        if self.per_queue_metrics:
            self.assertIn(('awaitd_queue_size{queue="%s"}' % q).encode(), r.body)
        self.assertEqual(self.h("GET", "/health", auth=False).status, 200)


QueueAuthTest.per_queue_metrics = True  # the redis backend has no per-queue series yet


class QueueMetricsPublicTest(QueueCase):
    """[metrics] public = on serves /metrics without the token [auth] asks of
    the queue endpoints."""

    config = {"auth": {"token": TOKEN}, "metrics": {"public": "on"}}
    token = TOKEN

    def test_metrics_public(self):
        q = self.newq()
        r = self.h("GET", "/metrics", auth=False)
        self.assertEqual(r.status, 200, r)
        self.assertIn(('awaitd_queue_size{queue="%s"}' % q).encode(), r.body)
        self.assertErr(self.h("GET", "/queues", auth=False), 401)


# ---- many queues: paging and bounded metrics (issue 12, finding 5) ---------------------------

def series(text, name):
    """{label value: sample} of metric name's series labelled queue="..."."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + '{queue="'):
            label, value = line[len(name) + 8:].split('"} ')
            out[label] = float(value)
    return out


class QueueListPagingTest(QueueCase):
    """GET /queues?limit=N&cursor=C pages the queues in name order;
    next_cursor is null on the last page."""

    def page(self, limit, cursor=None):
        path = "/queues?limit=%d" % limit + ("&cursor=" + cursor if cursor else "")
        r = self.h("GET", path)
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertIn("next_cursor", body, body)
        return [s["name"] for s in body["queues"]], body["next_cursor"]

    def walk(self, limit, between=None):
        seen, cursor, pages = [], None, 0
        while True:
            names, cursor = self.page(limit, cursor)
            pages += 1
            self.assertLessEqual(len(names), limit)
            seen += names
            if cursor is None:
                return seen, pages
            self.assertEqual(cursor, names[-1])
            if between:
                between(pages)

    def test_walk_sees_every_queue_once_despite_changes(self):
        base = ["pg-%03d" % i for i in range(40)]
        for n in base:
            self.assertIn(self.h("PUT", "/queues/" + n).status, (200, 201))
        deleted, created = set(), set()

        def between(page):
            if page > 15:  # other tests' queues may follow ours
                return
            # delete a queue ahead of the cursor and one behind it, create
            # one ahead and one behind: none of it may repeat or skip others
            for n in ("pg-%03d" % (39 - page), "pg-%03d" % page):
                if n not in deleted:
                    self.assertEqual(self.h("DELETE", "/queues/" + n).status, 200)
                    deleted.add(n)
            for n in ("pg-%03da" % (38 - 2 * page), "pg-%03da" % page):
                if self.h("PUT", "/queues/" + n).status == 201:
                    created.add(n)

        seen, pages = self.walk(7, between)
        mine = [n for n in seen if n.startswith("pg-")]
        self.assertEqual(len(mine), len(set(mine)), "a queue listed twice: %r" % mine)
        self.assertEqual(mine, sorted(mine), "not in name order")
        for n in base:
            if n not in deleted:
                self.assertIn(n, mine, "queue %s, there all along, was skipped" % n)
        self.assertGreaterEqual(pages, 6)
        # a walk with nothing changing: exactly the queues there are
        seen, _ = self.walk(5)
        self.assertEqual(sorted(seen), sorted(set(seen)))
        everything, cursor = self.page(10000)
        self.assertIsNone(cursor)
        self.assertEqual(seen, everything)
        self.assertEqual(set(n for n in seen if n.startswith("pg-")),
                         (set(base) - deleted) | created)

    def create_many(self, prefix, n):
        """n queues prefix-00000.. through one pipelined connection."""
        with self.d.connect(timeout=30) as c:
            for i in range(0, n, 500):
                m = min(n, i + 500) - i
                c.send(b"".join(b"PUT /queues/%s-%05d HTTP/1.1\r\nHost: t\r\n"
                                b"Content-Length: 0\r\n\r\n" % (prefix.encode(), j)
                                for j in range(i, i + m)))
                for _ in range(m):
                    self.assertEqual(c.read_response(timeout=30).status, 201)

    def test_big_page_built_in_slices(self):
        """A page over 1,000 queues is built 1,000 per loop turn: the same
        queues, in the same order, as the pages of 1,000 it spans; a client
        that leaves while it is built cancels it."""
        self.create_many("big", 2500)
        names, cursor = self.page(10000)
        self.assertIsNone(cursor)
        self.assertEqual(names, sorted(names))
        self.assertEqual(len(names), len(set(names)))
        self.assertEqual(len([n for n in names if n.startswith("big-")]), 2500)
        walked, _ = self.walk(1000)
        self.assertEqual(names, walked)
        # a page ending inside: its cursor is its last name
        part, cursor = self.page(1500)
        self.assertEqual((len(part), cursor), (1500, part[-1]))
        self.assertEqual(part, names[:1500])
        rest, cursor = self.page(10000, cursor)
        self.assertEqual(part + rest, names)
        self.assertIsNone(cursor)
        r = self.h("HEAD", "/queues?limit=10000")
        self.assertEqual((r.status, r.body), (200, b""))
        # clients that leave with their page half built, pipelined ones too
        for _ in range(5):
            with self.d.connect() as c:
                c.send(b"GET /queues?limit=10000 HTTP/1.1\r\nHost: t\r\n\r\n" * 3)
        self.assertEqual(self.h("GET", "/health").status, 200)
        with self.d.connect() as c:  # pipelined pages come back whole, in order
            c.send(b"GET /queues?limit=2000 HTTP/1.1\r\nHost: t\r\n\r\n"
                   b"GET /queues?limit=3 HTTP/1.1\r\nHost: t\r\n\r\n")
            a, b = c.read_response(timeout=10), c.read_response(timeout=10)
        self.assertEqual([q["name"] for q in a.json()["queues"]], names[:2000])
        self.assertEqual([q["name"] for q in b.json()["queues"]], names[:3])

    def test_default_page_and_bad_parameters(self):
        names, cursor = self.page(10000)
        r = self.h("GET", "/queues")
        self.assertEqual(r.status, 200, r)
        self.assertEqual([s["name"] for s in r.json()["queues"]], names[:1000])
        for bad in ("limit=0", "limit=10001", "limit=x", "limit=-1", "cursor=bad!name",
                    "cursor=.."):
            with self.subTest(query=bad):
                body = self.assertErr(self.h("GET", "/queues?" + bad), 400)
                self.assertIn(bad.split("=")[0], body["error"], body)


class QueueMetricsTopTest(QueueCase):
    """[metrics] per_queue = top N: series for the N queues with the most
    ready jobs; totals over every queue."""

    config = {"metrics": {"per_queue": "top 3"}}

    def test_top_n(self):
        qs = []
        for i in range(6):
            q = self.newq()
            for _ in range(i):
                self.put(q, b"j")
            qs.append(q)
        text = self.h("GET", "/metrics").body.decode()
        size = series(text, "awaitd_queue_size")
        self.assertEqual(size, {qs[5]: 5, qs[4]: 4, qs[3]: 3}, text[-3000:])
        self.assertEqual(set(series(text, "awaitd_queue_put_total")), {qs[5], qs[4], qs[3]})
        m = self.d.metrics()
        n = len(self.h("GET", "/queues?limit=10000").json()["queues"])
        self.assertEqual(m["awaitd_queues"], n)
        self.assertGreaterEqual(m['awaitd_queue_jobs{state="ready"}'], 15)


class QueueMetricsOffTest(QueueCase):
    config = {"metrics": {"per_queue": "off"}}

    def test_off(self):
        q = self.newq()
        self.put(q, b"j")
        text = self.h("GET", "/metrics").body.decode()
        self.assertNotIn('queue="', text)
        m = self.d.metrics()
        self.assertEqual(m["awaitd_queues"], 1)
        self.assertEqual(m['awaitd_queue_jobs{state="ready"}'], 1)


class QueueAuthTokenFileTest(QueueCase):
    """[auth] token_file: the first line of the file, trailing whitespace stripped."""

    token = "file-token-0123456789"

    @classmethod
    def make_daemon(cls):
        fd, path = tempfile.mkstemp(prefix="awaitd-token-")
        with os.fdopen(fd, "w") as f:
            f.write(cls.token + "  \n")
        cls.token_path = path
        cls.config = {"auth": {"token_file": path}}
        return super().make_daemon()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        os.unlink(cls.token_path)

    def test_token_file(self):
        q = self.newq()
        self.put(q, b"t")
        self.assertErr(self.h("GET", "/queues/" + q, auth=False), 401)
        self.assertErr(self.h("GET", "/queues/" + q,
                              headers={"Authorization": "Bearer " + self.token[:-1]}), 401)
        self.assertEqual(self.h("GET", "/get", auth=False).status, 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
