"""asyncio.Queue over HTTP: Queue, its jobs, and ``async for job in queue``."""

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from .errors import AwaitdError, JobFailed, QueueEmpty, QueueFull, QueueShutDown
from .frames import ACKS_MAX, FRAMES_CT, RESERVE_MAX, decode_reserved, encode_acks, encode_puts

if TYPE_CHECKING:
    from .client import Client


class Job:
    """A reserved job: what ``await queue.get()`` returns.

    ``payload`` (bytes), ``id``, ``attempt`` (1 on the first delivery),
    ``priority`` and ``lease_deadline`` (unix seconds, updated by touch()).
    Until ack() the job is leased: a consumer that neither acks nor touches
    it before the deadline loses it to another consumer. Used as
    ``async with job:`` the lease is touched while the block runs, and the
    job is acked when the block ends normally, nacked when it raises.
    """

    def __init__(self, queue: "Queue", job_id: int, attempt: int, priority: int,
                 lease_deadline: float, payload: bytes) -> None:
        self.queue = queue
        self.id = job_id
        self.attempt = attempt
        self.priority = priority
        self.lease_deadline = lease_deadline
        self.payload = payload
        self.finished = False  # acked or nacked by this client
        self.ack_error: Optional[str] = None  # why Queue.ack_many() refused it
        self._lease = max(lease_deadline - time.time(), 0.1)
        self._keeper: Optional["asyncio.Task[None]"] = None

    def __repr__(self) -> str:
        return "<Job %s/%d attempt %d, %d bytes>" % (self.queue.name, self.id, self.attempt,
                                                      len(self.payload))

    def text(self) -> str:
        """The payload as UTF-8 text."""
        return self.payload.decode("utf-8")

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return json.loads(self.payload)

    async def _post(self, op: str, data: Optional[bytes] = None,
                    headers: Optional[Dict[str, str]] = None, **params: Any) -> Any:
        params = {k: v for k, v in params.items() if v is not None}
        params["attempt"] = self.attempt
        path = "%s/jobs/%d/%s" % (self.queue.path, self.id, op)
        return (await self.queue.client.request("POST", path, params=params, data=data,
                                                headers=headers)).json()

    async def ack(self, result: Any = None) -> None:
        """``task_done()``: the job is finished and leaves the queue. A 409
        (AwaitdError) means the lease had expired and the job went to
        another consumer. With ``result`` (bytes; str as UTF-8 text;
        anything else as JSON) the daemon keeps it for the queue's
        ``result_ttl``, for the producer's ``await handle.result()``; a
        result past the memory limit is refused (503) and the job stays
        reserved."""
        from .client import encode_result
        self._stop_keeping()
        if result is None:
            await self._post("ack")
        else:
            data, ctype = encode_result(result)
            await self._post("ack", data=data, headers={"Content-Type": ctype})
        self.finished = True

    async def nack(self, delay: Optional[float] = None, error: Optional[str] = None) -> bool:
        """Give the job back: ready again (after ``delay`` seconds), or dead
        after the queue's ``max_attempts``. Returns True when it went dead.
        ``error`` (text) is kept as the reason a producer's
        ``handle.result()`` raises with, should this nack kill the job."""
        self._stop_keeping()
        data = error.encode("utf-8") if error else None
        answer = await self._post("nack", data=data, delay=delay)
        self.finished = True
        return "dead" in answer

    async def touch(self, lease: Optional[float] = None) -> float:
        """Extend the lease (by ``lease`` seconds, default the queue's); returns
        and records the new ``lease_deadline``."""
        answer = await self._post("touch", lease=lease)
        self.lease_deadline = float(answer["lease_deadline"])
        return self.lease_deadline

    def keep_leased(self) -> None:
        """Touch the lease in the background (every third of it) until ack()
        or nack()."""
        if self._keeper is None and not self.finished:
            self._keeper = asyncio.ensure_future(self._keep())

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(max(self._lease / 3, 0.05))
            try:
                await self.touch()
            except AwaitdError:
                return  # lost the lease (409) or the queue (404, 410): ack/nack will say

    def _stop_keeping(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            self._keeper = None

    async def __aenter__(self) -> "Job":
        self.keep_leased()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._stop_keeping()
        if self.finished:
            return
        if exc_type is None:
            await self.ack()
        else:
            await self.nack(error="%s: %s" % (exc_type.__name__, exc))


class JobHandle(int):
    """What ``await queue.put(...)`` returns: the job's id (an int, so code
    that used the id keeps working) that can also await the job's outcome,
    asyncio's ``await task`` for queued work::

        handle = await q.put({"to": "a@example.com"})
        receipt = await handle.result(timeout=30)

    ``queue`` is the Queue it was put into, ``id`` the id as a plain int.
    """

    queue: "Queue"

    def __new__(cls, job_id: int, queue: "Queue") -> "JobHandle":
        obj = super().__new__(cls, job_id)
        obj.queue = queue
        return obj

    @property
    def id(self) -> int:
        return int(self)

    def __repr__(self) -> str:
        return "<JobHandle %s/%d>" % (self.queue.name, int(self))

    async def result(self, timeout: Optional[float] = None, *, decode: bool = True) -> Any:
        """Wait until a consumer acks the job, then return its result: the
        bytes given to ``job.ack(result=...)``, decoded back by their type
        (JSON, UTF-8 text, else bytes; ``decode=False``: always bytes).
        An ack without a result gives None. Raises JobFailed when the job is
        dead (``reason``: ``nacked`` with the nack's ``detail``, or
        ``lease_expired``) or was dropped (purged, its queue deleted),
        asyncio.TimeoutError when ``timeout`` seconds pass first (None:
        wait however long), AwaitdError 404 when the daemon has no result:
        acked without one and nobody was waiting, or past ``result_ttl``."""
        return await self.queue.result(int(self), timeout, decode=decode)


class Queue:
    """One awaitd queue with asyncio.Queue's names (``client.queue(name)``).

    Unlike asyncio's, every method is a coroutine, because each one is a
    request: ``put_nowait``, ``get_nowait``, ``task_done``, ``shutdown``,
    ``qsize``, ``full`` and ``empty`` too. ``put`` and ``get`` wait as long
    as needed, repeating requests across the daemon's ``max_wait``;
    cancelling them closes the request, and the daemon drops the waiter.
    """

    def __init__(self, client: "Client", name: str,
                 settings: Optional[Dict[str, Any]]) -> None:
        from .client import qpath
        self.client = client
        self.name = name
        self.path = qpath(name)
        self._settings = settings
        self._declared = settings is None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return "<awaitd.Queue %r>" % self.name

    async def declare(self) -> Dict[str, Any]:
        """``PUT /queues/{name}`` with the settings given to client.queue():
        creates the queue or changes those settings. Returns its stats."""
        answer = await self.client.request("PUT", self.path, json_body=self._settings or {})
        self._declared = True
        return answer.json()

    async def _ready(self) -> None:
        if not self._declared:
            async with self._lock:
                if not self._declared:
                    await self.declare()

    # ---- put ------------------------------------------------------------------------------

    async def _put(self, item: Any, wait: float, priority: Optional[int],
                   delay: Optional[float], key: Optional[str]) -> JobHandle:
        from .client import encode
        await self._ready()
        params: Dict[str, Any] = {"wait": wait}
        if priority is not None:
            params["priority"] = priority
        if delay is not None:
            params["delay"] = delay
        answer = await self.client.request("POST", self.path + "/jobs", params=params,
                                           data=encode(item), wait=wait,
                                           headers={"Idempotency-Key": key} if key else None)
        return JobHandle(int(answer.json()["id"]), self)

    async def put(self, item: Any, *, priority: Optional[int] = None,
                  delay: Optional[float] = None, key: Optional[str] = None) -> JobHandle:
        """Put ``item`` (bytes; str as UTF-8; anything else as JSON), waiting
        while the queue is full, however long: a put the daemon answers with
        503 when its ``max_wait`` passes is sent again at once, and other 503s
        (journal busy, memory limit) after their Retry-After. Returns the
        job's id. ``priority``, ``delay`` (seconds before it is ready) and
        ``key`` (an Idempotency-Key) are awaitd's extras. The id comes as a
        JobHandle (an int) whose ``await handle.result()`` is the job's
        outcome."""
        while True:
            try:
                return await self._put(item, self.client.wait, priority, delay, key)
            except AwaitdError as e:
                if e.status != 503:
                    raise
                if "is full" in e.message:
                    continue  # the daemon waited its max_wait: wait again
                await asyncio.sleep(min(e.retry_after or 1.0, 10.0))

    async def put_nowait(self, item: Any, *, priority: Optional[int] = None,
                         delay: Optional[float] = None, key: Optional[str] = None) -> JobHandle:
        """Put without waiting; raises QueueFull when the queue is full
        (or any other 503: journal busy, memory limit). Returns the id (a
        JobHandle)."""
        try:
            return await self._put(item, 0, priority, delay, key)
        except AwaitdError as e:
            if e.status == 503:
                raise QueueFull(e.status, e.body, e.retry_after) from None
            raise

    async def _put_many(self, items: Sequence[Any], wait: float, priority: Optional[int],
                        delay: Optional[float]) -> List[JobHandle]:
        from .client import encode
        await self._ready()
        params: Dict[str, Any] = {"batch": 1, "wait": wait}
        if priority is not None:
            params["priority"] = priority
        if delay is not None:
            params["delay"] = delay
        answer = await self.client.request("POST", self.path + "/jobs", params=params,
                                           data=encode_puts(encode(i) for i in items), wait=wait,
                                           headers={"Content-Type": FRAMES_CT})
        return [JobHandle(int(i), self) for i in answer.json()["ids"]]

    async def put_many(self, items: Sequence[Any], *, priority: Optional[int] = None,
                       delay: Optional[float] = None) -> List[JobHandle]:
        """Put every item of ``items`` in one request, all or nothing (a
        batch put): waits, as put() does, until the queue has room for the
        whole batch, then returns their ids (JobHandles) in order. Items are
        encoded as for put(); ``priority`` and ``delay`` apply to each. A
        batch larger than the queue's maxsize can never fit: put it in
        parts."""
        if not items:
            return []
        while True:
            asked = time.monotonic()
            try:
                return await self._put_many(items, self.client.wait, priority, delay)
            except AwaitdError as e:
                if e.status != 503:
                    raise
                if "is full" in e.message and time.monotonic() - asked >= 0.5:
                    continue  # the daemon waited its max_wait: wait again
                # other 503s, and a daemon that does not wait for a batch's
                # room (before 2026-12): ask again after Retry-After
                await asyncio.sleep(min(e.retry_after or 1.0, 10.0))

    async def put_many_nowait(self, items: Sequence[Any], *, priority: Optional[int] = None,
                              delay: Optional[float] = None) -> List[JobHandle]:
        """put_many() without waiting: raises QueueFull (nothing put) when
        the queue has no room for the whole batch."""
        if not items:
            return []
        try:
            return await self._put_many(items, 0, priority, delay)
        except AwaitdError as e:
            if e.status == 503:
                raise QueueFull(e.status, e.body, e.retry_after) from None
            raise

    # ---- results --------------------------------------------------------------------------

    def handle(self, job_id: int) -> JobHandle:
        """A JobHandle for a job id learnt elsewhere (another process's put)."""
        return JobHandle(job_id, self)

    async def result(self, job_id: int, timeout: Optional[float] = None, *,
                     decode: bool = True) -> Any:
        """The outcome of job ``job_id``: see JobHandle.result()."""
        from .client import decode_result
        await self._ready()
        deadline = None if timeout is None else time.monotonic() + timeout
        path = "%s/jobs/%d/result" % (self.path, job_id)
        while True:
            wait = self.client.wait
            if deadline is not None:
                wait = min(wait, max(deadline - time.monotonic(), 0.0))
            answer = await self.client.request("GET", path, params={"wait": round(wait, 3)},
                                               wait=wait, ok=(409, 410))
            if answer.status == 200:
                return decode_result(answer) if decode else answer.body
            if answer.status in (409, 410):
                raise JobFailed(answer.status, answer.json())
            if deadline is not None and time.monotonic() >= deadline:
                raise asyncio.TimeoutError("job %d of %s: no outcome within %s s"
                                           % (job_id, self.name, timeout))
            # 204: the daemon's max_wait passed with the job still live: ask again

    async def list_jobs(self, state: str = "ready", limit: int = 100,
                        after: Optional[str] = None) -> Dict[str, Any]:
        """One page of ``GET /queues/{q}/jobs?state=...`` (ready, reserved,
        delayed or dead): ``{"jobs": [...], "more": bool, "next": cursor}``."""
        params: Dict[str, Any] = {"state": state, "limit": limit}
        if after is not None:
            params["after"] = after
        return (await self.client.request("GET", self.path + "/jobs", params=params)).json()

    # ---- get ------------------------------------------------------------------------------

    async def _reserve(self, wait: float, lease: Optional[float]) -> Optional[Job]:
        await self._ready()
        params: Dict[str, Any] = {"wait": wait}
        if lease is not None:
            params["lease"] = lease
        answer = await self.client.request("POST", self.path + "/reserve", params=params,
                                           wait=wait)
        if answer.status == 204:
            return None
        h = answer.headers
        return Job(self, int(h["Job-Id"]), int(h["Job-Attempt"]), int(h.get("Job-Priority", 0)),
                   float(h["Lease-Deadline"]), answer.body)

    async def get(self, *, lease: Optional[float] = None) -> Job:
        """Reserve the next job, waiting while the queue is empty, however
        long. ``lease`` overrides the queue's lease for this job. Raises
        QueueShutDown once the queue is shut down and empty (or deleted)."""
        while True:
            try:
                job = await self._reserve(self.client.wait, lease)
            except AwaitdError as e:
                if e.status != 503:
                    raise
                await asyncio.sleep(min(e.retry_after or 1.0, 10.0))
                continue
            if job is not None:
                return job

    async def get_nowait(self, *, lease: Optional[float] = None) -> Job:
        """Reserve a job if one is ready, else raise QueueEmpty."""
        job = await self._reserve(0, lease)
        if job is None:
            raise QueueEmpty(204, {"error": "queue %s is empty" % self.name, "status": 204})
        return job

    async def _reserve_many(self, n: int, wait: float, lease: Optional[float]) -> List[Job]:
        if not 1 <= n <= RESERVE_MAX:
            raise ValueError("get_many takes 1 to %d jobs at a time" % RESERVE_MAX)
        await self._ready()
        params: Dict[str, Any] = {"wait": wait, "count": n}
        if lease is not None:
            params["lease"] = lease
        answer = await self.client.request("POST", self.path + "/reserve", params=params,
                                           wait=wait)
        if answer.status == 204:
            return []
        if n == 1:  # count=1 is a plain reserve: the job in the headers
            h = answer.headers
            return [Job(self, int(h["Job-Id"]), int(h["Job-Attempt"]),
                        int(h.get("Job-Priority", 0)), float(h["Lease-Deadline"]), answer.body)]
        return [Job(self, *f) for f in decode_reserved(answer.body)]

    async def get_many(self, n: int, *, lease: Optional[float] = None) -> List[Job]:
        """Reserve up to ``n`` jobs (1 to 100) in one request, waiting while
        the queue is empty, however long: returns as soon as at least one is
        ready, with those ready then (at most ``n``), in the order get()
        would have returned them. Each is a Job, leased on its own."""
        while True:
            try:
                jobs = await self._reserve_many(n, self.client.wait, lease)
            except AwaitdError as e:
                if e.status != 503:
                    raise
                await asyncio.sleep(min(e.retry_after or 1.0, 10.0))
                continue
            if jobs:
                return jobs

    async def get_many_nowait(self, n: int, *, lease: Optional[float] = None) -> List[Job]:
        """Reserve up to ``n`` jobs that are ready now; raises QueueEmpty
        when none is."""
        jobs = await self._reserve_many(n, 0, lease)
        if not jobs:
            raise QueueEmpty(204, {"error": "queue %s is empty" % self.name, "status": 204})
        return jobs

    async def ack_many(self, jobs: Sequence[Job]) -> List[Job]:
        """Ack ``jobs`` (of this queue) with batch acks (``POST .../acks``,
        up to 1,000 per request). Each job is acked or refused on its own, as
        that many ack() calls would be; the acked ones are marked finished.
        Returns the jobs the daemon refused (409: the lease had expired and
        the job went to another consumer; 404: already acked), each with
        ``ack_error`` set to the daemon's text; an empty list when all took.
        Results cannot be kept this way: ack(result=...) one job at a time."""
        refused: List[Job] = []
        for start in range(0, len(jobs), ACKS_MAX):
            part = jobs[start:start + ACKS_MAX]
            for job in part:
                if job.queue is not self and job.queue.name != self.name:
                    raise ValueError("job %d is of queue %s, not %s"
                                     % (job.id, job.queue.name, self.name))
                job._stop_keeping()
            answer = await self.client.request("POST", self.path + "/acks",
                                               data=encode_acks((j.id, j.attempt) for j in part))
            results = answer.json()["results"]
            for job, res in zip(part, results):
                if res["status"] == 200:
                    job.finished = True
                else:
                    job.ack_error = "%d: %s" % (res["status"], res.get("error", ""))
                    refused.append(job)
        return refused

    async def task_done(self, job: Job, result: Any = None) -> None:
        """asyncio's ``task_done()``, naming the job: acks it (keeping
        ``result`` for the producer, see Job.ack)."""
        await job.ack(result)

    async def join(self) -> None:
        """Wait until every job put has been acked (or gone dead)."""
        await self._ready()
        while True:
            answer = await self.client.request("GET", self.path + "/join",
                                               params={"wait": self.client.wait},
                                               wait=self.client.wait)
            if answer.status == 200:
                return

    async def shutdown(self, immediate: bool = False) -> None:
        """Python 3.13's ``Queue.shutdown``: puts raise QueueShutDown from now
        on; gets too once the queue is empty (at once with ``immediate``,
        which also drops the ready jobs)."""
        await self._ready()
        await self.client.request("POST", self.path + "/shutdown",
                                  params={"immediate": 1} if immediate else None)

    # ---- stats ----------------------------------------------------------------------------

    async def stats(self) -> Dict[str, Any]:
        """``GET /queues/{name}``: size, maxsize, reserved, delayed, dead,
        unfinished, putters, getters, joiners, totals, settings."""
        await self._ready()
        return (await self.client.request("GET", self.path)).json()

    async def qsize(self) -> int:
        """Jobs waiting in the queue (ready plus delayed: what maxsize bounds),
        from stats(). A coroutine, unlike asyncio's, and only a snapshot."""
        st = await self.stats()
        return int(st["size"]) + int(st["delayed"])

    async def full(self) -> bool:
        """True when qsize() >= maxsize (never with maxsize 0). A coroutine
        and a snapshot, from stats()."""
        st = await self.stats()
        return bool(st["maxsize"]) and st["size"] + st["delayed"] >= st["maxsize"]

    async def empty(self) -> bool:
        """True when qsize() is 0. A coroutine and a snapshot, from stats()."""
        return await self.qsize() == 0

    @property
    def maxsize(self) -> Optional[int]:
        """The maxsize given to client.queue(), if any (stats() has the daemon's)."""
        return (self._settings or {}).get("maxsize")

    async def purge(self) -> int:
        """Drop every ready and delayed job; returns how many."""
        await self._ready()
        return int((await self.client.request("POST", self.path + "/purge")).json()["purged"])

    async def delete(self) -> None:
        """Delete the queue with its jobs (waiters get QueueShutDown)."""
        await self.client.request("DELETE", self.path)
        self._declared = self._settings is None

    # ---- async for ------------------------------------------------------------------------

    def __aiter__(self) -> "JobIterator":
        return JobIterator(self)

    def jobs(self, *, lease: Optional[float] = None) -> "JobIterator":
        """``async for job in queue.jobs(lease=...)``: as ``async for job in queue``."""
        return JobIterator(self, lease)


class JobIterator:
    """``async for job in queue``: get() each job, touch its lease while the
    loop body runs, and ack it when the body finishes and the loop goes on
    to the next job. A job the body acks or nacks itself is left alone.
    Leaving the loop (break, return or an exception) with the job not acked
    nacks it: it is released for another delivery, so a body that did not
    run to its end is retried (ack before ``break`` to keep a finished job).
    The loop ends when the queue is shut down and empty."""

    def __init__(self, queue: Queue, lease: Optional[float] = None) -> None:
        self.queue = queue
        self.lease = lease
        self.job: Optional[Job] = None

    def __aiter__(self) -> "JobIterator":
        return self

    async def __anext__(self) -> Job:
        job, self.job = self.job, None
        if job is not None and not job.finished:
            await job.ack()
        try:
            job = await self.queue.get(lease=self.lease)
        except QueueShutDown:
            raise StopAsyncIteration from None
        job.keep_leased()
        self.job = job
        return job

    def __del__(self) -> None:
        job = self.job
        if job is None or job.finished:
            return
        job._stop_keeping()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the lease runs out and the job comes back by itself
        self.queue.client._spawn(job.nack())
