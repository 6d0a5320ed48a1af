"""Background timers over HTTP (docs/TIMERS.md): POST /timers creates a
timer that puts its payload into a queue on a schedule (after, at, every,
cron), GET /timers/{id}?wait=S awaits it, DELETE cancels it. Through
http.client and raw sockets against a real daemon.

Covered: each schedule kind (one-shot after and at, every with count,
cron's next minute, jitter), the full-queue policies (skip, retry), a
deleted or shut down queue failing its timers, cancellation (asyncio's
cancel() returning True, then False), await (completion, timeout, a
client that disconnects while awaiting), listing with paging, every
validation error naming its field, 405s, bearer-token authentication, and
durability: a restart resumes periodic timers and keeps one-shots' times,
on_missed fire_once vs skip after a downtime, and a SIGKILL with fsync =
always keeps every timer that got its 201 and every cancel that got its 200.

Timing assertions are coarse: the machine is shared and noisy. Every wait
is bounded.
"""

import base64
import concurrent.futures
import http.client
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import unittest
from datetime import datetime, timedelta, timezone

from awaitd_test import HOST, Daemon, PooledJournalTestCase, RawConn

TOKEN = "timer-token-0123456789abcdef"


def qs(path, **params):
    if not params:
        return path
    return path + "?" + "&".join("%s=%s" % kv for kv in params.items())


def parse_time(text):
    """Unix seconds (float) of the daemon's RFC 3339 UTC times ("...T..:..:..mmmZ")."""
    dt = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return dt.timestamp()


def rfc3339(unix, offset_hours=0):
    """unix seconds as RFC 3339 with milliseconds, in the given UTC offset."""
    tz = timezone(timedelta(hours=offset_hours))
    text = datetime.fromtimestamp(unix, tz).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if offset_hours == 0 else text


class TimerClient:
    """Requests shared by the test classes; needs self.http(method, path, ...)."""

    token = None

    def h(self, method, path, body=None, headers=None, timeout=10.0, auth=True):
        hdrs = dict(headers or {})
        if self.token and auth:
            hdrs.setdefault("Authorization", "Bearer " + self.token)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        return self.http(method, path, body=body, headers=hdrs, timeout=timeout)

    def newq(self, name, settings=None, expect=201):
        r = self.h("PUT", "/queues/" + name, body=settings if settings is not None else None)
        self.assertEqual(r.status, expect, "PUT /queues/%s %r: %r" % (name, settings, r))
        return name

    def create(self, expect=201, **spec):
        r = self.h("POST", "/timers", body=spec)
        self.assertEqual(r.status, expect, "POST /timers %r: %r" % (spec, r))
        if expect != 201:
            return r
        t = r.json()
        self.assertEqual(r.header("Location"), "/timers/%d" % t["id"], r)
        return t

    def timer(self, tid, expect=200):
        r = self.h("GET", "/timers/%d" % tid)
        self.assertEqual(r.status, expect, "GET /timers/%d: %r" % (tid, r))
        return r.json() if expect == 200 else r

    def cancel(self, tid, expect_cancelled=None):
        r = self.h("DELETE", "/timers/%d" % tid)
        self.assertEqual(r.status, 200, "DELETE /timers/%d: %r" % (tid, r))
        body = r.json()
        if expect_cancelled is not None:
            self.assertIs(body["cancelled"], expect_cancelled, body)
        self.assertEqual(body["timer"]["id"], tid, body)
        return body

    def await_timer(self, tid, wait, timeout=None):
        """GET /timers/{id}?wait=S: (response, seconds it took)."""
        t0 = time.monotonic()
        r = self.h("GET", "/timers/%d?wait=%s" % (tid, wait),
                   timeout=timeout if timeout is not None else float(wait) + 10)
        return r, time.monotonic() - t0

    def wait_timer(self, tid, pred, timeout=5.0, what="the expected state"):
        """Poll GET /timers/{id} until pred(timer); returns the timer."""
        deadline = time.monotonic() + timeout
        while True:
            t = self.timer(tid)
            if pred(t):
                return t
            if time.monotonic() > deadline:
                self.fail("timer %d did not reach %s within %.1f s: %r" % (tid, what, timeout, t))
            time.sleep(0.02)

    def put(self, q, payload=b"x", expect=201):
        r = self.h("POST", "/queues/%s/jobs" % q, body=payload)
        self.assertEqual(r.status, expect, "put into %s: %r" % (q, r))
        return r

    def stats(self, q):
        r = self.h("GET", "/queues/" + q)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def reserve(self, q, wait=0, timeout=None):
        return self.h("POST", "/queues/%s/reserve?wait=%s&lease=600" % (q, wait),
                      timeout=timeout if timeout is not None else float(wait) + 10)

    def ack(self, q, r):
        jid = int(r.header("Job-Id"))
        a = self.h("POST", "/queues/%s/jobs/%d/ack" % (q, jid))
        self.assertEqual(a.status, 200, a)

    def drain(self, q):
        """Reserve and ack every ready job of q: {payload: count}."""
        counts = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = self.reserve(q, 0)
            if r.status == 204:
                return counts
            self.assertEqual(r.status, 200, r)
            counts[r.body] = counts.get(r.body, 0) + 1
            self.ack(q, r)
        self.fail("queue %s did not drain within 30 s" % q)


class TimerCase(TimerClient, PooledJournalTestCase):
    """One daemon per class, journaling to its own temp dir."""

    tmp_prefix = "awaitd-timers-"
    fsync = "off"

    def http(self, method, path, body=None, headers=None, timeout=10.0):
        return self.d.http(method, path, body=body, headers=headers, timeout=timeout)

    def q(self, settings=None):
        """A new queue named after the test."""
        name = "%s-%d" % (self._testMethodName[5:][:50], next(type(self)._names))
        return self.newq(name, settings)

    def bg(self, fn, *args, **kw):
        """Run fn in a thread: a future of (result or exception, monotonic time done)."""
        def run():
            try:
                r = fn(*args, **kw)
            except Exception as e:  # noqa: BLE001 - reported by the test
                r = e
            return r, time.monotonic()
        return self.pool.submit(run)

    def result(self, fut, timeout=20.0):
        r, t = fut.result(timeout)
        if isinstance(r, Exception):
            raise AssertionError("background request failed: %r" % (r,))
        return r, t


# ---- schedules ---------------------------------------------------------------------------

