"""The batch transform API: create (and start), list, describe, stop and start (resume) jobs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pydantic
from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from hubserve.api import deps
from hubserve.api.errors import field_details
from hubserve.api.management import prepare
from hubserve.batch.parts import ERRORS_NAME, OUT_SUFFIX
from hubserve.batch.runner import BatchJobRunner
from hubserve.batch.spec import BatchJobRequest
from hubserve.control.controller import Controller
from hubserve.errors import SpecError
from hubserve.spec import BatchingSpec, DedicatedCompute, EndpointSpec, ModelSpec
from hubserve.store.batch_jobs import BatchJobRecord, FileProgress

router = APIRouter(prefix="/v1/batch-jobs", tags=["batch jobs"])


def _runner(request: Request) -> BatchJobRunner:
    return deps.batch_jobs(request)


def _invalid(field: str, message: str) -> SpecError:
    return SpecError(f"The batch job request is invalid: {field}: {message}", details=[{"field": field, "message": message}])


def parse_request(body: Any) -> BatchJobRequest:
    """The request body as a BatchJobRequest, or a 422 naming each bad field."""
    try:
        return BatchJobRequest.model_validate(body)
    except pydantic.ValidationError as exc:
        details = field_details(list(exc.errors()))
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        raise SpecError(f"The batch job request is invalid: {summary}", details=details) from None


def endpoint_spec_for(job: BatchJobRequest, controller: Controller, request: Request) -> EndpointSpec:
    """The spec the job's replicas run: the endpoint's own, or one built from model/task."""
    if job.endpoint is not None:
        record, _ = controller.describe(job.endpoint)  # 404 when there is no such endpoint
        spec = record.spec
    else:
        assert job.model is not None
        try:
            spec = EndpointSpec(
                name="batch-job",
                model=ModelSpec(source=job.model, task=job.task, runtime=job.runtime or "torch"),
                compute=DedicatedCompute(instance=job.instance),
            )
        except pydantic.ValidationError as exc:
            detail = field_details(list(exc.errors()))[0]
            field = {"model.source": "model", "model.task": "task", "compute.instance": "instance"}.get(detail["field"], detail["field"])
            raise _invalid(field, detail["message"]) from None
        try:
            spec, _ = prepare(spec, deps.settings(request))
        except SpecError as exc:
            raise SpecError(exc.message.replace("The endpoint spec is invalid", "The batch job request is invalid"), details=exc.details) from None
    if job.batch_size is not None:  # the replica's batches hold exactly the job's chunks
        spec = spec.model_copy(update={"batching": BatchingSpec(max_batch_size=job.batch_size, max_batch_tokens=spec.batching.max_batch_tokens)})
    return spec


def describe(record: BatchJobRecord, files: list[FileProgress]) -> dict[str, Any]:
    """The job as the user asked for it, plus its progress: counts, records/s, ETA, where results go."""
    job = record.request
    total, done, failed = record.records_total, record.records_done, record.records_failed
    rate = _rate(record)
    remaining = None if total is None else max(0, total - done)
    output = str(job["output"]).rstrip("/")
    return {
        "id": record.id,
        "status": record.status,
        "reason": record.reason,
        **{key: job.get(key) for key in ("endpoint", "model", "task", "runtime")},
        "input": job["input"],
        "output": output,
        **{key: job.get(key) for key in ("batch_size", "concurrency", "split_type", "content_type", "join_source", "max_failures")},
        "records": {"total": total, "done": done, "succeeded": done - failed, "failed": failed, "remaining": remaining},
        "records_per_s": None if rate is None else round(rate, 2),
        "eta_s": round(remaining / rate, 1) if rate and remaining is not None and record.status == "running" else None,
        "files": [
            {"input": f.url, "output": f"{output}/{f.name}{OUT_SUFFIX}", "records": f.records, "done": f.done, "failed": f.failed}
            for f in files
        ],
        "errors_location": f"{output}/{ERRORS_NAME}" if failed else None,
        "runs": record.runs,
        "resumed_at_record": record.run_start_done,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
    }


def _rate(record: BatchJobRecord) -> float | None:
    """Records per second of the current (or last) run: from its replica being ready to now (or its last commit)."""
    if record.run_started_at is None:
        return None
    processed = record.records_done - record.run_start_done
    end = record.run_ended_at or dt.datetime.now(dt.timezone.utc)
    seconds = (end - record.run_started_at).total_seconds()
    return processed / seconds if seconds > 0 and processed > 0 else None


@router.post("", status_code=201, summary="Create a batch transform job and start it")
async def create_batch_job(request: Request, body: Any = Body(...)) -> JSONResponse:
    job = parse_request(body)
    spec = endpoint_spec_for(job, deps.controller(request), request)
    runner = _runner(request)
    record = await runner.create(job, spec)
    return JSONResponse(describe(*runner.get(record.id)), status_code=201)


@router.get("", summary="List batch jobs")
async def list_batch_jobs(request: Request) -> dict[str, Any]:
    runner = _runner(request)
    return {"items": [describe(*runner.get(record.id)) for record in runner.list()]}


@router.get("/{job_id}", summary="Describe a batch job: status, progress, records/s, ETA")
async def get_batch_job(request: Request, job_id: str) -> dict[str, Any]:
    return describe(*_runner(request).get(job_id))


@router.post("/{job_id}/stop", summary="Stop a job after the chunks in flight; start resumes it")
async def stop_batch_job(request: Request, job_id: str) -> dict[str, Any]:
    runner = _runner(request)
    runner.stop_job(job_id)
    return describe(*runner.get(job_id))


@router.post("/{job_id}/start", summary="Resume a stopped (or failed) job from its last committed chunk")
async def start_batch_job(request: Request, job_id: str) -> dict[str, Any]:
    runner = _runner(request)
    runner.start_job(job_id)
    return describe(*runner.get(job_id))
