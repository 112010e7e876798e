"""Inference Endpoints request and response shapes, mapped onto hubserve's ``EndpointSpec``.

Nothing here is stored: a create or update payload becomes an ``EndpointSpec`` (the one
record hubserve keeps), and every response is computed from that spec and the endpoint's
observed state. What has no place in the spec (``provider``, ``model.image``, container
command and args, tags, routes) is accepted and ignored; ``instanceType`` is reported from
the accelerator of the size it maps to.

Instance sizes (``accelerator``/``instanceType`` pick the family, ``instanceSize`` the size):

    cpu (intel-icl, intel-spr, ...)   x1 cpu-small   x2 cpu-medium   x4 cpu-large   x8 cpu-xlarge
    gpu (nvidia-t4, nvidia-a10g, ...) x1 gpu-small   x2 gpu-medium   x4 gpu-large   x8 gpu-large

hubserve's own size names (``cpu-medium``) are accepted as ``instanceSize`` too.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from hubserve.api.errors import spec_error
from hubserve.errors import SpecError
from hubserve.spec import (
    INSTANCE_SIZES,
    REDACTED,
    DedicatedCompute,
    EndpointSpec,
    ServerlessCompute,
    keep_secrets,
)

COMPAT_ENV = "API_INFERENCE_COMPAT"  # replicas answer in the shapes huggingface_hub's InferenceClient parses
HEALTH_ROUTE = "/health"  # relative to status.url: GET /endpoints/{name}/health

CPU_SIZES = {
    "x1": "cpu-small",
    "x2": "cpu-medium",
    "x4": "cpu-large",
    "x8": "cpu-xlarge",
}
GPU_SIZES = {
    "x1": "gpu-small",
    "x2": "gpu-medium",
    "x4": "gpu-large",
    "x8": "gpu-large",
}
_OLD_SIZE_NAMES = {
    "small": "x1",
    "medium": "x2",
    "large": "x4",
    "xlarge": "x8",
}  # Inference Endpoints' first names
_HF_SIZE = {"cpu-small": "x1", "cpu-medium": "x2", "cpu-large": "x4", "cpu-xlarge": "x8",
            "gpu-small": "x1", "gpu-medium": "x2", "gpu-large": "x4"}  # fmt: skip
_INSTANCE_TYPE = {"cpu": "intel-icl", "gpu": "nvidia-gpu"}
_DEFAULT_SCALE_TO_ZERO_MIN = 15


class _Lenient(BaseModel):
    """HF clients send fields hubserve has no use for (route, tags, ...): accept and ignore them."""

    model_config = ConfigDict(extra="ignore")


class HfScaling(_Lenient):
    minReplica: int | None = None
    maxReplica: int | None = None
    scaleToZeroTimeout: int | None = Field(
        default=None, description="Minutes idle before scaling to zero."
    )


class HfCompute(_Lenient):
    accelerator: str | None = None
    instanceSize: str | None = None
    instanceType: str | None = None
    scaling: HfScaling | None = None


class HfModel(_Lenient):
    repository: str | None = None
    framework: str | None = None
    revision: str | None = None
    task: str | None = None
    image: dict[str, Any] | None = None
    env: dict[str, str] | None = None
    secrets: dict[str, str] | None = None


class HfCreate(_Lenient):
    """The body of ``POST /v2/endpoint/{namespace}``."""

    name: str
    model: HfModel
    compute: HfCompute = Field(default_factory=HfCompute)
    type: str | None = None


class HfUpdate(_Lenient):
    """The body of ``PUT /v2/endpoint/{namespace}/{name}``: only what changes."""

    model: HfModel | None = None
    compute: HfCompute | None = None


def parse(shape: type[BaseModel], body: Any) -> Any:
    """Validate an HF payload; errors name the HF fields (``compute.scaling.minReplica``)."""
    try:
        return shape.model_validate(body)
    except pydantic.ValidationError as exc:
        raise spec_error(list(exc.errors())) from None


# -- HF -> spec ------------------------------------------------------------------------------


def spec_from_create(body: HfCreate) -> EndpointSpec:
    """The EndpointSpec a create payload asks for."""
    if not body.model.repository:
        raise _invalid(
            "model.repository", "required: a local folder path or a Hub repo id"
        )
    data: dict[str, Any] = {
        "name": body.name,
        "model": {"source": body.model.repository},
        "compute": _compute(body.compute, current=None),
        "env": {COMPAT_ENV: "true"},
        "access": body.type,
    }
    _apply_model(data, body.model)
    spec = _validate(data)
    try:  # a secret sent as REDACTED has no stored value to stand for
        return keep_secrets(spec, spec.model_copy(update={"secrets": {}}))
    except ValueError as exc:
        raise _invalid("model.secrets", str(exc)) from None


def spec_with_update(spec: EndpointSpec, body: HfUpdate) -> EndpointSpec:
    """``spec`` with an update payload applied (fields it leaves out keep their values)."""
    data = spec.model_dump(mode="json", exclude_none=True)
    if body.model is not None:
        if (
            body.model.repository is not None
            and body.model.repository != spec.model.source
        ):
            data["model"].update(source=body.model.repository)
            data["model"].pop("task", None)  # a new model: infer its task again
            data["model"].pop("revision", None)
        _apply_model(data, body.model)
    if body.compute is not None:
        data["compute"] = _compute(body.compute, current=spec.compute)
    try:  # secrets sent back as REDACTED (what GET shows) keep their stored values
        return keep_secrets(_validate(data), spec)
    except ValueError as exc:
        raise _invalid("model.secrets", str(exc)) from None


def _apply_model(data: dict[str, Any], model: HfModel) -> None:
    if model.task is not None:
        data["model"]["task"] = model.task
    if model.revision is not None:
        data["model"]["revision"] = model.revision
    if model.framework is not None:
        if model.framework not in ("pytorch", "custom", "sklearn"):
            raise _invalid(
                "model.framework",
                f"'{model.framework}' is not served; hubserve runs pytorch, sklearn (or custom handler) models",
            )
        data["custom_code"] = model.framework == "custom"
        if model.framework == "sklearn":
            data["model"]["framework"] = "sklearn"
    if model.secrets is not None:  # environment variables too, kept apart so they are never shown
        data["secrets"] = dict(model.secrets)
    if model.env is not None:
        env = dict(model.env)
        if COMPAT_ENV in data.get("env", {}):
            env.setdefault(
                COMPAT_ENV, data["env"][COMPAT_ENV]
            )  # kept unless the payload sets it
        data["env"] = env


def _compute(
    compute: HfCompute, current: ServerlessCompute | DedicatedCompute | None
) -> dict[str, Any]:
    """A dedicated compute spec: the current one (or defaults) with the payload's fields applied."""
    base = current if isinstance(current, DedicatedCompute) else None
    result: dict[str, Any] = {"type": "dedicated"}
    result["instance"] = _instance(
        compute, base.instance if base else _size_for_memory(current)
    )
    if base is not None:
        result.update(min_replicas=base.min_replicas, max_replicas=base.max_replicas,
                      scale_to_zero_after_s=base.scale_to_zero_after_s, target_concurrency=base.target_concurrency)  # fmt: skip
    scaling = compute.scaling or HfScaling()
    if scaling.minReplica is not None:
        result["min_replicas"] = scaling.minReplica
    if scaling.maxReplica is not None:
        result["max_replicas"] = scaling.maxReplica
    if scaling.scaleToZeroTimeout is not None:
        if scaling.scaleToZeroTimeout < 1:
            raise _invalid(
                "compute.scaling.scaleToZeroTimeout", "must be at least 1 (minutes)"
            )
        result["scale_to_zero_after_s"] = scaling.scaleToZeroTimeout * 60
    return result