class TimerScheduleTest(TimerCase):

    def test_after_fires_once(self):
        q = self.q()
        t0 = time.time()
        t = self.create(queue=q, payload="hello", after=0.3)
        t1 = time.time()
        self.assertEqual((t["state"], t["kind"], t["queue"], t["fires"], t["skips"], t["count"]),
                         ("scheduled", "after", q, 0, 0, 0), t)
        self.assertEqual((t["finished"], t["last_error"], t["retrying"], t["on_full"],
                          t["on_missed"]), (None, None, False, "skip", "fire_once"), t)
        self.assertNotIn("every", t)
        nf = parse_time(t["next_fire"])
        self.assertGreaterEqual(nf, t0 + 0.3 - 0.01, t)
        self.assertLessEqual(nf, t1 + 0.3 + 0.01, t)
        r, took = self.await_timer(t["id"], 5)
        self.assertEqual(r.status, 200, r)
        done = r.json()
        self.assertEqual((done["state"], done["fires"], done["skips"], done["next_fire"],
                          done["last_error"]), ("completed", 1, 0, None, None), done)
        self.assertAlmostEqual(parse_time(done["finished"]), nf, delta=1.0)
        # the job is in the queue, once
        r = self.reserve(q, 1)
        self.assertEqual((r.status, r.body), (200, b"hello"), r)
        self.ack(q, r)
        time.sleep(0.4)
        st = self.stats(q)
        self.assertEqual((st["total_put"], st["size"]), (1, 0), st)

    def test_after_zero_and_default_payload(self):
        q = self.q()
        t = self.create(queue=q, after=0)
        r, took = self.await_timer(t["id"], 5)
        self.assertEqual((r.status, r.json()["state"], r.json()["fires"]), (200, "completed", 1), r)
        self.assertLess(took, 2.0)
        r = self.reserve(q, 1)
        self.assertEqual((r.status, r.body), (200, b""), r)

    def test_at_utc_and_offset(self):
        q = self.q()
        at = round(time.time() + 1.2, 3)
        z = self.create(queue=q, payload="z", at=rfc3339(at))
        plus1 = self.create(queue=q, payload="plus1", at=rfc3339(at + 0.2, offset_hours=1))
        self.assertTrue(rfc3339(at + 0.2, 1).endswith("+01:00"))
        self.assertEqual(z["kind"], "at", z)
        self.assertEqual(z["next_fire"], rfc3339(at), z)
        self.assertEqual(plus1["kind"], "at", plus1)
        self.assertEqual(plus1["next_fire"], rfc3339(at + 0.2), "offset not converted: %r" % plus1)
        for t, when, payload in ((z, at, b"z"), (plus1, at + 0.2, b"plus1")):
            r, _ = self.await_timer(t["id"], 5)
            fired = time.time()
            self.assertEqual(r.status, 200, r)
            done = r.json()
            self.assertEqual((done["state"], done["fires"]), ("completed", 1), done)
            self.assertGreaterEqual(fired, when - 0.05, "fired before its time: %r" % done)
            self.assertLess(fired, when + 1.5, "fired late: %r" % done)
            self.assertGreaterEqual(parse_time(done["finished"]), when - 0.01, done)
        counts = self.drain(q)
        self.assertEqual(counts, {b"z": 1, b"plus1": 1})

    def test_every_with_count(self):
        q = self.q()
        t0 = time.monotonic()
        t = self.create(queue=q, payload="p", every=0.2, count=3)
        self.assertEqual((t["kind"], t["every"], t["count"], t["jitter"]), ("every", 0.2, 3, 0), t)
        r, _ = self.await_timer(t["id"], 10)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        done = r.json()
        self.assertEqual((done["state"], done["fires"], done["skips"]), ("completed", 3, 0), done)
        self.assertGreaterEqual(took, 0.55, "3 ticks of 0.2 s took %.2f s" % took)
        self.assertLess(took, 3.0, "3 ticks of 0.2 s took %.2f s" % took)
        time.sleep(0.5)  # no fourth tick
        self.assertEqual(self.drain(q), {b"p": 3})
        self.assertEqual(self.timer(t["id"])["fires"], 3)

    def test_every_fires_on_its_grid(self):
        """every 0.25: the jobs arrive about 0.25 s apart, not earlier."""
        q = self.q()
        t0 = time.monotonic()
        t = self.create(queue=q, payload="g", every=0.25, count=4)
        arrivals = []
        for _ in range(4):
            r = self.reserve(q, 3)
            self.assertEqual((r.status, r.body), (200, b"g"), r)
            arrivals.append(time.monotonic() - t0)
        for k, a in enumerate(arrivals, 1):
            self.assertGreaterEqual(a, 0.25 * k - 0.03, "tick %d at %.3f s: %r" % (k, a, arrivals))
            self.assertLess(a, 0.25 * k + 0.5, "tick %d at %.3f s: %r" % (k, a, arrivals))
        self.assertEqual(self.await_timer(t["id"], 5)[0].json()["state"], "completed")

    def test_cron_next_fire(self):
        q = self.q()

        def expect_step(before_ms, minutes):
            """The next time after before_ms (ms) on a `minutes` grid."""
            step = minutes * 60000
            return (before_ms // step + 1) * step

        for expr, minutes in (("*/5 * * * *", 5), ("* * * * *", 1), ("*/15 * * * *", 15)):
            b = int(time.time() * 1000)
            t = self.create(queue=q, cron=expr)
            a = int(time.time() * 1000)
            self.assertEqual((t["kind"], t["cron"], t["state"]), ("cron", expr, "scheduled"), t)
            nf = round(parse_time(t["next_fire"]) * 1000)
            self.assertIn(nf, {expect_step(b, minutes), expect_step(a, minutes)},
                          "%s: next_fire %s, now %s" % (expr, t["next_fire"], rfc3339(a / 1000)))
            self.cancel(t["id"], True)
        # a fixed date: next January 1st, 00:00 UTC
        now = datetime.now(timezone.utc)
        t = self.create(queue=q, cron="0 0 1 1 *")
        jan1 = datetime(now.year + 1, 1, 1, tzinfo=timezone.utc)
        self.assertEqual(t["next_fire"], jan1.strftime("%Y-%m-%dT%H:%M:%S.000Z"), t)
        self.cancel(t["id"], True)
        # @daily: the next midnight UTC; names: mon-fri at 09:30
        t = self.create(queue=q, cron="@daily")
        midnight = datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)
        if datetime.now(timezone.utc) >= midnight:  # the test ran across midnight
            midnight += timedelta(days=1)
        self.assertEqual(t["next_fire"], midnight.strftime("%Y-%m-%dT%H:%M:%S.000Z"), t)
        self.cancel(t["id"], True)
        t = self.create(queue=q, cron="30 9 * * mon-fri")
        nf = datetime.fromtimestamp(parse_time(t["next_fire"]), timezone.utc)
        self.assertEqual((nf.hour, nf.minute, nf.second), (9, 30, 0), t)
        self.assertLess(nf.weekday(), 5, t)
        self.assertGreater(nf, now)
        self.assertLess(nf - now, timedelta(days=4), t)
        self.cancel(t["id"], True)

    def test_jitter_spreads_next_fire(self):
        """every 2 jitter 1.5: each first firing is 2.0 to 3.5 s after creation, spread out."""
        q = self.q()
        offsets = []
        ids = []
        for _ in range(20):
            b = time.time()
            t = self.create(queue=q, every=2, jitter=1.5)
            a = time.time()
            self.assertEqual((t["every"], t["jitter"]), (2.0, 1.5), t)
            nf = parse_time(t["next_fire"])
            self.assertGreaterEqual(nf, b + 2.0 - 0.01, t)
            self.assertLessEqual(nf, a + 3.5 + 0.01, t)
            offsets.append(nf - b)
            ids.append(t["id"])
        self.assertGreater(max(offsets) - min(offsets), 0.3,
                           "20 timers with jitter 1.5 s all fire within 0.3 s of each other: %r"
                           % offsets)
        for tid in ids:
            self.cancel(tid, True)

    def test_jitter_fires_within_period_plus_jitter(self):
        q = self.q()
        period, jitter, n = 0.4, 0.3, 5
        t0 = time.monotonic()
        t = self.create(queue=q, payload="j", every=period, jitter=jitter, count=n)
        t1 = time.monotonic()
        arrivals = []
        for _ in range(n):
            r = self.reserve(q, 3)
            self.assertEqual((r.status, r.body), (200, b"j"), r)
            arrivals.append(time.monotonic())
            self.ack(q, r)
        for k, a in enumerate(arrivals, 1):
            self.assertGreaterEqual(a - t0, period * k - 0.03,
                                    "tick %d fired before its time: %r" % (k, [x - t0 for x in arrivals]))
            self.assertLessEqual(a - t1, period * k + jitter + 0.35,
                                 "tick %d later than its jitter allows: %r"
                                 % (k, [x - t0 for x in arrivals]))
        r, _ = self.await_timer(t["id"], 5)
        self.assertEqual((r.json()["state"], r.json()["fires"]), ("completed", n), r)


