"""An async inference's InvocationTimeoutSeconds counts from its acceptance: queued past it, it fails
without running and says so; running past it, it is stopped (its replica replaced) and fails saying
so; the endpoint keeps running."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import wait_for_state

NAME = "limits-async"
H_TIMEOUT = "X-Amzn-SageMaker-InvocationTimeoutSeconds"


@pytest.fixture(scope="module")
def endpoint(api: httpx.Client, misbehaving: Path) -> Iterator[str]:
    spec = {"name": NAME, "model": {"source": str(misbehaving)}, "custom_code": True,
            "compute": {"type": "serverless", "max_concurrency": 1, "provisioned_concurrency": 1},
            "async_inference": {"max_concurrent_invocations_per_replica": 1}}  # fmt: skip
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    wait_for_state(api, NAME, {"running"})
    yield NAME
    api.delete(f"/v1/endpoints/{NAME}")


def _submit(api: httpx.Client, body: dict[str, Any], timeout_s: int) -> str:
    response = api.post(f"/endpoints/{NAME}/async-invocations", json=body, headers={H_TIMEOUT: str(timeout_s)})
    assert response.status_code == 202, response.text
    return str(response.json()["inferenceId"])


def _settled(api: httpx.Client, inference_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described = api.get(f"/endpoints/{NAME}/async-invocations/{inference_id}").json()
        if described["status"] not in ("queued", "running"):
            return dict(described)
        assert time.monotonic() < deadline, described
        time.sleep(0.1)


def test_queued_past_its_timeout_it_fails_without_running(api: httpx.Client, endpoint: str) -> None:
    blocker = _submit(api, {"inputs": "first", "do": "sleep", "seconds": 4}, timeout_s=30)
    queued = _submit(api, {"inputs": "second"}, timeout_s=2)  # waits ~4 s behind the blocker
    late = _settled(api, queued)
    assert late["status"] == "failed", late
    message = late["error"]["message"]
    assert "expired while queued" in message and "InvocationTimeoutSeconds of 2 s" in message
    assert _settled(api, blocker)["status"] == "succeeded"


def test_running_past_its_timeout_it_is_stopped_and_the_replica_replaced(api: httpx.Client, endpoint: str) -> None:
    started = time.monotonic()
    stuck = _submit(api, {"inputs": "stuck", "do": "sleep", "seconds": 60}, timeout_s=2)
    failed = _settled(api, stuck)
    assert failed["status"] == "failed", failed
    assert time.monotonic() - started < 20
    message = failed["error"]["message"]
    assert failed["error"]["type"] == "InvocationTimeout"
    assert "did not answer within 2 s of its acceptance" in message and "killed and is being replaced" in message
    after = _submit(api, {"inputs": "after"}, timeout_s=60)
    assert _settled(api, after)["status"] == "succeeded"
    assert api.get(f"/v1/endpoints/{NAME}").json()["state"] == "running"
