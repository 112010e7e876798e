"""A replica that listens on TCP (``--listen HOST:0``), as Ray's node agents start them, without Ray.

The local backend in TCP mode starts a fresh replica process; the address it bound is read from
its address file, and the same ``SocketChannel`` answers over TCP.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hubserve.backends import LocalBackend, ReplicaLaunch
from hubserve.types import Invocation


async def _serve_once(logs: Path, model: Path) -> tuple[tuple[str, int] | None, bytes]:
    backend = LocalBackend(logs, zygote=False, listen_host="127.0.0.1")
    try:
        replica = await backend.start(
            "tcp-1", ReplicaLaunch(endpoint="tcp", source=str(model), task="text-classification")
        )
        channel = await backend.wait_ready(replica, timeout=120)
        reply = await channel.call(Invocation(endpoint="tcp", body=json.dumps({"inputs": "over tcp"}).encode()))
        address = backend.address(replica)
        await backend.stop(replica)
        return address, reply.body
    finally:
        await backend.close()


def test_a_replica_serves_over_tcp(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    address, body = asyncio.run(_serve_once(tmp_path / "logs", tiny_models["text-classification"]))
    assert address is not None and address[0] == "127.0.0.1" and address[1] > 0
    assert "label" in json.loads(body)[0]
