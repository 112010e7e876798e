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


class Lease(Protocol):
    channel: ReplicaChannel
    cold_start: bool

    def release(self) -> None:
        """The invocation is answered: give its concurrency slot back."""


class Router(Protocol):
    async def acquire(self, name: str) -> Lease:
        """Admit one invocation (or raise Throttled) and lease it a ready replica, holding through a cold start."""


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
        lease = await self._router.acquire(name)
        try:
            sent = time.perf_counter()
            response = await lease.channel.call(body, content_type, accept)
            model_latency_ms = (time.perf_counter() - sent) * 1000.0
        finally:
            lease.release()
        if not response.ok:
            error = from_type(response.error_type, response.error_message)
            error.headers["x-model-latency-ms"] = f"{model_latency_ms:.3f}"
            raise error
        return InvocationResult(response.body, response.content_type, model_latency_ms, lease.cold_start)
