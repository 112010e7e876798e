"""The SageMaker control plane over awsJson1_1: ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>``.

boto3's ``sagemaker`` client pointed at hubserve (``endpoint_url``) talks to this route. Each request
is SigV4-checked when the server has a token, decoded, dispatched to ``operations.OPERATIONS``,
and answered as awsJson: the output shape as JSON, or ``{"__type", "message"}`` with its status.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pydantic
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hubserve.api import deps
from hubserve.api.bodies import BodyError, parse_json
from hubserve.api.sagemaker import (
    model_packages,  # noqa: F401  (the model registry's calls register themselves)
    sigv4,
    tagging,  # noqa: F401  (AddTags, DeleteTags and ListTags register themselves)
)
from hubserve.api.sagemaker.errors import (
    AMZ_JSON,
    SageMakerApiError,
    error_json,
    validation,
)
from hubserve.api.sagemaker.operations import OPERATIONS, Context
from hubserve.errors import EndpointNotFound, HubserveError, ValidationError

log = logging.getLogger("hubserve.sagemaker")
_TARGET_PREFIX = "SageMaker."


router = APIRouter(tags=["sagemaker"])


@router.post("/", summary="SageMaker control plane (awsJson1_1; X-Amz-Target: SageMaker.<Operation>)")
async def sagemaker_control_plane(request: Request) -> Response:
    try:
        return await _handle(request)
    except SageMakerApiError as error:
        return error_json(error)


async def _handle(request: Request) -> Response:
    body = await request.body()
    services = deps.services(request)
    headers = {name.lower(): value for name, value in request.headers.items()}
    # SigV4 (or a bearer token) was verified by the authentication layer (api.auth) before the body was read.
    target = headers.get("x-amz-target", "")
    name = target.removeprefix(_TARGET_PREFIX) if target.startswith(_TARGET_PREFIX) else ""
    operation = OPERATIONS.get(name)
    if operation is None:
        supported = ", ".join(sorted(OPERATIONS))
        raise SageMakerApiError(
            "UnknownOperationException",
            f"Operation {target or '(no X-Amz-Target)'} is not supported by hubserve. Supported: {supported}.",
        )
    try:
        payload: Any = parse_json(body, empty={})
    except BodyError as exc:
        raise SageMakerApiError("SerializationException", exc.message) from None
    if not isinstance(payload, dict):
        raise SageMakerApiError("SerializationException", "The request body must be a JSON object.")
    region = sigv4.region_of(headers.get("authorization")) or "us-east-1"
    context = Context(services.controller, services.sagemaker_store, services.settings, services.storage, region, services)
    try:
        result = await operation(context, payload)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise validation(f"{len(exc.errors())} validation error(s) detected: {problems}") from None
    except EndpointNotFound as exc:
        raise validation(exc.message) from None
    except ValidationError as exc:
        raise validation(exc.message) from None
    except HubserveError as exc:
        raise SageMakerApiError(exc.type, exc.message, exc.status) from None
    return JSONResponse(result, media_type=AMZ_JSON, headers={"x-amzn-RequestId": str(uuid.uuid4())})
