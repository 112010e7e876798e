"""OpenAI's dialect: chat completions, completions and embeddings, requests in and objects out.

The ``openai`` client (``base_url=<server>/endpoints/<name>/v1``) and every OpenAI-compatible
client read these unchanged. Each endpoint is one model, named by the endpoint: the request's
``model`` is not checked, and answers name the endpoint.

Sampling, as a request asks for it: greedy unless ``temperature`` is given and above 0 (so equal
requests get equal answers by default, as the rest of hubserve; OpenAI itself samples at 1 when it
is absent); ``top_p`` applies only when sampling; ``seed`` makes sampling repeatable;
``max_tokens`` or ``max_completion_tokens`` is ``max_new_tokens`` (capped by the endpoint: over
the cap is a 422); ``stop`` is a string or a list; ``n`` above 1 is refused. ``top_k`` and
``repetition_penalty`` are accepted as extensions (``extra_body``). Parameters that would change
the answer and that hubserve cannot honour (``tools``, ``logprobs``, penalties other than 0,
``response_format`` other than text) are refused with a 400 naming them rather than ignored.

Errors: ``{"error": {"message", "type", "param", "code"}}`` with the HTTP status, mid-stream as one
more ``data:`` event (the client raises it).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import secrets
import struct
import time
from collections.abc import AsyncGenerator
from typing import Any, Literal

import msgspec

from hubserve import __version__
from hubserve.api.generation import neutral
from hubserve.errors import (
    EndpointNotFound,
    GenerationLimitExceeded,
    HubserveError,
    ModelError,
    ModelNotReady,
    PayloadTooLarge,
    Throttled,
    Unauthorized,
    ValidationError,
)
from hubserve.gateway import InvocationStream
from hubserve.types import CompletionSummary

Kind = Literal["chat", "completion"]
FINGERPRINT = f"hubserve-{__version__}"
DONE = b"data: [DONE]\n\n"


class BadParameter(ValidationError):
    """A 400 that names the request's field at fault (OpenAI's ``param``)."""

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.param = param


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """An OpenAI completion request, turned neutral: what to send, and how to answer."""

    inputs: str | list[dict[str, Any]]
    parameters: dict[str, Any]
    stream: bool
    include_usage: bool
    limit_param: str  # which field set max_new_tokens, for a 422 over the cap


# --- requests ----------------------------------------------------------------------------------


def chat_request(body: Any) -> Request:
    """``POST /v1/chat/completions``: messages go through the model's chat template in the replica."""
    body = _object(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadParameter('\'messages\' must be a non-empty list of {"role", "content"} objects.', "messages")
    for name in ("tools", "functions"):
        if body.get(name):
            raise BadParameter(f"'{name}' is not supported: this endpoint generates plain text.", name)
    if body.get("logprobs"):
        raise BadParameter(
            "'logprobs' is not supported on this route; use the endpoint's /generate with details.", "logprobs"
        )
    response_format = body.get("response_format")
    if response_format not in (None, {"type": "text"}):
        raise BadParameter('\'response_format\' other than {"type": "text"} is not supported.', "response_format")
    return _request([_message(m, i) for i, m in enumerate(messages)], body)


def completion_request(body: Any) -> Request:
    """``POST /v1/completions``: one prompt string (or a list of exactly one); ``echo`` prepends it."""
    body = _object(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadParameter("'prompt' must be one string (token arrays and several prompts are not supported; "
                           "send one request per prompt).", "prompt")  # fmt: skip
    for name in ("suffix", "logprobs"):
        if body.get(name):
            raise BadParameter(f"'{name}' is not supported on this route.", name)
    if body.get("best_of") not in (None, 1):
        raise BadParameter("'best_of' above 1 is not supported.", "best_of")
    request = _request(prompt, body)
    if body.get("echo"):
        request.parameters["return_full_text"] = True
    return request


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadParameter("The request body must be a JSON object.", None)
    return body


def _message(message: Any, index: int) -> dict[str, Any]:
    """One chat message as the template takes it: a role and its text (text parts joined)."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise BadParameter(f"messages[{index}] must be an object with a 'role' and a 'content'.", f"messages[{index}]")
    content = message.get("content")
    if isinstance(content, list):
        if not all(isinstance(part, dict) and part.get("type") == "text" for part in content):
            raise BadParameter(
                f"messages[{index}].content: only text parts are supported.", f"messages[{index}].content"
            )
        content = "".join(str(part.get("text", "")) for part in content)
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise BadParameter(f"messages[{index}].content must be a string or a list of text parts.",
                           f"messages[{index}].content")  # fmt: skip
    return {"role": message["role"], "content": content}


def _request(inputs: str | list[dict[str, Any]], body: dict[str, Any]) -> Request:
    """The sampling parameters both routes share, checked and named as TGI names them."""
    parameters: dict[str, Any] = {}
    if body.get("n") not in (None, 1):
        raise BadParameter("'n' above 1 is not supported: each request generates one choice; send n requests.", "n")
    for name in ("frequency_penalty", "presence_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            raise BadParameter(f"'{name}' is not supported (only 0); use 'repetition_penalty' instead.", name)
    if body.get("logit_bias"):
        raise BadParameter("'logit_bias' is not supported.", "logit_bias")
    limit_param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    limit = body.get(limit_param)
    if limit is not None:
        parameters["max_new_tokens"] = _integer(limit, limit_param, minimum=1)
    temperature = body.get("temperature")
    if temperature is not None:
        value = _number(temperature, "temperature", 0.0, 2.0)
        if value > 0:
            parameters["do_sample"], parameters["temperature"] = True, value
    if body.get("top_p") is not None:
        parameters["top_p"] = _number(body["top_p"], "top_p", 0.0, 1.0)
        if parameters["top_p"] == 0:
            raise BadParameter("'top_p' must be above 0.", "top_p")
    if body.get("top_k") is not None:
        parameters["top_k"] = _integer(body["top_k"], "top_k", minimum=0)
    if body.get("repetition_penalty") is not None:
        parameters["repetition_penalty"] = _number(body["repetition_penalty"], "repetition_penalty", 0.0, 100.0)
    if body.get("seed") is not None:
        parameters["seed"] = _integer(body["seed"], "seed", minimum=None)
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise BadParameter("'stop' must be a string or a list of non-empty strings.", "stop")
        if stops:
            parameters["stop"] = stops
    stream = body.get("stream")
    if stream not in (None, True, False):
        raise BadParameter("'stream' must be true or false.", "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadParameter("'stream_options' must be an object such as {\"include_usage\": true}.", "stream_options")
    include_usage = bool(options and options.get("include_usage"))
    return Request(inputs, parameters, stream is True, include_usage, limit_param)


def _integer(value: Any, name: str, minimum: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        at_least = f" of at least {minimum}" if minimum is not None else ""
        raise BadParameter(f"'{name}' must be a whole number{at_least}; got {value!r}.", name)
    return value


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise BadParameter(f"'{name}' must be a number from {low:g} to {high:g}; got {value!r}.", name)
    return float(value)


# --- answers -----------------------------------------------------------------------------------


def finish_reason(summary: CompletionSummary) -> str:
    """OpenAI's names: the length cap is ``length``; an end-of-sequence token or a stop sequence is ``stop``."""
    return "length" if summary.finish_reason == "length" else "stop"


def usage(summary: CompletionSummary) -> dict[str, int]:
    return {"prompt_tokens": summary.prompt_tokens, "completion_tokens": summary.generated_tokens,
            "total_tokens": summary.prompt_tokens + summary.generated_tokens}  # fmt: skip


def new_id(kind: Kind) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + secrets.token_hex(12)


def completion_object(kind: Kind, model: str, summary: CompletionSummary) -> dict[str, Any]:
    """The whole answer: ``chat.completion`` or ``text_completion``, with ``usage``."""
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish_reason(summary)}
    if kind == "chat":
        choice["message"] = {"role": "assistant", "content": summary.generated_text}
    else:
        choice["text"] = summary.generated_text
    return {"id": new_id(kind), "object": "chat.completion" if kind == "chat" else "text_completion",
            "created": int(time.time()), "model": model, "system_fingerprint": FINGERPRINT,
            "choices": [choice], "usage": usage(summary)}  # fmt: skip


class Chunks:
    """The chunks of one streamed answer, all with the same id and creation time."""

    def __init__(self, kind: Kind, model: str) -> None:
        self.kind = kind
        self._head = {"id": new_id(kind), "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
                      "created": int(time.time()), "model": model, "system_fingerprint": FINGERPRINT}  # fmt: skip

    def text(self, text: str, finish: str | None = None, first: bool = False) -> bytes:
        """A chunk of generated text (a chat's first chunk also says the role); ``finish`` ends the choice."""
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish}
        if self.kind == "chat":
            if first:
                choice["delta"] = {"role": "assistant", "content": text}
            else:
                choice["delta"] = {"content": text} if finish is None else {}
        else:
            choice["text"] = text
        return event({**self._head, "choices": [choice]})

    def usage(self, summary: CompletionSummary) -> bytes:
        """``stream_options.include_usage``'s last chunk: no choices, the counts."""
        return event({**self._head, "choices": [], "usage": usage(summary)})


