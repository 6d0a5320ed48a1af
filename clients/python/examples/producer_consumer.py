"""The article's producer/consumer on a queue of maxsize 2, with the queue
in awaitd: the producer's puts wait while it is full, join() waits until
every item is done. Usage: producer_consumer.py [URL] [QUEUE]."""
import asyncio
import sys

import awaitd

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
NAME = sys.argv[2] if len(sys.argv) > 2 else "article"


async def producer(queue):
    for i in range(5):
        await asyncio.sleep(1)
        await queue.put(f"item-{i}")
        print(f"produced item-{i}")


async def consumer(queue, name):
    async for job in queue:  # acked when the body ends, leased meanwhile
        await asyncio.sleep(0.5)
        print(f"{name} consumed {job.text()}")


async def main():
    async with awaitd.Client(URL) as client:
        queue = client.queue(NAME, maxsize=2)
        producer_task = asyncio.create_task(producer(queue))
        consumers = [asyncio.create_task(consumer(queue, f"c{i}")) for i in range(2)]
        await producer_task
        await queue.join()
        for c in consumers:
            c.cancel()

asyncio.run(main())
