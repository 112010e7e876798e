"""A request that pushes its replica past the endpoint's memory size fails alone (424 ModelError saying
so); the replica is killed and replaced; the endpoint keeps running; another endpoint keeps answering.
The issue's 50 MB inline async payload never fails its endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import wait_for_state

NAME = "limits-memory"
GOOD = "limits-memory-good"


@pytest.fixture(scope="module")
def endpoints(api: httpx.Client, misbehaving: Path, tiny_models: dict[str, Path]) -> Iterator[None]:
    bad = {"name": NAME, "model": {"source": str(misbehaving)}, "custom_code": True,
           "compute": {"type": "serverless", "memory_mb": 1024, "provisioned_concurrency": 1}}  # fmt: skip
    good = {"name": GOOD, "model": {"source": str(tiny_models["text-classification"])},
            "compute": {"type": "serverless", "memory_mb": 1024, "provisioned_concurrency": 1},
            "async_inference": {}}  # fmt: skip
    for spec in (bad, good):
        assert api.post("/v1/endpoints", json=spec).status_code == 201, spec
    for name in (NAME, GOOD):
        wait_for_state(api, name, {"running"})
    yield
    for name in (NAME, GOOD):
        api.delete(f"/v1/endpoints/{name}")


def _invoke(api: httpx.Client, name: str, body: dict[str, Any]) -> httpx.Response:
    return api.post(f"/endpoints/{name}", json=body, timeout=120)


def test_a_request_over_the_memory_size_fails_alone_and_the_replica_is_replaced(
    api: httpx.Client, endpoints: None
) -> None:
    before = _invoke(api, NAME, {"inputs": "hi"}).json()["pid"]
    hog = _invoke(api, NAME, {"inputs": "hog", "do": "hog", "mb": 4096})
    assert hog.status_code == 424, hog.text
    error = hog.json()["error"]
    assert error["type"] == "ModelError"
    assert "while serving this request" in error["message"] and "memory size of 1024 MB" in error["message"]
    assert _invoke(api, GOOD, {"inputs": "fine"}).status_code == 200  # the other endpoint never noticed
    again = _invoke(api, NAME, {"inputs": "again"})
    assert again.status_code == 200 and again.json()["pid"] != before  # a new replica answers
    assert api.get(f"/v1/endpoints/{NAME}").json()["state"] == "running"
    lines = api.get(f"/v1/endpoints/{NAME}/logs", params={"source": "hubserve"}).json()["lines"]
    assert any("killed: it used" in str(line) and "while serving a request" in str(line) for line in lines)


def test_one_huge_allocation_fails_in_the_replica_at_once_and_the_replica_lives(api: httpx.Client, endpoints: None) -> None:
    before = _invoke(api, NAME, {"inputs": "hi"}).json()["pid"]
    started = time.monotonic()
    grab = _invoke(api, NAME, {"inputs": "grab", "do": "grab", "mb": 12288})  # 12 GB at once, memory_mb 1024
    assert grab.status_code == 424, grab.text
    assert "MemoryError" in grab.text
    assert time.monotonic() - started < 2  # refused by the replica's RLIMIT_DATA, not written and then policed
    assert _invoke(api, NAME, {"inputs": "again"}).json()["pid"] == before  # the same replica serves on
    assert api.get(f"/v1/endpoints/{NAME}").json()["state"] == "running"


def test_a_50_mb_inline_async_payload_never_fails_the_endpoint(api: httpx.Client, endpoints: None) -> None:
    payload = b'{"inputs": "' + b"word " * (10 * 1024 * 1024) + b'"}'  # 50 MB
    submitted = api.post(f"/endpoints/{GOOD}/async-invocations", content=payload,
                         headers={"Content-Type": "application/json"})  # fmt: skip
    if submitted.status_code != 202:  # refused at the door with a 4xx: as good as failing alone
        assert 400 <= submitted.status_code < 500, submitted.text
    else:
        inference_id = submitted.json()["inferenceId"]
        deadline = time.monotonic() + 240
        while (described := api.get(f"/endpoints/{GOOD}/async-invocations/{inference_id}").json())["status"] in (
            "queued", "running",
        ):  # fmt: skip
            assert time.monotonic() < deadline, described
            time.sleep(0.5)
        assert described["status"] in ("succeeded", "failed"), described
    assert api.get(f"/v1/endpoints/{GOOD}").json()["state"] == "running"
    assert _invoke(api, GOOD, {"inputs": "fine"}).status_code == 200
