"""Chunks through the gateway: each record to the job's own replica, as the local backend runs jobs.

Each record is sent as its own request (the body the user would send to the endpoint, kind
``batch``, routed to the job's replica), ``concurrency`` chunks at once: while the replica runs
one batch the next chunk already waits in its queue and its batcher (worker/batcher.py) runs it
as one batch. Every record gets exactly the answer the endpoint gives it alone, and a record that
fails fails alone. Records show up in metrics and logs like any invocation.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from hubserve.batch.execution import Answer
from hubserve.batch.records import Record
from hubserve.batch.spec import BatchJobRequest
from hubserve.errors import HubserveError, ModelNotReady, ReplicaCrashed
from hubserve.spec import EndpointSpec
from hubserve.types import Invocation, Invoker


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


class GatewayChunks:
    """A ``ChunkComputer`` on the job's own replica, reached through the gateway."""

    name = "the job's replica"

    def __init__(self, replicas: JobReplicas, invoker: Invoker) -> None:
        self._replicas = replicas
        self._invoker = invoker

    async def start(self, job_id: str, spec: EndpointSpec) -> int | None:
        info = (await self._replicas.start_job(job_id, spec)).batching_info or {}
        limit = info.get("max_batch_size")
        return int(limit) if limit else None

    async def restart(self, job_id: str) -> None:
        await self._replicas.replace_job_replica(job_id)

    async def stop(self, job_id: str) -> None:
        await self._replicas.stop_job(job_id)

    def stream(self, job_id: str, request: BatchJobRequest, chunk_size: int) -> _GatewayStream:
        return _GatewayStream(job_id, self._invoker, request.concurrency)


class _GatewayStream:
    """Every chunk is sent the moment it is submitted; a stop waits for all of them (they are in flight)."""

    drain_on_stop = True
    spans_files = False  # as ever: a file's chunks are all committed before the next file is read

    def __init__(self, job_id: str, invoker: Invoker, concurrency: int) -> None:
        self._job_id = job_id
        self._invoker = invoker
        self.lookahead = concurrency

    def submit(self, records: list[Record]) -> asyncio.Task[list[Answer]]:
        return asyncio.get_running_loop().create_task(self._send(records))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def _send(self, records: list[Record]) -> list[Answer]:
        """Send every readable record of a chunk at once; None for those that could not be read.

        A replica that went away (ReplicaCrashed, or no replica to route to) stops the chunk: the
        whole chunk is sent again once another replica serves, since nothing of it was committed.
        """
        readable = [record for record in records if record.body is not None]
        path = f"/v1/batch-jobs/{self._job_id}"
        answers = await asyncio.gather(
            *(self._invoker.invoke(Invocation(endpoint=self._job_id, body=r.body or b"", kind="batch", path=path))
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
