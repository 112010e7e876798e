"""One server's metrics: per-endpoint rolling windows plus the same figures for Prometheus.

The gateway's timing layer calls `Metrics.invocation` once per answered invocation (a few microseconds:
two histogram observations and the window's counters); the controller's sampler calls
`Metrics.sample` every second with each endpoint's levels. `/metrics` renders a private
`CollectorRegistry` (not prometheus_client's global one, so two apps in one process never mix).
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from hubserve.errors import ValidationError
from hubserve.metrics.window import MINUTES, RollingWindow

# Seconds. Overhead is sub-millisecond when all is well; model latency spans a 1 ms no-op to a
# multi-second generation; setup spans a forked replica (~0.3 s) to a large model from disk.
OVERHEAD_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
MODEL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                 60.0, 120.0, 300.0)  # fmt: skip
# The *_created series only repeat the server's start time per label set: leave them out.
disable_created_metrics()

# Time to first token spans a cached short prompt (a few ms) to a long prefill behind a queue; the gaps
# between tokens are a decoding step each (about 1 ms on a GPU to a few hundred ms on a small CPU).
TTFT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ITL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
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
    generative: bool = False  # a generative task: the metrics show its generation section even before traffic
    engine: EngineLevels | None = None  # summed over the replicas that reported one; None: no engine

    @property
    def memory_mb_max(self) -> float:
        return max(self.replica_memory_mb.values(), default=0.0)

    @property
    def cpu_percent(self) -> float:
        return sum(self.replica_cpu_percent.values())


@dataclasses.dataclass(frozen=True)
class EngineLevels:
    """The replicas' continuous-batching engines at one reading, summed over replicas."""

    running: int  # sequences in the running batches
    waiting: int  # sequences queued in the replicas for a place
    batch_size: int  # sequences in each replica's last decoding step, summed
    generated_tokens: int  # tokens generated since the previous reading
    tokens_per_second: float | None  # generated_tokens over the time since the previous reading


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
        self._engines: set[str] = set()  # endpoints whose replicas report generated tokens themselves
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
        self._ttft = Histogram("hubserve_time_to_first_token_seconds", "Stream received until its first part (token).",
                               labels, buckets=TTFT_BUCKETS, registry=self.registry)  # fmt: skip
        # Inter-token gaps come by the hundred as a stream ends: counted into buckets here in one pass
        # (a Histogram.observe per gap would cost a lock each) and rendered at scrape time.
        self._itl: dict[str, BucketCounts] = {}
        self._tokens = Counter("hubserve_generated_tokens", "Tokens generated (the engines' counts, else streamed parts).",
                               labels, registry=self.registry)  # fmt: skip
        self._bytes = Counter("hubserve_payload_bytes", "Invocation bytes in and out.", ["endpoint", "direction"],
                              registry=self.registry)  # fmt: skip
        # Multi-model endpoints: per model, from the replicas' own counters (the sampler turns them into deltas).
        per_model = ["endpoint", "model"]
        self._model_events = {
            kind: Counter(f"hubserve_multi_model_{kind}", help_text, per_model, registry=self.registry)
            for kind, help_text in (
                ("loads", "Models loaded into a replica of a multi-model endpoint."),
                ("unloads", "Models unloaded (least recently used first) to make room for another."),
                ("hits", "Requests that found their model loaded in the replica."),
                ("misses", "Requests that waited for their model to load."),
            )
        }
        self._model_load = Histogram("hubserve_multi_model_load_seconds", "How long a model took to load into a replica.",
                                     per_model, buckets=SETUP_BUCKETS, registry=self.registry)  # fmt: skip
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

    def stream(self, endpoint: str, ttft_ms: float, gaps_ms: list[float], tokens: int) -> None:
        """One stream that sent at least one part: time to first token, the gaps between parts, its tokens.

        Called once as the stream ends (not per part). Its tokens count towards generated tokens only
        where the replicas have no engine that counts them (custom code that yields parts).
        """
        counted = 0 if endpoint in self._engines else tokens
        self._window(endpoint).record_stream(ttft_ms, gaps_ms, counted)
        self._ttft.labels(endpoint).observe(ttft_ms / 1000.0)
        itl = self._itl.get(endpoint)
        if itl is None:
            itl = self._itl[endpoint] = BucketCounts(ITL_BUCKETS)
        itl.add_ms(gaps_ms)
        if counted:
            self._tokens.labels(endpoint).inc(counted)

    def model_setup(self, endpoint: str, setup_ms: float) -> None:
        self._window(endpoint).record_model_setup(setup_ms)
        self._setup.labels(endpoint).observe(setup_ms / 1000.0)

    def model_cache(self, endpoint: str, model: str, counts: dict[str, int], load_s: float | None) -> None:
        """New loads, unloads, hits and misses of one model of a multi-model endpoint, and the load just made."""
        for kind, count in counts.items():
            if count > 0:
                self._model_events[kind].labels(endpoint, model).inc(count)
        if load_s is not None:
            self._model_load.labels(endpoint, model).observe(load_s)

    def sample(self, gauges: EndpointGauges) -> None:
        """The sampler's reading: into the window, and kept for the next scrape."""
        self._latest[gauges.endpoint] = gauges
        self._window(gauges.endpoint).record_gauges(
            concurrent=gauges.concurrent, held=gauges.held, replicas=gauges.replicas_ready,
            memory_mb=gauges.memory_mb_max, cpu_percent=gauges.cpu_percent,
        )  # fmt: skip
        engine = gauges.engine
        if engine is not None:
            self._engines.add(gauges.endpoint)
            window = self._window(gauges.endpoint)
            window.record_engine(running=engine.running, waiting=engine.waiting, batch_size=engine.batch_size)
            if engine.generated_tokens > 0:
                window.record_generated(engine.generated_tokens)
                self._tokens.labels(gauges.endpoint).inc(engine.generated_tokens)

    def forget(self, endpoint: str) -> None:
        """The endpoint is gone: drop its window and its label sets."""
        self._windows.pop(endpoint, None)
        self._latest.pop(endpoint, None)
        self._engines.discard(endpoint)
        self._itl.pop(endpoint, None)
        for metric in (self._model, self._overhead, self._cold, self._setup, self._ttft, self._tokens):
            _remove(metric, endpoint)
        for labelled in (self._invocations, self._bytes, self._model_load, *self._model_events.values()):
            for key in [k for k in labelled._metrics if k[0] == endpoint]:  # private: no public way to list
                labelled.remove(*key)

    def summary(self, endpoint: str, window_s: float) -> dict[str, Any]:
        """The API's view: totals, distributions and levels over the window, and ratios to the limits."""
        latest = self._latest.get(endpoint)
        body = self._window(endpoint).summary(window_s, generative=latest is not None and latest.generative)
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
            generation, engine = body["generation"], latest.engine
            if generation is not None and engine is not None:
                generation["sequences_running"]["current"] = engine.running
                generation["sequences_waiting"]["current"] = engine.waiting
                generation["batch_size"]["current"] = engine.batch_size
                generation["tokens_per_second"]["current"] = (
                    None if engine.tokens_per_second is None else round(engine.tokens_per_second, 3)
                )
        return body

    def latest(self) -> list[EndpointGauges]:
        return list(self._latest.values())

    def inter_token_buckets(self) -> dict[str, BucketCounts]:
        return dict(self._itl)

    def prometheus_text(self) -> bytes:
        return generate_latest(self.registry)


