"""ReplicaServer in-process on a Unix socket: batching over the wire, bad bodies, closed connections, cancels.

The tiny text-classification model serves; its pipeline is wrapped in a gate so a test can hold
the inference thread busy while more requests arrive, which is what makes them batch (and what
lets a test cancel a request while it is still queued). Streams and payload URLs have their own
files (test_streams.py, test_payloads.py).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from hubserve.backends.channel import SocketChannel
from hubserve.errors import ValidationError
from hubserve.models.batching import Limits
from hubserve.models.loading import LoadedModel, load_model
from hubserve.types import Invocation, Reply
from hubserve.worker.protocol import Cancel, End, Request, decode_frame, encode_frame, read_payload
from hubserve.worker.server import BATCH_PREFIX, ReplicaServer


class Gate:
    """Wraps the pipeline: records each call's inputs; the first call waits until released."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.calls: list[list[Any]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        self.calls.append(list(inputs) if isinstance(inputs, list) else [inputs])
        if len(self.calls) == 1:
            self.entered.set()
            assert self.release.wait(10)
        return self.target(inputs, **kwargs)


@pytest.fixture(scope="module")
def model(tiny_models: dict[str, Path]) -> LoadedModel:
    return load_model(tiny_models["text-classification"], "text-classification")


@pytest.fixture
def gate(model: LoadedModel) -> Any:
    predictor: Any = model.predictor
    gate = Gate(predictor.pipe)
    predictor.pipe = gate
    yield gate
    gate.release.set()
    predictor.pipe = gate.target


@asynccontextmanager
async def serving(model: LoadedModel, limits: Limits = Limits(32, 8192)) -> AsyncIterator[tuple[str, ReplicaServer]]:
    with tempfile.TemporaryDirectory(prefix="hs-", dir="/tmp") as folder:  # Unix socket paths must stay short
        path = str(Path(folder) / "r.sock")
        replica = ReplicaServer(model, limits)
        server = await asyncio.start_unix_server(replica.serve_connection, path=path)
        try:
            yield path, replica
        finally:
            server.close()


def body(inputs: Any, **parameters: Any) -> bytes:
    return json.dumps({"inputs": inputs, "parameters": parameters}).encode()


def invocation(payload: bytes) -> Invocation:
    return Invocation(endpoint="e", body=payload)


