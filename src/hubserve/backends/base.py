"""The seam between control and wherever replicas run (local processes today, Ray actors next).

A backend starts a replica for a ``ReplicaLaunch``, hands back a ``Channel`` to it once it
serves, stops it, and reports what only it can know: whether the replica is alive, what it uses
(memory, CPU) and where its log is. Nothing above this seam reads a pid or ``/proc``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any, Protocol

from hubserve.types import Channel
from hubserve.worker.launch import ReplicaLaunch


class ReplicaStartFailed(Exception):
    """The replica exited before it was ready; ``reason`` is what the user should read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ReplicaHealth(str, enum.Enum):
    STARTING = "starting"
    READY = "ready"
    EXITED = "exited"


@dataclasses.dataclass(frozen=True, slots=True)
class Resources:
    """What a replica uses right now, as its backend measures it."""

    memory_mb: float  # resident memory
    cpu_seconds: float  # user + system CPU time since it started


@dataclasses.dataclass(eq=False)
class Replica:
    """A started replica: its id, where it runs and logs, and (once ready) the channel to it."""

    id: str
    launch: ReplicaLaunch
    log_location: str  # a path (local) or URL where its output is kept
    placement: str = ""  # where it runs, for events: "pid 1234" locally, a node on Ray
    info: dict[str, Any] = dataclasses.field(default_factory=dict)  # what the replica reported at start
    channel: Channel | None = None


class Backend(Protocol):
    async def start(self, replica_id: str, launch: ReplicaLaunch) -> Replica:
        """Start a replica; returns at once, before the model is loaded."""
        ...

    async def wait_ready(self, replica: Replica, timeout: float, on_phase: Callable[[str], None] | None = None) -> Channel:
        """Wait until the replica serves; raise ReplicaStartFailed with the reason if it cannot.

        ``on_phase`` hears each step of the replica's start as it begins, in order
        (``exporting to ONNX (step 1 of 4)``: models.progress), so a long start is visible.
        """
        ...

    async def wait_exit(self, replica: Replica) -> int:
        """Wait until the replica exits; returns its exit code."""
        ...

    async def stop(self, replica: Replica, grace_s: float = 5.0) -> None:
        """Stop the replica (ask it to exit, force it after grace_s)."""
        ...

    def health(self, replica: Replica) -> ReplicaHealth: ...

    def resources(self, replica: Replica) -> Resources | None:
        """Memory and CPU the replica uses now; None when it cannot be measured (gone)."""
        ...

    async def close(self) -> None:
        """Release what the backend holds (the zygote, sockets)."""
        ...
