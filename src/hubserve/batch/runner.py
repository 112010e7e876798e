"""The batch job service: jobs run as asyncio tasks inside the server, their state in the store.

Operations write the store first, like the controller's: ``create`` inserts the job (status
running) and starts its task; ``stop`` marks it stopping and lets the chunks in flight commit;
``start`` resumes a stopped (or failed) job from its last commit. When the server stops, the
tasks are cancelled and the jobs stay ``running`` in the store, so the next ``start`` of the
runner (the next server) resumes them: a SIGKILL needs nothing more, since progress is only
ever what was committed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from pathlib import Path
from typing import Any

from hubserve.batch.execution import ChunkComputer, JobRun
from hubserve.batch.spec import FINAL_STATUSES, BatchJobRequest
from hubserve.errors import BatchJobConflict, BatchJobNotFound, ValidationError
from hubserve.spec import EndpointSpec
from hubserve.storage import Location, Storage
from hubserve.store.batch_jobs import BatchJobRecord, BatchJobStore, FileProgress

log = logging.getLogger("hubserve.batch")


class BatchJobRunner:
    """Creates, runs, stops and resumes batch jobs; one task (and one computer's run) per running job."""

    def __init__(self, store: BatchJobStore, computer: ChunkComputer, storage: Storage, staging_root: Path) -> None:
        self._store = store
        self._computer = computer
        self._storage = storage
        self._staging_root = staging_root
        self._runs: dict[str, tuple[JobRun, asyncio.Task[None]]] = {}

    async def start(self) -> None:
        """Resume the jobs that were running when the last server stopped or died."""
        for record in self._store.list():
            if record.status == "stopping":
                self._store.update(record.id, status="stopped", reason="stopped by request")
            elif record.status == "running" and record.desired == "running":
                log.info("resuming batch job %s at %d of %s records", record.id, record.records_done, record.records_total)
                self._launch(record.id)

    async def stop(self) -> None:
        """Cancel every job's task (each stops its replica); the store keeps them running for next time."""
        tasks = [task for _, task in self._runs.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runs.clear()

    # --- user operations -------------------------------------------------------------------

    async def create(self, request: BatchJobRequest, endpoint_spec: EndpointSpec) -> BatchJobRecord:
        """Check the input and output locations, store the job and start it."""
        source = self._storage.resolve(request.input)
        output = self._storage.resolve(request.output)
        self._storage.check_not_async_area(source, "input")  # other endpoints' async payloads and results
        self._storage.check_not_async_area(output, "output")
        files = await asyncio.to_thread(_input_files, source, output)
        job_id = f"batch-{secrets.token_hex(4)}"
        spec = endpoint_spec.model_copy(update={"name": job_id})
        record = self._store.insert(job_id, request.model_dump(mode="json"), spec.model_dump(mode="json"), files)
        self._launch(job_id)
        return record

    def get(self, job_id: str) -> tuple[BatchJobRecord, list[FileProgress]]:
        record = self._store.get(job_id)
        if record is None:
            raise BatchJobNotFound(job_id)
        return record, self._store.files(job_id)

    def list(self) -> list[BatchJobRecord]:
        return self._store.list()

    def stop_job(self, job_id: str) -> BatchJobRecord:
        """Stop after the chunks in flight are committed; ``start`` resumes from there."""
        record, _ = self.get(job_id)
        if record.status in FINAL_STATUSES:
            raise BatchJobConflict(f"Batch job '{job_id}' is already {record.status}; there is nothing to stop.")
        running = self._runs.get(job_id)
        if running is None:  # not running in this process (it could not be resumed): stopped at once
            self._store.update(job_id, desired="stopped", status="stopped", reason="stopped by request")
        else:
            self._store.update(job_id, desired="stopped", status="stopping", reason="stopping after the chunks in flight")
            running[0].stop.set()
        return self.get(job_id)[0]

    def start_job(self, job_id: str) -> BatchJobRecord:
        """Resume a stopped or failed job from its last committed chunk."""
        record, _ = self.get(job_id)
        if record.status in ("running", "stopping") and job_id in self._runs:
            raise BatchJobConflict(f"Batch job '{job_id}' is {record.status}; stop it first or wait for it to finish.")
        if record.status == "completed":
            raise BatchJobConflict(f"Batch job '{job_id}' is completed; create a new job to run it again.")
        allowed = int(record.request.get("max_failures", 0))
        if record.status == "failed" and record.records_failed > allowed:
            raise BatchJobConflict(
                f"Batch job '{job_id}' failed: {record.reason}. Starting it again would fail again; "
                "fix the records listed in errors.jsonl or create a job with a higher max_failures."
            )
        self._store.update(job_id, desired="running", status="running", reason=None, finished_at=None)
        self._launch(job_id)
        return self.get(job_id)[0]

    # --- tasks -----------------------------------------------------------------------------

    def _launch(self, job_id: str) -> None:
        run = JobRun(job_id, self._store, self._computer, self._storage, self._staging_root / job_id)
        task = asyncio.get_running_loop().create_task(self._run(run))
        self._runs[job_id] = (run, task)

    async def _run(self, run: JobRun) -> None:
        try:
            status, reason = await run.run()
        except asyncio.CancelledError:
            raise  # the server is stopping: the job stays running in the store and resumes later
        except Exception as exc:  # a bug must not leave the job running forever
            log.exception("batch job %s failed", run.job_id)
            status, reason = "failed", f"internal error: {type(exc).__name__}: {exc}"
        finally:
            self._runs.pop(run.job_id, None)
        finished: dict[str, Any] = {"finished_at": dt.datetime.now(dt.timezone.utc)} if status != "stopped" else {}
        self._store.update(run.job_id, desired="stopped", status=status, reason=reason, **finished)
        log.info("batch job %s %s%s", run.job_id, status, f": {reason}" if reason else "")


def _input_files(source: Location, output: Location) -> list[tuple[str, str]]:
    """The input files in order, as (url, name relative to the input location)."""
    if source.fs is output.fs and (output.path + "/").startswith(source.path.rstrip("/") + "/") and source.is_dir():
        raise ValidationError(
            f"The output location {output.url} lies inside the input folder {source.url}; "
            "choose an output outside it so results are not read as inputs."
        )
    files = source.files()
    if not files:
        raise ValidationError(f"The input location {source.url} has no files; give a file, a folder of files or an s3:// prefix.")
    if source.is_dir():
        base = source.url.rstrip("/") + "/"
        return [(f.url, f.url[len(base):]) for f in files]
    return [(files[0].url, files[0].url.rstrip("/").rsplit("/", 1)[-1])]
