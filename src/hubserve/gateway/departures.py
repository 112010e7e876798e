"""Clients that leave while their sync invocation runs: noticed by one sweeper, their slot freed at once.

Starlette does not cancel a route whose client has gone: without this, an invocation whose client
hung up kept its concurrency slot (and its replica's batch slot) until the replica answered, so a
few departed clients made every later request 429. Each sync invocation whose route gives a
``client_gone`` check is registered for as long as it runs (a dict insert and delete: the only
per-request cost); one sweeper task, alive only while something is registered, asks each check every
``interval_s`` and cancels the invocation's task when its client is gone. The cancel travels down as
usual (a Cancel frame to the replica, the admission slot released); a late answer is dropped by
the channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

ClientGone = Callable[[], Awaitable[bool]]

log = logging.getLogger("hubserve.gateway")


class Departures:
    """Watches running sync invocations for a departed client."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self._interval_s = interval_s
        self._watched: dict[asyncio.Task[object], ClientGone] = {}
        self._left: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def watch(self, client_gone: ClientGone) -> asyncio.Task[object] | None:
        """Watch the current task's client until ``unwatch``; None outside a task (nothing to cancel)."""
        task = asyncio.current_task()
        if task is None:
            return None
        self._watched[task] = client_gone
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return task

    def unwatch(self, task: asyncio.Task[object]) -> bool:
        """Stop watching ``task``; True when it was cancelled because its client left."""
        self._watched.pop(task, None)
        if task in self._left:
            self._left.discard(task)
            return True
        return False

    async def _sweep(self) -> None:
        try:
            while self._watched:
                await asyncio.sleep(self._interval_s)
                for task, client_gone in list(self._watched.items()):
                    try:
                        gone = await client_gone()
                    except Exception:  # a check that fails must not stop the others
                        log.exception("checking whether a client left failed")
                        continue
                    if gone and task in self._watched and task not in self._left:
                        self._left.add(task)
                        task.cancel()
        finally:
            self._sweeper = None
