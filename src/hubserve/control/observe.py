"""The metrics sampler: every endpoint's levels once a second, from control, its backend and the gateway.

Levels (in-flight and held invocations, replicas, each replica's memory and CPU as its backend
measures them) are sampled rather than pushed, so the hot path pays nothing for them; counts and
latencies are recorded by the gateway's timing layer as each invocation is answered.

A generative endpoint's replicas report their continuous-batching engine (``types.EngineStats``,
kept by the channel as ``channel.stats``): the sampler sums running and waiting sequences and batch
sizes over replicas, and turns each replica's generated-token counter into tokens since the last
reading, so tokens per second cover streamed and whole answers alike without touching the hot path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Protocol

from hubserve.backends.base import Backend
from hubserve.control import memory
from hubserve.control.controller import Controller
from hubserve.control.live import EndpointLive
from hubserve.control.multi_model import ModelCounters
from hubserve.logs import prune
from hubserve.metrics import EndpointGauges, EngineLevels, Metrics
from hubserve.spec import ServerlessCompute
from hubserve.tasks import GENERATIVE_TASKS
from hubserve.types import EngineStats

log = logging.getLogger("hubserve.observe")

PRUNE_INTERVAL_S = 60.0


class Levels(Protocol):
    """The gateway's side of an endpoint's levels."""

    def in_flight(self, name: str) -> int: ...

    def held(self, name: str) -> int: ...


class Sampler:
    """Reads every endpoint once per `interval_s` into `metrics`; CPU % is since the last reading."""

    def __init__(self, controller: Controller, backend: Backend, levels: Levels, metrics: Metrics,
                 logs_dir: Path | None = None, interval_s: float = 1.0) -> None:  # fmt: skip
        self._controller = controller
        self._backend = backend
        self._levels = levels
        self._logs_dir = logs_dir
        self._next_prune = 0.0
        self._metrics = metrics
        self._interval_s = interval_s
        self._cpu: dict[str, tuple[float, float]] = {}  # replica id -> (cpu seconds, monotonic time)
        self._setups_seen: dict[str, int] = {}
        self._tokens: dict[str, int] = {}  # replica id -> its engine's generated-token counter at the last reading
        self._engine_read: dict[str, float] = {}  # endpoint -> monotonic time of its last engine reading
        self._model_counters = ModelCounters()  # multi-model endpoints' loads, unloads, hits and misses

    async def run_forever(self) -> None:
        while True:
            try:
                self.sample_once()
            except Exception:  # never let a /proc oddity stop the metrics
                log.exception("metrics sampling failed")
            await asyncio.sleep(self._interval_s)

    def sample_once(self) -> None:
        seen: set[str] = set()
        names: set[str] = set()
        holding_models: set[str] = set()
        for live in self._controller.lives():
            names.add(live.name)
            self._record_setups(live)
            self._metrics.sample(self._gauges(live, seen))
            if live.multi_model:
                self._model_counters.record(live, self._metrics, holding_models)
        self._model_counters.forget(holding_models)
        if self._logs_dir is not None and time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_INTERVAL_S
            self._prune_logs()
        for replica_id in set(self._cpu) - seen:
            del self._cpu[replica_id]
        for replica_id in set(self._tokens) - seen:
            del self._tokens[replica_id]
        for name in set(self._engine_read) - names:
            del self._engine_read[name]
        for name in set(self._setups_seen) - names:  # deleted: its figures go with it
            del self._setups_seen[name]
            self._metrics.forget(name)

    def _prune_logs(self) -> None:
        """Keep each endpoint's log folder within its size: old replicas' files go first."""
        assert self._logs_dir is not None
        serving = {replica.id for live in self._controller.lives() for replica in live.replicas}
        for folder in self._logs_dir.iterdir():
            if folder.is_dir():
                prune(folder, keep=serving)

    def _record_setups(self, live: EndpointLive) -> None:
        seen = self._setups_seen.get(live.name, 0)
        new = min(live.model_setups - seen, len(live.model_setup_ms))
        for setup_ms in list(live.model_setup_ms)[len(live.model_setup_ms) - new :] if new > 0 else []:
            self._metrics.model_setup(live.name, setup_ms)
        self._setups_seen[live.name] = live.model_setups

    def _gauges(self, live: EndpointLive, seen: set[str]) -> EndpointGauges:
        rss: dict[str, float] = {}
        cpu: dict[str, float] = {}
        now = time.monotonic()
        for replica in live.replicas:
            used = self._backend.resources(replica)
            if used is None:
                continue
            seen.add(replica.id)
            rss[replica.id] = used.memory_mb
            before = self._cpu.get(replica.id)
            self._cpu[replica.id] = (used.cpu_seconds, now)
            if before is not None and now > before[1]:
                cpu[replica.id] = 100.0 * (used.cpu_seconds - before[0]) / (now - before[1])
        compute = live.spec.compute if live.spec is not None else None
        engine = self._engine(live, seen, now)
        return EndpointGauges(
            endpoint=live.name,
            concurrent=self._levels.in_flight(live.name),
            held=self._levels.held(live.name),
            replicas_ready=len(live.replicas),
            replicas_starting=live.starting,
            max_concurrency=compute.max_concurrency if isinstance(compute, ServerlessCompute) else None,
            memory_limit_mb=memory.limit_mb(compute, self._controller.machine_mb) if compute is not None else 0,
            replica_memory_mb=rss,
            replica_cpu_percent=cpu,
            generative=_generative(live),
            engine=engine,
        )

    def _engine(self, live: EndpointLive, seen: set[str], now: float) -> EngineLevels | None:
        """The replicas' engines summed; None when no replica reports one (not generative, or not yet)."""
        running = waiting = batch_size = tokens = reported = 0
        for replica in live.replicas:
            stats = getattr(replica.channel, "stats", None)
            if not isinstance(stats, EngineStats):
                continue
            reported += 1
            seen.add(replica.id)
            running += stats.running
            waiting += stats.waiting
            batch_size += stats.batch_size
            # A replica read for the first time counts all it made: it started after this sampler did.
            before = self._tokens.get(replica.id, 0)
            tokens += max(stats.generated_tokens - before, 0)
            self._tokens[replica.id] = stats.generated_tokens
        if not reported:
            return None
        last = self._engine_read.get(live.name)
        self._engine_read[live.name] = now
        rate = tokens / (now - last) if last is not None and now > last else None
        return EngineLevels(running=running, waiting=waiting, batch_size=batch_size, generated_tokens=tokens,
                            tokens_per_second=rate)  # fmt: skip


def _generative(live: EndpointLive) -> bool:
    """Whether the endpoint's task generates tokens: the spec's, else the one its replicas inferred."""
    task = live.spec.model.task if live.spec is not None else None
    if task is None and live.replicas:
        task = live.replicas[0].info.get("task")
    return task in GENERATIVE_TASKS
