"""Adaptive batching through the real server: concurrent requests share batches and get their own answers.

One dedicated replica of the tiny text-classification model. A long request keeps it busy
while 24 concurrent ones arrive; they queue and run in batches (the replica's log says so in
``hubserve-replica-batch`` lines), and each answer equals the one the request gets alone.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from hubserve.logs.format import message_of
from tests.integration.conftest import RunningServer, wait_for_state

NAME = "batching"
BATCH_PREFIX = "hubserve-replica-batch "
# About half a second on the tiny model (48 sequences: over the batch limit, so it runs alone);
# the concurrent requests arrive while it runs.
BLOCKER = {"inputs": [f"word{i} is here and there " * 60 for i in range(48)], "parameters": {"truncation": True}}


@pytest.fixture(scope="module")
def endpoint(api: httpx.Client, tiny_models: dict[str, Path]) -> str:
    spec = {
        "name": NAME,
        "model": {"source": str(tiny_models["text-classification"]), "task": "text-classification"},
        "compute": {"type": "dedicated", "instance": "cpu-small", "min_replicas": 1, "max_replicas": 1},
    }
    response = api.post("/v1/endpoints", json=spec)
    assert response.status_code == 201, response.text
    assert wait_for_state(api, NAME, {"running", "failed"})["state"] == "running"
    return NAME


def batch_lines(server: RunningServer) -> list[dict[str, Any]]:
    lines = []
    for log in (server.home / "logs" / NAME).glob("*.log"):
        for line in map(message_of, log.read_text(errors="replace").splitlines()):
            if line.startswith(BATCH_PREFIX):
                lines.append(json.loads(line[len(BATCH_PREFIX):]))
    return lines


async def concurrently(server: RunningServer, bodies: list[Any]) -> list[httpx.Response]:
    """Start the blocker, then send ``bodies`` all at once while it runs."""
    limits = httpx.Limits(max_connections=len(bodies) + 1)
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers(), timeout=120, limits=limits) as client:
        blocker = asyncio.ensure_future(client.post(f"/endpoints/{NAME}", json=BLOCKER))
        await asyncio.sleep(0.1)
        responses = await asyncio.gather(*(client.post(f"/endpoints/{NAME}", json=body) for body in bodies))
        assert (await blocker).status_code == 200
        return list(responses)


def assert_same(batched: Any, alone: Any) -> None:
    """Equal labels and shapes; scores within 1e-5 (padding moves floats in their last bits)."""
    if isinstance(alone, float):
        assert batched == pytest.approx(alone, abs=1e-5)
    elif isinstance(alone, dict):
        assert batched.keys() == alone.keys()
        for key in alone:
            assert_same(batched[key], alone[key])
    elif isinstance(alone, list):
        assert isinstance(batched, list) and len(batched) == len(alone)
        for b, a in zip(batched, alone, strict=True):
            assert_same(b, a)
    else:
        assert batched == alone


def test_concurrent_requests_are_batched_and_answered_as_alone(
    server: RunningServer, api: httpx.Client, endpoint: str
) -> None:
    bodies: list[Any] = []
    for i in range(24):
        if i % 6 == 5:
            bodies.append({"inputs": [f"list {i}", f"of two {i}"]})
        elif i % 6 == 4:
            bodies.append({"inputs": f"top k {i}", "parameters": {"top_k": 2}})
        else:
            bodies.append({"inputs": f"request number {i} " + "nice " * i})
    responses = asyncio.run(concurrently(server, bodies))
    assert [r.status_code for r in responses] == [200] * len(bodies), [r.text for r in responses if r.status_code != 200]

    batches = batch_lines(server)
    assert batches, "no batch of more than one request was logged"
    assert max(line["requests"] for line in batches) >= 2
    for body, response in zip(bodies, responses, strict=True):
        alone = api.post(f"/endpoints/{NAME}", json=body)
        assert alone.status_code == 200
        assert_same(response.json(), alone.json())


def test_a_bad_request_in_a_batch_fails_alone(server: RunningServer, endpoint: str) -> None:
    bodies: list[Any] = [{"inputs": f"fine {i}"} for i in range(10)]
    bodies[3] = {"inputs": 42}  # invalid: answered on arrival, never queued
    bodies[6] = {"inputs": "word " * 600}  # 600 tokens without truncation: the model raises in the batch
    responses = asyncio.run(concurrently(server, bodies))
    statuses = [r.status_code for r in responses]
    assert statuses[3] == 400 and responses[3].json()["error"]["type"] == "ValidationError"
    assert statuses[6] == 424 and responses[6].json()["error"]["type"] == "ModelError"
    assert [s for i, s in enumerate(statuses) if i not in (3, 6)] == [200] * 8


def test_a_client_that_disconnects_does_not_stop_later_requests(
    server: RunningServer, api: httpx.Client, endpoint: str
) -> None:
    url = urlparse(server.url)
    payload = json.dumps(BLOCKER).encode()
    for _ in range(3):  # hang up mid-request, several times, with the replica busy
        with socket.create_connection((url.hostname, url.port)) as raw:
            raw.sendall(
                f"POST /endpoints/{NAME} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {server.token}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            time.sleep(0.05)
    before = api.get(f"/v1/endpoints/{NAME}").json()
    answers = [api.post(f"/endpoints/{NAME}", json={"inputs": f"after {i}"}) for i in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    after = api.get(f"/v1/endpoints/{NAME}").json()
    assert after["state"] == "running" and after["replicas"] == before["replicas"]
