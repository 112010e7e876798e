"""One server's metrics: per-endpoint rolling windows plus the same figures for Prometheus.

The gateway's timing layer calls `Metrics.invocation` once per answered invocation (a few microseconds:
two histogram observations and the window's counters); the controller's sampler calls
`Metrics.sample` every second with each endpoint's levels. `/metrics` renders a private
`CollectorRegistry` (not prometheus_client's global one, so two apps in one process never mix).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hubserve.errors import ValidationError
from hubserve.metrics.window import MINUTES, RollingWindow

# Seconds. Overhead is sub-millisecond when all is well; model latency spans a 1 ms no-op to a
# multi-second generation; setup spans a forked replica (~0.3 s) to a large model from disk.
OVERHEAD_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
MODEL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                 60.0, 120.0, 300.0)  # fmt: skip
# The *_created series only repeat the server's start time per label set: leave them out.
disable_created_metrics()

SETUP_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


@dataclasses.dataclass(frozen=True)
class EndpointGauges:
    """One endpoint's levels at one moment (the sampler's reading)."""

    endpoint: str
    concurrent: int  # admitted invocations not yet answered (held ones included)
    held: int  # of those, waiting for a replica
    replicas_ready: int
    replicas_starting: int
    max_concurrency: int | None  # serverless only
    memory_limit_mb: int
    replica_memory_mb: dict[str, float]  # replica id -> RSS
    replica_cpu_percent: dict[str, float]  # replica id -> % of one core since the last reading

    @property
    def memory_mb_max(self) -> float:
        return max(self.replica_memory_mb.values(), default=0.0)

    @property
    def cpu_percent(self) -> float:
        return sum(self.replica_cpu_percent.values())


_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def parse_window(text: str) -> float:
    """'90s', '5m', '1h' or plain seconds -> seconds; at most the hour the windows keep."""
    match = _WINDOW.match(text or "")
    if not match:
        raise ValidationError(f"window {text!r} is not a duration: use e.g. 60s, 5m or 1h")
    seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if not 0 < seconds <= MINUTES * 60:
        raise ValidationError(f"window {text!r} must be more than 0 and at most {MINUTES} minutes (1h)")
    return seconds


class Metrics:
    """Rolling windows per endpoint and the Prometheus registry that mirrors them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._windows: dict[str, RollingWindow] = {}
        self._latest: dict[str, EndpointGauges] = {}
        labels = ["endpoint"]
        self._invocations = Counter("hubserve_invocations", "Invocations answered, by HTTP status.",
                                    ["endpoint", "status"], registry=self.registry)  # fmt: skip
        self._model = Histogram("hubserve_model_latency_seconds", "Frame sent to the replica until its answer is back.",
                                labels, buckets=MODEL_BUCKETS, registry=self.registry)  # fmt: skip
        self._overhead = Histogram("hubserve_overhead_latency_seconds", "Request time outside the model.",
                                   labels, buckets=OVERHEAD_BUCKETS, registry=self.registry)  # fmt: skip
        self._cold = Counter("hubserve_cold_starts", "Invocations that waited for a replica to start.", labels,
                             registry=self.registry)  # fmt: skip
        self._setup = Histogram("hubserve_model_setup_seconds", "Replica start until ready (ModelSetupTime).", labels,
                                buckets=SETUP_BUCKETS, registry=self.registry)  # fmt: skip
        self._bytes = Counter("hubserve_payload_bytes", "Invocation bytes in and out.", ["endpoint", "direction"],
                              registry=self.registry)  # fmt: skip
        self.registry.register(_LevelsCollector(self))

    def _window(self, endpoint: str) -> RollingWindow:
        window = self._windows.get(endpoint)
        if window is None:
            window = self._windows[endpoint] = RollingWindow()
        return window

    def invocation(self, endpoint: str, status: int, model_ms: float | None, overhead_ms: float, *,
                   cold_start: bool, bytes_in: int, bytes_out: int) -> None:  # fmt: skip
        """One answered invocation of an existing endpoint."""
        self._window(endpoint).record_invocation(
            status, model_ms, overhead_ms, cold_start=cold_start, bytes_in=bytes_in, bytes_out=bytes_out
        )
        self._invocations.labels(endpoint, str(status)).inc()
        if model_ms is not None:
            self._model.labels(endpoint).observe(model_ms / 1000.0)
        self._overhead.labels(endpoint).observe(max(overhead_ms, 0.0) / 1000.0)
        if cold_start:
            self._cold.labels(endpoint).inc()
        self._bytes.labels(endpoint, "in").inc(bytes_in)
        self._bytes.labels(endpoint, "out").inc(bytes_out)

    def model_setup(self, endpoint: str, setup_ms: float) -> None:
        self._window(endpoint).record_model_setup(setup_ms)
        self._setup.labels(endpoint).observe(setup_ms / 1000.0)

    def sample(self, gauges: EndpointGauges) -> None:
        """The sampler's reading: into the window, and kept for the next scrape."""
        self._latest[gauges.endpoint] = gauges
        self._window(gauges.endpoint).record_gauges(
            concurrent=gauges.concurrent, held=gauges.held, replicas=gauges.replicas_ready,
            memory_mb=gauges.memory_mb_max, cpu_percent=gauges.cpu_percent,
        )  # fmt: skip

    def forget(self, endpoint: str) -> None:
        """The endpoint is gone: drop its window and its label sets."""
        self._windows.pop(endpoint, None)
        self._latest.pop(endpoint, None)
        for metric in (self._model, self._overhead, self._cold, self._setup):
            _remove(metric, endpoint)
        for labelled in (self._invocations, self._bytes):
            for key in [k for k in labelled._metrics if k[0] == endpoint]:  # private: no public way to list
                labelled.remove(*key)

    def summary(self, endpoint: str, window_s: float) -> dict[str, Any]:
        """The API's view: totals, distributions and levels over the window, and ratios to the limits."""
        body = self._window(endpoint).summary(window_s)
        latest = self._latest.get(endpoint)
        concurrency = body["concurrent_executions"]
        if latest is not None:
            concurrency["current"] = latest.concurrent
            concurrency["max_concurrency"] = latest.max_concurrency
            concurrency["utilization"] = (
                None if not latest.max_concurrency else round(concurrency["max"] / latest.max_concurrency, 3)
            )
            body["held_requests"]["current"] = latest.held
            body["replicas"].update(ready=latest.replicas_ready, starting=latest.replicas_starting)
            memory = body["memory_mb"]
            memory.update(
                limit=latest.memory_limit_mb,
                per_replica={k: round(v, 1) for k, v in latest.replica_memory_mb.items()},
                utilization=round(memory["max_per_replica"] / latest.memory_limit_mb, 3) if latest.memory_limit_mb else None,
            )
            body["cpu_percent"]["per_replica"] = {k: round(v, 1) for k, v in latest.replica_cpu_percent.items()}
        return body

    def latest(self) -> list[EndpointGauges]:
        return list(self._latest.values())

    def prometheus_text(self) -> bytes:
        return generate_latest(self.registry)


