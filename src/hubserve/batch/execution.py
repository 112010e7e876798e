"""One run of one batch job: count the records, start the computer, stream chunks, commit, assemble.

Chunks. Records are read ``batch_size`` at a time (a chunk) and submitted to the computer, which
keeps up to its ``lookahead`` chunks in flight (through the gateway: ``concurrency``, so while the
replica runs one batch the next chunk already waits in its batcher; on Ray Data: a window of
chunks run as one dataset). Each record's body is what the user would send to the endpoint, and
every record gets exactly the answer the endpoint gives it alone (batching.py keeps each
request's shape); a record that fails fails alone.

Commits. Chunks are committed strictly in input order: the chunk's output lines (and error
lines) are appended to the file's part files and flushed, then the store moves the file's
committed position (input offset and line, part lengths, counters) in one transaction. A run
that dies anywhere leaves at most an uncommitted tail in the parts, which the next run cuts off
before it reads on from the committed offset: no record is written twice or lost.

Computing a chunk's answers is the one step a ``ChunkComputer`` does, everything else (reading,
ordering, part files, commits, progress, stop and resume, error lines) is this module's. Two exist:
through the gateway (through_gateway.py, the local backend's; records go to the job's own replica
like any invocation, kind ``batch``) and on Ray Data (ray_data.py, picked by the composition root
when the backend is Ray). A computer that loses its replica or workers raises ``ReplicaCrashed``:
it is restarted (at most ``MAX_REPLICA_RESTARTS`` times) and the file goes on from its last commit;
chunks that were in flight are simply computed again, never written twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
from collections import deque
from collections.abc import Awaitable
from pathlib import Path
from typing import IO, Protocol, TypeVar

from hubserve.batch import parts
from hubserve.batch.records import (
    Record,
    RecordReader,
    as_json_value,
    error_line,
    result_line,
)
from hubserve.batch.spec import BatchJobRequest, content_type_for
from hubserve.errors import HubserveError, ReplicaCrashed
from hubserve.spec import EndpointSpec
from hubserve.storage import Storage
from hubserve.store.batch_jobs import BatchJobStore, FileProgress
from hubserve.types import InvocationResult

log = logging.getLogger("hubserve.batch")

MAX_REPLICA_RESTARTS = 3
DEFAULT_BATCH_SIZE = 32  # when the replica reports no limit of its own

Answer = InvocationResult | HubserveError | None  # None: the record could not be read
T = TypeVar("T")


class ChunkStream(Protocol):
    """One file's chunks on their way to answers; ``submit`` order is commit order."""

    @property
    def lookahead(self) -> int:
        """How many chunks the run keeps submitted ahead of its commits."""
        ...

    @property
    def spans_files(self) -> bool:
        """Whether the next file's chunks may be submitted before a file's last ones are committed."""
        ...

    @property
    def drain_on_stop(self) -> bool:
        """Whether a stop waits for every submitted chunk (True) or only for those already answered."""
        ...

    def submit(self, records: list[Record]) -> asyncio.Task[list[Answer]]:
        """Start computing a chunk: one answer per record (None for a record without a body)."""
        ...

    def flush(self) -> None:
        """No more chunks come for now: compute what is held back."""
        ...

    def close(self) -> None:
        """The run is done with this stream (its tasks are cancelled by the run)."""
        ...


class ChunkComputer(Protocol):
    """What computes chunks' answers for a job: started per run, restarted when its workers are lost.

    ``start`` and ``restart`` raise an exception with a ``reason`` or ``message`` when it cannot
    start; a stream raises ``ReplicaCrashed`` when its workers are lost (the run restarts it).
    """

    @property
    def name(self) -> str:
        """Where chunks are computed, for logs: "the job's replica", "Ray Data"."""
        ...

    async def start(self, job_id: str, spec: EndpointSpec) -> int | None:
        """Make ready to compute; returns the model's batch limit (the default chunk size), if known."""
        ...

    async def restart(self, job_id: str) -> None: ...

    async def stop(self, job_id: str) -> None: ...

    def stream(self, job_id: str, request: BatchJobRequest, chunk_size: int) -> ChunkStream: ...


