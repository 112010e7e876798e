"""The management API: create, list, describe, update, delete, pause and resume endpoints."""

from __future__ import annotations

import asyncio
import shutil
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from hubserve.api.deps import ServicesDep
from hubserve.api.errors import spec_error
from hubserve.control import multi_model, registry_models
from hubserve.control.live import EndpointLive
from hubserve.errors import EndpointExists, EndpointNotFound, HubserveError, SpecError, ValidationError
from hubserve.models import sources
from hubserve.services import Services
from hubserve.settings import Settings
from hubserve.spec import (
    INSTANCE_SIZES,
    DedicatedCompute,
    EndpointSpec,
    EndpointState,
    keep_secrets,
    merge_patch,
    redacted,
)
from hubserve.store import EndpointRecord
from hubserve.store import registry as model_registry
from hubserve.tasks import GENERATIVE_TASKS, TABULAR_TASKS

router = APIRouter(prefix="/v1/endpoints", tags=["endpoints"])


def describe(services: Services, name: str, base_url: str) -> dict[str, Any]:
    """The spec as the user wrote it, plus what control, the gateway and the async queue observe."""
    record, live = services.controller.describe(name)
    description = describe_record(services, record, live, base_url)
    if services.controller.ownership.shared:  # several servers on one store: the one that runs it (None: moving)
        description["server"] = services.controller.holder_of(name)
    return description


def describe_record(services: Services, record: EndpointRecord, live: EndpointLive, base_url: str) -> dict[str, Any]:
    traffic = services.gateway.traffic.get(record.name)
    if traffic is not None and traffic.owner is not live:
        traffic = None  # counters of an earlier endpoint of the same name
    queued, running = services.async_inference.dispatcher.backlog(record.name)
    generation = live.generation
    return {
        **redacted(record.spec),  # secrets by name only
        "state": live.state.value,
        "reason": live.reason,
        "url": f"{base_url}/endpoints/{record.name}",
        "replicas": {
            "ready": len(live.replicas),
            "starting": live.starting,
            "desired": _desired_replicas(record, live),
        },
        "requests": {"in_flight": traffic.in_flight if traffic else 0, "held": traffic.held if traffic else 0},
        "asyncQueue": {"queued": queued, "running": running},
        "runtime": generation.runtime_info if generation else None,
        "batching_limits": generation.batching_info if generation else None,
        "cold_starts": traffic.cold_starts if traffic else 0,
        "throttles": traffic.throttles if traffic else 0,
        "model_setup_ms": _setup_summary(live),
        "model_version": services.controller.running_version(record.name),  # registry:// sources: which one runs
        "notes": record.notes,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }


def _desired_replicas(record: EndpointRecord, live: EndpointLive) -> int:
    if record.desired == "paused" or live.state in (EndpointState.FAILED, EndpointState.DELETING):
        return 0
    return live.desired if live.deployed else 1


def _setup_summary(live: EndpointLive) -> dict[str, float] | None:
    """ModelSetupTime of the replicas started by scaling: how long a cold start's replica took."""
    if not live.model_setup_ms:
        return None
    return {"last": round(live.model_setup_ms[-1], 1), "p50": round(statistics.median(live.model_setup_ms), 1)}


def _base_url(request: Request) -> str:
    """The configured public URL, never the request's ``Host`` header (a client could name any host)."""
    settings: Settings = request.app.state.settings
    return settings.public_base_url


