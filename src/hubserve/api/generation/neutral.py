"""The neutral generation request and answers, as every generation dialect sends and reads them.

Each route (TGI's, OpenAI's, the toolkit's, SageMaker's response stream) turns its own body into
the neutral request of ``hubserve.types`` (``{"inputs", "parameters"}`` with TGI's parameter
names), sends it through the gateway with ``accept=GENERATION_MEDIA_TYPE``, and renders the
neutral answers (``GeneratedToken`` parts, then a ``CompletionSummary``) in its dialect. Unlike
the other invocation routes these parse the body in the server: a dialect cannot be translated
unread. Bodies are small (a prompt and a few parameters) and bounded by the payload limit.

What a route needs to know about an endpoint before it sends anything (``deployed``): its task
(the spec's, else the one its replicas reported) and whether it runs custom code (a handler
answers in its own shape, so it gets the toolkit's routes only).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator
from typing import Any

import msgspec
from fastapi import Request

from hubserve.api import deps
from hubserve.errors import HubserveError, ModelError, ValidationError
from hubserve.gateway import InvocationStream
from hubserve.spec import GenerationSpec
from hubserve.tasks import EMBEDDING_TASKS, GENERATIVE_TASKS
from hubserve.types import GENERATION_MEDIA_TYPE, CompletionSummary, GeneratedToken, Invocation, Part

# The neutral parameters (types.py), and what the replica also accepts from TGI's clients.
NEUTRAL_PARAMETERS = frozenset({
    "max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "repetition_penalty", "seed", "stop",
    "details", "decoder_input_details", "return_full_text",
})  # fmt: skip
TGI_ACCEPTED = NEUTRAL_PARAMETERS | {"stop_sequences", "stop_sequence", "watermark", "truncate"}
_DEFAULT_MAX_NEW_TOKENS: int = GenerationSpec.model_fields["default_max_new_tokens"].default


@dataclasses.dataclass(frozen=True, slots=True)
class Deployed:
    """What the routes need of an endpoint: its task (None while unknown) and whether it runs custom code."""

    task: str | None
    custom_code: bool
    default_max_new_tokens: int | None = None  # what a request that names none gets (the endpoint's setting)
    has_spec: bool = True  # False: the endpoint's record is being created; nothing is known of it yet

    @property
    def streams(self) -> bool:
        """Whether it can answer in parts: custom code can (a handler whose call returns an iterator),
        and so can the generative tasks (a token at a time). While the task or the spec is not known yet
        the stream is let through (the replica answers a model that cannot stream with one part)."""
        return not self.has_spec or self.custom_code or self.task is None or self.task in GENERATIVE_TASKS

    @property
    def generative(self) -> bool:
        return not self.custom_code and self.task in GENERATIVE_TASKS

    @property
    def embeds(self) -> bool:
        return not self.custom_code and self.task in EMBEDDING_TASKS


def deployed(request: Request, name: str) -> Deployed | None:
    """The endpoint's task and custom code; None when no such endpoint exists (the gateway answers 404)."""
    controller = deps.controller(request)
    live = controller.live(name)
    if live is None:
        return None
    spec = live.spec or controller.stored_spec(name)
    task = spec.model.task if spec is not None else None
    if task is None:  # inferred by the replicas: each reports the task it serves
        task = next((replica.info.get("task") for replica in live.replicas if replica.info.get("task")), None)
    if spec is None:
        return Deployed(task=task, custom_code=False, has_spec=False)
    default = spec.generation.default_max_new_tokens if spec.generation is not None else _DEFAULT_MAX_NEW_TOKENS
    return Deployed(task=task, custom_code=spec.custom_code, default_max_new_tokens=default)


@dataclasses.dataclass(frozen=True, slots=True)
class LastToken:
    """How a TGI stream knows its last token as it comes: the request's ``max_new_tokens`` (the
    endpoint's default when it names none; None: unknown) and whether stop sequences may end it."""

    max_new_tokens: int | None
    stops: bool


def last_token(parameters: dict[str, Any], found: Deployed | None) -> LastToken:
    asked = parameters.get("max_new_tokens")
    if not isinstance(asked, int) or isinstance(asked, bool):
        asked = found.default_max_new_tokens if found is not None else None
    return LastToken(asked, bool(parameters.get("stop") or parameters.get("stop_sequence")))


def decode_json(body: bytes, what: str = "The request body") -> Any:
    """The body as JSON; a ValidationError (400) that says what is wrong otherwise."""
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ValidationError(f"{what} is not valid JSON ({exc}); send a JSON object.") from None
    except RecursionError:
        raise ValidationError(f"{what} is JSON nested too deeply; send a flatter JSON object.") from None


