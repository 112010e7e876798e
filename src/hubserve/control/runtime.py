"""What runs for one endpoint, kept in memory beside its stored record."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from typing import Any

from hubserve.backends.base import ReplicaHandle
from hubserve.control.scaling import ScalePolicy, Stabiliser
from hubserve.spec import EndpointSpec, EndpointState


@dataclasses.dataclass(eq=False)
class EndpointRuntime:
    """Replicas, traffic counters and the signals the reconcile loop and held requests wait on."""

    name: str
    state: EndpointState
    reason: str | None = None
    # The deployed generation: the spec the serving replicas were started from.
    spec: EndpointSpec | None = None
    spec_json: str | None = None
    policy: ScalePolicy | None = None
    runtime_info: dict[str, Any] | None = None  # the runtime the replicas chose (auto: with its timings)
    batching_info: dict[str, Any] | None = None  # the batch limits in effect (spec or runtime defaults)
    failed_spec: str | None = None  # a spec that failed to deploy is not retried until it changes
    serving: list[ReplicaHandle] = dataclasses.field(default_factory=list)
    starting: int = 0
    desired: int = 0
    stabiliser: Stabiliser | None = None
    start_backoff_until: float = 0.0
    forced_zero: bool = False  # a user's scale-to-zero holds until the next invocation
    # Traffic.
    in_flight: int = 0  # admitted invocations not yet answered, held ones included
    held: int = 0  # invocations waiting for a replica to become ready
    last_activity: float = dataclasses.field(default_factory=time.monotonic)
    cold_starts: int = 0
    throttles: int = 0
    # The async queue (asyncinf.dispatcher keeps these): queued inferences are demand the autoscaler counts.
    async_queued: int = 0
    async_running: int = 0
    model_setup_ms: collections.deque[float] = dataclasses.field(default_factory=lambda: collections.deque(maxlen=100))
    model_setups: int = 0  # how many were ever appended (the metrics sampler reads the new ones)
    # Signals.
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    wakeup: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    loop_task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        """Ask the reconcile loop for a pass."""
        self.changed.set()

    def notify_waiters(self) -> None:
        """Wake every held request so it looks again (a replica is ready, or the endpoint failed)."""
        event, self.wakeup = self.wakeup, asyncio.Event()
        event.set()

    @property
    def deployed(self) -> bool:
        return self.spec_json is not None