class BucketCounts:
    """A Prometheus histogram's state for one label set: observations per bucket and their sum (seconds)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf only)
        self.sum = 0.0

    def add_ms(self, values_ms: list[float]) -> None:
        bounds, counts = self.bounds, self.counts
        for value in values_ms:
            seconds = value / 1000.0
            counts[bisect.bisect_left(bounds, seconds)] += 1  # the first bucket whose ``le`` holds it
            self.sum += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, observations at or under it), as the text format wants them, +Inf last."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append((floatToGoString(bound), float(running)))
        return out


def _remove(metric: Any, endpoint: str) -> None:
    try:
        metric.remove(endpoint)
    except KeyError:
        pass


class _LevelsCollector(Collector):
    """Gauges read at scrape time from the sampler's latest reading of each endpoint."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
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
            "running": GaugeMetricFamily("hubserve_sequences_running", "Sequences in the replicas' running batches.",
                                         labels=["endpoint"]),
            "waiting": GaugeMetricFamily("hubserve_sequences_waiting", "Sequences queued in the replicas for a place.",
                                         labels=["endpoint"]),
            "batch": GaugeMetricFamily("hubserve_batch_size", "Sequences in the replicas' last decoding steps.",
                                       labels=["endpoint"]),
        }  # fmt: skip
        itl = HistogramMetricFamily("hubserve_inter_token_latency_seconds",
                                    "Gap between consecutive parts (tokens) of one stream.", labels=["endpoint"])  # fmt: skip
        for endpoint, counts in self._metrics.inter_token_buckets().items():
            itl.add_metric([endpoint], counts.cumulative(), sum_value=counts.sum)
        yield itl
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
            if g.engine is not None:
                families["running"].add_metric([g.endpoint], g.engine.running)
                families["waiting"].add_metric([g.endpoint], g.engine.waiting)
                families["batch"].add_metric([g.endpoint], g.engine.batch_size)
        yield from families.values()
