"""The SDK's server-sent event parsing: multi-line data, comments, ids, error events raised as typed errors.

``Client.stream`` and ``AsyncClient.stream`` against the real server are tested in
tests/integration/test_generation_metrics_stream.py; here the parser alone, and the stream
calls over httpx's MockTransport for the framing cases a real server rarely produces.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from hubserve.errors import GenerationLimitExceeded, ModelError, ValidationError
from hubserve.sdk import AsyncClient, Client, ClientError, StreamEvent
from hubserve.sdk.http import EventParser


def parse(text: str) -> list[StreamEvent]:
    parser = EventParser()
    events = [parser.feed(line) for line in text.splitlines()]
    parser.finish()
    return [event for event in events if event is not None]


def test_data_lines_of_one_event_are_joined_by_newlines() -> None:
    events = parse('data: {"a":\ndata: 1}\n\ndata: plain\ndata:second\n\n')
    assert [e.data for e in events] == [{"a": 1}, "plain\nsecond"]
    assert events[0].event == "message"


def test_comments_and_retry_are_skipped_and_ids_kept() -> None:
    events = parse(': ping - 2026-01-01\n\nretry: 100\nid: 7\nevent: token\ndata: {"token": {"text": "hi"}}\n\n')
    assert len(events) == 1 and events[0].id == "7" and events[0].event == "token" and events[0].text == "hi"


def test_an_event_without_its_blank_line_is_dropped() -> None:
    assert parse("data: complete\n\ndata: cut") == [StreamEvent("complete")]


def test_the_text_of_tgi_events_and_others() -> None:
    assert StreamEvent({"token": {"id": 1, "text": " world"}, "generated_text": None}).text == " world"
    assert StreamEvent({"generated_text": "x"}).text == ""
    assert StreamEvent("[DONE]").text == "[DONE]"


def test_an_error_event_raises_the_servers_error_type() -> None:
    body = json.dumps({"error": {"type": "GenerationLimitExceeded", "message": "max_new_tokens 9000 is over 2048"}})
    with pytest.raises(GenerationLimitExceeded, match="over 2048"):
        parse(f'data: {{"token": {{"text": "a"}}}}\n\nevent: error\ndata: {body}\n\n')
    with pytest.raises(ModelError, match="CUDA out of memory") as caught:  # TGI's own error body
        parse('data: {"error": "CUDA out of memory", "error_type": "generation"}\n\n')
    assert caught.value.type == "generation"
    with pytest.raises(ValidationError, match="too long"):
        parse('data: {"error": "inputs too long", "error_type": "validation"}\n\n')


def _server(request: httpx.Request) -> httpx.Response:
    sent = json.loads(request.content)
    if request.url.path.endswith("/refused"):
        return httpx.Response(400, json={"error": {"type": "ValidationError", "message": "Endpoint cannot stream"}})
    if request.url.path.endswith("/whole"):
        return httpx.Response(200, json=[{"generated_text": "all at once"}])
    assert request.headers["accept"] == "text/event-stream" and sent["stream"] is True
    assert sent["inputs"] == "Hi" and sent["parameters"] == {"max_new_tokens": 2}
    body = b'data: {"token": {"text": "a"}}\r\n\r\n: ping\r\n\r\ndata: {"token": {"text": "b"}, "generated_text": "ab"}\r\n\r\n'
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream; charset=utf-8"})


def test_client_stream_sends_the_stream_flag_and_yields_events() -> None:
    with Client("http://hubserve.test", transport=httpx.MockTransport(_server)) as client:
        events = list(client.stream("gpt", "Hi", parameters={"max_new_tokens": 2}))
        assert [e.text for e in events] == ["a", "b"] and events[-1].data["generated_text"] == "ab"
        with pytest.raises(ValidationError, match="cannot stream"):
            list(client.stream("refused", "Hi"))
        with pytest.raises(ClientError, match="not a stream"):
            list(client.stream("whole", "Hi"))


def test_async_client_stream_yields_the_same_events() -> None:
    async def run() -> list[str]:
        async with AsyncClient("http://hubserve.test", transport=httpx.MockTransport(_server)) as client:
            return [e.text async for e in client.stream("gpt", {"inputs": "Hi", "parameters": {"max_new_tokens": 2}})]

    assert asyncio.run(run()) == ["a", "b"]
