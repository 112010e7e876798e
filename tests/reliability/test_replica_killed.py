"""A replica SIGKILLed mid-batch fails only the requests in flight on it, each with a 5xx (SageMaker: its 424
ModelError from a 502) that says the replica exited, in its route's dialect; the other replica answers all of
its own; the replacement comes by itself, and the next requests succeed. The time from the kill to a
replacement replica serving is printed (for docs/architecture.md)."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import wait_for_state
from tests.limits.handlers import misbehaving_model

NAME = "killed-replica"
SLEEP_S = 2.0  # each request of the batch sleeps this long in the handler: the kill lands mid-batch


@pytest.fixture(scope="module")
def two_replicas(api: httpx.Client, tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> set[int]:
    """A custom-handler endpoint on two always-on replicas; their pids."""
    model = misbehaving_model(tiny_models["text-classification"], tmp_path_factory.mktemp("sleepy") / "model")
    spec = {"name": NAME, "model": {"source": str(model)}, "custom_code": True,
            "compute": {"type": "dedicated", "min_replicas": 2, "max_replicas": 2}}  # fmt: skip
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    wait_for_state(api, NAME, {"running"}, timeout=60)
    deadline = time.monotonic() + 30
    while api.get(f"/v1/endpoints/{NAME}").json()["replicas"]["ready"] < 2:
        assert time.monotonic() < deadline, "the second replica never became ready"
        time.sleep(0.1)
    pids: set[int] = set()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        while len(pids) < 2:  # least-outstanding routing spreads concurrent requests over both
            assert time.monotonic() < deadline + 30, pids
            answers = pool.map(lambda _: _invoke(api, {"inputs": "hi", "do": "sleep", "seconds": 0.3}), range(4))
            pids |= {answer.json()["pid"] for answer in answers}
    return pids


def _invoke(api: httpx.Client, body: dict[str, Any], route: str = "") -> httpx.Response:
    return api.post(f"/endpoints/{NAME}{route}", json=body, timeout=60)


def _failed_for_the_crash(route: str, response: httpx.Response) -> bool:
    """The answer a request in flight on the killed replica gets, in its route's dialect."""
    body = response.json()
    if route == "/invocations":  # SageMaker: the container's 502 as a ModelError
        return (
            response.status_code == 424
            and body["ErrorCode"] == "ModelError"
            and body["OriginalStatusCode"] == 502
            and "exited" in body["OriginalMessage"]
        )
    return (
        response.status_code == 502
        and body["error"]["type"] == "ReplicaCrashed"
        and "exited" in body["error"]["message"]
    )


def _replicas(api: httpx.Client) -> dict[str, int]:
    replicas: dict[str, int] = api.get(f"/v1/endpoints/{NAME}").json()["replicas"]
    return replicas


def test_a_killed_replica_fails_only_its_in_flight_requests_and_is_replaced(
    api: httpx.Client, two_replicas: set[int]
) -> None:
    victim, survivor = sorted(two_replicas)
    routes = ["", "/invocations"] * 4  # eight at once: about four queue on each replica
    with concurrent.futures.ThreadPoolExecutor(len(routes)) as pool:
        futures = [
            pool.submit(_invoke, api, {"inputs": str(i), "do": "sleep", "seconds": SLEEP_S}, route)
            for i, route in enumerate(routes)
        ]
        time.sleep(SLEEP_S / 2)  # every request has arrived; each replica is in its first
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        noticed = replaced = None
        while replaced is None and time.monotonic() - killed < 60:
            replicas = _replicas(api)
            if noticed is None and (replicas["ready"] < 2 or replicas["starting"] > 0):
                noticed = time.monotonic()
            elif noticed is not None and replicas["ready"] == 2 and replicas["starting"] == 0:
                replaced = time.monotonic()
            time.sleep(0.02)
        answers = [(route, future.result()) for route, future in zip(routes, futures, strict=True)]
    assert noticed is not None and replaced is not None, f"no replacement within 60 s: {_replicas(api)}"
    print(
        f"\nreplica killed: noticed after {(noticed - killed) * 1000:.0f} ms, "
        f"a replacement serving after {(replaced - killed) * 1000:.0f} ms"
    )
    answered = [response.json()["pid"] for _, response in answers if response.status_code == 200]
    failed = [(route, response) for route, response in answers if response.status_code != 200]
    print(f"in flight: {len(answered)} answered by the other replica, {len(failed)} failed with the killed one")
    assert answered and set(answered) == {survivor}, answers  # the other replica answered all of its own
    assert failed, "the killed replica had requests in flight"
    for route, response in failed:
        assert _failed_for_the_crash(route, response), (route, response.status_code, response.text)
    # The next requests succeed, on the survivor and the replacement; the endpoint says what happened.
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        after = list(pool.map(lambda i: _invoke(api, {"inputs": f"after {i}"}, routes[i % 2]), range(8)))
    assert all(response.status_code == 200 for response in after), [r.text for r in after]
    assert victim not in {response.json()["pid"] for response in after}
    assert api.get(f"/v1/endpoints/{NAME}").json()["state"] == "running"
    events = api.get(f"/v1/endpoints/{NAME}/logs", params={"source": "hubserve"}).json()["lines"]
    assert any("exited on its own" in str(line) and "replacing it" in str(line) for line in events), events
