"""The connection to one awaitd: an aiohttp session plus the token."""

import asyncio
import json
from typing import Any, Dict, Mapping, NamedTuple, Optional, Set, Union
from urllib.parse import quote

import aiohttp

from .errors import AwaitdError, QueueShutDown


class Answer(NamedTuple):
    """One HTTP answer: status, headers and the body's bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def raise_for(status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Raise the AwaitdError for an error answer (410 as QueueShutDown)."""
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        parsed = body.decode("utf-8", "replace")
    retry = headers.get("Retry-After")
    try:
        retry_after = float(retry) if retry is not None else None
    except ValueError:
        retry_after = None
    cls = QueueShutDown if status == 410 else AwaitdError
    raise cls(status, parsed, retry_after)


class Client:
    """A client of the awaitd at ``url`` (``http://127.0.0.1:8080``).

    Use it as an async context manager::

        async with awaitd.Client("http://127.0.0.1:8080", token=None) as client:
            q = client.queue("emails", maxsize=2)
            await q.put("hello")

    ``token`` is sent as ``Authorization: Bearer`` (awaitd's ``[auth]``).
    ``wait`` is how long one blocking request asks the daemon to wait
    (it answers after at most its ``[queues] max_wait`` anyway); blocking
    calls repeat such requests until done, so it bounds nothing the caller
    sees. ``timeout`` is added to it as the whole request's deadline.
    ``limit`` caps the open connections (0: none); every blocked get, put,
    join or timer await holds one.
    """

    def __init__(self, url: str, token: Optional[str] = None, *, wait: float = 20.0,
                 timeout: float = 30.0, limit: int = 0,
                 session: Optional[aiohttp.ClientSession] = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.wait = wait
        self.timeout = timeout
        self._limit = limit
        self._session = session
        self._own_session = session is None
        self._background: Set["asyncio.Task[Any]"] = set()

    async def __aenter__(self) -> "Client":
        self._open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {"Authorization": "Bearer " + self.token} if self.token else None
            self._session = aiohttp.ClientSession(
                headers=headers, connector=aiohttp.TCPConnector(limit=self._limit))
        return self._session

    async def close(self) -> None:
        """Finish background work (the nacks and touches of abandoned jobs,
        cancels not awaited) and close the session."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def _spawn(self, coro: Any) -> "asyncio.Task[Any]":
        """Run coro in the background; close() waits for it."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def request(self, method: str, path: str, *, params: Optional[Dict[str, Any]] = None,
                      data: Optional[bytes] = None, json_body: Any = None,
                      wait: float = 0.0, ok: tuple = (),
                      headers: Optional[Dict[str, str]] = None) -> Answer:
        """One request to ``path`` (``/queues/q``). Answers of 400 and above
        raise AwaitdError unless their status is in ``ok``; ``wait`` is how
        long the daemon may hold the answer (added to the deadline)."""
        session = self._open()
        headers = dict(headers or {})
        if json_body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(json_body).encode()
        if self.token and not self._own_session:
            headers["Authorization"] = "Bearer " + self.token
        timeout = aiohttp.ClientTimeout(total=wait + self.timeout)
        async with session.request(method, self.url + path, params=params, data=data,
                                   headers=headers, timeout=timeout) as resp:
            body = await resp.read()
            if resp.status >= 400 and resp.status not in ok:
                raise_for(resp.status, resp.headers, body)
            return Answer(resp.status, resp.headers, body)

    # ---- probes -------------------------------------------------------------------------

    async def get_json(self, path: str, **params: Any) -> Any:
        """GET ``path`` and return its JSON (``/get``, ``/health``)."""
        return (await self.request("GET", path, params=params or None)).json()

    async def delay(self, seconds: float, **params: Any) -> Any:
        """``GET /delay/{seconds}``: httpbin's echo, answered after ``seconds``
        by the daemon's timer (asyncio.sleep over the network)."""
        return (await self.request("GET", "/delay/%s" % seconds, params=params or None,
                                   wait=seconds)).json()

    # ---- queues and timers ----------------------------------------------------------------

    def queue(self, name: str, maxsize: Optional[int] = None, *, create: bool = True,
              **settings: Union[int, float]) -> "Queue":
        """The queue ``name`` (no request yet). With ``create`` (the default) the
        first operation declares it: ``PUT /queues/{name}`` with ``maxsize`` and
        any other settings given (``lease``, ``max_attempts``, ``max_payload``,
        ``key_window``, ``result_ttl``), creating it or changing those settings only. With
        ``create=False`` it must exist (404 otherwise)."""
        if maxsize is not None:
            settings["maxsize"] = maxsize
        return Queue(self, name, settings if create else None)

    async def queues(self) -> list:
        """The stats of every queue (GET /queues, every page)."""
        out: list = []
        cursor = None
        while True:
            page = (await self.request("GET", "/queues",
                                       params={"cursor": cursor} if cursor else None)).json()
            out.extend(page["queues"])
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    async def create_timer(self, queue: Union[str, "Queue"], payload: Any = b"", *,
                           after: Optional[float] = None, at: Optional[str] = None,
                           every: Optional[float] = None, cron: Optional[str] = None,
                           **options: Any) -> "Timer":
        """``asyncio.create_task`` for a timer that puts ``payload`` into ``queue``:
        one-shot ``after`` seconds or ``at`` an RFC 3339 time, or periodic
        ``every`` seconds or by ``cron`` (UTC); exactly one of them. Other
        fields of docs/TIMERS.md pass through (``count``, ``jitter``,
        ``on_full``, ``on_missed``). The payload is encoded as for a put.
        ``queue`` is a name (the queue must exist) or a Queue handle, which is
        declared first if it was not yet."""
        if isinstance(queue, Queue):
            await queue._ready()  # declared first, as by any of its own operations
        spec: Dict[str, Any] = {"queue": queue.name if isinstance(queue, Queue) else queue}
        raw = encode(payload)
        try:
            text = raw.decode("utf-8")
            if "\0" in text:
                raise ValueError
            spec["payload"] = text
        except ValueError:
            import base64
            spec["payload_base64"] = base64.b64encode(raw).decode()
        for key, value in (("after", after), ("at", at), ("every", every), ("cron", cron)):
            if value is not None:
                spec[key] = value
        spec.update(options)
        info = (await self.request("POST", "/timers", json_body=spec)).json()
        return Timer(self, info)

    def timer(self, timer_id: int) -> "Timer":
        """A handle on an existing timer (its state is fetched by refresh())."""
        return Timer(self, {"id": timer_id, "state": "unknown"})


def encode(item: Any) -> bytes:
    """A payload's bytes: bytes as they are, str as UTF-8, anything else as JSON."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, str):
        return item.encode("utf-8")
    return json.dumps(item).encode("utf-8")


def qpath(name: str) -> str:
    return "/queues/" + quote(name, safe="")


from .queue import Queue  # noqa: E402  (they import encode and qpath from here)
from .timer import Timer  # noqa: E402


def encode_result(result: Any) -> "tuple[bytes, str]":
    """A job result as (bytes, Content-Type): bytes as they are, str as UTF-8
    text, anything else as JSON; decode_result() turns it back."""
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result), "application/octet-stream"
    if isinstance(result, str):
        return result.encode("utf-8"), "text/plain; charset=utf-8"
    return json.dumps(result).encode("utf-8"), "application/json"


def decode_result(answer: Answer) -> Any:
    """A 200 result answer back into what encode_result() was given; an ack
    without a result (empty body, no type) gives None."""
    ctype = answer.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        return json.loads(answer.body)
    if ctype.startswith("text/"):
        return answer.body.decode("utf-8", "replace")
    if not answer.body and ctype == "application/octet-stream" and \
            "Result-Expires" not in answer.headers:
        return None
    return answer.body
