"""The autoscaler at work on a fake backend: demand scales up (never past max), idle scales to zero,
the stabilisation window delays scale-down, a user's scale-to-zero holds, queued demand wakes an endpoint."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fakes import FakeBackend, Gate, dedicated, eventually, serverless, wired

from hubserve.spec import EndpointState

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def settle(seconds: float = 0.3) -> None:
    """Several autoscaler ticks (0.05 s each in these tests)."""
    await asyncio.sleep(seconds)


async def test_serverless_demand_scales_up_by_slots_per_replica(tmp_path: Path) -> None:
    gate = Gate()
    async with wired(tmp_path, FakeBackend(gate), serverless_slots_per_replica=2, scale_down_window_s=10) as w:
        live = await w.deploy(serverless("busy", max_concurrency=10))
        calls = [asyncio.create_task(w.invoke("busy")) for _ in range(5)]  # 5 in flight / 2 slots -> 3 replicas
        await eventually(lambda: len(live.replicas) == 3 and gate.waiting == 5, what="three replicas")
        await settle()
        assert len(live.replicas) == 3 and len(w.backend.alive) == 3 and live.desired == 3
        gate.open.set()
        await asyncio.gather(*calls)


async def test_dedicated_scale_up_follows_target_concurrency_and_stops_at_max(tmp_path: Path) -> None:
    gate = Gate()
    async with wired(tmp_path, FakeBackend(gate), scale_down_window_s=10) as w:
        live = await w.deploy(dedicated("capped", min_replicas=1, max_replicas=2, target_concurrency=1))
        calls = [asyncio.create_task(w.invoke("capped")) for _ in range(6)]  # wants 6, may have 2
        await eventually(lambda: len(live.replicas) == 2 and gate.waiting == 6, what="two replicas")
        await settle()
        assert len(w.backend.started("capped")) == 2 and live.desired == 2 and live.starting == 0
        gate.open.set()
        await asyncio.gather(*calls)


async def test_idle_past_the_idle_timeout_scales_to_zero(tmp_path: Path) -> None:
    async with wired(tmp_path, scale_down_window_s=0.1) as w:
        live = await w.deploy(serverless("quiet", idle_timeout_s=1))
        began = time.monotonic()
        await eventually(lambda: live.state is EndpointState.SCALED_TO_ZERO and not w.backend.alive,
                         what="scale to zero")  # fmt: skip
        assert time.monotonic() - began >= 0.8  # not before the idle timeout
        record = w.store.get("quiet")
        assert record is not None and record.state is EndpointState.SCALED_TO_ZERO
        assert record.state.value == "scaledToZero"
        await settle()
        assert len(w.backend.started()) == 1  # and it stays there


async def test_recent_activity_keeps_an_endpoint_from_scaling_to_zero(tmp_path: Path) -> None:
    async with wired(tmp_path, scale_down_window_s=0.1) as w:
        live = await w.deploy(serverless("kept", idle_timeout_s=1))
        for _ in range(6):  # an invocation every 0.25 s, over 1.5 s
            await asyncio.sleep(0.25)
            await w.invoke("kept")
        assert live.state is EndpointState.RUNNING and len(live.replicas) == 1
        assert len(w.backend.started()) == 1


async def test_the_stabilisation_window_delays_scale_down(tmp_path: Path) -> None:
    gate = Gate()
    async with wired(tmp_path, FakeBackend(gate), scale_down_window_s=0.6) as w:
        live = await w.deploy(dedicated("window", min_replicas=1, max_replicas=3, target_concurrency=1))
        calls = [asyncio.create_task(w.invoke("window")) for _ in range(3)]
        await eventually(lambda: len(live.replicas) == 3, what="three replicas")
        gate.open.set()
        await asyncio.gather(*calls)
        idle_since = time.monotonic()

        await asyncio.sleep(0.3)  # six ticks recommending 1, within the window
        assert len(live.replicas) == 3 and len(w.backend.alive) == 3
        await eventually(lambda: len(live.replicas) == 1 and len(w.backend.alive) == 1, what="scale down to 1")
        assert time.monotonic() - idle_since >= 0.5


async def test_scale_to_zero_holds_until_the_next_invocation(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        live = await w.deploy(dedicated("held", min_replicas=1, max_replicas=1))
        await settle()  # the autoscaler has seen the deployment
        record = await w.controller.scale_to_zero("held")
        assert record.state is EndpointState.SCALED_TO_ZERO
        assert not live.replicas and not w.backend.alive

        await settle()  # min_replicas is 1, yet nothing starts
        assert len(w.backend.started()) == 1 and live.state is EndpointState.SCALED_TO_ZERO

        result = await w.invoke("held")
        assert result.cold_start
        assert len(live.replicas) == 1 and len(w.backend.started()) == 2
        await settle()
        assert len(live.replicas) == 1 and live.state is EndpointState.RUNNING  # min_replicas rules again


async def test_scale_to_zero_right_after_deployment_holds(tmp_path: Path) -> None:
    async with wired(tmp_path, autoscale_interval_s=60) as w:  # no tick of its own: the steps below are the ticks
        live = await w.deploy(dedicated("early", min_replicas=1, max_replicas=1))
        await w.controller.scale_to_zero("early")  # before the autoscaler's first look at the deployment
        w.controller.autoscaler.step(live)
        await asyncio.sleep(0.05)
        w.controller.autoscaler.step(live)
        await asyncio.sleep(0.05)
        assert len(w.backend.started()) == 1 and not live.replicas
        assert live.state is EndpointState.SCALED_TO_ZERO


class Queue:
    """A second demand source, like the async queue: queued work is demand, not activity."""

    def __init__(self) -> None:
        self.queued: dict[str, int] = {}

    def demand(self, name: str) -> int:
        return self.queued.get(name, 0)

    def last_activity(self, name: str) -> float:
        return 0.0


async def test_queued_demand_from_another_source_starts_a_replica(tmp_path: Path) -> None:
    async with wired(tmp_path, scale_down_window_s=0.1) as w:
        queue = Queue()
        w.controller.add_demand(queue)
        live = await w.deploy(serverless("queued", idle_timeout_s=1))
        await eventually(lambda: live.state is EndpointState.SCALED_TO_ZERO and not w.backend.alive,
                         what="scale to zero")  # fmt: skip

        queue.queued["queued"] = 1
        await eventually(lambda: live.state is EndpointState.RUNNING and len(live.replicas) == 1,
                         timeout=1.0, what="a replica for the queued work")  # fmt: skip
        assert len(w.backend.started()) == 2
        assert w.gateway.traffic.demand("queued") == 0  # nothing came through the gateway
