"""A text-generation replica's engine through a real ReplicaServer, socket and SocketChannel.

Streams with the neutral accept (a Part per token, then the summary), the neutral answer without a
stream, the toolkit's answer without the accept, early close of a stream (its sequence leaves the
batch, the other stream goes on), bad requests answered at once, and the Stats frames.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hubserve.backends.channel import SocketChannel
from hubserve.errors import GenerationLimitExceeded, ValidationError
from hubserve.models.batching import Limits
from hubserve.models.loading import LoadedModel, load_model
from hubserve.models.textgen.engine import wait_idle
from hubserve.models.textgen.params import GenerationLimits
from hubserve.types import GENERATION_MEDIA_TYPE, CompletionSummary, GeneratedToken, Invocation
from hubserve.worker.server import ReplicaServer


@pytest.fixture(scope="module")
def model(tiny_models: dict[str, Path]) -> LoadedModel:
    return load_model(tiny_models["text-generation"], "text-generation")


@asynccontextmanager
async def serving(model: LoadedModel) -> AsyncIterator[tuple[ReplicaServer, SocketChannel]]:
    replica = ReplicaServer(model, Limits(8, 512), generation=GenerationLimits(16, 64))
    with tempfile.TemporaryDirectory(prefix="hs-", dir="/tmp") as folder:  # Unix socket paths must stay short
        path = str(Path(folder) / "r.sock")
        server = await asyncio.start_unix_server(replica.serve_connection, path=path)
        channel = await SocketChannel.connect(path, "r1")
        try:
            yield replica, channel
        finally:
            await channel.close()
            server.close()
            assert replica.engine is not None
            replica.engine.close()


def neutral(inputs: Any, stream: bool = False, **parameters: Any) -> Invocation:
    body = json.dumps({"inputs": inputs, "parameters": parameters}).encode()
    return Invocation(endpoint="e", body=body, accept=GENERATION_MEDIA_TYPE, stream=stream)


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def test_a_stream_sends_each_token_then_the_summary(model: LoadedModel) -> None:
    async def scenario() -> tuple[list[Any], Any]:
        async with serving(model) as (_, channel):
            parts = [part async for part in channel.stream(neutral("Once upon a time", True, max_new_tokens=6, details=True))]
            whole = await channel.call(neutral("Once upon a time", max_new_tokens=6))
            return parts, whole

    parts, whole = run(scenario())
    *tokens, final = parts
    assert len(tokens) == 6 and all(part.content_type == GENERATION_MEDIA_TYPE and not part.final for part in tokens)
    generated = [msgspec.json.decode(part.body, type=GeneratedToken) for part in tokens]
    summary = msgspec.json.decode(final.body, type=CompletionSummary)
    assert final.final and final.content_type == GENERATION_MEDIA_TYPE
    assert summary.finish_reason == "length" and summary.generated_tokens == 6
    assert summary.generated_text == "".join(token.text for token in generated)
    assert summary.tokens == generated
    unstreamed = msgspec.json.decode(whole.body, type=CompletionSummary)
    assert whole.content_type == GENERATION_MEDIA_TYPE and unstreamed.tokens is None  # no details asked
    assert unstreamed.generated_text == summary.generated_text  # greedy: the same text


def test_without_the_accept_the_toolkit_answer(model: LoadedModel) -> None:
    async def scenario() -> list[Any]:
        async with serving(model) as (_, channel):
            answers = []
            for body in (
                {"inputs": "Hello", "parameters": {"max_new_tokens": 3}},
                {"inputs": ["Hello", "Bye now"], "parameters": {"max_new_tokens": 3}},
                {"inputs": "Hello", "parameters": {"max_new_tokens": 3, "return_full_text": True}},
                {"inputs": "Hello", "parameters": {"max_new_tokens": 3, "num_return_sequences": 2, "do_sample": True}},
            ):
                reply = await channel.call(Invocation(endpoint="e", body=json.dumps(body).encode()))
                answers.append(json.loads(reply.body))
            return answers

    single, listed, full, pipeline = run(scenario())
    assert len(single) == 1 and isinstance(single[0]["generated_text"], str)
    assert len(listed) == 2 and listed[0] == single  # a list of prompts: one list per prompt
    assert full[0]["generated_text"].lower().startswith("hello") and full[0]["generated_text"].endswith(single[0]["generated_text"])
    assert len(pipeline) == 2  # parameters the engine lacks still run on the pipeline


def test_closing_a_stream_frees_its_sequence_and_the_other_goes_on(model: LoadedModel) -> None:
    async def scenario() -> tuple[int, list[Any], int]:
        async with serving(model) as (replica, channel):
            long_stream = channel.stream(neutral("Once upon a time", True, max_new_tokens=60))
            other = asyncio.ensure_future(_collect(channel, neutral("The quick brown fox", True, max_new_tokens=40)))
            seen = 0
            async with aclosing(long_stream):
                async for _ in long_stream:
                    seen += 1
                    if seen == 3:
                        break  # the client left: a Cancel frame goes to the replica
            parts = await other
            assert replica.engine is not None
            await asyncio.to_thread(wait_idle, replica.engine)
            return seen, parts, replica.engine.stats().running

    seen, parts, running = run(scenario())
    assert seen == 3 and running == 0
    assert len(parts) == 41 and msgspec.json.decode(parts[-1].body, type=CompletionSummary).generated_tokens == 40


async def _collect(channel: SocketChannel, invocation: Invocation) -> list[Any]:
    return [part async for part in channel.stream(invocation)]


def test_bad_requests_are_answered_at_once(model: LoadedModel) -> None:
    async def scenario() -> list[Exception]:
        async with serving(model) as (_, channel):
            errors = []
            for invocation in (
                neutral("Hello", max_new_tokens=65),
                neutral("Hello", temperature=-1.0),
                neutral("Hello", bogus=1),
                neutral([{"role": "user", "content": "hi"}]),
                neutral(["a", "b"]),
            ):
                try:
                    await channel.call(invocation)
                except Exception as exc:
                    errors.append(exc)
            return errors

    over, temperature, bogus, chat, listed = run(scenario())
    assert isinstance(over, GenerationLimitExceeded) and "limit of 64" in str(over)
    assert isinstance(temperature, ValidationError) and "temperature" in str(temperature)
    assert isinstance(bogus, ValidationError) and "'bogus'" in str(bogus)
    assert isinstance(chat, ValidationError) and "no chat template" in str(chat)
    assert isinstance(listed, ValidationError) and "one prompt" in str(listed)


def test_the_replica_reports_its_engine_in_stats_frames(model: LoadedModel) -> None:
    async def scenario() -> tuple[Any, Any]:
        async with serving(model) as (_, channel):
            assert channel.stats is None
            await channel.call(neutral("Hello", max_new_tokens=5))
            await asyncio.sleep(0.3)  # the last change goes out within 100 ms
            return channel.stats, channel.outstanding

    stats, outstanding = run(scenario())
    assert stats is not None and stats.running == 0 and stats.waiting == 0 and stats.generated_tokens >= 5
    assert outstanding == 0


def test_an_encoder_decoder_model_streams_its_tokens(tiny_models: dict[str, Path]) -> None:
    summarizer = load_model(tiny_models["text2text-generation"], "summarization")
    text = "A long text about many things."

    async def scenario() -> tuple[list[Any], Any, Any, Any]:
        replica = ReplicaServer(summarizer, Limits(8, 512), generation=GenerationLimits(16, 64))
        assert replica.engine is None  # one sequence at a time, in the inference thread
        with tempfile.TemporaryDirectory(prefix="hs-", dir="/tmp") as folder:
            path = str(Path(folder) / "r.sock")
            server = await asyncio.start_unix_server(replica.serve_connection, path=path)
            channel = await SocketChannel.connect(path, "r1")
            try:
                parts = [part async for part in channel.stream(neutral(text, True, max_new_tokens=6))]
                whole = await channel.call(neutral(text, max_new_tokens=6, details=True))
                toolkit = await channel.call(Invocation(endpoint="e", body=json.dumps({"inputs": text, "parameters": {"max_new_tokens": 6}}).encode()))
                try:
                    await channel.call(neutral(text, max_new_tokens=65))
                    over: Any = None
                except Exception as exc:
                    over = exc
            finally:
                await channel.close()
                server.close()
        return parts, whole, toolkit, over

    parts, whole, toolkit, over = run(scenario())
    *tokens, final = parts
    summary = msgspec.json.decode(final.body, type=CompletionSummary)
    assert len(tokens) == summary.generated_tokens >= 1
    assert summary.generated_text == "".join(msgspec.json.decode(p.body, type=GeneratedToken).text for p in tokens)
    detailed = msgspec.json.decode(whole.body, type=CompletionSummary)
    assert detailed.generated_text == summary.generated_text and detailed.tokens is not None
    assert json.loads(toolkit.body)[0]["summary_text"] == summary.generated_text  # the same greedy text
    assert isinstance(over, GenerationLimitExceeded)
