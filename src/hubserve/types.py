"""The request path's shared vocabulary: an invocation, its answer and parts, and the Channel protocol.

Every layer between a route and a replica speaks these: the routes build an ``Invocation``, the
gateway's layers (admission, routing, the channel call, timing) pass it down, a backend's
``Channel`` carries it to a replica, and the gateway hands an ``InvocationResult`` (or, for a
stream, ``Part``s) back up. Nothing here knows how replicas run; this module imports no other
hubserve module.

Cancellation is asyncio's: cancelling the task that awaits ``Channel.call``, or closing the
iterator of ``Channel.stream`` before its final part, sends a cancel to the replica, which drops
the request from its queue (its batch slot is freed) or stops a stream between two parts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncGenerator, Callable
from typing import Literal, Protocol

InvocationKind = Literal["sync", "async", "batch"]


@dataclasses.dataclass(slots=True)
class Invocation:
    """One request for one endpoint, as the gateway receives it from any route or queue."""

    endpoint: str
    body: bytes = b""
    # A payload the replica opens itself (a local path or a storage URL) instead of ``body``.
    body_url: str = ""
    content_type: str = "application/json"
    accept: str = "application/json"
    # time.monotonic() after which the answer is no longer wanted; None: no limit of its own.
    deadline: float | None = None
    stream: bool = False  # answer in parts (server-sent events on the HTTP side)
    kind: InvocationKind = "sync"
    path: str = ""  # the route it came in on, for the access line
    # time.perf_counter() when hubserve received it: overhead latency counts from here.
    received: float = dataclasses.field(default_factory=time.perf_counter)
    # The status a failure is answered with where the route's dialect differs from hubserve's own
    # (SageMaker's InvokeEndpoint: 429 for a paused endpoint); timing records that one. None: the error's.
    error_status: Callable[[Exception], int] | None = None

    @property
    def size(self) -> int:
        return len(self.body)


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """A replica's one answer to a call."""

    body: bytes
    content_type: str = "application/json"


@dataclasses.dataclass(frozen=True, slots=True)
class Part:
    """One piece of a streamed answer; the last one a stream yields has ``final`` set."""

    body: bytes
    content_type: str = "application/json"
    final: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class InvocationResult:
    """What the gateway hands back for one answered invocation, with its timing."""

    body: bytes
    content_type: str
    model_latency_ms: float
    overhead_latency_ms: float
    cold_start: bool

    def latency_headers(self) -> dict[str, str]:
        return {
            "x-model-latency-ms": f"{self.model_latency_ms:.3f}",
            "x-overhead-latency-ms": f"{self.overhead_latency_ms:.3f}",
            "x-cold-start": "true" if self.cold_start else "false",
        }


class Invoker(Protocol):
    """The gateway, as the async and batch queues see it."""

    async def invoke(self, invocation: Invocation) -> InvocationResult: ...


class Channel(Protocol):
    """The gateway's connection to one replica; many invocations may be in flight on it at once.

    ``call`` and ``stream`` raise ``hubserve.errors.HubserveError`` subclasses: the replica's own
    errors (ValidationError, ModelError) as it reported them, ReplicaCrashed if it went away.
    """

    replica_id: str

    @property
    def outstanding(self) -> int:
        """Invocations sent on this channel and not yet answered (routing picks the fewest)."""
        ...

    @property
    def closed(self) -> bool: ...

    async def call(self, invocation: Invocation) -> Reply:
        """Send one invocation and wait for its one answer; cancelling the caller cancels it in the replica."""
        ...

    def stream(self, invocation: Invocation) -> AsyncGenerator[Part, None]:
        """Send one invocation and yield its parts up to the final one; closing early cancels it in the replica."""
        ...

    def fail_pending(self, error: Exception) -> None:
        """Fail every invocation in flight with ``error`` (the replica is being stopped under them)."""
        ...

    async def drained(self) -> None:
        """Return once nothing is in flight on this channel."""
        ...

    async def close(self) -> None: ...
