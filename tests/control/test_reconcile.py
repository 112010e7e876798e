"""Reconciliation on a fake backend: deploy, rolling update, failed start, crash replacement, pause, delete,
and memory policing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fakes import FakeBackend, Gate, dedicated, eventually, serverless, wired

from hubserve.errors import ModelError, ModelNotReady, ReplicaCrashed
from hubserve.spec import EndpointState

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_create_runs_one_replica_of_the_spec(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        spec = serverless("fresh", memory_mb=3072)
        live = await w.deploy(spec)
        (replica,) = live.replicas
        assert replica.launch.endpoint == "fresh" and replica.launch.source == "/models/fake"
        assert live.spec == spec and live.max_concurrency == spec.compute.max_concurrency
        record = w.store.get("fresh")
        assert record is not None and record.state is EndpointState.RUNNING and record.reason is None
        assert w.backend.alive == [replica.id]
        assert (await w.invoke("fresh", b"hi")).body == b"hi"


async def test_update_rolls_out_a_new_replica_before_stopping_the_old(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        live = await w.deploy(dedicated("rolling"))
        (old,) = live.replicas
        w.backend.start_delay_s = 0.3
        updated = dedicated("rolling").model_copy(update={"env": {"GENERATION": "2"}})
        w.controller.update(updated, [])

        await eventually(lambda: live.state is EndpointState.UPDATING, what="updating")
        assert live.replicas == [old]
        assert (await w.invoke("rolling", b"during")).body == b"during"  # the old replica still serves
        assert w.backend.received[-1][0] == old.id

        await eventually(lambda: live.state is EndpointState.RUNNING and live.replicas != [old], what="the roll-out")
        (new,) = live.replicas
        assert new.launch.env == {"GENERATION": "2"} and live.spec == updated
        await eventually(lambda: old.id not in w.backend.alive, what="the old replica to stop")
        assert w.backend.when("ready", new.id) < w.backend.when("stopped", old.id)
        assert w.backend.alive == [new.id]
        assert (await w.invoke("rolling", b"after")).body == b"after"
        assert w.backend.received[-1][0] == new.id


async def test_update_that_fails_to_start_keeps_serving_the_previous_spec(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        live = await w.deploy(dedicated("careful"))
        (old,) = live.replicas
        w.backend.fail_start = "loading the model failed: OSError: no weights"
        w.controller.update(dedicated("careful").model_copy(update={"env": {"BROKEN": "1"}}), [])
        await eventually(lambda: live.state is EndpointState.UPDATE_FAILED, what="update failed")
        assert live.reason is not None and "no weights" in live.reason
        assert live.replicas == [old] and old.id in w.backend.alive
        assert (await w.invoke("careful", b"still")).body == b"still"


async def test_replica_that_fails_to_start_fails_the_endpoint_with_its_reason(tmp_path: Path) -> None:
    reason = "loading the model failed: ValueError: unrecognised configuration"
    async with wired(tmp_path, FakeBackend(fail_start=reason)) as w:
        w.controller.create(serverless("broken"), [])
        live = w.live("broken")
        await eventually(lambda: live.state is EndpointState.FAILED, what="failed")
        assert live.reason == reason
        record = w.store.get("broken")
        assert record is not None and record.state is EndpointState.FAILED and record.reason == reason
        with pytest.raises(ModelNotReady) as caught:
            await w.invoke("broken")
        assert reason in caught.value.message
        await asyncio.sleep(0.2)
        assert len(w.backend.started()) == 1  # the failed spec is not retried on its own


async def test_crashed_replica_is_replaced(tmp_path: Path) -> None:
    gate = Gate()
    async with wired(tmp_path, FakeBackend(gate)) as w:
        live = await w.deploy(dedicated("phoenix"))
        (first,) = live.replicas
        in_flight = asyncio.create_task(w.invoke("phoenix"))
        await eventually(lambda: gate.waiting == 1)

        w.backend.crash(first.id, 137)
        with pytest.raises(ReplicaCrashed):
            await in_flight  # what it held fails with 502
        await eventually(lambda: len(live.replicas) == 1 and live.replicas[0] is not first, what="a replacement")
        assert live.state is EndpointState.RUNNING
        assert first.id not in w.backend.alive and len(w.backend.started()) == 2
        log = (w.settings.home_dir / "logs" / "phoenix" / "hubserve.log").read_text()
        assert f"replica {first.id} exited on its own with code 137" in log
        gate.open.set()
        assert (await w.invoke("phoenix", b"again")).body == b"again"


async def test_pause_stops_the_replicas_and_resume_starts_them(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        live = await w.deploy(dedicated("napping", min_replicas=2, max_replicas=2), replicas=2)
        record = w.controller.pause("napping")
        assert record.desired == "paused"
        await eventually(lambda: live.state is EndpointState.PAUSED and not w.backend.alive, what="paused")
        assert not live.replicas
        stored = w.store.get("napping")
        assert stored is not None and stored.state is EndpointState.PAUSED
        await asyncio.sleep(0.2)
        assert len(w.backend.started()) == 2  # the autoscaler leaves a paused endpoint alone

        w.controller.resume("napping")
        await eventually(lambda: live.state is EndpointState.RUNNING and len(live.replicas) == 2, what="resumed")


async def test_delete_removes_the_endpoint(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        live = await w.deploy(serverless("doomed"))
        (replica,) = live.replicas
        w.controller.delete("doomed")
        await eventually(lambda: w.controller.find("doomed") is None, what="deletion")
        assert w.store.get("doomed") is None
        assert replica.id not in w.backend.alive
        assert [record.name for record in w.store.list()] == []
        w.controller.create(serverless("doomed"), [])  # the name is free again
        await eventually(lambda: (w.controller.live("doomed") or live).state is EndpointState.RUNNING)


async def test_memory_policing_replaces_a_replica_a_request_pushed_over_its_size(tmp_path: Path) -> None:
    gate = Gate()
    async with wired(tmp_path, FakeBackend(gate)) as w:
        live = await w.deploy(serverless("hungry", memory_mb=1024))
        (replica,) = live.replicas
        in_flight = asyncio.create_task(w.invoke("hungry"))
        await eventually(lambda: gate.waiting == 1)
        await asyncio.sleep(0.1)
        assert replica.id in w.backend.alive  # 100 MB is within 1024 MB

        w.backend.set_memory(replica.id, 1900.0)  # while it serves a request: the request is to blame
        with pytest.raises(ModelError) as caught:
            await in_flight
        assert "while serving this request" in caught.value.message and "1024 MB" in caught.value.message
        await eventually(lambda: replica.id not in w.backend.alive, what="the replica to stop")
        await eventually(lambda: len(live.replicas) == 1 and live.replicas[0] is not replica, what="a replacement")
        assert live.state is EndpointState.RUNNING
        record = w.store.get("hungry")
        assert record is not None and record.state is EndpointState.RUNNING


async def test_memory_policing_fails_an_endpoint_whose_idle_replica_is_over_its_size(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        live = await w.deploy(serverless("hungry", memory_mb=1024))
        (replica,) = live.replicas
        w.backend.set_memory(replica.id, 1900.0)  # idle: the model itself does not fit
        await eventually(lambda: live.state is EndpointState.FAILED, what="the memory breach")
        assert live.reason is not None and "memory size is too small" in live.reason
        assert "memory_mb: 3072" in live.reason
        await eventually(lambda: replica.id not in w.backend.alive, what="the replica to stop")
        assert not live.replicas
        record = w.store.get("hungry")
        assert record is not None and record.state is EndpointState.FAILED
        await asyncio.sleep(0.2)
        assert len(w.backend.started()) == 1  # not restarted into the same breach


async def test_crash_reason_is_cleared_once_the_replacement_serves(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        live = await w.deploy(dedicated("healed"))
        (first,) = live.replicas
        w.backend.crash(first.id, 137)
        await eventually(lambda: len(live.replicas) == 1 and live.replicas[0] is not first, what="a replacement")
        await asyncio.sleep(0.1)
        assert live.state is EndpointState.RUNNING
        assert live.reason is None
