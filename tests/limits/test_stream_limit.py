"""A stream's invocation_timeout_s bounds the wait for each part, not the whole stream: a slow but
steady stream runs past the limit; one that stalls longer than it ends with an error event, its
replica is replaced, and the endpoint keeps running."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import RunningServer, wait_for_state
from tests.integration.models import streaming_handler_model

NAME = "limits-stream"
SSE = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module")
def streamer(api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = streaming_handler_model(tmp_path_factory.mktemp("limits-streamer") / "model")
    spec = {"name": NAME, "model": {"source": str(folder), "task": "text-generation"}, "custom_code": True,
            "invocation_timeout_s": 2, "compute": {"type": "serverless", "provisioned_concurrency": 1}}  # fmt: skip
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    wait_for_state(api, NAME, {"running"})
    yield NAME
    api.delete(f"/v1/endpoints/{NAME}")


def _events(server: RunningServer, body: dict[str, object]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    with httpx.stream("POST", f"{server.url}/endpoints/{NAME}", json=body, headers={**SSE, **server.headers()},
                      timeout=60) as response:  # fmt: skip
        assert response.status_code == 200
        event = "message"
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                seen.append((event, line.split(":", 1)[1].strip()))
                event = "message"
    return seen


def test_a_steady_stream_may_run_longer_than_the_limit(server: RunningServer, streamer: str) -> None:
    events = _events(server, {"inputs": {"parts": 4, "delay_s": 0.9}})  # about 3.6 s in all, 0.9 s apart
    assert [kind for kind, _ in events] == ["message"] * len(events) and len(events) >= 4


def test_a_stalled_stream_ends_with_an_error_and_its_replica_is_replaced(
    server: RunningServer, api: httpx.Client, streamer: str
) -> None:
    events = _events(server, {"inputs": {"parts": 2, "delay_s": 30}})
    assert events[0][0] == "message"
    kind, data = events[-1]
    assert kind == "error"
    error = json.loads(data)
    assert "within 2 s" in json.dumps(error), error
    assert _events(server, {"inputs": {"parts": 1}})[0][0] == "message"  # the replacement answers
    assert api.get(f"/v1/endpoints/{NAME}").json()["state"] == "running"
    lines = api.get(f"/v1/endpoints/{NAME}/logs", params={"source": "hubserve"}).json()["lines"]
    assert any("waiting for its stream's next part" in str(line) for line in lines)
