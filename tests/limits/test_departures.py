"""Clients that hang up mid-request give their concurrency slot back at once (issue 16: three departed
clients made every later request 429 until the replica was killed)."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import RunningServer, wait_for_state

NAME = "limits-departures"


@pytest.fixture(scope="module")
def endpoint(api: httpx.Client, misbehaving: Path) -> Iterator[str]:
    spec = {"name": NAME, "model": {"source": str(misbehaving)}, "custom_code": True,
            "compute": {"type": "serverless", "max_concurrency": 2, "provisioned_concurrency": 1}}  # fmt: skip
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    wait_for_state(api, NAME, {"running"})
    yield NAME
    api.delete(f"/v1/endpoints/{NAME}")


def _give_up(server: RunningServer) -> str:
    """A client that waits half a second for a slow answer, then hangs up."""
    try:
        httpx.post(f"{server.url}/endpoints/{NAME}", json={"inputs": "slow", "do": "sleep", "seconds": 2},
                   headers=server.headers(), timeout=0.5)  # fmt: skip
    except httpx.TimeoutException:
        return "gave up"
    return "answered"


def test_clients_that_hang_up_free_their_slots_at_once(server: RunningServer, api: httpx.Client, endpoint: str) -> None:
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(lambda _: _give_up(server), range(3)))
    assert outcomes.count("gave up") >= 2  # two held a slot (the third may have been 429 at once)
    time.sleep(0.6)  # the departures sweeper looks every 0.25 s
    statuses = [api.post(f"/endpoints/{NAME}", json={"inputs": "after"}, timeout=30).status_code for _ in range(2)]
    assert statuses == [200, 200]
    assert api.get(f"/v1/endpoints/{NAME}").json()["state"] == "running"
