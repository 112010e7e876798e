"""The model registry API: register versions of model groups, list and describe them, approve, reject, delete.

A folder version's files are copied once, content-addressed, under ``<home>/registry/<sha256>/``
(confined like an endpoint's model folder); a Hub id and revision, or a URI, is recorded as it is and
resolved by the replica. Approving a version rolls the endpoints that follow ``latest-approved``.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pydantic
from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from hubserve.api.deps import ServicesDep
from hubserve.api.errors import field_details
from hubserve.errors import HubserveError, ValidationError
from hubserve.models import sources
from hubserve.services import Services
from hubserve.store import artifacts
from hubserve.store import registry as model_registry
from hubserve.store.registry import APPROVALS, APPROVED, REJECTED, ModelVersion, RegistryStore

router = APIRouter(prefix="/v1/models", tags=["model registry"])
_URI = re.compile(r"(s3|gs|https?)://\S+")


class ModelGroupNotFound(HubserveError):
    status = 404
    type = "ModelGroupNotFound"


class ModelVersionNotFound(HubserveError):
    status = 404
    type = "ModelVersionNotFound"


class ModelVersionInUse(HubserveError):
    status = 409
    type = "ModelVersionInUse"


class VersionCreate(pydantic.BaseModel):
    """A new version: where its model is and what is known about it."""

    model_config = pydantic.ConfigDict(extra="forbid")

    source: str = pydantic.Field(description="A local model folder (copied into the registry), a Hub repo id, or a URI.")
    revision: str | None = pydantic.Field(default=None, description="Hub branch, tag or commit; Hub ids only.")
    task: str | None = pydantic.Field(default=None, description="Inferred from a folder's config when omitted.")
    metrics: dict[str, Any] = pydantic.Field(default_factory=dict, description="Evaluation figures, as JSON.")
    description: str = pydantic.Field(default="", max_length=4000)


class ApprovalChange(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    approval_status: str = pydantic.Field(description="PendingManualApproval, Approved or Rejected (SageMaker's names).")


def registry_of(services: Services) -> RegistryStore:
    """The registry the controller resolves ``registry://`` sources through (the composition root sets it)."""
    registry = services.controller.registry
    if registry is None:
        raise HubserveError("this server was built without a model registry")
    return registry


def artifact_root(services: Services) -> Path:
    return services.settings.home_dir / "registry"


def _bad(field: str, message: str) -> ValidationError:
    return ValidationError(f"The model version is invalid: {field}: {message}", details=[{"field": field, "message": message}])


def _parsed(model: type[pydantic.BaseModel], body: Any) -> Any:
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as exc:
        details = field_details(list(exc.errors()))
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        raise ValidationError(f"The request is invalid: {summary}", details=details) from None


def _group_name(group: str) -> str:
    if not model_registry.GROUP_NAME.fullmatch(group):
        raise _bad("group", f"'{group}' is not a model group name: 1-63 letters, digits and hyphens, "
                            "starting and ending with a letter or digit")  # fmt: skip
    return group


def _version(registry: RegistryStore, group: str, number: int) -> ModelVersion:
    found = registry.get(group, number)
    if found is None:
        if registry.group(group) is None:
            raise ModelGroupNotFound(f"Model group '{group}' does not exist")
        raise ModelVersionNotFound(f"Model group '{group}' has no version {number}")
    return found


def describe_version(services: Services, version: ModelVersion) -> dict[str, Any]:
    """The version's record plus the endpoints that run it (pinned, or following latest-approved)."""
    return {**version.to_dict(), "endpoints": services.controller.users_of(version.group, version.number)}


