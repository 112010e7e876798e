"""Admission: the concurrency slot (429 with Retry-After), the payload limit (413), the authorisation hook."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fakes import FakeBackend, Gate, eventually, serverless, wired

from hubserve.errors import ModelError, PayloadTooLarge, Throttled, Unauthorized
from hubserve.types import Invocation, Reply

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def test_past_max_concurrency_is_throttled_with_retry_after(tmp_path: Path) -> None:
    gate = Gate()
    async with wired(tmp_path, FakeBackend(gate)) as w:
        await w.deploy(serverless("capped", max_concurrency=2))
        held = [asyncio.create_task(w.invoke("capped")) for _ in range(2)]
        await eventually(lambda: gate.waiting == 2, what="two invocations in the replica")
        traffic = w.gateway.traffic.get("capped")
        assert traffic is not None and traffic.in_flight == 2

        with pytest.raises(Throttled) as caught:
            await w.invoke("capped")
        assert caught.value.status == 429 and caught.value.type == "ThrottlingException"
        assert caught.value.headers["Retry-After"] == "1"
        assert traffic.throttles == 1
        assert traffic.in_flight == 2  # the refused one took no slot
        assert len(w.backend.received) == 2  # and never reached a replica
        assert w.metrics.summary("capped", 60)["throttles"] == 1

        gate.open.set()
        await asyncio.gather(*held)
        assert traffic.in_flight == 0  # slots released after success
        result = await w.invoke("capped", b'{"again": true}')
        assert result.body == b'{"again": true}'


async def test_slot_is_released_after_a_model_error(tmp_path: Path) -> None:
    def answer(invocation: Invocation) -> Reply:
        if invocation.body == b"bad":
            raise ModelError("the model raised")
        return Reply(b"ok")

    async with wired(tmp_path, FakeBackend(answer)) as w:
        await w.deploy(serverless("fragile", max_concurrency=1))
        for _ in range(3):  # with one slot, a leaked slot would throttle the next call
            with pytest.raises(ModelError):
                await w.invoke("fragile", b"bad")
        traffic = w.gateway.traffic.get("fragile")
        assert traffic is not None and traffic.in_flight == 0 and traffic.throttles == 0
        assert (await w.invoke("fragile", b"good")).body == b"ok"
        summary = w.metrics.summary("fragile", 60)
        assert summary["invocations"] == 4 and summary["errors_4xx"] == 3  # ModelError is 424


async def test_body_over_the_payload_limit_is_413(tmp_path: Path) -> None:
    async with wired(tmp_path, max_payload_bytes=1024) as w:
        await w.deploy(serverless("small"))
        with pytest.raises(PayloadTooLarge) as caught:
            await w.invoke("small", b"x" * 1025)
        assert caught.value.status == 413
        assert w.backend.received == []
        traffic = w.gateway.traffic.get("small")
        assert traffic is not None and traffic.in_flight == 0
        assert (await w.invoke("small", b"x" * 1024)).body == b"x" * 1024  # the limit itself is allowed


async def test_authorisation_hook_refuses_before_anything_is_counted(tmp_path: Path) -> None:
    def authorize(invocation: Invocation) -> None:
        if invocation.path != "/allowed":
            raise Unauthorized("no token")

    gate = Gate()
    async with wired(tmp_path, FakeBackend(gate), authorize=authorize) as w:
        await w.deploy(serverless("guarded", max_concurrency=1))
        with pytest.raises(Unauthorized) as caught:
            await w.invoke("guarded", path="/other")
        assert caught.value.status == 401
        traffic = w.gateway.traffic.get("guarded")
        assert traffic is not None and traffic.in_flight == 0 and traffic.throttles == 0
        assert w.backend.received == []

        allowed = asyncio.create_task(w.invoke("guarded", path="/allowed"))
        await eventually(lambda: gate.waiting == 1, what="the allowed invocation in the replica")
        assert traffic.in_flight == 1
        gate.open.set()
        await allowed
        assert traffic.in_flight == 0
