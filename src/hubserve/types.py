"""The request path's shared vocabulary: an invocation, its answer and parts, and the Channel protocol.

Every layer between a route and a replica speaks these: the routes build an ``Invocation``, the
gateway's layers (admission, routing, the channel call, timing) pass it down, a backend's
``Channel`` carries it to a replica, and the gateway hands an ``InvocationResult`` (or, for a
stream, ``Part``s) back up. Nothing here knows how replicas run; this module imports no other
hubserve module.

Cancellation is asyncio's: cancelling the task that awaits ``Channel.call``, or closing the
iterator of ``Channel.stream`` before its final part, sends a cancel to the replica, which drops
the request from its queue (its batch slot is freed) or stops a stream between two parts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from collections.abc import Set as AbstractSet
from typing import Literal, Protocol

import msgspec

InvocationKind = Literal["sync", "async", "batch"]


@dataclasses.dataclass(slots=True)
class Invocation:
    """One request for one endpoint, as the gateway receives it from any route or queue."""

    endpoint: str
    body: bytes = b""
    # A payload the replica opens itself (a local path or a storage URL) instead of ``body``.
    body_url: str = ""
    content_type: str = "application/json"
    accept: str = "application/json"
    # time.monotonic() after which the answer is no longer wanted; None: no limit of its own.
    deadline: float | None = None
    stream: bool = False  # answer in parts (server-sent events on the HTTP side)
    kind: InvocationKind = "sync"
    path: str = ""  # the route it came in on, for the access line
    # time.perf_counter() when hubserve received it: overhead latency counts from here.
    received: float = dataclasses.field(default_factory=time.perf_counter)
    # The status a failure is answered with where the route's dialect differs from hubserve's own
    # (SageMaker's InvokeEndpoint: 429 for a paused endpoint); timing records that one. None: the error's.
    error_status: Callable[[Exception], int] | None = None
    # Whether the client has left (a sync HTTP route's ``request.is_disconnected``): the gateway's one
    # sweeper asks it while the invocation runs and, once gone, cancels it and frees its slot. None: not asked.
    client_gone: Callable[[], Awaitable[bool]] | None = None
    # A multi-model endpoint: which of its models answers (TargetModel, /endpoints/{name}/models/{model}).
    target_model: str = ""

    @property
    def size(self) -> int:
        return len(self.body)


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """A replica's one answer to a call."""

    body: bytes
    content_type: str = "application/json"


@dataclasses.dataclass(frozen=True, slots=True)
class Part:
    """One piece of a streamed answer; the last one a stream yields has ``final`` set."""

    body: bytes
    content_type: str = "application/json"
    final: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class InvocationResult:
    """What the gateway hands back for one answered invocation, with its timing."""

    body: bytes
    content_type: str
    model_latency_ms: float
    overhead_latency_ms: float
    cold_start: bool

    def latency_headers(self) -> dict[str, str]:
        return {
            "x-model-latency-ms": f"{self.model_latency_ms:.3f}",
            "x-overhead-latency-ms": f"{self.overhead_latency_ms:.3f}",
            "x-cold-start": "true" if self.cold_start else "false",
        }


class Invoker(Protocol):
    """The gateway, as the async and batch queues see it."""

    async def invoke(self, invocation: Invocation) -> InvocationResult: ...


class Channel(Protocol):
    """The gateway's connection to one replica; many invocations may be in flight on it at once.

    ``call`` and ``stream`` raise ``hubserve.errors.HubserveError`` subclasses: the replica's own
    errors (ValidationError, ModelError) as it reported them, ReplicaCrashed if it went away.
    """

    replica_id: str

    @property
    def outstanding(self) -> int:
        """Invocations sent on this channel and not yet answered (routing picks the fewest)."""
        ...

    @property
    def closed(self) -> bool: ...

    @property
    def holding(self) -> AbstractSet[str]:
        """The models a multi-model replica has loaded or is loading (routing prefers it for them); else empty."""
        ...

    async def call(self, invocation: Invocation) -> Reply:
        """Send one invocation and wait for its one answer; cancelling the caller cancels it in the replica."""
        ...

    def stream(self, invocation: Invocation) -> AsyncGenerator[Part, None]:
        """Send one invocation and yield its parts up to the final one; closing early cancels it in the replica."""
        ...

    def fail_pending(self, error: Exception) -> None:
        """Fail every invocation in flight with ``error`` (the replica is being stopped under them)."""
        ...

    async def drained(self) -> None:
        """Return once nothing is in flight on this channel."""
        ...

    async def close(self) -> None: ...


# --- generation: what a replica of a generative task answers, whatever the route's dialect ----
#
# The routes (TGI's, OpenAI's, the toolkit's, SageMaker's) turn their request into the neutral
# request below and send it with ``accept=GENERATION_MEDIA_TYPE``; the replica then answers in
# the neutral shapes below, and each route renders them in its own dialect. Without that accept
# (async and batch inference, plain toolkit calls) the replica answers the toolkit's
# ``[{"generated_text": ...}]``.
#
# Neutral request body (JSON): ``{"inputs": <prompt string> | <chat messages: [{"role", "content"}]>,
# "parameters": {...}}``; messages go through the tokenizer's chat template in the replica (a 400
# when the model has none). Parameters, TGI's names: max_new_tokens, do_sample (greedy unless true),
# temperature, top_k, top_p, repetition_penalty, seed, stop (list of strings), details,
# decoder_input_details, return_full_text (default false, as TGI).
#
# Stream (``Invocation.stream``): one ``Part`` per generated token, its body a ``GeneratedToken``
# (JSON), then the ``End`` whose body is the ``CompletionSummary``. Not streamed: the ``End``
# body is the ``CompletionSummary``, with ``tokens`` (and ``prefill``) when details were asked.

GENERATION_MEDIA_TYPE = "application/vnd.hubserve.generation+json"

FinishReason = Literal["length", "eos_token", "stop_sequence"]


class GeneratedToken(msgspec.Struct, omit_defaults=True):
    """One token as it is generated: its id, its text (decoded in context), its log-probability."""

    id: int
    text: str
    logprob: float
    special: bool = False


class PrefillToken(msgspec.Struct):
    """One token of the prompt (``decoder_input_details``); the first has no log-probability."""

    id: int
    text: str
    logprob: float | None = None


class CompletionSummary(msgspec.Struct, omit_defaults=True):
    """A finished generation: the text, why it stopped and its token counts (OpenAI's ``usage``)."""

    generated_text: str
    finish_reason: FinishReason
    generated_tokens: int
    prompt_tokens: int
    seed: int | None = None
    tokens: list[GeneratedToken] | None = None  # details: every generated token
    prefill: list[PrefillToken] | None = None  # decoder_input_details, where the model allows


class EngineStats(msgspec.Struct):
    """A replica's continuous-batching engine, as last reported (a ``Stats`` frame): the levels metrics sample."""

    running: int  # sequences in the running batch
    waiting: int  # sequences queued in the replica for a place in it
    batch_size: int  # sequences in the last decoding step
    generated_tokens: int  # since the replica started (a counter)
