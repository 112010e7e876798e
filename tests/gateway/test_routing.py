"""Routing (least-outstanding ready replica, closed channels skipped, unknown names) and timing (latencies)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from fakes import FakeBackend, Gate, Wired, dedicated, eventually, serverless, wired

from hubserve.errors import EndpointNotFound, ModelError, Throttled
from hubserve.types import Invocation, Reply

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


def slow_or_fast(gate: Gate) -> Callable[[Invocation], Awaitable[Reply]]:
    """Bodies "slow" wait for the gate; anything else is answered at once."""

    async def answer(invocation: Invocation) -> Reply:
        if invocation.body == b"slow":
            return await gate(invocation)
        return Reply(b"fast")

    return answer


def receiver(w: Wired, invocation_body: bytes) -> list[str]:
    return [replica for replica, invocation in w.backend.received if invocation.body == invocation_body]


async def test_new_invocations_go_to_the_least_outstanding_replica(tmp_path: Path) -> None:
    gate = Gate()
    async with wired(tmp_path, FakeBackend(slow_or_fast(gate))) as w:
        live = await w.deploy(dedicated("pair", min_replicas=2, max_replicas=2, target_concurrency=100), replicas=2)
        first, second = (replica.id for replica in live.replicas)

        slow = [asyncio.create_task(w.invoke("pair", b"slow")) for _ in range(3)]
        await eventually(lambda: gate.waiting == 3, what="three slow invocations in flight")
        load = Counter(receiver(w, b"slow"))
        assert sorted(load.values()) == [1, 2]  # spread, not piled on one replica
        lighter = min((first, second), key=lambda rid: load[rid])

        for _ in range(3):  # answered at once: the lighter replica stays the lighter one
            await w.invoke("pair", b"fast")
        assert receiver(w, b"fast") == [lighter] * 3

        gate.open.set()
        await asyncio.gather(*slow)
        assert all(replica.channel is not None and replica.channel.outstanding == 0 for replica in live.replicas)


async def test_a_closed_channel_is_skipped(tmp_path: Path) -> None:
    gate = Gate()
    async with wired(tmp_path, FakeBackend(slow_or_fast(gate))) as w:
        live = await w.deploy(dedicated("pair", min_replicas=2, max_replicas=2, target_concurrency=100), replicas=2)
        idle, busy = live.replicas  # "idle" once its channel is closed below
        assert busy.channel is not None and idle.channel is not None
        slow = [asyncio.create_task(w.gateway.invoke(Invocation("pair", b"slow"))) for _ in range(2)]
        await eventually(lambda: gate.waiting == 2)
        assert sorted(Counter(receiver(w, b"slow")).values()) == [1, 1]
        await idle.channel.close()  # fails its one slow call, leaves it with nothing outstanding
        await eventually(lambda: idle.channel.outstanding == 0, what="the failed call to leave the closed channel")
        assert busy.channel.outstanding == 1

        for _ in range(2):
            assert (await w.invoke("pair", b"fast")).body == b"fast"
        assert receiver(w, b"fast") == [busy.id, busy.id]  # the idle but closed channel got nothing
        gate.open.set()
        await asyncio.gather(*slow, return_exceptions=True)


async def test_unknown_endpoint_is_not_found_and_leaves_no_metrics(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        await w.deploy(serverless("known"))
        with pytest.raises(EndpointNotFound) as caught:
            await w.invoke("nope")
        assert caught.value.status == 404
        assert "x-overhead-latency-ms" in caught.value.headers
        assert w.backend.received == []
        assert w.gateway.traffic.get("nope") is None
        assert b'endpoint="nope"' not in w.metrics.prometheus_text()
        assert not (w.settings.home_dir / "logs" / "nope").exists()  # no access line either
        assert w.metrics.summary("known", 60)["invocations"] == 0


# --- timing ------------------------------------------------------------------------------------


async def test_model_and_overhead_latency_are_recorded(tmp_path: Path) -> None:
    async def answer(invocation: Invocation) -> Reply:
        await asyncio.sleep(0.05)
        return Reply(b"done")

    async with wired(tmp_path, FakeBackend(answer)) as w:
        await w.deploy(serverless("timed"))
        result = await w.invoke("timed")
        assert result.model_latency_ms >= 45.0
        assert 0.0 <= result.overhead_latency_ms < result.model_latency_ms
        headers = result.latency_headers()
        assert float(headers["x-model-latency-ms"]) == pytest.approx(result.model_latency_ms, abs=0.001)
        assert headers["x-cold-start"] == "false"

        summary = w.metrics.summary("timed", 60)
        assert summary["invocations"] == 1
        assert summary["model_latency_ms"]["count"] == 1 and summary["model_latency_ms"]["max"] >= 45.0
        assert summary["overhead_latency_ms"]["count"] == 1
        assert summary["overhead_latency_ms"]["max"] < 45.0
        access = (w.settings.home_dir / "logs" / "timed" / "hubserve.log").read_text()
        assert "model_ms=" in access and " 200 " in access


async def test_errors_carry_latency_headers(tmp_path: Path) -> None:
    gate = Gate()

    async def answer(invocation: Invocation) -> Reply:
        if invocation.body == b"bad":
            raise ModelError("the model raised")
        return await gate(invocation)

    async with wired(tmp_path, FakeBackend(answer)) as w:
        await w.deploy(serverless("errs", max_concurrency=1))
        with pytest.raises(ModelError) as model_error:
            await w.invoke("errs", b"bad")
        assert float(model_error.value.headers["x-model-latency-ms"]) >= 0.0  # the replica was reached
        assert float(model_error.value.headers["x-overhead-latency-ms"]) >= 0.0

        held = asyncio.create_task(w.invoke("errs", b"slow"))
        await eventually(lambda: gate.waiting == 1)
        with pytest.raises(Throttled) as throttled:
            await w.invoke("errs")
        assert "x-model-latency-ms" not in throttled.value.headers  # it never reached a replica
        assert float(throttled.value.headers["x-overhead-latency-ms"]) >= 0.0
        gate.open.set()
        await held

        summary = w.metrics.summary("errs", 60)
        assert summary["invocations"] == 3 and summary["errors_4xx"] == 2
        assert summary["model_latency_ms"]["count"] == 2  # the throttled one has no model latency
        assert summary["overhead_latency_ms"]["count"] == 3