def _instance(compute: HfCompute, current: str | None) -> str:
    size = compute.instanceSize
    if size in INSTANCE_SIZES:
        return size
    family = _family(compute, current)
    table = GPU_SIZES if family == "gpu" else CPU_SIZES
    if size is None:
        if current is not None and INSTANCE_SIZES[current]["accelerator"] == family:
            return current
        return table["x1"]
    hf_size = _OLD_SIZE_NAMES.get(size.lower(), size.lower())
    if hf_size not in table:
        raise _invalid(
            "compute.instanceSize",
            f"'{size}' is not one of {', '.join(table)} (or a hubserve size: {', '.join(INSTANCE_SIZES)})",
        )
    return table[hf_size]


def _family(compute: HfCompute, current: str | None) -> str:
    accelerator, instance_type = (
        (compute.accelerator or "").lower(),
        (compute.instanceType or "").lower(),
    )
    if accelerator == "gpu" or instance_type.startswith("nvidia"):
        return "gpu"
    if accelerator or instance_type:
        return "cpu"
    return str(INSTANCE_SIZES[current]["accelerator"]) if current else "cpu"


def _size_for_memory(
    compute: ServerlessCompute | DedicatedCompute | None,
) -> str | None:
    """A serverless endpoint moved to dedicated compute gets the smallest CPU size with its memory."""
    if not isinstance(compute, ServerlessCompute):
        return None
    return next(
        name
        for name in CPU_SIZES.values()
        if INSTANCE_SIZES[name]["memory_mb"] >= compute.memory_mb
    )


