"""Per-endpoint traffic counters the gateway keeps: in flight, held, last activity, cold starts, throttles.

The gateway is the only writer. Control reads demand through the ``Demand`` protocol (this class
has its methods), the metrics sampler reads levels, the API reads the counters for describe.
Counters belong to one deployment of a name: a deleted and re-created endpoint starts at zero.
"""

from __future__ import annotations


class Traffic:
    """The counters of one endpoint."""

    __slots__ = ("owner", "in_flight", "held", "last_activity", "cold_starts", "throttles")

    def __init__(self, owner: object) -> None:
        self.owner = owner  # the live state these counters belong to
        self.in_flight = 0  # admitted invocations not yet answered, held ones included
        self.held = 0  # invocations waiting for a replica to become ready
        self.last_activity = 0.0  # time.monotonic() of the last admission or answer
        self.cold_starts = 0
        self.throttles = 0


class TrafficBook:
    """Every endpoint's counters, by name; implements control's ``Demand`` and the sampler's levels."""

    def __init__(self) -> None:
        self._by_name: dict[str, Traffic] = {}

    def of(self, name: str, owner: object) -> Traffic:
        """The counters of ``name`` while it is ``owner`` (the hot path: one dict look-up)."""
        traffic = self._by_name.get(name)
        if traffic is None or traffic.owner is not owner:
            traffic = self._by_name[name] = Traffic(owner)
        return traffic

    def get(self, name: str) -> Traffic | None:
        return self._by_name.get(name)

    def forget(self, name: str) -> None:
        self._by_name.pop(name, None)

    # --- control's Demand and the sampler's levels -------------------------------------------

    def demand(self, name: str) -> int:
        traffic = self._by_name.get(name)
        return traffic.in_flight if traffic is not None else 0

    def last_activity(self, name: str) -> float:
        traffic = self._by_name.get(name)
        return traffic.last_activity if traffic is not None else 0.0

    def in_flight(self, name: str) -> int:
        return self.demand(name)

    def held(self, name: str) -> int:
        traffic = self._by_name.get(name)
        return traffic.held if traffic is not None else 0
