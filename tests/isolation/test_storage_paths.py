"""Async and batch locations: confined to the storage roots, and no endpoint touches another's results."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import RunningServer, wait_for_state
from tests.isolation.conftest import probe_model

H_ID = "X-Amzn-SageMaker-Inference-Id"
H_INPUT = "X-Amzn-SageMaker-InputLocation"
H_OUTPUT = "X-Hubserve-Output-Location"


@pytest.fixture(scope="module")
def two(isolated_api: httpx.Client, open_dir: Path) -> tuple[str, str]:
    for name in ("victim", "attacker"):
        spec = {
            "name": name, "model": {"source": str(probe_model(open_dir / name)), "task": "text-classification"},
            "custom_code": True, "async_inference": {},
        }  # fmt: skip
        isolated_api.post("/v1/endpoints", json=spec).raise_for_status()
    for name in ("victim", "attacker"):
        wait_for_state(isolated_api, name, {"running"})
    return "victim", "attacker"


def _done(api: httpx.Client, endpoint: str, inference_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = api.get(f"/endpoints/{endpoint}/async-invocations/{inference_id}").json()
        if status["status"] in ("succeeded", "failed", "expired"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"{inference_id} never finished")


@pytest.fixture(scope="module")
def victim_result(isolated_api: httpx.Client, two: tuple[str, str]) -> Path:
    accepted = isolated_api.post(
        "/endpoints/victim/async-invocations", json={"inputs": "private"}, headers={H_ID: "v1"}
    )
    assert accepted.status_code == 202, accepted.text
    done = _done(isolated_api, "victim", "v1")
    assert done["status"] == "succeeded", done
    return Path(done["outputLocation"])


def _refused(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 400, response.text
    for word in words:
        assert word in response.text, response.text


def test_cannot_overwrite_another_endpoints_result(
    isolated_api: httpx.Client, isolated_server: RunningServer, victim_result: Path
) -> None:
    before = victim_result.read_bytes()
    response = isolated_api.post(
        "/endpoints/attacker/async-invocations", json={"inputs": "overwrite"},
        headers={H_ID: "v1", H_OUTPUT: str(victim_result.parent)},
    )  # fmt: skip
    _refused(response, "not this endpoint")
    assert victim_result.read_bytes() == before


def test_cannot_read_another_endpoints_result_as_input(isolated_api: httpx.Client, victim_result: Path) -> None:
    response = isolated_api.post("/endpoints/attacker/async-invocations", headers={H_INPUT: str(victim_result)})
    _refused(response, "belongs to another endpoint")


def test_an_existing_result_is_never_overwritten(isolated_api: httpx.Client, victim_result: Path) -> None:
    isolated_api.delete("/endpoints/victim/async-invocations/v1")  # whatever the row's fate, the file stays
    response = isolated_api.post("/endpoints/victim/async-invocations", json={"inputs": "again"}, headers={H_ID: "v1"})
    if response.status_code == 202:  # the row still exists: the same id is idempotent, nothing is rewritten
        assert response.json()["inferenceId"] == "v1"
    else:
        _refused(response, "already exists")


@pytest.mark.parametrize(
    "location",
    [
        "/etc/passwd",
        "{storage}/../state.db",
        "{storage}/async/attacker/../../../state.db",
        "file:///etc/shadow",
        "relative/x",
    ],
)
def test_traversing_inputs_are_refused(
    isolated_api: httpx.Client, isolated_server: RunningServer, two: tuple[str, str], location: str
) -> None:
    location = location.format(storage=isolated_server.home / "storage")
    response = isolated_api.post("/endpoints/attacker/async-invocations", headers={H_INPUT: location})
    _refused(response)


@pytest.mark.parametrize(
    "location", ["/etc", "{storage}/..", "{storage}/async/attacker/../victim", "{storage}/async", "/tmp"]
)
def test_traversing_outputs_are_refused(
    isolated_api: httpx.Client, isolated_server: RunningServer, two: tuple[str, str], location: str
) -> None:
    location = location.format(storage=isolated_server.home / "storage")
    response = isolated_api.post(
        "/endpoints/attacker/async-invocations", json={"inputs": "x"}, headers={H_OUTPUT: location}
    )
    _refused(response)


def test_a_planted_link_is_not_followed(
    isolated_api: httpx.Client, isolated_server: RunningServer, two: tuple[str, str], tmp_path: Path
) -> None:
    own = isolated_server.home / "storage" / "async" / "attacker"
    own.mkdir(parents=True, exist_ok=True)
    outside = tmp_path / "outside.out"
    (own / "planted.out").symlink_to(outside)  # dangling: the result would be written through it
    response = isolated_api.post(
        "/endpoints/attacker/async-invocations", json={"inputs": "x"}, headers={H_ID: "planted"}
    )
    _refused(response, "symbolic link")
    assert not outside.exists()


@pytest.mark.parametrize("field", ["input", "output"])
def test_batch_jobs_stay_out_of_the_async_area(
    isolated_api: httpx.Client, isolated_server: RunningServer, victim_result: Path, open_dir: Path, field: str
) -> None:
    storage = isolated_server.home / "storage"
    data = storage / "batch-in"
    data.mkdir(parents=True, exist_ok=True)
    (data / "v1").write_text('{"inputs": "x"}\n')
    locations = {"input": str(data), "output": str(storage / "batch-out")}
    locations[field] = str(victim_result if field == "input" else victim_result.parent)
    job = {"model": str(open_dir / "victim" / "probe-model"), "task": "text-classification", "instance": "cpu-small"}
    response = isolated_api.post("/v1/batch-jobs", json={**job, **locations})
    _refused(response, "async inferences keep")


@pytest.mark.parametrize("output", ["/etc", "{storage}/../logs"])
def test_batch_outputs_outside_the_roots_are_refused(
    isolated_api: httpx.Client, isolated_server: RunningServer, open_dir: Path, output: str
) -> None:
    storage = isolated_server.home / "storage"
    (storage / "batch-in").mkdir(parents=True, exist_ok=True)
    (storage / "batch-in" / "a.jsonl").write_text('{"inputs": "x"}\n')
    job = {"model": str(open_dir / "victim" / "probe-model"), "task": "text-classification", "instance": "cpu-small"}
    response = isolated_api.post(
        "/v1/batch-jobs", json={**job, "input": str(storage / "batch-in"), "output": output.format(storage=storage)}
    )
    _refused(response, "outside the allowed storage roots")
