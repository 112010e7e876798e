"""Rolling per-minute buckets: the last hour of one endpoint, bounded in memory.

CloudWatch keeps SageMaker endpoint metrics at one-minute resolution; so does this. Each bucket
holds exact counts, sums and maxima, and a bounded reservoir of latency samples for the
percentiles (exact up to `RESERVOIR` samples per minute, a uniform sample beyond), so an hour of
heavy traffic costs at most a few MB per endpoint.
"""

from __future__ import annotations

import collections
import dataclasses
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

RESERVOIR = 2048  # latency samples kept per minute and per distribution
MINUTES = 60  # how far back the window reaches


@dataclasses.dataclass
class Distribution:
    """Count, sum, max and a reservoir sample of one latency (milliseconds)."""

    count: int = 0
    total: float = 0.0
    maximum: float = 0.0
    samples: list[float] = dataclasses.field(default_factory=list)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.maximum = max(self.maximum, value)
        if len(self.samples) < RESERVOIR:
            self.samples.append(value)
        else:  # reservoir sampling (Algorithm R): every value stays with equal probability
            slot = random.randrange(self.count)
            if slot < RESERVOIR:
                self.samples[slot] = value

    def add_many(self, values: list[float]) -> None:
        """``add`` for each value, in one pass (a stream's inter-token gaps, recorded as it ends)."""
        if not values:
            return
        self.total += sum(values)
        self.maximum = max(self.maximum, max(values))
        room = max(RESERVOIR - len(self.samples), 0)
        kept = values[:room]
        self.samples.extend(kept)
        self.count += len(kept)
        for value in values[room:]:  # reservoir sampling (Algorithm R), as in ``add``
            self.count += 1
            slot = random.randrange(self.count)
            if slot < RESERVOIR:
                self.samples[slot] = value

    def summary(self) -> dict[str, float | int | None]:
        return summarize([self])


def summarize(parts: Iterable[Distribution]) -> dict[str, float | int | None]:
    """avg, p50, p90, p99, max, sum, count over several minutes (None when empty).

    Each minute's samples stand for its whole count, so a busy minute weighs more than a quiet one.
    """
    count, total, maximum = 0, 0.0, 0.0
    pairs: list[tuple[float, float]] = []
    for part in parts:
        if not part.count:
            continue
        count += part.count
        total += part.total
        maximum = max(maximum, part.maximum)
        weight = part.count / len(part.samples)
        pairs += [(value, weight) for value in part.samples]
    if not count:
        return {"count": 0, "sum": 0.0, "avg": None, "p50": None, "p90": None, "p99": None, "max": None}
    pairs.sort()
    return {
        "count": count,
        "sum": round(total, 3),
        "avg": round(total / count, 3),
        "p50": round(_quantile(pairs, 0.50), 3),
        "p90": round(_quantile(pairs, 0.90), 3),
        "p99": round(_quantile(pairs, 0.99), 3),
        "max": round(maximum, 3),
    }


def _quantile(pairs: list[tuple[float, float]], q: float) -> float:
    """The weighted nearest-rank quantile of sorted (value, weight) pairs."""
    total = sum(weight for _, weight in pairs)
    rank = max(q * total, 1e-12)
    running = 0.0
    for value, weight in pairs:
        running += weight
        if running >= rank - 1e-9:
            return value
    return pairs[-1][0]


@dataclasses.dataclass
class Gauges:
    """Sampled levels within one minute: sums (for averages) and maxima."""

    samples: int = 0
    concurrent_sum: float = 0.0
    concurrent_max: float = 0.0
    held_max: float = 0.0
    replicas_sum: float = 0.0
    replicas_max: float = 0.0
    memory_mb_max: float = 0.0
    cpu_percent_sum: float = 0.0
    cpu_percent_max: float = 0.0
    # A generative endpoint's engine levels (summed over replicas); only samples that had an engine count.
    engine_samples: int = 0
    running_sum: float = 0.0
    running_max: float = 0.0
    waiting_sum: float = 0.0
    waiting_max: float = 0.0
    batch_size_sum: float = 0.0
    batch_size_max: float = 0.0


