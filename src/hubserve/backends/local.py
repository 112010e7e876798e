"""Replicas as local processes, each on its own Unix socket.

By default a replica is a fork of the zygote (backends/zygote.py, worker/zygote.py), a process
that imported torch and transformers once, so it starts in well under a second. With
``zygote=False``, or when the zygote cannot run, or when an endpoint sets environment variables
that libraries read at import time (the zygote imported them with the server's environment),
a replica is a fresh ``python -m hubserve.worker`` process instead. A scikit-learn model's replica
is a fork of a second, light zygote that imported scikit-learn and skops and cannot import torch
(started with the first such replica; benchmarks/tabular.py measures both starts).

Either way replicas run in their own session, so a Ctrl-C in the server's terminal reaches only
the server, which then stops them in order; they exit by themselves if the server dies.

A replica gets its ``ReplicaLaunch`` as one ``--launch`` JSON argument (plus this backend's
socket, error, info and phase files and its CPUs) and resolves and loads its model itself; a
failure to do so comes back through the error file as ``ReplicaStartFailed``'s reason, and each
step of its start (one JSON line appended to the phase file) goes to ``wait_ready``'s
``on_phase`` as the replica begins it. Pids stay in here:
callers see ``Replica.placement`` ("pid 1234") and ask ``health`` and ``resources`` (read from
/proc, backends/procfs.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import msgspec

from hubserve.backends import isolation, procfs
from hubserve.backends.base import Replica, ReplicaHealth, ReplicaStartFailed, Resources
from hubserve.backends.channel import SocketChannel
from hubserve.backends.zygote import Zygote, ZygoteUnavailable
from hubserve.types import Channel
from hubserve.worker.launch import ReplicaLaunch, encode_launch
from hubserve.worker.sandbox import RUN_AS_FLAG, scrubbed_environment

log = logging.getLogger("hubserve.backends.local")

_POLL_S = 0.005  # how often wait_ready looks for the socket: a forked replica is ready in ~0.3 s
# Environment variables read when a library is imported (or by the interpreter and the C
# runtime at start-up): an endpoint that sets one gets a fresh process, where they take effect.
IMPORT_TIME_ENV_PREFIXES = (
    "PYTHON", "LD_", "MALLOC_", "OMP_", "KMP_", "GOMP_", "MKL_", "OPENBLAS_", "TORCH", "PYTORCH_",
    "HF_", "HUGGINGFACE_", "TRANSFORMERS_", "SENTENCE_TRANSFORMERS_",
)  # fmt: skip
_ZYGOTE_MAX_STARTS = 3  # a zygote that keeps dying is given up on; replicas start fresh processes


class _Process(Protocol):
    """What the backend needs of a replica process: asyncio's Process and ZygoteChild both fit."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    def send_signal(self, signum: int) -> None: ...

    def kill(self) -> None: ...


