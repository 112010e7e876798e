"""The management API: create, list, describe, update, delete, pause and resume endpoints."""

from __future__ import annotations

import shutil
import statistics
from typing import Any

import pydantic
from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse

from hubserve.api.auth import require_token
from hubserve.api.errors import spec_error
from hubserve.control.controller import Controller, EndpointRuntime
from hubserve.errors import EndpointExists, SpecError
from hubserve.models import sources
from hubserve.settings import Settings
from hubserve.spec import INSTANCE_SIZES, DedicatedCompute, EndpointSpec, EndpointState, merge_patch
from hubserve.store import EndpointRecord

router = APIRouter(prefix="/v1/endpoints", tags=["endpoints"], dependencies=[Depends(require_token)])


def _controller(request: Request) -> Controller:
    return request.app.state.controller  # type: ignore[no-any-return]


def describe(record: EndpointRecord, runtime: EndpointRuntime, base_url: str) -> dict[str, Any]:
    """The spec as the user wrote it, plus what we observe."""
    return {
        **record.spec.model_dump(mode="json"),
        "state": runtime.state.value,
        "reason": runtime.reason,
        "url": f"{base_url}/endpoints/{record.name}",
        "replicas": {
            "ready": len(runtime.serving),
            "starting": runtime.starting,
            "desired": _desired_replicas(record, runtime),
        },
        "requests": {"in_flight": runtime.in_flight, "held": runtime.held},
        "asyncQueue": {"queued": runtime.async_queued, "running": runtime.async_running},
        "runtime": runtime.runtime_info,
        "batching_limits": runtime.batching_info,
        "cold_starts": runtime.cold_starts,
        "throttles": runtime.throttles,
        "model_setup_ms": _setup_summary(runtime),
        "notes": record.notes,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }


def _desired_replicas(record: EndpointRecord, runtime: EndpointRuntime) -> int:
    if record.desired == "paused" or runtime.state in (EndpointState.FAILED, EndpointState.DELETING):
        return 0
    return runtime.desired if runtime.deployed else 1


def _setup_summary(runtime: EndpointRuntime) -> dict[str, float] | None:
    """ModelSetupTime of the replicas started by scaling: how long a cold start's replica took."""
    if not runtime.model_setup_ms:
        return None
    return {"last": round(runtime.model_setup_ms[-1], 1), "p50": round(statistics.median(runtime.model_setup_ms), 1)}


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def prepare(spec: EndpointSpec, settings: Settings) -> tuple[EndpointSpec, list[str]]:
    """Check what can be checked before accepting a spec: the folder, the task, custom code."""
    from hubserve.models.custom import find_custom_code
    from hubserve.models.task_inference import infer_task

    def fail(field: str, message: str) -> SpecError:
        return SpecError(f"The endpoint spec is invalid: {field}: {message}", details=[{"field": field, "message": message}])

    compute = spec.compute
    if isinstance(compute, DedicatedCompute) and INSTANCE_SIZES[compute.instance]["accelerator"] == "gpu" and not _has_gpu():
        raise fail("compute.instance", f"'{compute.instance}' needs an NVIDIA GPU and this machine has none; use a cpu-* size")
    if not sources.is_local(spec.model.source):
        try:
            sources.validate_hub_id(spec.model.source)
        except sources.SourceError as exc:
            raise fail("model.source", str(exc)) from None
        return spec, []
    if spec.model.revision is not None:
        raise fail("model.revision", "revision applies to Hub repo ids only; remove it for a local folder")
    try:
        model_dir = sources.resolve_local(spec.model.source, settings.model_roots or None)
    except sources.SourceError as exc:
        raise fail("model.source", str(exc)) from None
    if spec.model.task is None:
        try:
            task = infer_task(model_dir)
        except ValueError as exc:
            raise fail("model.task", str(exc)) from None
        spec = spec.model_copy(update={"model": spec.model.model_copy(update={"task": task})})
    code = find_custom_code(model_dir)
    if code and spec.custom_code:
        notes = [f"custom code enabled: {', '.join(code)}"]
    elif code:
        notes = [f"{path} ignored: set custom_code: true to run it" for path in code]
    else:
        notes = []
    return spec, notes


