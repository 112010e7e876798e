"""The server's side of the zygote (worker/zygote.py): start it, ask it to fork replicas, hear their exits.

The zygote process starts when the backend is built, so its imports (seconds) overlap with the
server's own start; the first replica start waits until it is ready. Replicas it forks are its
children, not the server's, so their exit codes arrive as ``Exited`` frames, and signals to
them go through the zygote, which has not reaped them yet and so cannot hit a reused pid.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from hubserve.worker.protocol import (
    Exited,
    FrameBuffer,
    Kill,
    Spawn,
    Spawned,
    ZygoteEvent,
    ZygoteReady,
    decode_zygote_event,
    encode_control_frame,
)
from hubserve.worker.sandbox import scrubbed_environment
from hubserve.worker.zygote import ARGV_ROOM, LIGHT_FLAG

log = logging.getLogger("hubserve.backends.zygote")

_GONE_POLL_S = 0.1
_SPAWN_TIMEOUT_S = 30.0  # a fork takes milliseconds; a zygote that does not answer is treated as gone


class ZygoteUnavailable(Exception):
    """The zygote could not start or died; the backend falls back to fresh processes."""


class ZygoteChild:
    """A replica forked by the zygote; mirrors the parts of asyncio.subprocess.Process we use."""

    def __init__(self, zygote: Zygote, replica_id: str, pid: int) -> None:
        self.replica_id = replica_id
        self.pid = pid
        self._zygote = zygote
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def send_signal(self, signum: int) -> None:
        if not self._exited.done():
            self._zygote.kill(self, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _set_exit(self, code: int) -> None:
        if not self._exited.done():
            self._exited.set_result(code)


class Zygote:
    """One zygote process and its control pipe; spawns are answered in order."""

    def __init__(self, log_path: Path, light: bool = False) -> None:
        """``light``: the zygote of scikit-learn replicas, which imports scikit-learn and skops and never torch."""
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "hubserve.worker.zygote", *([LIGHT_FLAG] if light else []), " " * ARGV_ROOM],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, start_new_session=True,
                env=scrubbed_environment(os.environ, {}),  # no token or credential reaches the zygote or its forks
            )  # fmt: skip
        self.pid = self._process.pid
        self.preload_s: float | None = None
        self._frames = FrameBuffer()
        self._children: dict[str, ZygoteChild] = {}
        self._spawning: dict[str, asyncio.Future[ZygoteChild]] = {}
        self._ready: asyncio.Future[ZygoteReady] | None = None
        self._writer: asyncio.WriteTransport | None = None
        self._reader: asyncio.ReadTransport | None = None
        self._gone = False
        self._orphan_watches: set[asyncio.Task[None]] = set()  # held here: the loop keeps only weak references
        self._attaching: asyncio.Lock | None = None

    @property
    def alive(self) -> bool:
        return not self._gone and self._process.poll() is None

    @property
    def was_ready(self) -> bool:
        """Whether it ever finished its imports (one that died before that will not do better next time)."""
        return self._ready is not None and self._ready.done() and self._ready.exception() is None

    async def ready(self, timeout: float) -> None:
        """Wait until the zygote has imported everything; ZygoteUnavailable if it cannot."""
        await self._attach()
        assert self._ready is not None
        try:
            ready = await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except asyncio.TimeoutError:
            raise ZygoteUnavailable(f"the zygote was not ready within {timeout:.0f}s; see {self.log_path}") from None
        self.preload_s = ready.preload_s

    async def spawn(self, replica_id: str, argv: list[str], env: dict[str, str], log_path: Path, cpus: list[int]) -> ZygoteChild:
        """Fork one replica; returns once the zygote reports its pid."""
        if not self.alive or self._writer is None:
            raise ZygoteUnavailable("the zygote is not running")
        future: asyncio.Future[ZygoteChild] = asyncio.get_running_loop().create_future()
        self._spawning[replica_id] = future
        self._writer.write(encode_control_frame(Spawn(replica_id, argv, env, str(log_path), cpus)))
        try:
            return await asyncio.wait_for(future, _SPAWN_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise ZygoteUnavailable(f"the zygote did not fork within {_SPAWN_TIMEOUT_S:.0f}s") from None
        finally:
            self._spawning.pop(replica_id, None)

    def kill(self, child: ZygoteChild, signum: int) -> None:
        if self.alive and self._writer is not None and not self._writer.is_closing():
            self._writer.write(encode_control_frame(Kill(child.replica_id, int(signum))))
            return
        try:  # the zygote is gone, so the replica is nobody's child of ours: signal it directly
            os.kill(child.pid, signum)
        except ProcessLookupError:
            pass

    async def close(self, timeout: float = 5.0) -> None:
        """Close the control pipe (the zygote exits on EOF) and reap the zygote."""
        # Still importing, so it has no replicas and reads no pipe yet: no need to wait for it.
        if (self._ready is None or not self._ready.done()) and self._process.poll() is None:
            self._process.terminate()
        if self._writer is not None:
            self._writer.close()
        elif self._process.stdin is not None:
            self._process.stdin.close()
        try:
            await asyncio.wait_for(asyncio.to_thread(self._process.wait), timeout)
        except asyncio.TimeoutError:
            self._process.kill()
            await asyncio.to_thread(self._process.wait)
        if self._reader is not None:
            self._reader.close()
        self._lost()

    # --- the pipe -----------------------------------------------------------------------------

    async def _attach(self) -> None:
        """Connect the pipes to the running event loop (once; the constructor may run without one)."""
        if self._attaching is None:
            self._attaching = asyncio.Lock()
        async with self._attaching:
            if self._ready is not None:
                return
            loop = asyncio.get_running_loop()
            self._ready = loop.create_future()
            assert self._process.stdin is not None and self._process.stdout is not None
            self._writer, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, self._process.stdin)
            self._reader, _ = await loop.connect_read_pipe(lambda: _EventProtocol(self), self._process.stdout)

    def _received(self, data: bytes) -> None:
        for payload in self._frames.feed(data):
            self._dispatch(decode_zygote_event(payload))

    def _dispatch(self, event: ZygoteEvent) -> None:
        if isinstance(event, ZygoteReady):
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(event)
            for skipped in event.skipped:
                log.info("zygote preload skipped %s", skipped)
        elif isinstance(event, Spawned):
            future = self._spawning.pop(event.replica_id, None)
            if future is None or future.done():
                if event.pid and self._writer is not None:  # nobody waits for it any more
                    self._writer.write(encode_control_frame(Kill(event.replica_id, signal.SIGKILL)))
                return
            if not event.pid:
                future.set_exception(ZygoteUnavailable(event.error or "the zygote could not fork"))
                return
            # Registered now, not when the spawner resumes: its Exited may be in this same read.
            child = ZygoteChild(self, event.replica_id, event.pid)
            self._children[event.replica_id] = child
            future.set_result(child)
        elif isinstance(event, Exited):
            exited = self._children.pop(event.replica_id, None)
            if exited is not None:
                exited._set_exit(event.code)

    def _lost(self) -> None:
        """The pipe closed: fail what waits on the zygote; replicas it left are watched by pid."""
        if self._gone:
            return
        self._gone = True
        failure = ZygoteUnavailable(f"the zygote exited; see {self.log_path}")
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(failure)
            self._ready.exception()  # retrieved here, so an unawaited failure is not logged as lost
        for future in self._spawning.values():
            if not future.done():
                future.set_exception(failure)
        self._spawning.clear()
        loop = asyncio.get_running_loop()
        for child in self._children.values():
            watch = loop.create_task(_watch_orphan(child))
            self._orphan_watches.add(watch)
            watch.add_done_callback(self._orphan_watches.discard)
        self._children.clear()


class _EventProtocol(asyncio.Protocol):
    def __init__(self, zygote: Zygote) -> None:
        self._zygote = zygote

    def data_received(self, data: bytes) -> None:
        self._zygote._received(data)

    def eof_received(self) -> bool:
        self._zygote._lost()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._zygote._lost()


async def _watch_orphan(child: ZygoteChild) -> None:
    """A replica whose zygote died exits by itself (it watches its parent); wait for that.

    Its exit code went to whoever reaped it, so it is reported as -SIGKILL.
    """
    while True:
        try:
            with open(f"/proc/{child.pid}/stat") as stat:  # noqa: ASYNC230 (procfs: never blocks)
                if stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    break
        except (FileNotFoundError, ProcessLookupError, IndexError):
            break
        await asyncio.sleep(_GONE_POLL_S)
    child._set_exit(-signal.SIGKILL)
