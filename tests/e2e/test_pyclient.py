"""The asyncio client library (clients/python, package awaitd) against the
real daemon: every Queue, Job and Timer method, blocking put/get/join across
the daemon's max_wait (1 s here), shutdown, errors, the bearer token; the
article's four programs in clients/python/examples/ with their timings; and
an offline pip install of the package into a temp dir."""

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from awaitd_test import SRCDIR, DaemonTestCase, JournalDaemonTestCase

CLIENT_DIR = os.path.join(SRCDIR, "clients", "python")
sys.path.insert(0, CLIENT_DIR)

import awaitd  # noqa: E402  (from clients/python, just put on the path)

TOKEN = "pyclient-token-0123456789abcdef"


class ClientCase:
    """Runs async tests: self.arun(fn) calls fn(client) on a fresh Client."""

    token = None

    def arun(self, fn, **kw):
        async def main():
            async with awaitd.Client(self.d.url(""), token=self.token, **kw) as client:
                return await asyncio.wait_for(fn(client), 60)
        return asyncio.run(main())

    def qname(self):
        return "py-" + self.id().rsplit(".", 1)[-1]


class QueueTest(ClientCase, JournalDaemonTestCase):

    tmp_prefix = "awaitd-pyc-"
    config = {"queues": {"max_wait": "1s"}}

    def test_put_get_ack(self):
        async def t(client):
            q = client.queue(self.qname(), maxsize=10)
            ids = [await q.put(b"raw\0bytes"), await q.put("text é"),
                   await q.put({"n": 1, "s": [1, 2]})]
            got = [await q.get() for _ in range(3)]
            st_reserved = await q.stats()
            for job in got:
                await q.task_done(job)
            return ids, got, st_reserved, await q.stats()

        t0 = time.time()
        ids, got, mid, st = self.arun(t)
        self.assertEqual([j.id for j in got], ids)
        self.assertEqual(got[0].payload, b"raw\0bytes")
        self.assertEqual(got[1].text(), "text é")
        self.assertEqual(got[2].json(), {"n": 1, "s": [1, 2]})
        for job in got:
            self.assertIsInstance(job.payload, bytes)
            self.assertEqual(job.attempt, 1)
            self.assertTrue(job.finished)
            # the default lease is 30 s
            self.assertGreater(job.lease_deadline, t0 + 25)
            self.assertLess(job.lease_deadline, time.time() + 31)
        self.assertEqual((mid["reserved"], mid["maxsize"]), (3, 10), mid)
        self.assertEqual((st["reserved"], st["unfinished"], st["total_acked"]), (0, 0, 3), st)

    def test_put_handle_awaits_the_result(self):
        async def t(client):
            q = client.queue(self.qname(), max_attempts=1)
            h_json, h_text, h_bytes, h_none = [await q.put(i) for i in (1, 2, 3, 4)]
            self.assertIsInstance(h_json, awaitd.JobHandle)
            self.assertIsInstance(h_json, int)  # still the id
            self.assertEqual(h_json.id, int(h_json))
            # The producer waits first (across the daemon's 1 s max_wait), the worker acks later.
            waiter = asyncio.ensure_future(h_json.result(timeout=20))
            await asyncio.sleep(1.5)
            self.assertFalse(waiter.done())
            jobs = [await q.get() for _ in range(4)]
            await jobs[0].ack(result={"sum": 3, "items": ["é"]})
            t0 = time.monotonic()
            got_json = await waiter
            woke = time.monotonic() - t0
            await q.task_done(jobs[1], result="plain text é")
            await jobs[2].ack(result=b"\x00\xffraw")
            await jobs[3].ack()
            return (got_json, woke, await h_text.result(), await h_bytes.result(timeout=5),
                    await h_bytes.result(decode=False), h_none)

        got_json, woke, text, raw, raw2, h_none = self.arun(t)
        self.assertEqual(got_json, {"sum": 3, "items": ["é"]})
        self.assertLess(woke, 5)
        self.assertEqual(text, "plain text é")
        self.assertEqual((raw, raw2), (b"\x00\xffraw", b"\x00\xffraw"))

        async def none_kept(client):  # acked without a result and nobody waiting: 404
            return await client.queue(self.qname()).result(int(h_none), timeout=1)
        with self.assertRaises(awaitd.AwaitdError) as cm:
            self.arun(none_kept)
        self.assertEqual(cm.exception.status, 404)

    def test_result_timeout_failure_and_none(self):
        # The job context nacks with the exception's text when its block raises.
        async def body(client):
            q = client.queue(self.qname(), max_attempts=1)
            h = await q.put("slow")
            t0 = time.monotonic()
            try:
                await h.result(timeout=1.5)
                timed_out = False
            except asyncio.TimeoutError:
                timed_out = True
            waited = time.monotonic() - t0
            waiter = asyncio.ensure_future(h.result(timeout=20))
            await asyncio.sleep(0.2)
            job = await q.get()
            await job.ack()  # no result: the waiting producer gets None
            none = await waiter
            h2 = await q.put("doomed")
            try:
                async with await q.get():
                    raise ValueError("bad input <x>")
            except ValueError:
                pass
            try:
                await h2.result(timeout=5)
                failed = None
            except awaitd.JobFailed as e:
                failed = e
            h3 = await q.put("lost")
            job = await q.get()
            await job.nack(error="gave up")
            try:
                await q.handle(int(h3)).result()
            except awaitd.JobFailed as e:
                failed3 = e
            return timed_out, waited, none, failed, failed3, await q.list_jobs("dead")

        timed_out, waited, none, failed, failed3, dead = self.arun(body)
        self.assertTrue(timed_out)
        self.assertGreaterEqual(waited, 1.4)
        self.assertIsNone(none)
        self.assertEqual((failed.status, failed.reason, failed.detail, failed.attempt),
                         (409, "nacked", "ValueError: bad input <x>", 1))
        self.assertEqual((failed3.reason, failed3.detail), ("nacked", "gave up"))
        self.assertEqual([(j["reason"], j["error"]) for j in dead["jobs"]],
                         [("nacked", "ValueError: bad input <x>"), ("nacked", "gave up")])

    def test_declare_keeps_other_settings(self):
        async def t(client):
            first = await client.queue(self.qname(), maxsize=3, lease=7).declare()
            again = client.queue(self.qname())  # no settings: changes none
            await again.put("x")
            return first, await again.stats()

        first, st = self.arun(t)
        self.assertEqual((first["maxsize"], first["lease"]), (3, 7), first)
        self.assertEqual((st["maxsize"], st["lease"], st["size"]), (3, 7, 1), st)

    def test_blocking_put_across_max_wait(self):
        async def t(client):
            q = client.queue(self.qname(), maxsize=1)
            await q.put("first")
            t0 = time.monotonic()
            putter = asyncio.create_task(q.put("second"))
            await asyncio.sleep(2.6)  # more than two of the daemon's 1 s waits
            waited = (putter.done(), (await q.stats())["putters"])
            job = await q.get()
            await job.ack()
            second_id = await asyncio.wait_for(putter, 5)
            took = time.monotonic() - t0
            nxt = await q.get_nowait()
            return waited, took, job.text(), second_id, nxt

        (done, putters), took, first, second_id, nxt = self.arun(t)
        self.assertFalse(done, "put on a full queue returned")
        self.assertEqual(putters, 1)
        self.assertGreaterEqual(took, 2.6)
        self.assertLess(took, 4.0)
        self.assertEqual((first, nxt.text(), nxt.id), ("first", "second", second_id))

    def test_blocking_get_across_max_wait_and_cancel(self):
        async def t(client):
            q = client.queue(self.qname())
            getter = asyncio.create_task(q.get())
            await asyncio.sleep(2.6)
            waited = getter.done()
            t0 = time.monotonic()
            await q.put("late")
            job = await asyncio.wait_for(getter, 5)
            latency = time.monotonic() - t0
            await job.ack()
            # a cancelled get leaves no waiter and takes no job
            getter = asyncio.create_task(q.get())
            await asyncio.sleep(0.3)
            before = (await q.stats())["getters"]
            getter.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await getter
            for _ in range(50):
                if (await q.stats())["getters"] == 0:
                    break
                await asyncio.sleep(0.05)
            await q.put("kept")
            return waited, job.text(), latency, before, await q.stats()

        waited, text, latency, before, st = self.arun(t)
        self.assertFalse(waited)
        self.assertEqual(text, "late")
        self.assertLess(latency, 0.5)
        self.assertEqual(before, 1)
        self.assertEqual((st["getters"], st["size"], st["reserved"]), (0, 1, 0), st)

    def test_cancel_blocking_put(self):
        async def t(client):
            q = client.queue(self.qname(), maxsize=1)
            await q.put("a")
            putter = asyncio.create_task(q.put("b"))
            await asyncio.sleep(0.3)
            putter.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await putter
            for _ in range(50):
                st = await q.stats()
                if st["putters"] == 0:
                    break
                await asyncio.sleep(0.05)
            await (await q.get()).ack()
            return st, await q.stats()

        st, after = self.arun(t)
        self.assertEqual((st["putters"], st["size"]), (0, 1), st)
        self.assertEqual((after["size"], after["total_put"]), (0, 1), after)

    def test_nowait(self):
        async def t(client):
            q = client.queue(self.qname(), maxsize=1)
            with self.assertRaises(awaitd.QueueEmpty) as empty:
                await q.get_nowait()
            await q.put_nowait("one")
            with self.assertRaises(asyncio.QueueFull) as full:  # also awaitd.QueueFull
                await q.put_nowait("two")
            return empty.exception, full.exception, await q.stats()

        empty, full, st = self.arun(t)
        self.assertIsInstance(empty, asyncio.QueueEmpty)
        self.assertIsInstance(full, awaitd.QueueFull)
        self.assertEqual(full.status, 503)
        self.assertEqual(full.body["status"], 503)
        self.assertIn("full", full.body["error"])
        self.assertEqual(st["size"], 1)

    def test_qsize_full_empty(self):
        async def t(client):
            q = client.queue(self.qname(), maxsize=2)
            out = [(await q.qsize(), await q.full(), await q.empty())]
            await q.put("a")
            await q.put("b", delay=30)  # delayed jobs count against maxsize
            out.append((await q.qsize(), await q.full(), await q.empty()))
            return out

        self.assertEqual(self.arun(t), [(0, False, True), (2, True, False)])

    def test_join(self):
        async def t(client):
            q = client.queue(self.qname())
            for i in range(3):
                await q.put(i)
            joiner = asyncio.create_task(q.join())
            jobs = [await q.get() for _ in range(3)]
            await asyncio.sleep(2.4)  # across the daemon's max_wait
            waited = [joiner.done()]
            await jobs[0].ack()
            await jobs[1].ack()
            await asyncio.sleep(0.3)
            waited.append(joiner.done())
            t0 = time.monotonic()
            await jobs[2].ack()
            await asyncio.wait_for(joiner, 5)
            return waited, time.monotonic() - t0

        waited, latency = self.arun(t)
        self.assertEqual(waited, [False, False])
        self.assertLess(latency, 0.5)

    def test_nack_touch_and_stale_attempt(self):
        async def t(client):
            q = client.queue(self.qname(), lease=1, max_attempts=5)
            await q.put("n")
            job = await q.get()
            first_deadline = job.lease_deadline
            new_deadline = await job.touch(lease=10)
            went_dead = await job.nack()
            again = await q.get()
            await again.nack(delay=0.5)
            t0 = time.monotonic()
            third = await q.get()
            delay = time.monotonic() - t0
            stale = awaitd.Job(q, third.id, 1, 0, 0.0, b"")  # an older attempt
            with self.assertRaises(awaitd.AwaitdError) as cm:
                await stale.ack()
            await third.ack()
            return first_deadline, new_deadline, went_dead, again, third, delay, cm.exception

        d1, d2, dead, again, third, delay, err = self.arun(t)
        self.assertGreater(d2, d1 + 5)
        self.assertFalse(dead)
        self.assertEqual((again.attempt, third.attempt), (2, 3))
        self.assertGreaterEqual(delay, 0.4)
        self.assertEqual(err.status, 409)
        self.assertEqual(err.body["status"], 409)
        self.assertTrue(err.message)

    def test_async_for_touches_lease_and_acks(self):
        """lease=1, a body of 2.5 s: the job is not redelivered meanwhile, and
        is acked when the loop goes on."""
        async def t(client):
            q = client.queue(self.qname(), lease=1)
            await q.put("slow")
            seen = []
            async for job in q:
                if job.text() == "stop":
                    await job.ack()
                    break
                await asyncio.sleep(2.5)
                with self.assertRaises(awaitd.QueueEmpty):
                    await q.get_nowait()  # "slow" is still leased to us
                seen.append((job.text(), job.attempt))
                mid = await q.stats()
                await q.put("stop")
            return seen, mid, await q.stats()

        seen, mid, st = self.arun(t)
        self.assertEqual(seen, [("slow", 1)])
        self.assertEqual((mid["reserved"], mid["total_redelivered"]), (1, 0), mid)
        self.assertEqual((st["unfinished"], st["total_acked"], st["total_redelivered"]),
                         (0, 2, 0), st)

    def test_async_for_nacks_on_exception(self):
        async def t(client):
            q = client.queue(self.qname(), lease=30)
            await q.put("boom")

            async def handler():
                async for job in q:
                    raise RuntimeError("handler failed on %s" % job.text())

            with self.assertRaises(RuntimeError):
                await handler()
            t0 = time.monotonic()
            job = await q.get()  # released at once, not after the 30 s lease
            took = time.monotonic() - t0
            await job.nack()
            async for job2 in q:
                break  # left without an ack: released as well
            await asyncio.sleep(0.2)
            job3 = await q.get_nowait()
            await job3.ack()
            return job, took, job2, job3, await q.stats()

        job, took, job2, job3, st = self.arun(t)
        self.assertEqual((job.text(), job.attempt), ("boom", 2))
        self.assertLess(took, 2.0)
        self.assertEqual((job2.attempt, job3.attempt, job3.id), (3, 4, job.id))
        self.assertEqual((st["unfinished"], st["total_acked"]), (0, 1), st)

    def test_async_for_ends_at_shutdown_and_job_context(self):
        async def t(client):
            q = client.queue(self.qname())
            for i in range(3):
                await q.put(str(i))
            async with await q.get() as job:  # acked when the block ends
                first = job.text()
            with self.assertRaises(ValueError):
                async with await q.get() as job2:  # nacked: it raised
                    raise ValueError("x")
            await q.shutdown()
            with self.assertRaises(awaitd.QueueShutDown) as cm:
                await q.put("late")
            rest = [job.text() async for job in q]  # drains, then ends
            return first, job2, cm.exception, rest, await q.stats()

        first, job2, err, rest, st = self.arun(t)
        self.assertEqual(first, "0")
        self.assertTrue(job2.finished)
        self.assertEqual(err.status, 410)
        self.assertIsInstance(err, awaitd.AwaitdError)
        self.assertEqual(sorted(rest), ["1", "2"])
        self.assertEqual((st["shutdown"], st["unfinished"], st["total_acked"]), (True, 0, 3), st)

    def test_shutdown_immediate_wakes_getters(self):
        async def t(client):
            q = client.queue(self.qname())
            waiting = client.queue(self.qname() + "-w")
            await q.put("dropped")
            getter = asyncio.create_task(waiting.get())
            await asyncio.sleep(0.3)
            await waiting.shutdown(immediate=True)
            with self.assertRaises(awaitd.QueueShutDown):
                await asyncio.wait_for(getter, 5)
            await q.shutdown(immediate=True)
            with self.assertRaises(awaitd.QueueShutDown):
                await q.get()
            return await q.stats()

        st = self.arun(t)
        self.assertEqual((st["shutdown"], st["size"]), ("immediate", 0), st)

    def test_errors_carry_the_json_body(self):
        async def t(client):
            errs = []
            for coro in (client.queue("bad name!").put("x"),
                         client.queue(self.qname() + "-none", create=False).get_nowait(),
                         client.queue(self.qname(), maxsize=2.5).declare(),
                         client.create_timer(self.qname(), "p", cron="61 * * * *")):
                try:
                    await coro
                except awaitd.AwaitdError as e:
                    errs.append(e)
            return errs

        errs = self.arun(t)
        self.assertEqual([e.status for e in errs], [400, 404, 400, 400])
        for e in errs:
            self.assertEqual(e.body["status"], e.status)
            self.assertEqual(e.message, e.body["error"])
            self.assertIn(e.message, str(e))
        self.assertIn("no such queue", errs[1].message)
        self.assertIn("maxsize", errs[2].message)
        self.assertIn("cron", errs[3].message)


