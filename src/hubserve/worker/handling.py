"""Turn framed requests into framed answers (``End``, and ``Part``s for streams) around a loaded model.

Parsing, validation and encoding happen here, in the replica, so errors in the client's
body are reported with the same types whichever dialect the gateway received.

Two steps for the batcher: ``plan`` runs on the event loop as a frame arrives (parse the
JSON, check the body; a bad one is answered at once and never queues) and returns a ``Pending``
saying what the request may share a batch with; ``run_planned`` runs a batch in the
inference thread and encodes one answer per request. Custom code runs through ``handle``,
one request at a time, exactly as before batching.

Streams: custom code whose call returns an iterator (a generator of tokens, say) is iterated
in the inference thread when the request asked for a stream; each item goes out at once as a
``Part`` through the request's ``Sink`` and the ``End`` follows with an empty body. A cancel
sets the sink's ``stopped`` event, checked before each next item, so the generator is closed
between two parts and the thread is free again. Anything else a stream request gets is one
``End`` with the whole answer, except the encoder-decoder generation tasks asked for the neutral
generation answers (``types.GENERATION_MEDIA_TYPE``): those run alone here, a ``Part`` per token
(``run_seq2seq``); a text-generation replica's engine serves its own (worker/generating.py).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from hubserve.errors import TargetModelNotFound, ValidationError
from hubserve.models import batching
from hubserve.models.jsonable import to_jsonable
from hubserve.models.loading import LoadedModel
from hubserve.models.textgen.params import Sampling
from hubserve.types import GENERATION_MEDIA_TYPE
from hubserve.worker.batcher import Pending
from hubserve.worker.csv_codec import CSV, decode_csv, encode_csv, wants_csv
from hubserve.worker.protocol import End, Part, Request, encode_frame

_json_encoder = msgspec.json.Encoder()
_EXAMPLE = '{"inputs": "I love this movie", "parameters": {}}'


def parse_body(body: bytes, content_type: str, csv_reader: Callable[[bytes], Any] | None = None) -> Any:
    """Decode a JSON (or text/plain) invocation body; raise ValidationError saying how to fix it.

    ``csv_reader``: the model's own reading of text/csv (scikit-learn's headerless rows), if it has one."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in ("text/plain",):
        return {"inputs": body.decode("utf-8", errors="replace")}
    if media_type == CSV:  # SageMaker's HF toolkit: a header row, then one input per row
        return csv_reader(body) if csv_reader is not None else decode_csv(body)
    if media_type not in ("", "application/json", "application/x-json", "*/*") and not media_type.endswith("+json"):
        raise ValidationError(
            f"Unsupported content type '{content_type}'. Send application/json like {_EXAMPLE}."
        )
    if not body.strip():
        raise ValidationError(f"The request body is empty. Send a JSON object like {_EXAMPLE}.")
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ValidationError(f"The request body is not valid JSON ({exc}). Send a JSON object like {_EXAMPLE}.") from None
    except RecursionError:  # msgspec's own depth limit (~1000 levels)
        raise ValidationError(f"The request body's JSON is nested too deeply. Send a JSON object like {_EXAMPLE}.") from None


def check_accept(accept: str, csv: bool = False) -> None:
    """Answer JSON (standard tasks: or CSV); say so rather than send JSON to a client that refused it."""
    accepted = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    if csv and CSV in accepted:
        return
    if not any(a in ("", "*/*", "application/*", "application/json") or a.endswith("+json") for a in accepted):
        raise ValidationError(
            f"Unsupported Accept '{accept}': this endpoint answers application/json; "
            "send Accept: application/json (or serve your own format with custom code's output_fn)."
        )


