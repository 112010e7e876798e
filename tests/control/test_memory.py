"""Memory-size enforcement: telling the user which size fits (reading RSS is the backend's: tests/backends)."""

from __future__ import annotations

from hubserve.control import memory
from hubserve.spec import DedicatedCompute, ServerlessCompute


def test_limits_follow_the_compute_and_the_machine() -> None:
    assert memory.limit_mb(ServerlessCompute(memory_mb=3072), machine_mb=24000) == 3072
    assert memory.limit_mb(DedicatedCompute(instance="cpu-xlarge"), machine_mb=8000) == 8000


def test_breach_message_names_a_size_that_fits() -> None:
    message = memory.breach_message(1900.0, ServerlessCompute(memory_mb=1024), 1024)
    assert "memory size is too small" in message and "memory_mb: 3072" in message
    too_big = memory.breach_message(7000.0, ServerlessCompute(memory_mb=6144), 6144)
    assert "use dedicated compute" in too_big
    dedicated = memory.breach_message(3000.0, DedicatedCompute(instance="cpu-small"), 2048)
    assert "instance: cpu-medium" in dedicated
