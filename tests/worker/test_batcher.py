"""The batcher's scheduling, with a stand-in for the model: queueing, limits, keys, order, failures."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hubserve.worker.batcher import BatchDone, Batcher, Pending


class FakeModel:
    """Records each batch's payloads; the first ``hold`` batches wait until ``release`` is set."""

    def __init__(self, hold: int = 0, fail_on: Any = None) -> None:
        self.batches: list[list[Any]] = []
        self.hold = hold
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_on = fail_on

    def __call__(self, payloads: list[Any]) -> list[Any]:
        self.batches.append(list(payloads))
        if len(self.batches) <= self.hold:
            self.entered.set()
            assert self.release.wait(10), "the test never released the batch"
        if self.fail_on is not None and self.fail_on in payloads:
            raise RuntimeError(f"failed on {self.fail_on}")
        return [f"answer {payload}" for payload in payloads]


def scenario(body: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(body(), 20))


async def wait_entered(model: FakeModel) -> None:
    await asyncio.get_running_loop().run_in_executor(None, model.entered.wait, 10)


def make(model: FakeModel, max_batch_size: int = 32, max_batch_tokens: int = 8192, reports: list[BatchDone] | None = None) -> Batcher:
    executor = ThreadPoolExecutor(max_workers=1)
    return Batcher(
        model, executor, max_batch_size=max_batch_size, max_batch_tokens=max_batch_tokens,
        on_batch=None if reports is None else reports.append,
    )  # fmt: skip


def test_a_lone_request_starts_at_once() -> None:
    model = FakeModel()

    async def body() -> float:
        batcher = make(model)
        started = time.perf_counter()
        answer = await batcher.submit(Pending("a", key="k"))
        assert answer == "answer a"
        return time.perf_counter() - started

    assert scenario(body) < 0.05
    assert model.batches == [["a"]]


def test_requests_arriving_while_busy_form_the_next_batch_in_order() -> None:
    model = FakeModel(hold=1)

    async def body() -> list[Any]:
        batcher = make(model)
        first = batcher.submit(Pending("first", key="k"))
        await wait_entered(model)
        assert batcher.busy
        later = [batcher.submit(Pending(f"r{i}", key="k")) for i in range(5)]
        await asyncio.sleep(0.05)
        assert batcher.queued == 5  # queued, not running: the thread is busy
        model.release.set()
        return await asyncio.gather(first, *later)

    answers = scenario(body)
    assert answers == ["answer first"] + [f"answer r{i}" for i in range(5)]
    assert model.batches == [["first"], [f"r{i}" for i in range(5)]]


def test_requests_arriving_together_share_the_first_batch() -> None:
    """Frames read in one go are all submitted before the batch starts on the next loop turn."""
    model = FakeModel()

    async def body() -> None:
        batcher = make(model)
        await asyncio.gather(*(batcher.submit(Pending(i, key="k")) for i in range(4)))

    scenario(body)
    assert model.batches == [[0, 1, 2, 3]]


def test_max_batch_size_counts_sequences_and_lets_smaller_requests_pass() -> None:
    model = FakeModel(hold=1)

    async def body() -> None:
        batcher = make(model, max_batch_size=25)
        blocker = batcher.submit(Pending("blocker", key="k"))
        await wait_entered(model)
        requests = [batcher.submit(Pending(name, key="k", sequences=n)) for name, n in (("a", 10), ("b", 10), ("c", 10), ("d", 5))]
        model.release.set()
        await asyncio.gather(blocker, *requests)

    scenario(body)
    # a+b = 20; c would make 30 and waits; d fits (25). c heads the next batch.
    assert model.batches == [["blocker"], ["a", "b", "d"], ["c"]]


def test_a_request_over_the_limit_runs_alone_and_is_not_rejected() -> None:
    model = FakeModel(hold=1)

    async def body() -> list[Any]:
        batcher = make(model, max_batch_size=32)
        blocker = batcher.submit(Pending("blocker", key="k"))
        await wait_entered(model)
        requests = [batcher.submit(Pending("small1", key="k")), batcher.submit(Pending("big", key="k", sequences=40)),
                batcher.submit(Pending("small2", key="k"))]  # fmt: skip
        model.release.set()
        return await asyncio.gather(blocker, *requests)

    answers = scenario(body)
    assert answers[2] == "answer big"
    assert model.batches == [["blocker"], ["small1", "small2"], ["big"]]