def prepare(spec: EndpointSpec, settings: Settings,
            registry: model_registry.RegistryStore | None = None) -> tuple[EndpointSpec, list[str]]:  # fmt: skip
    """Check what can be checked before accepting a spec: the folder, the task, custom code."""
    from hubserve.models.custom import find_custom_code
    from hubserve.models.task_inference import infer_task

    def fail(field: str, message: str) -> SpecError:
        return SpecError(f"The endpoint spec is invalid: {field}: {message}", details=[{"field": field, "message": message}])

    compute = spec.compute
    if isinstance(compute, DedicatedCompute) and INSTANCE_SIZES[compute.instance]["accelerator"] == "gpu" and not _has_gpu():
        raise fail("compute.instance", f"'{compute.instance}' needs an NVIDIA GPU and this machine has none; use a cpu-* size")
    if spec.model.multi_model:
        return spec, _prepare_multi_model(spec, settings, fail, registry)
    if model_registry.is_ref(spec.model.source):
        return _prepare_registry(spec, registry), _weights_notes(spec)
    if not sources.is_local(spec.model.source):
        try:
            sources.validate_hub_id(spec.model.source)
        except sources.SourceError as exc:
            raise fail("model.source", str(exc)) from None
        return spec, _weights_notes(spec)
    if spec.model.revision is not None:
        raise fail("model.revision", "revision applies to Hub repo ids only; remove it for a local folder")
    try:
        # The configured roots plus the server's extracted SageMaker archives (settings.allowed_model_roots).
        model_dir = sources.resolve_local(spec.model.source, settings.allowed_model_roots or None)
    except sources.SourceError as exc:
        raise fail("model.source", str(exc)) from None
    if spec.model.task is None:
        try:
            task = infer_task(model_dir)
        except ValueError as exc:
            raise fail("model.task", str(exc)) from None
        spec = spec.model_copy(update={"model": spec.model.model_copy(update={"task": task})})
    spec, sklearn_notes = _prepare_sklearn(spec, model_dir, fail)
    code = find_custom_code(model_dir)
    if code and spec.custom_code:
        notes = [f"custom code enabled: {', '.join(code)}"]
    elif code:
        notes = [f"{path} ignored: set custom_code: true to run it" for path in code]
    else:
        notes = []
    return spec, notes + sklearn_notes + _weights_notes(spec)


def _prepare_sklearn(spec: EndpointSpec, model_dir: Path, fail: Callable[[str, str], SpecError]) -> tuple[EndpointSpec, list[str]]:
    """A folder in the Hub's scikit-learn layout is served as ``framework: sklearn``; its task must be one such a
    model has, and a pickle file needs ``allow_pickle`` (refused here, before any replica starts)."""
    from hubserve.models import tabular

    if not tabular.is_sklearn_folder(model_dir):
        if spec.model.framework == "sklearn":
            raise fail("model.framework", f"{model_dir} is not in the Hub's scikit-learn layout (a config.json with a "
                       "'sklearn' section naming the model file); remove framework to serve it with transformers")  # fmt: skip
        if spec.model.task in TABULAR_TASKS:
            raise fail("model.task", f"{spec.model.task} is served for scikit-learn models only (a config.json with a "
                       "'sklearn' section); this folder is a transformers model")  # fmt: skip
        return spec, []
    allowed = (*sorted(TABULAR_TASKS), "text-classification")
    if spec.model.task not in allowed:
        raise fail("model.task", f"a scikit-learn model serves {', '.join(allowed)}; got {spec.model.task}")
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"framework": "sklearn"})})
    pickled = tabular.pickled_file(model_dir)
    if pickled is not None and not spec.allow_pickle:
        raise fail("allow_pickle", f"{pickled} is a pickle file, which runs code from the file when loaded: save the "
                   "model with skops, or set allow_pickle: true if you trust it")  # fmt: skip
    if pickled is not None:
        return spec, [f"allow_pickle is on: {pickled} is loaded with pickle, which runs code from the file"]
    return spec, []


