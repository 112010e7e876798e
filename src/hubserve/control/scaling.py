"""How many replicas an endpoint wants: pure functions of its compute spec and its traffic.

Serverless (SageMaker's model): each concurrent invocation takes one slot; a replica holds
``slots_per_replica`` slots, so replicas follow in-flight invocations up to what
``max_concurrency`` needs; ``provisioned_concurrency`` slots stay warm; idle -> zero.
Dedicated (Inference Endpoints' model): replicas follow in-flight requests per replica against
``target_concurrency`` between ``min_replicas`` and ``max_replicas``; ``min_replicas: 0``
scales to zero after ``scale_to_zero_after_s``.
Scaling down waits for a stabilisation window: the highest recommendation within it wins.
"""

from __future__ import annotations

import collections
import dataclasses
import math

from hubserve.spec import DedicatedCompute, EndpointSpec, ServerlessCompute

# Compute fields that only move the replica count or the admission limit: a replica is started the same
# way whatever they say, so a change to them alone is applied to the serving replicas in place.
SCALING_FIELDS = {
    "serverless": frozenset({"max_concurrency", "provisioned_concurrency", "idle_timeout_s"}),
    "dedicated": frozenset({"min_replicas", "max_replicas", "target_concurrency", "scale_to_zero_after_s"}),
}


@dataclasses.dataclass(frozen=True)
class ScalePolicy:
    min_replicas: int
    max_replicas: int
    per_replica: int  # in-flight requests one replica takes before another is wanted
    max_concurrency: int | None  # admission limit; beyond it: 429 ThrottlingException
    idle_to_zero_s: float | None  # None: never scales to zero


def policy_for(compute: ServerlessCompute | DedicatedCompute, slots_per_replica: int) -> ScalePolicy:
    if isinstance(compute, ServerlessCompute):
        return ScalePolicy(
            min_replicas=math.ceil(compute.provisioned_concurrency / slots_per_replica),
            max_replicas=math.ceil(compute.max_concurrency / slots_per_replica),
            per_replica=slots_per_replica,
            max_concurrency=compute.max_concurrency,
            idle_to_zero_s=float(compute.idle_timeout_s) if compute.provisioned_concurrency == 0 else None,
        )
    return ScalePolicy(
        min_replicas=compute.min_replicas,
        max_replicas=compute.max_replicas,
        per_replica=compute.target_concurrency,
        max_concurrency=None,
        idle_to_zero_s=float(compute.scale_to_zero_after_s) if compute.min_replicas == 0 else None,
    )


def scaling_only(deployed: EndpointSpec, wanted: EndpointSpec) -> bool:
    """``wanted`` differs from ``deployed`` in scaling fields only: no replica needs replacing."""
    if deployed.compute.type != wanted.compute.type:
        return False
    fields = SCALING_FIELDS[deployed.compute.type]
    return _without(deployed, fields) == _without(wanted, fields)


def _without(spec: EndpointSpec, fields: frozenset[str]) -> dict[str, object]:
    document = spec.model_dump()
    document.pop("invocation_timeout_s", None)  # read by the gateway per request: no replica needs replacing
    document["compute"] = {key: value for key, value in document["compute"].items() if key not in fields}
    return document


def recommend(policy: ScalePolicy, in_flight: int, idle_s: float) -> int:
    """Replicas wanted right now, before stabilisation."""
    need = math.ceil(in_flight / policy.per_replica)
    idle_long_enough = in_flight == 0 and policy.idle_to_zero_s is not None and idle_s >= policy.idle_to_zero_s
    floor = policy.min_replicas if idle_long_enough else max(policy.min_replicas, 1)
    return min(max(need, floor), policy.max_replicas)


class Stabiliser:
    """Scale up at once; scale down only to the highest recommendation seen within the window."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._recent: collections.deque[tuple[float, int]] = collections.deque()

    def desired(self, now: float, recommendation: int) -> int:
        self._recent.append((now, recommendation))
        while self._recent and self._recent[0][0] < now - self._window_s:
            self._recent.popleft()
        if recommendation == 0:
            return 0  # idle long enough already: the idle timeout is the window for zero
        return max(value for _, value in self._recent)

    def reset(self) -> None:
        self._recent.clear()
