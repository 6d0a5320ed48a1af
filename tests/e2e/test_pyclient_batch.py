"""The asyncio client's batch forms (clients/python: Queue.put_many,
put_many_nowait, get_many, get_many_nowait, ack_many) against the real
daemon: framed bodies both ways, all-or-nothing puts that wait for room for
the whole batch, reserves that wait for the first job, batch acks that
refuse stale leases job by job, and more than one request's worth of acks."""

import asyncio
import os
import sys
import time
import unittest

from awaitd_test import SRCDIR, JournalDaemonTestCase

sys.path.insert(0, os.path.join(SRCDIR, "clients", "python"))

import awaitd  # noqa: E402  (from clients/python, just put on the path)


class BatchTest(JournalDaemonTestCase):

    tmp_prefix = "awaitd-pyb-"
    config = {"queues": {"max_wait": "1s"}}

    def arun(self, fn):
        async def main():
            async with awaitd.Client(self.d.url("")) as client:
                return await asyncio.wait_for(fn(client), 60)
        return asyncio.run(main())

    def qname(self):
        return "pyb-" + self.id().rsplit(".", 1)[-1]

    def test_put_many_get_many_ack_many(self):
        items = [b"raw\0bytes\nwith a newline", "text é", {"n": 1}, b"", b"x" * 5000]

        async def t(client):
            q = client.queue(self.qname())
            ids = await q.put_many(items, priority=3)
            got = await q.get_many(10)
            mid = await q.stats()
            refused = await q.ack_many(got)
            again = await q.ack_many(got)
            return ids, got, mid, refused, again, await q.stats()

        ids, got, mid, refused, again, st = self.arun(t)
        self.assertEqual(len(ids), 5)
        self.assertEqual(ids, sorted(ids))
        self.assertIsInstance(ids[0], awaitd.JobHandle)
        self.assertEqual([j.id for j in got], ids)
        self.assertEqual([j.payload for j in got[:2]], [items[0], "text é".encode()])
        self.assertEqual(got[2].json(), {"n": 1})
        self.assertEqual((got[3].payload, got[4].payload), (b"", b"x" * 5000))
        for j in got:
            self.assertEqual((j.attempt, j.priority), (1, 3))
            self.assertGreater(j.lease_deadline, time.time() + 20)
        self.assertEqual((mid["reserved"], mid["size"]), (5, 0), mid)
        self.assertEqual(refused, [])
        self.assertTrue(all(j.finished for j in got))
        # acked already: each refused on its own with the daemon's 404
        self.assertEqual([j.id for j in again], ids)
        self.assertTrue(all(j.ack_error.startswith("404") for j in again), again[0].ack_error)
        self.assertEqual((st["unfinished"], st["total_acked"]), (0, 5), st)

    def test_get_many_waits_for_the_first_job_and_bounds(self):
        async def t(client):
            q = client.queue(self.qname())
            with self.assertRaises(awaitd.QueueEmpty):
                await q.get_many_nowait(5)
            for bad in (0, 101):
                with self.assertRaises(ValueError):
                    await q.get_many(bad)
            getter = asyncio.create_task(q.get_many(5))
            await asyncio.sleep(2.3)  # across two of the daemon's 1 s waits
            waited = getter.done()
            t0 = time.monotonic()
            await q.put("late")
            jobs = await asyncio.wait_for(getter, 5)
            latency = time.monotonic() - t0
            await q.put_many(["a", "b", "c"])
            one = await q.get_many(1)  # count=1: the plain reserve's answer
            rest = await q.get_many_nowait(100)
            await q.ack_many(jobs + one + rest)
            return waited, jobs, latency, one, rest, await q.stats()

        waited, jobs, latency, one, rest, st = self.arun(t)
        self.assertFalse(waited, "get_many on an empty queue returned")
        self.assertEqual([j.text() for j in jobs], ["late"])
        self.assertLess(latency, 0.5)
        self.assertEqual([j.text() for j in one], ["a"])
        self.assertEqual([j.text() for j in rest], ["b", "c"])
        self.assertEqual(st["unfinished"], 0, st)

    def test_put_many_is_all_or_nothing_and_waits_for_room(self):
        async def t(client):
            q = client.queue(self.qname(), maxsize=4)
            await q.put_many(["1", "2", "3", "4"])
            with self.assertRaises(asyncio.QueueFull):  # also awaitd.QueueFull
                await q.put_many_nowait(["5", "6"])
            full = await q.stats()
            t0 = time.monotonic()
            putter = asyncio.create_task(q.put_many(["5", "6"]))
            await asyncio.sleep(1.5)
            st = await q.stats()
            waiting = (putter.done(), st["size"], st["putters"])  # the daemon holds it
            jobs = await q.get_many(1)  # room for one: still not enough
            await q.ack_many(jobs)
            await asyncio.sleep(0.5)
            still = (putter.done(), (await q.stats())["size"])
            jobs = await q.get_many(1)  # room for the whole batch
            await q.ack_many(jobs)
            ids = await asyncio.wait_for(putter, 5)
            took = time.monotonic() - t0
            rest = await q.get_many(10)
            await q.ack_many(rest)
            with self.assertRaises(awaitd.AwaitdError) as big:
                await q.put_many([str(i) for i in range(5)])  # over maxsize: never fits
            return full, waiting, still, ids, took, rest, big.exception

        full, waiting, still, ids, took, rest, big = self.arun(t)
        self.assertEqual(full["size"], 4, full)  # the refused batch put nothing
        self.assertEqual(waiting, (False, 4, 1))
        self.assertEqual(still, (False, 3))
        self.assertEqual(len(ids), 2)
        self.assertLess(took, 4.0)
        self.assertEqual([j.text() for j in rest], ["3", "4", "5", "6"])
        self.assertEqual(big.status, 413, big.body)

    def test_ack_many_refuses_a_stale_lease_job_by_job(self):
        async def t(client):
            q = client.queue(self.qname())
            await q.put_many(["a", "b"])
            first = await q.get_many(2, lease=0.5)
            await asyncio.sleep(1.2)  # both leases run out: redelivered
            second = await q.get_many(2)
            refused = await q.ack_many(first)
            ok = await q.ack_many(second)
            return first, second, refused, ok, await q.stats()

        first, second, refused, ok, st = self.arun(t)
        self.assertEqual([j.id for j in second], [j.id for j in first])
        self.assertEqual([j.attempt for j in second], [2, 2])
        self.assertEqual(refused, first)
        self.assertTrue(all(j.ack_error.startswith("409") for j in refused), refused[0].ack_error)
        self.assertFalse(any(j.finished for j in first))
        self.assertEqual(ok, [])
        self.assertEqual((st["unfinished"], st["total_acked"]), (0, 2), st)

    def test_ack_many_past_one_request(self):
        async def t(client):
            q = client.queue(self.qname())
            for start in range(0, 1100, 500):
                await q.put_many([b"%d" % i for i in range(start, min(start + 500, 1100))])
            jobs = []
            while len(jobs) < 1100:
                jobs += await q.get_many(100)
            refused = await q.ack_many(jobs)
            return jobs, refused, await q.stats()

        jobs, refused, st = self.arun(t)
        self.assertEqual([j.payload for j in jobs], [b"%d" % i for i in range(1100)])
        self.assertEqual(refused, [])
        self.assertEqual((st["unfinished"], st["total_acked"]), (0, 1100), st)


if __name__ == "__main__":
    unittest.main()