def require_inputs(data: Any) -> dict[str, Any]:
    # Whether 'inputs' is needed is the task's to say (models/requests.py split_body): a task whose
    # input is an object takes a body without it as the input itself, as the HF toolkits do.
    if not isinstance(data, dict):
        raise ValidationError(f"The request body must be a JSON object with an 'inputs' field, like {_EXAMPLE}.")
    parameters = data.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise ValidationError("'parameters' must be a JSON object, like {\"top_k\": 2}.")
    return data


class Sink:
    """Where one stream's parts go: encoded in the inference thread, written by the event loop.

    ``stopped`` is set from the loop (a Cancel frame, a closed connection) and read by the
    inference thread before it asks the model for the next item.
    """

    __slots__ = ("_loop", "_write", "stopped")

    def __init__(self, loop: asyncio.AbstractEventLoop, write: Callable[[bytearray], None]) -> None:
        self.stopped = threading.Event()
        self._loop = loop
        self._write = write

    def send(self, part: Part) -> None:
        self._loop.call_soon_threadsafe(self._write, encode_frame(part))


def handle(model: LoadedModel, request: Request, sink: Sink | None = None) -> End:
    """Run one request; every failure becomes an error answer, never an exception.

    With a ``sink`` (a stream request), an iterator from custom code is sent part by part.
    """
    try:
        if model.accepts_raw:
            body, content_type = model.handle_raw(request.body, request.content_type, request.accept)
            return End(request.id, True, body, content_type)
        check_accept(request.accept)
        data = parse_body(request.body, request.content_type)
        if not model.custom:
            require_inputs(data)
            return End(request.id, True, _encode(model.predict(data)))
        result = model.predictor(data)  # not predict(): that would turn a generator into its repr
        if isinstance(result, Iterator):
            if sink is not None:
                return run_stream(request.id, result, sink)
            # A plain call to a streaming handler answers all its items at once (bytes as text: JSON has no bytes).
            result = [item.decode("utf-8", errors="replace") if isinstance(item, bytes) else item for item in result]
        return End(request.id, True, _encode(to_jsonable(result)))
    except Exception as exc:
        return error_response(request.id, exc)


def run_stream(request_id: int, items: Iterator[Any], sink: Sink) -> End:
    """Send each item as a Part until the iterator ends, fails (a ModelError End) or is stopped."""
    try:
        while not sink.stopped.is_set():
            try:
                item = next(items)
            except StopIteration:
                break
            body, content_type = encode_item(item)
            sink.send(Part(request_id, body, content_type))
    except Exception as exc:
        return error_response(request_id, exc)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()  # a generator's own cleanup (its finally blocks) runs now, in this thread
    return End(request_id, True)


def encode_item(item: Any) -> tuple[bytes, str]:
    """A stream item as a part body: bytes as given, str as UTF-8 text, anything else as JSON."""
    if isinstance(item, bytes):
        return item, "application/octet-stream"
    if isinstance(item, str):
        return item.encode(), "text/plain; charset=utf-8"
    return _encode(to_jsonable(item)), "application/json"


@dataclass(eq=False, slots=True)
class Planned:
    """A request the batcher holds: its frame and, for standard tasks, its checked body."""

    request: Request
    prepared: batching.Prepared | None = None  # None: custom code, run through ``handle``
    sink: Sink | None = None  # a stream request to a model that may stream
    generation: tuple[str, Sampling] | None = None  # an encoder-decoder prompt for the neutral answers
    model: LoadedModel | None = None  # a multi-model replica: the model that answers (else the replica's one)


def plan(model: LoadedModel, request: Request, sink: Sink | None = None) -> Pending | End:
    """Check a request as it arrives: a ``Pending`` for the batcher, or the error answer now."""
    if model.custom or model.accepts_raw:
        return Pending(Planned(request, sink=sink))  # user code: never batched, checked by its own hooks
    try:
        check_accept(request.accept, csv=True)
        data = require_inputs(parse_body(request.body, request.content_type, model.csv_reader))
        prepared = batching.prepare(model, data)
    except Exception as exc:
        return error_response(request.id, exc)
    return Pending(Planned(request, prepared), key=prepared.key, sequences=prepared.sequences, tokens=prepared.tokens)


