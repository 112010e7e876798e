"""Routing, the gateway's second layer: the least-outstanding ready replica, or hold for one.

A multi-model endpoint's request names its model: routing prefers the least-outstanding replica
that holds it (loaded or loading, as the replicas report and as requests were sent), so a model
is loaded once rather than on every replica; a hot model whose holders each have ``HOT``
requests outstanding while another replica has none is loaded there too.

When no replica is ready, the request asks control for capacity through the narrow ``Capacity``
protocol and is held until a replica becomes ready, the endpoint cannot serve (paused, failed,
deleted), or the cold-start timeout (or the invocation's own deadline) passes. A request is
never answered 503 merely because a replica is still starting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Protocol

from hubserve.errors import ColdStartTimeout, InvocationTimeout, ModelNotReady, ValidationError
from hubserve.gateway.traffic import Traffic
from hubserve.logs import EventLog
from hubserve.spec import EndpointState
from hubserve.types import Channel


class ServingReplica(Protocol):
    @property
    def channel(self) -> Channel | None: ...


class Routable(Protocol):
    """What routing reads of an endpoint's live state (control's ``EndpointLive``)."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> EndpointState: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def replicas(self) -> Sequence[ServingReplica]: ...

    @property
    def max_concurrency(self) -> int | None: ...

    @property
    def multi_model(self) -> bool: ...

    @property
    def invocation_timeout_s(self) -> int | None: ...

    @property
    def wakeup(self) -> asyncio.Event: ...


class Capacity(Protocol):
    """Control, as the gateway sees it."""

    def find(self, name: str, batch: bool = False) -> Routable | None:
        """The live state of endpoint ``name`` (of batch job ``name`` when ``batch``); None: no such thing."""
        ...

    def request_capacity(self, name: str) -> None:
        """A request is held for want of a ready replica: scale now."""
        ...

    def cold_start_timed_out(self, name: str, reason: str) -> None: ...

    def replace_replica(self, name: str, batch: bool, channel: Channel, reason: str) -> None:
        """A request ran past its limit on ``channel``: kill its replica and start another."""
        ...


HOT = 4  # outstanding requests on every holder of a model before an idle replica loads it too


def pick(live: Routable, target: str = "") -> Channel | None:
    """The ready replica with the fewest invocations outstanding (of those holding ``target``, if any do)."""
    if target:
        return _pick_holder(live, target)
    best: Channel | None = None
    for replica in live.replicas:
        channel = replica.channel
        if channel is not None and not channel.closed and (best is None or channel.outstanding < best.outstanding):
            best = channel
    return best


def _pick_holder(live: Routable, target: str) -> Channel | None:
    holder: Channel | None = None
    other: Channel | None = None
    for replica in live.replicas:
        channel = replica.channel
        if channel is None or channel.closed:
            continue
        if target in channel.holding:
            if holder is None or channel.outstanding < holder.outstanding:
                holder = channel
        elif other is None or channel.outstanding < other.outstanding:
            other = channel
    if holder is None:
        return other
    if other is not None and holder.outstanding >= HOT and other.outstanding == 0:
        return other
    return holder


def check_target(live: Routable, target: str) -> None:
    """A multi-model endpoint needs a model name; any other endpoint must not be given one."""
    if live.multi_model:
        if not target:
            raise ValidationError(
                f"Endpoint '{live.name}' serves many models: name one with TargetModel (the X-Amzn-SageMaker-Target-Model "
                f"header) or POST /endpoints/{live.name}/models/{{model}}; GET /v1/endpoints/{live.name}/models lists them."
            )
    elif target:
        raise ValidationError(
            f"Endpoint '{live.name}' serves one model; drop the target model '{target}' (only multi-model endpoints, "
            "model.multi_model: true, take one)."
        )


class Holding:
    """Holds requests through a cold start."""

    def __init__(self, capacity: Capacity, events: EventLog, cold_start_timeout_s: float) -> None:
        self._capacity = capacity
        self._events = events
        self.cold_start_timeout_s = cold_start_timeout_s

    async def hold(self, live: Routable, traffic: Traffic, deadline: float | None, target: str = "") -> Channel:
        """Wait for a ready replica, asking control for one now; raise if none comes in time."""
        raise_if_unservable(live)
        timeout = self.cold_start_timeout_s
        started = time.monotonic()
        until = started + timeout
        cut_by_deadline = deadline is not None and deadline < until
        if deadline is not None and cut_by_deadline:
            until = deadline
        traffic.held += 1
        try:
            self._capacity.request_capacity(live.name)
            while True:
                wakeup = live.wakeup
                channel = pick(live, target)
                if channel is not None:
                    traffic.cold_starts += 1
                    waited_ms = (time.monotonic() - started) * 1000.0
                    self._events.event(live.name, f"cold start: a request waited {waited_ms:.0f} ms for a replica")
                    return channel
                raise_if_unservable(live)
                remaining = until - time.monotonic()
                if remaining <= 0 and cut_by_deadline:
                    raise InvocationTimeout(
                        f"Endpoint '{live.name}' had no ready replica before the invocation's deadline; it was not run."
                    )
                if remaining <= 0:
                    reason = f"a cold start took longer than the {timeout:.0f}s cold-start timeout"
                    self._capacity.cold_start_timed_out(live.name, reason)
                    raise ColdStartTimeout(
                        f"Endpoint '{live.name}': {reason}; the request was not run. Retry, or check the endpoint's logs."
                    )
                try:
                    await asyncio.wait_for(wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    pass
        finally:
            traffic.held -= 1


def raise_if_unservable(live: Routable) -> None:
    if live.state is EndpointState.PAUSED or live.state is EndpointState.PAUSING:
        raise ModelNotReady(f"Endpoint '{live.name}' is paused; resume it with POST /v1/endpoints/{live.name}/resume.")
    if live.state is EndpointState.FAILED:
        raise ModelNotReady(f"Endpoint '{live.name}' failed: {live.reason}")
    if live.state is EndpointState.DELETING:
        raise ModelNotReady(f"Endpoint '{live.name}' is being deleted.")
