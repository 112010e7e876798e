"""Streams through a real ReplicaServer on a Unix socket: Part frames, the End, early close, errors.

The models are custom code (``LoadedModel(custom=True)``) whose predictor returns a generator,
as a handler.py ``EndpointHandler`` that streams tokens would; the inference thread iterates it.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from hubserve.backends.channel import SocketChannel
from hubserve.errors import ModelError
from hubserve.models.batching import Limits
from hubserve.models.loading import LoadedModel, load_model
from hubserve.types import Invocation, Part
from hubserve.worker.protocol import End, Request, decode_frame, encode_frame, read_payload
from hubserve.worker.protocol import Part as PartFrame
from hubserve.worker.server import ReplicaServer


class Tokens:
    """A streaming handler: ``{"inputs": n}`` yields n items (text, bytes, then JSON); "fail" raises after two."""

    def __call__(self, data: dict[str, Any]) -> Any:
        if data["inputs"] == "plain":
            return {"answer": "whole"}
        return self._generate(data["inputs"])

    def _generate(self, inputs: Any) -> Iterator[Any]:
        if inputs == "fail":
            yield "one"
            yield "two"
            raise RuntimeError("the handler broke mid-stream")
        for i in range(int(inputs)):
            yield [f"t{i}", f"b{i}".encode(), {"token": i}][i % 3]


class Endless:
    """A handler whose stream never ends by itself; counts what it produced and notes when it was closed."""

    def __init__(self) -> None:
        self.produced = 0
        self.closed = threading.Event()

    def __call__(self, data: dict[str, Any]) -> Any:
        if data["inputs"] == "hello":
            return {"echo": "hello"}
        return self._generate()

    def _generate(self) -> Iterator[str]:
        try:
            while True:
                self.produced += 1
                yield f"t{self.produced}"
                time.sleep(0.002)
        finally:
            self.closed.set()


def custom(handler: Any) -> LoadedModel:
    return LoadedModel("text-generation", handler, custom=True)


@asynccontextmanager
async def serving(model: LoadedModel) -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory(prefix="hs-", dir="/tmp") as folder:  # Unix socket paths must stay short
        path = str(Path(folder) / "r.sock")
        server = await asyncio.start_unix_server(ReplicaServer(model, Limits(8, 1024)).serve_connection, path=path)
        try:
            yield path
        finally:
            server.close()


def invocation(inputs: Any, stream: bool = True) -> Invocation:
    return Invocation(endpoint="e", body=json.dumps({"inputs": inputs}).encode(), stream=stream)


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 30))


async def collect(channel: SocketChannel, inputs: Any) -> list[Part]:
    return [part async for part in channel.stream(invocation(inputs))]


def test_a_stream_request_gets_its_parts_then_an_end_frame() -> None:
    async def scenario() -> list[Any]:
        async with serving(custom(Tokens())) as path:
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(encode_frame(Request(7, json.dumps({"inputs": 4}).encode(), stream=True)))
            frames: list[Any] = []
            while not frames or not isinstance(frames[-1], End):
                frames.append(decode_frame(await read_payload(reader)))
            writer.close()
            return frames

    *parts, end = run(scenario())
    assert [type(part) for part in parts] == [PartFrame] * 4 and all(part.id == 7 for part in parts)
    assert [(part.body, part.content_type) for part in parts] == [
        (b"t0", "text/plain; charset=utf-8"),
        (b"b1", "application/octet-stream"),
        (b'{"token":2}', "application/json"),
        (b"t3", "text/plain; charset=utf-8"),
    ]
    assert end.id == 7 and end.ok and end.body == b""


def test_the_channel_yields_the_parts_then_a_final_part() -> None:
    async def scenario() -> tuple[list[Part], list[Part], int]:
        async with serving(custom(Tokens())) as path:
            channel = await SocketChannel.connect(path, "r1")
            tokens = await collect(channel, 5)
            plain = await collect(channel, "plain")  # a handler answering at once: one final part
            outstanding = channel.outstanding
            await channel.close()
            return tokens, plain, outstanding

    tokens, plain, outstanding = run(scenario())
    assert [part.final for part in tokens] == [False] * 5 + [True]
    assert [part.body for part in tokens[:5]] == [b"t0", b"b1", b'{"token":2}', b"t3", b"b4"]
    assert tokens[-1].body == b""
    assert len(plain) == 1 and plain[0].final and json.loads(plain[0].body) == {"answer": "whole"}
    assert outstanding == 0


def test_a_model_that_does_not_stream_answers_in_one_final_part(tiny_models: dict[str, Path]) -> None:
    model = load_model(tiny_models["text-classification"], "text-classification")

    async def scenario() -> list[Part]:
        async with serving(model) as path:
            channel = await SocketChannel.connect(path, "r1")
            parts = await collect(channel, "I love this movie")
            await channel.close()
            return parts

    (part,) = run(scenario())
    assert part.final and json.loads(part.body) == model.predict({"inputs": "I love this movie"})


def test_a_plain_call_to_a_streaming_handler_gets_all_its_items() -> None:
    async def scenario() -> bytes:
        async with serving(custom(Tokens())) as path:
            channel = await SocketChannel.connect(path, "r1")
            reply = await channel.call(invocation(3, stream=False))
            await channel.close()
            return reply.body

    assert json.loads(run(scenario())) == ["t0", "b1", {"token": 2}]  # bytes items as text


def test_an_error_mid_stream_ends_it_with_a_model_error() -> None:
    async def scenario() -> tuple[list[Part], BaseException | None, list[Part]]:
        async with serving(custom(Tokens())) as path:
            channel = await SocketChannel.connect(path, "r1")
            received: list[Part] = []
            error: BaseException | None = None
            try:
                async for part in channel.stream(invocation("fail")):
                    received.append(part)
            except ModelError as exc:
                error = exc
            after = await collect(channel, 1)
            await channel.close()
            return received, error, after

    received, error, after = run(scenario())
    assert [part.body for part in received] == [b"one", b"two"]
    assert error is not None and "the handler broke mid-stream" in str(error)
    assert [part.body for part in after] == [b"t0", b""]


@pytest.mark.parametrize("how", ["aclose", "cancel"])
def test_leaving_a_stream_early_stops_the_generator_and_the_replica_serves_on(how: str) -> None:
    handler = Endless()

    async def scenario() -> tuple[list[Part], bool, int, int, Any, int]:
        async with serving(custom(handler)) as path:
            channel = await SocketChannel.connect(path, "r1")
            received: list[Part] = []
            if how == "aclose":
                async with aclosing(channel.stream(invocation("go"))) as parts:
                    async for part in parts:
                        received.append(part)
                        if len(received) == 3:
                            break
            else:
                three = asyncio.Event()

                async def consume() -> None:
                    async for part in channel.stream(invocation("go")):
                        received.append(part)
                        if len(received) == 3:
                            three.set()

                task = asyncio.ensure_future(consume())
                await three.wait()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            outstanding = channel.outstanding
            closed = await asyncio.get_running_loop().run_in_executor(None, handler.closed.wait, 10)
            produced = handler.produced
            await asyncio.sleep(0.05)
            reply = await channel.call(invocation("hello", stream=False))  # the inference thread is free again
            produced_later = handler.produced
            await channel.close()
            return received, closed, produced, produced_later, json.loads(reply.body), outstanding

    received, closed, produced, produced_later, reply, outstanding = run(scenario())
    assert [part.body for part in received[:3]] == [b"t1", b"t2", b"t3"]
    assert outstanding == 0  # forgotten by the channel as soon as it was left
    assert closed, "the generator was closed (its finally ran)"
    assert produced == produced_later and produced < 1000  # it stopped producing
    assert reply == {"echo": "hello"}
