"""One run of one batch job: count the records, start a replica, stream chunks, commit, assemble.

Chunks. Records are read ``batch_size`` at a time (a chunk) and each record is sent to the
job's replica as its own request, the body the user would send to the endpoint; ``concurrency``
chunks are in flight at once, so while the replica runs one batch the next chunk already waits in
its queue and its batcher (worker/batcher.py) runs it as one batch at once. Every record gets
exactly the answer the endpoint gives it alone (batching.py keeps each request's shape), and a
record that fails fails alone: the replica runs a broken batch again one request at a time.

Commits. Chunks are committed strictly in input order: the chunk's output lines (and error
lines) are appended to the file's part files and flushed, then the store moves the file's
committed position (input offset and line, part lengths, counters) in one transaction. A run
that dies anywhere leaves at most an uncommitted tail in the parts, which the next run cuts off
before it reads on from the committed offset: no record is written twice or lost.

Records go through the gateway like any invocation (kind ``batch``, routed to the job's own
replicas), so they show up in metrics and logs and fail with the one error taxonomy. A replica
that exits mid-run is replaced (at most ``MAX_REPLICA_RESTARTS`` times) and the file goes on from
its last commit; requests in flight on the dead one are simply sent again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
from collections import deque
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Protocol

from hubserve.batch import parts
from hubserve.batch.records import (
    Record,
    RecordReader,
    as_json_value,
    error_line,
    result_line,
)
from hubserve.batch.spec import BatchJobRequest, content_type_for
from hubserve.errors import HubserveError, ModelNotReady, ReplicaCrashed
from hubserve.spec import EndpointSpec
from hubserve.storage import Storage
from hubserve.store.batch_jobs import BatchJobStore, FileProgress
from hubserve.types import Invocation, InvocationResult, Invoker

log = logging.getLogger("hubserve.batch")

MAX_REPLICA_RESTARTS = 3
DEFAULT_BATCH_SIZE = 32  # when the replica reports no limit of its own

Answer = InvocationResult | HubserveError | None  # None: the record could not be read


class JobReplicaSet(Protocol):
    @property
    def batching_info(self) -> dict[str, Any] | None: ...


class JobReplicas(Protocol):
    """Where a job's replicas come from (control): started for the job, replaced and stopped by it.

    Starting raises an exception with a ``reason`` or ``message`` when the replica cannot start.
    """

    async def start_job(self, job_id: str, spec: EndpointSpec) -> JobReplicaSet: ...

    async def replace_job_replica(self, job_id: str) -> JobReplicaSet: ...

    async def stop_job(self, job_id: str) -> None: ...


class JobFailed(Exception):
    """The job cannot go on; ``reason`` is what the user reads in its status."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass
