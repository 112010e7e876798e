"""TGI's and OpenAI's routes on each endpoint, all through the gateway like every invocation.

- ``POST /endpoints/{name}/generate`` and ``/generate_stream``: text-generation-inference's API.
- ``POST /endpoints/{name}/v1/chat/completions`` and ``/v1/completions``: OpenAI's, streaming with
  ``"stream": true``; ``GET /endpoints/{name}/v1/models``: the endpoint as the one model;
  ``POST /endpoints/{name}/v1/embeddings`` on an embedding endpoint.

Each route checks the endpoint can answer it (a generative task, or an embedding one; not custom
code, whose handler answers in its own shape), turns the body into the neutral request
(``neutral.py``), and renders the answer in its dialect (``tgi.py``, ``openai.py``), errors
included. Refusals before the gateway are timed and recorded like the other invocation routes'.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hubserve.api import deps
from hubserve.api.generation import neutral, openai, tgi, toolkit
from hubserve.api.invocation import read_body, refused_by_route
from hubserve.errors import EndpointNotFound, HubserveError, ValidationError
from hubserve.tasks import EMBEDDING_TASKS, GENERATIVE_TASKS
from hubserve.types import Invocation

router = APIRouter(tags=["generation"])

_TGI_DOC = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["inputs"],
        "properties": {"inputs": {"type": "string"}, "parameters": {"type": "object"}},
    }}}}
}  # fmt: skip
_OPENAI_DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}


def _servable(request: Request, name: str, route: str, tasks: frozenset[str]) -> neutral.Deployed:
    """The endpoint, if ``route`` can serve it; EndpointNotFound or a 400 that names the route to use."""
    found = neutral.deployed(request, name)
    if found is None:
        raise EndpointNotFound(name)
    if found.custom_code:
        raise ValidationError(
            f"Endpoint '{name}' runs custom code, which answers in its handler's own shape; "
            f"{route} is not served there. Invoke it with POST /endpoints/{name}."
        )
    if found.task is not None and found.task not in tasks:
        raise ValidationError(
            f"Endpoint '{name}' serves {found.task}; {route} serves the tasks {', '.join(sorted(tasks))}. "
            f"Invoke it with POST /endpoints/{name}."
        )
    return found


# --- text-generation-inference -----------------------------------------------------------------


@router.post(
    "/endpoints/{name}/generate", summary="Generate (text-generation-inference's /generate)", openapi_extra=_TGI_DOC
)
async def generate(request: Request, name: str) -> Response:
    received = time.perf_counter()
    try:
        _servable(request, name, "/generate", GENERATIVE_TASKS)
        body = await read_body(request, deps.settings(request).max_payload_bytes)
        inputs, parameters = tgi.request(neutral.decode_json(body))
        invocation = neutral.invocation(request, name, inputs, parameters, stream=False, received=received)
        result = await deps.gateway(request).invoke(invocation)
        answer = tgi.generate_answer(neutral.summary(result.body), bool(parameters.get("details")))
    except HubserveError as error:
        refused_by_route(request, name, error, received)
        return toolkit.error_response(error)
    return JSONResponse(answer, headers=result.latency_headers())


@router.post("/endpoints/{name}/generate_stream", summary="Generate, token by token (TGI's server-sent events)",
             openapi_extra=_TGI_DOC)  # fmt: skip
async def generate_stream(request: Request, name: str) -> Response:
    received = time.perf_counter()
    try:
        found = _servable(request, name, "/generate_stream", GENERATIVE_TASKS)
        body = await read_body(request, deps.settings(request).max_payload_bytes)
        inputs, parameters = tgi.request(neutral.decode_json(body))
        invocation = neutral.invocation(request, name, inputs, parameters, stream=True, received=received)
        stream = await deps.gateway(request).stream(invocation)
    except HubserveError as error:
        refused_by_route(request, name, error, received)
        return toolkit.error_response(error)
    return toolkit.sse_response(stream, tgi.event_stream(stream, neutral.last_token(parameters, found)))


# --- OpenAI -------------------------------------------------------------------------------------


async def _openai_completion(request: Request, name: str, kind: openai.Kind,
                             parse: Callable[[object], openai.Request]) -> Response:  # fmt: skip
    received = time.perf_counter()
    route = "/v1/chat/completions" if kind == "chat" else "/v1/completions"
    limit_param: str | None = None
    try:
        _servable(request, name, route, GENERATIVE_TASKS)
        body = await read_body(request, deps.settings(request).max_payload_bytes)
        asked = parse(neutral.decode_json(body))
        limit_param = asked.limit_param
        invocation = neutral.invocation(request, name, asked.inputs, asked.parameters, stream=asked.stream,
                                        received=received)  # fmt: skip
        gateway = deps.gateway(request)
        if asked.stream:
            stream = await gateway.stream(invocation)
            return toolkit.sse_response(stream, openai.chunk_stream(stream, kind, name, asked.include_usage))
        result = await gateway.invoke(invocation)
        answer = openai.completion_object(kind, name, neutral.summary(result.body))
    except HubserveError as error:
        refused_by_route(request, name, error, received)
        return _openai_error(error, limit_param)
    return JSONResponse(answer, headers=result.latency_headers())


def _openai_error(error: HubserveError, limit_param: str | None = None) -> JSONResponse:
    return JSONResponse(openai.error_json(error, limit_param), status_code=error.status,
                        headers={"x-amzn-ErrorType": error.type, **error.headers})  # fmt: skip


@router.post(
    "/endpoints/{name}/v1/chat/completions", summary="Chat completion (OpenAI's API)", openapi_extra=_OPENAI_DOC
)
async def chat_completions(request: Request, name: str) -> Response:
    return await _openai_completion(request, name, "chat", openai.chat_request)


@router.post("/endpoints/{name}/v1/completions", summary="Completion (OpenAI's legacy API)", openapi_extra=_OPENAI_DOC)
async def completions(request: Request, name: str) -> Response:
    return await _openai_completion(request, name, "completion", openai.completion_request)


@router.get("/endpoints/{name}/v1/models", summary="The endpoint as OpenAI's list of models (one)")
async def models(request: Request, name: str) -> Response:
    try:
        listed = _model(request, name)
    except HubserveError as error:
        return _openai_error(error)
    return JSONResponse({"object": "list", "data": [listed]})


@router.get("/endpoints/{name}/v1/models/{model:path}", summary="The endpoint as OpenAI's model")
async def model(request: Request, name: str, model: str) -> Response:
    try:
        return JSONResponse(_model(request, name))
    except HubserveError as error:
        return _openai_error(error)


def _model(request: Request, name: str) -> dict[str, object]:
    """The endpoint as a model: its name, and when it was created (EndpointNotFound if it is not there)."""
    record, _ = deps.controller(request).describe(name)
    return openai.model_object(name, record.created_at.timestamp())


@router.post("/endpoints/{name}/v1/embeddings", summary="Embeddings (OpenAI's API) of an embedding endpoint",
             openapi_extra=_OPENAI_DOC)  # fmt: skip
async def embeddings(request: Request, name: str) -> Response:
    """The toolkit request goes to the replica as it is; its vectors come back as OpenAI's list."""
    received = time.perf_counter()
    try:
        _servable(request, name, "/v1/embeddings", EMBEDDING_TASKS)
        body = await read_body(request, deps.settings(request).max_payload_bytes)
        texts, as_base64 = openai.embedding_request(neutral.decode_json(body))
        invocation = Invocation(endpoint=name, body=msgspec.json.encode({"inputs": texts}), path=request.scope["path"],
                                received=received, client_gone=request.is_disconnected)  # fmt: skip
        result = await deps.gateway(request).invoke(invocation)
        vectors = openai.pooled(result.body, len(texts))
    except HubserveError as error:
        refused_by_route(request, name, error, received)
        return _openai_error(error)
    return JSONResponse(openai.embeddings_object(name, vectors, as_base64), headers=result.latency_headers())
