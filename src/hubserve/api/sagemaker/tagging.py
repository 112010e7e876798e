"""AddTags, DeleteTags and ListTags on SageMaker models, endpoint configs and endpoints.

Tags live in the store (``SageMakerStore.tags``) under the resource an ARN names, so they survive
a restart; the SageMaker Python SDK's ``Predictor.update_endpoint()`` reads them with ListTags.
A malformed ARN, or one naming a kind of resource hubserve does not have, is a ValidationException;
a well-formed ARN whose resource does not exist is ResourceNotFound, as SageMaker answers both.
"""

from __future__ import annotations

from typing import Any

from hubserve.api.sagemaker import shapes
from hubserve.api.sagemaker.errors import SageMakerApiError, validation
from hubserve.api.sagemaker.operations import Context, operation
from hubserve.store.sagemaker import Listing

MAX_TAGS = 50  # per resource, SageMaker's limit
_KINDS = {"model": "model", "endpoint-config": "endpoint configuration", "endpoint": "endpoint"}


@operation
async def add_tags(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = shapes.AddTagsInput.model_validate(body)
    resource = _existing(ctx, request.ResourceArn)
    tags = {tag.Key: tag.Value for tag in request.Tags}
    if len(ctx.store.tags.list(resource).keys() | tags.keys()) > MAX_TAGS:
        raise validation(f"A resource has at most {MAX_TAGS} tags; delete some with DeleteTags first.")
    ctx.store.tags.add(resource, tags)
    return {"Tags": _shaped(tags)}


@operation
async def delete_tags(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = shapes.DeleteTagsInput.model_validate(body)
    ctx.store.tags.delete(_existing(ctx, request.ResourceArn), request.TagKeys)
    return {}


@operation
async def list_tags(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    request = shapes.ListTagsInput.model_validate(body)
    tags = _shaped(ctx.store.tags.list(_existing(ctx, request.ResourceArn)))
    items, token = shapes.page(tags, request.NextToken, request.MaxResults)
    answer: dict[str, Any] = {"Tags": items}
    if token is not None:
        answer["NextToken"] = token
    return answer


def _shaped(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def _existing(ctx: Context, arn: str) -> str:
    """The tag key of the resource ``arn`` names; ResourceNotFound when there is no such resource."""
    kind, name = shapes.parse_arn(arn)
    if not _exists(ctx, kind, name):
        raise SageMakerApiError("ResourceNotFound", f'Could not find {_KINDS[kind]} "{arn}".')
    return shapes.resource(kind, name)


def _exists(ctx: Context, kind: str, name: str) -> bool:
    if kind == "endpoint":
        return ctx.controller.live(name.lower()) is not None  # endpoint names are lower case
    get, listed = (
        (ctx.store.get_model, ctx.store.list_models) if kind == "model" else (ctx.store.get_config, ctx.store.list_configs)
    )
    if get(name) is not None:
        return True
    # An ARN lower-cases the name; the resource may have been created as "MyModel".
    return any(found.name.lower() == name.lower() for found in listed(Listing(name_contains=name)))
