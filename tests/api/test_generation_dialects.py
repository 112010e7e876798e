"""The generation dialects against the contract: neutral parts in, TGI's and OpenAI's shapes out.

Renderers are checked with the clients' own parsers (huggingface_hub's stream parser and typed
outputs, the ``openai`` package's pydantic models), and the neutral stream reader runs through the
real gateway around a fake replica that answers in neutral parts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from fakes import FakeBackend, eventually, serverless, wired
from huggingface_hub import ChatCompletionOutput, ChatCompletionStreamOutput, TextGenerationOutput
from huggingface_hub.inference._common import _format_text_generation_stream_output
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from hubserve.api.generation import neutral, openai, tgi
from hubserve.errors import GenerationLimitExceeded, ModelError, ValidationError
from hubserve.types import CompletionSummary, GeneratedToken, Invocation, Part, PrefillToken

TOKENS = [GeneratedToken(5, "Hello", -0.5), GeneratedToken(6, " world", -1.25), GeneratedToken(7, "!", -0.1)]
SUMMARY = CompletionSummary("Hello world!", "length", 3, 4, seed=None)


def _part(token: GeneratedToken) -> Part:
    return Part(msgspec.json.encode(token))


def _final(summary: CompletionSummary = SUMMARY) -> Part:
    return Part(msgspec.json.encode(summary), final=True)


# --- requests ---------------------------------------------------------------------------------


def test_a_tgi_body_becomes_neutral() -> None:
    inputs, parameters = tgi.request({"inputs": "Hi", "parameters": {"max_new_tokens": 5, "stop_sequences": ["."],
                                                                   "seed": None, "details": True}})  # fmt: skip
    assert inputs == "Hi" and parameters == {"max_new_tokens": 5, "stop": ["."], "details": True}


def test_tgi_refuses_what_it_cannot_carry_as_huggingface_hub_understands() -> None:
    with pytest.raises(ValidationError, match="Send a JSON object"):
        tgi.request({"prompt": "Hi"})
    with pytest.raises(ValidationError, match="one prompt string"):
        tgi.request({"inputs": ["a", "b"]})
    with pytest.raises(ValidationError) as caught:
        tgi.request({"inputs": "Hi", "parameters": {"typical_p": 0.5, "best_of": 2}})
    from huggingface_hub.inference._client import MODEL_KWARGS_NOT_USED_REGEX

    match = MODEL_KWARGS_NOT_USED_REGEX.search(caught.value.message)
    assert match is not None and "typical_p" in match.group(1) and "best_of" in match.group(1)


def test_openai_chat_maps_its_parameters() -> None:
    asked = openai.chat_request({
        "model": "anything", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "max_completion_tokens": 7, "temperature": 0.7, "top_p": 0.9, "stop": "\n", "seed": 3,
        "stream": True, "stream_options": {"include_usage": True},
    })  # fmt: skip
    assert asked.inputs == [{"role": "user", "content": "Hi"}]
    assert asked.parameters == {"max_new_tokens": 7, "do_sample": True, "temperature": 0.7, "top_p": 0.9,
                                "stop": ["\n"], "seed": 3}  # fmt: skip
    assert asked.stream and asked.include_usage and asked.limit_param == "max_completion_tokens"


def test_openai_is_greedy_unless_a_temperature_above_zero_is_asked() -> None:
    for body in ({}, {"temperature": 0}, {"temperature": None}):
        asked = openai.completion_request({"prompt": "Hi", "max_tokens": 4, **body})
        assert "do_sample" not in asked.parameters and asked.parameters["max_new_tokens"] == 4
    assert openai.completion_request({"prompt": ["Hi"], "echo": True}).parameters == {"return_full_text": True}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 2}, "n"),
        ({"temperature": "hot"}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": [1]}, "stop"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"tools": [{"type": "function"}]}, "tools"),
        ({"messages": []}, "messages"),
    ],
)
def test_openai_refuses_what_it_cannot_honour_naming_the_field(body: dict, param: str) -> None:
    with pytest.raises(openai.BadParameter) as caught:
        openai.chat_request({"messages": [{"role": "user", "content": "Hi"}], **body})
    error = openai.error_json(caught.value)["error"]
    assert caught.value.status == 400 and error["param"] == param and error["type"] == "invalid_request_error"


def test_the_cap_is_a_422_that_names_the_field_the_request_used() -> None:
    error = openai.error_json(GenerationLimitExceeded("max_new_tokens 5000 is over the cap 2048"), "max_completion_tokens")
    assert error["error"]["param"] == "max_completion_tokens" and error["error"]["code"] == "GenerationLimitExceeded"
    assert tgi.error_json(GenerationLimitExceeded("over")) == {"error": "over", "error_type": "validation"}


# --- answers ----------------------------------------------------------------------------------


def test_tgi_events_parse_with_huggingface_hub() -> None:
    first = tgi.stream_event(1, TOKENS[0])
    assert first == (b'data:{"index":1,"token":{"id":5,"text":"Hello","logprob":-0.5,"special":false},'
                     b'"generated_text":null,"details":null}\n\n')  # fmt: skip
    last = tgi.stream_event(3, TOKENS[2], SUMMARY).decode().strip()
    parsed = _format_text_generation_stream_output(last, details=True)
    assert parsed.generated_text == "Hello world!" and parsed.details.finish_reason == "length"
    assert parsed.details.generated_tokens == 3 and parsed.token.text == "!"
    assert _format_text_generation_stream_output(first.decode().strip(), details=False) == "Hello"


def test_tgi_answers_with_details_parse_as_typed_outputs() -> None:
    summary = CompletionSummary("Hi there", "eos_token", 2, 1, seed=4, tokens=TOKENS[:2], prefill=[PrefillToken(9, "Hi")])
    output = TextGenerationOutput.parse_obj_as_instance(tgi.generate_answer(summary, with_details=True))
    assert output.details.tokens[1].text == " world" and output.details.prefill[0].logprob is None
    assert output.details.finish_reason == "eos_token" and output.details.seed == 4
    assert tgi.toolkit_answer(summary, "summarization", with_details=False) == [{"summary_text": "Hi there"}]
    assert tgi.toolkit_answer(summary, "text-generation", with_details=False) == [{"generated_text": "Hi there"}]


def test_openai_objects_validate_with_the_openai_and_hf_types() -> None:
    chat = openai.completion_object("chat", "tiny", SUMMARY)
    parsed = ChatCompletion.model_validate(chat)
    assert parsed.choices[0].message.content == "Hello world!" and parsed.choices[0].finish_reason == "length"
    assert parsed.usage is not None and parsed.usage.total_tokens == 7
    assert ChatCompletionOutput.parse_obj_as_instance(chat).choices[0].message.content == "Hello world!"
    eos = CompletionSummary("x", "eos_token", 1, 1)
    text = Completion.model_validate(openai.completion_object("completion", "tiny", eos))
    assert text.choices[0].text == "x" and text.choices[0].finish_reason == "stop"


def test_embeddings_are_pooled_and_encoded_as_openai_asks() -> None:
    per_token = [[[1.0, 2.0], [3.0, 4.0]]]  # feature-extraction, one input: [1][tokens][hidden] after the batch
    assert openai.pooled(json.dumps([per_token]).encode(), 1) == [[2.0, 3.0]]
    assert openai.pooled(json.dumps([[1.0, 2.0], [3.0, 4.0]]).encode(), 1) == [[2.0, 3.0]]
    assert openai.pooled(json.dumps({"embeddings": [[1.0], [2.0]]}).encode(), 2) == [[1.0], [2.0]]
    assert openai.pooled(json.dumps({"embeddings": [0.5, 0.25]}).encode(), 1) == [[0.5, 0.25]]
    with pytest.raises(ModelError):
        openai.pooled(b"[[1.0]]", 3)
    encoded = openai.embeddings_object("e", [[0.5, 0.25]], as_base64=True)["data"][0]["embedding"]
    assert struct.unpack("<2f", base64.b64decode(encoded)) == (0.5, 0.25)  # little-endian float32, as openai decodes
    answer = CreateEmbeddingResponse.model_validate(openai.embeddings_object("e", [[0.5, 0.25]], as_base64=False))
    assert answer.data[0].embedding == [0.5, 0.25] and answer.model == "e"
    assert openai.embedding_request({"input": "a"}) == (["a"], False)
    with pytest.raises(openai.BadParameter, match="token arrays"):
        openai.embedding_request({"input": [[1, 2]]})


# --- neutral streams through the gateway ------------------------------------------------------



def _replica(gap_before_summary_s: float = 0.0, tokens: int = 3, delay_s: float = 0.0):  # type: ignore[no-untyped-def]
    async def answer(invocation: Invocation) -> AsyncIterator[Part]:
        for token in (TOKENS * 1000)[:tokens]:
            yield _part(token)
            await asyncio.sleep(delay_s)
        if gap_before_summary_s:
            await asyncio.sleep(gap_before_summary_s)
        yield _final(CompletionSummary("".join(t.text for t in (TOKENS * 1000)[:tokens]), "length", tokens, 4))

    return answer


@pytest.mark.anyio
async def test_tgi_stream_carries_the_last_token_with_the_summary(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend(stream=_replica())) as w:
        await w.deploy(serverless("gen"))
        stream = await w.gateway.stream(Invocation("gen", b"{}", stream=True))
        lines = [chunk.decode().strip() async for chunk in tgi.event_stream(stream, neutral.LastToken(None, stops=True))]
    outputs = [_format_text_generation_stream_output(line, details=True) for line in lines]
    assert [o.token.text for o in outputs] == ["Hello", " world", "!"]
    assert [o.index for o in outputs] == [1, 2, 3]
    assert outputs[-1].generated_text == "Hello world!" and outputs[0].generated_text is None


@pytest.mark.anyio
async def test_a_summary_that_comes_later_is_its_own_event(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend(stream=_replica(gap_before_summary_s=0.05))) as w:
        await w.deploy(serverless("gen"))
        stream = await w.gateway.stream(Invocation("gen", b"{}", stream=True))
        steps = [step async for step in neutral.events(stream, neutral.LastToken(None, stops=True))]
    assert [s.token.text if s.token else None for s in steps] == ["Hello", " world", "!", None]
    assert steps[-1].summary is not None and steps[-1].summary.generated_tokens == 3


@pytest.mark.anyio
async def test_the_last_token_the_request_allows_waits_for_its_summary(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend(stream=_replica(gap_before_summary_s=0.05))) as w:
        await w.deploy(serverless("gen"))
        stream = await w.gateway.stream(Invocation("gen", b"{}", stream=True))
        steps = [step async for step in neutral.events(stream, neutral.LastToken(3, stops=False))]
    assert [s.token.text if s.token else None for s in steps] == ["Hello", " world", "!"]
    assert steps[-1].summary is not None and steps[0].summary is None


@pytest.mark.anyio
async def test_openai_chunks_end_with_usage_and_done(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend(stream=_replica())) as w:
        await w.deploy(serverless("gen"))
        stream = await w.gateway.stream(Invocation("gen", b"{}", stream=True))
        raw = b"".join([chunk async for chunk in openai.chunk_stream(stream, "chat", "gen", include_usage=True)])
    events = [line.removeprefix("data: ") for line in raw.decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(data) for data in events[:-1]]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello world!"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert len({c.id for c in chunks}) == 1
    assert ChatCompletionStreamOutput.parse_obj_as_instance(json.loads(events[0])).choices[0].delta.content == "Hello"


@pytest.mark.anyio
async def test_an_error_mid_stream_is_the_last_event_in_each_dialect(tmp_path: Path) -> None:
    async def failing(invocation: Invocation) -> AsyncIterator[Part]:
        yield _part(TOKENS[0])
        raise ModelError("the model broke")

    async with wired(tmp_path, FakeBackend(stream=failing)) as w:
        await w.deploy(serverless("gen"))
        stream = await w.gateway.stream(Invocation("gen", b"{}", stream=True))
        tgi_lines = [chunk async for chunk in tgi.event_stream(stream, neutral.LastToken(None, stops=True))]
        stream = await w.gateway.stream(Invocation("gen", b"{}", stream=True))
        openai_lines = [chunk async for chunk in openai.chunk_stream(stream, "completion", "gen", include_usage=False)]
    assert json.loads(tgi_lines[-1].removeprefix(b"data:")) == {"error": "the model broke", "error_type": "generation"}
    error = json.loads(openai_lines[-1].removeprefix(b"data: "))["error"]
    assert error["message"] == "the model broke" and error["type"] == "server_error"


@pytest.mark.anyio
async def test_a_reader_that_stops_early_cancels_the_sequence(tmp_path: Path) -> None:
    async with wired(tmp_path, FakeBackend(stream=_replica(tokens=10_000, delay_s=0.005))) as w:
        live = await w.deploy(serverless("gen"))
        stream = await w.gateway.stream(Invocation("gen", b"{}", stream=True))
        events = tgi.event_stream(stream, neutral.LastToken(None, stops=True))
        for _ in range(3):
            await events.__anext__()
        await events.aclose()  # what the response does when the client leaves
        await eventually(lambda: len(w.backend.cancelled) == 1, what="the cancel to reach the replica")
        assert w.gateway.traffic.of("gen", live).in_flight == 0


# --- SageMaker's framing, read by botocore and by the SDK --------------------------------------


def test_stream_failures_are_framed_as_botocore_and_the_sdk_read_them() -> None:
    from botocore.eventstream import EventStreamBuffer

    from hubserve.api.sagemaker import eventstream
    from hubserve.sdk.sagemaker import InternalStreamFailure, ModelStreamError, _EventStreamDecoder

    raw = eventstream.payload_part(b"data:{}\n\n") + eventstream.internal_stream_failure("the replica went away")
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    messages = list(buffer)
    assert messages[1].headers[":exception-type"] == "InternalStreamFailure"
    assert json.loads(messages[1].payload) == {"Message": "the replica went away"}
    decoder = _EventStreamDecoder()
    events = decoder.feed(raw[:7])  # bytes arrive in any pieces
    assert list(events) == []
    received = []
    with pytest.raises(InternalStreamFailure, match="went away"):
        for event in decoder.feed(raw[7:]):
            received.append(event["PayloadPart"]["Bytes"])
    assert received == [b"data:{}\n\n"]
    with pytest.raises(ModelStreamError) as model:
        list(_EventStreamDecoder().feed(eventstream.model_stream_error("ModelError", "boom")))
    assert model.value.code == "ModelError" and model.value.message == "boom"


@pytest.mark.anyio
async def test_a_response_left_between_tokens_closes_cleanly(tmp_path: Path) -> None:
    """With stop sequences, a read of the next part is in flight while a token is being sent: the
    response's closing (what runs when the client left) cancels it, then closes the stream, once."""
    from hubserve.api.generation import toolkit

    async with wired(tmp_path, FakeBackend(stream=_replica(tokens=10_000, delay_s=0.01))) as w:
        live = await w.deploy(serverless("gen"))
        stream = await w.gateway.stream(Invocation("gen", b"{}", stream=True))
        events = tgi.event_stream(stream, neutral.LastToken(None, stops=True))
        for _ in range(2):
            await events.__anext__()  # left suspended at a token, the next read in flight
        await toolkit.closing(stream, events)()
        await eventually(lambda: len(w.backend.cancelled) == 1, what="the cancel to reach the replica")
        assert w.gateway.traffic.of("gen", live).in_flight == 0
