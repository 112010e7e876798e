"""Memory-size enforcement: reading RSS and telling the user which size fits."""

from __future__ import annotations

import os

from hubserve.control import memory
from hubserve.spec import DedicatedCompute, ServerlessCompute


def test_rss_of_this_process_is_read() -> None:
    used = memory.rss_mb(os.getpid())
    assert used is not None and used > 1


def test_rss_of_a_missing_process_is_none() -> None:
    assert memory.rss_mb(2**22 + 12345) is None


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
