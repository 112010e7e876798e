"""Invocation routes: the Hugging Face toolkit's and SageMaker InvokeEndpoint's, both through the gateway.

The hot path: the body is read raw (bounded by the payload limit) and handed to the gateway as
bytes in an ``Invocation``; no per-request model validation happens in this process. The gateway
times it (latency headers, metrics, access line); the route only renders the dialect.
``Accept: text/event-stream`` or ``"stream": true`` on the HF route asks for a stream: each part the
replica sends is one server-sent event (``data: <part>``); a client that disconnects cancels the work
in the replica. SageMaker's InvokeEndpointWithResponseStream frames the parts as AWS event-stream
``PayloadPart`` events instead. Only an endpoint that can answer in parts is streamed (``streams``);
a stream asked of any other is refused with a 400 that says so, on every route, rather than answered
with one JSON body that a streaming client would read as an empty stream.

A generative endpoint (``tasks.GENERATIVE_TASKS``, not custom code) is answered through the neutral
generation request instead (``api/generation/toolkit.py``): its stream is text-generation-inference's
server-sent events (in ``PayloadPart`` events on SageMaker's route), its one-piece answer the toolkit's
``[{"generated_text": ...}]`` with TGI's ``details`` when asked.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from hubserve.api import deps
from hubserve.api.bodies import check_batch
from hubserve.api.errors import error_response
from hubserve.api.generation import neutral, toolkit
from hubserve.api.sagemaker import eventstream
from hubserve.api.sagemaker.invocations import code_and_status, response_headers, sagemaker_error, status_of
from hubserve.errors import HubserveError, ValidationError
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
TARGET_MODEL_HEADER = "x-amzn-sagemaker-target-model"  # boto3's invoke_endpoint(TargetModel=...)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused as soon as it is known to be over ``limit`` (never read whole first), or when
    its ``inputs`` list is longer than the server's ``max_batch_inputs``."""
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
    body = b"".join(chunks)
    check_batch(body, deps.settings(request).max_batch_inputs)
    return body


def _invocation(request: Request, name: str, body: bytes, received: float, target: str | None = None) -> Invocation:
    headers = request.headers
    accept = headers.get("accept", "application/json")
    stream = accept.startswith(EVENT_STREAM)
    return Invocation(
        endpoint=name, body=body, content_type=headers.get("content-type", "application/json"),
        accept="application/json" if stream else accept,  # each part is JSON; the event framing is the route's
        stream=stream, path=request.scope["path"], received=received,  # not request.url: it parses
        client_gone=request.is_disconnected,  # a client that hangs up frees its slot at once
        target_model=headers.get(TARGET_MODEL_HEADER, "") if target is None else target,  # multi-model endpoints
    )  # fmt: skip


def _asks_for_stream(body: bytes) -> bool:
    """``"stream": true`` at the top of a JSON body (TGI's and OpenAI's clients); parsed only if it is there."""
    if b'"stream"' not in body:
        return False
    try:
        return msgspec.json.decode(body, type=_StreamFlag).stream is True
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # the replica says what is wrong
        return False


class _StreamFlag(msgspec.Struct):
    stream: Any = None


def _refuse_unless_streams(found: neutral.Deployed | None, name: str, how: str) -> None:
    """ValidationError when ``name`` cannot stream; ``how`` names what asked for the stream, to drop.
    ``found`` is what ``neutral.deployed`` knows of the endpoint (None: no such endpoint, the gateway says so)."""
    if found is not None and not found.streams:
        raise ValidationError(
            f"Endpoint '{name}' cannot stream: its task ({found.task}) answers in one piece (generative tasks and custom "
            f"code whose handler yields parts stream). Drop {how} and read the one JSON answer."
        )


_STREAM_ASKED = 'Accept: text/event-stream and "stream": true'


@router.post("/endpoints/{name}", summary="Invoke (Hugging Face inference toolkit shape)", openapi_extra=_INVOKE_DOC)
async def invoke_hf(request: Request, name: str) -> Response:
    return await _invoke_hf(request, name, None)


@router.post(
    "/endpoints/{name}/models/{model}",
    summary="Invoke one model of a multi-model endpoint (Hugging Face inference toolkit shape)",
    openapi_extra=_INVOKE_DOC,
)
async def invoke_hf_model(request: Request, name: str, model: str) -> Response:
    return await _invoke_hf(request, name, model)


