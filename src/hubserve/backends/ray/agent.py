"""The node agent: one Ray actor per node that starts, watches and stops that node's replicas.

It holds a ``LocalBackend`` whose replicas listen on TCP on the node's IP, so the zygote idea
carries over unchanged: each node's agent starts one zygote (torch imported once per node) and
forks its replicas from it. The server talks to replicas directly over TCP (``SocketChannel``);
the agent only starts them, reports where they listen, their exit, their memory and CPU
(procfs on its node) and the bytes of their logs, which the server copies home.

The agent's folder (logs, the zygote's log) is node-local, under the system temp folder and
keyed by node id, so two nodes on one machine (the tests) do not share it; its logs are kept per
server (agents are named per server, so two servers on one cluster never share one), the model
cache per node.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

from hubserve.backends.base import Replica, ReplicaStartFailed
from hubserve.backends.local import LocalBackend
from hubserve.backends.ray import models
from hubserve.worker.launch import decode_launch

_LOG_CHUNK = 1 << 20  # at most this many log bytes per replica per read


class NodeAgent:
    """Starts replicas on its node; every method takes and returns plain data (Ray pickles it)."""

    def __init__(self, node_id: str, node_ip: str, zygote: bool = True, owner: str = "") -> None:
        self.node_id = node_id
        self.node_ip = node_ip
        self.home = Path(tempfile.gettempdir()) / f"hubserve-node-{node_id[:12]}"
        self.home.mkdir(parents=True, exist_ok=True)
        # Logs per server (``owner``): two servers' agents on one node may start replicas of the same names.
        logs = self.home / "logs" / owner if owner else self.home / "logs"
        self._backend = LocalBackend(logs, zygote=zygote, listen_host=node_ip)
        self._replicas: dict[str, Replica] = {}
        self._phases: dict[str, list[str]] = {}  # each replica's start phases, as heard while it starts
        self.models_dir = self.home / "models"
        self.models_dir.mkdir(exist_ok=True)

    async def model_folder(self, key: str) -> str | None:
        """This node's copy of the model with content hash ``key``, None when it has none yet."""
        folder = self.models_dir / key
        return str(folder) if folder.is_dir() else None

    async def receive_model(self, key: str, files: dict[str, bytes]) -> str:
        """Write a model's files (sent through the object store) into this node's cache; returns the folder."""
        return str(await asyncio.to_thread(models.unpack, files, self.models_dir, key))

    async def start(self, replica_id: str, launch_json: str) -> str:
        """Start one replica (a fork of this node's zygote); returns where it runs."""
        replica = await self._backend.start(replica_id, decode_launch(launch_json))
        self._replicas[replica_id] = replica
        return f"node {self.node_id[:12]} ({self.node_ip}, {replica.placement})"

    async def wait_ready(self, replica_id: str, timeout: float) -> dict[str, Any]:
        """``{"host", "port", "info"}`` once it serves, or ``{"error": reason}`` (no exception crosses Ray)."""
        replica = self._replicas[replica_id]
        heard = self._phases.setdefault(replica_id, [])
        try:
            channel = await self._backend.wait_ready(replica, timeout, heard.append)
        except ReplicaStartFailed as exc:
            return {"error": exc.reason}
        address = self._backend.address(replica)
        replica.channel = None
        await channel.close()  # the server opens its own connection; this one only proved it serves
        assert address is not None
        return {"host": address[0], "port": address[1], "info": replica.info}

    async def phases(self, replica_id: str, since: int) -> list[str]:
        """The start phases the replica began after the first ``since`` ones."""
        return self._phases.get(replica_id, [])[since:]

    async def wait_exit(self, replica_id: str) -> int:
        return await self._backend.wait_exit(self._replicas[replica_id])

    async def stop(self, replica_id: str, grace_s: float) -> None:
        replica = self._replicas.pop(replica_id, None)
        self._phases.pop(replica_id, None)
        if replica is not None:
            await self._backend.stop(replica, grace_s)

    async def resources(self) -> dict[str, tuple[float, float]]:
        """Memory (MB) and CPU seconds of each live replica on this node."""
        measured = {}
        for replica_id, replica in self._replicas.items():
            resources = self._backend.resources(replica)
            if resources is not None:
                measured[replica_id] = (resources.memory_mb, resources.cpu_seconds)
        return measured

    async def read_logs(self, offsets: dict[str, int]) -> dict[str, bytes]:
        """New bytes of each replica's log from its offset (the server keeps the offsets)."""
        chunks = {}
        for replica_id, offset in offsets.items():
            replica = self._replicas.get(replica_id)
            path = Path(replica.log_location) if replica is not None else None
            if path is None:
                continue
            chunk = await asyncio.to_thread(_read_from, path, offset)
            if chunk:
                chunks[replica_id] = chunk
        return chunks

    async def ping(self) -> int:
        return os.getpid()

    async def close(self) -> None:
        for replica in list(self._replicas.values()):
            await self._backend.stop(replica, 1.0)
        self._replicas.clear()
        await self._backend.close()


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(_LOG_CHUNK)
    except OSError:
        return b""
