"""The asyncio article's task program, ported to awaitd's timers with aiohttp:

    async def task(name):
        while True:
            await asyncio.sleep(1)
            print(f"{name} ran")

    async def main():
        task_a = asyncio.create_task(task("task-a"))
        task_b = asyncio.create_task(task("task-b"))
        await asyncio.sleep(5)
        task_a.cancel()
        task_b.cancel()
        for t in (task_a, task_b):
            try:
                await t
            except asyncio.CancelledError:
                print("cancelled")

create_task is POST /timers {"queue": "article", "payload": "task-a",
"every": 1} (what the task does, print, becomes a put of its payload into a
queue); cancel() is DELETE /timers/{id} ({"cancelled": true}); `await t`
is GET /timers/{id}?wait=S, which answers at once for a finished timer.
The queue then holds one job per run of each task. A second test awaits a
timer while it is cancelled (the awaiter is answered as soon as the DELETE
happens, as `await task` raises CancelledError at once), a third awaits a
timer that ends by itself (count: like a task that returns).
"""

import asyncio
import json
import time
import unittest

import aiohttp

from awaitd_test import JournalDaemonTestCase

TIMEOUT = aiohttp.ClientTimeout(total=30)


class TimerArticleTest(JournalDaemonTestCase):

    tmp_prefix = "awaitd-ta-"
    fsync = "always"

    async def make_queue(self, session, name):
        async with session.put(self.d.url("/queues/" + name)) as resp:
            self.assertEqual(resp.status, 201, await resp.text())

    async def create_task(self, session, **spec):
        async with session.post(self.d.url("/timers"), json=spec) as resp:
            body = await resp.read()
            self.assertEqual(resp.status, 201, body)
            t = json.loads(body)
            self.assertEqual(resp.headers["Location"], "/timers/%d" % t["id"])
            return t

    async def cancel(self, session, tid):
        async with session.delete(self.d.url("/timers/%d" % tid)) as resp:
            body = await resp.read()
            self.assertEqual(resp.status, 200, body)
            return json.loads(body), time.monotonic()

    async def await_task(self, session, tid, wait):
        t0 = time.monotonic()
        async with session.get(self.d.url("/timers/%d?wait=%s" % (tid, wait))) as resp:
            body = await resp.read()
            return resp.status, (json.loads(body) if body else None), t0, time.monotonic()

    async def drain(self, session, qname):
        """Reserve and ack every job: {payload: count}."""
        counts = {}
        base = self.d.url("/queues/" + qname)
        while True:
            async with session.post(base + "/reserve?wait=0") as resp:
                body = await resp.read()
                if resp.status == 204:
                    return counts
                self.assertEqual(resp.status, 200, body)
                jid = int(resp.headers["Job-Id"])
            counts[body] = counts.get(body, 0) + 1
            async with session.post(base + "/jobs/%d/ack" % jid) as resp:
                self.assertEqual(resp.status, 200, await resp.text())

    def test_two_tasks_cancelled_after_five_seconds(self):
        log = {}

        async def main():
            async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
                await self.make_queue(session, "article")
                t0 = time.monotonic()
                task_a, task_b = await asyncio.gather(
                    self.create_task(session, queue="article", payload="task-a", every=1),
                    self.create_task(session, queue="article", payload="task-b", every=1))
                await asyncio.sleep(5)
                cancels = await asyncio.gather(self.cancel(session, task_a["id"]),
                                               self.cancel(session, task_b["id"]))
                log["cancel_at"] = max(t for _, t in cancels) - t0
                log["cancels"] = [c for c, _ in cancels]
                log["awaits"] = await asyncio.gather(self.await_task(session, task_a["id"], 10),
                                                     self.await_task(session, task_b["id"], 10))
                await asyncio.sleep(1.2)  # nothing fires after the cancel
                log["later"] = await asyncio.gather(self.await_task(session, task_a["id"], 0),
                                                    self.await_task(session, task_b["id"], 0))
                log["queue"] = await self.drain(session, "article")
                log["ids"] = (task_a["id"], task_b["id"])

        asyncio.run(main())
        self.assertLess(log["cancel_at"], 6.5, "the cancels came %.2f s in" % log["cancel_at"])
        fires = {}
        for body, name in zip(log["cancels"], ("task-a", "task-b")):
            self.assertIs(body["cancelled"], True, body)
            t = body["timer"]
            self.assertEqual((t["state"], t["next_fire"], t["skips"], t["last_error"]),
                             ("cancelled", None, 0, None), body)
            self.assertGreaterEqual(t["fires"], 4, "%s ran %d times in 5 s" % (name, t["fires"]))
            self.assertLessEqual(t["fires"], 6, "%s ran %d times in 5 s" % (name, t["fires"]))
            fires[name.encode()] = t["fires"]
        # await on a cancelled task: at once, with its final state
        for (status, body, start, end), tid in zip(log["awaits"], log["ids"]):
            self.assertEqual(status, 200, body)
            self.assertEqual((body["id"], body["state"]), (tid, "cancelled"), body)
            self.assertLess(end - start, 0.5, "await of a cancelled timer took %.2f s" % (end - start))
        for (status, body, _, _), name in zip(log["later"], ("task-a", "task-b")):
            self.assertEqual((status, body["fires"]), (200, fires[name.encode()]), body)
        # the queue holds one job per run of each task
        self.assertEqual(log["queue"], fires, "queue contents vs the timers' fires")

    def test_cancel_wakes_a_concurrent_await(self):
        log = {}

        async def main():
            async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
                await self.make_queue(session, "article-await")
                t = await self.create_task(session, queue="article-await", payload="w", every=1)
                waiter = asyncio.create_task(self.await_task(session, t["id"], 10))
                await asyncio.sleep(1.5)
                log["done_before_cancel"] = waiter.done()
                body, cancelled_at = await self.cancel(session, t["id"])
                log["cancel"] = body
                log["cancelled_at"] = cancelled_at
                log["await"] = await asyncio.wait_for(waiter, 15)

        asyncio.run(main())
        self.assertFalse(log["done_before_cancel"], "the await returned before the cancel")
        self.assertIs(log["cancel"]["cancelled"], True, log["cancel"])
        status, body, start, end = log["await"]
        self.assertEqual(status, 200, body)
        self.assertEqual(body["state"], "cancelled", body)
        self.assertEqual(body["fires"], log["cancel"]["timer"]["fires"], body)
        self.assertGreaterEqual(end - start, 1.3, "the await took %.2f s" % (end - start))
        self.assertLess(end - log["cancelled_at"], 0.5,
                        "the await was answered %.2f s after the DELETE's 200"
                        % (end - log["cancelled_at"]))

    def test_await_a_task_that_ends_by_itself(self):
        log = {}

        async def main():
            async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
                await self.make_queue(session, "article-count")
                t = await self.create_task(session, queue="article-count", payload="c",
                                           every=0.5, count=3)
                log["await"] = await self.await_task(session, t["id"], 10)
                body, _ = await self.cancel(session, t["id"])
                log["cancel"] = body
                log["queue"] = await self.drain(session, "article-count")

        asyncio.run(main())
        status, body, start, end = log["await"]
        self.assertEqual(status, 200, body)
        self.assertEqual((body["state"], body["fires"]), ("completed", 3), body)
        self.assertGreaterEqual(end - start, 1.4, "3 ticks of 0.5 s took %.2f s" % (end - start))
        self.assertLess(end - start, 3.5, "3 ticks of 0.5 s took %.2f s" % (end - start))
        # cancel() of a finished task: False, nothing changes
        self.assertIs(log["cancel"]["cancelled"], False, log["cancel"])
        self.assertEqual(log["cancel"]["timer"]["state"], "completed")
        self.assertEqual(log["queue"], {b"c": 3})


if __name__ == "__main__":
    unittest.main(verbosity=2)