async def _invoke_hf(request: Request, name: str, target: str | None) -> Response:
    received = time.perf_counter()
    gateway = deps.gateway(request)
    try:
        body = await read_body(request, deps.settings(request).max_payload_bytes)
        invocation = _invocation(request, name, body, received, target)
        found = neutral.deployed(request, name)  # one look at the endpoint: may it stream, does it generate
        if invocation.stream or _asks_for_stream(body):
            _refuse_unless_streams(found, name, _STREAM_ASKED)
            if found is not None and found.generative:  # TGI's server-sent events
                return await toolkit.hf_stream(request, name, body, found, received)
            invocation.stream, invocation.accept = True, "application/json"
            return _event_stream(await gateway.stream(invocation))
        if found is not None and found.generative:
            answer = await toolkit.hf_answer(request, name, body, found, received)
            if answer is not None:
                return answer
        result = await gateway.invoke(invocation)
    except HubserveError as error:
        refused_by_route(request, name, error, received)
        return error_response(error)
    return Response(content=result.body, media_type=result.content_type, headers=result.latency_headers())


@router.post("/endpoints/{name}/invocations", summary="Invoke (SageMaker InvokeEndpoint shape)", openapi_extra=_INVOKE_DOC)
async def invoke_sagemaker(request: Request, name: str) -> Response:
    received = time.perf_counter()
    gateway = deps.gateway(request)
    try:
        body = await read_body(request, deps.settings(request).max_payload_bytes)
        invocation = _invocation(request, name, body, received)
        invocation.error_status = status_of  # recorded with the status SageMaker's client gets
        if invocation.stream or _asks_for_stream(body):
            _refuse_unless_streams(neutral.deployed(request, name), name, _STREAM_ASKED)
        invocation.stream = False  # SageMaker's response stream is its own route (below)
        result = await gateway.invoke(invocation)
    except HubserveError as error:
        refused_by_route(request, name, error, received, sagemaker=True)
        return sagemaker_error(error, name)
    return Response(content=result.body, media_type=result.content_type,
                    headers=response_headers(result.latency_headers(), request.headers))  # fmt: skip


@router.post(
    "/endpoints/{name}/invocations-response-stream",
    summary="Invoke, answered in parts (SageMaker InvokeEndpointWithResponseStream: AWS event-stream)",
    openapi_extra=_INVOKE_DOC,
)
async def invoke_sagemaker_stream(request: Request, name: str) -> Response:
    received = time.perf_counter()
    gateway = deps.gateway(request)
    try:
        body = await read_body(request, deps.settings(request).max_payload_bytes)
        invocation = _invocation(request, name, body, received)
        invocation.error_status = status_of
        found = neutral.deployed(request, name)
        _refuse_unless_streams(found, name, "InvokeEndpointWithResponseStream (call InvokeEndpoint)")
        if found is not None and found.generative:  # TGI's events, as the TGI container on SageMaker sends them
            stream, parts = await toolkit.sagemaker_stream(request, name, body, found, received)
            content_type = toolkit.EVENT_STREAM
        else:
            invocation.stream, invocation.accept = True, "application/json"
            stream = await gateway.stream(invocation)
            parts, content_type = _payload_parts(stream), stream.first.content_type
    except HubserveError as error:
        refused_by_route(request, name, error, received, sagemaker=True)
        return sagemaker_error(error, name)
    headers = response_headers({"x-cold-start": "true" if stream.cold_start else "false"}, request.headers)
    headers["X-Amzn-SageMaker-Content-Type"] = content_type
    return StreamingResponse(parts, media_type=eventstream.EVENT_STREAM, headers=headers,
                             background=toolkit.closing(stream, parts))  # fmt: skip


async def _payload_parts(stream: InvocationStream) -> AsyncGenerator[bytes, None]:
    """One PayloadPart event per part; a failure after the 200 is the stream's last message."""
    try:
        async for part in stream.parts():
            if part.body:
                yield eventstream.payload_part(part.body)
    except HubserveError as error:
        yield eventstream.model_stream_error(code_and_status(error)[0], error.message)


def refused_by_route(request: Request, name: str, error: HubserveError, received: float, sagemaker: bool = False) -> None:
    """A refusal before the gateway's layers (a body over the limit, a stream the endpoint cannot give) is
    still timed and recorded there, with the status the client gets."""
    if "x-overhead-latency-ms" not in error.headers:
        invocation = Invocation(endpoint=name, path=request.scope["path"], received=received)
        invocation.error_status = status_of if sagemaker else None
        deps.gateway(request).refused(invocation, error)


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
