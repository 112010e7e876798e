"""SageMaker's model registry calls (model package groups and versioned packages) over hubserve's registry.

CreateModelPackage registers a version through the same code as ``POST /v1/models/{group}/versions``
(the folder's content hashed and stored once), and UpdateModelPackage's ModelApprovalStatus goes
through the same approval as ``/approve`` and ``/reject``, so endpoints on ``latest-approved`` roll.
What SageMaker keeps that the registry has no place for (Image, ApprovalDescription, Tags on a
package) is accepted where harmless and refused where a client would expect it back.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from hubserve.api import registry as registry_api
from hubserve.api.sagemaker import artifacts, package_shapes, shapes
from hubserve.api.sagemaker.errors import SageMakerApiError, validation
from hubserve.api.sagemaker.operations import Context, operation
from hubserve.errors import ValidationError
from hubserve.store.registry import PENDING, ModelVersion, RegistryStore

_GROUP_RESOURCE = "model-package-group"
# UpdateModelPackage members hubserve cannot apply: refused rather than dropped, so nothing is silently lost.
_NOT_UPDATABLE = ("CustomerMetadataProperties", "CustomerMetadataPropertiesToRemove", "InferenceSpecification",
                  "AdditionalInferenceSpecificationsToAdd", "ModelCard", "ModelLifeCycle", "SourceUri")  # fmt: skip


def _registry(ctx: Context) -> RegistryStore:
    registry = ctx.controller.registry
    if registry is None:
        raise validation("This hubserve server has no model registry, so it has no model packages.")
    return registry


def _conflict(message: str) -> SageMakerApiError:
    return SageMakerApiError("ConflictException", message)


# --- groups ----------------------------------------------------------------------------------


@operation
async def create_model_package_group(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = package_shapes.CreateModelPackageGroupInput.model_validate(body)
    name = shapes.check_name("ModelPackageGroupName", request.ModelPackageGroupName)
    tags = {tag.Key: tag.Value for tag in shapes.TagsInput.model_validate(body).Tags}
    arn = package_shapes.group_arn(ctx.region, name)
    registry = _registry(ctx)
    if any(group.name.lower() == name.lower() for group in registry.groups()):
        raise validation(f'Model Package Group already exists: "{arn}".')
    if registry.create_group(name, request.ModelPackageGroupDescription) is None:
        raise validation(f'Model Package Group already exists: "{arn}".')
    ctx.store.tags.delete(shapes.resource(_GROUP_RESOURCE, name))
    ctx.store.tags.add(shapes.resource(_GROUP_RESOURCE, name), tags)
    return {"ModelPackageGroupArn": arn}


@operation
async def describe_model_package_group(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    registry = _registry(ctx)
    name = package_shapes.group_name(registry, _required(body, "ModelPackageGroupName"))
    group = registry.group(name)
    assert group is not None
    return {**package_shapes.group_summary(ctx.region, group), "CreatedBy": {}}


@operation
async def list_model_package_groups(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = package_shapes.ListInput.model_validate(body)
    groups = package_shapes.listed(_registry(ctx).groups(), request, lambda g: g.name, lambda g: g.created_at)
    summaries = [package_shapes.group_summary(ctx.region, group) for group in groups]
    return _page("ModelPackageGroupSummaryList", summaries, request)


@operation
async def delete_model_package_group(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    registry = _registry(ctx)
    name = package_shapes.group_name(registry, _required(body, "ModelPackageGroupName"))
    if not registry.delete_group(name):
        count = len(registry.versions(name))
        raise _conflict(f"ModelPackageGroup {name!r} still has {count} model package(s): delete them first "
                        f"(ListModelPackages(ModelPackageGroupName={name!r}), then DeleteModelPackage).")  # fmt: skip
    ctx.store.tags.delete(shapes.resource(_GROUP_RESOURCE, name))
    return {}


# --- packages (registry versions) ------------------------------------------------------------


@operation
async def create_model_package(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = package_shapes.CreateModelPackageInput.model_validate(body)
    registry = _registry(ctx)
    if request.ModelPackageGroupName is None:
        raise validation("ModelPackageGroupName is required: hubserve keeps versioned model packages only "
                         "(create the group with CreateModelPackageGroup, then its versions with this call).")  # fmt: skip
    if body.get("Tags"):
        raise validation("Tags: a versioned model package takes its group's tags; tag the group instead "
                         "(CreateModelPackageGroup's Tags).")  # fmt: skip
    group = package_shapes.group_name(registry, request.ModelPackageGroupName)
    approval = package_shapes.check_approval("ModelApprovalStatus", request.ModelApprovalStatus)
    specification = request.InferenceSpecification
    if specification is None or len(specification.Containers) != 1:
        raise validation("InferenceSpecification.Containers must hold one container, with a ModelDataUrl (a model "
                         "folder, file://, s3:// or model.tar.gz) or Environment.HF_MODEL_ID (and HF_TASK).")  # fmt: skip
    version = await asyncio.to_thread(_register, ctx, group, specification.Containers[0], request)
    if approval != PENDING:
        registry_api.set_approval(ctx.services, group, version.number, approval)
    return {"ModelPackageArn": package_shapes.package_arn(ctx.region, version)}


def _register(ctx: Context, group: str, container: package_shapes.PackageContainer,
              request: package_shapes.CreateModelPackageInput) -> ModelVersion:  # fmt: skip
    """Register the container's model as the group's next version (blocking: a folder is hashed and copied)."""
    environment = container.Environment
    task, metrics = environment.get("HF_TASK"), package_shapes.metrics_for(request)
    member = "ModelDataUrl"
    copy: Path | None = None
    if container.ModelDataUrl:
        url = container.ModelDataUrl
        limits = artifacts.ArchiveLimits(ctx.settings.model_archive_max_bytes, ctx.settings.model_archive_max_members)
        folder = artifacts.materialise(url, f"package-{group}", ctx.model_cache, ctx.storage, limits)
        copy = folder if artifacts.is_cached(folder, ctx.model_cache) else None
        body = registry_api.VersionCreate(source=str(folder), task=task, metrics=metrics,
                                          description=request.ModelPackageDescription)  # fmt: skip
    elif environment.get("HF_MODEL_ID"):
        member = "Environment.HF_MODEL_ID"
        body = registry_api.VersionCreate(
            source=environment["HF_MODEL_ID"], revision=environment.get("HF_MODEL_REVISION"), task=task,
            metrics=metrics, description=request.ModelPackageDescription,
        )  # fmt: skip
    else:
        raise validation("InferenceSpecification.Containers[0] needs a ModelDataUrl or Environment.HF_MODEL_ID.")
    try:
        # An extracted archive or S3 download is a temporary copy: the record names the URL it came from.
        return registry_api.register(ctx.services, group, body, recorded_as=container.ModelDataUrl if copy else None)
    except ValidationError as exc:
        detail = (exc.details or [{}])[0]
        field = {"task": "Environment.HF_TASK", "revision": "Environment.HF_MODEL_REVISION"}.get(detail.get("field", ""), member)
        raise validation(f"InferenceSpecification.Containers[0].{field}: {detail.get('message', exc.message)}") from None
    finally:
        if copy is not None:  # the registry holds its own copy now
            top = copy.resolve().relative_to(ctx.model_cache.resolve()).parts[0]
            shutil.rmtree(ctx.model_cache / top, ignore_errors=True)


@operation
async def describe_model_package(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    version = _version(ctx, _required(body, "ModelPackageName"), "ModelPackageName")
    return package_shapes.describe(ctx.region, version)


@operation
async def list_model_packages(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = package_shapes.ListInput.model_validate(body)
    registry = _registry(ctx)
    if request.ModelApprovalStatus:
        package_shapes.check_approval("ModelApprovalStatus", request.ModelApprovalStatus)
    if request.ModelPackageGroupName:
        groups = [package_shapes.group_name(registry, request.ModelPackageGroupName)]
    else:
        groups = [group.name for group in registry.groups()]
    versions = [] if request.ModelPackageType == "Unversioned" else [v for g in groups for v in registry.versions(g)]
    if request.ModelApprovalStatus:
        versions = [version for version in versions if version.approval == request.ModelApprovalStatus]
    ordered = package_shapes.listed(versions, request, lambda v: v.group, lambda v: v.created_at)
    summaries = [package_shapes.package_summary(ctx.region, version) for version in ordered]
    return _page("ModelPackageSummaryList", summaries, request)


@operation
async def update_model_package(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = package_shapes.UpdateModelPackageInput.model_validate(body)
    version = _version(ctx, request.ModelPackageArn, "ModelPackageArn")
    refused = [member for member in _NOT_UPDATABLE if body.get(member)]
    if refused:
        raise validation(f"UpdateModelPackage: hubserve changes only ModelApprovalStatus; {', '.join(refused)} cannot "
                         "be changed: register a new version with CreateModelPackage instead.")  # fmt: skip
    arn = package_shapes.package_arn(ctx.region, version)
    if request.ModelApprovalStatus is not None:
        approval = package_shapes.check_approval("ModelApprovalStatus", request.ModelApprovalStatus)
        try:  # the REST approval: approving rolls the endpoints that follow the group's latest-approved
            registry_api.set_approval(ctx.services, version.group, version.number, approval)
        except registry_api.ModelVersionInUse:
            users = ctx.controller.users_of(version.group, version.number)
            raise _conflict(f"ModelPackage {arn} runs on endpoint(s) {', '.join(users)}: update them to another "
                            "model (UpdateEndpoint) or delete them before rejecting it.") from None  # fmt: skip
    return {"ModelPackageArn": arn}


@operation
async def delete_model_package(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    version = _version(ctx, _required(body, "ModelPackageName"), "ModelPackageName")
    try:
        await registry_api.delete_version(ctx.services, version.group, version.number)
    except registry_api.ModelVersionInUse:
        users = ctx.controller.users_of(version.group, version.number)
        raise _conflict(f"ModelPackage {package_shapes.package_arn(ctx.region, version)} is in use by endpoint(s) "
                        f"{', '.join(users)}: delete them (DeleteEndpoint) or update them to another model "
                        "(UpdateEndpoint) first.") from None  # fmt: skip
    return {}


# --- helpers -----------------------------------------------------------------------------------


def _required(body: dict[str, Any], member: str) -> str:
    value = body.get(member)
    if not isinstance(value, str) or not value:
        raise validation(f"{member} is required.")
    return value


def _version(ctx: Context, given: str, member: str) -> ModelVersion:
    registry = _registry(ctx)
    group, number = package_shapes.parse_package(registry, given, member)
    assert number is not None  # parse_package gives a number unless asked to follow
    return package_shapes.version_of(registry, ctx.region, group, number)


def _page(member: str, summaries: list[dict[str, Any]], request: package_shapes.ListInput) -> dict[str, Any]:
    items, token = shapes.page(summaries, request.NextToken, request.MaxResults)
    answer: dict[str, Any] = {member: items}
    if token is not None:
        answer["NextToken"] = token
    return answer

