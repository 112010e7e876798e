"""What one async request asks for: SageMaker's headers (or JSON fields) checked against the limits.

Every bad value is a 400 that names the header and the allowed range, before a byte of the
payload is stored.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Mapping
from typing import Any

from hubserve.errors import ValidationError

DEFAULT_TIMEOUT_S = 900  # SageMaker's InvocationTimeoutSeconds default
MAX_TIMEOUT_S = 3600
DEFAULT_TTL_S = 6 * 3600  # SageMaker's RequestTTLSeconds default and maximum
MAX_TTL_S = 6 * 3600

H_CONTENT_TYPE = "x-amzn-sagemaker-content-type"
H_ACCEPT = "x-amzn-sagemaker-accept"
H_INPUT_LOCATION = "x-amzn-sagemaker-inputlocation"
H_TTL = "x-amzn-sagemaker-requestttlseconds"
H_TIMEOUT = "x-amzn-sagemaker-invocationtimeoutseconds"
H_INFERENCE_ID = "x-amzn-sagemaker-inference-id"
H_OUTPUT_LOCATION = "x-hubserve-output-location"  # hubserve's own: an output prefix for this request

# Used in file names and URLs, so stricter than SageMaker's "any ASCII": 1-64 of these.
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# A JSON body with one of these keys (and no "inputs") is a request by reference, not a payload.
REFERENCE_FIELDS = ("input_location", "output_location", "content_type", "accept", "inference_id",
                    "request_ttl_seconds", "invocation_timeout_seconds")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class AsyncRequest:
    inference_id: str
    client_chose_id: bool
    content_type: str
    accept: str
    input_location: str | None
    output_location: str | None
    ttl_s: int
    timeout_s: int


def parse(headers: Mapping[str, str], fields: Mapping[str, Any] | None = None) -> AsyncRequest:
    """Headers first; a reference body's JSON fields fill what the headers leave out."""
    fields = fields or {}

    def pick(header: str, field: str) -> Any:
        value = headers.get(header)
        return value if value is not None else fields.get(field)

    given_id = pick(H_INFERENCE_ID, "inference_id")
    if given_id is not None:
        given_id = str(given_id).strip()
        if not _ID_PATTERN.fullmatch(given_id):
            raise ValidationError(
                f"X-Amzn-SageMaker-Inference-Id {given_id!r} is invalid: use 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
    content_type = pick(H_CONTENT_TYPE, "content_type") or headers.get("content-type") or "application/json"
    if fields and pick(H_CONTENT_TYPE, "content_type") is None:
        content_type = "application/json"  # the reference body's own type says nothing about the payload
    return AsyncRequest(
        inference_id=given_id or secrets.token_hex(16),
        client_chose_id=given_id is not None,
        content_type=str(content_type),
        accept=str(pick(H_ACCEPT, "accept") or headers.get("accept") or "application/json").replace("*/*", "application/json"),
        input_location=_text(pick(H_INPUT_LOCATION, "input_location")),
        output_location=_text(pick(H_OUTPUT_LOCATION, "output_location")),
        ttl_s=_seconds(pick(H_TTL, "request_ttl_seconds"), "X-Amzn-SageMaker-RequestTTLSeconds", 1, MAX_TTL_S, DEFAULT_TTL_S),
        timeout_s=_seconds(
            pick(H_TIMEOUT, "invocation_timeout_seconds"), "X-Amzn-SageMaker-InvocationTimeoutSeconds",
            1, MAX_TIMEOUT_S, DEFAULT_TIMEOUT_S,
        ),
    )  # fmt: skip


def reference_fields(data: Any) -> dict[str, Any] | None:
    """The fields of a by-reference JSON body, or None when the body is the payload itself."""
    if isinstance(data, dict) and "input_location" in data and "inputs" not in data:
        unknown = sorted(set(data) - set(REFERENCE_FIELDS))
        if unknown:
            raise ValidationError(
                f"Unknown field(s) {', '.join(unknown)} in a by-reference request; allowed: {', '.join(REFERENCE_FIELDS)}"
            )
        return data
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _seconds(raw: Any, name: str, low: int, high: int, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ValidationError(
            f"{name} must be a whole number of seconds between {low} and {high} (got {raw!r})"
        ) from None
    if not low <= value <= high:
        raise ValidationError(f"{name} must be between {low} and {high} seconds (got {value})")
    return value
