"""The gateway's side of one replica connection (``types.Channel``): many invocations in flight, matched by id.

``call`` waits for one ``End`` frame; ``stream`` yields the replica's ``Part`` frames and then a
final part built from the ``End``. An error ``End`` is raised as the error the replica reported
(``errors.from_type``); a dropped connection fails everything in flight with ReplicaCrashed.
Giving up on an invocation (cancelling the task awaiting ``call``, closing or cancelling a
``stream`` before its final part, or its ``deadline`` passing) sends a ``Cancel`` frame and
forgets the id: frames that still arrive for it are ignored. A deadline costs one timer handle
on the loop (no task): per call, or per part of a stream, where it bounds the wait for each part.
Past it, InvocationTimeout (the gateway rewrites its message: it knows which limit it was and
what becomes of the replica). A ``Stats`` frame (a replica's generation engine's levels) is
kept as ``stats``, the latest one, for the metrics sampler; a ``Models`` frame (a multi-model
replica's models) as ``models``, and the names it holds as ``holding``, which routing reads.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncGenerator

from hubserve.errors import InvocationTimeout, ReplicaCrashed, from_type
from hubserve.types import EngineStats, Invocation, Part, Reply
from hubserve.worker import protocol
from hubserve.worker.protocol import Cancel, End, Request, decode_frame, encode_frame, read_payload

# What a stream's queue carries: the replica's frames, or the error that ended the connection.
_StreamItem = protocol.Part | End | Exception


class SocketChannel:
    """One connection to a replica (a Unix socket, or TCP to another node), multiplexed so the replica can batch."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, replica_id: str) -> None:
        self.replica_id = replica_id
        self.where = ""  # where the replica runs, named when it is lost (the Ray backend: its node)
        self.stats: EngineStats | None = None  # the replica's generation engine, as last reported
        self.models: protocol.Models | None = None  # a multi-model replica's models, as last reported
        self._holding: set[str] = set()  # of those, loaded or loading, plus any sent to it since
        self._reader = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._ids = itertools.count(1)
        self._calls: dict[int, asyncio.Future[End]] = {}
        self._streams: dict[int, asyncio.Queue[_StreamItem]] = {}
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._read_task = self._loop.create_task(self._read_loop())

    @classmethod
    async def connect(cls, socket_path: str, replica_id: str) -> SocketChannel:
        reader, writer = await asyncio.open_unix_connection(socket_path, limit=1 << 20)
        return cls(reader, writer, replica_id)

    @classmethod
    async def connect_tcp(cls, host: str, port: int, replica_id: str) -> SocketChannel:
        """The same channel over TCP, to a replica on another node (the Ray backend)."""
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        sock = writer.get_extra_info("socket")
        if sock is not None:  # small frames (a cancel, a token) must not wait for Nagle
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, replica_id)

    @property
    def outstanding(self) -> int:
        return len(self._calls) + len(self._streams)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def holding(self) -> set[str]:
        return self._holding

    async def call(self, invocation: Invocation) -> Reply:
        """Send one invocation and wait for its answer; cancelling the caller cancels it in the replica."""
        request_id = self._send(invocation, stream=False)
        future: asyncio.Future[End] = self._loop.create_future()
        self._calls[request_id] = future
        timer = None
        if invocation.deadline is not None:  # time.monotonic(); uvloop's loop.time() is another clock
            timer = self._loop.call_later(max(0.0, invocation.deadline - time.monotonic()), _expire, future)
        try:
            end = await future
        except (asyncio.CancelledError, InvocationTimeout):
            self._cancel(request_id)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            del self._calls[request_id]
            self._maybe_idle()
        if not end.ok:
            raise from_type(end.error_type, end.error_message)
        return Reply(end.body, end.content_type)

    async def stream(self, invocation: Invocation) -> AsyncGenerator[Part, None]:
        """Send one invocation and yield its parts, the last one ``final``; closing early cancels it."""
        request_id = self._send(invocation, stream=True)
        queue: asyncio.Queue[_StreamItem] = asyncio.Queue()
        self._streams[request_id] = queue
        ended = False
        # A stream's deadline bounds the wait for each part: re-armed, as long again, after every part.
        gap = None if invocation.deadline is None else max(0.0, invocation.deadline - time.monotonic())
        expired = InvocationTimeout("the wait for the stream's next part passed its deadline; it was cancelled")
        timer: asyncio.TimerHandle | None = None
        try:
            while True:
                if gap is not None:
                    timer = self._loop.call_later(gap, queue.put_nowait, expired)
                item = await queue.get()
                if timer is not None:
                    timer.cancel()
                if isinstance(item, protocol.Part):
                    yield Part(item.body, item.content_type)
                    continue
                if item is expired:
                    raise item  # not ended: the finally cancels it in the replica
                ended = True
                self._forget_stream(request_id)  # no longer outstanding, even if the consumer stops here
                if isinstance(item, Exception):
                    raise item
                if not item.ok:
                    raise from_type(item.error_type, item.error_message)
                yield Part(item.body, item.content_type, final=True)
                return
        finally:
            if timer is not None:
                timer.cancel()
            if not ended:
                self._cancel(request_id)
            self._forget_stream(request_id)

    def fail_pending(self, error: Exception) -> None:
        """Fail every invocation in flight with ``error`` (the replica is being stopped under them)."""
        self._closed = True
        for future in self._calls.values():
            if not future.done():
                future.set_exception(error)
        for queue in self._streams.values():
            queue.put_nowait(error)

    async def drained(self) -> None:
        """Return once nothing is in flight on this channel."""
        await self._idle.wait()

    async def close(self) -> None:
        self._closed = True
        self._writer.close()
        self._read_task.cancel()
        try:
            await self._read_task
        except asyncio.CancelledError:
            pass

    # --- frames -------------------------------------------------------------------------------

    def _send(self, invocation: Invocation, *, stream: bool) -> int:
        if self._closed:
            raise ReplicaCrashed(f"Replica {self.replica_id} is gone; retry the request.")
        request_id = next(self._ids)
        self._idle.clear()
        target = invocation.target_model
        if target:  # it will load it now, if it does not hold it: route the model's next requests here too
            self._holding.add(target)
        self._writer.write(
            encode_frame(
                Request(
                    request_id, invocation.body, invocation.content_type, invocation.accept, invocation.body_url, stream,
                    target,
                )
            )
        )
        return request_id

    def _cancel(self, request_id: int) -> None:
        """Tell the replica the answer is no longer wanted (it frees the request's batch slot or stops its stream)."""
        if not self._closed and not self._writer.is_closing():
            self._writer.write(encode_frame(Cancel(request_id)))

    def _forget_stream(self, request_id: int) -> None:
        if self._streams.pop(request_id, None) is not None:
            self._maybe_idle()

    def _maybe_idle(self) -> None:
        if not self._calls and not self._streams:
            self._idle.set()

    async def _read_loop(self) -> None:
        try:
            while True:
                frame = decode_frame(await read_payload(self._reader))
                if isinstance(frame, End):
                    future = self._calls.get(frame.id)
                    if future is not None:
                        if not future.done():
                            future.set_result(frame)
                        continue
                elif isinstance(frame, protocol.Models):
                    self.models = frame
                    self._holding = {held.name for held in frame.held if held.state != "unloaded"}
                    continue
                elif isinstance(frame, protocol.Stats):
                    self.stats = EngineStats(frame.running, frame.waiting, frame.batch_size, frame.generated_tokens)
                    continue
                elif not isinstance(frame, protocol.Part):
                    continue  # a gateway-to-replica frame has no business here
                queue = self._streams.get(frame.id)
                if queue is not None:  # a stream's Part or End; frames for forgotten ids are dropped
                    queue.put_nowait(frame)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            where = f" ({self.where})" if self.where else ""
            self.fail_pending(
                ReplicaCrashed(
                    f"Replica {self.replica_id}{where} exited while serving this request; "
                    "it is being replaced, retry the request."
                )
            )


def _expire(future: asyncio.Future[End]) -> None:
    if not future.done():
        future.set_exception(InvocationTimeout("the invocation's deadline passed; it was cancelled in the replica"))
