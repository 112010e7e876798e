"""Holding: requests wait through a cold start, time out as 503, fail at once when the endpoint cannot serve."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fakes import FakeBackend, Gate, eventually, serverless, wired

from hubserve.errors import ColdStartTimeout, InvocationTimeout, ModelNotReady
from hubserve.spec import EndpointState
from hubserve.types import Invocation

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def test_idle_endpoint_at_zero_holds_the_request_through_a_cold_start(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend(start_delay_s=0.2), scale_down_window_s=0.1) as w:
        live = await w.deploy(serverless("sleepy", idle_timeout_s=1))
        await eventually(lambda: live.state is EndpointState.SCALED_TO_ZERO and not w.backend.alive,
                         what="idle scale to zero")  # fmt: skip
        assert len(w.backend.started()) == 1

        began = time.monotonic()
        request = asyncio.create_task(w.invoke("sleepy", b'{"wake": 1}'))
        await eventually(lambda: w.gateway.traffic.held("sleepy") == 1, what="the request to be held")
        traffic = w.gateway.traffic.get("sleepy")
        assert len(w.backend.started()) == 2  # control was asked for capacity at once, not at the next tick
        result = await request
        assert time.monotonic() - began >= 0.19  # it waited for the start delay
        assert result.body == b'{"wake": 1}' and result.cold_start
        assert result.latency_headers()["x-cold-start"] == "true"
        assert traffic is not None and traffic.cold_starts == 1 and traffic.held == 0
        assert live.state is EndpointState.RUNNING
        assert w.metrics.summary("sleepy", 60)["cold_starts"] == 1

        warm = await w.invoke("sleepy")
        assert not warm.cold_start and traffic.cold_starts == 1


async def test_cold_start_timeout_is_503_and_shown_as_the_reason(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend(), cold_start_timeout_s=0.2) as w:
        live = await w.deploy(serverless("slowstart"))
        await w.controller.scale_to_zero("slowstart")
        w.backend.start_delay_s = 2.0  # the next replica takes longer than the cold-start timeout

        began = time.monotonic()
        with pytest.raises(ColdStartTimeout) as caught:
            await w.invoke("slowstart")
        assert 0.19 <= time.monotonic() - began < 1.0
        assert caught.value.status == 503 and caught.value.type == "ModelNotReadyException"
        assert live.reason is not None and "cold-start timeout" in live.reason
        _, described = w.controller.describe("slowstart")
        assert described.reason is not None and "cold-start timeout" in described.reason
        traffic = w.gateway.traffic.get("slowstart")
        assert traffic is not None and traffic.in_flight == 0 and traffic.held == 0
        assert w.backend.received == []  # the request was not run


async def test_paused_endpoint_is_not_ready_at_once(tmp_path: Path) -> None:
    async with wired(tmp_path, cold_start_timeout_s=5.0) as w:
        live = await w.deploy(serverless("resting"))
        w.controller.pause("resting")
        await eventually(lambda: live.state is EndpointState.PAUSED and not w.backend.alive, what="pause")

        began = time.monotonic()
        with pytest.raises(ModelNotReady) as caught:
            await w.invoke("resting")
        assert time.monotonic() - began < 0.5  # not held for the 5 s cold-start timeout
        assert not isinstance(caught.value, ColdStartTimeout) and "paused" in caught.value.message
        assert len(w.backend.started()) == 1  # no replica was started for it
        traffic = w.gateway.traffic.get("resting")
        assert traffic is not None and traffic.in_flight == 0


async def test_deadline_shorter_than_the_call_times_out_and_cancels_in_the_replica(tmp_path: Path) -> None:
    gate = Gate()  # never opened: the replica would take forever
    async with wired(tmp_path, FakeBackend(gate)) as w:
        live = await w.deploy(serverless("slowpoke"))
        invocation = Invocation("slowpoke", b"{}", deadline=time.monotonic() + 0.1)
        with pytest.raises(InvocationTimeout) as caught:
            await asyncio.wait_for(w.gateway.invoke(invocation), 2.0)  # a TimeoutError here: no deadline at all
        assert caught.value.status == 504
        assert w.backend.cancelled == [invocation]  # the cancel reached the replica
        assert float(caught.value.headers["x-model-latency-ms"]) >= 90.0
        stuck = w.backend.started()[0]
        channel = w.backend.replicas[stuck].channel
        assert channel is not None and channel.outstanding == 0
        # Past its deadline a request's replica is killed and replaced (a stuck handler stops no other way).
        await eventually(lambda: stuck not in w.backend.alive, what="the stuck replica to be killed")
        await eventually(lambda: [r.id for r in live.replicas] not in ([], [stuck]), what="a replacement")
        assert live.state is EndpointState.RUNNING
        traffic = w.gateway.traffic.get("slowpoke")
        assert traffic is not None and traffic.in_flight == 0
        await eventually(lambda: gate.waiting == 0, what="the replica's work to stop")


async def test_deadline_shorter_than_a_cold_start_times_out_without_running(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend(), cold_start_timeout_s=5.0) as w:
        await w.deploy(serverless("cold"))
        await w.controller.scale_to_zero("cold")
        w.backend.start_delay_s = 1.0
        began = time.monotonic()
        with pytest.raises(InvocationTimeout):
            await w.gateway.invoke(Invocation("cold", b"{}", deadline=time.monotonic() + 0.1))
        assert time.monotonic() - began < 0.5
        assert w.backend.received == []
        assert "cold-start timeout" not in (w.live("cold").reason or "")  # its own deadline, not the endpoint's fault


async def test_a_cold_start_that_fails_answers_the_held_request_at_once(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend(), cold_start_timeout_s=5.0) as w:
        live = await w.deploy(serverless("flaky"))
        await w.controller.scale_to_zero("flaky")
        w.backend.start_delay_s = 0.1
        w.backend.fail_start = "loading the model failed: OSError: disk gone"
        began = time.monotonic()
        with pytest.raises(ModelNotReady) as caught:
            await w.invoke("flaky")
        assert time.monotonic() - began < 1.0  # woken by the failure, not the 5 s timeout
        assert not isinstance(caught.value, ColdStartTimeout) and "disk gone" in caught.value.message
        assert live.state is EndpointState.FAILED and w.backend.received == []


async def test_deleting_an_endpoint_releases_its_held_requests(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend(), cold_start_timeout_s=5.0) as w:
        await w.deploy(serverless("leaving"))
        await w.controller.scale_to_zero("leaving")
        w.backend.start_delay_s = 2.0
        held = asyncio.create_task(w.invoke("leaving"))
        await eventually(lambda: w.gateway.traffic.held("leaving") == 1, what="the request to be held")
        w.controller.delete("leaving")
        with pytest.raises(ModelNotReady) as caught:
            await asyncio.wait_for(held, 1.0)
        assert "being deleted" in caught.value.message
