"""Streams end to end through the real server: ``Accept: text/event-stream`` on the HF route.

A no-op streaming handler (tests/integration/models.py) yields parts; each arrives as one
server-sent event, in order, before the stream ends. A client that disconnects cancels the work
in the replica: the handler stops producing parts, and the replica serves the next request.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import RunningServer, wait_for_state
from tests.integration.models import streaming_handler_model

SSE = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module")
def streamer(api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = streaming_handler_model(tmp_path_factory.mktemp("streamer") / "model")
    spec = {"name": "streamer", "model": {"source": str(folder), "task": "text-generation"}, "custom_code": True}
    response = api.post("/v1/endpoints", json=spec)
    assert response.status_code == 201, response.text
    wait_for_state(api, "streamer", {"running"})
    return "streamer"


def _events(response: httpx.Response) -> list[dict]:
    return [json.loads(line[len("data:"):]) for line in response.iter_lines() if line.startswith("data:")]


def test_parts_arrive_as_server_sent_events(server: RunningServer, streamer: str) -> None:
    body = {"inputs": {"parts": 5}}
    with httpx.stream("POST", f"{server.url}/endpoints/{streamer}", json=body, headers={**server.headers(), **SSE}, timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response)
    assert [event["token"]["id"] for event in events] == [0, 1, 2, 3, 4]


def test_a_stream_is_an_invocation_in_the_metrics(api: httpx.Client, server: RunningServer, streamer: str) -> None:
    before = api.get(f"/v1/endpoints/{streamer}/metrics", params={"window": "5m"}).json()["invocations"]
    with httpx.stream("POST", f"{server.url}/endpoints/{streamer}", json={"inputs": {"parts": 2}}, headers={**server.headers(), **SSE},
                      timeout=60) as response:  # fmt: skip
        assert len(_events(response)) == 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = api.get(f"/v1/endpoints/{streamer}/metrics", params={"window": "5m"}).json()["invocations"]
        if after == before + 1:
            break
        time.sleep(0.1)
    assert after == before + 1


def test_errors_before_the_first_part_keep_their_status(server: RunningServer, streamer: str) -> None:
    missing = httpx.post(f"{server.url}/endpoints/streamer-that-is-not-there", json={"inputs": {}}, headers={**server.headers(), **SSE})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "EndpointNotFound"
    malformed = httpx.post(f"{server.url}/endpoints/{streamer}", content=b"{nope", headers={**server.headers(), **SSE, "Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["type"] == "ValidationError"


def test_an_error_mid_stream_is_the_last_event(server: RunningServer, streamer: str) -> None:
    body = {"inputs": {"parts": 5, "fail_after": 2}}
    with httpx.stream("POST", f"{server.url}/endpoints/{streamer}", json=body, headers={**server.headers(), **SSE}, timeout=60) as response:
        assert response.status_code == 200  # the first part was already sent when the handler failed
        lines = list(response.iter_lines())
    data = [json.loads(line[len("data:"):]) for line in lines if line.startswith("data:")]
    assert [event["token"]["id"] for event in data[:-1]] == [0, 1]
    assert "event: error" in lines
    assert data[-1]["error"]["type"] == "ModelError" and "failed after 2 parts" in data[-1]["error"]["message"]


def test_a_client_that_leaves_cancels_the_stream_in_the_replica(server: RunningServer, streamer: str, tmp_path: Path) -> None:
    progress = tmp_path / "progress"
    body = {"inputs": {"parts": 400, "delay_s": 0.02, "progress": str(progress)}}
    with httpx.stream("POST", f"{server.url}/endpoints/{streamer}", json=body, headers={**server.headers(), **SSE}, timeout=60) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        received = 0
        for line in lines:
            if line.startswith("data:"):
                received += 1
            if received == 3:
                break  # leave: the with block closes the connection
    time.sleep(1.0)  # the cancel travels: gateway -> channel -> replica, which stops between two parts
    stopped_at = int(progress.read_text())
    time.sleep(0.5)
    assert int(progress.read_text()) == stopped_at, "the handler kept producing parts after the client left"
    assert stopped_at < 400
    # The replica's inference thread is free again: the next stream is served in full.
    with httpx.stream("POST", f"{server.url}/endpoints/{streamer}", json={"inputs": {"parts": 3}}, headers={**server.headers(), **SSE},
                      timeout=60) as response:  # fmt: skip
        assert [event["token"]["id"] for event in _events(response)] == [0, 1, 2]
