"""JSON bodies parsed in the server process: UTF-8 checked, nesting bounded, each failure a clear 400.

Python's ``json`` recurses once per ``[`` or ``{``: 100,000 of them raise RecursionError, which
escaped as a 500. Every JSON body the server parses itself (the SageMaker control plane, ``/v2``,
the async route's inline checks) goes through ``parse_json``; the invocation hot path forwards raw
bytes and parses nothing but its ``"stream"`` flag.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from hubserve.errors import ValidationError

MAX_JSON_DEPTH = 64


class BodyError(ValidationError):
    """A body that is not UTF-8, not JSON, or nested deeper than ``MAX_JSON_DEPTH``; each route renders it."""


def parse_json(body: bytes, *, empty: Any = None, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The parsed body; ``empty`` for an empty or all-whitespace body when it is not None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(
            f"The request body is not valid UTF-8 (bad byte at offset {exc.start}); send JSON encoded as UTF-8."
        ) from None
    if empty is not None and not text.strip():
        return empty
    _check_depth(text, max_depth)
    try:
        return json.loads(text)
    except RecursionError:  # pragma: no cover - _check_depth refuses these first
        raise _too_deep(max_depth) from None
    except ValueError as exc:
        raise BodyError(f"The request body is not valid JSON ({exc}); send a JSON object.") from None


def _too_deep(max_depth: int) -> BodyError:
    return BodyError(f"The request body's JSON is nested too deeply (more than {max_depth} levels of [ or {{).")


def _check_depth(text: str, max_depth: int) -> None:
    """Refuse nesting over ``max_depth`` before parsing; brackets inside strings do not count.

    Free when the body cannot be that deep (no more brackets than the limit); otherwise one regex
    pass that steps over string literals.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    for match in _TOKENS.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > max_depth:
                raise _too_deep(max_depth)
        elif char in "]}":
            depth -= 1


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class _Inputs(msgspec.Struct):
    inputs: msgspec.Raw = msgspec.Raw(b"null")


def check_batch(body: bytes, limit: int) -> None:
    """Refuse a JSON body whose ``inputs`` list holds more than ``limit`` items (one 2.6 MB body of 200,000
    strings held a replica for over a minute).

    Free for bodies too short to hold that many items (each takes at least 2 bytes); otherwise the list
    is counted without decoding its items (about 25 ms for 200,000). A body that is not such JSON
    passes: the replica says what is wrong with it.
    """
    if len(body) < 2 * limit:
        return
    try:
        raw = msgspec.json.decode(body, type=_Inputs).inputs
        if bytes(raw)[:1] != b"[":
            return
        count = len(msgspec.json.decode(raw, type=list[msgspec.Raw]))
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return
    if count > limit:
        raise ValidationError(
            f"'inputs' holds {count} items, more than the {limit} one request may carry; split it into requests "
            f"of at most {limit} inputs (server setting max_batch_inputs), or use a batch transform job."
        )
