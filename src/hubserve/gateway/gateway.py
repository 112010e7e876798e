"""Invoke one endpoint: pick a replica, send the frame, time the model, map its errors.

Model latency is measured here as SageMaker defines it: from handing the request to the
replica until its answer is back in the gateway.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Protocol

from hubserve.backends.channel import ReplicaChannel
from hubserve.errors import from_type


class Router(Protocol):
    async def acquire(self, name: str) -> tuple[ReplicaChannel, bool]:
        """A ready replica's channel for the endpoint, and whether the request waited for a cold start."""


@dataclasses.dataclass(frozen=True, slots=True)
class InvocationResult:
    body: bytes
    content_type: str
    model_latency_ms: float
    cold_start: bool


class Gateway:
    """The one implementation behind both invocation dialects."""

    def __init__(self, router: Router) -> None:
        self._router = router

    async def invoke(self, name: str, body: bytes, content_type: str, accept: str) -> InvocationResult:
        channel, cold_start = await self._router.acquire(name)
        sent = time.perf_counter()
        response = await channel.call(body, content_type, accept)
        model_latency_ms = (time.perf_counter() - sent) * 1000.0
        if not response.ok:
            error = from_type(response.error_type, response.error_message)
            error.headers["x-model-latency-ms"] = f"{model_latency_ms:.3f}"
            raise error
        return InvocationResult(response.body, response.content_type, model_latency_ms, cold_start)
