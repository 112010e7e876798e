"""The autoscaling policy at work: every endpoint's demand, turned into a desired replica count.

Demand comes from sources the composition root adds (the gateway's in-flight invocations, the
async queue's backlog) through the narrow ``Demand`` protocol, so control never imports them.
The arithmetic is in scaling.py; the replicas are started and retired by the reconciler. A held
request asks for capacity through ``Controller.request_capacity``, which runs one step at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from hubserve.control.capacity import MachineCapacity
from hubserve.control.live import EndpointLive, Generation
from hubserve.control.reconcile import ACTIVE_STATES, Reconciler
from hubserve.control.scaling import Stabiliser, recommend
from hubserve.logs import EventLog

log = logging.getLogger("hubserve.autoscaler")


class Demand(Protocol):
    """Something that wants replicas: invocations in flight, queued async work."""

    def demand(self, name: str) -> int:
        """Invocations of the endpoint that want a replica now."""
        ...

    def last_activity(self, name: str) -> float:
        """time.monotonic() of the endpoint's last invocation through this source; 0.0 if none."""
        ...


class Autoscaler:
    """Scales each endpoint's deployed generation between its policy's bounds."""

    def __init__(self, reconciler: Reconciler, window_s: float, interval_s: float,
                 capacity: MachineCapacity | None = None, everyone: Callable[[], Iterable[EndpointLive]] | None = None,
                 events: EventLog | None = None) -> None:  # fmt: skip
        """``capacity``: the machine's room for replicas (None: no cap, as on a Ray cluster); ``everyone``: every
        live with replicas on this server (endpoints and batch jobs), which share that room."""
        self._reconciler = reconciler
        self._capacity = capacity
        self._everyone = everyone or (lambda: self._reconciler.lives.values())
        self._events = events
        self._capped: dict[str, int] = {}  # endpoint -> the replicas it wanted but was capped from, while capped
        self._window_s = window_s
        self._interval_s = interval_s
        self._sources: list[Demand] = []
        self._stabilisers: dict[str, tuple[Generation, Stabiliser]] = {}
        self._forced_zero_at: dict[str, float] = {}  # a user's scale-to-zero holds until the next invocation
        self._deployed_at: dict[str, tuple[Generation, float]] = {}

    def add_source(self, source: Demand) -> None:
        self._sources.append(source)

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            for live in list(self._reconciler.lives.values()):
                try:
                    self.step(live)
                except Exception:  # one endpoint's trouble must not stop the others' scaling
                    log.exception("autoscaling %s failed", live.name)
            for name in set(self._stabilisers) - set(self._reconciler.lives):
                self._forget(name)

    def step(self, live: EndpointLive) -> None:
        """Move the replica count of the deployed generation towards what the policy wants now."""
        generation = live.generation
        if generation is None or generation.policy is None or live.state not in ACTIVE_STATES:
            return
        now = time.monotonic()
        demand = sum(source.demand(live.name) for source in self._sources)
        invoked = max((source.last_activity(live.name) for source in self._sources), default=0.0)
        forced_at = self._forced_zero_at.get(live.name)
        if forced_at is not None and invoked > forced_at:  # only an invocation ends a user's scale-to-zero
            del self._forced_zero_at[live.name]
            forced_at = None
        last = max(invoked, self._deployed(live.name, generation, now))
        wanted = 0 if forced_at is not None else recommend(generation.policy, demand, now - last)
        desired = self._stabiliser(live.name, generation).desired(now, wanted)
        if self._capacity is not None:
            desired = self._cap(live, desired)
        self._reconciler.scale_to(live, desired, demand)

    def _cap(self, live: EndpointLive, desired: int) -> int:
        assert self._capacity is not None
        allowed = self._capacity.allowed(live, desired, self._everyone())
        was_capped = live.name in self._capped
        if allowed < desired and not was_capped and self._events is not None:
            self._events.event(
                live.name, f"wants {desired} replicas; capped at {allowed} by the machine ({self._capacity.describe()}): "
                "requests wait in the running replicas' batchers",
            )  # fmt: skip
        if allowed < desired:
            self._capped[live.name] = desired
        else:
            self._capped.pop(live.name, None)
        return allowed

    def force_zero(self, live: EndpointLive) -> None:
        """Zero replicas until the next invocation, whatever the minimum says (a user's scale-to-zero)."""
        self._forced_zero_at[live.name] = time.monotonic()
        if live.generation is not None:
            self._stabiliser(live.name, live.generation).reset()

    def resumed(self, live: EndpointLive) -> None:
        """A paused or failed endpoint starts again: a fresh start, as after a deployment (no instant zero,
        no earlier scale-to-zero still holding)."""
        self._forced_zero_at.pop(live.name, None)
        self._stabilisers.pop(live.name, None)
        self._deployed_at.pop(live.name, None)

    def _stabiliser(self, name: str, generation: Generation) -> Stabiliser:
        held = self._stabilisers.get(name)
        if held is None or held[0].deployment != generation.deployment:  # a roll-out starts its window afresh
            held = self._stabilisers[name] = (generation, Stabiliser(self._window_s))
        return held[1]

    def _deployed(self, name: str, generation: Generation, now: float) -> float:
        """When this generation was first seen: a fresh deployment counts as activity (no instant zero)."""
        seen = self._deployed_at.get(name)
        if seen is None or seen[0].deployment != generation.deployment:
            seen = self._deployed_at[name] = (generation, now)
        return seen[1]

    def _forget(self, name: str) -> None:
        self._capped.pop(name, None)
        self._stabilisers.pop(name, None)
        self._forced_zero_at.pop(name, None)
        self._deployed_at.pop(name, None)
