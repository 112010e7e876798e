"""Streams through the gateway: parts up to the final one, an early close cancels in the replica, metrics count it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fakes import FakeBackend, eventually, serverless, wired

from hubserve.errors import ModelError
from hubserve.types import Invocation, Part

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def three_tokens(invocation: Invocation) -> AsyncIterator[Part]:
    for token in (b"a", b"b"):
        yield Part(token)
    yield Part(b"c", final=True)


async def endless(invocation: Invocation) -> AsyncIterator[Part]:
    n = 0
    while True:
        yield Part(str(n).encode())
        n += 1
        await asyncio.sleep(0.01)


async def test_stream_yields_the_parts_ending_in_a_final_one(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend(stream=three_tokens)) as w:
        live = await w.deploy(serverless("talker"))
        stream = await w.gateway.stream(Invocation("talker", b"{}", stream=True))
        parts = [part async for part in stream.parts()]
        assert [part.body for part in parts] == [b"a", b"b", b"c"]
        assert [part.final for part in parts] == [False, False, True]
        assert w.backend.cancelled == []  # finished, not cancelled

        traffic = w.gateway.traffic.get("talker")
        assert traffic is not None and traffic.in_flight == 0
        channel = live.replicas[0].channel
        assert channel is not None and channel.outstanding == 0
        summary = w.metrics.summary("talker", 60)
        assert summary["invocations"] == 1 and summary["errors_4xx"] == 0
        assert summary["bytes_out"] == 3
        assert summary["model_latency_ms"]["count"] == 1 and summary["overhead_latency_ms"]["count"] == 1
        assert stream.overhead_ms >= 0.0


async def test_closing_the_parts_early_cancels_in_the_replica(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend(stream=endless)) as w:
        live = await w.deploy(serverless("chatty"))
        invocation = Invocation("chatty", b"{}", stream=True)
        stream = await w.gateway.stream(invocation)
        parts = stream.parts()
        received = [await parts.__anext__(), await parts.__anext__()]
        assert [part.body for part in received] == [b"0", b"1"]
        assert w.backend.cancelled == []
        await parts.aclose()  # the client left

        assert w.backend.closed_early == [invocation] and w.backend.cancelled == [invocation]
        traffic = w.gateway.traffic.get("chatty")
        assert traffic is not None and traffic.in_flight == 0
        channel = live.replicas[0].channel
        assert channel is not None and channel.outstanding == 0
        summary = w.metrics.summary("chatty", 60)
        assert summary["invocations"] == 1 and summary["errors_4xx"] == 1  # recorded as 499 ClientClosed


async def test_a_stream_left_before_its_first_part_is_read_still_frees_its_slot(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend(stream=endless)) as w:
        await w.deploy(serverless("ignored", max_concurrency=1))
        invocation = Invocation("ignored", b"{}", stream=True)
        stream = await w.gateway.stream(invocation)
        await stream.close()  # e.g. the client went away before the response started
        assert w.backend.cancelled == [invocation]
        traffic = w.gateway.traffic.get("ignored")
        assert traffic is not None and traffic.in_flight == 0
        again = await w.gateway.stream(Invocation("ignored", b"{}", stream=True))  # the one slot is free again
        await again.close()


async def test_a_model_error_before_the_first_part_is_raised_by_stream(tmp_path: Path) -> None:
    async def broken(invocation: Invocation) -> AsyncIterator[Part]:
        if invocation.stream:  # always: the yield below only makes this an async generator
            raise ModelError("the generation failed")
        yield Part(b"")

    async with wired(tmp_path, FakeBackend(stream=broken)) as w:
        await w.deploy(serverless("broken"))
        with pytest.raises(ModelError) as caught:
            await w.gateway.stream(Invocation("broken", b"{}", stream=True))
        assert "x-overhead-latency-ms" in caught.value.headers
        traffic = w.gateway.traffic.get("broken")
        assert traffic is not None and traffic.in_flight == 0
        await eventually(lambda: w.metrics.summary("broken", 60)["errors_4xx"] == 1)


async def test_a_model_error_of_the_first_part_carries_the_model_latency(tmp_path: Path) -> None:
    async def broken(invocation: Invocation) -> AsyncIterator[Part]:
        await asyncio.sleep(0.02)
        if invocation.stream:  # always: the yield below only makes this an async generator
            raise ModelError("the generation failed")
        yield Part(b"")

    async with wired(tmp_path, FakeBackend(stream=broken)) as w:
        await w.deploy(serverless("broken"))
        with pytest.raises(ModelError) as caught:
            await w.gateway.stream(Invocation("broken", b"{}", stream=True))
        assert float(caught.value.headers["x-model-latency-ms"]) >= 15.0
