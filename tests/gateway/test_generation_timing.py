"""Streams through the gateway record time to first token and inter-token gaps (fake replica, real delays);
calls that are not streamed record none; the sampler turns replicas' engine stats into levels and tokens/s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fakes import FakeBackend, serverless, wired

from hubserve.control.observe import Sampler
from hubserve.errors import ModelError
from hubserve.spec import EndpointSpec, ModelSpec, ServerlessCompute
from hubserve.types import EngineStats, Invocation, Part

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

FIRST_S = 0.15  # the fake prefill
GAP_S = 0.04  # each fake decoding step


async def slow_tokens(invocation: Invocation) -> AsyncIterator[Part]:
    await asyncio.sleep(FIRST_S)
    yield Part(b'{"id": 1, "text": "a", "logprob": -1.0}')
    for _ in range(4):
        await asyncio.sleep(GAP_S)
        yield Part(b'{"id": 2, "text": "b", "logprob": -1.0}')
    yield Part(b'{"generated_text": "abbbb"}', final=True)  # the summary is not a token


async def fails_after_two(invocation: Invocation) -> AsyncIterator[Part]:
    yield Part(b"a")
    await asyncio.sleep(GAP_S)
    yield Part(b"b")
    raise ModelError("out of memory in the middle")


async def test_a_stream_records_its_time_to_first_token_and_the_gaps_between_tokens(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend(stream=slow_tokens)) as w:
        await w.deploy(serverless("gpt"))
        received = time.perf_counter()
        await asyncio.sleep(0.05)  # the route's own time before the gateway counts too (from receipt)
        stream = await w.gateway.stream(Invocation("gpt", b"{}", stream=True, received=received))
        parts = [part async for part in stream.parts()]
        assert len(parts) == 6

        generation = w.metrics.summary("gpt", 60)["generation"]
        assert generation["streams"] == 1 and generation["generated_tokens"] == 5
        ttft = generation["time_to_first_token_ms"]
        assert ttft["count"] == 1 and (FIRST_S + 0.05) * 1000 <= ttft["p50"] < (FIRST_S + 0.05) * 1000 + 250
        itl = generation["inter_token_latency_ms"]
        assert itl["count"] == 4  # five tokens, four gaps; the final summary part is no token
        assert GAP_S * 1000 * 0.9 <= itl["p50"] < GAP_S * 1000 + 100
        assert w.metrics.summary("gpt", 60)["invocations"] == 1


async def test_tokens_before_a_failure_are_still_timed(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend(stream=fails_after_two)) as w:
        await w.deploy(serverless("flaky"))
        stream = await w.gateway.stream(Invocation("flaky", b"{}", stream=True))
        with pytest.raises(ModelError):
            _ = [part async for part in stream.parts()]
        generation = w.metrics.summary("flaky", 60)["generation"]
        assert generation["time_to_first_token_ms"]["count"] == 1
        assert generation["inter_token_latency_ms"]["count"] == 1
        assert w.metrics.summary("flaky", 60)["errors_4xx"] == 1  # ModelError, 424


async def test_calls_that_are_not_streamed_record_no_generation_figures(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend()) as w:
        await w.deploy(serverless("bert"))
        await w.invoke("bert")
        summary = w.metrics.summary("bert", 60)
        assert summary["invocations"] == 1 and summary["generation"] is None


async def test_the_sampler_sums_the_replicas_engine_stats(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend()) as w:
        spec = EndpointSpec(name="llm", model=ModelSpec(source="/models/fake", task="text-generation"),
                            compute=ServerlessCompute())  # fmt: skip
        live = await w.deploy(spec)
        sampler = Sampler(w.controller, w.backend, w.gateway.traffic, w.metrics, interval_s=0.05)
        sampler.sample_once()  # no engine reported yet: the section is there (generative), empty
        generation = w.metrics.summary("llm", 60)["generation"]
        assert generation is not None and generation["generated_tokens"] == 0
        assert "current" not in generation["sequences_running"]

        channel = live.replicas[0].channel
        channel.stats = EngineStats(running=3, waiting=5, batch_size=3, generated_tokens=100)  # type: ignore[union-attr]
        sampler.sample_once()
        await asyncio.sleep(0.1)
        channel.stats = EngineStats(running=4, waiting=1, batch_size=4, generated_tokens=150)  # type: ignore[union-attr]
        sampler.sample_once()
        generation = w.metrics.summary("llm", 60)["generation"]
        assert generation["generated_tokens"] == 150
        assert generation["sequences_running"] == {"avg": 3.5, "max": 4, "current": 4}
        assert generation["sequences_waiting"]["max"] == 5 and generation["sequences_waiting"]["current"] == 1
        assert generation["batch_size"]["current"] == 4
        assert 50 / 0.5 < generation["tokens_per_second"]["current"] <= 50 / 0.1
