"""What a local replica process uses, read from /proc: resident memory and CPU time.

Only the local backend reads these (it alone knows replicas' pids); everything above the
backend seam asks ``Backend.resources`` instead.
"""

from __future__ import annotations

import os

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def rss_mb(pid: int) -> float | None:
    """Resident set size in MB (what the replica has touched: weights, activations, libraries)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        return None
    return None  # a zombie has no VmRSS line: it uses nothing any more


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process (/proc/<pid>/stat), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15 of stat(5)
    except (OSError, IndexError, ValueError):
        return None
