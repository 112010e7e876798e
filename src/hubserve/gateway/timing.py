"""Timing, the gateway's last layer: latency headers, metrics and the access line of every invocation.

Model latency (SageMaker's definition) is from handing the invocation to the replica's channel
until its answer is back; overhead latency is the rest of the time since hubserve received it
(``Invocation.received``), reading the body included. Sync, streamed, async and batch
invocations are all recorded here, so they all show up in an endpoint's metrics and logs. A stream
that sent parts also records its time to first token and the gaps between its parts (tokens), once,
as it ends; nothing more is measured for calls that are not streamed.
"""

from __future__ import annotations

import time

import msgspec

from hubserve.errors import HubserveError
from hubserve.logs import EventLog
from hubserve.metrics import Metrics
from hubserve.types import Invocation

_METHODS = {"sync": "POST", "async": "ASYNC", "batch": "BATCH"}


class Timing:
    """Records each invocation's outcome where users look: metrics, access lines, response headers."""

    def __init__(self, metrics: Metrics, events: EventLog) -> None:
        self._metrics = metrics
        self._events = events

    def answered(self, invocation: Invocation, bytes_out: int, model_ms: float, cold_start: bool) -> float:
        """Record a success; returns the overhead latency in ms."""
        overhead_ms = (time.perf_counter() - invocation.received) * 1000.0 - model_ms
        name = invocation.endpoint
        self._metrics.invocation(name, 200, model_ms, overhead_ms, cold_start=cold_start,
                                 bytes_in=len(invocation.body), bytes_out=bytes_out)  # fmt: skip
        self._events.access(name, _METHODS[invocation.kind], invocation.path, 200, model_ms, overhead_ms, cold_start)
        return overhead_ms

    def streamed(self, invocation: Invocation, ttft_ms: float, gaps_ms: list[float]) -> None:
        """A stream that sent parts: its time to first token and inter-token gaps (one call as it ends)."""
        self._metrics.stream(invocation.endpoint, ttft_ms, gaps_ms, 1 + len(gaps_ms))

    def failed(self, invocation: Invocation, error: HubserveError, model_ms: float | None, record: bool = True) -> None:
        """Put the latency headers on ``error``; record it unless the endpoint does not exist (no figures for it)."""
        overhead_ms = (time.perf_counter() - invocation.received) * 1000.0 - (model_ms or 0.0)
        if model_ms is not None:
            error.headers["x-model-latency-ms"] = f"{model_ms:.3f}"
        error.headers["x-overhead-latency-ms"] = f"{overhead_ms:.3f}"
        if not record:
            return
        name = invocation.endpoint
        # The status the client got: the route's dialect may answer this error with another one.
        status = error.status if invocation.error_status is None else invocation.error_status(error)
        bytes_out = len(msgspec.json.encode(error.to_dict()))
        self._metrics.invocation(name, status, model_ms, overhead_ms, cold_start=False,
                                 bytes_in=len(invocation.body), bytes_out=bytes_out)  # fmt: skip
        method = _METHODS[invocation.kind]
        self._events.access(name, method, invocation.path, status, model_ms, overhead_ms, False)
