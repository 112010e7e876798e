"""SageMaker request shapes (the members hubserve reads) and their translation into an EndpointSpec.

The mapping, in one place:
- a model's ``PrimaryContainer``: ``ModelDataUrl`` (folder, ``file://``, ``s3://``, ``model.tar.gz``) or
  ``Environment.HF_MODEL_ID`` -> ``model.source``; ``HF_TASK`` -> ``model.task``; ``HF_MODEL_REVISION``
  -> ``model.revision``; other variables -> ``env``; ``code/inference.py`` or ``handler.py`` in the
  folder turn ``custom_code`` on, as SageMaker's Hugging Face container runs them;
- ``ServerlessConfig`` -> serverless compute (memory, max and provisioned concurrency);
- ``InstanceType`` x ``InitialInstanceCount`` -> dedicated compute, ``min = max = count`` replicas of
  the size ``instance_size`` picks;
- ``AsyncInferenceConfig`` -> ``async_inference`` (S3OutputPath, MaxConcurrentInvocationsPerInstance).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hubserve.api.sagemaker.errors import validation
from hubserve.instance_types import hubserve_instance
from hubserve.spec import EndpointSpec

# SageMaker names: letters, digits and single hyphens; hubserve endpoint names are also lower case.
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_CONSUMED_ENV = ("HF_MODEL_ID", "HF_TASK", "HF_MODEL_REVISION")
_TOKEN_PREFIX = "hubserve-page:"
_ARN = re.compile(
    r"arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:(?P<kind>model|endpoint-config|endpoint)/"
    r"(?P<name>[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62})"
)


class _Shape(BaseModel):
    """Members boto3 may send that hubserve does not use are accepted and ignored."""

    model_config = ConfigDict(extra="allow")


class ContainerDefinition(_Shape):
    ModelDataUrl: str | None = None
    Mode: Literal["SingleModel", "MultiModel"] | None = None  # MultiModel: ModelDataUrl is a prefix of models
    Environment: dict[str, str] = Field(default_factory=dict)
    Image: str | None = None


class CreateModelInput(_Shape):
    ModelName: str
    PrimaryContainer: ContainerDefinition | None = None
    Containers: list[ContainerDefinition] | None = None


class ServerlessConfigShape(_Shape):
    MemorySizeInMB: int
    MaxConcurrency: int
    ProvisionedConcurrency: int | None = None


class ProductionVariantShape(_Shape):
    VariantName: str
    ModelName: str | None = None
    InitialInstanceCount: int | None = None
    InstanceType: str | None = None
    ServerlessConfig: ServerlessConfigShape | None = None


class CreateEndpointConfigInput(_Shape):
    EndpointConfigName: str
    ProductionVariants: list[ProductionVariantShape]
    AsyncInferenceConfig: dict[str, Any] | None = None


class CreateEndpointInput(_Shape):
    EndpointName: str
    EndpointConfigName: str


class NameInput(_Shape):
    """Describe and delete operations: one name member."""

    EndpointName: str | None = None
    EndpointConfigName: str | None = None
    ModelName: str | None = None


class ListEndpointsInput(_Shape):
    SortBy: str = "CreationTime"
    SortOrder: str = "Descending"
    NextToken: str | None = None
    MaxResults: int = Field(default=10, ge=1, le=100)
    NameContains: str | None = None
    StatusEquals: str | None = None


class ListDefinitionsInput(_Shape):
    """ListModels and ListEndpointConfigs: the same filters, order and pagination."""

    NameContains: str | None = None
    CreationTimeBefore: dt.datetime | None = None  # botocore sends epoch seconds
    CreationTimeAfter: dt.datetime | None = None
    SortBy: Literal["Name", "CreationTime"] = "CreationTime"
    SortOrder: Literal["Ascending", "Descending"] = "Descending"
    NextToken: str | None = None
    MaxResults: int = Field(default=10, ge=1, le=100)


class TagShape(BaseModel):
    Key: str = Field(min_length=1, max_length=128)
    Value: str = Field(default="", max_length=256)


class TagsInput(_Shape):
    """The ``Tags`` of a create request (CreateModel, CreateEndpointConfig, CreateEndpoint)."""

    Tags: list[TagShape] = Field(default_factory=list, max_length=50)


class AddTagsInput(_Shape):
    ResourceArn: str
    Tags: list[TagShape] = Field(max_length=50)


class DeleteTagsInput(_Shape):
    ResourceArn: str
    TagKeys: list[str] = Field(min_length=1, max_length=50)


class ListTagsInput(_Shape):
    ResourceArn: str
    NextToken: str | None = None
    MaxResults: int = Field(default=50, ge=50)  # SageMaker's own bound: at least 50


def page(items: list[Any], next_token: str | None, max_results: int) -> tuple[list[Any], str | None]:
    """One page of ``items`` and the NextToken of the next one (None: this is the last).

    The token is opaque to clients (an encoded offset); one this server did not give is refused.
    """
    start = _offset(next_token) if next_token else 0
    end = start + max_results
    token = base64.urlsafe_b64encode(f"{_TOKEN_PREFIX}{end}".encode()).decode() if end < len(items) else None
    return items[start:end], token


def _offset(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if text.startswith(_TOKEN_PREFIX) and int(text[len(_TOKEN_PREFIX) :]) >= 0:
            return int(text[len(_TOKEN_PREFIX) :])
    except ValueError:  # not base64, not text, not a number
        pass
    raise validation("NextToken is invalid: pass the NextToken of the previous answer unchanged, or none.")


def resource(kind: str, name: str) -> str:
    """What an ARN names after its account (``model/my-model``): the key tags are kept under."""
    return f"{kind}/{name.lower()}"


def parse_arn(arn: str) -> tuple[str, str]:
    """(kind, name) of a model's, endpoint config's or endpoint's ARN; ValidationException for anything else."""
    match = _ARN.fullmatch(arn)
    if match is None:
        raise validation(
            f"ResourceArn {arn!r} is invalid: hubserve tags models, endpoint configs and endpoints, with ARNs "
            "such as arn:aws:sagemaker:us-east-1:000000000000:endpoint/my-endpoint (as Describe* answers give them)."
        )
    return match["kind"], match["name"]


