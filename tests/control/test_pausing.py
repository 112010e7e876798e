"""Operations answer with the state they lead to (issue 14, part B), on a fake backend: pause is
``pausing`` at once and ``paused`` once its replicas stopped, pause then resume back to back serves,
an update of scaling fields only is applied in place (no roll-out), any other update answers
``updating``, and huggingface_hub's ``update(); pause(); resume(); scale_to_zero()`` succeeds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fakes import FakeBackend, Gate, dedicated, eventually, serverless, wired

from hubserve.control.scaling import scaling_only
from hubserve.errors import ModelNotReady
from hubserve.spec import EndpointState

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_scaling_only_tells_replica_bounds_from_what_a_replica_is_started_with() -> None:
    base = dedicated("ep", min_replicas=1, max_replicas=1)
    assert scaling_only(base, dedicated("ep", min_replicas=0, max_replicas=3, target_concurrency=2, scale_to_zero_after_s=60))
    assert not scaling_only(base, dedicated("ep", instance="cpu-medium"))
    assert not scaling_only(base, base.model_copy(update={"env": {"A": "1"}}))
    assert not scaling_only(base, serverless("ep"))  # another compute type: other replicas
    assert scaling_only(serverless("ep"), serverless("ep", max_concurrency=20, provisioned_concurrency=4, idle_timeout_s=9))
    assert not scaling_only(serverless("ep"), serverless("ep", memory_mb=4096))  # vCPUs follow memory


async def test_pause_answers_pausing_and_lets_in_flight_work_finish(tmp_path: Path) -> None:
    gate = Gate()
    async with wired(tmp_path, FakeBackend(gate)) as w:
        live = await w.deploy(dedicated("nap"))
        (replica,) = live.replicas
        in_flight = asyncio.create_task(w.invoke("nap", b"finishing"))
        await eventually(lambda: gate.waiting == 1, what="an invocation in flight")

        record = w.controller.pause("nap")
        assert record.state is EndpointState.PAUSING and live.state is EndpointState.PAUSING
        assert not live.replicas  # out of service at once: no new work goes to it
        with pytest.raises(ModelNotReady, match="paused"):
            await w.invoke("nap", b"new")  # refused at once, not held until the drain ends
        await asyncio.sleep(0.2)
        assert live.state is EndpointState.PAUSING and replica.id in w.backend.alive  # still finishing its request

        gate.open.set()
        assert (await in_flight).body == b"finishing"
        await eventually(lambda: live.state is EndpointState.PAUSED, what="paused")
        assert not w.backend.alive
        stored = w.store.get("nap")
        assert stored is not None and stored.state is EndpointState.PAUSED


async def test_pause_then_resume_at_once_serves(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        live = await w.deploy(dedicated("blink"))
        (old,) = live.replicas
        w.controller.pause("blink")
        record = w.controller.resume("blink")
        assert record.state is EndpointState.INITIALIZING and record.desired == "running"
        assert (await w.invoke("blink", b"still here")).body == b"still here"
        await eventually(lambda: live.state is EndpointState.RUNNING and len(live.replicas) == 1, what="running")
        await asyncio.sleep(0.2)  # the pause's pass has run by now: it must not have paused the endpoint
        assert live.state is EndpointState.RUNNING and len(live.replicas) == 1 and live.replicas != [old]
        assert old.id not in w.backend.alive


async def test_resume_while_the_pause_still_drains_serves(tmp_path: Path) -> None:
    gate = Gate()
    async with wired(tmp_path, FakeBackend(gate)) as w:
        live = await w.deploy(dedicated("drain"))
        in_flight = asyncio.create_task(w.invoke("drain", b"old"))
        await eventually(lambda: gate.waiting == 1, what="an invocation in flight")
        w.controller.pause("drain")
        await asyncio.sleep(0.1)  # the pause's pass is waiting for the replica to finish
        assert w.controller.resume("drain").state is EndpointState.INITIALIZING
        await eventually(lambda: live.state is EndpointState.RUNNING and len(live.replicas) == 1, what="running")
        gate.open.set()
        assert (await in_flight).body == b"old"
        assert (await w.invoke("drain", b"new")).body == b"new"
        await asyncio.sleep(0.2)
        assert live.state is EndpointState.RUNNING and len(w.backend.alive) == 1


async def test_resume_after_a_long_pause_starts_a_replica(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        live = await w.deploy(serverless("sleepy", idle_timeout_s=1))
        w.controller.pause("sleepy")
        await eventually(lambda: live.state is EndpointState.PAUSED, what="paused")
        await asyncio.sleep(1.2)  # longer than the idle timeout: resuming is activity all the same
        w.controller.resume("sleepy")
        await eventually(lambda: live.state is EndpointState.RUNNING and len(live.replicas) == 1, what="running")


async def test_scaling_only_update_applies_in_place(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        live = await w.deploy(dedicated("tune", min_replicas=1, max_replicas=1))
        (replica,) = live.replicas
        record = w.controller.update(dedicated("tune", min_replicas=2, max_replicas=3), [])
        assert record.state is EndpointState.RUNNING  # no roll-out to wait for
        assert live.spec == record.spec and live.generation is not None and live.generation.policy is not None
        assert live.generation.policy.min_replicas == 2 and live.desired == 2
        await eventually(lambda: len(live.replicas) == 2, what="the second replica the new minimum wants")
        assert replica in live.replicas  # kept: not replaced
        assert live.state is EndpointState.RUNNING
        assert w.controller.pending_spec(record, live) is False


async def test_update_of_the_model_answers_updating(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        live = await w.deploy(dedicated("roll"))
        w.backend.start_delay_s = 0.3
        record = w.controller.update(dedicated("roll").model_copy(update={"env": {"GENERATION": "2"}}), [])
        assert record.state is EndpointState.UPDATING
        await eventually(lambda: live.state is EndpointState.RUNNING and live.spec == record.spec, what="rolled out")


async def test_pause_during_a_roll_out_never_reports_running(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        live = await w.deploy(dedicated("halt"))
        w.backend.start_delay_s = 0.3
        w.controller.update(dedicated("halt").model_copy(update={"env": {"GENERATION": "2"}}), [])
        await eventually(lambda: len(w.backend.started()) == 2, what="the roll-out's replica starting")
        assert w.controller.pause("halt").state is EndpointState.PAUSING
        seen: set[EndpointState] = set()
        while live.state is not EndpointState.PAUSED:
            seen.add(live.state)
            await asyncio.sleep(0.005)
        assert seen == {EndpointState.PAUSING} and not w.backend.alive


async def test_hf_sequence_update_pause_resume_scale_to_zero(tmp_path: Path) -> None:
    async with wired(tmp_path) as w:
        live = await w.deploy(dedicated("seq", min_replicas=1, max_replicas=1))
        w.backend.start_delay_s = 0.2
        assert w.controller.update(dedicated("seq", min_replicas=0, max_replicas=2), []).state is EndpointState.RUNNING
        assert w.controller.pause("seq").state is EndpointState.PAUSING
        assert w.controller.resume("seq").state is EndpointState.INITIALIZING
        assert (await w.controller.scale_to_zero("seq")).state is EndpointState.SCALED_TO_ZERO
        await asyncio.sleep(0.5)  # the replica the resume asked for has started meanwhile: it is stopped
        assert live.state is EndpointState.SCALED_TO_ZERO and not live.replicas and not w.backend.alive
        result = await w.invoke("seq", b"wake")  # the next invocation starts one
        assert result.cold_start and result.body == b"wake"
        assert live.state is EndpointState.RUNNING


async def test_resume_of_a_failed_endpoint_answers_initializing(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend(fail_start="no weights")) as w:
        w.controller.create(serverless("retry"), [])
        live = w.live("retry")
        await eventually(lambda: live.state is EndpointState.FAILED, what="failed")
        w.backend.fail_start = None
        assert w.controller.resume("retry").state is EndpointState.INITIALIZING
        await eventually(lambda: live.state is EndpointState.RUNNING and len(live.replicas) == 1, what="running")


async def test_scaling_only_update_keeps_the_scale_down_window(tmp_path: Path) -> None:
    gate = Gate()
    async with wired(tmp_path, FakeBackend(gate), scale_down_window_s=10) as w:
        live = await w.deploy(dedicated("window", min_replicas=1, max_replicas=3, target_concurrency=1))
        calls = [asyncio.create_task(w.invoke("window")) for _ in range(3)]
        await eventually(lambda: len(live.replicas) == 3 and gate.waiting == 3, what="three replicas")
        gate.open.set()
        await asyncio.gather(*calls)
        w.controller.update(dedicated("window", min_replicas=1, max_replicas=4, target_concurrency=1), [])
        await asyncio.sleep(0.3)  # idle now, but within the window: the retune is no new deployment
        assert len(live.replicas) == 3 and len(w.backend.started()) == 3