def _prepare_multi_model(spec: EndpointSpec, settings: Settings, fail: Callable[[str, str], SpecError],
                         registry: model_registry.RegistryStore | None) -> list[str]:  # fmt: skip
    """A multi-model source is a local folder (inside the model roots) of model folders; each model is checked
    when it is first called, since models come and go without a redeploy."""
    if spec.model.task in GENERATIVE_TASKS:
        raise fail("model.task", f"{spec.model.task} is not served by multi-model endpoints yet (its continuous batching, "
                   "streams and OpenAI routes run one model per replica): deploy each generative model as its own "
                   "endpoint, which can scale to zero")  # fmt: skip
    group = registry_models.group_of(spec.model.source)
    if group is not None:
        if registry is None or registry.group(group) is None:
            raise fail("model.source", f"no model group '{group}' in the registry (hubserve model list)")
        approved = [v.number for v in registry.versions(group) if v.approval == model_registry.APPROVED and v.source_kind == "folder"]
        return [(f"multi-model: registry group '{group}', each Approved folder version a model named by its number "
                f"(now: {', '.join(map(str, approved)) or 'none'})")]  # fmt: skip
    if spec.model.source.startswith("s3://"):
        return [(f"multi-model: the models under {spec.model.source} (model.tar.gz archives or folders), each fetched "
                "and loaded on its first call")]  # fmt: skip
    if not sources.is_local(spec.model.source):
        raise fail("model.source", "a multi-model endpoint's source must be a local folder of model folders "
                   "(start it with / or ./), an s3:// prefix, or a registry group (registry://GROUP)")  # fmt: skip
    if spec.model.revision is not None:
        raise fail("model.revision", "revision applies to Hub repo ids only; remove it for a local folder")
    root = Path(spec.model.source.removeprefix("file://")).expanduser().resolve()
    roots = [Path(allowed).expanduser().resolve() for allowed in settings.allowed_model_roots]
    if roots and not any(root == allowed or allowed in root.parents for allowed in roots):
        raise fail("model.source", f"model folder '{root}' is outside the allowed model roots ({', '.join(map(str, roots))})")
    if not root.is_dir():
        raise fail("model.source", f"model folder '{root}' does not exist or is not a folder")
    names = sources.list_model_folders(root)
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return [f"multi-model: {len(names)} model folders in {root} now ({shown or 'none yet'}); each loads on its first call"]


def _prepare_registry(spec: EndpointSpec, registry: model_registry.RegistryStore | None) -> EndpointSpec:
    """A ``registry://`` source: the version must exist (and not be Rejected); ``latest-approved`` is pinned in
    ``model.revision`` to the version it resolves to now, so approving a newer one is a spec change (a roll-out)."""

    def fail(field: str, message: str) -> SpecError:
        return SpecError(f"The endpoint spec is invalid: {field}: {message}", details=[{"field": field, "message": message}])

    if registry is None:
        raise fail("model.source", "this server has no model registry")
    try:
        _, number = model_registry.parse_ref(spec.model.source)
        if number is not None and spec.model.revision is not None:
            raise fail("model.revision", "a registry://GROUP/N source names its version; remove revision")
        version = model_registry.find(registry, spec.model.source)
    except model_registry.RegistryError as exc:
        raise fail("model.source", str(exc)) from None
    if version.source_kind == "uri":
        raise fail("model.source", f"{version.uri} is a URI ({version.source}), recorded only: "
                                   "register a local folder or a Hub id to deploy it")  # fmt: skip
    update: dict[str, object] = {"task": spec.model.task or version.task}
    if number is None:
        update["revision"] = str(version.number)
    return spec.model_copy(update={"model": spec.model.model_copy(update=update)})


def _weights_notes(spec: EndpointSpec) -> list[str]:
    """Say so when the user chose to serve weights transformers may have initialised at random."""
    if not spec.model.allow_missing_weights:
        return []
    note = (
        "model.allow_missing_weights is on: weights the checkpoint lacks for the task's model (its head) are "
        "initialised at random instead of failing the deployment, so answers from them mean nothing; "
        "the replica's log names them"
    )
    return [note]


def _has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None


@router.post("", status_code=201, summary="Create an endpoint")
async def create_endpoint(request: Request, services: ServicesDep, spec: EndpointSpec) -> JSONResponse:
    spec = _kept(spec, spec.model_copy(update={"secrets": {}}), sent=True)  # a redacted value has nothing to keep
    spec, notes = prepare(spec, services.settings, services.controller.registry)
    try:
        services.controller.create(spec, notes)
    except KeyError:
        raise EndpointExists(spec.name) from None
    return JSONResponse(describe(services, spec.name, _base_url(request)), status_code=201)


@router.get("", summary="List endpoints")
async def list_endpoints(request: Request, services: ServicesDep) -> dict[str, Any]:
    base_url = _base_url(request)
    return {"items": [describe_record(services, record, live, base_url) for record, live in services.controller.list()]}


@router.get("/{name}", summary="Describe an endpoint")
async def get_endpoint(request: Request, services: ServicesDep, name: str) -> dict[str, Any]:
    return describe(services, name, _base_url(request))