# ---- full queues, failing queues ---------------------------------------------------------------

class TimerQueueTest(TimerCase):

    def test_on_full_skip(self):
        q = self.q({"maxsize": 1})
        self.put(q, b"blocker")
        skips0 = self.d.metric("awaitd_timer_skips_total", 0)
        t = self.create(queue=q, payload="t", every=0.2, count=4)
        self.assertEqual(t["on_full"], "skip")
        r, _ = self.await_timer(t["id"], 10)
        self.assertEqual(r.status, 200, r)
        done = r.json()
        self.assertEqual((done["state"], done["fires"], done["skips"], done["last_error"]),
                         ("completed", 0, 4, "queue full"), done)
        self.assertGreaterEqual(self.d.metric("awaitd_timer_skips_total", 0) - skips0, 4)
        self.assertEqual(self.drain(q), {b"blocker": 1})

    def test_on_full_skip_then_room(self):
        """Ticks skip while the queue is full and fire again once there is room."""
        q = self.q({"maxsize": 1})
        self.put(q, b"blocker")
        t = self.create(queue=q, payload="t", every=0.2, count=10)
        self.wait_timer(t["id"], lambda x: x["skips"] >= 2, timeout=5, what="2 skips")
        r = self.reserve(q, 1)
        self.assertEqual(r.body, b"blocker")
        self.ack(q, r)
        self.wait_timer(t["id"], lambda x: x["fires"] >= 1, timeout=5, what="a fire")
        r, _ = self.await_timer(t["id"], 10)
        done = r.json()
        self.assertEqual(done["state"], "completed", done)
        self.assertEqual(done["fires"] + done["skips"], 10, done)
        self.assertGreaterEqual(done["fires"], 1, done)
        self.assertGreaterEqual(done["skips"], 2, done)
        self.assertEqual(self.drain(q), {b"t": 1})  # maxsize 1: only one fit

    def test_on_full_retry_fires_when_room_appears(self):
        q = self.q({"maxsize": 1})
        self.put(q, b"blocker")
        t0 = time.monotonic()
        t = self.create(queue=q, payload="retried", every=2, count=1, on_full="retry")
        self.assertEqual(t["on_full"], "retry", t)
        # the tick at 2 s finds the queue full and retries
        busy = self.wait_timer(t["id"], lambda x: x["retrying"], timeout=5, what="retrying")
        self.assertEqual((busy["state"], busy["fires"], busy["skips"], busy["last_error"]),
                         ("scheduled", 0, 0, "queue full"), busy)
        time.sleep(0.15)
        r = self.reserve(q, 1)
        self.assertEqual(r.body, b"blocker")
        self.ack(q, r)
        freed = time.monotonic()
        r, _ = self.await_timer(t["id"], 5)
        done = r.json()
        self.assertEqual((done["state"], done["fires"], done["skips"], done["retrying"]),
                         ("completed", 1, 0, False), done)
        self.assertLess(time.monotonic() - t0, 4.0, "the retry did not fire before the next tick")
        self.assertLess(time.monotonic() - freed, 1.6)
        self.assertEqual(self.drain(q), {b"retried": 1})

    def test_on_full_retry_one_shot(self):
        q = self.q({"maxsize": 1})
        self.put(q, b"blocker")
        t = self.create(queue=q, payload="once", after=0.1, on_full="retry")
        self.wait_timer(t["id"], lambda x: x["retrying"], timeout=5, what="retrying")
        time.sleep(0.5)
        self.assertEqual(self.timer(t["id"])["state"], "scheduled")
        r = self.reserve(q, 1)
        self.ack(q, r)
        r, _ = self.await_timer(t["id"], 5)
        done = r.json()
        self.assertEqual((done["state"], done["fires"]), ("completed", 1), done)
        self.assertEqual(self.drain(q), {b"once": 1})

    def test_one_shot_into_full_queue_fails(self):
        q = self.q({"maxsize": 1})
        self.put(q, b"blocker")
        t = self.create(queue=q, payload="lost", after=0.1)
        r, _ = self.await_timer(t["id"], 5)
        done = r.json()
        self.assertEqual((done["state"], done["fires"], done["skips"], done["last_error"]),
                         ("failed", 0, 1, "queue full"), done)

    def test_queue_deleted_fails_timer(self):
        q = self.q()
        t = self.create(queue=q, payload="d", every=0.2)
        self.wait_timer(t["id"], lambda x: x["fires"] >= 1, timeout=5, what="a fire")
        r = self.h("DELETE", "/queues/" + q)
        self.assertEqual(r.status, 200, r)
        r, took = self.await_timer(t["id"], 5)
        self.assertEqual(r.status, 200, r)
        done = r.json()
        self.assertEqual((done["state"], done["last_error"]), ("failed", "queue not found"), done)
        self.assertLess(took, 2.0)
        self.assertIsNotNone(done["finished"])
        self.assertIsNone(done["next_fire"])
        # a failed timer cannot be cancelled any more
        self.assertFalse(self.cancel(t["id"])["cancelled"])
        # a queue of the same name created again does not revive it
        self.newq(q)
        time.sleep(0.5)
        self.assertEqual(self.stats(q)["total_put"], 0)

    def test_queue_shutdown_fails_timer(self):
        q = self.q()
        t = self.create(queue=q, payload="s", every=0.2)
        r = self.h("POST", "/queues/%s/shutdown" % q)
        self.assertEqual(r.status, 200, r)
        r, _ = self.await_timer(t["id"], 5)
        done = r.json()
        self.assertEqual(done["state"], "failed", done)
        self.assertIsInstance(done["last_error"], str, done)
        self.assertTrue(done["last_error"], done)

    def test_payload_at_max_payload(self):
        q = self.q({"max_payload": 16})
        t = self.create(queue=q, payload="x" * 16, after=0)
        r, _ = self.await_timer(t["id"], 5)
        self.assertEqual(r.json()["state"], "completed", r)
        self.assertEqual(self.drain(q), {b"x" * 16: 1})

    def test_payload_base64_carries_any_bytes(self):
        # A JSON string cannot carry NUL; payload_base64 can carry anything.
        q = self.q()
        raw = bytes(range(256)) + b"\x00tail"
        for data in (raw, b"", b"a", b"ab", b"abc"):
            with self.subTest(n=len(data)):
                t = self.create(queue=q, payload_base64=base64.b64encode(data).decode(), after=0)
                r, _ = self.await_timer(t["id"], 5)
                self.assertEqual(r.json()["state"], "completed", r)
                self.assertEqual(self.drain(q), {data: 1})

    def test_payload_base64_bad_input_names_the_field(self):
        q = self.q()
        for spec in ({"payload_base64": "abc"}, {"payload_base64": "a*c="},
                     {"payload_base64": 5}, {"payload_base64": "YQ==", "payload": "a"},
                     {"payload": "a", "payload_base64": "YQ=="}):
            with self.subTest(spec=spec):
                r = self.create(expect=400, queue=q, after=0, **spec)
                self.assertIn("payload", r.json()["error"])


