"""The asyncio article's producer/consumer program, ported to awaitd's queues
with aiohttp:

    async def producer(queue):
        for i in range(5):
            await asyncio.sleep(1)
            await queue.put(f"item-{i}")

    async def consumer(queue):
        while True:
            item = await queue.get()
            await asyncio.sleep(0.5)
            queue.task_done()

    queue = asyncio.Queue(maxsize=2)
    producer_task = create_task(producer(queue))
    consumers = [create_task(consumer(queue)) for _ in range(2)]
    await producer_task
    await queue.join()
    for c in consumers: c.cancel()

asyncio.Queue(maxsize=2) is PUT /queues/q {"maxsize": 2}; put is POST
/queues/q/jobs?wait=S; get is POST /queues/q/reserve?wait=S; task_done is the
ack; join is GET /queues/q/join?wait=S. A second test gives the producer no
sleep, so that maxsize=2's backpressure shows.
"""

import asyncio
import json
import time
import unittest

import aiohttp

from awaitd_test import JournalDaemonTestCase

TIMEOUT = aiohttp.ClientTimeout(total=30)


class QueueArticleTest(JournalDaemonTestCase):

    tmp_prefix = "awaitd-qa-"
    fsync = "always"

    def run_program(self, qname, items, produce_every, work, consumers=2, reserve_wait=2):
        """The article's main(), against awaitd. Returns a record of what happened."""
        base = self.d.url("/queues/" + qname)
        log = {"put": {}, "got": [], "ack_start": [], "ack_done": [], "sizes": []}

        async def producer(session):
            for i in range(items):
                if produce_every:
                    await asyncio.sleep(produce_every)
                item = b"item-%d" % i
                async with session.post(base + "/jobs?wait=20", data=item) as resp:
                    body = await resp.read()
                    self.assertEqual(resp.status, 201, (resp.status, body))
                    log["put"][item] = (json.loads(body)["id"], time.monotonic())

        async def consumer(session, name):
            while True:
                async with session.post(base + "/reserve?wait=%s" % reserve_wait) as resp:
                    body = await resp.read()
                    if resp.status == 204:
                        continue
                    self.assertEqual(resp.status, 200, (resp.status, body))
                    jid = int(resp.headers["Job-Id"])
                    attempt = int(resp.headers["Job-Attempt"])
                log["got"].append((name, body, jid, attempt, time.monotonic()))
                await asyncio.sleep(work)  # the work
                log["ack_start"].append(time.monotonic())
                async with session.post(base + "/jobs/%d/ack?attempt=%d" % (jid, attempt)) as resp:
                    ack_body = await resp.read()
                    self.assertEqual(resp.status, 200, (resp.status, ack_body))
                    self.assertEqual(json.loads(ack_body), {"acked": jid})
                log["ack_done"].append(time.monotonic())

        async def watch_size(session):
            while True:
                async with session.get(base) as resp:
                    st = await resp.json()
                log["sizes"].append(st["size"] + st["delayed"])
                await asyncio.sleep(0.05)

        async def main():
            async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
                async with session.put(base, json={"maxsize": 2}) as resp:
                    self.assertEqual(resp.status, 201, await resp.text())
                t0 = time.monotonic()
                producer_task = asyncio.create_task(producer(session))
                consumer_tasks = [asyncio.create_task(consumer(session, "c%d" % i))
                                  for i in range(consumers)]
                watcher = asyncio.create_task(watch_size(session))
                await producer_task
                log["produced"] = time.monotonic()
                async with session.get(base + "/join?wait=20") as resp:
                    log["join_status"] = resp.status
                    log["join_body"] = await resp.read()
                log["joined"] = time.monotonic()
                for task in consumer_tasks + [watcher]:
                    task.cancel()
                for task in consumer_tasks + [watcher]:
                    try:
                        await task
                    except asyncio.CancelledError:
                        pass
                    # a failed assertion inside a consumer surfaces here
                log["t0"] = t0
            # the cancelled consumers' waiting reserves were dropped by the daemon
            async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
                deadline = time.monotonic() + 5
                while True:
                    async with session.get(base) as resp:
                        st = await resp.json()
                    if st["getters"] == 0 or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.05)
                log["stats"] = st

        asyncio.run(main())
        return log

    def check_exactly_once(self, log, items):
        want = sorted(b"item-%d" % i for i in range(items))
        got = sorted(body for _, body, _, _, _ in log["got"])
        self.assertEqual(got, want, "every item consumed exactly once: %r" % log["got"])
        self.assertTrue(all(attempt == 1 for _, _, _, attempt, _ in log["got"]), log["got"])
        self.assertEqual(sorted(jid for _, _, jid, _, _ in log["got"]),
                         sorted(jid for jid, _ in log["put"].values()))
        self.assertEqual(log["join_status"], 200, log["join_body"])
        self.assertEqual(json.loads(log["join_body"]), {"unfinished": 0})
        self.assertEqual(len(log["ack_start"]), items)
        self.assertGreaterEqual(log["joined"], max(log["ack_start"]),
                                "join returned before the last ack was sent")
        st = log["stats"]
        self.assertEqual((st["unfinished"], st["total_put"], st["total_acked"], st["reserved"],
                          st["getters"], st["putters"], st["joiners"]),
                         (0, items, items, 0, 0, 0, 0), st)
        self.assertLessEqual(max(log["sizes"] or [0]), 2, "queue held more than maxsize=2")

    def test_producer_consumer(self):
        """Five items one second apart, two consumers taking 0.5 s each."""
        log = self.run_program("article", items=5, produce_every=1.0, work=0.5)
        self.check_exactly_once(log, 5)
        total = log["joined"] - log["t0"]
        self.assertGreaterEqual(total, 5.4, "the whole program took %.2f s" % total)
        self.assertLess(total, 6.8, "the whole program took %.2f s" % total)
        # join waited for the last item's work (put at ~5 s, acked at ~5.5 s)
        self.assertGreaterEqual(log["joined"] - log["produced"], 0.3)
        # getters are served in arrival order: both consumers got work
        names = {name for name, _, _, _, _ in log["got"]}
        self.assertEqual(names, {"c0", "c1"}, log["got"])
        # each item was picked up at once by a waiting consumer
        for name, body, _, _, t in log["got"]:
            self.assertLess(t - log["put"][body][1], 0.5, "%s waited in the queue" % body)

    def test_backpressure(self):
        """No sleep in the producer: with maxsize=2 its puts wait for the consumers."""
        log = self.run_program("article-fast", items=6, produce_every=0, work=0.5)
        self.check_exactly_once(log, 6)
        total = log["joined"] - log["t0"]
        # 2 consumers, 0.5 s per item, 6 items: ~1.5 s
        self.assertGreaterEqual(total, 1.4, "the whole program took %.2f s" % total)
        self.assertLess(total, 3.5, "the whole program took %.2f s" % total)
        # the producer could not run ahead: its last put completed only after
        # the consumers had finished some items
        last_put = max(t for _, t in log["put"].values())
        self.assertGreaterEqual(last_put - log["t0"], 0.4,
                                "all puts done at once although maxsize=2: %r" % log["put"])
        self.assertGreaterEqual(last_put, min(log["ack_start"]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
