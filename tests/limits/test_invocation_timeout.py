"""A request past its endpoint's invocation_timeout_s gets 504 in the HF dialect; its replica is killed
and replaced, the endpoint stays running and says why; a handler that exits mid-request fails only
its request; another endpoint keeps answering throughout."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import wait_for_state

NAME = "limits-bad"
GOOD = "limits-good"


def _events(api: httpx.Client, name: str) -> list[str]:
    lines = api.get(f"/v1/endpoints/{name}/logs", params={"source": "hubserve"}).json()["lines"]
    return [str(line) for line in lines]


def _invoke(api: httpx.Client, name: str, body: dict[str, Any], timeout: float = 60) -> httpx.Response:
    return api.post(f"/endpoints/{name}", json=body, timeout=timeout)


def _answers_again(api: httpx.Client, name: str, timeout: float = 90) -> dict[str, Any]:
    """The next request is answered (by the replacement replica, held through its cold start)."""
    response = _invoke(api, name, {"inputs": "again"}, timeout=timeout)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def endpoints(api: httpx.Client, misbehaving: Path, tiny_models: dict[str, Path]) -> Iterator[None]:
    bad = {"name": NAME, "model": {"source": str(misbehaving)}, "custom_code": True, "invocation_timeout_s": 2,
           "compute": {"type": "serverless", "max_concurrency": 4, "provisioned_concurrency": 1}}  # fmt: skip
    good = {"name": GOOD, "model": {"source": str(tiny_models["text-classification"])},
            "compute": {"type": "serverless", "provisioned_concurrency": 1}}  # fmt: skip
    for spec in (bad, good):
        assert api.post("/v1/endpoints", json=spec).status_code == 201, spec
    for name in (NAME, GOOD):
        wait_for_state(api, name, {"running"})
    yield
    for name in (NAME, GOOD):
        api.delete(f"/v1/endpoints/{name}")


def test_invocation_timeout_is_a_spec_field_shown_by_describe_and_bounded(api: httpx.Client, endpoints: None) -> None:
    assert api.get(f"/v1/endpoints/{NAME}").json()["invocation_timeout_s"] == 2
    assert api.get(f"/v1/endpoints/{GOOD}").json()["invocation_timeout_s"] == 60  # SageMaker's sync limit
    refused = api.patch(f"/v1/endpoints/{NAME}", json={"invocation_timeout_s": 0})
    assert refused.status_code == 422
    assert "between 1 and 3600" in refused.text


@pytest.mark.parametrize("do", ["sleep", "spin"])
def test_a_request_past_the_limit_gets_504_and_its_replica_is_replaced(api: httpx.Client, endpoints: None, do: str) -> None:
    before = _answers_again(api, NAME)["pid"]
    started = time.monotonic()
    response = _invoke(api, NAME, {"inputs": "x", "do": do, "seconds": 30})
    took = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert 1.5 < took < 10, took
    error = response.json()["error"]["message"]
    assert "did not answer within 2 s" in error and "invocation_timeout_s" in error
    after = _answers_again(api, NAME)["pid"]
    assert after != before  # a new replica answers: the stuck one was killed
    described = api.get(f"/v1/endpoints/{NAME}").json()
    assert described["state"] == "running"
    assert any("killed: a request exceeded invocation_timeout_s 2 s" in line for line in _events(api, NAME))


def test_other_requests_on_the_killed_replica_fail_clearly_and_other_endpoints_answer(
    api: httpx.Client, endpoints: None
) -> None:
    _answers_again(api, NAME)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        stuck = pool.submit(_invoke, api, NAME, {"inputs": "x", "do": "sleep", "seconds": 30})
        time.sleep(0.3)
        neighbour = pool.submit(_invoke, api, NAME, {"inputs": "y", "do": "sleep", "seconds": 1.5})
        good = [pool.submit(_invoke, api, GOOD, {"inputs": "fine"}) for _ in range(3)]
        assert stuck.result().status_code == 504
        # The neighbour was either answered before the kill or failed with a 5xx that says why.
        answered = neighbour.result()
        assert answered.status_code in (200, 502, 504), answered.text
        assert all(future.result().status_code == 200 for future in good)
    _answers_again(api, NAME)
    assert api.get(f"/v1/endpoints/{GOOD}").json()["state"] == "running"


def test_a_handler_that_exits_mid_request_fails_alone_and_is_replaced(api: httpx.Client, endpoints: None) -> None:
    before = _answers_again(api, NAME)["pid"]
    response = _invoke(api, NAME, {"inputs": "x", "do": "exit"})
    assert response.status_code == 502, response.text
    assert "exited" in response.json()["error"]["message"]
    after = _answers_again(api, NAME)["pid"]
    assert after != before
    assert api.get(f"/v1/endpoints/{NAME}").json()["state"] == "running"
    assert any("exited on its own with code 3" in line for line in _events(api, NAME))


def test_the_limit_is_changed_by_patch_without_a_roll_out(api: httpx.Client, endpoints: None) -> None:
    before = _answers_again(api, NAME)["pid"]
    assert api.patch(f"/v1/endpoints/{NAME}", json={"invocation_timeout_s": 5}).status_code == 200
    wait_for_state(api, NAME, {"running"})
    assert api.get(f"/v1/endpoints/{NAME}").json()["invocation_timeout_s"] == 5
    response = _invoke(api, NAME, {"inputs": "x", "do": "sleep", "seconds": 3})
    assert response.status_code == 200, response.text
    assert response.json()["pid"] == before  # the same replica: no roll-out for a time limit
    assert api.patch(f"/v1/endpoints/{NAME}", json={"invocation_timeout_s": 2}).status_code == 200


def test_sagemaker_invocations_answer_a_timeout_as_sagemaker_does(api: httpx.Client, endpoints: None) -> None:
    _answers_again(api, NAME)
    response = api.post(f"/endpoints/{NAME}/invocations", json={"inputs": "x", "do": "sleep", "seconds": 30})
    assert response.status_code == 424, response.text  # SageMaker: ModelError, from a 504 of the container
    body = response.json()
    assert body["ErrorCode"] == "ModelError" and body["OriginalStatusCode"] == 504
    assert "did not answer within 2 s" in body["Message"]
    _answers_again(api, NAME)
