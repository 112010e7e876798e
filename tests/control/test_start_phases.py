"""A replica's start steps become the endpoint's reason and events while it initializes or updates."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeBackend, dedicated, eventually, wired

from hubserve.logs import read_logs
from hubserve.spec import EndpointState

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

PHASES = ["exporting to ONNX (step 1 of 3)", "quantizing to int8 (step 2 of 3)", "loading the model (step 3 of 3)"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_phases_are_the_reason_while_initializing_then_running_clears_it(tmp_path: Path) -> None:
    backend = FakeBackend(start_delay_s=0.8, phases=PHASES)
    async with wired(tmp_path, backend) as w:
        w.controller.create(dedicated("slow"), [])
        live = w.live("slow")
        seen: list[str | None] = []

        def watch() -> bool:
            if live.reason not in seen:
                seen.append(live.reason)
            return live.state is EndpointState.RUNNING

        await eventually(watch, what="running")
        assert [reason for reason in seen if reason] == PHASES  # the state stayed initializing meanwhile
        assert live.reason is None
        record = w.store.get("slow")
        assert record is not None and record.reason is None
        events = [line.message for line in read_logs(tmp_path / "logs" / "slow", tail=100) if line.stream == "event"]
        assert [e for e in events if "step" in e] == [f"state initializing: {phase}" for phase in PHASES]


async def test_an_update_shows_its_phases_while_the_old_replica_serves(tmp_path: Path) -> None:
    backend = FakeBackend()
    async with wired(tmp_path, backend) as w:
        live = await w.deploy(dedicated("rolling"))
        backend.phases, backend.start_delay_s = PHASES, 0.6
        w.controller.update(dedicated("rolling").model_copy(update={"env": {"V": "2"}}), [])
        await eventually(lambda: live.reason == PHASES[1], what="the second phase as the reason")
        assert live.state is EndpointState.UPDATING and len(live.replicas) == 1
        await eventually(lambda: live.state is EndpointState.RUNNING and live.reason is None, what="the roll-out")


async def test_a_running_endpoint_scaling_up_logs_phases_without_touching_its_state(tmp_path: Path) -> None:
    backend = FakeBackend()
    async with wired(tmp_path, backend) as w:
        live = await w.deploy(dedicated("busy", min_replicas=1, max_replicas=2))
        backend.phases, backend.start_delay_s = ["loading the model"], 0.2
        w.controller.update(dedicated("busy", min_replicas=2, max_replicas=2), [])  # scaling only: no roll-out
        await eventually(lambda: len(live.replicas) == 2, what="a second replica")
        assert live.state is EndpointState.RUNNING and live.reason is None
        events = [line.message for line in read_logs(tmp_path / "logs" / "busy", tail=100) if line.stream == "event"]
        assert any(e.startswith("replica busy-") and e.endswith(": loading the model") for e in events), events
