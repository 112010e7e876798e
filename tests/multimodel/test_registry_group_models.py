"""A registry group as a multi-model endpoint: each Approved version is a model named by its number, served
without a redeploy when approved, no longer when rejected; an approved version in use cannot be deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import RunningServer, start_server, stop_server, wait_for_state
from tests.multimodel.conftest import build_classifier


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server: RunningServer = start_server(tmp_path_factory.mktemp("mme-registry") / "home")
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=120) as client:
        yield client
    stop_server(server)


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mme-registry-models")
    return {tag: build_classifier(root / tag, (f"{tag}-neg", f"{tag}-pos"), seed=i) for i, tag in enumerate(("one", "two", "three"))}


def _labels(api: httpx.Client, model: str) -> httpx.Response:
    return api.post(f"/endpoints/fleet/models/{model}", json={"inputs": "good"})


def test_a_registry_group_serves_its_approved_versions(api: httpx.Client, versions: dict[str, Path]) -> None:
    for tag in ("one", "two", "three"):
        registered = api.post("/v1/models/fleet/versions", json={"source": str(versions[tag])})
        assert registered.status_code == 201, registered.text
    api.post("/v1/models/fleet/versions/1/approve")
    api.post("/v1/models/fleet/versions/2/approve")
    created = api.post("/v1/endpoints", json={
        "name": "fleet", "model": {"source": "registry://fleet", "task": "text-classification", "multi_model": True},
        "compute": {"type": "dedicated", "instance": "cpu-small"}})  # fmt: skip
    assert created.status_code == 201, created.text
    assert any("registry group 'fleet'" in note for note in created.json()["notes"])
    assert wait_for_state(api, "fleet", {"running", "failed"})["state"] == "running"

    assert _labels(api, "1").json()[0]["label"].startswith("one-")
    assert _labels(api, "2").json()[0]["label"].startswith("two-")
    pending = _labels(api, "3")
    assert pending.status_code == 404 and pending.json()["error"]["type"] == "TargetModelNotFound"
    listed = {model["name"]: model for model in api.get("/v1/endpoints/fleet/models").json()["models"]}
    assert set(listed) == {"1", "2"} and listed["1"]["state"] == "loaded"

    # approving makes a version servable at once; rejecting stops it; no redeploy either way
    assert api.post("/v1/models/fleet/versions/3/approve").status_code == 200
    assert _labels(api, "3").json()[0]["label"].startswith("three-")
    assert api.post("/v1/models/fleet/versions/1/reject").status_code == 200
    assert _labels(api, "1").status_code == 404
    assert api.get("/v1/endpoints/fleet").json()["state"] == "running"

    refused = api.delete("/v1/models/fleet/versions/2")
    assert refused.status_code == 409 and "fleet" in refused.json()["error"]["message"]
    assert api.delete("/v1/models/fleet/versions/1").status_code == 200  # rejected: no longer served, may go


def test_a_registry_group_source_needs_the_group(api: httpx.Client) -> None:
    answer = api.post("/v1/endpoints", json={"name": "nogroup", "model": {"source": "registry://nogroup", "multi_model": True}})
    assert answer.status_code == 422 and "no model group 'nogroup'" in answer.json()["error"]["message"]


def test_generative_tasks_are_refused_with_what_to_do(api: httpx.Client, tmp_path: Path) -> None:
    answer = api.post("/v1/endpoints", json={
        "name": "gen-mme", "model": {"source": str(tmp_path), "task": "text-generation", "multi_model": True}})  # fmt: skip
    assert answer.status_code == 422 and "deploy each generative model as its own endpoint" in answer.json()["error"]["message"]
