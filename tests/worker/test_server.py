"""ReplicaServer in-process on a Unix socket: batching over the wire, bad bodies, closed connections.

The tiny text-classification model serves; its pipeline is wrapped in a gate so a test can hold
the inference thread busy while more requests arrive, which is what makes them batch.
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

from hubserve.backends.channel import ReplicaChannel
from hubserve.models.batching import Limits
from hubserve.models.loading import LoadedModel, load_model
from hubserve.worker.protocol import Request, encode_frame
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
async def serving(model: LoadedModel, limits: Limits = Limits(32, 8192)) -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory(prefix="hs-", dir="/tmp") as folder:  # Unix socket paths must stay short
        path = str(Path(folder) / "r.sock")
        server = await asyncio.start_unix_server(ReplicaServer(model, limits).serve_connection, path=path)
        try:
            yield path
        finally:
            server.close()


def body(inputs: Any, **parameters: Any) -> bytes:
    return json.dumps({"inputs": inputs, "parameters": parameters}).encode()


async def wait_entered(gate: Gate) -> None:
    await asyncio.get_running_loop().run_in_executor(None, gate.entered.wait, 10)


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def test_requests_that_arrive_while_busy_run_as_one_batch(model: LoadedModel, gate: Gate, capsys: pytest.CaptureFixture[str]) -> None:
    texts = [f"review number {i} " + "good " * i for i in range(12)]

    async def scenario() -> list[Any]:
        async with serving(model) as path:
            channel = await ReplicaChannel.connect(path, "r1")
            first = asyncio.ensure_future(channel.call(body("first"), "application/json", "application/json"))
            await wait_entered(gate)
            later = [asyncio.ensure_future(channel.call(body(text), "application/json", "application/json")) for text in texts]
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
        async with serving(model) as path:
            channel = await ReplicaChannel.connect(path, "r1")
            first = asyncio.ensure_future(channel.call(body("first"), "application/json", "application/json"))
            await wait_entered(gate)
            bodies = [body("fine"), body(3), b"{not json", body("x", top_k=0), body("also fine")]
            later = [asyncio.ensure_future(channel.call(b, "application/json", "application/json")) for b in bodies]
            await asyncio.sleep(0.1)
            gate.release.set()
            responses = await asyncio.gather(first, *later)
            await channel.close()
            return responses

    first, fine, number, broken, zero, also = run(scenario())
    assert first.ok and fine.ok and also.ok
    for bad in (number, broken, zero):
        assert not bad.ok and bad.error_type == "ValidationError"
    assert gate.calls == [["first"], ["fine", "also fine"]]


def test_a_closed_connection_does_not_break_the_others(model: LoadedModel, gate: Gate) -> None:
    async def scenario() -> tuple[list[Any], list[Any]]:
        async with serving(model) as path:
            other = await ReplicaChannel.connect(path, "other")
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(encode_frame(Request(1, body("running on a connection that closes"))))
            await writer.drain()
            await wait_entered(gate)
            for request_id in (2, 3, 4):
                writer.write(encode_frame(Request(request_id, body(f"queued {request_id}"))))
            await writer.drain()
            waiting = asyncio.ensure_future(other.call(body("other's"), "application/json", "application/json"))
            await asyncio.sleep(0.1)
            writer.close()  # the client goes away with one request running and three queued
            await asyncio.sleep(0.1)
            gate.release.set()
            kept = await waiting
            after = await other.call(body("later"), "application/json", "application/json")
            await other.close()
            return [kept, after], gate.calls

    (kept, after), calls = run(scenario())
    assert kept.ok and after.ok
    assert json.loads(kept.body) == model.predict({"inputs": "other's"})
    assert not any(text.startswith("queued") for call in calls for text in call)  # dropped, never run