class JobRun:
    """Everything one run of a job needs; ``stop`` is set to stop it after the chunks in flight."""

    job_id: str
    store: BatchJobStore
    replicas: JobReplicas
    invoker: Invoker
    storage: Storage
    staging: Path
    stop: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def run(self) -> tuple[str, str | None]:
        """Process what is left; returns the final (status, reason): completed, stopped or failed."""
        record = self.store.get(self.job_id)
        assert record is not None
        request = BatchJobRequest.model_validate(record.request)
        self._failed = record.records_failed
        try:
            await self._count(request)
            if self._failed > request.max_failures:
                raise JobFailed(_too_many(self._failed, request.max_failures, None))
            await self._process(request, EndpointSpec.model_validate(record.endpoint_spec))
        except JobFailed as failure:
            output = self.storage.resolve(request.output)
            names = [f.name for f in self.store.files(self.job_id)]
            await asyncio.to_thread(parts.assemble, self.staging, names, output, results=False)
            return "failed", failure.reason
        files = self.store.files(self.job_id)
        if not all(f.finished for f in files):
            return "stopped", "stopped by request"
        output = self.storage.resolve(request.output)
        await asyncio.to_thread(parts.assemble, self.staging, [f.name for f in files], output)
        shutil.rmtree(self.staging, ignore_errors=True)
        return "completed", None

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
        replicas = await self._start_replicas(self.replicas.start_job(self.job_id, spec))
        restarts = 0
        try:
            info = replicas.batching_info or {}
            chunk_size = request.batch_size or int(info.get("max_batch_size") or DEFAULT_BATCH_SIZE)
            self.store.begin_run(self.job_id)
            while True:
                try:
                    for progress in self.store.files(self.job_id):
                        if self.stop.is_set():
                            return
                        if not progress.finished:
                            await self._process_file(request, progress, chunk_size)
                    return
                except ReplicaCrashed as crash:
                    restarts += 1
                    if restarts > MAX_REPLICA_RESTARTS:
                        raise JobFailed(f"the job's replica exited {restarts} times; last: {crash.message}") from None
                    log.warning("batch job %s: its replica exited (%s); starting another", self.job_id, crash.message)
                    await self._start_replicas(self.replicas.replace_job_replica(self.job_id))
        finally:
            self.store.end_run(self.job_id)  # before the replica stops: its exit is not processing time
            await self.replicas.stop_job(self.job_id)

    async def _start_replicas(self, starting: Awaitable[JobReplicaSet]) -> JobReplicaSet:
        try:
            return await starting
        except Exception as exc:  # the replica's start failure (its reason), or the model source's
            reason = getattr(exc, "reason", None) or getattr(exc, "message", None) or str(exc)
            raise JobFailed(f"the job's replica could not start: {reason}") from None

    async def _process_file(self, request: BatchJobRequest, progress: FileProgress, chunk_size: int) -> None:
        content_type = content_type_for(progress.name, request.content_type)
        source = await asyncio.to_thread(self.storage.resolve(progress.url).open, "rb")
        part = parts.PartFiles(self.staging, progress.idx, progress.out_bytes, progress.err_bytes)
        pending: deque[tuple[list[Record], asyncio.Task[list[Answer]]]] = deque()
        try:
            reader = await asyncio.to_thread(
                RecordReader, source, request.split_type, content_type, offset=progress.offset, line=progress.line
            )
            while not self.stop.is_set():
                records = await asyncio.to_thread(reader.read, chunk_size)
                if not records:
                    break
                pending.append((records, asyncio.get_running_loop().create_task(self._send(records))))
                if len(pending) >= request.concurrency:
                    progress = await self._commit(request, progress, part, *pending.popleft())
            while pending:
                progress = await self._commit(request, progress, part, *pending.popleft())
        finally:
            for _, task in pending:
                task.cancel()
            await asyncio.gather(*(task for _, task in pending), return_exceptions=True)
            part.close()
            source.close()

    async def _send(self, records: list[Record]) -> list[Answer]:
        """Send every readable record of a chunk at once; None for those that could not be read.

        A replica that went away (ReplicaCrashed, or no replica to route to) stops the chunk: the
        whole chunk is sent again once another replica serves, since nothing of it was committed.
        """
        readable = [record for record in records if record.body is not None]
        path = f"/v1/batch-jobs/{self.job_id}"
        answers = await asyncio.gather(
            *(self.invoker.invoke(Invocation(endpoint=self.job_id, body=r.body or b"", kind="batch", path=path))
              for r in readable),
            return_exceptions=True,
        )  # fmt: skip
        for answer in answers:
            if isinstance(answer, (ReplicaCrashed, ModelNotReady)):
                raise ReplicaCrashed(answer.message)
            if isinstance(answer, BaseException) and not isinstance(answer, HubserveError):
                raise answer
        results = iter(answers)
        return [next(results) if record.body is not None else None for record in records]  # type: ignore[misc]

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


def _too_many(failed: int, allowed: int, output: str | None) -> str:
    where = f"; see {output.rstrip('/')}/{parts.ERRORS_NAME}" if output else ""
    return f"{failed} records failed, more than max_failures ({allowed}){where}"
