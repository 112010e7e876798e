"""What the local backend reads of a replica's process: resident memory and CPU time, from /proc."""

from __future__ import annotations

import os

from hubserve.backends import procfs


def test_rss_of_this_process_is_read() -> None:
    used = procfs.rss_mb(os.getpid())
    assert used is not None and used > 1


def test_rss_of_a_missing_process_is_none() -> None:
    assert procfs.rss_mb(2**22 + 12345) is None


def test_cpu_seconds_grow_with_work() -> None:
    before = procfs.cpu_seconds(os.getpid())
    assert before is not None
    total = 0
    while (procfs.cpu_seconds(os.getpid()) or 0.0) <= before + 0.02:
        total += sum(range(10_000))
    assert procfs.cpu_seconds(2**22 + 12345) is None
