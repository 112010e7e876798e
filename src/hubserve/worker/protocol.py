"""Length-prefixed msgpack frames between the gateway and a replica, multiplexed by request id.

gateway -> replica: ``Request`` (one invocation) and ``Cancel`` (the gateway no longer wants it).
replica -> gateway: zero or more ``Part`` frames (stream requests only), then one ``End`` per
request, whether it succeeded or not. A cancelled request gets no frame at all. A replica that
runs a generation engine also sends ``Stats`` (its engine's levels, ``types.EngineStats``) on
every open connection, at most every 100 ms while they change; other replicas never send it. A
multi-model replica sends ``Models`` (which of its models are loaded) the same way.

Every frame is a tagged, array-like msgspec struct (the tag is the first array element), so one
decoder reads either direction's frames and dispatch is a type check. The request carries the
client's body bytes untouched: the replica parses them, so the gateway's single event loop never
spends time on JSON of any size.
"""

from __future__ import annotations

import asyncio
import struct

import msgspec

_LENGTH = struct.Struct("!I")
MAX_FRAME_BYTES = 1 << 31


class Request(msgspec.Struct, tag="req", array_like=True):
    id: int
    body: bytes
    content_type: str = "application/json"
    accept: str = "application/json"
    # Async inference: the replica reads the body from here (a local path, file:// or s3:// URL).
    body_url: str = ""
    stream: bool = False  # answer in Part frames where the model streams
    target_model: str = ""  # a multi-model replica: which of its models answers (worker/model_host.py)


class Cancel(msgspec.Struct, tag="cancel", array_like=True):
    """Drop request ``id``: unqueue it, discard its answer, or stop its stream between two parts."""

    id: int


class Part(msgspec.Struct, tag="part", array_like=True):
    """One piece of a stream request's answer; its ``End`` follows the last one."""

    id: int
    body: bytes
    content_type: str = "application/json"


class End(msgspec.Struct, tag="end", array_like=True):
    """The last frame of every request: its whole answer, an empty body after parts, or its error."""

    id: int
    ok: bool
    body: bytes = b""
    content_type: str = "application/json"
    error_type: str = ""
    error_message: str = ""


class Stats(msgspec.Struct, tag="stats", array_like=True):
    """The replica's generation engine now (the fields of ``types.EngineStats``): for metrics, not a request's."""

    running: int
    waiting: int
    batch_size: int
    generated_tokens: int


class HeldModel(msgspec.Struct, array_like=True, frozen=True):
    """One model a multi-model replica has served: where it stands now and its counters since the start."""

    name: str
    state: str  # "loading" | "loaded" | "unloaded"
    size_mb: float = 0.0  # memory it holds (or is expected to) while loaded or loading
    last_used: float = 0.0  # wall-clock time of its last request; 0: never
    load_s: float = 0.0  # how long its last load took
    loads: int = 0
    unloads: int = 0
    hits: int = 0  # requests that found it loaded
    misses: int = 0  # requests that waited for it to load


class Models(msgspec.Struct, tag="models", array_like=True):
    """A multi-model replica's models, sent on every open connection whenever one loads or unloads
    (at most every 50 ms) and once on each new connection: routing prefers a replica that holds the model."""

    held: list[HeldModel]
    budget_mb: float
    used_mb: float


Frame = Request | Cancel | Part | End | Stats | Models

_encoder = msgspec.msgpack.Encoder()
_frame_decoder = msgspec.msgpack.Decoder(Frame)


def encode_frame(message: Frame) -> bytearray:
    """The frame as one buffer: the 4-byte length, then the payload (encoded in place, one allocation)."""
    buffer = bytearray(_LENGTH.size)
    _encoder.encode_into(message, buffer, _LENGTH.size)
    _LENGTH.pack_into(buffer, 0, len(buffer) - _LENGTH.size)
    return buffer


async def read_payload(reader: asyncio.StreamReader) -> bytes:
    """Read one frame's payload; raises asyncio.IncompleteReadError at end of stream."""
    header = await reader.readexactly(_LENGTH.size)
    (length,) = _LENGTH.unpack(header)
    if length > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {length} bytes is over the limit")
    return await reader.readexactly(length)


def decode_frame(payload: bytes) -> Frame:
    """Any frame of either direction; raises msgspec.DecodeError (a ValueError) on garbage."""
    return _frame_decoder.decode(payload)


# --- the zygote's control pipe ------------------------------------------------------------
# The server's backend and the zygote (worker/zygote.py) speak these over the zygote's
# stdin/stdout, framed like the replica protocol (4-byte length, then msgpack).
#   backend -> zygote: Spawn (fork a replica), Kill (signal a replica the zygote has not reaped)
#   zygote -> backend: ZygoteReady (once, imports done), Spawned (reply to Spawn), Exited


class ZygoteReady(msgspec.Struct, tag="ready", array_like=True):
    pid: int
    preload_s: float  # how long the imports and warm-ups took
    skipped: list[str] = msgspec.field(default_factory=list)  # preloads that failed, with why


class Spawn(msgspec.Struct, tag="spawn", array_like=True):
    replica_id: str
    argv: list[str]  # for hubserve.worker.server.main
    env: dict[str, str]  # applied over the zygote's own environment
    log_path: str  # the replica's stdout and stderr
    cpus: list[int] = msgspec.field(default_factory=list)  # CPU affinity; empty: inherit


class Spawned(msgspec.Struct, tag="spawned", array_like=True):
    replica_id: str
    pid: int  # 0 when the fork failed
    error: str = ""


class Kill(msgspec.Struct, tag="kill", array_like=True):
    replica_id: str
    signal: int


class Exited(msgspec.Struct, tag="exited", array_like=True):
    replica_id: str
    pid: int
    code: int  # like Popen.returncode: negative for a signal


ZygoteCommand = Spawn | Kill
ZygoteEvent = ZygoteReady | Spawned | Exited

_zygote_command_decoder = msgspec.msgpack.Decoder(ZygoteCommand)
_zygote_event_decoder = msgspec.msgpack.Decoder(ZygoteEvent)


def encode_control_frame(message: ZygoteCommand | ZygoteEvent) -> bytes:
    payload = _encoder.encode(message)
    return _LENGTH.pack(len(payload)) + payload


def decode_zygote_command(payload: bytes) -> ZygoteCommand:
    return _zygote_command_decoder.decode(payload)


def decode_zygote_event(payload: bytes) -> ZygoteEvent:
    return _zygote_event_decoder.decode(payload)


class FrameBuffer:
    """Split a byte stream into frame payloads, whatever sizes it arrives in (no event loop needed)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        payloads = []
        while len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length > MAX_FRAME_BYTES:
                raise ValueError(f"frame of {length} bytes is over the limit")
            end = _LENGTH.size + length
            if len(self._buffer) < end:
                break
            payloads.append(bytes(self._buffer[_LENGTH.size:end]))
            del self._buffer[:end]
        return payloads
