"""The SageMaker control-plane operations, each mapped onto hubserve's own endpoint model.

Models and endpoint configs are stored as the definitions the client sent (store/sagemaker.py);
CreateEndpoint and UpdateEndpoint turn a config and its model into an EndpointSpec and hand it to
the controller exactly as ``POST``/``PUT /v1/endpoints`` do; DescribeEndpoint reads the endpoint's
record and live state. So an endpoint is one thing, visible (and changeable) through both APIs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pydantic

from hubserve.api.errors import spec_error
from hubserve.api.management import prepare
from hubserve.api.sagemaker import artifacts, package_shapes, shapes, status
from hubserve.api.sagemaker.errors import SageMakerApiError, not_found, validation
from hubserve.control.controller import Controller
from hubserve.errors import EndpointNotFound, SpecError
from hubserve.models import sources
from hubserve.models.custom import find_custom_code
from hubserve.services import Services
from hubserve.settings import Settings
from hubserve.spec import NAME_PATTERN, EndpointSpec
from hubserve.storage import Storage
from hubserve.store.sagemaker import Definition, Listing, SageMakerStore


@dataclasses.dataclass(frozen=True)
class Context:
    """What an operation works with; ``region`` comes from the request's signature scope."""

    controller: Controller
    store: SageMakerStore
    settings: Settings
    storage: Storage
    region: str
    services: Services  # the registry's shared code (model packages) takes the whole bundle

    @property
    def model_cache(self) -> Path:
        return self.settings.home_dir / "sagemaker" / "models"


Operation = Callable[[Context, dict[str, Any]], Awaitable[dict[str, Any]]]
OPERATIONS: dict[str, Operation] = {}


def operation(function: Operation) -> Operation:
    """Register ``create_model`` as ``CreateModel``."""
    OPERATIONS["".join(part.capitalize() for part in function.__name__.split("_"))] = function
    return function


# --- models ----------------------------------------------------------------------------------


