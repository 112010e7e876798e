"""SageMaker model packages as hubserve registry versions: names, ARNs, request shapes and Describe answers.

A model package group is a registry group and a versioned model package is one of its versions:
``arn:aws:sagemaker:<region>:<account>:model-package-group/<group>`` and
``arn:aws:sagemaker:<region>:<account>:model-package/<group>/<N>``. Where SageMaker takes a
package's name, ``group/N`` works as well as the ARN; CreateModel also takes the group's ARN (or
``group/latest-approved``) to follow the newest Approved version, a hubserve extension.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hubserve.api.sagemaker import status
from hubserve.api.sagemaker.errors import validation
from hubserve.api.sagemaker.shapes import endpoint_spec as container_spec
from hubserve.store import registry as model_registry
from hubserve.store.registry import LATEST, ModelGroup, ModelVersion, RegistryStore

IMAGE = "hubserve"  # what Describe reports as a package's image: hubserve runs every model in its own runtime
_NAME = r"[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62}"
_ARN_PREFIX = r"arn:aws[a-z-]*:sagemaker:[a-z0-9-]*:[0-9]{12}:"
_PACKAGE_ARN = re.compile(rf"{_ARN_PREFIX}model-package/(?P<group>{_NAME})/(?P<number>[0-9]{{1,9}})")
_GROUP_ARN = re.compile(rf"{_ARN_PREFIX}model-package-group/(?P<group>{_NAME})")
_VERSIONED = re.compile(rf"(?P<group>{_NAME})/(?P<number>[0-9]{{1,9}}|{LATEST})")
_METRICS_KEY = "ModelMetrics"  # where a package's ModelMetrics live in the version's metrics


class _Shape(BaseModel):
    """Members boto3 may send that hubserve does not use are accepted and ignored."""

    model_config = ConfigDict(extra="allow")


class PackageContainer(_Shape):
    ModelDataUrl: str | None = None
    Environment: dict[str, str] = Field(default_factory=dict)
    Image: str | None = None


class InferenceSpecificationShape(_Shape):
    Containers: list[PackageContainer] = Field(min_length=1)


class CreateModelPackageGroupInput(_Shape):
    ModelPackageGroupName: str
    ModelPackageGroupDescription: str = Field(default="", max_length=1024)


class CreateModelPackageInput(_Shape):
    ModelPackageGroupName: str | None = None
    ModelPackageName: str | None = None
    ModelPackageDescription: str = Field(default="", max_length=1024)
    InferenceSpecification: InferenceSpecificationShape | None = None
    ModelApprovalStatus: str = model_registry.PENDING
    CustomerMetadataProperties: dict[str, str] = Field(default_factory=dict)
    ModelMetrics: dict[str, Any] | None = None


class UpdateModelPackageInput(_Shape):
    ModelPackageArn: str
    ModelApprovalStatus: str | None = None
    ApprovalDescription: str | None = None


class ListInput(_Shape):
    """ListModelPackages and ListModelPackageGroups: filters, order (SageMaker's default: oldest first), pages."""

    ModelPackageGroupName: str | None = None
    ModelApprovalStatus: str | None = None
    ModelPackageType: Literal["Versioned", "Unversioned", "Both"] = "Both"
    NameContains: str | None = None
    CreationTimeBefore: dt.datetime | None = None  # botocore sends epoch seconds
    CreationTimeAfter: dt.datetime | None = None
    SortBy: Literal["Name", "CreationTime"] = "CreationTime"
    SortOrder: Literal["Ascending", "Descending"] = "Ascending"
    NextToken: str | None = None
    MaxResults: int = Field(default=10, ge=1, le=100)


def group_arn(region: str, group: str) -> str:
    return status.arn(region, "model-package-group", group)


def package_arn(region: str, version: ModelVersion) -> str:
    return status.arn(region, "model-package", f"{version.group}/{version.number}")


def check_approval(member: str, value: str) -> str:
    if value not in model_registry.APPROVALS:
        raise validation(f"{member} {value!r} is invalid: use one of {', '.join(model_registry.APPROVALS)}.")
    return value


def group_name(registry: RegistryStore, given: str, member: str = "ModelPackageGroupName") -> str:
    """The registry group a group name or ARN names; ValidationException when there is none (ARNs lower-case names)."""
    match = _GROUP_ARN.fullmatch(given)
    name = match["group"] if match else given
    if match is None and not re.fullmatch(_NAME, given):
        raise validation(f"{member} {given!r} is invalid: a model package group's name (1-63 letters, digits or '-') "
                         "or its ARN (arn:aws:sagemaker:REGION:ACCOUNT:model-package-group/NAME).")  # fmt: skip
    found = _group(registry, name)
    if found is None:
        raise validation(f"ModelPackageGroup {given!r} does not exist: create it with CreateModelPackageGroup "
                         "(ListModelPackageGroups lists those there are).")  # fmt: skip
    return found.name


def _group(registry: RegistryStore, name: str) -> ModelGroup | None:
    groups = registry.groups()
    exact = next((group for group in groups if group.name == name), None)
    return exact or next((group for group in groups if group.name.lower() == name.lower()), None)


def parse_package(registry: RegistryStore, given: str, member: str, follow: bool = False) -> tuple[str, int | None]:
    """(group, N) of a package ARN or ``group/N``; with ``follow``, (group, None) for a group ARN or ``group/latest-approved``.

    The group must exist; whether version N does is the caller's question.
    """
    arn = _PACKAGE_ARN.fullmatch(given)
    group_arn_match = _GROUP_ARN.fullmatch(given) if follow else None
    versioned = _VERSIONED.fullmatch(given)
    if arn:
        name, number = arn["group"], int(arn["number"])
    elif group_arn_match:
        name, number = group_arn_match["group"], None
    elif versioned and (follow or versioned["number"] != LATEST):
        name, number = versioned["group"], None if versioned["number"] == LATEST else int(versioned["number"])
    else:
        following = (" or, to follow the newest Approved version, the group's ARN "
                     "(arn:aws:sagemaker:REGION:ACCOUNT:model-package-group/GROUP) or GROUP/latest-approved") if follow else ""  # fmt: skip
        raise validation(f"{member} {given!r} is invalid: name a model package version, as its ARN "
                         f"(arn:aws:sagemaker:REGION:ACCOUNT:model-package/GROUP/N) or GROUP/N{following}. "
                         "hubserve keeps versioned model packages only.")  # fmt: skip
    found = _group(registry, name)
    if found is None:
        raise validation(f"{member} {given!r}: ModelPackageGroup {name!r} does not exist (ListModelPackageGroups).")
    return found.name, number


def version_of(registry: RegistryStore, region: str, group: str, number: int) -> ModelVersion:
    version = registry.get(group, number)
    if version is None:
        raise validation(f"ModelPackage {status.arn(region, 'model-package', f'{group}/{number}')} does not exist: "
                         f"ListModelPackages(ModelPackageGroupName={group!r}) lists its versions.")  # fmt: skip
    return version


def metrics_for(request: CreateModelPackageInput) -> dict[str, Any]:
    """The version's metrics: CustomerMetadataProperties as they are, plus ModelMetrics under its own key."""
    metrics: dict[str, Any] = dict(request.CustomerMetadataProperties)
    if request.ModelMetrics:
        metrics[_METRICS_KEY] = request.ModelMetrics
    return metrics


def group_summary(region: str, group: ModelGroup) -> dict[str, Any]:
    summary = {
        "ModelPackageGroupName": group.name, "ModelPackageGroupArn": group_arn(region, group.name),
        "CreationTime": group.created_at.timestamp(), "ModelPackageGroupStatus": "Completed",
    }  # fmt: skip
    if group.description:
        summary["ModelPackageGroupDescription"] = group.description
    return summary


def package_summary(region: str, version: ModelVersion) -> dict[str, Any]:
    summary = {
        "ModelPackageName": version.group, "ModelPackageGroupName": version.group, "ModelPackageVersion": version.number,
        "ModelPackageArn": package_arn(region, version), "CreationTime": version.created_at.timestamp(),
        "ModelPackageStatus": "Completed", "ModelApprovalStatus": version.approval,
    }  # fmt: skip
    if version.description:
        summary["ModelPackageDescription"] = version.description
    return summary


def describe(region: str, version: ModelVersion) -> dict[str, Any]:
    """DescribeModelPackage: the summary, the container the version runs, its metadata and metrics."""
    container: dict[str, Any] = {"Image": IMAGE}
    environment: dict[str, str] = {}
    if version.source_kind == "hub":
        environment["HF_MODEL_ID"] = version.source
        if version.revision:
            environment["HF_MODEL_REVISION"] = version.revision
    else:
        container["ModelDataUrl"] = version.source
    if version.task:
        environment["HF_TASK"] = version.task
    if environment:
        container["Environment"] = environment
    metrics = dict(version.metrics)
    model_metrics = metrics.pop(_METRICS_KEY, None)
    described: dict[str, Any] = {
        **package_summary(region, version),
        "InferenceSpecification": {
            "Containers": [container],
            "SupportedContentTypes": ["application/json", "text/csv"],
            "SupportedResponseMIMETypes": ["application/json", "text/csv"],
        },
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "CertifyForMarketplace": False,
        "LastModifiedTime": version.updated_at.timestamp(),
        "CreatedBy": {},
    }
    if metrics:
        described["CustomerMetadataProperties"] = {
            key: value if isinstance(value, str) else json.dumps(value) for key, value in metrics.items()
        }
    if isinstance(model_metrics, dict):
        described["ModelMetrics"] = model_metrics
    return described


def listed(items: list[Any], request: ListInput, name: Any, created: Any) -> list[Any]:
    """Filter by NameContains and creation time, then order as asked (``name``/``created``: each item's)."""
    after, before = request.CreationTimeAfter, request.CreationTimeBefore
    kept = [
        item for item in items
        if (not request.NameContains or request.NameContains.lower() in name(item).lower())
        and (after is None or created(item) > _utc(after)) and (before is None or created(item) < _utc(before))
    ]  # fmt: skip
    key = name if request.SortBy == "Name" else created
    return sorted(kept, key=key, reverse=request.SortOrder == "Descending")


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def registry_source(group: str, number: int | None) -> str:
    return f"{model_registry.SCHEME}{group}/{LATEST if number is None else number}"


def package_source(registry: RegistryStore | None, region: str, given: str) -> str:
    """The ``registry://`` source of a CreateModel container's ModelPackageName: an Approved version, or the group
    to follow (its ARN or ``GROUP/latest-approved``); ValidationException otherwise."""
    if registry is None:
        raise validation("This hubserve server has no model registry, so PrimaryContainer.ModelPackageName cannot be used.")
    group, number = parse_package(registry, given, "PrimaryContainer.ModelPackageName", follow=True)
    if number is not None:
        version = version_of(registry, region, group, number)
        if version.approval != model_registry.APPROVED:
            raise validation(f"ModelPackage {package_arn(region, version)} is {version.approval}: a model is made "
                             "from an Approved version only (UpdateModelPackage with ModelApprovalStatus='Approved').")  # fmt: skip
    return registry_source(group, number)


def endpoint_spec(name: str, config: dict[str, Any], definition: dict[str, Any]) -> dict[str, Any]:
    """The EndpointSpec document of an endpoint whose model was made from a package (its ``registry://`` source).

    The rest (compute, async config, the container's Environment) maps as for any SageMaker model.
    """
    source = definition["hubserve"]["registry_source"]
    return container_spec(name, config, {**definition, "hubserve": {"model_dir": source}}, custom_code=False)
