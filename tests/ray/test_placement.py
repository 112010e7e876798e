"""What a Ray lease reserves for a replica, and the reason given when no node could ever hold it."""

from __future__ import annotations

from typing import Any

import pytest

from hubserve.backends.ray.placement import Wanted, infeasible, memory_mb, wanted
from hubserve.control.memory import backstop_mb
from hubserve.spec import INSTANCE_SIZES, MEMORY_SIZES_MB
from hubserve.worker.launch import ReplicaLaunch

GIB = 1024**3


def node(node_id: str, cpus: float, memory: int, gpus: float = 0, alive: bool = True) -> dict[str, Any]:
    resources = {"CPU": cpus, "memory": memory, **({"GPU": gpus} if gpus else {})}
    return {"NodeID": node_id, "Alive": alive, "Resources": resources}


@pytest.mark.parametrize("size", sorted({*MEMORY_SIZES_MB, *(s["memory_mb"] for s in INSTANCE_SIZES.values()), 512}))
def test_the_memory_size_is_recovered_from_the_backstop(size: int) -> None:
    launch = ReplicaLaunch(endpoint="e", source="/m", memory_backstop_mb=backstop_mb(size))
    assert memory_mb(launch) == size


def test_a_launch_reserves_cpus_memory_and_a_gpu_for_cuda() -> None:
    cpu = wanted(ReplicaLaunch(endpoint="e", source="/m", threads=2, memory_backstop_mb=backstop_mb(4096)))
    assert cpu.options() == {"num_cpus": 2, "memory": 4096 * 1024 * 1024}
    gpu = wanted(ReplicaLaunch(endpoint="e", source="/m", device="cuda", memory_backstop_mb=None))
    assert gpu.options() == {"num_cpus": 1, "num_gpus": 1}  # no backstop on CUDA: memory is not reserved


def test_a_node_that_holds_it_is_enough() -> None:
    want = Wanted(cpus=2, memory_bytes=4 * GIB, gpus=0)
    assert infeasible(want, [node("a" * 16, 1, 8 * GIB), node("b" * 16, 4, 6 * GIB)]) is None


def test_no_node_with_enough_memory_is_named_with_what_each_has() -> None:
    want = Wanted(cpus=1, memory_bytes=8192 * 1024 * 1024, gpus=0)
    reason = infeasible(want, [node("a" * 16, 2, 6 * GIB), node("b" * 16, 2, 64 * GIB, alive=False)])
    assert reason is not None
    assert "needs 1 CPU, 8192 MB of memory" in reason
    assert "node aaaaaaaaaaaa: 2 CPUs, 6144 MB of memory" in reason and "bbbb" not in reason  # dead nodes do not count


def test_a_gpu_that_no_node_has() -> None:
    reason = infeasible(Wanted(cpus=1, memory_bytes=0, gpus=1), [node("a" * 16, 8, 32 * GIB)])
    assert reason is not None and "1 GPU" in reason
