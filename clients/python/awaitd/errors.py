"""Exceptions. Every error answer of awaitd becomes an AwaitdError carrying
the status and the JSON body ({"error": "...", "status": N})."""

import asyncio
from typing import Any, Optional


class AwaitdError(Exception):
    """An error answer from awaitd.

    ``status`` is the HTTP status, ``body`` the parsed JSON error body
    (``{"error": "...", "status": N}``; the raw text when it is not JSON),
    ``message`` the ``error`` string and ``retry_after`` the Retry-After
    header in seconds, or None."""

    def __init__(self, status: int, body: Any, retry_after: Optional[float] = None) -> None:
        self.status = status
        self.body = body
        self.retry_after = retry_after
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            self.message = body["error"]
        else:
            self.message = str(body)
        super().__init__("%d: %s" % (status, self.message))


def _mixin(name: str) -> tuple:
    base = getattr(asyncio, name, None)
    return (base,) if isinstance(base, type) else ()


class QueueFull(AwaitdError, *_mixin("QueueFull")):  # type: ignore[misc]
    """put_nowait() on a full queue (503). Also an asyncio.QueueFull."""


class QueueEmpty(AwaitdError, *_mixin("QueueEmpty")):  # type: ignore[misc]
    """get_nowait() on an empty queue (the reserve's 204). Also an asyncio.QueueEmpty."""


class QueueShutDown(AwaitdError, *_mixin("QueueShutDown")):  # type: ignore[misc]
    """The queue was shut down or deleted (410). Also an asyncio.QueueShutDown
    on Python 3.13 and later."""


class TimerFailed(AwaitdError):
    """``await timer`` of a timer that ended in the ``failed`` state (its queue
    was deleted or shut down, or a one-shot could not deliver). ``timer`` is
    its final state; ``message`` its ``last_error``."""

    def __init__(self, timer: dict) -> None:
        self.timer = timer
        super().__init__(200, {"error": timer.get("last_error") or "timer failed",
                               "status": 200})


class JobFailed(AwaitdError):
    """``await handle.result()`` of a job that will not finish: dead (409;
    ``reason`` ``nacked``, with the nack's text as ``detail``, or
    ``lease_expired``) or dropped (410; ``reason`` ``purged``, ``shutdown``,
    ``dead_purged`` or ``queue_deleted``). ``attempt`` is the deliveries."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status, body)
        info = body if isinstance(body, dict) else {}
        self.state: Optional[str] = info.get("state")
        self.reason: Optional[str] = info.get("reason")
        self.detail: Optional[str] = info.get("detail")
        self.attempt: Optional[int] = info.get("attempt")
