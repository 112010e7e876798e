"""The machine's cap on replicas: vCPUs and memory sizes shared by every endpoint, minimums honoured.

Unit tests of the arithmetic, then the autoscaler on a fake backend holding an endpoint at the cap
while its demand would want more, with the event that says why.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fakes import FakeBackend, Gate, dedicated, eventually, serverless, wired

from hubserve.control.capacity import MachineCapacity
from hubserve.control.live import EndpointLive, Generation
from hubserve.control.scaling import policy_for
from hubserve.spec import EndpointSpec, EndpointState

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def live_of(spec: EndpointSpec, replicas: int = 0) -> EndpointLive:
    live = EndpointLive(name=spec.name, state=EndpointState.RUNNING)
    live.generation = Generation(spec, spec.model_dump_json(), policy_for(spec.compute, 4))
    live.starting = replicas  # starting replicas count against the machine like running ones
    return live


def test_vcpus_cap_an_endpoint_at_cores_times_oversubscription() -> None:
    two_cores = MachineCapacity(cores=2, memory_mb=24_000, cpu_oversubscription=2.0)
    busy = live_of(serverless("busy", memory_mb=1024, max_concurrency=200))  # 1 vCPU a replica
    assert two_cores.allowed(busy, 50, [busy]) == 4
    assert two_cores.allowed(busy, 3, [busy]) == 3  # below the cap: untouched
    medium = live_of(dedicated("medium", instance="cpu-medium", max_replicas=10))  # 2 vCPUs a replica
    assert two_cores.allowed(medium, 10, [medium]) == 2


def test_other_endpoints_replicas_take_their_share() -> None:
    machine = MachineCapacity(cores=2, memory_mb=24_000, cpu_oversubscription=2.0)
    other = live_of(serverless("other", memory_mb=1024), replicas=3)
    busy = live_of(serverless("busy", memory_mb=1024, max_concurrency=200))
    assert machine.allowed(busy, 50, [other, busy]) == 1  # one left; and one is always allowed
    full = live_of(serverless("full", memory_mb=1024), replicas=8)
    assert machine.allowed(busy, 50, [full, busy]) == 1


def test_memory_caps_where_it_is_scarcer_than_cores() -> None:
    machine = MachineCapacity(cores=64, memory_mb=10_000, cpu_oversubscription=1.0)
    big = live_of(serverless("big", memory_mb=4096, max_concurrency=200))  # 9,000 MB for replicas: 2 fit
    assert machine.allowed(big, 40, [big]) == 2


def test_minimums_are_honoured_over_the_cap() -> None:
    machine = MachineCapacity(cores=1, memory_mb=24_000, cpu_oversubscription=1.0)
    floor = live_of(dedicated("floor", instance="cpu-small", min_replicas=3, max_replicas=6))
    assert machine.allowed(floor, 6, [floor]) == 3


async def test_the_autoscaler_holds_an_endpoint_at_the_cap_and_says_so(tmp_path: Path) -> None:
    gate = Gate()
    # 0.5 x the machine's cores: on 2 cores, room for one 1-vCPU replica (four on 8 cores: the test reads the cap)
    async with wired(tmp_path, FakeBackend(gate), serverless_slots_per_replica=1, replica_cpu_oversubscription=0.5,
                     scale_down_window_s=10) as w:  # fmt: skip
        cap = w.controller.autoscaler._capacity
        assert cap is not None
        expected = max(1, int(cap.vcpu_budget))
        live = await w.deploy(serverless("crowded", memory_mb=1024, max_concurrency=50))
        calls = [asyncio.create_task(w.invoke("crowded")) for _ in range(expected + 6)]
        await eventually(lambda: gate.waiting == expected + 6, what="every call at a replica")
        await asyncio.sleep(0.3)
        assert len(w.backend.started("crowded")) == expected and live.desired == expected
        events = (tmp_path / "logs").rglob("*")
        text = "".join(path.read_text(errors="replace") for path in events if path.is_file())
        assert f"wants {expected + 6} replicas; capped at {expected} by the machine" in text
        gate.open.set()
        await asyncio.gather(*calls)