def event(data: Any) -> bytes:
    return b"data: " + msgspec.json.encode(data) + b"\n\n"


async def chunk_stream(
    stream: InvocationStream, kind: Kind, model: str, include_usage: bool
) -> AsyncGenerator[bytes, None]:
    """OpenAI's server-sent events for a neutral stream: a chunk per token, the finish, usage if asked, [DONE]."""
    chunks = Chunks(kind, model)
    first = True
    try:
        async with contextlib.aclosing(neutral.events(stream)) as steps:  # closing these closes those
            async for step in steps:
                if step.token is not None and (step.token.text or first):
                    yield chunks.text(step.token.text, first=first)
                    first = False
                if step.summary is not None:
                    yield chunks.text("", finish=finish_reason(step.summary), first=first)
                    if include_usage:
                        yield chunks.usage(step.summary)
                    yield DONE
    except HubserveError as error:  # after the 200: the openai client raises this event as an APIError
        yield event(error_json(error))


# --- embeddings --------------------------------------------------------------------------------


def embedding_request(body: Any) -> tuple[list[str], bool]:
    """``(texts, as base64)`` of ``POST /v1/embeddings``."""
    body = _object(body)
    given = body.get("input")
    texts = [given] if isinstance(given, str) else given
    if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
        raise BadParameter("'input' must be a string or a non-empty list of strings (token arrays are not supported).",
                           "input")  # fmt: skip
    if body.get("dimensions") is not None:
        raise BadParameter("'dimensions' is not supported: the model's vectors have the size it was trained with.",
                           "dimensions")  # fmt: skip
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise BadParameter("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    return texts, encoding == "base64"


def pooled(body: bytes, count: int) -> list[list[float]]:
    """One vector per input from the replica's answer: sentence embeddings as they are; a
    feature-extraction answer per token is mean-pooled over every token (special ones included)."""
    try:
        answer = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise ModelError("The replica's answer to an embedding request is not JSON.") from None
    vectors = answer.get("embeddings") if isinstance(answer, dict) else answer
    if count == 1 and _depth(vectors) in (1, 2):
        vectors = [vectors]
    if not isinstance(vectors, list) or len(vectors) != count:
        raise ModelError(f"The replica answered {type(vectors).__name__} where {count} embedding(s) were expected.")
    return [_pool(vector) for vector in vectors]


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list) and value:
        depth, value = depth + 1, value[0]
    return depth