# ---- cancel and await -----------------------------------------------------------------------

class TimerCancelAwaitTest(TimerCase):
    config = {"queues": {"max_wait": "3s"}}

    def test_cancel_scheduled_then_again(self):
        q = self.q()
        t = self.create(queue=q, after=60)
        body = self.cancel(t["id"], True)
        c = body["timer"]
        self.assertEqual((c["state"], c["next_fire"], c["fires"]), ("cancelled", None, 0), c)
        self.assertIsNotNone(c["finished"])
        again = self.cancel(t["id"], False)
        self.assertEqual(again["timer"]["state"], "cancelled", again)
        # (times are rendered from the monotonic clock with the current wall offset: +-2 ms)
        self.assertAlmostEqual(parse_time(again["timer"]["finished"]), parse_time(c["finished"]),
                               delta=0.0025, msg=again)
        self.assertEqual(self.timer(t["id"])["state"], "cancelled")

    def test_cancel_completed_is_false(self):
        q = self.q()
        t = self.create(queue=q, after=0)
        self.await_timer(t["id"], 5)
        body = self.cancel(t["id"], False)
        self.assertEqual(body["timer"]["state"], "completed", body)

    def test_cancel_periodic_stops_firing(self):
        q = self.q()
        t = self.create(queue=q, payload="c", every=0.1)
        self.wait_timer(t["id"], lambda x: x["fires"] >= 2, timeout=5, what="2 fires")
        body = self.cancel(t["id"], True)
        fires = body["timer"]["fires"]
        time.sleep(0.4)
        self.assertEqual(self.timer(t["id"])["fires"], fires)
        self.assertEqual(self.drain(q), {b"c": fires})

    def test_unknown_id_404(self):
        for method in ("GET", "DELETE"):
            r = self.h(method, "/timers/987654321")
            self.assertJsonError(r, 404)
        r = self.h("GET", "/timers/987654321?wait=1")
        self.assertJsonError(r, 404)
        for bad in ("abc", "0", "-1", "1.5"):
            r = self.h("GET", "/timers/" + bad)
            self.assertIn(r.status, (400, 404), "GET /timers/%s: %r" % (bad, r))
            self.assertJsonError(r)

    def test_await_one_shot(self):
        q = self.q()
        t = self.create(queue=q, after=0.6)
        r, took = self.await_timer(t["id"], 5)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["state"], r.json()["fires"]), ("completed", 1), r)
        self.assertIn("application/json", r.header("Content-Type", ""))
        self.assertGreaterEqual(took, 0.45, "await returned after %.2f s" % took)
        self.assertLess(took, 2.5, "await returned after %.2f s" % took)

    def test_await_timeout_204(self):
        q = self.q()
        t = self.create(queue=q, after=60)
        r, took = self.await_timer(t["id"], 0.5)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, b"")
        self.assertGreaterEqual(took, 0.45, "204 after %.2f s" % took)
        self.assertLess(took, 2.0, "204 after %.2f s" % took)
        self.assertEqual(self.timer(t["id"])["state"], "scheduled")
        self.cancel(t["id"], True)

    def test_await_capped_by_max_wait(self):
        q = self.q()
        t = self.create(queue=q, after=60)
        r, took = self.await_timer(t["id"], 100, timeout=20)
        self.assertEqual(r.status, 204, r)
        self.assertGreaterEqual(took, 2.8, "204 after %.2f s (max_wait 3s)" % took)
        self.assertLess(took, 5.0, "204 after %.2f s (max_wait 3s)" % took)
        self.cancel(t["id"], True)

    def test_await_finished_answers_at_once(self):
        q = self.q()
        t = self.create(queue=q, after=60)
        self.cancel(t["id"], True)
        r, took = self.await_timer(t["id"], 10)
        self.assertEqual((r.status, r.json()["state"]), (200, "cancelled"), r)
        self.assertLess(took, 0.5)

    def test_await_wait_zero_and_bad_wait(self):
        q = self.q()
        t = self.create(queue=q, after=60)
        r, took = self.await_timer(t["id"], 0)
        self.assertEqual((r.status, r.json()["state"]), (200, "scheduled"), r)
        self.assertLess(took, 0.5)
        for bad in ("abc", "-1"):
            r = self.h("GET", "/timers/%d?wait=%s" % (t["id"], bad))
            body = self.assertJsonError(r, 400)
            self.assertIn("wait", body["error"])
        self.cancel(t["id"], True)

    def test_cancel_wakes_every_awaiter(self):
        q = self.q()
        t = self.create(queue=q, every=1)
        futs = [self.bg(self.await_timer, t["id"], 10) for _ in range(3)]
        time.sleep(0.3)
        for f in futs:
            self.assertFalse(f.done(), "an await returned before the cancel")
        cancelled_at = time.monotonic()
        self.cancel(t["id"], True)
        for f in futs:
            (r, _), done_at = self.result(f)
            self.assertEqual((r.status, r.json()["state"]), (200, "cancelled"), r)
            self.assertLess(done_at - cancelled_at, 1.0)

    def test_completion_wakes_every_awaiter(self):
        q = self.q()
        t = self.create(queue=q, every=0.3, count=2)
        futs = [self.bg(self.await_timer, t["id"], 10) for _ in range(3)]
        for f in futs:
            (r, took), _ = self.result(f)
            self.assertEqual((r.status, r.json()["state"], r.json()["fires"]),
                             (200, "completed", 2), r)
            self.assertLess(took, 3.0)

    def test_await_client_disconnect_leaves_no_waiter(self):
        q = self.q()
        t = self.create(queue=q, every=1)
        req = ("GET /timers/%d?wait=10 HTTP/1.1\r\nHost: x\r\n\r\n" % t["id"]).encode()
        open0 = self.d.metric("awaitd_connections_open")
        gone = [RawConn(self.d.port, timeout=5) for _ in range(3)]
        for c in gone:
            c.send(req)
        live = self.bg(self.await_timer, t["id"], 10)
        time.sleep(0.3)
        for c in gone:
            self.assertEqual(c.read_some(0.05), b"", "an await answered before the cancel")
            c.close()
        if open0 is not None:
            # the daemon notices the closes (only the live awaiter stays open)
            deadline = time.monotonic() + 3
            while self.d.metric("awaitd_connections_open") > open0 + 1.5:
                self.assertLess(time.monotonic(), deadline,
                                "closed awaiters still counted as open connections")
                time.sleep(0.05)
        # the timer fires (waking no one) and a follow-up DELETE answers the live awaiter
        time.sleep(1.2)
        body = self.cancel(t["id"], True)
        (r, _), _ = self.result(live)
        self.assertEqual((r.status, r.json()["state"]), (200, "cancelled"), r)
        self.assertGreaterEqual(body["timer"]["fires"], 1)
        self.assertTrue(self.d.alive())
        self.assertEqual(self.h("GET", "/health").status, 200)

    def test_await_disconnect_then_completion(self):
        """Awaiters gone before a one-shot completes: the completion wakes nobody, safely."""
        q = self.q()
        t = self.create(queue=q, after=0.5)
        req = ("GET /timers/%d?wait=10 HTTP/1.1\r\nHost: x\r\n\r\n" % t["id"]).encode()
        for _ in range(5):
            c = RawConn(self.d.port, timeout=5)
            c.send(req)
            time.sleep(0.02)
            c.close()
        r, _ = self.await_timer(t["id"], 5)
        self.assertEqual((r.status, r.json()["state"]), (200, "completed"), r)
        self.assertEqual(self.h("GET", "/health").status, 200)

    def test_await_pipelined_behind(self):
        """A request pipelined behind an await is answered after it."""
        q = self.q()
        t = self.create(queue=q, after=0.4)
        with RawConn(self.d.port, timeout=10) as c:
            c.send("GET /timers/%d?wait=5 HTTP/1.1\r\nHost: x\r\n\r\n"
                   "GET /timers/%d HTTP/1.1\r\nHost: x\r\n\r\n" % (t["id"], t["id"]))
            r1 = c.read_response()
            r2 = c.read_response()
        self.assertEqual((r1.status, r1.json()["state"]), (200, "completed"), r1)
        self.assertEqual((r2.status, r2.json()["state"]), (200, "completed"), r2)


