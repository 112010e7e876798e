"""Invocation routes: the Hugging Face toolkit's and the SageMaker runtime's, one implementation.

The hot path: the body is read raw (bounded by the payload limit) and handed to the gateway
as bytes; no per-request model validation happens in this process.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hubserve.api.errors import error_response
from hubserve.errors import HubserveError, PayloadTooLarge

router = APIRouter(tags=["invocation"])

_INVOKE_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "properties": {"inputs": {}, "parameters": {"type": "object"}}, "required": ["inputs"]}}},
    }
}


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = PayloadTooLarge(
        f"The request body is larger than {limit // (1024 * 1024)} MB; send smaller batches, "
        "or use asynchronous inference for large payloads."
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _invoke(request: Request, name: str, sagemaker: bool) -> Response:
    started = time.perf_counter()
    state = request.app.state
    try:
        body = await _read_body(request, state.settings.max_payload_bytes)
        headers = request.headers
        content_type = headers.get("content-type", "application/json")
        accept = headers.get("accept", "application/json")
        result = await state.gateway.invoke(name, body, content_type, accept)
    except HubserveError as error:
        overhead = (time.perf_counter() - started) * 1000.0 - float(error.headers.get("x-model-latency-ms", 0.0))
        error.headers["x-overhead-latency-ms"] = f"{overhead:.3f}"
        return _sagemaker_error(error) if sagemaker else error_response(error)
    overhead_ms = (time.perf_counter() - started) * 1000.0 - result.model_latency_ms
    return Response(
        content=result.body,
        media_type=result.content_type,
        headers={
            "x-model-latency-ms": f"{result.model_latency_ms:.3f}",
            "x-overhead-latency-ms": f"{overhead_ms:.3f}",
            "x-cold-start": "true" if result.cold_start else "false",
        },
    )


def _sagemaker_error(error: HubserveError) -> JSONResponse:
    """The SageMaker runtime's error shape: the type in x-amzn-ErrorType and the body."""
    body = {"ErrorCode": error.type, "Message": error.message, "message": error.message}
    if error.type == "ModelError":
        body["OriginalStatusCode"] = 400
        body["OriginalMessage"] = error.message
    return JSONResponse(body, status_code=error.status, headers={"x-amzn-ErrorType": error.type, **error.headers})


@router.post("/endpoints/{name}", summary="Invoke (Hugging Face inference toolkit shape)", openapi_extra=_INVOKE_DOC)
async def invoke_hf(request: Request, name: str) -> Response:
    return await _invoke(request, name, sagemaker=False)


@router.post("/endpoints/{name}/invocations", summary="Invoke (SageMaker runtime shape)", openapi_extra=_INVOKE_DOC)
async def invoke_sagemaker(request: Request, name: str) -> Response:
    return await _invoke(request, name, sagemaker=True)