def _pool(value: Any) -> list[float]:
    while _depth(value) > 2 and len(value) == 1:
        value = value[0]
    if _depth(value) == 1:
        return [float(x) for x in value]
    if _depth(value) == 2:
        size = len(value)
        return [sum(column) / size for column in zip(*value, strict=True)]
    raise ModelError("The replica's embedding is not a vector or a list of token vectors.")


def embeddings_object(model: str, vectors: list[list[float]], as_base64: bool) -> dict[str, Any]:
    """OpenAI's list of embeddings; token counts are not measured for embeddings, so usage says 0."""
    data = [{"object": "embedding", "index": i,
             "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if as_base64 else v}
            for i, v in enumerate(vectors)]  # fmt: skip
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": 0, "total_tokens": 0}}


def model_object(name: str, created: float | None) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(created or time.time()), "owned_by": "hubserve"}


# --- errors ------------------------------------------------------------------------------------


def error_json(error: HubserveError, limit_param: str | None = None) -> dict[str, Any]:
    """OpenAI's error body: ``type`` by the status, ``code`` hubserve's error type, ``param`` the field at fault."""
    param = getattr(error, "param", None)
    if isinstance(error, GenerationLimitExceeded):
        param = limit_param or "max_tokens"
    if isinstance(error, (ValidationError, EndpointNotFound, PayloadTooLarge)):
        kind = "invalid_request_error"
    elif isinstance(error, Unauthorized):
        kind = "authentication_error"
    elif isinstance(error, (Throttled, ModelNotReady)):
        kind = "rate_limit_error" if isinstance(error, Throttled) else "server_error"
    else:
        kind = "server_error"
    return {"error": {"message": error.message, "type": kind, "param": param, "code": error.type}}
