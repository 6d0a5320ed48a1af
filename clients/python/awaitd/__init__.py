"""awaitd: an asyncio client for the awaitd daemon.

    async with awaitd.Client("http://127.0.0.1:8080") as client:
        q = client.queue("emails", maxsize=2)
        await q.put("hello")
        job = await q.get()
        await q.task_done(job)

    handle = await q.put("work")          # the id, awaitable
    job = await q.get()
    await job.ack(result={"ok": True})   # kept for the queue's result_ttl
    print(await handle.result(timeout=10))

Queues follow asyncio.Queue (every method is a coroutine), timers follow
asyncio.Task (create_timer, cancel, await, done). Errors are AwaitdError
with the daemon's status and JSON body.
"""

from .client import Answer, Client
from .errors import AwaitdError, JobFailed, QueueEmpty, QueueFull, QueueShutDown, TimerFailed
from .queue import Job, JobHandle, JobIterator, Queue
from .timer import Timer

__all__ = ["Answer", "AwaitdError", "Client", "Job", "JobFailed", "JobHandle", "JobIterator",
           "Queue", "QueueEmpty", "QueueFull", "QueueShutDown", "Timer", "TimerFailed"]
__version__ = "0.1.0"
