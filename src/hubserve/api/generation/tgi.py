"""text-generation-inference's dialect: its request, its answers, its server-sent events and errors.

TGI's clients (huggingface_hub's ``InferenceClient.text_generation``, SageMaker's TGI container
clients) send ``{"inputs": "<prompt>", "parameters": {...}, "stream": bool}`` and read:

- ``/generate``: ``{"generated_text", "details"?}``; the toolkit's route: ``[{"generated_text", "details"?}]``
  (``summary_text`` / ``translation_text`` for those tasks, as the toolkit names them);
- a stream: ``data:{"index", "token": {"id", "text", "logprob", "special"}, "generated_text": null,
  "details": null}`` per token, the last event carrying ``generated_text`` and ``details``
  (``finish_reason``, ``generated_tokens``, ``seed``), each event ended by a blank line;
- errors: ``{"error": "<message>", "error_type": "validation" | "generation" | "overloaded" | ...}``,
  mid-stream as one more ``data:`` event.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import msgspec

from hubserve.api.generation import neutral
from hubserve.errors import HubserveError, ModelError, ModelNotReady, ReplicaCrashed, Throttled, ValidationError
from hubserve.gateway import InvocationStream
from hubserve.types import CompletionSummary, GeneratedToken

# The toolkit's answer key per task (TGI and text-generation say generated_text).
ANSWER_KEYS = {"summarization": "summary_text", "translation": "translation_text"}
# TGI's last event carries a token; when the summary came after the last token was sent, it carries this one.
_NO_TOKEN = {"id": 0, "text": "", "logprob": 0.0, "special": True}


def request(body: Any) -> tuple[Any, dict[str, Any]]:
    """``(inputs, neutral parameters)`` of a TGI body; ValidationError (400) saying what to send instead."""
    if not isinstance(body, dict) or "inputs" not in body:
        raise ValidationError(
            'Send a JSON object with "inputs": {"inputs": "<prompt>", "parameters": {"max_new_tokens": 20}}.'
        )
    inputs = body["inputs"]
    if not isinstance(inputs, str) and not _is_chat(inputs):
        raise ValidationError(
            '\'inputs\' must be one prompt string (or chat messages [{"role", "content"}]) to generate from; '
            "send one request per prompt."
        )
    return inputs, neutral.tgi_parameters(body.get("parameters"))


def _is_chat(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def token_json(token: GeneratedToken) -> dict[str, Any]:
    return {"id": token.id, "text": token.text, "logprob": token.logprob, "special": token.special}


def sse(data: Any) -> bytes:
    """One server-sent event as TGI frames it: ``data:<json>`` and a blank line."""
    return b"data:" + msgspec.json.encode(data) + b"\n\n"


def stream_event(index: int, token: GeneratedToken | None, summary: CompletionSummary | None = None) -> bytes:
    """One token's event; the last (``summary`` given) also carries the text and the stream's details."""
    event: dict[str, Any] = {
        "index": index,
        "token": token_json(token) if token is not None else _NO_TOKEN,
        "generated_text": None,
        "details": None,
    }
    if summary is not None:
        event["generated_text"] = summary.generated_text
        event["details"] = {"finish_reason": summary.finish_reason, "generated_tokens": summary.generated_tokens,
                            "seed": summary.seed}  # fmt: skip
    return sse(event)


def details(summary: CompletionSummary) -> dict[str, Any]:
    """TGI's ``details`` of a finished generation: why it stopped, its tokens, the prompt's (prefill)."""
    return {
        "finish_reason": summary.finish_reason,
        "generated_tokens": summary.generated_tokens,
        "seed": summary.seed,
        "prefill": [{"id": t.id, "text": t.text, "logprob": t.logprob} for t in summary.prefill or ()],
        "tokens": [token_json(t) for t in summary.tokens or ()],
    }


def generate_answer(summary: CompletionSummary, with_details: bool) -> dict[str, Any]:
    """``/generate``'s answer."""
    answer: dict[str, Any] = {"generated_text": summary.generated_text}
    if with_details:
        answer["details"] = details(summary)
    return answer


def toolkit_answer(summary: CompletionSummary, task: str | None, with_details: bool) -> list[dict[str, Any]]:
    """The toolkit's ``[{"generated_text": ...}]`` (details when asked, as TGI's compatible route gives them)."""
    answer: dict[str, Any] = {ANSWER_KEYS.get(task or "", "generated_text"): summary.generated_text}
    if with_details:
        answer["details"] = details(summary)
    return [answer]


def error_type(error: HubserveError) -> str:
    """TGI's ``error_type``, which huggingface_hub turns into its exception classes."""
    if isinstance(error, ValidationError):
        return "validation"
    if isinstance(error, (Throttled, ModelNotReady)):
        return "overloaded"
    if isinstance(error, (ModelError, ReplicaCrashed)):
        return "generation"
    return error.type


def error_json(error: HubserveError) -> dict[str, Any]:
    return {"error": error.message, "error_type": error_type(error)}


async def event_stream(stream: InvocationStream, last: neutral.LastToken,
                       errors_as_events: bool = True) -> AsyncGenerator[bytes, None]:  # fmt: skip
    """TGI's server-sent events for a neutral stream, as the bytes to send; a failure after the first
    event is one more event (``errors_as_events``) or raised (SageMaker frames it its own way).
    ``last``: how the stream's last token is known as it comes (``neutral.events``)."""
    index = 0
    try:
        async with contextlib.aclosing(neutral.events(stream, last)) as steps:  # closing these closes those
            async for event in steps:
                index += 1
                if event.summary is None:
                    yield stream_event(index, event.token)
                else:
                    yield stream_event(index, event.token, event.summary)
    except HubserveError as error:  # after the 200: TGI sends the failure as the last event
        if not errors_as_events:
            raise
        yield sse(error_json(error))