def unused_parameters(names: list[str]) -> ValidationError:
    """A 400 worded as transformers words unknown generation arguments, which huggingface_hub's
    InferenceClient recognises: it drops those parameters, warns, and asks again."""
    return ValidationError(
        f"The following `model_kwargs` are not used by the model: {sorted(names)} "
        "(note: typos in the generate arguments will also show up in this list)"
    )


def tgi_parameters(parameters: Any) -> dict[str, Any]:
    """TGI's ``parameters`` as neutral ones: the names the replica cannot honour are refused by name."""
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise ValidationError("'parameters' must be a JSON object, e.g. {\"max_new_tokens\": 20}.")
    unknown = [name for name in parameters if name not in TGI_ACCEPTED]
    if unknown:
        raise unused_parameters(unknown)
    found = {name: value for name, value in parameters.items() if value is not None}
    if "stop_sequences" in found:  # TGI's deprecated name
        found["stop"] = [*found.get("stop", []), *found.pop("stop_sequences")]
    return found


def invocation(request: Request, name: str, inputs: Any, parameters: dict[str, Any], *, stream: bool,
               received: float) -> Invocation:  # fmt: skip
    """The neutral request for ``name``, to send through the gateway."""
    body = msgspec.json.encode({"inputs": inputs, "parameters": parameters})
    return Invocation(endpoint=name, body=body, content_type="application/json", accept=GENERATION_MEDIA_TYPE,
                      stream=stream, path=request.scope["path"], received=received,
                      client_gone=None if stream else request.is_disconnected)  # fmt: skip


def summary(body: bytes) -> CompletionSummary:
    """The replica's summary; a ModelError when it answered something else (it does not speak the contract)."""
    try:
        return msgspec.json.decode(body, type=CompletionSummary)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ModelError(
            f"The replica did not answer a generation summary ({exc}); is the endpoint's task generative?"
        ) from None


def token(body: bytes) -> GeneratedToken:
    try:
        return msgspec.json.decode(body, type=GeneratedToken)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ModelError(f"The replica sent a part that is not a generated token ({exc}).") from None


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One step of a neutral stream: a token, the summary at the end, or (TGI's last event) both."""

    token: GeneratedToken | None = None
    summary: CompletionSummary | None = None


async def events(stream: InvocationStream, last: LastToken | None = None) -> AsyncGenerator[Event, None]:
    """The stream's tokens as they come, then its summary.

    ``last`` (TGI's format, whose last event carries the last token and the summary together): a
    token that must be the last (the ``max_new_tokens``-th, or a special one such as the
    end-of-sequence token) waits for the summary, which the replica sends right after it. When stop
    sequences may end the stream, each other token is given once the loop has had one turn to read
    a summary already on its way; without them, at once. A summary that comes after its last token
    was given is given alone.
    """
    parts = stream.parts().__aiter__()
    pending: asyncio.Future[Part] | None = None
    count = 0
    try:
        part = await parts.__anext__()
        while True:
            if part.final:
                yield Event(summary=summary(part.body))
                return
            current = token(part.body)
            count += 1
            if last is not None and (
                current.special or (last.max_new_tokens is not None and count >= last.max_new_tokens)
            ):
                part = await parts.__anext__()  # the summary follows at once (or, rarely, another token)
                if part.final:
                    yield Event(token=current, summary=summary(part.body))
                    return
                yield Event(token=current)
                continue
            if last is None or not last.stops:
                yield Event(token=current)
                part = await parts.__anext__()
                continue
            pending = asyncio.ensure_future(parts.__anext__())
            await asyncio.sleep(0)  # one turn of the loop: the next part, if it is already queued, is read
            if pending.done() and pending.exception() is None and pending.result().final:
                final, pending = pending.result(), None
                yield Event(token=current, summary=summary(final.body))
                return
            yield Event(token=current)
            part, pending = await pending, None
    except StopAsyncIteration:
        raise ModelError("The replica ended the stream without a generation summary.") from None
    finally:
        if pending is not None and not pending.done():
            pending.cancel()  # the client left: the cancel reaches the replica
            with contextlib.suppress(asyncio.CancelledError, HubserveError, StopAsyncIteration):
                await pending
        close = getattr(parts, "aclose", None)
        if close is not None:
            await close()  # its own end closes the stream (recorded once, with the client's leaving if it left)
        await stream.close()
