"""Timers as asyncio tasks: create_timer(), cancel(), await, done()."""

import asyncio
from typing import TYPE_CHECKING, Any, Dict, Generator

from .errors import TimerFailed

if TYPE_CHECKING:
    from .client import Client

FINISHED = ("completed", "cancelled", "failed")


class Timer:
    """A timer of the daemon (``await client.create_timer(...)``), used like
    the asyncio.Task of a background loop that puts its payload into a queue.

    ``info`` is its last known state (docs/TIMERS.md: ``state``, ``fires``,
    ``skips``, ``next_fire``, ``last_error``...), refreshed by every request
    about it. ``await timer`` waits until it finishes and returns the final
    state (``completed``), raises asyncio.CancelledError once it is
    cancelled, or TimerFailed once it failed.
    """

    def __init__(self, client: "Client", info: Dict[str, Any]) -> None:
        self.client = client
        self.id = int(info["id"])
        self.info = info

    def __repr__(self) -> str:
        return "<awaitd.Timer %d %s>" % (self.id, self.state)

    @property
    def path(self) -> str:
        return "/timers/%d" % self.id

    @property
    def state(self) -> str:
        """``scheduled``, ``completed``, ``cancelled`` or ``failed``, as last known."""
        return str(self.info.get("state"))

    def done(self) -> bool:
        """True once the timer is known to have finished (completed, cancelled
        or failed). Like asyncio's, it does not block: it reads the last known
        state (refresh() asks the daemon; ``await timer`` and an awaited
        cancel() update it)."""
        return self.state in FINISHED

    def cancelled(self) -> bool:
        """True once the timer is known to be cancelled."""
        return self.state == "cancelled"

    def cancel(self) -> "asyncio.Future[bool]":
        """Cancel the timer (``DELETE /timers/{id}``). As asyncio's
        ``task.cancel()`` it may be called without ``await``: the request is
        sent in the background at once (Client.close() waits for it). It
        returns an awaitable that gives True when this cancelled the timer
        and False when it had already finished, once the cancel is
        journaled."""
        loop = asyncio.get_running_loop()
        if self.done():
            fut: "asyncio.Future[bool]" = loop.create_future()
            fut.set_result(False)
            return fut
        return self.client._spawn(self._cancel())

    async def _cancel(self) -> bool:
        answer = (await self.client.request("DELETE", self.path)).json()
        self.info = answer["timer"]
        return bool(answer["cancelled"])

    async def refresh(self) -> Dict[str, Any]:
        """Fetch the timer's state (``GET /timers/{id}``) and return it."""
        self.info = (await self.client.request("GET", self.path)).json()
        return self.info

    async def wait(self) -> Dict[str, Any]:
        """``await timer``: wait (however long) until it finishes; return the
        final state if it completed; raise asyncio.CancelledError if it was
        cancelled, TimerFailed if it failed."""
        while not self.done():
            wait = self.client.wait
            answer = await self.client.request("GET", self.path, params={"wait": wait},
                                               wait=wait)
            if answer.status == 200:
                self.info = answer.json()
        if self.state == "cancelled":
            raise asyncio.CancelledError("timer %d was cancelled" % self.id)
        if self.state == "failed":
            raise TimerFailed(self.info)
        return self.info

    def __await__(self) -> Generator[Any, None, Dict[str, Any]]:
        return self.wait().__await__()
