"""How many replicas this machine can run: the autoscaler's desire, capped by cores and memory.

Without a cap, serverless replicas follow in-flight invocations (one per ``slots_per_replica``):
200 clients against ``max_concurrency`` 200 started 50 replicas on a 2-core machine, 2.5 GB and a
load average of 19, each replica slower than the one before. Past what the cores can run, another
replica only adds contention; requests are better off waiting in the running replicas' batchers,
where they run in bigger batches (benchmarks/soak.py measures both).

The cap counts every replica of this server (endpoints and batch jobs): their vCPUs together stay
within ``cores x replica_cpu_oversubscription``, their memory sizes within the machine's memory.
What a user asked for explicitly is honoured over the cap: an endpoint's minimum replicas (its
``min_replicas`` or provisioned concurrency), and always one replica for an endpoint with demand,
so no request is held forever. Pure arithmetic; the autoscaler applies it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from hubserve.control.live import EndpointLive
from hubserve.control.memory import limit_mb
from hubserve.spec import vcpus_for

MEMORY_HEADROOM = 0.9  # of the machine's memory, for replicas; the rest is the server's and the system's


@dataclasses.dataclass(frozen=True)
class MachineCapacity:
    """The cores and memory replicas share, and how far the cores may be oversubscribed."""

    cores: int
    memory_mb: int
    cpu_oversubscription: float

    @property
    def vcpu_budget(self) -> float:
        return self.cores * self.cpu_oversubscription

    @property
    def memory_budget_mb(self) -> float:
        return self.memory_mb * MEMORY_HEADROOM

    def allowed(self, live: EndpointLive, desired: int, lives: Iterable[EndpointLive]) -> int:
        """``desired`` replicas of ``live``, or fewer where the machine has no room for more."""
        generation = live.generation
        if generation is None or desired <= 1:
            return desired
        compute = generation.spec.compute
        vcpus, memory = vcpus_for(compute, self.cores), limit_mb(compute, self.memory_mb)
        used_vcpus = used_memory = 0.0
        for other in lives:
            if other is live or other.generation is None:
                continue
            count = len(other.replicas) + other.starting
            used_vcpus += count * vcpus_for(other.generation.spec.compute, self.cores)
            used_memory += count * limit_mb(other.generation.spec.compute, self.memory_mb)
        room = min(
            math.floor((self.vcpu_budget - used_vcpus) / vcpus), math.floor((self.memory_budget_mb - used_memory) / memory)
        )
        floor = max(1, generation.policy.min_replicas if generation.policy is not None else 1)
        return min(desired, max(room, floor))

    def describe(self) -> str:
        """The cap's reason, as an event says it."""
        return (
            f"{self.cores} cores x {self.cpu_oversubscription:g} and {self.memory_budget_mb:.0f} MB of memory for replicas"
        )