async def until(condition: Any, timeout: float = 5.0) -> None:
    """Poll the event loop until ``condition()`` holds (frames in flight need a few turns)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


async def read_ends(reader: asyncio.StreamReader, count: int) -> list[End]:
    ends = []
    while len(ends) < count:
        frame = decode_frame(await read_payload(reader))
        assert isinstance(frame, End), frame
        ends.append(frame)
    return ends


async def wait_entered(gate: Gate) -> None:
    await asyncio.get_running_loop().run_in_executor(None, gate.entered.wait, 10)


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def test_requests_that_arrive_while_busy_run_as_one_batch(model: LoadedModel, gate: Gate, capsys: pytest.CaptureFixture[str]) -> None:
    texts = [f"review number {i} " + "good " * i for i in range(12)]

    async def scenario() -> list[Any]:
        async with serving(model) as (path, _):
            channel = await SocketChannel.connect(path, "r1")
            first = asyncio.ensure_future(channel.call(invocation(body("first"))))
            await wait_entered(gate)
            later = [asyncio.ensure_future(channel.call(invocation(body(text)))) for text in texts]
            await asyncio.sleep(0.1)
            gate.release.set()
            responses = await asyncio.gather(first, *later)
            await channel.close()
            return [json.loads(r.body) for r in responses]

    answers = run(scenario())
    assert gate.calls == [["first"], texts]  # one pipeline call for the twelve that queued
    assert answers[1:] == [model.predict({"inputs": text}) for text in texts]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(BATCH_PREFIX)]
    assert json.loads(lines[0][len(BATCH_PREFIX):])["requests"] == 12


def test_a_bad_body_fails_alone(model: LoadedModel, gate: Gate) -> None:
    async def scenario() -> list[Any]:
        async with serving(model) as (path, _):
            channel = await SocketChannel.connect(path, "r1")
            first = asyncio.ensure_future(channel.call(invocation(body("first"))))
            await wait_entered(gate)
            bodies = [body("fine"), body(3), b"{not json", body("x", top_k=0), body("also fine")]
            later = [asyncio.ensure_future(channel.call(invocation(b))) for b in bodies]
            await asyncio.sleep(0.1)
            gate.release.set()
            responses = await asyncio.gather(first, *later, return_exceptions=True)
            await channel.close()
            return responses

    first, fine, number, broken, zero, also = run(scenario())
    assert all(isinstance(reply, Reply) for reply in (first, fine, also))
    for bad in (number, broken, zero):
        assert isinstance(bad, ValidationError)  # the replica's error type, raised by the channel
    assert gate.calls == [["first"], ["fine", "also fine"]]


def test_a_closed_connection_does_not_break_the_others(model: LoadedModel, gate: Gate) -> None:
    async def scenario() -> tuple[list[Any], list[Any]]:
        async with serving(model) as (path, _):
            other = await SocketChannel.connect(path, "other")
            _, writer = await asyncio.open_unix_connection(path)
            writer.write(encode_frame(Request(1, body("running on a connection that closes"))))
            await writer.drain()
            await wait_entered(gate)
            for request_id in (2, 3, 4):
                writer.write(encode_frame(Request(request_id, body(f"queued {request_id}"))))
            await writer.drain()
            waiting = asyncio.ensure_future(other.call(invocation(body("other's"))))
            await asyncio.sleep(0.1)
            writer.close()  # the client goes away with one request running and three queued
            await asyncio.sleep(0.1)
            gate.release.set()
            kept = await waiting
            after = await other.call(invocation(body("later")))
            await other.close()
            return [kept, after], gate.calls

    (kept, after), calls = run(scenario())
    assert isinstance(after, Reply)
    assert json.loads(kept.body) == model.predict({"inputs": "other's"})
    assert not any(text.startswith("queued") for call in calls for text in call)  # dropped, never run


def test_a_cancel_frame_drops_a_queued_request_and_the_answer_of_a_running_one(model: LoadedModel, gate: Gate) -> None:
    async def scenario() -> tuple[list[End], list[list[Any]]]:
        async with serving(model) as (path, server):
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(encode_frame(Request(1, body("running"))))
            await wait_entered(gate)
            for request_id, text in ((2, "a"), (3, "b"), (4, "c")):
                writer.write(encode_frame(Request(request_id, body(text))))
            await until(lambda: server.batcher.queued == 3)
            writer.write(encode_frame(Cancel(3)))  # queued: dropped, its slot in the next batch freed
            writer.write(encode_frame(Cancel(1)))  # running: its answer is dropped
            writer.write(encode_frame(Cancel(99)))  # unknown: ignored
            await until(lambda: server.batcher.queued == 2)
            gate.release.set()
            ends = await read_ends(reader, 2)
            writer.write(encode_frame(Request(5, body("after"))))
            ends += await read_ends(reader, 1)
            writer.close()
            return ends, list(gate.calls)

    ends, calls = run(scenario())
    assert [end.id for end in ends] == [2, 4, 5]  # nothing for 1 or 3
    assert all(end.ok for end in ends)
    assert json.loads(ends[1].body) == model.predict({"inputs": "c"})
    assert calls == [["running"], ["a", "c"], ["after"]]


def test_cancelling_a_call_task_drops_its_request_from_the_batch(model: LoadedModel, gate: Gate) -> None:
    async def scenario() -> tuple[list[Any], int, list[list[Any]]]:
        async with serving(model) as (path, server):
            channel = await SocketChannel.connect(path, "r1")
            first = asyncio.ensure_future(channel.call(invocation(body("first"))))
            await wait_entered(gate)
            calls = {text: asyncio.ensure_future(channel.call(invocation(body(text)))) for text in ("a", "b", "c")}
            await until(lambda: server.batcher.queued == 3)
            calls["b"].cancel()
            await until(lambda: server.batcher.queued == 2)  # the Cancel frame reached the replica
            outstanding = channel.outstanding
            gate.release.set()
            answers = await asyncio.gather(first, *calls.values(), return_exceptions=True)
            await channel.drained()
            await channel.close()
            return answers, outstanding, list(gate.calls)

    (_, a, b, c), outstanding, calls = run(scenario())
    assert outstanding == 3  # first, a, c: the cancelled call was forgotten at once
    assert isinstance(b, asyncio.CancelledError)
    assert json.loads(a.body) == model.predict({"inputs": "a"}) and json.loads(c.body) == model.predict({"inputs": "c"})
    assert calls == [["first"], ["a", "c"]]
