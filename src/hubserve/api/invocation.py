"""Invocation routes: the Hugging Face toolkit's and SageMaker InvokeEndpoint's, both through the gateway.

The hot path: the body is read raw (bounded by the payload limit) and handed to the gateway as
bytes in an ``Invocation``; no per-request model validation happens in this process. The gateway
times it (latency headers, metrics, access line); the route only renders the dialect.
``Accept: text/event-stream`` on the HF route asks for a stream: each part the replica sends is
one server-sent event (``data: <part>``); a client that disconnects cancels the work in the replica.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from hubserve.api import deps
from hubserve.api.errors import error_response
from hubserve.api.sagemaker.invocations import response_headers, sagemaker_error
from hubserve.errors import HubserveError
from hubserve.gateway import InvocationStream
from hubserve.gateway.admission import payload_too_large
from hubserve.types import Invocation

router = APIRouter(tags=["invocation"])

_INVOKE_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "properties": {"inputs": {}, "parameters": {"type": "object"}}, "required": ["inputs"]}}},
    }
}
EVENT_STREAM = "text/event-stream"


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused as soon as it is known to be over ``limit`` (never read whole first)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise payload_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise payload_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _invocation(request: Request, name: str, body: bytes, received: float) -> Invocation:
    headers = request.headers
    accept = headers.get("accept", "application/json")
    stream = accept.startswith(EVENT_STREAM)
    return Invocation(
        endpoint=name, body=body, content_type=headers.get("content-type", "application/json"),
        accept="application/json" if stream else accept,  # each part is JSON; the event framing is the route's
        stream=stream, path=request.scope["path"], received=received,  # not request.url: it parses
    )  # fmt: skip


@router.post("/endpoints/{name}", summary="Invoke (Hugging Face inference toolkit shape)", openapi_extra=_INVOKE_DOC)
async def invoke_hf(request: Request, name: str) -> Response:
    received = time.perf_counter()
    gateway = deps.gateway(request)
    try:
        body = await _read_body(request, deps.settings(request).max_payload_bytes)
        invocation = _invocation(request, name, body, received)
        if invocation.stream:
            return _event_stream(await gateway.stream(invocation))
        result = await gateway.invoke(invocation)
    except HubserveError as error:
        _refused_by_route(request, name, error, received)
        return error_response(error)
    return Response(content=result.body, media_type=result.content_type, headers=result.latency_headers())


@router.post("/endpoints/{name}/invocations", summary="Invoke (SageMaker InvokeEndpoint shape)", openapi_extra=_INVOKE_DOC)
async def invoke_sagemaker(request: Request, name: str) -> Response:
    received = time.perf_counter()
    gateway = deps.gateway(request)
    try:
        body = await _read_body(request, deps.settings(request).max_payload_bytes)
        invocation = _invocation(request, name, body, received)
        invocation.stream = False  # SageMaker's response stream is its own route (event-stream framing)
        result = await gateway.invoke(invocation)
    except HubserveError as error:
        _refused_by_route(request, name, error, received)
        return sagemaker_error(error, name)
    return Response(content=result.body, media_type=result.content_type,
                    headers=response_headers(result.latency_headers(), request.headers))  # fmt: skip


def _refused_by_route(request: Request, name: str, error: HubserveError, received: float) -> None:
    """A body over the limit never reaches the gateway's layers; it is still timed and recorded there."""
    if "x-overhead-latency-ms" not in error.headers:
        deps.gateway(request).refused(Invocation(endpoint=name, path=request.scope["path"], received=received), error)


def _event_stream(stream: InvocationStream) -> EventSourceResponse:
    """Server-sent events, one per part; the first part is already here (errors came before the 200)."""

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            async for part in stream.parts():
                if part.body or not part.final:
                    yield {"data": part.body.decode("utf-8", errors="replace")}
        except HubserveError as error:  # after the 200: the failure travels as the stream's last event
            yield {"event": "error", "data": msgspec.json.encode(error.to_dict()).decode()}

    headers = {"x-cold-start": "true" if stream.cold_start else "false"}
    # The background close runs even when the client left before the first event was sent: the slot and
    # the replica's work are released whatever happened to the body (a second close does nothing).
    return EventSourceResponse(events(), headers=headers, ping=15, background=BackgroundTask(stream.close))
