"""Turn one framed request into one framed response around a loaded model.

Parsing, validation and encoding happen here, in the replica, so errors in the client's
body are reported with the same types whichever dialect the gateway received.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from hubserve.errors import ValidationError
from hubserve.models.loading import LoadedModel
from hubserve.worker.protocol import Request, Response

_json_encoder = msgspec.json.Encoder()
_EXAMPLE = '{"inputs": "I love this movie", "parameters": {}}'


def parse_body(body: bytes, content_type: str) -> Any:
    """Decode a JSON (or text/plain) invocation body; raise ValidationError saying how to fix it."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in ("text/plain",):
        return {"inputs": body.decode("utf-8", errors="replace")}
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


def check_accept(accept: str) -> None:
    """Standard tasks answer JSON only; say so rather than send JSON to a client that refused it."""
    accepted = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
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
    except ValidationError as exc:
        return Response(id=request.id, ok=False, error_type=exc.type, error_message=exc.message)
    except Exception as exc:  # the model raised: the client gets a ModelError with its message
        return Response(id=request.id, ok=False, error_type="ModelError", error_message=f"{type(exc).__name__}: {exc}")


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
