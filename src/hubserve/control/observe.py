"""The metrics sampler: every endpoint's levels once a second, read from the controller and /proc.

Levels (in-flight and held invocations, replicas, each replica's RSS and CPU) are sampled rather
than pushed, so the hot path pays nothing for them; counts and latencies are recorded by the
invocation routes as each request is answered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from hubserve.control import memory
from hubserve.control.controller import Controller
from hubserve.control.runtime import EndpointRuntime
from hubserve.logs import prune
from hubserve.metrics import EndpointGauges, Metrics
from hubserve.spec import ServerlessCompute

log = logging.getLogger("hubserve.observe")

PRUNE_INTERVAL_S = 60.0
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process (/proc/<pid>/stat), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15 of stat(5)


class Sampler:
    """Reads every endpoint once per `interval_s` into `metrics`; CPU % is since the last reading."""

    def __init__(self, controller: Controller, metrics: Metrics, logs_dir: Path | None = None,
                 interval_s: float = 1.0) -> None:  # fmt: skip
        self._controller = controller
        self._logs_dir = logs_dir
        self._next_prune = 0.0
        self._metrics = metrics
        self._interval_s = interval_s
        self._cpu: dict[int, tuple[float, float]] = {}  # pid -> (cpu seconds, monotonic time)
        self._setups_seen: dict[str, int] = {}

    async def run_forever(self) -> None:
        while True:
            try:
                self.sample_once()
            except Exception:  # never let a /proc oddity stop the metrics
                log.exception("metrics sampling failed")
            await asyncio.sleep(self._interval_s)

    def sample_once(self) -> None:
        pids: set[int] = set()
        names: set[str] = set()
        for runtime in self._controller.runtimes():
            names.add(runtime.name)
            self._record_setups(runtime)
            self._metrics.sample(self._gauges(runtime, pids))
        if self._logs_dir is not None and time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_INTERVAL_S
            self._prune_logs()
        for pid in set(self._cpu) - pids:
            del self._cpu[pid]
        for name in set(self._setups_seen) - names:  # deleted: its figures go with it
            del self._setups_seen[name]
            self._metrics.forget(name)

    def _prune_logs(self) -> None:
        """Keep each endpoint's log folder within its size: old replicas' files go first."""
        assert self._logs_dir is not None
        serving = {handle.id for runtime in self._controller.runtimes() for handle in runtime.serving}
        for folder in self._logs_dir.iterdir():
            if folder.is_dir():
                prune(folder, keep=serving)

    def _record_setups(self, runtime: EndpointRuntime) -> None:
        seen = self._setups_seen.get(runtime.name, 0)
        new = min(runtime.model_setups - seen, len(runtime.model_setup_ms))
        for setup_ms in list(runtime.model_setup_ms)[len(runtime.model_setup_ms) - new :] if new > 0 else []:
            self._metrics.model_setup(runtime.name, setup_ms)
        self._setups_seen[runtime.name] = runtime.model_setups

    def _gauges(self, runtime: EndpointRuntime, pids: set[int]) -> EndpointGauges:
        rss: dict[str, float] = {}
        cpu: dict[str, float] = {}
        now = time.monotonic()
        for handle in runtime.serving:
            if not handle.pid:
                continue
            pids.add(handle.pid)
            used = memory.rss_mb(handle.pid)
            if used is not None:
                rss[handle.id] = used
            seconds = cpu_seconds(handle.pid)
            if seconds is None:
                continue
            before = self._cpu.get(handle.pid)
            self._cpu[handle.pid] = (seconds, now)
            if before is not None and now > before[1]:
                cpu[handle.id] = 100.0 * (seconds - before[0]) / (now - before[1])
        compute = runtime.spec.compute if runtime.spec is not None else None
        return EndpointGauges(
            endpoint=runtime.name,
            concurrent=runtime.in_flight,
            held=runtime.held,
            replicas_ready=len(runtime.serving),
            replicas_starting=runtime.starting,
            max_concurrency=compute.max_concurrency if isinstance(compute, ServerlessCompute) else None,
            memory_limit_mb=memory.limit_mb(compute, self._controller.machine_mb) if compute is not None else 0,
            replica_memory_mb=rss,
            replica_cpu_percent=cpu,
        )