def register(services: Services, group: str, body: VersionCreate, recorded_as: str | None = None) -> ModelVersion:
    """Check the source, store a folder's files (blocking: run off the event loop), add the record.

    Shared with SageMaker's CreateModelPackage; ``recorded_as`` names what the record calls a folder's source
    when the folder is a temporary copy (an extracted ``model.tar.gz`` or an S3 prefix: its URL)."""
    settings = services.settings
    task, sha = body.task, None
    if sources.is_local(body.source):
        if body.revision is not None:
            raise _bad("revision", "revision applies to Hub repo ids only; remove it for a local folder")
        try:
            folder = sources.resolve_local(body.source, settings.allowed_model_roots or None)
        except sources.SourceError as exc:
            raise _bad("source", str(exc)) from None
        if task is None:
            from hubserve.models.task_inference import infer_task

            try:
                task = infer_task(folder)
            except ValueError as exc:
                raise _bad("task", str(exc)) from None
        try:
            sha = artifacts.store(folder, artifact_root(services))
        except (OSError, artifacts.ArtifactMismatch) as exc:
            raise _bad("source", f"could not copy '{folder}' into the registry: {exc}") from None
        kind, source = "folder", recorded_as or str(folder)
    elif _URI.fullmatch(body.source):
        if body.revision is not None:
            raise _bad("revision", "revision applies to Hub repo ids only; remove it for a URI")
        kind, source = "uri", body.source
    else:
        try:
            sources.validate_hub_id(body.source)
            sources.validate_revision(body.revision)
        except sources.SourceError as exc:
            raise _bad("source" if "revision" not in str(exc) else "revision", str(exc)) from None
        kind, source = "hub", body.source
    return registry_of(services).add_version(
        group, source_kind=kind, source=source, revision=body.revision, task=task, metrics=body.metrics,
        description=body.description, sha256=sha,
    )  # fmt: skip


@router.post("/{group}/versions", status_code=201, summary="Register a new version of a model group")
async def register_version(services: ServicesDep, group: str, body: Any = Body(...)) -> JSONResponse:
    request = _parsed(VersionCreate, body)
    version = await asyncio.to_thread(register, services, _group_name(group), request)
    return JSONResponse(describe_version(services, version), status_code=201)


@router.get("", summary="List model groups")
async def list_groups(services: ServicesDep) -> dict[str, Any]:
    return {"items": [group.to_dict() for group in registry_of(services).groups()]}


@router.get("/{group}/versions", summary="List a model group's versions")
async def list_versions(services: ServicesDep, group: str) -> dict[str, Any]:
    registry = registry_of(services)
    if registry.group(group) is None:
        raise ModelGroupNotFound(f"Model group '{group}' does not exist")
    return {"items": [describe_version(services, version) for version in registry.versions(group)]}


@router.get("/{group}/versions/{number}", summary="Describe a model version")
async def get_version(services: ServicesDep, group: str, number: int) -> dict[str, Any]:
    return describe_version(services, _version(registry_of(services), group, number))


def set_approval(services: Services, group: str, number: int, approval: str) -> dict[str, Any]:
    """Approve, reject or reset a version; approving rolls endpoints on latest-approved (REST and SageMaker)."""
    registry = registry_of(services)
    _version(registry, group, number)
    if approval not in APPROVALS:
        raise _bad("approval_status", f"must be one of {', '.join(APPROVALS)}")
    if approval == REJECTED:
        users = services.controller.users_of(group, number, pinned_only=True)
        if users:
            raise ModelVersionInUse(
                f"registry://{group}/{number} runs on endpoint(s) {', '.join(users)}: move them to another version "
                "before rejecting it"
            )
    version = registry.set_approval(group, number, approval)
    assert version is not None
    rolled = services.controller.follow_approval(group)  # approving (or un-approving) changes latest-approved
    return {**describe_version(services, version), "rolled_endpoints": rolled}


@router.post("/{group}/versions/{number}/approve", summary="Approve a version (rolls endpoints on latest-approved)")
async def approve_version(services: ServicesDep, group: str, number: int) -> dict[str, Any]:
    return set_approval(services, group, number, APPROVED)


@router.post("/{group}/versions/{number}/reject", summary="Reject a version")
async def reject_version(services: ServicesDep, group: str, number: int) -> dict[str, Any]:
    return set_approval(services, group, number, REJECTED)


@router.patch("/{group}/versions/{number}", summary="Change a version's approval status")
async def patch_version(services: ServicesDep, group: str, number: int, body: Any = Body(...)) -> dict[str, Any]:
    change = _parsed(ApprovalChange, body)
    return set_approval(services, group, number, change.approval_status)


@router.delete("/{group}/versions/{number}", summary="Delete a version no endpoint uses")
async def delete_version(services: ServicesDep, group: str, number: int) -> dict[str, Any]:
    registry = registry_of(services)
    version = _version(registry, group, number)
    users = services.controller.users_of(group, number)
    if users:
        raise ModelVersionInUse(
            f"{version.uri} is used by endpoint(s) {', '.join(users)}: point them at another version "
            "(or delete them) first",
            details=[{"field": "endpoints", "message": name} for name in users],
        )
    registry.delete_version(group, number)
    if version.sha256 and not registry.hash_in_use(version.sha256):
        await asyncio.to_thread(_remove_files, artifact_root(services) / version.sha256)
    return {**version.to_dict(), "deleted": True}


def _remove_files(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
