"""One endpoint as control sees it right now: a small typed structure control writes and others read.

The gateway routes from it (state, ready replicas, the admission limit, a signal when a replica
becomes ready); the API describes it. Only control (reconcile, autoscaler, memory policing)
changes it. What control keeps for itself (stabilisers, back-off, reconcile signals) is not here.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
from typing import Any

from hubserve.backends.base import Replica
from hubserve.control.scaling import ScalePolicy
from hubserve.spec import EndpointSpec, EndpointState

_DEPLOYMENTS = itertools.count(1)


@dataclasses.dataclass(frozen=True, slots=True)
class Generation:
    """The deployed spec: what the serving replicas were started from, and what they reported."""

    spec: EndpointSpec
    spec_json: str
    policy: ScalePolicy | None  # None for a batch job's replicas: nothing scales them
    runtime_info: dict[str, Any] | None = None  # the model runtime the replicas chose (auto: with its timings)
    batching_info: dict[str, Any] | None = None  # the batch limits in effect (spec or runtime defaults)
    # Which deployment: new for each roll-out, kept by a scaling-only change (``dataclasses.replace``), so
    # the autoscaler's window and a starting replica outlive a change of replica bounds.
    deployment: int = dataclasses.field(default_factory=lambda: next(_DEPLOYMENTS))


@dataclasses.dataclass(eq=False)
class EndpointLive:
    """State, deployed generation and replicas of one endpoint (or one batch job's replicas)."""

    name: str
    state: EndpointState
    reason: str | None = None
    generation: Generation | None = None
    replicas: list[Replica] = dataclasses.field(default_factory=list)  # ready, serving
    starting: int = 0
    desired: int = 0
    model_setup_ms: collections.deque[float] = dataclasses.field(default_factory=lambda: collections.deque(maxlen=100))
    model_setups: int = 0  # how many were ever appended (the metrics sampler reads the new ones)
    wakeup: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    @property
    def max_concurrency(self) -> int | None:
        """The admission limit (serverless max_concurrency); beyond it: 429."""
        policy = self.generation.policy if self.generation is not None else None
        return policy.max_concurrency if policy is not None else None

    @property
    def multi_model(self) -> bool:
        """Whether each request names one of the endpoint's models (spec ``model.multi_model``)."""
        return self.generation is not None and self.generation.spec.model.multi_model

    @property
    def invocation_timeout_s(self) -> int | None:
        """The endpoint's per-request wall-clock limit; past it the request gets 504 and its replica is replaced."""
        return self.generation.spec.invocation_timeout_s if self.generation is not None else None

    @property
    def per_replica(self) -> int | None:
        """Concurrent invocations one replica takes before another is wanted."""
        policy = self.generation.policy if self.generation is not None else None
        return policy.per_replica if policy is not None else None

    @property
    def batching_info(self) -> dict[str, Any] | None:
        return self.generation.batching_info if self.generation is not None else None

    @property
    def deployed(self) -> bool:
        return self.generation is not None

    @property
    def spec(self) -> EndpointSpec | None:
        return self.generation.spec if self.generation is not None else None

    def notify_waiters(self) -> None:
        """Wake every held request so it looks again (a replica is ready, or the endpoint failed)."""
        event, self.wakeup = self.wakeup, asyncio.Event()
        event.set()