class MemLimitTest(ClientCase, DaemonTestCase):
    """A put refused for the memory limit (503 at once, not a wait) is
    retried by put() after Retry-After until the memory is freed."""

    config = {"queues": {"mem_limit": "3000"}}

    def test_put_retries_after_memory_refusal(self):
        async def t(client):
            q = client.queue(self.qname())
            await q.put(b"a" * 2000)
            with self.assertRaises(awaitd.QueueFull) as cm:
                await q.put_nowait(b"b" * 2000)
            putter = asyncio.create_task(q.put(b"b" * 2000))
            await asyncio.sleep(2.5)
            waited = putter.done()
            await (await q.get()).ack()
            t0 = time.monotonic()
            await asyncio.wait_for(putter, 10)
            took = time.monotonic() - t0
            job = await q.get()
            await job.ack()
            return cm.exception, waited, took, job.payload

        err, waited, took, payload = self.arun(t)
        self.assertEqual(err.status, 503)
        self.assertIn("memory", err.message)
        self.assertFalse(waited, "put returned while the memory was taken")
        self.assertLess(took, 3.0)
        self.assertEqual(payload, b"b" * 2000)


class TimerTest(ClientCase, JournalDaemonTestCase):

    tmp_prefix = "awaitd-pyt-"
    config = {"queues": {"max_wait": "1s"}}

    def test_cancel_then_await_raises_cancelled(self):
        async def t(client):
            q = client.queue(self.qname())  # create_timer declares it
            timer = await client.create_timer(q, b"tick\0", every=0.3)
            waiter = asyncio.ensure_future(timer.wait())
            await asyncio.sleep(1.6)  # across the daemon's 1 s max_wait
            before = (timer.done(), waiter.done())
            timer.cancel()  # no await, as asyncio's
            t0 = time.monotonic()
            with self.assertRaises(asyncio.CancelledError):
                await waiter
            latency = time.monotonic() - t0
            with self.assertRaises(asyncio.CancelledError):
                await timer
            again = await timer.cancel()
            jobs = []
            while not await q.empty():
                job = await q.get()
                jobs.append(job.payload)
                await job.ack()
            return before, latency, timer, again, jobs

        before, latency, timer, again, jobs = self.arun(t)
        self.assertEqual(before, (False, False))
        self.assertLess(latency, 1.0)
        self.assertTrue(timer.done() and timer.cancelled())
        self.assertFalse(again, "a second cancel() is False, as asyncio's")
        self.assertEqual(timer.info["fires"], len(jobs))
        self.assertGreaterEqual(len(jobs), 3)
        self.assertEqual(set(jobs), {b"tick\0"})

    def test_cancel_result_and_completed_timer(self):
        async def t(client):
            q = client.queue(self.qname())
            await q.declare()
            periodic = await client.create_timer(q, "p", every=0.2, count=3)
            final = await periodic  # ends by itself: returns its final state
            cancelled_late = await periodic.cancel()
            once = await client.create_timer(q.name, {"k": 1}, after=0.2)
            final_once = await once
            at = await client.create_timer(q, "at", at="2099-01-01T00:00:00Z")
            cron = await client.create_timer(q, "c", cron="@daily", jitter=1)
            results = (await at.cancel(), await cron.cancel())
            info = await client.timer(cron.id).refresh()
            return final, cancelled_late, final_once, results, info, await q.qsize()

        final, late, once, results, info, size = self.arun(t)
        self.assertEqual((final["state"], final["fires"]), ("completed", 3), final)
        self.assertFalse(late)
        self.assertEqual((once["state"], once["kind"]), ("completed", "after"), once)
        self.assertEqual(results, (True, True))
        self.assertEqual((info["state"], info["kind"]), ("cancelled", "cron"), info)
        self.assertEqual(size, 4)

    def test_failed_timer(self):
        async def t(client):
            q = client.queue(self.qname())
            await q.declare()
            timer = await client.create_timer(q, "x", after=0.3)
            await q.delete()
            with self.assertRaises(awaitd.TimerFailed) as cm:
                await timer
            return cm.exception

        e = self.arun(t)
        self.assertEqual(e.timer["state"], "failed")
        self.assertTrue(e.message)