def check_name(kind: str, name: str) -> str:
    if not SAGEMAKER_NAME.fullmatch(name):
        raise validation(f"{kind} {name!r} is invalid: 1-63 letters, digits or '-', starting with a letter or digit.")
    return name


def instance_size(instance_type: str) -> str:
    """hubserve's dedicated size for a SageMaker instance type (the table in ``hubserve.instance_types``)."""
    try:
        return hubserve_instance(instance_type)
    except ValueError as exc:
        raise validation(f"InstanceType: {exc}") from None


def model_section(definition: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], bool]:
    """``model`` of the spec, its ``env``, and whether a local folder is the source (from a stored model)."""
    container = definition.get("PrimaryContainer") or {}
    environment: dict[str, str] = dict(container.get("Environment") or {})
    local_dir = definition.get("hubserve", {}).get("model_dir")
    many = definition.get("hubserve", {}).get("multi_model_source")
    model: dict[str, Any] = {}
    if many:  # a multi-model endpoint: every model under the prefix (or folder), by TargetModel
        model["source"], model["multi_model"] = many, True
    elif local_dir:
        model["source"] = local_dir
    elif environment.get("HF_MODEL_ID"):
        model["source"] = environment["HF_MODEL_ID"]
        if environment.get("HF_MODEL_REVISION"):
            model["revision"] = environment["HF_MODEL_REVISION"]
    else:
        raise validation("The model has neither a ModelDataUrl nor Environment.HF_MODEL_ID.")
    if environment.get("HF_TASK"):
        model["task"] = environment["HF_TASK"]
    env = {k: v for k, v in environment.items() if k not in _CONSUMED_ENV and not k.startswith(("SAGEMAKER_", "SM_"))}
    return model, env, bool(local_dir)


def compute_section(variant: dict[str, Any]) -> dict[str, Any]:
    serverless = variant.get("ServerlessConfig")
    if serverless:
        return {
            "type": "serverless",
            "memory_mb": serverless["MemorySizeInMB"],
            "max_concurrency": serverless["MaxConcurrency"],
            "provisioned_concurrency": serverless.get("ProvisionedConcurrency") or 0,
        }
    if variant.get("InstanceType"):
        count = variant.get("InitialInstanceCount") or 1
        return {
            "type": "dedicated",
            "instance": instance_size(variant["InstanceType"]),
            "min_replicas": count,
            "max_replicas": count,
        }
    raise validation("ProductionVariants[0] needs a ServerlessConfig or an InstanceType with InitialInstanceCount.")


def async_section(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if not config:
        return None
    output = config.get("OutputConfig") or {}
    section: dict[str, Any] = {}
    if output.get("S3OutputPath"):
        section["output_location"] = output["S3OutputPath"]
    per_instance = (config.get("ClientConfig") or {}).get("MaxConcurrentInvocationsPerInstance")
    if per_instance:
        section["max_concurrent_invocations_per_replica"] = per_instance
    return section


def endpoint_spec(name: str, config: dict[str, Any], model: dict[str, Any], custom_code: bool) -> dict[str, Any]:
    """The EndpointSpec document (not yet validated) for an endpoint built from a config and its model."""
    model_part, env, _local = model_section(model)
    spec: dict[str, Any] = {
        "name": name,
        "model": model_part,
        "compute": compute_section(config["ProductionVariants"][0]),
        "env": env,
        "custom_code": custom_code,
    }
    async_part = async_section(config.get("AsyncInferenceConfig"))
    if async_part is not None:
        spec["async_inference"] = async_part
    return spec


def variant_config(spec: EndpointSpec) -> dict[str, Any]:
    """What DescribeEndpoint reports of a spec's compute: a serverless config or an instance count."""
    compute = spec.compute
    if compute.type == "serverless":
        return {
            "serverless": {
                "MemorySizeInMB": compute.memory_mb,
                "MaxConcurrency": compute.max_concurrency,
                "ProvisionedConcurrency": compute.provisioned_concurrency,
            }
        }
    return {"instances": compute.min_replicas}
