"""The AWS event-stream framing of InvokeEndpointWithResponseStream, read back by botocore's own parser."""

from __future__ import annotations

import json

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from hubserve.api.sagemaker import eventstream


def _messages(data: bytes) -> list[tuple[dict[str, str], bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return [(dict(message.headers), message.payload) for message in buffer]


def test_payload_parts_and_the_closing_error_parse_as_botocore_reads_them() -> None:
    data = eventstream.payload_part(b'{"token": 1}') + eventstream.payload_part("é".encode())
    data += eventstream.model_stream_error("ModelError", "the handler failed")
    (first, first_body), (_, second_body), (error, error_body) = _messages(data)
    assert first == {":event-type": "PayloadPart", ":content-type": "application/octet-stream", ":message-type": "event"}
    assert first_body == b'{"token": 1}' and second_body == "é".encode()
    assert error[":message-type"] == "exception" and error[":exception-type"] == "ModelStreamError"
    assert json.loads(error_body) == {"Message": "the handler failed", "ErrorCode": "ModelError"}


def test_a_corrupted_message_fails_its_checksum() -> None:
    data = bytearray(eventstream.payload_part(b"abc"))
    data[-5] ^= 0xFF  # a payload byte
    with pytest.raises(ChecksumMismatch):
        _messages(bytes(data))
