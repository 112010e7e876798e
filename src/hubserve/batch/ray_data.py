"""Chunks on Ray Data: the records of a window of chunks as a dataset, answered by an actor pool.

When the server runs on the Ray backend, a batch job's chunks are computed here instead of on a
replica behind the gateway. The run (execution.py) still reads, orders, writes and commits every
chunk; this module only turns chunks into answers:

- A window of chunks (at most ``WINDOW_RECORDS`` records) becomes ``ray.data.from_items`` of
  ``{"i": index in the window, "body": request body}`` (records that cannot be read stay behind:
  their answer is None), and ``map_batches`` runs ``RecordAnswerer``, a class-based UDF: an actor
  pool of ``concurrency`` actors (the job's ``concurrency``, at most what the cluster's CPUs hold
  at the job's vCPUs each), every actor loading the model once.
- An actor loads the model with the replica's own code (models.sources, models.loading, the
  worker's batch limits) and answers with the replica's own request handling (worker/handling.py
  ``plan`` and ``run_planned``, batched by key as the replica's batcher does), so every record gets
  byte for byte the answer the endpoint gives it. A local model folder reaches the actor's node as
  it reaches a replica's (backends/ray/models.py): put once in the object store, written once per
  content hash into the node's cache, which the node's agent shares.
- Results are read back with ``preserve_order`` and carry their record's index; chunk k's answers
  are handed to the run as soon as chunk k is complete, so commits stream while the window runs.
- Node loss: Ray Data's actors restart (``max_restarts``) and their tasks retry elsewhere; if the
  dataset fails all the same, the unanswered chunks fail with ``ReplicaCrashed`` and the run
  computes them again from its last commit. Nothing is committed twice: only the run commits.

A stop lets chunks that are already answered commit and drops the rest of the window (the next run
computes them again). Generative tasks named in the spec run on the job's replica (the fallback):
their answers come from the replica's continuous-batching engine, which an actor does not run.

Ray is imported only inside functions: on the local backend this module is never loaded anyway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubserve.batch.execution import Answer, ChunkComputer, ChunkStream, JobFailed
from hubserve.batch.records import Record
from hubserve.batch.spec import BatchJobRequest
from hubserve.errors import ReplicaCrashed, from_type
from hubserve.spec import EndpointSpec
from hubserve.tasks import GENERATIVE_TASKS
from hubserve.types import InvocationResult

if TYPE_CHECKING:
    from hubserve.worker.launch import ReplicaLaunch

log = logging.getLogger("hubserve.batch")

WINDOW_RECORDS = 4096  # records of one dataset: the actor pool (and its model loads) is per window
_LOAD_FAILED = "ModelLoadFailed"  # the error type an actor answers with when its model did not load


@dataclasses.dataclass
class _JobModel:
    """What a job's actors start from: the launch (JSON) and a local model folder's object-store copy."""

    launch_json: str
    threads: int
    model_key: str | None = None  # content hash of a local folder source; None: a Hub repo
    model_files: list[Any] = dataclasses.field(default_factory=list)  # [ObjectRef of {path: bytes}]


class RayDataChunks:
    """A ``ChunkComputer`` on Ray Data; ``launch_for`` is control's (what a replica of a spec starts from)."""

    name = "Ray Data"

    def __init__(self, launch_for: Callable[[EndpointSpec], ReplicaLaunch], fallback: ChunkComputer) -> None:
        self._launch_for = launch_for
        self._fallback = fallback
        self._jobs: dict[str, _JobModel] = {}
        self._delegated: set[str] = set()

    async def start(self, job_id: str, spec: EndpointSpec) -> int | None:
        if spec.model.task in GENERATIVE_TASKS and not spec.custom_code:
            self._delegated.add(job_id)
            return await self._fallback.start(job_id, spec)
        from hubserve.worker.launch import encode_launch

        launch = self._launch_for(spec)
        job = _JobModel(encode_launch(launch), max(1, launch.threads))
        source = Path(launch.source)
        if source.is_absolute() and source.is_dir():  # noqa: ASYNC240 (one stat)
            job.model_key, job.model_files = await asyncio.to_thread(_put_model, source)
        self._jobs[job_id] = job
        log.info("batch job %s: chunks computed by Ray Data (an actor pool holding the model)", job_id)
        return launch.max_batch_size

    async def restart(self, job_id: str) -> None:
        if job_id in self._delegated:
            await self._fallback.restart(job_id)  # Ray Data restarts its own actors; the next window starts anew

    async def stop(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)
        if job_id in self._delegated:
            self._delegated.discard(job_id)
            await self._fallback.stop(job_id)

    def stream(self, job_id: str, request: BatchJobRequest, chunk_size: int) -> ChunkStream:
        if job_id in self._delegated:
            return self._fallback.stream(job_id, request, chunk_size)
        return _RayDataStream(job_id, self._jobs[job_id], request.concurrency, chunk_size)


