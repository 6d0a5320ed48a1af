"""The article's fetch_data: awaited one after the other the delays add up;
gathered they take the longest one. Usage: sequential_vs_concurrent.py [URL]."""
import asyncio
import sys
import time

import awaitd

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"


async def fetch_data(client, delay):
    await client.delay(delay)  # asyncio.sleep(delay), done by the daemon
    return f"Data fetched after {delay} seconds"


async def main():
    async with awaitd.Client(URL) as client:
        start = time.monotonic()
        result1 = await fetch_data(client, 1)
        result2 = await fetch_data(client, 2)
        print(result1, result2, f"sequential: {time.monotonic() - start:.2f} s")

        start = time.monotonic()
        results = await asyncio.gather(fetch_data(client, 1), fetch_data(client, 2))
        print(*results, f"concurrent: {time.monotonic() - start:.2f} s")

asyncio.run(main())
