"""Turn framed requests into framed responses around a loaded model.

Parsing, validation and encoding happen here, in the replica, so errors in the client's
body are reported with the same types whichever dialect the gateway received.

Two steps for the batcher: ``plan`` runs on the event loop as a frame arrives (parse the
JSON, check the body; a bad one is answered at once and never queues) and returns a ``Job``
saying what the request may share a batch with; ``run_planned`` runs a batch in the
inference thread and encodes one response per request. Custom code runs through ``handle``,
one request at a time, exactly as before batching.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec

from hubserve.errors import ValidationError
from hubserve.models import batching
from hubserve.models.loading import LoadedModel
from hubserve.worker.batcher import Job
from hubserve.worker.csv_codec import CSV, decode_csv, encode_csv, wants_csv
from hubserve.worker.protocol import Request, Response

_json_encoder = msgspec.json.Encoder()
_EXAMPLE = '{"inputs": "I love this movie", "parameters": {}}'


def parse_body(body: bytes, content_type: str) -> Any:
    """Decode a JSON (or text/plain) invocation body; raise ValidationError saying how to fix it."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in ("text/plain",):
        return {"inputs": body.decode("utf-8", errors="replace")}
    if media_type == CSV:  # SageMaker's HF toolkit: a header row, then one input per row
        return decode_csv(body)
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
    if not isinstance(data, dict) or "inputs" not in data:
        raise ValidationError(f"The request body must be a JSON object with an 'inputs' field, like {_EXAMPLE}.")
    parameters = data.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise ValidationError("'parameters' must be a JSON object, like {\"top_k\": 2}.")
    return data


def handle(model: LoadedModel, request: Request) -> Response:
    """Run one request; every failure becomes an error response, never an exception."""
    try:
        if model.accepts_raw:
            body, content_type = model.handle_raw(request.body, request.content_type, request.accept)
            return Response(id=request.id, ok=True, body=body, content_type=content_type)
        check_accept(request.accept)
        data = parse_body(request.body, request.content_type)
        if not model.custom:
            require_inputs(data)
        result = model.predict(data)
        return Response(id=request.id, ok=True, body=_encode(result))
    except Exception as exc:
        return error_response(request.id, exc)


@dataclass(eq=False)
class Planned:
    """A request the batcher holds: its frame and, for standard tasks, its checked body."""

    request: Request
    prepared: batching.Prepared | None = None  # None: custom code, run through ``handle``


def plan(model: LoadedModel, request: Request) -> Job | Response:
    """Check a request as it arrives: a ``Job`` for the batcher, or the error response now."""
    if model.custom or model.accepts_raw:
        return Job(Planned(request))  # user code: never batched, checked by its own hooks
    try:
        check_accept(request.accept, csv=True)
        data = require_inputs(parse_body(request.body, request.content_type))
        prepared = batching.prepare(model, data)
    except Exception as exc:
        return error_response(request.id, exc)
    return Job(Planned(request, prepared), key=prepared.key, sequences=prepared.sequences, tokens=prepared.tokens)


def run_planned(model: LoadedModel, batch: list[Planned], batch_size: int) -> list[Response]:
    """Run one batch (requests with one key) in the inference thread; one response per request."""
    if any(planned.prepared is None for planned in batch):
        return [handle(model, planned.request) for planned in batch]
    prepared = [planned.prepared for planned in batch if planned.prepared is not None]
    results = batching.run(model, prepared, batch_size)
    return [_respond(planned.request.id, result, planned.request.accept) for planned, result in zip(batch, results, strict=True)]


def body_from_file(request: Request) -> Request | Response:
    """The request with its body read from ``body_path`` (async inference), or a 400 naming the file."""
    try:
        with open(request.body_path, "rb") as file:
            body = file.read()
    except OSError as exc:
        message = f"The payload file {request.body_path} cannot be read: {exc.strerror or exc}"
        return Response(id=request.id, ok=False, error_type="ValidationError", error_message=message)
    return msgspec.structs.replace(request, body=body, body_path="")


def error_response(request_id: int, exc: BaseException) -> Response:
    """A ValidationError keeps its type (400); anything else the model raised is a ModelError."""
    if isinstance(exc, ValidationError):
        return Response(id=request_id, ok=False, error_type=exc.type, error_message=exc.message)
    return Response(id=request_id, ok=False, error_type="ModelError", error_message=f"{type(exc).__name__}: {exc}")


def _respond(request_id: int, result: Any, accept: str = "") -> Response:
    if isinstance(result, Exception):
        return error_response(request_id, result)
    try:
        if wants_csv(accept):
            return Response(id=request_id, ok=True, body=encode_csv(result), content_type=CSV)
        return Response(id=request_id, ok=True, body=_encode(result))
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