# ---- listing, validation, methods, metrics ---------------------------------------------------

class TimerApiTest(TimerCase):

    def test_list_paging(self):
        q = self.q()
        mine = [self.create(queue=q, after=60)["id"] for _ in range(7)]
        self.assertEqual(mine, sorted(mine))
        self.assertEqual(len(set(mine)), 7)
        seen = []
        after = mine[0] - 1
        pages = 0
        while True:
            r = self.h("GET", "/timers?after=%d&limit=3" % after)
            self.assertEqual(r.status, 200, r)
            body = r.json()
            self.assertEqual(set(body), {"timers", "next_after"}, body)
            ids = [x["id"] for x in body["timers"]]
            self.assertLessEqual(len(ids), 3)
            self.assertEqual(ids, sorted(ids))
            self.assertTrue(all(i > after for i in ids), (after, ids))
            seen += ids
            pages += 1
            self.assertLess(pages, 50)
            if body["next_after"] is None:
                break
            self.assertEqual(body["next_after"], ids[-1], body)
            after = body["next_after"]
        self.assertEqual([i for i in seen if i in mine], mine)
        self.assertGreaterEqual(pages, 3)
        # the whole list, default limit
        r = self.h("GET", "/timers")
        ids = [x["id"] for x in r.json()["timers"]]
        self.assertTrue(set(mine) <= set(ids), ids)
        self.assertEqual(ids, sorted(ids))
        # the entries are whole timers
        r = self.h("GET", "/timers?after=%d&limit=1" % (mine[2] - 1))
        self.assertEqual(r.json()["timers"], [self.timer(mine[2])])
        self.assertEqual(r.json()["next_after"], mine[2])
        # past the end
        r = self.h("GET", "/timers?after=%d" % (10 ** 12))
        self.assertEqual(r.json(), {"timers": [], "next_after": None})
        for bad in ("limit=0", "limit=1001", "limit=x", "after=x", "after=-1"):
            r = self.h("GET", "/timers?" + bad)
            body = self.assertJsonError(r, 400)
            self.assertIn(bad.split("=")[0], body["error"], bad)
        r = self.h("GET", "/timers?limit=1000")
        self.assertEqual(r.status, 200, r)
        for tid in mine:
            self.cancel(tid, True)

    def test_bad_input_400_names_the_field(self):
        q = self.q({"max_payload": 16})
        cases = [
            ({"queue": q, "every": 1, "bogus": 1}, "bogus"),
            ({"queue": q, "every": 0}, "every"),
            ({"queue": q, "every": -1}, "every"),
            ({"queue": q, "every": "1"}, "every"),
            ({"queue": q, "after": -1}, "after"),
            ({"queue": q, "after": "soon"}, "after"),
            ({"queue": q, "after": 1, "every": 1}, "after"),
            ({"queue": q, "at": rfc3339(time.time() + 60), "cron": "* * * * *"}, "cron"),
            ({"queue": q}, "after"),
            ({"queue": q, "payload": "x"}, "every"),
            ({"queue": q, "cron": "61 * * * *"}, "61"),
            ({"queue": q, "cron": "* * * * * *"}, "cron"),
            ({"queue": q, "cron": "* * *"}, "cron"),
            ({"queue": q, "cron": "* 24 * * *"}, "cron"),
            ({"queue": q, "cron": "bogus"}, "cron"),
            ({"queue": q, "at": "tomorrow"}, "at"),
            ({"queue": q, "at": "2026-13-01T00:00:00Z"}, "at"),
            ({"queue": q, "at": "2026-01-01T00:00:00"}, "at"),
            ({"queue": q, "at": 12345}, "at"),
            ({"queue": q, "every": 1, "count": 0}, "count"),
            ({"queue": q, "every": 1, "count": -2}, "count"),
            ({"queue": q, "every": 1, "count": 1.5}, "count"),
            ({"queue": q, "after": 1, "count": 2}, "count"),
            ({"queue": q, "after": 1, "jitter": 0.1}, "jitter"),
            ({"queue": q, "every": 1, "jitter": 1}, "jitter"),
            ({"queue": q, "every": 1, "jitter": 2}, "jitter"),
            ({"queue": q, "every": 1, "jitter": -0.1}, "jitter"),
            ({"queue": q, "every": 1, "on_full": "block"}, "on_full"),
            ({"queue": q, "every": 1, "on_missed": "all"}, "on_missed"),
            ({"queue": q, "after": 1, "payload": 5}, "payload"),
            ({"every": 1}, "queue"),
            ({"queue": "no-such-queue", "every": 1}, "queue"),
            ({"queue": 7, "every": 1}, "queue"),
            ({"queue": "bad name!", "every": 1}, "queue"),
        ]
        for spec, field in cases:
            with self.subTest(spec=spec):
                r = self.h("POST", "/timers", body=spec)
                body = self.assertJsonError(r, 400)
                self.assertIn(field, body["error"], "%r: %r" % (spec, body))
                self.assertEqual(body.get("status"), 400, body)
        for raw in (b"not json", b"[1, 2]", b"\"a string\"", b"", b"{\"queue\": ", b"null"):
            with self.subTest(body=raw):
                r = self.h("POST", "/timers", body=raw, headers={"Content-Type": "application/json"})
                self.assertJsonError(r, 400)
        # nothing was created by any of them
        r = self.h("GET", "/timers?limit=1000")
        self.assertEqual([x for x in r.json()["timers"] if x["queue"] == q], [])

    def test_unknown_id_any_method_404(self):
        """A timer that does not exist is 404 whatever the method, as before
        the service seam (405 only for one that exists)."""
        for method in ("PUT", "POST", "PATCH"):
            with self.subTest(method=method):
                r = self.h(method, "/timers/999999999", body=b"{}")
                self.assertJsonError(r, 404)

    def test_stored_lengths_are_bounded(self):
        """A 65,549-byte cron used to be accepted and stored with its length
        cut to 16 bits (GET showed 13 bytes; the firing's payload carried the
        cron's tail). Every length a timer stores is checked when the request
        is parsed: 400 naming the field, never cut short."""
        q = self.q({"max_payload": 16})
        long_cron = "* * * * *" + " " * 65540
        self.assertEqual(len(long_cron), 65549)
        for spec, field in (({"queue": q, "cron": long_cron}, "cron"),
                            ({"queue": q, "cron": "* * * * *" + " " * 504}, "cron"),
                            ({"queue": "q" * 300, "every": 1}, "queue")):
            with self.subTest(field=field, length=len(spec.get("cron", spec["queue"]))):
                r = self.h("POST", "/timers", body=spec)
                body = self.assertJsonError(r, 400)
                self.assertIn(field, body["error"], body)
        # at the bound, kept exactly as written
        cron = "* * * * *" + " " * 503
        t = self.create(queue=q, cron=cron, payload="p")
        self.assertEqual(self.timer(t["id"])["cron"], cron)
        self.cancel(t["id"], True)
        r = self.h("GET", "/timers?limit=1000")
        self.assertEqual([x["id"] for x in r.json()["timers"] if x["queue"] == q], [t["id"]])

    def test_methods_405(self):
        q = self.q()
        t = self.create(queue=q, after=60)
        for method, path in (("PUT", "/timers"), ("DELETE", "/timers"), ("PATCH", "/timers"),
                             ("PUT", "/timers/%d" % t["id"]), ("POST", "/timers/%d" % t["id"]),
                             ("PATCH", "/timers/%d" % t["id"])):
            with self.subTest(method=method, path=path):
                r = self.h(method, path, body=b"{}" if method in ("PUT", "POST", "PATCH") else None)
                self.assertJsonError(r, 405)
        self.cancel(t["id"], True)

    def test_metrics(self):
        q = self.q()
        m0 = self.d.metrics()
        for state in ("scheduled", "completed", "cancelled", "failed"):
            self.assertIn('awaitd_timers{state="%s"}' % state, m0)
        t = self.create(queue=q, every=0.1, count=3)
        self.await_timer(t["id"], 5)
        m1 = self.d.metrics()
        self.assertGreaterEqual(m1["awaitd_timer_fires_total"] - m0["awaitd_timer_fires_total"], 3)
        self.assertGreaterEqual(m1['awaitd_timers{state="completed"}'],
                                m0['awaitd_timers{state="completed"}'] + 1)
        buckets = sorted(((float(k.split('"')[1]) if '"+Inf"' not in k else float("inf")), v)
                         for k, v in m1.items() if k.startswith("awaitd_timer_lateness_seconds_bucket"))
        self.assertGreaterEqual(len(buckets), 3, buckets)
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets), buckets)
        self.assertEqual(buckets[-1][1], m1["awaitd_timer_lateness_seconds_count"])
        self.assertGreaterEqual(m1["awaitd_timer_lateness_seconds_count"] -
                                m0["awaitd_timer_lateness_seconds_count"], 3)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def asan_quarantine_mb(pid):
    """MB AddressSanitizer may keep of freed memory in a daemon built with it
    (its quarantine, 256 by default), else 0: freed request bodies count in
    RSS there."""
    with open("/proc/%d/maps" % pid) as f:
        if "libasan" not in f.read():
            return 0
    for opt in os.environ.get("ASAN_OPTIONS", "").split(":"):
        if opt.startswith("quarantine_size_mb="):
            return int(opt.split("=")[1])
    return 256