@router.get("/{name}/models", summary="A multi-model endpoint's models: loaded or not, where, size, last use, load time")
async def get_endpoint_models(services: ServicesDep, name: str) -> dict[str, Any]:
    live = services.controller.live(name)
    if live is None:
        raise EndpointNotFound(name)
    if not live.multi_model:
        raise ValidationError(
            f"Endpoint '{name}' serves one model; only multi-model endpoints (model.multi_model: true) list models."
        )
    spec = live.spec
    try:
        root = services.controller.models_root(spec) if spec is not None else None
        if root is not None:
            source, names = str(root), multi_model.folder_names(root)
        elif spec is not None:  # an object-store prefix: listed in a thread, never on the loop
            source = spec.model.source
            names = await asyncio.to_thread(multi_model.names_under, services.storage.resolve(source))
        else:
            source, names = None, []
    except (model_registry.RegistryError, OSError, HubserveError) as exc:
        message = exc.message if isinstance(exc, HubserveError) else str(exc)
        raise ValidationError(f"Endpoint '{name}': its models cannot be listed: {message}") from None
    return multi_model.listing(live, source, names)


def _apply_update(request: Request, services: Services, spec: EndpointSpec) -> dict[str, Any]:
    spec, notes = prepare(spec, services.settings, services.controller.registry)
    services.controller.update(spec, notes)
    return describe(services, spec.name, _base_url(request))


@router.put("/{name}", summary="Replace an endpoint's spec (rolling update)")
async def replace_endpoint(request: Request, services: ServicesDep, name: str, spec: EndpointSpec) -> dict[str, Any]:
    services.controller.describe(name)  # 404 before validation of the name
    if spec.name != name:
        raise SpecError(
            f"The endpoint spec is invalid: name: '{spec.name}' does not match the URL's '{name}'; endpoints cannot be renamed",
            details=[{"field": "name", "message": "must match the endpoint name in the URL"}],
        )
    current, _ = services.controller.describe(name)
    # No secrets (absent, or {} as every client that dumps a whole spec sends): the stored ones stay;
    # PATCH {"secrets": null} removes them.
    return _apply_update(request, services, _kept(spec, current.spec, sent=bool(spec.secrets)))


@router.patch("/{name}", summary="Change part of an endpoint's spec (JSON merge patch)")
async def patch_endpoint(request: Request, services: ServicesDep, name: str,
                         patch: dict[str, Any] = Body(...)) -> dict[str, Any]:  # fmt: skip
    record, _ = services.controller.describe(name)
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
    return _apply_update(request, services, _kept(spec, record.spec, sent=True))


def _kept(spec: EndpointSpec, current: EndpointSpec, sent: bool) -> EndpointSpec:
    """An update's spec with the stored secrets it sends back redacted (or leaves out) restored."""
    try:
        return keep_secrets(spec, current, sent=sent)
    except ValueError as exc:
        message = str(exc)
        raise SpecError(f"The endpoint spec is invalid: {message}",
                        details=[{"field": message.split(":", 1)[0], "message": message.split(": ", 1)[1]}]) from None


@router.delete("/{name}", status_code=202, summary="Delete an endpoint")
async def delete_endpoint(request: Request, services: ServicesDep, name: str) -> JSONResponse:
    services.controller.delete(name)
    return JSONResponse(describe(services, name, _base_url(request)), status_code=202)


@router.post("/{name}/pause", summary="Stop an endpoint's replicas, keeping its spec")
async def pause_endpoint(request: Request, services: ServicesDep, name: str) -> dict[str, Any]:
    services.controller.pause(name)
    return describe(services, name, _base_url(request))


@router.post("/{name}/scale-to-zero", summary="Stop every replica now; the next invocation starts one")
async def scale_endpoint_to_zero(request: Request, services: ServicesDep, name: str) -> dict[str, Any]:
    await services.controller.scale_to_zero(name)
    return describe(services, name, _base_url(request))


@router.post("/{name}/resume", summary="Start a paused (or failed) endpoint again")
async def resume_endpoint(request: Request, services: ServicesDep, name: str) -> dict[str, Any]:
    services.controller.resume(name)
    return describe(services, name, _base_url(request))
