"""A replica's memory against its endpoint's memory size, read from /proc (Linux)."""

from __future__ import annotations

from hubserve.spec import INSTANCE_SIZES, MEMORY_SIZES_MB, DedicatedCompute, ServerlessCompute


def rss_mb(pid: int) -> float | None:
    """Resident set size in MB (what the replica has touched: weights, activations, libraries)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        return None
    return None


def limit_mb(compute: ServerlessCompute | DedicatedCompute, machine_mb: int) -> int:
    wanted = compute.memory_mb if isinstance(compute, ServerlessCompute) else INSTANCE_SIZES[compute.instance]["memory_mb"]
    return min(int(wanted), machine_mb)


def breach_message(used_mb: float, compute: ServerlessCompute | DedicatedCompute, limit: int) -> str:
    """The ModelError a user reads: the size is too small, and which size would fit."""
    needed = used_mb * 1.1
    if isinstance(compute, ServerlessCompute):
        fits = next((size for size in MEMORY_SIZES_MB if size >= needed), None)
        advice = f"use memory_mb: {fits}" if fits else "no serverless memory size fits it; use dedicated compute"
    else:
        fits_name = next((name for name, size in INSTANCE_SIZES.items() if size["memory_mb"] >= needed and size["accelerator"] == "cpu"), None)
        advice = f"use instance: {fits_name}" if fits_name else "no CPU instance size fits it"
    return (
        f"ModelError: the replica used {used_mb:.0f} MB, more than its memory size of {limit} MB, and was stopped; "
        f"the memory size is too small for this model: {advice}."
    )


def machine_memory_mb() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return 1 << 20
