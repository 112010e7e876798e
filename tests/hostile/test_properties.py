"""Property tests (hypothesis): the spec parser and the replica frame protocol take any input without
an exception of their own making; frames that are truncated, oversized or garbage are refused with the
protocol's errors and leave a real replica server serving."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubserve.models.loading import LoadedModel
from hubserve.spec import EndpointSpec
from hubserve.worker import protocol
from hubserve.worker.protocol import Cancel, End, Part, Request, Stats, decode_frame, encode_frame, read_payload
from tests.worker.test_server import model, serving  # noqa: F401 - the tiny replica fixture and server

BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
SPEC_KEYS = ["name", "model", "compute", "batching", "generation", "async_inference", "source", "task", "type",
             "min_replicas", "max_replicas", "memory_mb", "max_concurrency", "env", "secrets", "revision"]  # fmt: skip
spec_like = st.dictionaries(st.sampled_from(SPEC_KEYS) | st.text(max_size=8), json_values, max_size=6)
near_valid = st.fixed_dictionaries(
    {"name": st.text(max_size=40), "model": st.dictionaries(st.sampled_from(SPEC_KEYS), json_values, max_size=4)},
    optional={"compute": st.dictionaries(st.sampled_from(SPEC_KEYS), json_values, max_size=4)},
)


@BOUNDED
@given(st.one_of(spec_like, near_valid, json_values))
def test_the_spec_parser_raises_only_validation_errors(data: Any) -> None:
    try:
        spec = EndpointSpec.model_validate(data)
    except pydantic.ValidationError:
        return
    json.dumps(spec.model_dump(mode="json"))  # whatever it accepted, it can store and show


frames = st.one_of(
    st.builds(Request, id=st.integers(0, 2**63), body=st.binary(max_size=256), content_type=st.text(max_size=20),
              accept=st.text(max_size=20), body_url=st.text(max_size=20), stream=st.booleans()),
    st.builds(Cancel, id=st.integers(0, 2**63)),
    st.builds(Part, id=st.integers(0, 2**63), body=st.binary(max_size=256)),
    st.builds(End, id=st.integers(0, 2**63), ok=st.booleans(), body=st.binary(max_size=64),
              error_type=st.text(max_size=10), error_message=st.text(max_size=40)),
    st.builds(Stats, running=st.integers(0, 1000), waiting=st.integers(0, 1000), batch_size=st.integers(0, 64),
              generated_tokens=st.integers(0, 2**40)),
)  # fmt: skip


def _read(data: bytes) -> Any:
    async def read() -> Any:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return decode_frame(await read_payload(reader))

    return asyncio.run(read())


@BOUNDED
@given(frames)
def test_every_frame_survives_the_wire(frame: Any) -> None:
    assert _read(bytes(encode_frame(frame))) == frame


@BOUNDED
@given(frames, st.data())
def test_a_truncated_frame_is_an_incomplete_read(frame: Any, data: st.DataObject) -> None:
    wire = bytes(encode_frame(frame))
    cut = data.draw(st.integers(0, len(wire) - 1))
    with pytest.raises(asyncio.IncompleteReadError):
        _read(wire[:cut])


@BOUNDED
@given(st.binary(max_size=512))
def test_garbage_payloads_raise_only_the_decoders_error(payload: bytes) -> None:
    try:
        decode_frame(payload)
    except msgspec.DecodeError:  # msgspec.ValidationError is one too; both are ValueErrors, which readers catch
        pass


def test_an_oversized_length_is_refused_before_anything_is_read() -> None:
    with pytest.raises(ValueError, match="over the limit"):
        _read(protocol._LENGTH.pack(protocol.MAX_FRAME_BYTES + 1))


async def _ask(path: str, raw: bytes, eof: bool = False) -> bytes:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(raw)
    if eof:  # the sender is gone: a cut frame stays cut
        writer.write_eof()
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


def test_a_real_replica_server_drops_bad_frames_and_keeps_serving(model: LoadedModel) -> None:  # noqa: F811
    good = encode_frame(Request(id=7, body=json.dumps({"inputs": "fine"}).encode()))

    async def scenario() -> None:
        async with serving(model) as (path, _):
            for bad in (
                b"\x00\x00\x00\x05garbage",  # a length, then bytes that are no frame
                protocol._LENGTH.pack(protocol.MAX_FRAME_BYTES + 1),  # a length over the limit
                bytes(good)[:9],  # a frame cut short
                protocol._LENGTH.pack(3) + msgspec.msgpack.encode(["nope", 1]),  # an unknown tag
            ):
                assert await _ask(path, bad, eof=True) == b""  # the connection is closed, nothing is answered
            answer = decode_frame((await _ask(path, bytes(good)))[4:])
            assert isinstance(answer, End) and answer.ok and answer.id == 7

    asyncio.run(scenario())
