"""Adaptive batching: what arrives while the inference thread is busy runs together next.

There is no timer. When the inference thread is free, a submitted job starts on the next turn
of the event loop (so frames that arrived in the same socket read still join it, and a lone
request waits for nothing). While a batch runs, new jobs queue; when it finishes, the queue
forms the next batch at once:

- the oldest waiting job always goes in, whatever its size (a job over the limits runs alone,
  it is never rejected);
- then, in arrival order, every waiting job with the same ``key`` that keeps the batch within
  ``max_batch_size`` sequences and ``max_batch_tokens`` tokens; a job that does not fit waits
  for a later batch (which it heads once it is the oldest), jobs behind it that fit may join;
- a job with key ``None`` never shares a batch;
- a job whose future was cancelled (its connection closed) is dropped before it runs, and
  the result of one cancelled while running is dropped.

The batcher is pure scheduling: ``run`` (called in the executor's thread with the batch's
payloads) does the work and returns one result per payload, in order. If ``run`` raises, every
job of that batch gets the exception and the batcher carries on with the next.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

RunBatch = Callable[[list[Any]], list[Any]]


@dataclass(eq=False)
class Job:
    """One request waiting for the inference thread."""

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
    """Runs submitted jobs in batches on one executor thread, without ever waiting on a clock."""

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
        self._queue: deque[Job] = deque()
        self._busy = False
        self._scheduled = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def queued(self) -> int:
        return sum(1 for job in self._queue if not job.future.done())

    @property
    def busy(self) -> bool:
        return self._busy

    def submit(self, job: Job) -> asyncio.Future[Any]:
        """Queue ``job``; the future resolves with its result (cancel it to drop the job)."""
        job.future = asyncio.get_running_loop().create_future()
        self._queue.append(job)
        self._idle.clear()
        self._schedule()
        return job.future

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
        running = loop.run_in_executor(self._executor, self._run, [job.payload for job in batch])
        running.add_done_callback(lambda done: self._finish(batch, started, done))

    def _take(self) -> list[Job]:
        """The next batch: the oldest live job plus every compatible one that fits, in order."""
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()
        if not self._queue:
            return []
        first = self._queue.popleft()
        batch = [first]
        if first.key is None:
            return batch
        sequences, tokens = first.sequences, first.tokens
        waiting: deque[Job] = deque()
        for job in self._queue:
            if job.future.done():
                continue
            fits = sequences + job.sequences <= self.max_batch_size and tokens + job.tokens <= self.max_batch_tokens
            if job.key == first.key and fits:
                batch.append(job)
                sequences += job.sequences
                tokens += job.tokens
            else:
                waiting.append(job)
        self._queue = waiting
        return batch

    def _finish(self, batch: list[Job], started: float, done: asyncio.Future[list[Any]]) -> None:
        self._busy = False
        try:
            results = done.result()
            if len(results) != len(batch):
                raise RuntimeError(f"the batch of {len(batch)} requests returned {len(results)} results")
        except BaseException as exc:  # the run itself failed: every job of the batch hears why
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
        else:
            for job, result in zip(batch, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)
        self._schedule()
        if self._on_batch is not None:
            seconds = time.perf_counter() - started
            sequences, tokens = sum(job.sequences for job in batch), sum(job.tokens for job in batch)
            self._on_batch(BatchDone(len(batch), sequences, tokens, seconds))