def test_the_token_budget_limits_a_batch() -> None:
    model = FakeModel(hold=1)

    async def body() -> None:
        batcher = make(model, max_batch_size=100, max_batch_tokens=1000)
        blocker = batcher.submit(Pending("blocker", key="k"))
        await wait_entered(model)
        requests = [batcher.submit(Pending(i, key="k", tokens=400)) for i in range(5)]
        model.release.set()
        await asyncio.gather(blocker, *requests)

    scenario(body)
    assert model.batches == [["blocker"], [0, 1], [2, 3], [4]]


def test_only_equal_keys_share_a_batch_and_the_oldest_goes_first() -> None:
    model = FakeModel(hold=1)

    async def body() -> None:
        batcher = make(model)
        blocker = batcher.submit(Pending("blocker", key="k1"))
        await wait_entered(model)
        requests = [batcher.submit(Pending(name, key=key)) for name, key in
                (("a1", "k1"), ("b1", "k2"), ("a2", "k1"), ("c1", None), ("b2", "k2"), ("c2", None))]  # fmt: skip
        model.release.set()
        await asyncio.gather(blocker, *requests)

    scenario(body)
    assert model.batches == [["blocker"], ["a1", "a2"], ["b1", "b2"], ["c1"], ["c2"]]


def test_cancelled_requests_are_dropped_and_the_rest_still_run() -> None:
    model = FakeModel(hold=1)

    async def body() -> list[Any]:
        batcher = make(model)
        running = batcher.submit(Pending("running", key="k"))
        await wait_entered(model)
        queued = [batcher.submit(Pending(name, key="k")) for name in ("gone1", "kept", "gone2")]
        queued[0].cancel()
        queued[2].cancel()
        running.cancel()  # its connection closed while it ran: the answer is dropped
        model.release.set()
        kept = await queued[1]
        await batcher.idle()
        after = await batcher.submit(Pending("after", key="k"))
        return [kept, after]

    assert scenario(body) == ["answer kept", "answer after"]
    assert model.batches == [["running"], ["kept"], ["after"]]


def test_a_failing_batch_fails_its_requests_and_the_batcher_carries_on() -> None:
    model = FakeModel(hold=1, fail_on="bad")

    async def body() -> list[Any]:
        batcher = make(model)
        blocker = batcher.submit(Pending("blocker", key="k"))
        await wait_entered(model)
        doomed = [batcher.submit(Pending("bad", key="k")), batcher.submit(Pending("neighbour", key="k"))]
        model.release.set()
        outcomes = await asyncio.gather(*doomed, return_exceptions=True)
        return [await blocker, *outcomes, await batcher.submit(Pending("next", key="k"))]

    blocker, bad, neighbour, following = scenario(body)
    assert blocker == "answer blocker" and following == "answer next"
    assert isinstance(bad, RuntimeError) and isinstance(neighbour, RuntimeError)


def test_a_run_returning_the_wrong_number_of_results_is_an_error() -> None:
    async def body() -> BaseException | None:
        batcher = Batcher(lambda payloads: [], ThreadPoolExecutor(1), max_batch_size=4, max_batch_tokens=100)
        try:
            await batcher.submit(Pending("x"))
        except RuntimeError as exc:
            return exc
        return None

    error = scenario(body)
    assert error is not None and "returned 0 results" in str(error)


def test_reports_each_batch() -> None:
    model = FakeModel(hold=1)
    reports: list[BatchDone] = []

    async def body() -> None:
        batcher = make(model, reports=reports)
        blocker = batcher.submit(Pending("blocker", key="k", sequences=2, tokens=10))
        await wait_entered(model)
        requests = [batcher.submit(Pending(i, key="k", sequences=3, tokens=20)) for i in range(3)]
        model.release.set()
        await asyncio.gather(blocker, *requests)

    scenario(body)
    assert [(r.requests, r.sequences, r.tokens) for r in reports] == [(1, 2, 10), (3, 9, 60)]
    assert all(r.seconds >= 0 for r in reports)


def test_max_batch_size_one_turns_batching_off() -> None:
    model = FakeModel(hold=1)

    async def body() -> None:
        batcher = make(model, max_batch_size=1)
        blocker = batcher.submit(Pending("blocker", key="k"))
        await wait_entered(model)
        requests = [batcher.submit(Pending(i, key="k")) for i in range(3)]
        model.release.set()
        await asyncio.gather(blocker, *requests)

    scenario(body)
    assert model.batches == [["blocker"], [0], [1], [2]]
