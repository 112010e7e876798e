"""Invocation routes: the Hugging Face toolkit's and the SageMaker runtime's, one implementation.

The hot path: the body is read raw (bounded by the payload limit) and handed to the gateway
as bytes; no per-request model validation happens in this process.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hubserve.api.errors import error_response
from hubserve.api.sagemaker.runtime import runtime_headers, sagemaker_error
from hubserve.errors import EndpointNotFound, HubserveError, PayloadTooLarge

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
    body = b""
    try:
        body = await _read_body(request, state.settings.max_payload_bytes)
        headers = request.headers
        content_type = headers.get("content-type", "application/json")
        accept = headers.get("accept", "application/json")
        result = await state.gateway.invoke(name, body, content_type, accept)
    except HubserveError as error:
        model_header = error.headers.get("x-model-latency-ms")
        overhead = (time.perf_counter() - started) * 1000.0 - float(model_header or 0.0)
        error.headers["x-overhead-latency-ms"] = f"{overhead:.3f}"
        response = _sagemaker_error(error, name) if sagemaker else error_response(error)
        if not isinstance(error, EndpointNotFound):  # no figures (and no label) for names that do not exist
            model_ms = float(model_header) if model_header is not None else None
            state.metrics.invocation(name, error.status, model_ms, overhead, cold_start=False,
                                     bytes_in=len(body), bytes_out=len(response.body))  # fmt: skip
            state.controller.events.access(name, "POST", request.url.path, error.status, model_ms, overhead, False)
        return response
    overhead_ms = (time.perf_counter() - started) * 1000.0 - result.model_latency_ms
    state.metrics.invocation(name, 200, result.model_latency_ms, overhead_ms, cold_start=result.cold_start,
                             bytes_in=len(body), bytes_out=len(result.body))  # fmt: skip
    state.controller.events.access(name, "POST", request.url.path, 200, result.model_latency_ms, overhead_ms,
                                   result.cold_start)  # fmt: skip
    response_headers = {
        "x-model-latency-ms": f"{result.model_latency_ms:.3f}",
        "x-overhead-latency-ms": f"{overhead_ms:.3f}",
        "x-cold-start": "true" if result.cold_start else "false",
    }
    if sagemaker:
        response_headers.update(runtime_headers(request.headers))
    return Response(content=result.body, media_type=result.content_type, headers=response_headers)


def _sagemaker_error(error: HubserveError, name: str) -> JSONResponse:
    """The SageMaker runtime's error shape: the modelled code in x-amzn-ErrorType, the status and the body."""
    return sagemaker_error(error, name)


@router.post("/endpoints/{name}", summary="Invoke (Hugging Face inference toolkit shape)", openapi_extra=_INVOKE_DOC)
async def invoke_hf(request: Request, name: str) -> Response:
    return await _invoke(request, name, sagemaker=False)


@router.post("/endpoints/{name}/invocations", summary="Invoke (SageMaker runtime shape)", openapi_extra=_INVOKE_DOC)
async def invoke_sagemaker(request: Request, name: str) -> Response:
    return await _invoke(request, name, sagemaker=True)