@dataclasses.dataclass
class Minute:
    """Everything recorded for one endpoint in one wall-clock minute."""

    start: int  # epoch seconds, a multiple of 60
    invocations: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    throttles: int = 0
    cold_starts: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    model_ms: Distribution = dataclasses.field(default_factory=Distribution)
    overhead_ms: Distribution = dataclasses.field(default_factory=Distribution)
    model_setup_ms: Distribution = dataclasses.field(default_factory=Distribution)
    gauges: Gauges = dataclasses.field(default_factory=Gauges)
    # Streams: time to first token (received to first part), gaps between parts, tokens generated.
    streams: int = 0
    ttft_ms: Distribution = dataclasses.field(default_factory=Distribution)
    itl_ms: Distribution = dataclasses.field(default_factory=Distribution)
    generated_tokens: int = 0


class RollingWindow:
    """The last `MINUTES` minutes of one endpoint."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._minutes: collections.deque[Minute] = collections.deque()

    def _current(self) -> Minute:
        start = int(self._clock() // 60) * 60
        if not self._minutes or self._minutes[-1].start != start:
            self._minutes.append(Minute(start))
        oldest = start - (MINUTES - 1) * 60
        while self._minutes and self._minutes[0].start < oldest:
            self._minutes.popleft()
        return self._minutes[-1]

    def record_invocation(self, status: int, model_ms: float | None, overhead_ms: float, *, cold_start: bool,
                          bytes_in: int, bytes_out: int) -> None:  # fmt: skip
        """One answered invocation; `model_ms` is None when it never reached a replica."""
        minute = self._current()
        minute.invocations += 1
        minute.bytes_in += bytes_in
        minute.bytes_out += bytes_out
        if status == 429:
            minute.throttles += 1
        if 400 <= status < 500:
            minute.errors_4xx += 1
        elif status >= 500:
            minute.errors_5xx += 1
        if cold_start:
            minute.cold_starts += 1
        if model_ms is not None:
            minute.model_ms.add(model_ms)
        minute.overhead_ms.add(overhead_ms)

    def record_model_setup(self, setup_ms: float) -> None:
        """A replica became ready after `setup_ms` (SageMaker's ModelSetupTime)."""
        self._current().model_setup_ms.add(setup_ms)

    def record_gauges(self, *, concurrent: int, held: int, replicas: int, memory_mb: float, cpu_percent: float) -> None:
        g = self._current().gauges
        g.samples += 1
        g.concurrent_sum += concurrent
        g.concurrent_max = max(g.concurrent_max, concurrent)
        g.held_max = max(g.held_max, held)
        g.replicas_sum += replicas
        g.replicas_max = max(g.replicas_max, replicas)
        g.memory_mb_max = max(g.memory_mb_max, memory_mb)
        g.cpu_percent_sum += cpu_percent
        g.cpu_percent_max = max(g.cpu_percent_max, cpu_percent)

    def record_stream(self, ttft_ms: float, gaps_ms: list[float], tokens: int) -> None:
        """One stream that produced at least one part: its time to first token and inter-token gaps."""
        minute = self._current()
        minute.streams += 1
        minute.ttft_ms.add(ttft_ms)
        minute.itl_ms.add_many(gaps_ms)
        minute.generated_tokens += tokens

    def record_generated(self, tokens: int) -> None:
        """Tokens generated (an engine's counter delta, or a stream's tokens where there is no engine)."""
        self._current().generated_tokens += tokens

    def record_engine(self, *, running: int, waiting: int, batch_size: int) -> None:
        """One sample of the replicas' continuous-batching engines, summed over replicas."""
        g = self._current().gauges
        g.engine_samples += 1
        g.running_sum += running
        g.running_max = max(g.running_max, running)
        g.waiting_sum += waiting
        g.waiting_max = max(g.waiting_max, waiting)
        g.batch_size_sum += batch_size
        g.batch_size_max = max(g.batch_size_max, batch_size)

    def minutes(self, window_s: float) -> list[Minute]:
        """The minutes that overlap the last `window_s` seconds (whole minutes: the resolution)."""
        self._current()
        since = self._clock() - window_s
        return [m for m in self._minutes if m.start + 60 > since]

    def summary(self, window_s: float, generative: bool = False) -> dict[str, Any]:
        """Totals and distributions over the window, plus one row per minute.

        ``generation`` is None unless the endpoint is ``generative`` or the window saw streams or engine levels.
        """
        minutes = self.minutes(window_s)
        now = self._clock()
        samples = sum(m.gauges.samples for m in minutes)
        return {
            "invocations": sum(m.invocations for m in minutes),
            "errors_4xx": sum(m.errors_4xx for m in minutes),
            "errors_5xx": sum(m.errors_5xx for m in minutes),
            "throttles": sum(m.throttles for m in minutes),
            "cold_starts": sum(m.cold_starts for m in minutes),
            "bytes_in": sum(m.bytes_in for m in minutes),
            "bytes_out": sum(m.bytes_out for m in minutes),
            "model_latency_ms": summarize(m.model_ms for m in minutes),
            "overhead_latency_ms": summarize(m.overhead_ms for m in minutes),
            "model_setup_time_ms": summarize(m.model_setup_ms for m in minutes),
            "concurrent_executions": {
                "avg": _avg(sum(m.gauges.concurrent_sum for m in minutes), samples),
                "max": max((m.gauges.concurrent_max for m in minutes), default=0.0),
            },
            "held_requests": {"max": max((m.gauges.held_max for m in minutes), default=0.0)},
            "replicas": {
                "avg": _avg(sum(m.gauges.replicas_sum for m in minutes), samples),
                "max": max((m.gauges.replicas_max for m in minutes), default=0.0),
            },
            "memory_mb": {"max_per_replica": round(max((m.gauges.memory_mb_max for m in minutes), default=0.0), 1)},
            "cpu_percent": {
                "avg": _avg(sum(m.gauges.cpu_percent_sum for m in minutes), samples),
                "max": round(max((m.gauges.cpu_percent_max for m in minutes), default=0.0), 1),
            },
            "series": [_minute_row(m, now) for m in minutes],
            "generation": _generation(minutes, window_s, now, generative),
        }


def _generation(minutes: list[Minute], window_s: float, now: float, generative: bool) -> dict[str, Any] | None:
    """Streams and engine levels over ``minutes``; None for an endpoint that is not generative and saw none."""
    if not generative and not any(m.streams or m.generated_tokens or m.gauges.engine_samples for m in minutes):
        return None
    samples = sum(m.gauges.engine_samples for m in minutes)
    tokens = sum(m.generated_tokens for m in minutes)
    span = now - max(now - window_s, minutes[0].start)
    return {
        "streams": sum(m.streams for m in minutes),
        "time_to_first_token_ms": summarize(m.ttft_ms for m in minutes),
        "inter_token_latency_ms": summarize(m.itl_ms for m in minutes),
        "generated_tokens": tokens,
        "tokens_per_second": {"avg": round(tokens / span, 3) if span > 0 else None},
        "sequences_running": _level(minutes, samples, "running"),
        "sequences_waiting": _level(minutes, samples, "waiting"),
        "batch_size": _level(minutes, samples, "batch_size"),
    }


def _level(minutes: list[Minute], samples: int, name: str) -> dict[str, float | None]:
    return {
        "avg": _avg(sum(getattr(m.gauges, f"{name}_sum") for m in minutes), samples),
        "max": max((getattr(m.gauges, f"{name}_max") for m in minutes), default=0.0),
    }


def _avg(total: float, count: int) -> float | None:
    return None if not count else round(total / count, 3)


def _minute_row(m: Minute, now: float) -> dict[str, Any]:
    model = m.model_ms.summary()
    overhead = m.overhead_ms.summary()
    ttft = m.ttft_ms.summary()
    itl = m.itl_ms.summary()
    g = m.gauges
    seconds = min(60.0, now - m.start)  # the current minute has run only this long
    return {
        "start": m.start,
        "invocations": m.invocations,
        "errors_4xx": m.errors_4xx,
        "errors_5xx": m.errors_5xx,
        "throttles": m.throttles,
        "cold_starts": m.cold_starts,
        "model_latency_ms_p50": model["p50"],
        "model_latency_ms_p99": model["p99"],
        "overhead_latency_ms_p50": overhead["p50"],
        "overhead_latency_ms_p99": overhead["p99"],
        "concurrent_executions_max": m.gauges.concurrent_max,
        "replicas_max": m.gauges.replicas_max,
        "memory_mb_max": round(m.gauges.memory_mb_max, 1),
        "cpu_percent_avg": None if not m.gauges.samples else round(m.gauges.cpu_percent_sum / m.gauges.samples, 1),
        "ttft_ms_p50": ttft["p50"],
        "ttft_ms_p99": ttft["p99"],
        "itl_ms_p50": itl["p50"],
        "itl_ms_p99": itl["p99"],
        "tokens_per_second": round(m.generated_tokens / seconds, 3) if seconds > 0 else None,
        "sequences_running_avg": _avg(g.running_sum, g.engine_samples),
        "sequences_waiting_avg": _avg(g.waiting_sum, g.engine_samples),
        "batch_size_avg": _avg(g.batch_size_sum, g.engine_samples),
    }
