"""What a replica's lease reserves on a Ray node (CPUs, memory, GPUs), and whether any node could hold it.

Ray's scheduler places a lease only on a node whose resources cover all three, so the compute
spec's memory decides placement as its CPUs do. A request no alive node could ever satisfy is not
refused by Ray: the lease stays pending forever (an "infeasible" task). ``infeasible`` says so up
front, naming what was asked and what each node has, so the endpoint fails with a reason instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hubserve.worker.launch import ReplicaLaunch

_MB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Wanted:
    """One replica's reservation: Ray's ``num_cpus``, ``memory`` (bytes) and ``num_gpus``."""

    cpus: int
    memory_bytes: int  # 0: memory is not reserved
    gpus: int

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.cpus}
        if self.memory_bytes:
            options["memory"] = self.memory_bytes
        if self.gpus:
            options["num_gpus"] = self.gpus
        return options

    def describe(self) -> str:
        parts = [f"{self.cpus} CPU{'s' if self.cpus != 1 else ''}"]
        if self.memory_bytes:
            parts.append(f"{self.memory_bytes // _MB} MB of memory")
        if self.gpus:
            parts.append(f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}")
        return ", ".join(parts)


def memory_mb(launch: ReplicaLaunch) -> int | None:
    """The replica's policed memory size in MB (the compute spec's, capped by the server's machine).

    The launch carries it as a field when it has one (``memory_mb``); until then it is recovered
    from the memory backstop control derives from it (``control.memory.backstop_mb``:
    ``limit + max(2048, limit)``). None for a ``cuda`` replica, which has no backstop.
    """
    explicit = getattr(launch, "memory_mb", None)
    if isinstance(explicit, int):
        return explicit
    backstop = launch.memory_backstop_mb
    if backstop is None:
        return None
    return backstop // 2 if backstop >= 4096 else max(0, backstop - 2048)


def wanted(launch: ReplicaLaunch) -> Wanted:
    memory = memory_mb(launch)
    return Wanted(
        cpus=max(1, launch.threads),
        memory_bytes=memory * _MB if memory else 0,
        gpus=1 if launch.device.startswith("cuda") else 0,
    )


def infeasible(want: Wanted, nodes: list[dict[str, Any]]) -> str | None:
    """None when some alive node's total resources cover ``want``; else why no node can (the nodes' figures)."""
    alive = [node for node in nodes if node.get("Alive")]
    for node in alive:
        total = node.get("Resources", {})
        if (
            total.get("CPU", 0) >= want.cpus
            and total.get("memory", 0) >= want.memory_bytes
            and total.get("GPU", 0) >= want.gpus
        ):
            return None
    have = "; ".join(_describe_node(node) for node in alive) or "none is alive"
    return f"no Ray node can hold a replica that needs {want.describe()}: the nodes have {have}"


def _describe_node(node: dict[str, Any]) -> str:
    total = node.get("Resources", {})
    described = (
        f"node {str(node.get('NodeID', '?'))[:12]}: {total.get('CPU', 0):g} CPUs, "
        f"{int(total.get('memory', 0)) // _MB} MB of memory"
    )
    gpus = total.get("GPU", 0)
    return described + (f", {gpus:g} GPUs" if gpus else "")