class TimerLimitsTest(TimerCase):
    """Issue 12, finding 2: timers are charged (payload and bookkeeping)
    against [queues] mem_limit together with the queued jobs, their number
    is bounded by [timers] max_timers, and the refusals are answered as a
    put's: 503 with Retry-After and a JSON body naming the setting; a
    payload over the queue's max_payload is a 413, as for a put."""

    config = {"queues": {"mem_limit": "8m"}, "timers": {"max_timers": "40"}}

    def test_payload_over_max_payload_413(self):
        q = self.q({"max_payload": 16})
        body = self.assertJsonError(self.create(queue=q, after=1, payload="x" * 17, expect=413), 413)
        self.assertIn("max_payload", body["error"], body)
        r = self.h("POST", "/queues/%s/jobs" % q, body=b"x" * 17)
        self.assertJsonError(r, 413)  # the same answer as a put
        listed = self.h("GET", "/timers?limit=1000").json()["timers"]
        self.assertEqual([x for x in listed if x["queue"] == q], [])

    def test_big_timers_refused_at_mem_limit(self):
        """The issue's case: with mem_limit = 8m, 200 timers of 900 KB took
        RSS from 6.5 to 203 MB. Now about 8 MB of them are accepted, the
        rest refused, RSS stays bounded, puts see the same budget, and
        cancelling gives the memory back."""
        q = self.q()
        pid = self.d.proc.pid
        payload = "x" * (900 * 1024)
        rss0 = rss_kb(pid)
        ids, refused = [], 0
        self.addCleanup(lambda: [self.h("DELETE", "/timers/%d" % t) for t in ids])
        for i in range(200):
            r = self.h("POST", "/timers", body={"queue": q, "after": 3600, "payload": payload})
            if r.status == 201:
                self.assertFalse(refused, "a timer was accepted after one was refused: %r" % r)
                ids.append(r.json()["id"])
                continue
            body = self.assertJsonError(r, 503)
            self.assertIn("mem_limit", body["error"], body)
            self.assertRegex(r.header("Retry-After", ""), r"^\d+$", r)
            refused += 1
        self.assertGreaterEqual(len(ids), 7, "8 MB should hold 8 timers of 900 KB")
        self.assertLessEqual(len(ids), 9, "%d timers of 900 KB under an 8 MB limit" % len(ids))
        grown = (rss_kb(pid) - rss0) / 1024.0
        self.assertLess(grown, 64 + asan_quarantine_mb(pid),
                        "RSS grew %.1f MB for %d timers" % (grown, len(ids)))
        m = self.d.metrics()
        self.assertGreater(m["awaitd_timer_memory_bytes"], len(ids) * 900 * 1024)
        # the queues see the same budget: a 100 KB put is refused as well
        r = self.h("POST", "/queues/%s/jobs" % q, body=b"y" * (100 * 1024))
        body = self.assertJsonError(r, 503)
        # cancelling frees the budget: puts and timers fit again
        for tid in ids:
            self.cancel(tid, True)
        self.wait_for(lambda: self.d.metrics()["awaitd_timer_memory_bytes"] < 64 * 1024,
                      "cancelled timers to give their payloads back")
        self.put(q, b"y" * (100 * 1024))
        self.assertEqual(self.drain(q), {b"y" * (100 * 1024): 1})
        t = self.create(queue=q, after=3600, payload=payload)
        # a cancelled timer still shows what it was (not its payload)
        done = self.timer(ids[0])
        self.assertEqual((done["state"], done["queue"]), ("cancelled", q), done)
        self.cancel(t["id"], True)

    def wait_for(self, pred, what, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                self.fail("timed out waiting for " + what)
            time.sleep(0.02)

    def test_max_timers(self):
        q = self.q()
        ids = []
        self.addCleanup(lambda: [self.h("DELETE", "/timers/%d" % t) for t in ids])
        listed = self.h("GET", "/timers?limit=1000").json()["timers"]
        scheduled = sum(1 for t in listed if t["state"] == "scheduled")
        for i in range(40 - scheduled):
            ids.append(self.create(queue=q, after=3600)["id"])
        r = self.h("POST", "/timers", body={"queue": q, "every": 1})
        body = self.assertJsonError(r, 503)
        self.assertIn("max_timers", body["error"], body)
        self.assertRegex(r.header("Retry-After", ""), r"^\d+$", r)
        # a finished timer no longer counts
        self.cancel(ids.pop(), True)
        ids.append(self.create(queue=q, after=3600)["id"])
        self.assertJsonError(self.h("POST", "/timers", body={"queue": q, "after": 1}), 503)
        for tid in ids:
            self.cancel(tid, True)


class TimerAuthTest(TimerCase):
    config = {"auth": {"token": TOKEN}}
    token = TOKEN

    def test_timers_need_the_token(self):
        q = self.q()
        t = self.create(queue=q, after=60)
        for method, path, body in (("POST", "/timers", {"queue": q, "after": 1}),
                                   ("GET", "/timers", None),
                                   ("GET", "/timers/%d" % t["id"], None),
                                   ("GET", "/timers/%d?wait=1" % t["id"], None),
                                   ("DELETE", "/timers/%d" % t["id"], None),
                                   ("GET", "/timers/999999", None)):
            for hdrs in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                         {"Authorization": "Basic " + TOKEN}):
                with self.subTest(method=method, path=path, headers=hdrs):
                    r = self.h(method, path, body=body, headers=hdrs, auth=False)
                    self.assertJsonError(r, 401)
        # nothing happened: the timer is still scheduled, no new one
        self.assertEqual(self.timer(t["id"])["state"], "scheduled")
        r = self.h("GET", "/timers")
        self.assertEqual([x["id"] for x in r.json()["timers"]], [t["id"]])
        self.cancel(t["id"], True)