class JobFailed(Exception):
    """The job cannot go on; ``reason`` is what the user reads in its status."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass
class _OpenFile:
    """One input file of a run: its committed progress, its parts, its reader, its chunks in flight."""

    progress: FileProgress
    part: parts.PartFiles
    source: IO[bytes]
    reader: RecordReader
    reading: bool = True  # False once the run read its last record (or stopped reading it)
    pending: int = 0  # its chunks submitted and not yet committed

    def close(self) -> None:
        self.part.close()
        self.source.close()


@dataclasses.dataclass
class JobRun:
    """Everything one run of a job needs; ``stop`` is set to stop it after the chunks in flight."""

    job_id: str
    store: BatchJobStore
    computer: ChunkComputer
    storage: Storage
    staging: Path
    stop: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def run(self) -> tuple[str, str | None]:
        """Process what is left; returns the final (status, reason): completed, stopped or failed."""
        record = self.store.get(self.job_id)
        assert record is not None
        request = BatchJobRequest.model_validate(record.request)
        self._failed = record.records_failed
        if self._assembled():
            return "completed", None
        self.staging.mkdir(parents=True, exist_ok=True)  # before the counts: counted files imply a staging folder
        try:
            await self._count(request)
            if self._failed > request.max_failures:
                raise JobFailed(_too_many(self._failed, request.max_failures, None))
            await self._process(request, EndpointSpec.model_validate(record.endpoint_spec))
        except JobFailed as failure:
            output = self.storage.resolve(request.output)
            names = [f.name for f in self.store.files(self.job_id)]
            try:
                await asyncio.to_thread(parts.assemble, self.staging, names, output, results=False)
            except OSError as exc:
                return "failed", f"{failure.reason}; {_unwritable(output.url, exc)}"
            return "failed", failure.reason
        files = self.store.files(self.job_id)
        if not all(f.finished for f in files):
            return "stopped", "stopped by request"
        output = self.storage.resolve(request.output)
        try:
            await asyncio.to_thread(parts.assemble, self.staging, [f.name for f in files], output)
        except OSError as exc:  # a full disk, a read-only folder: the parts stay, so starting it again writes them
            return "failed", f"{_unwritable(output.url, exc)}; every record was processed: start the job again to write"
        shutil.rmtree(self.staging, ignore_errors=True)
        return "completed", None

    def _assembled(self) -> bool:
        """Whether an earlier run assembled the output and removed its staging folder, then stopped
        (a kill) before the job was recorded completed: assembling again would find no parts."""
        files = self.store.files(self.job_id)
        return bool(files) and all(f.finished for f in files) and not self.staging.exists()

    async def _count(self, request: BatchJobRequest) -> None:
        """Count each file's records once (the first run), so progress has a total and an ETA."""
        counts = {}
        for progress in self.store.files(self.job_id):
            if progress.records is None:
                counts[progress.idx] = await asyncio.to_thread(self._count_file, request, progress)
        if counts:
            self.store.set_counts(self.job_id, counts)

    def _count_file(self, request: BatchJobRequest, progress: FileProgress) -> int:
        with self.storage.resolve(progress.url).open("rb") as file:
            content_type = content_type_for(progress.name, request.content_type)
            return RecordReader(file, request.split_type, content_type).count()

    async def _process(self, request: BatchJobRequest, spec: EndpointSpec) -> None:
        limit = await self._starting(self.computer.start(self.job_id, spec))
        restarts = 0
        try:
            chunk_size = request.batch_size or limit or DEFAULT_BATCH_SIZE
            self.store.begin_run(self.job_id)
            while True:
                try:
                    await self._process_files(request, chunk_size)
                    return
                except ReplicaCrashed as crash:
                    restarts += 1
                    if restarts > MAX_REPLICA_RESTARTS:
                        raise JobFailed(f"the job's replica exited {restarts} times; last: {crash.message}") from None
                    log.warning("batch job %s: %s lost (%s); starting again", self.job_id, self.computer.name,
                                crash.message)  # fmt: skip
                    await self._starting(self.computer.restart(self.job_id))
        finally:
            self.store.end_run(self.job_id)  # before the replica stops: its exit is not processing time
            await self.computer.stop(self.job_id)

    async def _starting(self, starting: Awaitable[T]) -> T:
        try:
            return await starting
        except Exception as exc:  # the replica's start failure (its reason), or the model source's
            reason = getattr(exc, "reason", None) or getattr(exc, "message", None) or str(exc)
            raise JobFailed(f"the job's replica could not start: {reason}") from None

    async def _process_files(self, request: BatchJobRequest, chunk_size: int) -> None:
        """Read the unfinished files' chunks in order, submit them, and commit them in that same order.

        A stream that spans files (Ray Data: its window, and so its actor pool, goes on into the
        next file) keeps the next file's chunks in flight while a file's last ones commit; any other
        has every chunk of a file committed before the next file is read.
        """
        stream = self.computer.stream(self.job_id, request, chunk_size)
        pending: deque[tuple[_OpenFile, list[Record], asyncio.Task[list[Answer]]]] = deque()
        opened: list[_OpenFile] = []
        try:
            for progress in self.store.files(self.job_id):
                if self.stop.is_set():
                    break
                if progress.finished:
                    continue
                file = await self._open(request, progress)
                opened.append(file)
                while not self.stop.is_set():
                    records = await asyncio.to_thread(file.reader.read, chunk_size)
                    if not records:
                        break
                    file.pending += 1
                    pending.append((file, records, stream.submit(records)))
                    if len(pending) >= stream.lookahead:
                        await self._commit_next(request, pending)
                file.reading = False
                if file.pending == 0:
                    file.close()
                if not stream.spans_files:
                    await self._drain(request, stream, pending)
            await self._drain(request, stream, pending)
        finally:
            for _, _, task in pending:
                task.cancel()
            await asyncio.gather(*(task for _, _, task in pending), return_exceptions=True)
            stream.close()
            for file in opened:
                file.close()

    async def _open(self, request: BatchJobRequest, progress: FileProgress) -> _OpenFile:
        """A file's reader at its committed offset, and its parts cut back to their committed length."""
        content_type = content_type_for(progress.name, request.content_type)
        source = await asyncio.to_thread(self.storage.resolve(progress.url).open, "rb")
        part = parts.PartFiles(self.staging, progress.idx, progress.out_bytes, progress.err_bytes)
        try:
            reader = await asyncio.to_thread(
                RecordReader, source, request.split_type, content_type, offset=progress.offset, line=progress.line
            )
        except BaseException:
            part.close()
            source.close()
            raise
        return _OpenFile(progress, part, source, reader)

    async def _drain(
        self, request: BatchJobRequest, stream: ChunkStream,
        pending: deque[tuple[_OpenFile, list[Record], asyncio.Task[list[Answer]]]],
    ) -> None:  # fmt: skip
        """Commit what was submitted; after a stop, only what is answered unless the stream drains."""
        stream.flush()
        while pending:
            if self.stop.is_set() and not stream.drain_on_stop and not pending[0][2].done():
                return  # not answered yet: the next run computes it again
            await self._commit_next(request, pending)

    async def _commit_next(
        self, request: BatchJobRequest, pending: deque[tuple[_OpenFile, list[Record], asyncio.Task[list[Answer]]]]
    ) -> None:
        file, records, answers = pending.popleft()
        file.progress = await self._commit(request, file.progress, file.part, records, answers)
        file.pending -= 1
        if not file.reading and file.pending == 0:
            file.close()

    async def _commit(
        self, request: BatchJobRequest, progress: FileProgress, part: parts.PartFiles,
        records: list[Record], answers: Awaitable[list[Answer]],
    ) -> FileProgress:  # fmt: skip
        """Write one chunk's lines in order, then make them durable in the store."""
        responses = await answers
        join = request.join_source == "input"
        out, err, failed = bytearray(), bytearray(), 0
        for record, response in zip(records, responses, strict=True):
            error: tuple[str, str] | None = None
            result: bytes | None = None
            if response is None:
                error = ("ValidationError", f"the record cannot be read: {record.error}")
            elif isinstance(response, HubserveError):
                error = (response.type, response.message)
            else:
                result = as_json_value(response.body, response.content_type)
            out += result_line(result, error, record.source, join)
            if error is not None:
                failed += 1
                err += error_line(progress.name, record.line, error)
        out_bytes, err_bytes = part.append(bytes(out), bytes(err))
        progress = dataclasses.replace(
            progress, done=progress.done + len(records), failed=progress.failed + failed,
            offset=records[-1].end, line=records[-1].line, out_bytes=out_bytes, err_bytes=err_bytes,
        )  # fmt: skip
        self.store.commit_chunk(self.job_id, progress, len(records), failed)
        self._failed += failed
        if self._failed > request.max_failures:
            raise JobFailed(_too_many(self._failed, request.max_failures, request.output))
        return progress


def _unwritable(url: str, exc: OSError) -> str:
    return f"the output could not be written to {url}: {exc}"


def _too_many(failed: int, allowed: int, output: str | None) -> str:
    where = f"; see {output.rstrip('/')}/{parts.ERRORS_NAME}" if output else ""
    return f"{failed} records failed, more than max_failures ({allowed}){where}"
