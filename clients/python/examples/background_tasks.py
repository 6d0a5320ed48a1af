"""The article's two background tasks, cancelled after 5 s: each is a
timer that puts its name into a queue every second; cancel() stops it and
awaiting it raises CancelledError. Usage: background_tasks.py [URL] [QUEUE]."""
import asyncio
import sys

import awaitd

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
NAME = sys.argv[2] if len(sys.argv) > 2 else "ran"


async def main():
    async with awaitd.Client(URL) as client:
        ran = client.queue(NAME)
        task_a = await client.create_timer(ran, "task-a ran", every=1)
        task_b = await client.create_timer(ran, "task-b ran", every=1)
        await asyncio.sleep(5)
        task_a.cancel()
        task_b.cancel()
        for t in (task_a, task_b):
            try:
                await t
            except asyncio.CancelledError:
                print("cancelled")
        while not await ran.empty():  # what the tasks did: one job per run
            job = await ran.get()
            print(job.text())
            await job.ack()

asyncio.run(main())
