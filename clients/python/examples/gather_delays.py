"""The article's fetch_multiple_urls: /delay/1, /delay/2, /delay/1 gathered
finish in about 2 s, not 4 s. Usage: gather_delays.py [URL] [TOKEN]."""
import asyncio
import sys
import time

import awaitd

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"


async def fetch_multiple_delays(delays):
    async with awaitd.Client(URL) as client:
        tasks = [client.delay(d) for d in delays]
        return await asyncio.gather(*tasks)

start = time.monotonic()
results = asyncio.run(fetch_multiple_delays([1, 2, 1]))
print([r["url"] for r in results])
print(f"took {time.monotonic() - start:.2f} s")
