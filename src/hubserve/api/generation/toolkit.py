"""The toolkit's route and SageMaker's response stream on a generative endpoint (called by api/invocation.py).

``POST /endpoints/{name}``: a stream (``"stream": true`` or ``Accept: text/event-stream``) is
TGI's server-sent events; without one, the toolkit's ``[{"generated_text": ...}]``, with TGI's
``details`` when asked. Both follow TGI in returning the new text only unless the request asks
for ``return_full_text`` (as the replica does for every text-generation request). A body the
neutral request cannot carry (several inputs, a parameter the toolkit knows and TGI does not) is
left to the toolkit as before: ``hf_answer`` answers ``None`` and the route sends the body as it is.

``POST /endpoints/{name}/invocations-response-stream``: the same events, each one ``PayloadPart``
of AWS event-stream (what the TGI container on SageMaker sends); a failure after the first part
is a ``ModelStreamError`` (the model failed) or ``InternalStreamFailure`` (anything else).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from hubserve.api import deps
from hubserve.api.generation import neutral, tgi
from hubserve.api.sagemaker import eventstream
from hubserve.api.sagemaker.invocations import status_of
from hubserve.errors import HubserveError, ModelError
from hubserve.gateway import InvocationStream

EVENT_STREAM = "text/event-stream"
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_response(stream: InvocationStream, events: AsyncGenerator[bytes, None]) -> StreamingResponse:
    """Server-sent events as they are made; the stream is closed however the response ends (a client
    that leaves cancels the sequence in the replica)."""
    headers = {**STREAM_HEADERS, "x-cold-start": "true" if stream.cold_start else "false"}
    return StreamingResponse(events, media_type=EVENT_STREAM, headers=headers, background=closing(stream, events))


def closing(stream: InvocationStream, events: AsyncGenerator[bytes, None]) -> BackgroundTask:
    """What runs after the response, however it ended: the events first (a client that left them at a
    token leaves a read of the next part in flight, which closing them cancels), then the stream."""

    async def close() -> None:
        await events.aclose()
        await stream.close()

    return BackgroundTask(close)


async def hf_stream(request: Request, name: str, body: bytes, found: neutral.Deployed, received: float) -> Response:
    """A stream on the toolkit's route of a generative endpoint: TGI's server-sent events."""
    inputs, parameters = tgi.request(neutral.decode_json(body))
    invocation = neutral.invocation(request, name, inputs, parameters, stream=True, received=received)
    stream = await deps.gateway(request).stream(invocation)
    return sse_response(stream, tgi.event_stream(stream, neutral.last_token(parameters, found)))


async def hf_answer(request: Request, name: str, body: bytes, found: neutral.Deployed,
                    received: float) -> Response | None:  # fmt: skip
    """The toolkit's one-piece answer on a generative endpoint; ``None``: not a neutral request, send it as it is."""
    decoded = _neutral_body(body)
    if decoded is None:
        return None
    inputs, parameters = tgi.request(decoded)
    invocation = neutral.invocation(request, name, inputs, parameters, stream=False, received=received)
    result = await deps.gateway(request).invoke(invocation)
    answer = tgi.toolkit_answer(neutral.summary(result.body), found.task, bool(parameters.get("details")))
    return JSONResponse(answer, headers=result.latency_headers())


def _neutral_body(body: bytes) -> dict[str, Any] | None:
    """The body, if the neutral request can carry it: one prompt and only parameters TGI knows."""
    try:
        decoded = neutral.decode_json(body)
    except HubserveError:
        return None  # the replica says what is wrong, as for every other task
    if not isinstance(decoded, dict) or not isinstance(decoded.get("inputs"), str):
        return None
    parameters = decoded.get("parameters")
    if parameters is not None and (not isinstance(parameters, dict) or not set(parameters) <= neutral.TGI_ACCEPTED):
        return None
    return decoded


async def sagemaker_stream(request: Request, name: str, body: bytes, found: neutral.Deployed,
                           received: float) -> tuple[InvocationStream, AsyncGenerator[bytes, None]]:  # fmt: skip
    """Start the neutral stream for SageMaker's response-stream route (errors before the first part
    raise); returns it and its ``PayloadPart`` events."""
    inputs, parameters = tgi.request(neutral.decode_json(body))
    invocation = neutral.invocation(request, name, inputs, parameters, stream=True, received=received)
    invocation.error_status = status_of  # recorded with the status SageMaker's client gets
    stream = await deps.gateway(request).stream(invocation)
    return stream, _payload_parts(stream, neutral.last_token(parameters, found))


async def _payload_parts(stream: InvocationStream, last: neutral.LastToken) -> AsyncGenerator[bytes, None]:
    """TGI's events, one ``PayloadPart`` each; a failure after the 200 is the stream's last message."""
    try:
        async with contextlib.aclosing(tgi.event_stream(stream, last, errors_as_events=False)) as chunks:
            async for chunk in chunks:
                yield eventstream.payload_part(chunk)
    except ModelError as error:
        yield eventstream.model_stream_error("ModelError", error.message)
    except HubserveError as error:
        yield eventstream.internal_stream_failure(error.message)


def error_response(error: HubserveError) -> JSONResponse:
    """TGI's error body, with hubserve's status and headers (latency, error type)."""
    return JSONResponse(tgi.error_json(error), status_code=error.status,
                        headers={"x-amzn-ErrorType": error.type, **error.headers})  # fmt: skip
