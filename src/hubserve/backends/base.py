"""The seam between the controller and wherever replicas run (local processes today, Ray later)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol

from hubserve.backends.channel import ReplicaChannel


class ReplicaStartFailed(Exception):
    """The replica exited before it was ready; ``reason`` is what the user should read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class ReplicaLaunch:
    """Everything a replica needs to load and serve one endpoint's model."""

    endpoint: str
    model_dir: Path
    task: str
    custom_code: bool = False
    dtype: str = "auto"
    device: str = "cpu"
    threads: int = 1
    runtime: str = "torch"
    cache_dir: Path | None = None  # where exported/quantized runtimes are cached, keyed by content
    max_batch_size: int | None = None
    max_batch_tokens: int | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(eq=False)
class ReplicaHandle:
    """A started replica: its id, where it logs, and (once ready) the channel to it."""

    id: str
    launch: ReplicaLaunch
    log_path: Path
    pid: int | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)  # what the replica reported at start
    channel: ReplicaChannel | None = None


class Backend(Protocol):
    async def start(self, replica_id: str, launch: ReplicaLaunch) -> ReplicaHandle:
        """Start a replica; returns at once, before the model is loaded."""

    async def wait_ready(self, handle: ReplicaHandle, timeout: float) -> ReplicaChannel:
        """Wait until the replica serves; raise ReplicaStartFailed with the reason if it cannot."""

    async def wait_exit(self, handle: ReplicaHandle) -> int:
        """Wait until the replica exits; returns its exit code."""

    async def stop(self, handle: ReplicaHandle, grace_s: float = 5.0) -> None:
        """Stop the replica (SIGTERM, then SIGKILL after grace_s)."""

    async def close(self) -> None:
        """Release what the backend holds (sockets folder)."""
