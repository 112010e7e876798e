"""Length-prefixed msgpack frames between the gateway and a replica, multiplexed by request id.

The request carries the client's body bytes untouched: the replica parses them, so the
gateway's single event loop never spends time on JSON of any size.
"""

from __future__ import annotations

import asyncio
import struct

import msgspec

_LENGTH = struct.Struct("!I")
MAX_FRAME_BYTES = 1 << 31


class Request(msgspec.Struct, array_like=True):
    id: int
    body: bytes
    content_type: str = "application/json"
    accept: str = "application/json"


class Response(msgspec.Struct, array_like=True):
    id: int
    ok: bool
    body: bytes = b""
    content_type: str = "application/json"
    error_type: str = ""
    error_message: str = ""


_request_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(Request)
_response_decoder = msgspec.msgpack.Decoder(Response)


def encode_frame(message: Request | Response) -> bytes:
    payload = _request_encoder.encode(message)
    return _LENGTH.pack(len(payload)) + payload


async def read_payload(reader: asyncio.StreamReader) -> bytes:
    """Read one frame's payload; raises asyncio.IncompleteReadError at end of stream."""
    header = await reader.readexactly(_LENGTH.size)
    (length,) = _LENGTH.unpack(header)
    if length > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {length} bytes is over the limit")
    return await reader.readexactly(length)


def decode_request(payload: bytes) -> Request:
    return _request_decoder.decode(payload)


def decode_response(payload: bytes) -> Response:
    return _response_decoder.decode(payload)