def _has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None


@router.post("", status_code=201, summary="Create an endpoint")
async def create_endpoint(request: Request, spec: EndpointSpec) -> JSONResponse:
    controller = _controller(request)
    spec, notes = prepare(spec, request.app.state.settings)
    try:
        controller.create(spec, notes)
    except KeyError:
        raise EndpointExists(spec.name) from None
    return JSONResponse(describe(*controller.describe(spec.name), _base_url(request)), status_code=201)


@router.get("", summary="List endpoints")
async def list_endpoints(request: Request) -> dict[str, Any]:
    base_url = _base_url(request)
    return {"items": [describe(record, runtime, base_url) for record, runtime in _controller(request).list()]}


@router.get("/{name}", summary="Describe an endpoint")
async def get_endpoint(request: Request, name: str) -> dict[str, Any]:
    return describe(*_controller(request).describe(name), _base_url(request))


def _apply_update(request: Request, spec: EndpointSpec) -> dict[str, Any]:
    controller = _controller(request)
    spec, notes = prepare(spec, request.app.state.settings)
    controller.update(spec, notes)
    return describe(*controller.describe(spec.name), _base_url(request))


@router.put("/{name}", summary="Replace an endpoint's spec (rolling update)")
async def replace_endpoint(request: Request, name: str, spec: EndpointSpec) -> dict[str, Any]:
    _controller(request).describe(name)  # 404 before validation of the name
    if spec.name != name:
        raise SpecError(
            f"The endpoint spec is invalid: name: '{spec.name}' does not match the URL's '{name}'; endpoints cannot be renamed",
            details=[{"field": "name", "message": "must match the endpoint name in the URL"}],
        )
    return _apply_update(request, spec)


@router.patch("/{name}", summary="Change part of an endpoint's spec (JSON merge patch)")
async def patch_endpoint(request: Request, name: str, patch: dict[str, Any] = Body(...)) -> dict[str, Any]:
    record, _ = _controller(request).describe(name)
    merged = merge_patch(record.spec.model_dump(mode="json"), patch)
    if merged.get("name") != name:
        raise SpecError(
            "The endpoint spec is invalid: name: endpoints cannot be renamed",
            details=[{"field": "name", "message": "endpoints cannot be renamed"}],
        )
    if "model" in patch and isinstance(patch["model"], dict) and "source" in patch["model"] and "task" not in patch["model"]:
        merged["model"].pop("task", None)  # a new model may have another task: infer it again
    try:
        spec = EndpointSpec.model_validate(merged)
    except pydantic.ValidationError as exc:
        raise spec_error(list(exc.errors())) from None
    return _apply_update(request, spec)


@router.delete("/{name}", status_code=202, summary="Delete an endpoint")
async def delete_endpoint(request: Request, name: str) -> JSONResponse:
    controller = _controller(request)
    controller.delete(name)
    return JSONResponse(describe(*controller.describe(name), _base_url(request)), status_code=202)


@router.post("/{name}/pause", summary="Stop an endpoint's replicas, keeping its spec")
async def pause_endpoint(request: Request, name: str) -> dict[str, Any]:
    controller = _controller(request)
    controller.pause(name)
    return describe(*controller.describe(name), _base_url(request))


@router.post("/{name}/scale-to-zero", summary="Stop every replica now; the next invocation starts one")
async def scale_endpoint_to_zero(request: Request, name: str) -> dict[str, Any]:
    controller = _controller(request)
    await controller.scale_to_zero(name)
    return describe(*controller.describe(name), _base_url(request))


@router.post("/{name}/resume", summary="Start a paused (or failed) endpoint again")
async def resume_endpoint(request: Request, name: str) -> dict[str, Any]:
    controller = _controller(request)
    controller.resume(name)
    return describe(*controller.describe(name), _base_url(request))