def _remove(metric: Any, endpoint: str) -> None:
    try:
        metric.remove(endpoint)
    except KeyError:
        pass


class _LevelsCollector(Collector):
    """Gauges read at scrape time from the sampler's latest reading of each endpoint."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        latest = self._metrics.latest()
        families = {
            "concurrent": GaugeMetricFamily("hubserve_concurrent_executions", "Invocations in flight.", labels=["endpoint"]),
            "held": GaugeMetricFamily("hubserve_held_requests", "Invocations waiting for a replica.", labels=["endpoint"]),
            "max": GaugeMetricFamily("hubserve_max_concurrency", "Serverless max_concurrency.", labels=["endpoint"]),
            "replicas": GaugeMetricFamily("hubserve_replicas", "Replicas by state.", labels=["endpoint", "state"]),
            "limit": GaugeMetricFamily("hubserve_memory_limit_bytes", "Memory each replica may use.", labels=["endpoint"]),
            "rss": GaugeMetricFamily("hubserve_replica_memory_bytes", "Resident memory of each replica.",
                                     labels=["endpoint", "replica"]),
            "cpu": GaugeMetricFamily("hubserve_replica_cpu_percent", "CPU of each replica, % of one core.",
                                     labels=["endpoint", "replica"]),
        }  # fmt: skip
        for g in latest:
            families["concurrent"].add_metric([g.endpoint], g.concurrent)
            families["held"].add_metric([g.endpoint], g.held)
            if g.max_concurrency:
                families["max"].add_metric([g.endpoint], g.max_concurrency)
            families["replicas"].add_metric([g.endpoint, "ready"], g.replicas_ready)
            families["replicas"].add_metric([g.endpoint, "starting"], g.replicas_starting)
            families["limit"].add_metric([g.endpoint], g.memory_limit_mb * 1024 * 1024)
            for replica, mb in g.replica_memory_mb.items():
                families["rss"].add_metric([g.endpoint, replica], mb * 1024 * 1024)
            for replica, pct in g.replica_cpu_percent.items():
                families["cpu"].add_metric([g.endpoint, replica], pct)
        yield from families.values()