class AuthTest(ClientCase, DaemonTestCase):

    config = {"auth": {"token": TOKEN}}
    token = TOKEN

    def test_token(self):
        async def t(client):
            q = client.queue(self.qname())
            await q.put("secret")
            job = await q.get()
            await job.ack()
            out = [job.text()]
            for token in (None, "wrong-token-0123456789"):
                async with awaitd.Client(self.d.url(""), token=token) as other:
                    try:
                        await other.queue(self.qname()).stats()
                    except awaitd.AwaitdError as e:
                        out.append((e.status, e.body["status"]))
            return out

        self.assertEqual(self.arun(t), ["secret", (401, 401), (401, 401)])


def run_example(test, name, *args, timeout=30):
    env = dict(os.environ, PYTHONPATH=CLIENT_DIR)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, os.path.join(CLIENT_DIR, "examples", name),
                           test.d.url("")] + list(args), env=env, capture_output=True,
                          text=True, timeout=timeout)
    took = time.monotonic() - t0
    test.assertEqual(proc.returncode, 0, proc.stderr)
    return proc.stdout, took


class ExamplesTest(JournalDaemonTestCase):
    """The article's four programs, ported with the client, run as they are."""

    tmp_prefix = "awaitd-pye-"

    def test_gather_delays(self):
        out, took = run_example(self, "gather_delays.py")
        self.assertIn("/delay/2", out)
        took_inside = float(re.search(r"took ([\d.]+) s", out).group(1))
        self.assertGreaterEqual(took_inside, 2.0)
        self.assertLess(took_inside, 3.0, "1 s, 2 s, 1 s gathered took %.2f s" % took_inside)

    def test_sequential_vs_concurrent(self):
        out, _ = run_example(self, "sequential_vs_concurrent.py")
        seq = float(re.search(r"sequential: ([\d.]+) s", out).group(1))
        conc = float(re.search(r"concurrent: ([\d.]+) s", out).group(1))
        self.assertEqual(out.count("Data fetched after 2 seconds"), 2, out)
        self.assertGreaterEqual(seq, 3.0)
        self.assertGreaterEqual(conc, 2.0)
        self.assertLess(conc, 2.9, "gather of 1 s and 2 s took %.2f s (sequential %.2f)"
                        % (conc, seq))
        self.assertLess(conc, seq)

    def test_producer_consumer(self):
        out, took = run_example(self, "producer_consumer.py", "article-ex")
        lines = out.splitlines()
        self.assertEqual(sorted(l for l in lines if l.startswith("produced")),
                         ["produced item-%d" % i for i in range(5)])
        consumed = sorted(l.split()[-1] for l in lines if " consumed " in l)
        self.assertEqual(consumed, ["item-%d" % i for i in range(5)], out)
        self.assertEqual({l.split()[0] for l in lines if " consumed " in l}, {"c0", "c1"}, out)
        # five puts a second apart, then the last item's 0.5 s, then join (the
        # upper bound includes the interpreter's start, slow on a loaded machine)
        self.assertGreaterEqual(took, 5.5)
        self.assertLess(took, 10.0)
        st = self.d.http("GET", "/queues/article-ex").json()
        self.assertEqual((st["unfinished"], st["total_acked"], st["total_redelivered"],
                          st["maxsize"]), (0, 5, 0, 2), st)

    def test_background_tasks(self):
        out, took = run_example(self, "background_tasks.py", "ran-ex")
        lines = out.splitlines()
        self.assertEqual(lines[:2], ["cancelled", "cancelled"], out)
        for name in ("task-a", "task-b"):
            runs = lines.count(name + " ran")
            self.assertGreaterEqual(runs, 4, out)
            self.assertLessEqual(runs, 6, out)
        # the run counts above show the cancels came at about 5 s; this only
        # bounds the whole, interpreter start included, against a hang
        self.assertGreaterEqual(took, 5.0)
        self.assertLess(took, 12.0)


class PipInstallTest(DaemonTestCase):

    def test_offline_install_and_use(self):
        tmp = tempfile.mkdtemp(prefix="awaitd-pip-")
        try:
            src = os.path.join(tmp, "src")  # pip builds in the tree: use a copy
            shutil.copytree(CLIENT_DIR, src, ignore=shutil.ignore_patterns(
                "build", "*.egg-info", "__pycache__"))
            target = os.path.join(tmp, "target")
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                 "--no-index", "--disable-pip-version-check", "--target", target, src],
                capture_output=True, text=True, timeout=120, cwd=tmp)
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            code = ("import asyncio, awaitd\n"
                    "async def main():\n"
                    "    async with awaitd.Client(%r) as c:\n"
                    "        q = c.queue('pip'); await q.put('ok'); j = await q.get()\n"
                    "        await j.ack(); print(awaitd.__file__, j.text())\n"
                    "asyncio.run(main())\n" % self.d.url(""))
            env = dict(os.environ, PYTHONPATH=target)
            proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp,
                                  capture_output=True, text=True, timeout=30)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            path, text = proc.stdout.split()
            self.assertTrue(path.startswith(target), path)
            self.assertEqual(text, "ok")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
