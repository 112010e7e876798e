"""From raw measurements to what `ab` and the seeds' tables print.

Latency figures cover every response that came back (as ab's do), failures included; a
failure is any non-2xx status or a request with no answer at all (refused, reset, timed out).
Percentiles are nearest-rank: p99 is a latency some request actually had.
"""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

from hubserve.loadtest.driver import Results


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(values: list[float]) -> dict[str, float] | None:
    """mean, std, min, p50, p90, p99, max in ms; None when nothing was measured."""
    if not values:
        return None
    ordered = sorted(values)
    return {
        "mean": statistics.fmean(ordered),
        "std": statistics.pstdev(ordered) if len(ordered) > 1 else 0.0,
        "min": ordered[0],
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "max": ordered[-1],
    }


def histogram(values: list[float], bins: int = 12) -> list[dict[str, float]]:
    """Counts per latency bin: log-spaced when the spread is wide (a cold start among ms), else linear."""
    if not values:
        return []
    low, high = min(values), max(values)
    if high <= low:
        return [{"low_ms": low, "high_ms": high, "count": len(values)}]
    wide = low > 0 and high / low > 20
    if wide:
        edges = [low * (high / low) ** (i / bins) for i in range(bins + 1)]
    else:
        edges = [low + (high - low) * i / bins for i in range(bins + 1)]
    counts = [0] * bins
    for value in values:
        if wide:
            index = int(math.log(value / low) / math.log(high / low) * bins)
        else:
            index = int((value - low) / (high - low) * bins)
        counts[min(index, bins - 1)] += 1
    return [{"low_ms": edges[i], "high_ms": edges[i + 1], "count": counts[i]} for i in range(bins)]


def summarise(results: Results, target: str, plan: dict[str, Any]) -> dict[str, Any]:
    """The report `hubserve bench --json` prints."""
    by_status: dict[str, int] = {}
    for status in results.statuses:
        by_status[str(status)] = by_status.get(str(status), 0) + 1
    failed_status = {code: n for code, n in sorted(by_status.items()) if not code.startswith("2")}
    no_answer = sum(results.errors.values())
    sent = len(results.statuses) + no_answer
    return {
        "target": target,
        **plan,
        "requests": sent,
        "completed": len(results.statuses),
        "succeeded": sent - sum(failed_status.values()) - no_answer,
        "failed": sum(failed_status.values()) + no_answer,
        "statuses": dict(sorted(by_status.items())),
        "failures_by_status": failed_status,
        "errors": dict(sorted(results.errors.items())),
        "wall_s": results.wall_s,
        "throughput_rps": len(results.statuses) / results.wall_s if results.wall_s > 0 else 0.0,
        "latency_ms": latency_summary(results.latencies_ms),
        "hubserve": bool(results.model_ms),
        "model_latency_ms": latency_summary(results.model_ms),
        "overhead_latency_ms": latency_summary(results.overhead_ms),
        "cold_starts": results.cold_starts,
        "histogram": histogram(results.latencies_ms),
        "client_cpu_s": results.cpu_s,
        "first_failure": _first_failure(results),
    }


def failure_message(body: str) -> str:
    """What an error body says: hubserve's ``error.message``, Inference Endpoints' ``error``,
    SageMaker's ``Message``; else the text itself, on one line and cut short."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        for found in (error, data.get("Message"), data.get("message"), data.get("detail")):
            if isinstance(found, str) and found:
                return found
    text = " ".join(body.split())
    return text if len(text) <= 300 else text[:299] + "…"


def _first_failure(results: Results) -> dict[str, Any] | None:
    """The first failed request's status (None when it had no answer) and message; None when none failed."""
    if not results.first_failure:
        return None
    status = results.first_failure_status or None
    message = failure_message(results.first_failure) if status else results.first_failure
    return {"status": status, "message": message}
