"""Adaptive batching: what arrives while the inference thread is busy runs together next.

There is no timer. When the inference thread is free, a submitted request starts on the next
turn of the event loop (so frames that arrived in the same socket read still join it, and a
lone request waits for nothing). While a batch runs, new requests queue as ``Pending``; when it
finishes, the queue forms the next batch at once:

- the oldest pending request always goes in, whatever its size (one over the limits runs
  alone, it is never rejected);
- then, in arrival order, every pending request with the same ``key`` that keeps the batch
  within ``max_batch_size`` sequences and ``max_batch_tokens`` tokens; one that does not fit
  waits for a later batch (which it heads once it is the oldest), those behind it that fit may
  join;
- a request with key ``None`` never shares a batch;
- a request whose future was cancelled (a Cancel frame, or its connection closed) is dropped
  before it runs, so it takes no slot in a batch; the result of one cancelled while running is
  dropped.

The batcher is pure scheduling: ``run`` (called in the executor's thread with the batch's
payloads) does the work and returns one result per payload, in order. If ``run`` raises, every
request of that batch gets the exception and the batcher carries on with the next.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

RunBatch = Callable[[list[Any]], list[Any]]


@dataclass(eq=False)
class Pending:
    """One request waiting for (or running in) the inference thread."""

    payload: Any
    key: Hashable | None = None  # equal keys may share a batch; None: always alone
    sequences: int = 1
    tokens: int = 0
    future: asyncio.Future[Any] = field(init=False, repr=False)


@dataclass(frozen=True)
class BatchDone:
    """What one finished batch was, for logs and tests."""

    requests: int
    sequences: int
    tokens: int
    seconds: float


class Batcher:
    """Runs submitted requests in batches on one executor thread, without ever waiting on a clock."""

    def __init__(
        self,
        run: RunBatch,
        executor: Executor,
        *,
        max_batch_size: int,
        max_batch_tokens: int,
        on_batch: Callable[[BatchDone], None] | None = None,
    ) -> None:
        self.max_batch_size = max(1, max_batch_size)
        self.max_batch_tokens = max(1, max_batch_tokens)
        self._run = run
        self._executor = executor
        self._on_batch = on_batch
        self._queue: deque[Pending] = deque()
        self._busy = False
        self._scheduled = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def queued(self) -> int:
        return sum(1 for pending in self._queue if not pending.future.done())

    @property
    def busy(self) -> bool:
        return self._busy

    def submit(self, pending: Pending) -> asyncio.Future[Any]:
        """Queue ``pending``; the future resolves with its result (cancel it to drop the request)."""
        pending.future = asyncio.get_running_loop().create_future()
        self._queue.append(pending)
        self._idle.clear()
        self._schedule()
        return pending.future

    async def idle(self) -> None:
        """Wait until nothing is queued or running."""
        await self._idle.wait()

    def _schedule(self) -> None:
        if not self._busy and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        if self._busy:
            return
        batch = self._take()
        if not batch:
            self._idle.set()
            return
        self._busy = True
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        running = loop.run_in_executor(self._executor, self._run, [pending.payload for pending in batch])
        running.add_done_callback(lambda done: self._finish(batch, started, done))

    def _take(self) -> list[Pending]:
        """The next batch: the oldest live request plus every compatible one that fits, in order."""
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()
        if not self._queue:
            return []
        first = self._queue.popleft()
        batch = [first]
        if first.key is None:
            return batch
        sequences, tokens = first.sequences, first.tokens
        waiting: deque[Pending] = deque()
        for pending in self._queue:
            if pending.future.done():
                continue
            fits = sequences + pending.sequences <= self.max_batch_size and tokens + pending.tokens <= self.max_batch_tokens
            if pending.key == first.key and fits:
                batch.append(pending)
                sequences += pending.sequences
                tokens += pending.tokens
            else:
                waiting.append(pending)
        self._queue = waiting
        return batch

    def _finish(self, batch: list[Pending], started: float, done: asyncio.Future[list[Any]]) -> None:
        self._busy = False
        try:
            results = done.result()
            if len(results) != len(batch):
                raise RuntimeError(f"the batch of {len(batch)} requests returned {len(results)} results")
        except BaseException as exc:  # the run itself failed: every request of the batch hears why
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
        else:
            for pending, result in zip(batch, results, strict=True):
                if not pending.future.done():
                    pending.future.set_result(result)
        self._schedule()
        if self._on_batch is not None:
            seconds = time.perf_counter() - started
            sequences, tokens = sum(pending.sequences for pending in batch), sum(pending.tokens for pending in batch)
            self._on_batch(BatchDone(len(batch), sequences, tokens, seconds))
