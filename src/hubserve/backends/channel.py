"""The gateway's side of one replica connection: many requests in flight, matched by id."""

from __future__ import annotations

import asyncio
import itertools

from hubserve.errors import HubserveError, ReplicaCrashed
from hubserve.worker.protocol import Request, Response, decode_response, encode_frame, read_payload


class ReplicaChannel:
    """One Unix-socket connection to a replica, multiplexed so the replica can batch."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, replica_id: str) -> None:
        self.replica_id = replica_id
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Response]] = {}
        self._closed = False
        self._read_task = asyncio.get_running_loop().create_task(self._read_loop())
        self._idle = asyncio.Event()
        self._idle.set()

    @classmethod
    async def connect(cls, socket_path: str, replica_id: str) -> ReplicaChannel:
        reader, writer = await asyncio.open_unix_connection(socket_path, limit=1 << 20)
        return cls(reader, writer, replica_id)

    @property
    def outstanding(self) -> int:
        return len(self._pending)

    @property
    def closed(self) -> bool:
        return self._closed

    async def call(self, body: bytes, content_type: str, accept: str, body_path: str = "") -> Response:
        """Send one request and wait for its response; ReplicaCrashed if the replica goes away.

        ``body_path``: a local file the replica reads as the body instead of ``body`` (async payloads).
        """
        if self._closed:
            raise ReplicaCrashed(f"Replica {self.replica_id} is gone; retry the request.")
        request_id = next(self._ids)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._idle.clear()
        self._writer.write(encode_frame(Request(request_id, body, content_type, accept, body_path)))
        try:
            return await future
        finally:
            self._pending.pop(request_id, None)
            if not self._pending:
                self._idle.set()

    async def drained(self) -> None:
        """Wait until no request is in flight on this channel."""
        await self._idle.wait()

    async def _read_loop(self) -> None:
        try:
            while True:
                response = decode_response(await read_payload(self._reader))
                future = self._pending.get(response.id)
                if future is not None and not future.done():
                    future.set_result(response)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self._fail_pending()

    def fail_pending_with(self, error: HubserveError) -> None:
        """Fail every request in flight with ``error`` (the controller is stopping this replica)."""
        self._closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)

    def _fail_pending(self) -> None:
        self.fail_pending_with(
            ReplicaCrashed(f"Replica {self.replica_id} exited while serving this request; it is being replaced, retry the request.")
        )

    async def close(self) -> None:
        self._closed = True
        self._writer.close()
        self._read_task.cancel()
        try:
            await self._read_task
        except asyncio.CancelledError:
            pass