class LocalBackend:
    """Starts replicas on this machine; logs go under ``logs_dir/<endpoint>/``.

    ``zygote=True`` (the default) starts the zygote now, in the background, and forks replicas
    from it; ``zygote_ready_timeout_s`` bounds how long a start waits for its imports.
    """

    def __init__(
        self,
        logs_dir: Path,
        *,
        zygote: bool = True,
        zygote_ready_timeout_s: float = 180.0,
        replica_user: str | None = None,
        listen_host: str | None = None,
    ) -> None:
        self._logs_dir = logs_dir
        # None: replicas listen on Unix sockets (the default); a host: on TCP there, any free port (Ray's node agent).
        self._listen_host = listen_host
        self._addresses: dict[str, tuple[str, int]] = {}
        # None or "": replicas run as the server's user; a name: each replica switches to it (the server is root).
        self._replica_user = replica_user or None
        self._replica_ids = isolation.replica_ids(self._replica_user)
        # Unix socket paths are limited to ~108 bytes, so they live in a short temp folder.
        self._sockets_dir = Path(tempfile.mkdtemp(prefix="hubserve-"))
        self._processes: dict[str, _Process] = {}
        self._notes: dict[str, str] = {}  # replica id -> what its start met (a dead zygote), told by wait_ready
        self._cpus = sorted(os.sched_getaffinity(0))
        self._next_cpu = 0
        self._use_zygote = zygote
        self._zygote_ready_timeout_s = zygote_ready_timeout_s
        self._zygote_starts = 0
        self._zygote: Zygote | None = None
        self._zygote_lock: asyncio.Lock | None = None
        # scikit-learn replicas' zygote: started with the first such replica, so a server without one never pays
        self._light_zygote: Zygote | None = None
        self._light_lock: asyncio.Lock | None = None
        self._light_starts = 0
        self._use_light_zygote = zygote
        if zygote:
            self._zygote = self._start_zygote()

    @property
    def zygote_pid(self) -> int | None:
        """The running zygote's pid (None when replicas start as fresh processes)."""
        return self._zygote.pid if self._zygote is not None and self._zygote.alive else None

    async def wait_zygote(self) -> bool:
        """Wait until the zygote has done its imports; False when replicas will start as fresh processes."""
        if not self._use_zygote:
            return False
        try:
            await self._ready_zygote()
        except ZygoteUnavailable:
            return False
        return True

    def _replica_dir(self, replica_id: str) -> Path:
        """The one folder a replica writes besides its log: its socket, error, info and phase files."""
        return self._sockets_dir / replica_id

    def _socket_path(self, replica_id: str) -> Path:
        return self._replica_dir(replica_id) / "replica.sock"

    def _address_path(self, replica_id: str) -> Path:
        return self._replica_dir(replica_id) / "address"

    def address(self, replica: Replica) -> tuple[str, int] | None:
        """Where a TCP replica listens, once ready (None for a Unix-socket replica or before)."""
        return self._addresses.get(replica.id)

    def _error_path(self, replica_id: str) -> Path:
        return self._replica_dir(replica_id) / "error.json"

    def _info_path(self, replica_id: str) -> Path:
        return self._replica_dir(replica_id) / "info.json"

    def _phase_path(self, replica_id: str) -> Path:
        return self._replica_dir(replica_id) / "phases.jsonl"

    async def start(self, replica_id: str, launch: ReplicaLaunch) -> Replica:
        log_dir = self._logs_dir / launch.endpoint
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{replica_id}.log"
        isolation.own_folder(self._replica_dir(replica_id), self._replica_ids)
        if self._listen_host is None:
            where = ["--socket", str(self._socket_path(replica_id))]
        else:
            where = ["--listen", f"{self._listen_host}:0", "--address-file", str(self._address_path(replica_id))]
        argv = [
            *where,
            "--error-file", str(self._error_path(replica_id)),
            "--info-file", str(self._info_path(replica_id)),
            "--phase-file", str(self._phase_path(replica_id)),
        ]  # fmt: skip
        if self._replica_user:
            argv += [RUN_AS_FLAG, self._replica_user]
        # The endpoint's env goes into the process environment (readable only by its owner), never onto the
        # command line, which any local user can read in /proc. Last: a line cut short for display keeps the rest.
        launch_arg = ["--launch", encode_launch(msgspec.structs.replace(launch, env={}))]
        # Only what the endpoint sets itself is added to the zygote's (already scrubbed) environment.
        env = {**launch.env, "OMP_NUM_THREADS": str(launch.threads), "HUBSERVE_REPLICA_ID": replica_id}
        cpus = self._pick_cpus(launch.threads)
        process: _Process | None = None
        ready_zygote = self._zygote_for(launch)
        if ready_zygote is not None:
            dead = self._dead_zygote(launch)
            try:
                zygote = await ready_zygote()
                process = await zygote.spawn(replica_id, argv + launch_arg, env, log_path, cpus)
            except ZygoteUnavailable as exc:
                self._note(replica_id, f"the zygote is unavailable ({exc}): starting as a fresh process")
            else:
                if dead is not None and zygote.pid != dead:
                    took = f", whose imports took {zygote.preload_s:.1f} s" if zygote.preload_s is not None else ""
                    self._note(
                        replica_id, f"the zygote (pid {dead}) had exited: started a new one (pid {zygote.pid}){took}"
                    )
        if process is None:
            if cpus:
                argv += ["--cpus", ",".join(map(str, cpus))]
            with open(log_path, "ab") as log_file:  # noqa: ASYNC230 (an append-open: microseconds, no I/O wait)
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "hubserve.worker", *argv, *launch_arg,
                    stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                    env=scrubbed_environment(os.environ, env), start_new_session=True,
                )  # fmt: skip
        self._processes[replica_id] = process
        return Replica(id=replica_id, launch=launch, log_location=str(log_path), placement=f"pid {process.pid}")

    async def wait_ready(
        self, replica: Replica, timeout: float, on_phase: Callable[[str], None] | None = None
    ) -> Channel:
        process = self._processes[replica.id]
        socket_path = self._socket_path(replica.id)
        address_path = self._address_path(replica.id)
        phases = _PhaseReader(self._phase_path(replica.id), on_phase)
        note = self._notes.pop(replica.id, None)
        if note is not None and on_phase is not None:
            on_phase(note)  # an event of the endpoint: why this start took longer or went another way
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            phases.read()  # before the socket: the last step is heard even when the replica is ready at once
            if process.returncode is not None:
                raise ReplicaStartFailed(self._failure_reason(replica, process.returncode))
            if socket_path.exists() or address_path.exists():
                try:
                    channel = await self._connect(replica)
                except (ConnectionRefusedError, FileNotFoundError):
                    pass
                else:
                    replica.channel = channel
                    info_path = self._info_path(replica.id)
                    if info_path.exists():
                        replica.info = json.loads(info_path.read_text())
                    return channel
            await asyncio.sleep(_POLL_S)
        await self.stop(replica)
        raise ReplicaStartFailed(f"the replica did not become ready within {timeout:.0f}s; see {replica.log_location}")

    async def _connect(self, replica: Replica) -> SocketChannel:
        if self._listen_host is None:
            return await SocketChannel.connect(str(self._socket_path(replica.id)), replica.id)
        host, _, port = self._address_path(replica.id).read_text().rpartition(":")
        channel = await SocketChannel.connect_tcp(host, int(port), replica.id)
        self._addresses[replica.id] = (host, int(port))
        return channel

    async def wait_exit(self, replica: Replica) -> int:
        process = self._processes[replica.id]
        code = await process.wait()
        isolation.kill_group(process.pid)  # a replica that died leaves no children serving nobody
        return code

    async def stop(self, replica: Replica, grace_s: float = 5.0) -> None:
        process = self._processes.get(replica.id)
        if replica.channel is not None:
            await replica.channel.close()
        if process is None:
            return
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace_s)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        # The replica leads its own process group: whatever it forked and left behind goes with it.
        isolation.kill_group(process.pid)
        self._processes.pop(replica.id, None)
        self._addresses.pop(replica.id, None)
        self._notes.pop(replica.id, None)
        shutil.rmtree(self._replica_dir(replica.id), ignore_errors=True)

    def health(self, replica: Replica) -> ReplicaHealth:
        """EXITED once the process is gone (or stopped) or its channel closed; READY while the channel serves."""
        process = self._processes.get(replica.id)
        if process is None or process.returncode is not None:
            return ReplicaHealth.EXITED
        if replica.channel is None:
            return ReplicaHealth.STARTING
        return ReplicaHealth.EXITED if replica.channel.closed else ReplicaHealth.READY

    def resources(self, replica: Replica) -> Resources | None:
        """Resident memory and CPU time from /proc; None once the process is gone (or a zombie)."""
        process = self._processes.get(replica.id)
        if process is None or process.returncode is not None:
            return None
        memory_mb, cpu_seconds = procfs.rss_mb(process.pid), procfs.cpu_seconds(process.pid)
        if memory_mb is None or cpu_seconds is None:
            return None
        return Resources(memory_mb=memory_mb, cpu_seconds=cpu_seconds)

    def _failure_reason(self, replica: Replica, returncode: int) -> str:
        """What the user reads: the replica's own error (source, task or load), else its log's tail."""
        error_path = self._error_path(replica.id)
        if error_path.exists():
            error = json.loads(error_path.read_text())
            if error.get("phase", "load") == "load":
                return f"loading the model failed: {error['type']}: {error['message']}"
            return str(error["message"])  # SourceError, task inference: the message says what to change
        tail = _tail(Path(replica.log_location))
        return f"the replica exited with code {returncode} while starting: {tail}"

    async def close(self) -> None:
        if self._zygote is not None:
            await self._zygote.close()
        if self._light_zygote is not None:
            await self._light_zygote.close()
        shutil.rmtree(self._sockets_dir, ignore_errors=True)

    # --- placement and the zygote ----------------------------------------------------------

    def _pick_cpus(self, threads: int) -> list[int]:
        """CPUs for a replica of ``threads`` threads, round-robin; [] (no pinning) if it wants them all."""
        count = min(max(1, threads), len(self._cpus))
        if count >= len(self._cpus):
            return []
        picked = [self._cpus[(self._next_cpu + i) % len(self._cpus)] for i in range(count)]
        self._next_cpu = (self._next_cpu + count) % len(self._cpus)
        return sorted(picked)

    def _zygote_for(self, launch: ReplicaLaunch) -> Callable[[], Awaitable[Zygote]] | None:
        """Which zygote forks this replica: the light one for a scikit-learn model (no torch), else the zygote;
        None: a fresh process."""
        if not self._forkable(launch):
            return None
        if launch.framework == "sklearn" and not launch.multi_model:
            return self._ready_light_zygote if self._use_light_zygote else None
        return self._ready_zygote

    def _forkable(self, launch: ReplicaLaunch) -> bool:
        if not self._use_zygote:
            return False
        late = sorted(name for name in launch.env if name.upper().startswith(IMPORT_TIME_ENV_PREFIXES))
        if late:
            log.info(
                "endpoint %s sets %s, read at import time: its replicas start fresh", launch.endpoint, ", ".join(late)
            )
        return not late

    def _dead_zygote(self, launch: ReplicaLaunch) -> int | None:
        """The pid of the zygote that would fork this replica if it was ready once and has died since, else None."""
        light = launch.framework == "sklearn" and not launch.multi_model
        zygote = self._light_zygote if light else self._zygote
        return zygote.pid if zygote is not None and zygote.was_ready and not zygote.alive else None

    def _note(self, replica_id: str, text: str) -> None:
        log.warning("replica %s: %s", replica_id, text)
        self._notes[replica_id] = text

    def _start_zygote(self) -> Zygote:
        self._zygote_starts += 1
        return Zygote(self._logs_dir / "zygote.log")

    async def _ready_zygote(self) -> Zygote:
        """The running zygote, started again if it died after it was ready, once its imports are done."""
        if self._zygote_lock is None:
            self._zygote_lock = asyncio.Lock()
        async with self._zygote_lock:
            if self._zygote is None or not self._zygote.alive:
                dead = self._zygote
                if dead is not None:
                    await dead.close()
                if dead is not None and not dead.was_ready:
                    self._use_zygote = False  # it died importing: it would again, so fresh processes from now on
                    raise ZygoteUnavailable(f"the zygote exited while importing; see {dead.log_path}")
                if self._zygote_starts >= _ZYGOTE_MAX_STARTS:
                    self._use_zygote = False
                    raise ZygoteUnavailable(f"the zygote exited {_ZYGOTE_MAX_STARTS} times; see its log")
                self._zygote = self._start_zygote()
            zygote = self._zygote
        try:
            await zygote.ready(self._zygote_ready_timeout_s)
        except ZygoteUnavailable:
            if not zygote.alive:
                self._use_zygote = False  # it died importing: it would again, so fresh processes from now on
            raise
        return zygote

    async def _ready_light_zygote(self) -> Zygote:
        """The scikit-learn replicas' zygote, started on first use and again if it died after it was ready."""
        if self._light_lock is None:
            self._light_lock = asyncio.Lock()
        async with self._light_lock:
            if self._light_zygote is None or not self._light_zygote.alive:
                dead = self._light_zygote
                if dead is not None:
                    await dead.close()
                if (dead is not None and not dead.was_ready) or self._light_starts >= _ZYGOTE_MAX_STARTS:
                    self._use_light_zygote = False  # it would die again: fresh processes from now on
                    raise ZygoteUnavailable("the scikit-learn zygote exited; see zygote-light.log")
                self._light_starts += 1
                self._light_zygote = Zygote(self._logs_dir / "zygote-light.log", light=True)
            zygote = self._light_zygote
        try:
            await zygote.ready(self._zygote_ready_timeout_s)
        except ZygoteUnavailable:
            if not zygote.alive:
                self._use_light_zygote = False
            raise
        return zygote


class _PhaseReader:
    """The replica's phase file, read from where the last read stopped: each whole new line once."""

    def __init__(self, path: Path, on_phase: Callable[[str], None] | None) -> None:
        self._path = path
        self._on_phase = on_phase
        self._offset = 0

    def read(self) -> None:
        if self._on_phase is None:
            return
        try:
            with open(self._path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except OSError:
            return  # not written yet
        whole = data[: data.rfind(b"\n") + 1]
        self._offset += len(whole)
        for line in whole.splitlines():
            try:
                phase = json.loads(line)["phase"]
            except (ValueError, KeyError, TypeError):
                continue
            try:
                self._on_phase(str(phase))
            except Exception:
                log.exception("on_phase failed for %s", self._path.name)


def _tail(path: Path, max_chars: int = 500) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return "(no log)"
    return text[-max_chars:] if text else "(no output)"
