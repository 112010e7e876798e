"""AWS event-stream framing, the body of SageMaker's InvokeEndpointWithResponseStream answer.

boto3 reads the answer as ``response["Body"]``, an iterator of events: each part of a stream is one
``PayloadPart`` event (its bytes unchanged), and a failure after the 200 is the stream's last
message, a ``ModelStreamError`` (the model failed) or ``InternalStreamFailure`` (anything else)
exception that botocore raises as ``EventStreamError``.

A message, as botocore's ``EventStreamBuffer`` checks it (big-endian, CRC32 as ``zlib.crc32``)::

    total length (4) | headers length (4) | CRC of those 8 bytes (4) | headers | payload | CRC of all before (4)

and a header is ``name length (1) | name | type (1, 7 = string) | value length (2) | value``.
"""

from __future__ import annotations

import struct
import zlib

import msgspec

EVENT_STREAM = "application/vnd.amazon.eventstream"
_STRING = 7


def message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message."""
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return head + struct.pack(">I", zlib.crc32(head))


def payload_part(body: bytes) -> bytes:
    """A ``PayloadPart`` event carrying one part's bytes."""
    headers = {":event-type": "PayloadPart", ":content-type": "application/octet-stream", ":message-type": "event"}
    return message(headers, body)


def model_stream_error(code: str, text: str) -> bytes:
    """The ``ModelStreamError`` that ends a stream whose model failed after its first part."""
    headers = {":exception-type": "ModelStreamError", ":content-type": "application/json", ":message-type": "exception"}
    return message(headers, msgspec.json.encode({"Message": text, "ErrorCode": code}))


def internal_stream_failure(text: str) -> bytes:
    """The ``InternalStreamFailure`` that ends a stream cut short by anything but the model (a replica that
    crashed, a timeout): botocore raises it as ``EventStreamError`` with that code."""
    headers = {":exception-type": "InternalStreamFailure", ":content-type": "application/json", ":message-type": "exception"}
    return message(headers, msgspec.json.encode({"Message": text}))


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", _STRING, len(raw_value)) + raw_value
