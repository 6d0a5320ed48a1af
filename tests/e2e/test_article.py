"""The asyncio article's first two programs, pointed at awaitd with aiohttp.

1. fetch_data(delay): sequential awaits take the sum of the delays;
   asyncio.gather of the same calls takes about the largest one.
2. fetch_multiple_urls: /delay/1, /delay/2, /delay/1 gathered finish in
   about 2 s, not 4 s.
"""

import asyncio
import time
import unittest

import aiohttp

from awaitd_test import DaemonTestCase

TIMEOUT = aiohttp.ClientTimeout(total=15)


class ArticleTest(DaemonTestCase):
    config = {"probe": {"max_delay": "10s"}}

    def base(self):
        return self.d.url("")

    # ---- program 1: fetch_data, sequential vs gather -------------------------------

    def test_sequential_vs_gather(self):
        base = self.base()

        async def fetch_data(session, delay):
            async with session.get("%s/delay/%s" % (base, delay)) as resp:
                self.assertEqual(resp.status, 200)
                data = await resp.json()
                return "Data fetched after %s seconds" % delay, data

        async def sequential(session):
            result1 = await fetch_data(session, 0.5)
            result2 = await fetch_data(session, 1.0)
            return [result1, result2]

        async def concurrent(session):
            return await asyncio.gather(fetch_data(session, 0.5), fetch_data(session, 1.0))

        async def main():
            async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
                t0 = time.monotonic()
                seq = await sequential(session)
                t_seq = time.monotonic() - t0
                t0 = time.monotonic()
                conc = await concurrent(session)
                t_conc = time.monotonic() - t0
                return seq, t_seq, conc, t_conc

        seq, t_seq, conc, t_conc = asyncio.run(main())
        self.assertEqual([s for s, _ in seq], ["Data fetched after 0.5 seconds",
                                               "Data fetched after 1.0 seconds"])
        self.assertEqual([s for s, _ in conc], [s for s, _ in seq])
        for _, data in seq + list(conc):
            self.assertIn("/delay/", data["url"])
        self.assertGreaterEqual(t_seq, 1.5)
        self.assertGreaterEqual(t_conc, 1.0)
        self.assertLess(t_conc, 0.75 * t_seq,
                        "gather took %.2f s, sequential %.2f s" % (t_conc, t_seq))

    # ---- program 2: fetch_multiple_urls ------------------------------------------

    def test_fetch_multiple_urls(self):
        base = self.base()
        urls = [base + "/delay/1", base + "/delay/2", base + "/delay/1"]

        async def fetch_url(session, url):
            async with session.get(url) as response:
                return response.status, response.headers.get("Content-Type"), await response.json()

        async def fetch_multiple_urls(urls):
            async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
                tasks = [fetch_url(session, url) for url in urls]
                return await asyncio.gather(*tasks)

        t0 = time.monotonic()
        results = asyncio.run(fetch_multiple_urls(urls))
        took = time.monotonic() - t0
        self.assertEqual(len(results), 3)
        for (status, ctype, body), url in zip(results, urls):
            self.assertEqual(status, 200)
            self.assertIn("application/json", ctype)
            self.assertEqual(body["url"], url)
        self.assertGreaterEqual(took, 2.0)
        self.assertLess(took, 3.0, "gather of 1 s, 2 s, 1 s took %.2f s" % took)

    def test_gather_many_delays(self):
        # The same with 200 fetches: still about the one delay.
        base = self.base()

        async def main():
            conn = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=conn, timeout=TIMEOUT) as session:
                async def one(i):
                    async with session.get("%s/delay/1?i=%d" % (base, i)) as r:
                        return r.status, (await r.json())["args"]["i"]
                return await asyncio.gather(*(one(i) for i in range(200)))

        t0 = time.monotonic()
        results = asyncio.run(main())
        took = time.monotonic() - t0
        self.assertEqual(results, [(200, str(i)) for i in range(200)])
        self.assertGreaterEqual(took, 1.0)
        self.assertLess(took, 4.0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
