"""Requests a replica's generation engine serves: checked on arrival, answered as tokens come.

A text-generation replica (a standard causal LM on torch) runs a ``GenerationEngine``
(models/textgen/engine.py) beside the batcher. A request goes to the engine when it asks for the
neutral answers (``Accept: GENERATION_MEDIA_TYPE``, the routes' way) or, without that accept (async,
batch, plain toolkit calls), when all its parameters are ones the engine knows; a toolkit request
with others (``num_beams``, ``num_return_sequences``...) or a CSV accept runs on the transformers
pipeline through the batcher as before.

Answers (``hubserve.types``): with the accept and a stream, one ``Part`` per token (a
``GeneratedToken``) and then the ``End`` with the ``CompletionSummary``; with the accept and no
stream, only that ``End``; without the accept, the toolkit's ``[{"generated_text": ...}]`` (a list
of prompts gets one such list per prompt, as the pipeline answered). A neutral request holds one
prompt: a string or chat messages.

The encoder-decoder tasks (summarization, translation, text2text-generation) have no engine: a
neutral request to one runs alone in the inference thread (``plan_seq2seq``, then
``handling.run_seq2seq``), streamed a token at a time; toolkit requests batch as before.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from hubserve.errors import ValidationError
from hubserve.models import requests as rq
from hubserve.models.loading import LoadedModel
from hubserve.models.textgen.chat import is_chat, require_template
from hubserve.models.textgen.params import GenerationLimits, Sampling, check_sampling, engine_runs
from hubserve.tasks import SEQ2SEQ_TASKS
from hubserve.types import GENERATION_MEDIA_TYPE, CompletionSummary, EngineStats, GeneratedToken
from hubserve.worker.batcher import Pending
from hubserve.worker.csv_codec import wants_csv
from hubserve.worker.handling import Planned, check_accept, error_response, parse_body, require_inputs
from hubserve.worker.protocol import End, Part, Request, encode_frame

if TYPE_CHECKING:  # torch's: imported where a transformers model needs them, never in a scikit-learn replica
    from hubserve.models.textgen.engine import GenerationEngine, Sequence

_encoder = msgspec.json.Encoder()
Write = Callable[[bytes | bytearray], None]


def start_engine(
    model: LoadedModel, *, max_batch_size: int, max_batch_tokens: int, on_change: Callable[[EngineStats], None] | None = None
) -> GenerationEngine | None:
    """An engine for a standard text-generation model on torch; None for anything else."""
    if model.task != "text-generation" or model.custom or model.accepts_raw or model.framework != "pytorch":
        return None
    from hubserve.models.predictors import PipelinePredictor
    from hubserve.models.textgen.engine import GenerationEngine

    predictor = model.predictor
    if not isinstance(predictor, PipelinePredictor):
        return None
    pipe = predictor.pipe
    return GenerationEngine(
        pipe.model, pipe.tokenizer, max_batch_size=max_batch_size, max_batch_tokens=max_batch_tokens, on_change=on_change
    )


def wants_generation(accept: str) -> bool:
    """Whether the client (a route) asked for the neutral generation answers."""
    return GENERATION_MEDIA_TYPE in accept


def parse_generation(
    engine: GenerationEngine, limits: GenerationLimits, request: Request
) -> tuple[list[str | list[dict[str, Any]]], bool, Sampling] | None:
    """``(prompts, whether a list was sent, sampling)``; None: the pipeline answers it; ValidationError if bad."""
    neutral = wants_generation(request.accept)
    if not neutral and wants_csv(request.accept):
        return None
    check_accept(request.accept)
    data = require_inputs(parse_body(request.body, request.content_type))
    inputs, parameters = rq.split_body(data, "text-generation")
    parameters = rq.lift_generate_parameters(parameters)
    if not neutral and not engine_runs(parameters):
        return None
    sampling = check_sampling(parameters, limits)
    if isinstance(inputs, str):
        return [inputs], False, sampling
    if is_chat(inputs):
        require_template(engine.tokenizer)
        return [inputs], False, sampling
    if neutral:
        raise ValidationError(
            "'inputs' must be one prompt string or a list of chat messages ([{\"role\": \"user\", \"content\": ...}])"
        )
    if isinstance(inputs, list) and inputs and all(is_chat(item) for item in inputs):
        require_template(engine.tokenizer)
        return list(inputs), True, sampling
    texts, as_list = rq.texts(inputs, "text-generation")
    return list(texts), as_list, sampling


def plan_seq2seq(model: LoadedModel, limits: GenerationLimits, request: Request) -> Pending | End | None:
    """A neutral request to an encoder-decoder model, checked: a Pending that runs alone (``handling.run_seq2seq``)."""
    if model.task not in SEQ2SEQ_TASKS or model.custom or model.accepts_raw or not wants_generation(request.accept):
        return None
    from hubserve.models.seq2seq import Seq2SeqGenerator

    if not isinstance(model.predictor, Seq2SeqGenerator):
        return None
    try:
        data = require_inputs(parse_body(request.body, request.content_type))
        inputs, parameters = rq.split_body(data, model.task)
        sampling = check_sampling(rq.lift_generate_parameters(parameters), limits, model.task)
        if not isinstance(inputs, str):
            raise ValidationError(f"'inputs' must be one prompt string for {model.task}")
        return Pending(Planned(request, generation=(inputs, sampling)))
    except Exception as exc:
        return error_response(request.id, exc)


def seq2seq_streams(model: LoadedModel) -> bool:
    """Whether neutral stream requests to ``model`` get a Part per token (an encoder-decoder task)."""
    if model.task not in SEQ2SEQ_TASKS or model.custom:
        return False
    from hubserve.models.seq2seq import Seq2SeqGenerator

    return isinstance(model.predictor, Seq2SeqGenerator)


class GenerationCall:
    """One request's sequences in the engine and its answer; ``cancel`` from the event loop."""

    def __init__(
        self, engine: GenerationEngine, request: Request, loop: asyncio.AbstractEventLoop, write: Write,
        done: Callable[[GenerationCall], None],
    ) -> None:  # fmt: skip
        self.request = request
        self._engine = engine
        self._loop = loop
        self._write = write
        self._done = done
        self._neutral = wants_generation(request.accept)
        self._stream = self._neutral and request.stream
        self._lock = threading.Lock()
        self._summaries: list[CompletionSummary | None] = []
        self._sequences: list[Sequence] = []
        self._as_list = False
        self._ended = False

    def start(self, prompts: list[str | list[dict[str, Any]]], as_list: bool, sampling: Sampling) -> None:
        self._as_list = as_list
        self._summaries = [None] * len(prompts)
        self._sequences = [self._engine.submit(prompt, sampling, _Slot(self, i)) for i, prompt in enumerate(prompts)]

    def cancel(self) -> None:
        """The client left: every sequence stops at the next step; nothing more is sent."""
        with self._lock:
            self._ended = True
        for sequence in self._sequences:
            self._engine.cancel(sequence)

    # --- the engine thread ---------------------------------------------------------------------

    def token(self, index: int, token: GeneratedToken) -> None:
        if self._stream and not self._ended:
            part = Part(self.request.id, _encoder.encode(token), GENERATION_MEDIA_TYPE)
            self._loop.call_soon_threadsafe(self._write, encode_frame(part))

    def finish(self, index: int, summary: CompletionSummary) -> None:
        with self._lock:
            self._summaries[index] = summary
            if self._ended or any(item is None for item in self._summaries):
                return
            self._ended = True
        self._end(self._answer())

    def fail(self, index: int, error: Exception) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
        for sequence in self._sequences:
            self._engine.cancel(sequence)  # a list's other prompts are no longer wanted
        self._end(error_response(self.request.id, error))

    def _answer(self) -> End:
        summaries = [item for item in self._summaries if item is not None]
        if self._neutral:
            return End(self.request.id, True, _encoder.encode(summaries[0]), GENERATION_MEDIA_TYPE)
        answers = [[{"generated_text": summary.generated_text}] for summary in summaries]
        return End(self.request.id, True, _encoder.encode(answers if self._as_list else answers[0]))

    def _end(self, end: End) -> None:
        self._loop.call_soon_threadsafe(self._deliver, encode_frame(end))

    def _deliver(self, frame: bytearray) -> None:
        self._done(self)
        self._write(frame)


class _Slot:
    """The engine's listener for one prompt of a call."""

    __slots__ = ("_call", "_index")

    def __init__(self, call: GenerationCall, index: int) -> None:
        self._call, self._index = call, index

    def token(self, token: GeneratedToken) -> None:
        self._call.token(self._index, token)

    def finish(self, summary: CompletionSummary) -> None:
        self._call.finish(self._index, summary)

    def fail(self, error: Exception) -> None:
        self._call.fail(self._index, error)
