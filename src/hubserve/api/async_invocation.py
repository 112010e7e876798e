"""Async invocation routes (SageMaker's InvokeEndpointAsync, plus status and listing).

The body is never read whole here: it is handed to the service as ``request.stream()``, which
writes it to storage chunk by chunk. InvokeEndpointAsync's failures are answered in SageMaker's
shape, as InvokeEndpoint's are (``x-amzn-ErrorType`` and ``message``), so boto3 and the AWS CLI
show the code and message; status and listing are hubserve's own and answer hubserve's shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from hubserve.api import deps
from hubserve.api.sagemaker.invocations import sagemaker_error
from hubserve.asyncinf import AsyncInference
from hubserve.errors import HubserveError, ValidationError
from hubserve.store.inferences import InferenceRecord

router = APIRouter(tags=["async inference"])

_STATUSES = ("queued", "running", "succeeded", "failed", "expired")


def _service(request: Request) -> AsyncInference:
    return deps.async_inference(request)


@router.post(
    "/endpoints/{name}/async-invocations",
    status_code=202,
    summary="Queue an inference (SageMaker InvokeEndpointAsync): payload inline or by input location",
)
async def invoke_async(request: Request, name: str) -> JSONResponse:
    try:
        record, _new = await _service(request).submit(name, request.headers, request.stream())
    except ClientDisconnect:
        left = ValidationError("The client closed the connection before the payload was complete; nothing was queued.")
        return sagemaker_error(left, name)
    except HubserveError as error:
        return sagemaker_error(error, name)
    return JSONResponse(
        {
            "inferenceId": record.id,
            "InferenceId": record.id,  # boto3's InvokeEndpointAsync reads InferenceId from the body
            "outputLocation": record.output_location,
            "failureLocation": record.failure_location,
            "status": record.status,
        },
        status_code=202,
        headers={
            "X-Amzn-SageMaker-Inference-Id": record.id,
            "X-Amzn-SageMaker-OutputLocation": record.output_location,
            "X-Amzn-SageMaker-FailureLocation": record.failure_location,
        },
    )


@router.get("/endpoints/{name}/async-invocations/{inference_id}", summary="Status of one async inference")
async def get_async_inference(request: Request, name: str, inference_id: str) -> dict[str, Any]:
    return _service(request).get(name, inference_id).to_json()


@router.get("/endpoints/{name}/async-invocations", summary="Async inferences of an endpoint, newest first")
async def list_async_inferences(
    request: Request, name: str, status: str | None = None, limit: int = Query(default=100, ge=1, le=1000)
) -> dict[str, Any]:
    if status is not None and status not in _STATUSES:
        raise ValidationError(f"status must be one of {', '.join(_STATUSES)} (got {status!r})")
    records: list[InferenceRecord] = _service(request).list(name, status, limit)
    return {"items": [record.to_json() for record in records]}
