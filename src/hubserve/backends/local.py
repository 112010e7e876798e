"""Replicas as local worker processes, each on its own Unix socket.

Replicas start in their own session so a Ctrl-C in the server's terminal reaches only the
server, which then stops them in order; they exit by themselves if the server dies.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from hubserve.backends.base import ReplicaHandle, ReplicaLaunch, ReplicaStartFailed
from hubserve.backends.channel import ReplicaChannel

_POLL_S = 0.02


class LocalBackend:
    """Starts `python -m hubserve.worker` processes; logs go under ``logs_dir/<endpoint>/``."""

    def __init__(self, logs_dir: Path) -> None:
        self._logs_dir = logs_dir
        # Unix socket paths are limited to ~108 bytes, so they live in a short temp folder.
        self._sockets_dir = Path(tempfile.mkdtemp(prefix="hubserve-"))
        self._processes: dict[str, asyncio.subprocess.Process] = {}

    def _socket_path(self, replica_id: str) -> Path:
        return self._sockets_dir / f"{replica_id}.sock"

    def _error_path(self, replica_id: str) -> Path:
        return self._sockets_dir / f"{replica_id}.error.json"

    async def start(self, replica_id: str, launch: ReplicaLaunch) -> ReplicaHandle:
        log_dir = self._logs_dir / launch.endpoint
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{replica_id}.log"
        command = [
            sys.executable, "-m", "hubserve.worker",
            "--socket", str(self._socket_path(replica_id)),
            "--model-dir", str(launch.model_dir),
            "--task", launch.task,
            "--dtype", launch.dtype,
            "--device", launch.device,
            "--threads", str(launch.threads),
            "--error-file", str(self._error_path(replica_id)),
        ]  # fmt: skip
        if launch.custom_code:
            command.append("--custom-code")
        env = {**os.environ, **launch.env, "OMP_NUM_THREADS": str(launch.threads), "HUBSERVE_REPLICA_ID": replica_id}
        with open(log_path, "ab") as log:
            process = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True
            )
        self._processes[replica_id] = process
        return ReplicaHandle(id=replica_id, launch=launch, log_path=log_path, pid=process.pid)

    async def wait_ready(self, handle: ReplicaHandle, timeout: float) -> ReplicaChannel:
        process = self._processes[handle.id]
        socket_path = self._socket_path(handle.id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise ReplicaStartFailed(self._failure_reason(handle, process.returncode))
            if socket_path.exists():
                try:
                    handle.channel = await ReplicaChannel.connect(str(socket_path), handle.id)
                    return handle.channel
                except (ConnectionRefusedError, FileNotFoundError):
                    pass
            await asyncio.sleep(_POLL_S)
        await self.stop(handle)
        raise ReplicaStartFailed(f"the replica did not become ready within {timeout:.0f}s; see {handle.log_path}")

    async def wait_exit(self, handle: ReplicaHandle) -> int:
        return await self._processes[handle.id].wait()

    async def stop(self, handle: ReplicaHandle, grace_s: float = 5.0) -> None:
        process = self._processes.get(handle.id)
        if handle.channel is not None:
            await handle.channel.close()
        if process is None:
            return
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace_s)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        self._processes.pop(handle.id, None)
        self._socket_path(handle.id).unlink(missing_ok=True)
        self._error_path(handle.id).unlink(missing_ok=True)

    def _failure_reason(self, handle: ReplicaHandle, returncode: int) -> str:
        error_path = self._error_path(handle.id)
        if error_path.exists():
            error = json.loads(error_path.read_text())
            return f"loading the model failed: {error['type']}: {error['message']}"
        tail = _tail(handle.log_path)
        return f"the replica exited with code {returncode} while starting: {tail}"

    async def close(self) -> None:
        shutil.rmtree(self._sockets_dir, ignore_errors=True)


def _tail(path: Path, max_chars: int = 500) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return "(no log)"
    return text[-max_chars:] if text else "(no output)"
