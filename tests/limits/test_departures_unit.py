"""The departures sweeper: cancels exactly the invocations whose client left, and stops when idle."""

from __future__ import annotations

import asyncio

import pytest

from hubserve.gateway.departures import Departures


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_only_the_departed_clients_invocation_is_cancelled() -> None:
    departures = Departures(interval_s=0.01)
    gone = {"a": False, "b": False}
    outcomes: dict[str, str] = {}

    async def invocation(name: str) -> None:
        async def client_gone() -> bool:
            return gone[name]

        task = departures.watch(client_gone)
        assert task is not None
        try:
            await asyncio.sleep(0.3)
            outcomes[name] = "answered"
        except asyncio.CancelledError:
            outcomes[name] = "left" if departures.unwatch(task) else "cancelled otherwise"
            return
        departures.unwatch(task)

    both = asyncio.gather(invocation("a"), invocation("b"))
    await asyncio.sleep(0.05)
    gone["a"] = True
    await both
    assert outcomes == {"a": "left", "b": "answered"}
    await asyncio.sleep(0.05)
    assert departures._sweeper is None  # nothing watched: no task left running