@operation
async def create_model(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = shapes.CreateModelInput.model_validate(body)
    name = shapes.check_name("ModelName", request.ModelName)
    tags = _tags(body)
    if ctx.store.get_model(name) is not None:
        raise validation(f'Cannot create already existing model "{status.arn(ctx.region, "model", name)}".')
    containers = request.Containers or []
    if request.PrimaryContainer is None and len(containers) != 1:
        raise validation("Give one container: PrimaryContainer, or Containers with one element (no inference pipelines).")
    container = request.PrimaryContainer or containers[0]
    extra: dict[str, Any] = {}
    package = (container.model_extra or {}).get("ModelPackageName")
    if package:  # a registry version (model_packages.py): its source is registry://GROUP/N
        extra = {"registry_source": package_shapes.package_source(ctx.controller.registry, ctx.region, str(package))}
    elif container.Mode == "MultiModel":  # TargetModel picks one of the models under the prefix, loaded on demand
        if not container.ModelDataUrl:
            raise validation("Mode MultiModel needs ModelDataUrl: the s3:// prefix (or local folder) of the models.")
        extra = {"multi_model_source": container.ModelDataUrl.strip()}
    elif container.ModelDataUrl:
        model_dir = await asyncio.to_thread(_model_folder, ctx, container.ModelDataUrl, name)
        extra = {"model_dir": str(model_dir), "custom_code": bool(find_custom_code(model_dir))}
    elif container.Environment.get("HF_MODEL_ID"):
        model_id = container.Environment["HF_MODEL_ID"]
        if not sources.is_local(model_id):
            try:
                sources.validate_hub_id(model_id)
            except sources.SourceError as exc:
                raise validation(f"Environment.HF_MODEL_ID: {exc}") from None
    else:
        raise validation("The container needs a ModelDataUrl or Environment.HF_MODEL_ID (with HF_TASK).")
    definition = {**body, "PrimaryContainer": container.model_dump(exclude_none=True), "hubserve": extra}
    definition.pop("Containers", None)
    try:
        await asyncio.to_thread(_check_deployable, ctx, name, definition)
    except SageMakerApiError:
        if extra.get("model_dir") and artifacts.is_cached(Path(extra["model_dir"]), ctx.model_cache):
            _remove_cached(ctx, Path(extra["model_dir"]))
        raise
    try:
        ctx.store.put_model(name, definition)
    except KeyError:
        raise validation(f'Cannot create already existing model "{status.arn(ctx.region, "model", name)}".') from None
    _retag(ctx, shapes.resource("model", name), tags)
    return {"ModelArn": status.arn(ctx.region, "model", name)}


# The compute a CreateModel check assumes: the model's own checks (source, roots, revision, task) do not depend on it.
_CHECK_VARIANT = {"VariantName": "AllTraffic", "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1}}


def _check_deployable(ctx: Context, name: str, definition: dict[str, Any]) -> None:
    """Refuse at CreateModel what CreateEndpoint would refuse of this model, with the same message."""
    import datetime as dt

    probe = Definition(name=name, definition=definition, created_at=dt.datetime.now(dt.timezone.utc))
    config = {"ProductionVariants": [{**_CHECK_VARIANT, "ModelName": name}]}
    spec = _spec(ctx, "model-check", config, probe)
    try:
        prepare(spec, ctx.settings, ctx.controller.registry)
    except SpecError as exc:
        raise validation(exc.message) from None


def _remove_cached(ctx: Context, folder: Path) -> None:
    """Remove our extracted copy of a model (its top folder under the model cache)."""
    top = folder
    while top.parent != ctx.model_cache and ctx.model_cache in top.parents:
        top = top.parent
    shutil.rmtree(top, ignore_errors=True)


def _model_folder(ctx: Context, url: str, name: str) -> Path:
    """Materialise ModelDataUrl and check it holds a model; our copy is removed if it does not."""
    limits = artifacts.ArchiveLimits(ctx.settings.model_archive_max_bytes, ctx.settings.model_archive_max_members)
    folder = artifacts.materialise(url, name, ctx.model_cache, ctx.storage, limits)
    ours = artifacts.is_cached(folder, ctx.model_cache)
    try:
        sources.resolve_local(str(folder), None if ours else (ctx.settings.allowed_model_roots or None))
    except sources.SourceError as exc:
        if ours:
            shutil.rmtree(folder if folder.parent == ctx.model_cache else folder.parent, ignore_errors=True)
        raise validation(f"ModelDataUrl {url!r}: {exc}") from None
    return folder


@operation
async def describe_model(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    model = _model(ctx, _name(body, "ModelName"))
    described = {k: v for k, v in model.definition.items() if k not in ("hubserve", "Tags")}
    return {**described, "ModelArn": status.arn(ctx.region, "model", model.name), "CreationTime": model.created_at.timestamp()}


@operation
async def delete_model(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    model = _model(ctx, _name(body, "ModelName"))
    ctx.store.delete_model(model.name)
    ctx.store.tags.delete(shapes.resource("model", model.name))
    folder = model.definition.get("hubserve", {}).get("model_dir")
    if folder and artifacts.is_cached(Path(folder), ctx.model_cache) and not _in_use(ctx, folder):
        top = Path(folder)
        while top.parent != ctx.model_cache and ctx.model_cache in top.parents:
            top = top.parent
        shutil.rmtree(top, ignore_errors=True)
    return {}


@operation
async def list_models(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = shapes.ListDefinitionsInput.model_validate(body)
    summaries = [
        {"ModelName": model.name, "ModelArn": status.arn(ctx.region, "model", model.name),
         "CreationTime": model.created_at.timestamp()}
        for model in ctx.store.list_models(_listing(request))
    ]  # fmt: skip
    return _listed("Models", summaries, request.NextToken, request.MaxResults)


def _in_use(ctx: Context, folder: str) -> bool:
    """An endpoint still runs from the model's files (SageMaker lets it outlive the model)."""
    return any(record.spec.model.source == folder for record, _ in ctx.controller.list())


# --- endpoint configs ----------------------------------------------------------------------


@operation
async def create_endpoint_config(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = shapes.CreateEndpointConfigInput.model_validate(body)
    name = shapes.check_name("EndpointConfigName", request.EndpointConfigName)
    tags = _tags(body)
    taken = f'Cannot create already existing endpoint configuration "{status.arn(ctx.region, "endpoint-config", name)}".'
    if ctx.store.get_config(name) is not None:
        raise validation(taken)
    if len(request.ProductionVariants) != 1:
        raise validation("hubserve endpoints serve one production variant; give exactly one in ProductionVariants.")
    variant = request.ProductionVariants[0]
    if not variant.ModelName:
        raise validation("ProductionVariants[0].ModelName is required.")
    model = _model(ctx, variant.ModelName)
    definition = request.model_dump(exclude_none=True)
    _spec(ctx, "config-check", definition, model)  # a config that could never deploy is refused now
    try:
        ctx.store.put_config(name, definition)
    except KeyError:
        raise validation(taken) from None
    _retag(ctx, shapes.resource("endpoint-config", name), tags)
    return {"EndpointConfigArn": status.arn(ctx.region, "endpoint-config", name)}


@operation
async def describe_endpoint_config(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    config = _config(ctx, _name(body, "EndpointConfigName"))
    described = {k: v for k, v in config.definition.items() if k != "Tags"}
    return {
        **described,
        "EndpointConfigArn": status.arn(ctx.region, "endpoint-config", config.name),
        "CreationTime": config.created_at.timestamp(),
    }


@operation
async def delete_endpoint_config(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    name = _name(body, "EndpointConfigName")
    if not ctx.store.delete_config(name):
        raise not_found("endpoint configuration", name)
    ctx.store.tags.delete(shapes.resource("endpoint-config", name))
    return {}


@operation
async def list_endpoint_configs(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = shapes.ListDefinitionsInput.model_validate(body)
    summaries = [
        {"EndpointConfigName": config.name, "EndpointConfigArn": status.arn(ctx.region, "endpoint-config", config.name),
         "CreationTime": config.created_at.timestamp()}
        for config in ctx.store.list_configs(_listing(request))
    ]  # fmt: skip
    return _listed("EndpointConfigs", summaries, request.NextToken, request.MaxResults)


# --- endpoints --------------------------------------------------------------------------------


@operation
async def create_endpoint(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = shapes.CreateEndpointInput.model_validate(body)
    name = _endpoint_name(request.EndpointName)
    tags = _tags(body)
    taken = f'Cannot create already existing endpoint "{status.arn(ctx.region, "endpoint", name)}".'
    if ctx.controller.live(name) is not None:
        raise validation(taken)
    spec, notes = _deployable(ctx, name, request.EndpointConfigName)
    try:
        ctx.controller.create(spec, notes)
    except KeyError:
        raise validation(taken) from None
    ctx.store.bind(name, request.EndpointConfigName)
    _retag(ctx, shapes.resource("endpoint", name), tags)
    return {"EndpointArn": status.arn(ctx.region, "endpoint", name)}


@operation
async def update_endpoint(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = shapes.CreateEndpointInput.model_validate(body)
    name = request.EndpointName
    _endpoint(ctx, name)
    spec, notes = _deployable(ctx, name, request.EndpointConfigName)
    ctx.controller.update(spec, notes)  # a rolling update: the old replicas serve until the new one is ready
    ctx.store.bind(name, request.EndpointConfigName)
    return {"EndpointArn": status.arn(ctx.region, "endpoint", name)}


@operation
async def describe_endpoint(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    name = _name(body, "EndpointName")
    record, live = _endpoint(ctx, name)
    config_name = ctx.store.binding(name)
    config = ctx.store.get_config(config_name) if config_name else None
    variant_name = config.definition["ProductionVariants"][0]["VariantName"] if config else "AllTraffic"
    described: dict[str, Any] = {
        "EndpointName": name,
        "EndpointArn": status.arn(ctx.region, "endpoint", name),
        "ProductionVariants": [status.production_variant(record, live, variant_name)],
        "EndpointStatus": status.endpoint_status(record, live, ctx.controller.pending_spec(record, live)),
        "CreationTime": record.created_at.timestamp(),
        "LastModifiedTime": record.updated_at.timestamp(),
    }
    if config_name:
        described["EndpointConfigName"] = config_name
    reason = status.failure_reason(live)
    if reason:
        described["FailureReason"] = reason
    async_config = status.async_config(record.spec)
    if async_config:
        described["AsyncInferenceConfig"] = async_config
    return described


@operation
async def delete_endpoint(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    name = _name(body, "EndpointName")
    _endpoint(ctx, name)
    ctx.controller.delete(name)
    ctx.store.unbind(name)
    ctx.store.tags.delete(shapes.resource("endpoint", name))
    return {}


@operation
async def list_endpoints(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = shapes.ListEndpointsInput.model_validate(body)
    summaries = []
    for record, live in ctx.controller.list():
        if request.NameContains and request.NameContains.lower() not in record.name:
            continue
        endpoint_status = status.endpoint_status(record, live, ctx.controller.pending_spec(record, live))
        if request.StatusEquals and endpoint_status != request.StatusEquals:
            continue
        summaries.append({
            "EndpointName": record.name,
            "EndpointArn": status.arn(ctx.region, "endpoint", record.name),
            "CreationTime": record.created_at.timestamp(),
            "LastModifiedTime": record.updated_at.timestamp(),
            "EndpointStatus": endpoint_status,
        })  # fmt: skip
    key = {"Name": "EndpointName", "Status": "EndpointStatus"}.get(request.SortBy, "CreationTime")
    summaries.sort(key=lambda summary: cast(Any, summary[key]), reverse=request.SortOrder == "Descending")
    return _listed("Endpoints", summaries, request.NextToken, request.MaxResults)


# --- helpers -----------------------------------------------------------------------------------


def _listing(request: shapes.ListDefinitionsInput) -> Listing:
    return Listing(
        name_contains=request.NameContains, created_before=request.CreationTimeBefore,
        created_after=request.CreationTimeAfter, sort_by=request.SortBy, descending=request.SortOrder == "Descending",
    )  # fmt: skip


def _listed(member: str, summaries: list[dict[str, Any]], next_token: str | None, max_results: int) -> dict[str, Any]:
    """A List* answer: one page of ``summaries`` under ``member``, and NextToken while more remain."""
    items, token = shapes.page(summaries, next_token, max_results)
    answer: dict[str, Any] = {member: items}
    if token is not None:
        answer["NextToken"] = token
    return answer


def _tags(body: dict[str, Any]) -> dict[str, str]:
    """A create request's ``Tags``, checked before anything is created."""
    return {tag.Key: tag.Value for tag in shapes.TagsInput.model_validate(body).Tags}


def _retag(ctx: Context, resource: str, tags: dict[str, str]) -> None:
    """A new resource's tags; any a former resource of the same name had went with it."""
    ctx.store.tags.delete(resource)
    ctx.store.tags.add(resource, tags)


def _name(body: dict[str, Any], member: str) -> str:
    value = body.get(member)
    if not isinstance(value, str) or not value:
        raise validation(f"{member} is required.")
    return value


def _model(ctx: Context, name: str) -> Definition:
    model = ctx.store.get_model(name)
    if model is None:
        raise not_found("model", name)
    return model


def _config(ctx: Context, name: str) -> Definition:
    config = ctx.store.get_config(name)
    if config is None:
        raise not_found("endpoint configuration", name)
    return config


def _endpoint(ctx: Context, name: str) -> tuple[Any, Any]:
    try:
        return ctx.controller.describe(name)
    except EndpointNotFound:
        raise not_found("endpoint", name) from None


def _endpoint_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise validation(
            f"EndpointName {name!r} is invalid here: hubserve endpoint names are DNS-safe, "
            "1-63 lower-case letters, digits or '-'."
        )
    return name


def _spec(ctx: Context, name: str, config: dict[str, Any], model: Definition) -> EndpointSpec:
    extra = model.definition.get("hubserve", {})
    if extra.get("registry_source"):
        document = package_shapes.endpoint_spec(name, config, model.definition)
    else:
        document = shapes.endpoint_spec(name, config, model.definition, custom_code=bool(extra.get("custom_code")))
    try:
        return EndpointSpec.model_validate(document)
    except pydantic.ValidationError as exc:
        raise validation(spec_error(list(exc.errors())).message) from None


def _deployable(ctx: Context, name: str, config_name: str) -> tuple[EndpointSpec, list[str]]:
    """The checked spec (folder, task, custom code) an endpoint built from ``config_name`` runs."""
    config = _config(ctx, config_name)
    model_name = config.definition["ProductionVariants"][0]["ModelName"]
    model = _model(ctx, model_name)
    spec = _spec(ctx, name, config.definition, model)
    try:
        return prepare(spec, ctx.settings, ctx.controller.registry)
    except SpecError as exc:
        raise validation(exc.message) from None


__all__ = ["OPERATIONS", "Context", "SageMakerApiError", "operation"]