def _put_model(source: Path) -> tuple[str, list[Any]]:
    """The folder's content hash and its files in the object store (once per job run)."""
    import ray

    from hubserve.backends.ray import models

    key = models.content_hash(source)
    return key, [ray.put(models.pack(source))]


class _RayDataStream:
    """Holds submitted chunks back until a window is full (or flushed), then runs it as one dataset.

    One stream serves a whole run, so a window gathers chunks across files.
    """

    drain_on_stop = False
    spans_files = True  # one window (one actor pool, one model load per actor) across small files

    def __init__(self, job_id: str, job: _JobModel, concurrency: int, chunk_size: int) -> None:
        self._job_id = job_id
        self._job = job
        self._concurrency = concurrency
        self._chunk_size = chunk_size
        self.lookahead = max(1, WINDOW_RECORDS // chunk_size)
        self._window: list[tuple[list[Record], asyncio.Future[list[Answer]]]] = []
        self._closed = threading.Event()

    def submit(self, records: list[Record]) -> asyncio.Task[list[Answer]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Answer]] = loop.create_future()
        self._window.append((records, future))
        if len(self._window) >= self.lookahead:
            self.flush()
        return loop.create_task(_wait(future))

    def flush(self) -> None:
        if not self._window:
            return
        window, self._window = self._window, []
        loop = asyncio.get_running_loop()
        thread = threading.Thread(
            target=self._run_window, args=(window, loop), name=f"ray-data-{self._job_id}", daemon=True
        )
        thread.start()

    def close(self) -> None:
        self._closed.set()  # the window's thread stops reading results at its next batch

    def _run_window(
        self, window: list[tuple[list[Record], asyncio.Future[list[Answer]]]], loop: asyncio.AbstractEventLoop
    ) -> None:
        """In a thread: run the window's dataset and hand each chunk's answers over in order."""
        chunks = [records for records, _ in window]
        futures = [future for _, future in window]
        starts = [0]
        for records in chunks:
            starts.append(starts[-1] + len(records))
        flat = [record for records in chunks for record in records]
        results: dict[int, dict[str, Any]] = {}
        nodes: set[str] = set()
        answered = 0
        try:
            items = [{"i": i, "body": record.body} for i, record in enumerate(flat) if record.body is not None]
            batches = self._dataset(items, len(chunks)) if items else iter(())
            for batch in itertools.chain(batches, [None]):  # None: once more after the last one
                if self._closed.is_set():
                    break
                for row in batch.to_pylist() if batch is not None else []:
                    results[row["i"]] = row
                    nodes.add(row["node"])
                while answered < len(chunks) and all(
                    i in results for i in range(starts[answered], starts[answered + 1]) if flat[i].body is not None
                ):
                    answers = [_answer(results.get(i)) for i in range(starts[answered], starts[answered + 1])]
                    loop.call_soon_threadsafe(_settle, futures[answered], answers)
                    answered += 1
            if not self._closed.is_set() and answered < len(chunks):
                raise RuntimeError(f"the dataset ended without answers for {len(chunks) - answered} chunks")
        except JobFailed as failure:
            for future in futures[answered:]:
                loop.call_soon_threadsafe(_settle, future, failure)
            return
        except Exception as exc:  # the dataset failed (a node lost past Ray's retries, the cluster gone)
            log.warning("batch job %s: Ray Data failed: %s", self._job_id, exc)
            crash = ReplicaCrashed(f"Ray Data failed: {type(exc).__name__}: {str(exc)[:500]}")
            for future in futures[answered:]:
                loop.call_soon_threadsafe(_settle, future, crash)
            return
        if nodes:
            log.info(
                "batch job %s: %d records computed by Ray Data on node(s) %s", self._job_id, len(results),
                ", ".join(sorted(node[:12] for node in nodes)),
            )  # fmt: skip

    def _dataset(self, items: list[dict[str, Any]], chunk_count: int) -> Any:
        """The window's results as pyarrow tables, in input order."""
        import ray

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        job = self._job
        cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
        actors = max(1, min(self._concurrency, cpus // job.threads))
        dataset = ray.data.from_items(items, override_num_blocks=max(1, min(chunk_count, len(items))))
        answered = dataset.map_batches(
            RecordAnswerer,
            fn_constructor_kwargs={"launch_json": job.launch_json, "model_key": job.model_key,
                                   "model_files": job.model_files},
            batch_size=self._chunk_size, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=job.threads,  # Ray Data's default strategy for the pool is SPREAD: across nodes, as replicas
        )  # fmt: skip
        return answered.iter_batches(batch_size=None, batch_format="pyarrow")


async def _wait(future: asyncio.Future[list[Answer]]) -> list[Answer]:
    return await future


def _settle(future: asyncio.Future[list[Answer]], outcome: list[Answer] | BaseException) -> None:
    if future.done():  # the run was cancelled meanwhile
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _answer(row: dict[str, Any] | None) -> Answer:
    """One result row as the gateway would have answered: the replica's body, or its error."""
    if row is None:
        return None  # the record could not be read
    if row["ok"]:
        return InvocationResult(bytes(row["body"]), row["content_type"], 0.0, 0.0, False)
    if row["error_type"] == _LOAD_FAILED:
        raise JobFailed(f"the job's replica could not start: {row['error_message']}")
    return from_type(row["error_type"], row["error_message"])


# --- inside the actors -------------------------------------------------------------------------


class RecordAnswerer:
    """Ray Data's class-based UDF: loads the job's model once, then answers batches of request bodies.

    A model that does not load is not an exception (Ray would restart the actor over and over):
    every record is answered with ``ModelLoadFailed`` and the run fails the job with the reason.
    """

    def __init__(self, launch_json: str, model_key: str | None, model_files: list[Any]) -> None:
        import ray

        self.node = str(ray.get_runtime_context().get_node_id())
        self.error: str | None = None
        try:
            self._load(launch_json, model_key, model_files)
        except BaseException as exc:  # any failure to load is the job's failure reason
            self.error = f"{type(exc).__name__}: {exc}"

    def _load(self, launch_json: str, model_key: str | None, model_files: list[Any]) -> None:
        import msgspec
        import torch
        import transformers

        from hubserve.models.loading import load_model
        from hubserve.models.sources import resolve_source
        from hubserve.models.task_inference import infer_task
        from hubserve.worker.launch import decode_launch
        from hubserve.worker.server import resolve_limits

        launch = decode_launch(launch_json)
        if model_key is not None:
            folder = _node_copy(self.node, model_key, model_files)
            roots = [str(folder.parent)] if launch.allowed_roots else []
            launch = msgspec.structs.replace(launch, source=str(folder), allowed_roots=roots)
        os.environ.update(launch.env)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        torch.set_num_threads(max(1, launch.threads))
        transformers.utils.logging.disable_progress_bar()
        model_dir = resolve_source(
            launch.source, launch.revision, allowed_roots=[Path(root) for root in launch.allowed_roots],
            cache_dir=Path(launch.hub_cache) if launch.hub_cache else None,
        )  # fmt: skip
        task = launch.task or infer_task(model_dir)
        self.model = load_model(
            model_dir, task, custom_code=launch.custom_code, dtype=launch.dtype, device=launch.device,
            runtime=launch.runtime, cache_dir=Path(launch.runtime_cache) if launch.runtime_cache else None,
            threads=launch.threads, allow_missing_weights=launch.allow_missing_weights,
        )  # fmt: skip
        self.limits = resolve_limits(self.model, launch.device, launch.max_batch_size, launch.max_batch_tokens)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa  # type: ignore[import-untyped]

        from hubserve.worker.protocol import End

        indices = batch.column("i").to_pylist()
        bodies = batch.column("body").to_pylist()
        if self.error is not None:
            ends = [End(i, False, error_type=_LOAD_FAILED, error_message=self.error) for i in range(len(bodies))]
        else:
            ends = self._answer(bodies)
        return pa.table({
            "i": pa.array(indices, pa.int64()),
            "ok": pa.array([end.ok for end in ends], pa.bool_()),
            "body": pa.array([end.body for end in ends], pa.binary()),
            "content_type": pa.array([end.content_type for end in ends], pa.string()),
            "error_type": pa.array([end.error_type for end in ends], pa.string()),
            "error_message": pa.array([end.error_message for end in ends], pa.string()),
            "node": pa.array([self.node] * len(ends), pa.string()),
        })  # fmt: skip

    def _answer(self, bodies: list[bytes]) -> list[Any]:
        """The replica's answers to these bodies, batched as its batcher would batch them."""
        from hubserve.worker.batcher import Pending
        from hubserve.worker.handling import error_response, plan, run_planned
        from hubserve.worker.protocol import End, Request

        ends: list[End | None] = [None] * len(bodies)
        queue: list[Pending] = []
        for i, body in enumerate(bodies):
            planned = plan(self.model, Request(i, body))
            if isinstance(planned, End):
                ends[i] = planned
            else:
                queue.append(planned)
        while queue:
            batch, queue = _take(queue, self.limits.max_batch_size, self.limits.max_batch_tokens)
            try:
                answers = run_planned(self.model, [pending.payload for pending in batch], self.limits.max_batch_size)
            except Exception as exc:  # as the replica: every request of a failed batch hears why
                answers = [error_response(pending.payload.request.id, exc) for pending in batch]
            for answer in answers:
                ends[answer.id] = answer
        return ends


def _take(queue: list[Any], max_sequences: int, max_tokens: int) -> tuple[list[Any], list[Any]]:
    """The next batch as worker/batcher.py takes it: the oldest request and every same-key one that fits."""
    first, rest = queue[0], queue[1:]
    if first.key is None:
        return [first], rest
    batch, waiting = [first], []
    sequences, tokens = first.sequences, first.tokens
    for pending in rest:
        fits = sequences + pending.sequences <= max_sequences and tokens + pending.tokens <= max_tokens
        if pending.key == first.key and fits:
            batch.append(pending)
            sequences += pending.sequences
            tokens += pending.tokens
        else:
            waiting.append(pending)
    return batch, waiting


def _node_copy(node: str, key: str, model_files: list[Any]) -> Path:
    """This node's copy of the model (the node agent's cache folder), written from the object store once."""
    import ray

    from hubserve.backends.ray import models

    cache = Path(tempfile.gettempdir()) / f"hubserve-node-{node[:12]}" / "models"  # as backends/ray/agent.py
    cache.mkdir(parents=True, exist_ok=True)
    if (cache / key).is_dir():
        return cache / key
    return models.unpack(ray.get(model_files[0]), cache, key)