def _validate(data: dict[str, Any]) -> EndpointSpec:
    try:
        return EndpointSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        raise spec_error(list(exc.errors())) from None


def _invalid(field: str, message: str) -> SpecError:
    return SpecError(
        f"The endpoint is invalid: {field}: {message}",
        details=[{"field": field, "message": message}],
    )


# -- spec + observed state -> HF -------------------------------------------------------------


def to_raw(
    description: dict[str, Any], spec: EndpointSpec, slots_per_replica: int
) -> dict[str, Any]:
    """The Inference Endpoints view of an endpoint from hubserve's own description of it."""
    state = description["state"]
    hf_state = _HF_STATES.get(state, state)
    return {
        "name": spec.name,
        "type": spec.access
        or "public",  # invocation routes are open unless something in front gates them
        "accountId": None,
        "provider": {"vendor": "hubserve", "region": "local"},
        "compute": _compute_view(spec.compute, slots_per_replica),
        "model": {
            "repository": spec.model.source,
            "revision": spec.model.revision,
            "task": spec.model.task,
            "framework": "custom" if spec.custom_code else spec.model.framework,
            "image": {"huggingface": {}},
            "env": spec.env,
            "secrets": dict.fromkeys(spec.secrets, REDACTED),  # names only, as Inference Endpoints
        },
        "status": {
            "state": hf_state,
            "message": description["reason"] or _MESSAGES.get(state, state),
            "errorMessage": description["reason"]
            if state in ("failed", "updateFailed")
            else None,
            "url": description["url"],
            "readyReplica": description["replicas"]["ready"],
            "targetReplica": description["replicas"]["desired"],
            "createdAt": _timestamp(description["created_at"]),
            "updatedAt": _timestamp(description["updated_at"]),
            "private": None,
        },
        "healthRoute": HEALTH_ROUTE,
    }


# hubserve states Inference Endpoints does not have, as the one huggingface_hub's clients know: pausing
# (the replicas take no new work and finish what they hold) is where a pause leads; wait() keeps waiting.
_HF_STATES = {"pausing": "paused"}

_MESSAGES = {
    "pending": "Endpoint is pending",
    "initializing": "Endpoint is initializing",
    "updating": "Endpoint is updating",
    "running": "Endpoint is running",
    "pausing": "Endpoint is pausing: its replicas finish their requests, then stop",
    "paused": "Endpoint is paused",
    "scaledToZero": "Endpoint is scaled to zero",
    "deleting": "Endpoint is being deleted",
}


def _compute_view(
    compute: ServerlessCompute | DedicatedCompute, slots_per_replica: int
) -> dict[str, Any]:
    if isinstance(compute, ServerlessCompute):
        return {
            "accelerator": "cpu",
            "instanceType": "serverless",
            "instanceSize": f"{compute.memory_mb}MB",
            "scaling": {
                "minReplica": math.ceil(
                    compute.provisioned_concurrency / slots_per_replica
                ),
                "maxReplica": math.ceil(compute.max_concurrency / slots_per_replica),
                "scaleToZeroTimeout": math.ceil(compute.idle_timeout_s / 60),
            },
        }
    accelerator = str(INSTANCE_SIZES[compute.instance]["accelerator"])
    return {
        "accelerator": accelerator,
        "instanceType": _INSTANCE_TYPE[accelerator],
        "instanceSize": _HF_SIZE.get(compute.instance, compute.instance),
        "scaling": {
            "minReplica": compute.min_replicas,
            "maxReplica": compute.max_replicas,
            "scaleToZeroTimeout": math.ceil(compute.scale_to_zero_after_s / 60)
            if compute.scale_to_zero_after_s
            else _DEFAULT_SCALE_TO_ZERO_MIN,
        },
    }


def _timestamp(iso: str) -> str:
    """huggingface_hub's parse_datetime reads only ``%Y-%m-%dT%H:%M:%S.%fZ``."""
    moment = dt.datetime.fromisoformat(iso).astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