# ---- restarts ---------------------------------------------------------------------------------

class Node:
    """An awaitd whose journal outlives its process: start, stop, kill, restart."""

    def __init__(self, fsync="always"):
        self.tmp = tempfile.mkdtemp(prefix="awaitd-timer-restart-")
        self.d = Daemon({"journal": {"path": os.path.join(self.tmp, "j"), "fsync": fsync}})
        self.d.tmpdir = self.tmp

    def start(self):
        self.d.start()
        return self

    def term(self):
        self.d.signal(signal.SIGTERM)
        rc = self.d.wait(15)
        text = self.d.stderr()
        self.d._kill()
        if rc != 0:
            raise AssertionError("awaitd exited with %r on SIGTERM; stderr:\n%s" % (rc, text[-5000:]))
        self.d.check_stderr()

    def kill(self):
        self.d.signal(signal.SIGKILL)
        self.d.wait(10)
        self.d._kill()
        self.d.check_stderr()

    def cleanup(self):
        if self.d.alive():
            self.d._kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


class TimerRestartTest(TimerClient, unittest.TestCase):

    def setUp(self):
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            n.cleanup()

    def node(self, fsync="always"):
        n = Node(fsync)
        self.nodes.append(n)
        self.n = n.start()
        return n

    def http(self, method, path, body=None, headers=None, timeout=10.0):
        return self.n.d.http(method, path, body=body, headers=headers, timeout=timeout)

    def test_restart_resumes_timers(self):
        n = self.node()
        self.newq("r")
        a = self.create(queue="r", payload="tick", every=0.5)
        b = self.create(queue="r", payload="once", after=3)
        b_due = parse_time(b["next_fire"])
        time.sleep(0.8)
        a1 = self.timer(a["id"])
        self.assertGreaterEqual(a1["fires"], 1, a1)
        # an await in flight at SIGTERM is answered (503: shutting down)
        pool = concurrent.futures.ThreadPoolExecutor(1)
        fut = pool.submit(n.d.http, "GET", "/timers/%d?wait=15" % b["id"], timeout=20)
        time.sleep(0.2)
        stop_at = time.time()
        n.term()
        try:
            r = fut.result(20)
            self.assertEqual(r.status, 503, "an await in flight at SIGTERM: %r" % r)
        except (OSError, http.client.HTTPException):
            pass  # closed without an answer is acceptable too
        pool.shutdown()
        a_stopped = a1["fires"]
        time.sleep(1.5)
        n.start()
        started = time.time()
        a2 = self.timer(a["id"])
        self.assertEqual((a2["id"], a2["state"], a2["kind"], a2["every"], a2["queue"]),
                         (a["id"], "scheduled", "every", 0.5, "r"), a2)
        self.assertGreaterEqual(a2["fires"], a_stopped, a2)
        b2 = self.timer(b["id"])
        if started < b_due - 0.1:
            self.assertEqual(b2["state"], "scheduled", b2)
            self.assertAlmostEqual(parse_time(b2["next_fire"]), b_due, delta=0.05,
                                   msg="the one-shot's time moved: %r (was %s)" % (b2, b["next_fire"]))
        # the periodic one keeps firing
        time.sleep(1.2)
        a3 = self.timer(a["id"])
        self.assertGreater(a3["fires"], a2["fires"], (a2, a3))
        # the one-shot fires at its original time, not 3 s after the restart
        r, _ = self.await_timer(b["id"], 10)
        self.assertEqual(r.status, 200, r)
        b3 = r.json()
        self.assertEqual((b3["state"], b3["fires"]), ("completed", 1), b3)
        self.assertGreaterEqual(parse_time(b3["finished"]), b_due - 0.05, b3)
        # judged on when the daemon fired it ("finished"), not on when this test's await
        # came back: that follows the 1.2 s sleep above, past b_due + 1 s when the restart
        # came late under load (the await came back 1.01 s after b_due in a make check -j2)
        fired = parse_time(b3["finished"])
        self.assertLess(fired, max(b_due, started) + 1.0,
                        "the one-shot due at %s fired %.2f s after it (restart at +%.2f s)"
                        % (b["next_fire"], fired - b_due, started - stop_at))
        # new ids are above the old ones
        c = self.create(queue="r", after=60)
        self.assertGreater(c["id"], max(a["id"], b["id"]))
        # the queue holds what was fired, before and after the restart
        final = self.cancel(a["id"], True)["timer"]
        counts = self.drain("r")
        self.assertEqual(counts.get(b"once"), 1, counts)
        self.assertEqual(counts.get(b"tick"), final["fires"], (counts, final))
        n.term()

    def test_on_missed_fire_once_vs_skip(self):
        """every 1 s; down from +1.5 s to about +5.2 s, missing the ticks at 2, 3, 4 and 5 s:
        fire_once fires once at start, skip waits for the tick at 6 s."""
        n = self.node()
        self.newq("m")
        c0 = time.time()
        once = self.create(queue="m", payload="once", every=1, on_missed="fire_once")
        skip = self.create(queue="m", payload="skip", every=1, on_missed="skip")
        c1 = time.time()
        self.assertEqual((once["on_missed"], skip["on_missed"]), ("fire_once", "skip"))
        time.sleep(max(0.0, c0 + 1.5 - time.time()))
        before = {t["id"]: self.timer(t["id"]) for t in (once, skip)}
        for t in before.values():
            self.assertEqual((t["fires"], t["skips"]), (1, 0), t)
        n.term()
        time.sleep(max(0.0, c1 + 5.2 - time.time()))
        n.start()
        got = {t["id"]: self.timer(t["id"]) for t in (once, skip)}
        seen_at = time.time()
        o, s = got[once["id"]], got[skip["id"]]
        # fire_once: the catch-up fired at once; the missed ticks count as skips
        self.assertEqual(o["state"], "scheduled", o)
        self.assertGreaterEqual(o["fires"], 2, "no catch-up fire after the restart: %r" % o)
        self.assertLessEqual(o["fires"], 3, "a burst after the restart: %r" % o)
        self.assertGreaterEqual(o["skips"], 2, o)
        # skip: every missed tick skipped, nothing fired until the next tick on the grid
        self.assertEqual(s["state"], "scheduled", s)
        self.assertGreaterEqual(s["skips"], 3, "missed ticks not counted: %r" % s)
        if seen_at < c0 + 5.95:
            self.assertEqual(s["fires"], 1, "skip fired missed ticks: %r" % s)
            nf = parse_time(s["next_fire"])
            self.assertGreater(nf, seen_at - 0.05, s)
        else:
            self.assertLessEqual(s["fires"], 2, s)
        # no burst in the queue either
        for t in (once, skip):
            self.cancel(t["id"])
        counts = self.drain("m")
        final = {t["id"]: self.timer(t["id"]) for t in (once, skip)}
        self.assertEqual(counts.get(b"once", 0), final[once["id"]]["fires"], (counts, final))
        self.assertEqual(counts.get(b"skip", 0), final[skip["id"]]["fires"], (counts, final))
        self.assertLessEqual(counts.get(b"skip", 0), 2, counts)
        n.term()

    def test_restart_keeps_finished_timers(self):
        n = self.node()
        self.newq("f")
        done = self.create(queue="f", after=0)
        self.await_timer(done["id"], 5)
        cancelled = self.create(queue="f", every=10)
        self.cancel(cancelled["id"], True)
        counted = self.create(queue="f", every=0.1, count=2)
        self.await_timer(counted["id"], 5)
        before = {t: self.timer(t) for t in (done["id"], cancelled["id"], counted["id"])}
        n.term()
        n.start()
        for tid, t in before.items():
            after = self.timer(tid)
            self.assertAlmostEqual(parse_time(after.pop("finished")), parse_time(t.pop("finished")),
                                   delta=0.05, msg=(t, after))
            self.assertEqual(after, t)
        n.term()

    def test_sigkill_keeps_acknowledged_creates_and_cancels(self):
        n = self.node("always")
        self.newq("k")
        kept = self.create(queue="k", payload="kept", every=30)
        gone = self.create(queue="k", payload="gone", after=60)
        self.cancel(gone["id"], True)
        n.kill()
        n.start()
        k = self.timer(kept["id"])
        self.assertEqual((k["state"], k["every"]), ("scheduled", 30.0), k)
        self.assertAlmostEqual(parse_time(k["next_fire"]), parse_time(kept["next_fire"]), delta=0.05)
        g = self.timer(gone["id"])
        self.assertEqual(g["state"], "cancelled", g)
        n.term()

    def test_sigkill_during_traffic(self):
        """Threads create and cancel timers; SIGKILL mid-flight; every acknowledged
        create is there, every acknowledged cancel is still cancelled."""
        n = self.node("always")
        self.newq("kt")
        port = n.d.port
        lock = threading.Lock()
        created, cancel_sent, cancelled, errors = {}, set(), set(), []
        stop = threading.Event()

        def worker(wid):
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            i = 0
            try:
                while not stop.is_set():
                    i += 1
                    spec = {"queue": "kt", "payload": "w%d-%d" % (wid, i)}
                    spec.update({"every": 30} if i % 2 else {"after": 60})
                    try:
                        conn.request("POST", "/timers", body=json.dumps(spec))
                        resp = conn.getresponse()
                        body = resp.read()
                    except (OSError, http.client.HTTPException):
                        return
                    if resp.status != 201:
                        errors.append(("create", resp.status, body))
                        return
                    t = json.loads(body)
                    with lock:
                        created[t["id"]] = t
                    if i % 3 == 0:
                        with lock:
                            cancel_sent.add(t["id"])
                        try:
                            conn.request("DELETE", "/timers/%d" % t["id"])
                            resp = conn.getresponse()
                            body = resp.read()
                        except (OSError, http.client.HTTPException):
                            return
                        if resp.status != 200 or not json.loads(body)["cancelled"]:
                            errors.append(("cancel", resp.status, body))
                            return
                        with lock:
                            cancelled.add(t["id"])
            finally:
                conn.close()

        threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(4)]
        for th in threads:
            th.start()
        time.sleep(1.0)
        n.kill()
        stop.set()
        for th in threads:
            th.join(10)
        self.assertEqual(errors, [])
        self.assertGreater(len(created), 10, "too few timers created before the kill")
        n.start()
        listed = {}
        after = 0
        for _ in range(1000):
            r = self.h("GET", "/timers?after=%d&limit=1000" % after)
            self.assertEqual(r.status, 200, r)
            body = r.json()
            listed.update({x["id"]: x for x in body["timers"]})
            if body["next_after"] is None:
                break
            after = body["next_after"]
        missing = sorted(set(created) - set(listed))
        self.assertEqual(missing, [], "timers that got their 201 are gone after SIGKILL")
        for tid in created:
            if tid in cancelled:
                self.assertEqual(listed[tid]["state"], "cancelled", "a DELETE that got its 200: %r"
                                 % listed[tid])
            elif tid not in cancel_sent:
                self.assertEqual(listed[tid]["state"], "scheduled", listed[tid])
            # a DELETE sent but not answered before the kill may or may not have been journaled
            self.assertEqual(listed[tid]["next_fire"] is None, listed[tid]["state"] == "cancelled")
        # anything extra is a create that was journaled but not answered: still valid
        for tid, t in listed.items():
            self.assertIn(t["state"], ("scheduled", "cancelled"), t)
        new = self.create(queue="kt", after=60)
        self.assertGreater(new["id"], max(listed))
        n.term()


if __name__ == "__main__":
    unittest.main(verbosity=2)