def streams(model: Any) -> bool:
    """Whether a stream request may get parts: custom code answering parsed bodies (handler.py)."""
    return bool(getattr(model, "custom", False)) and not getattr(model, "accepts_raw", False)


def run_planned(model: LoadedModel, batch: list[Planned], batch_size: int) -> list[End]:
    """Run one batch (requests with one key) in the inference thread; one answer per request."""
    if any(planned.generation is not None for planned in batch):
        return [run_seq2seq(model, planned) for planned in batch]
    if any(planned.prepared is None for planned in batch):
        return [handle(model, planned.request, planned.sink) for planned in batch]
    prepared = [planned.prepared for planned in batch if planned.prepared is not None]
    results = batching.run(model, prepared, batch_size)
    return [_respond(planned.request.id, result, planned.request.accept) for planned, result in zip(batch, results, strict=True)]


def run_seq2seq(model: LoadedModel, planned: Planned) -> End:
    """One encoder-decoder prompt: each token as a Part (a stream with a sink), then the summary's End."""
    from hubserve.models.textgen.seq2seq import generate_stream

    assert planned.generation is not None
    request_id, sink = planned.request.id, planned.sink
    prompt, sampling = planned.generation

    def on_token(token: Any) -> None:
        if sink is not None and not sink.stopped.is_set():
            sink.send(Part(request_id, _json_encoder.encode(token), GENERATION_MEDIA_TYPE))

    try:
        stopped = sink.stopped.is_set if sink is not None else (lambda: False)
        summary = generate_stream(model.predictor, prompt, sampling, on_token, stopped)  # type: ignore[arg-type]
        return End(request_id, True, _json_encoder.encode(summary), GENERATION_MEDIA_TYPE)
    except Exception as exc:
        return error_response(request_id, exc)


def read_url(url: str, storage_options: dict[str, dict[str, str]]) -> bytes:
    """The bytes at a local path, file:// or other fsspec URL, with that protocol's options."""
    import fsspec  # only async payloads need it: not imported by every replica at start

    protocol = url.split("://", 1)[0] if "://" in url else "file"
    with fsspec.open(url, "rb", **storage_options.get(protocol, {})) as file:
        data: bytes = file.read()
    return data


def body_from_url(request: Request, storage_options: dict[str, dict[str, str]]) -> Request | End:
    """The request with its body read from ``body_url`` (async inference), or a 400 naming the URL."""
    try:
        body = read_url(request.body_url, storage_options)
    except Exception as exc:  # OSError locally; each fsspec backend raises its own types
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
        message = f"The payload {request.body_url} cannot be read: {reason}"
        return End(request.id, False, error_type="ValidationError", error_message=message)
    return msgspec.structs.replace(request, body=body, body_url="")


def error_response(request_id: int, exc: BaseException) -> End:
    """A ValidationError keeps its type (400); anything else the model raised is a ModelError."""
    if isinstance(exc, (ValidationError, TargetModelNotFound)):  # the client's to fix: keep its type
        return End(request_id, False, error_type=exc.type, error_message=exc.message)
    return End(request_id, False, error_type="ModelError", error_message=f"{type(exc).__name__}: {exc}")


def _respond(request_id: int, result: Any, accept: str = "") -> End:
    if isinstance(result, Exception):
        return error_response(request_id, result)
    try:
        if wants_csv(accept):
            return End(request_id, True, encode_csv(result), CSV)
        return End(request_id, True, _encode(result))
    except Exception as exc:
        return error_response(request_id, exc)


def _encode(result: Any) -> bytes:
    try:
        return _json_encoder.encode(result)
    except TypeError:
        # Custom handlers may return numpy values; the stdlib encoder's default covers them.
        return json.dumps(result, default=_to_plain).encode()


def _to_plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
