"""Endpoints deployed from the registry through a real server: a pinned version, latest-approved rolled on
approval with no dropped request, deletion refused while used, and a changed stored file refused."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx

from tests.integration.conftest import RunningServer, wait_for_state

SERVERLESS = {"type": "serverless", "memory_mb": 2048, "max_concurrency": 10}


def _events(api: httpx.Client, name: str) -> list[str]:
    lines = api.get(f"/v1/endpoints/{name}/logs", params={"source": "hubserve", "tail": 500}).json()["lines"]
    return [line.get("message") or line.get("line") or str(line) for line in lines]


def test_a_pinned_version_serves_and_cannot_be_deleted(api: httpx.Client, models: dict[str, Path]) -> None:
    sha = api.post("/v1/models/pinned/versions", json={"source": str(models["v1"])}).json()["sha256"]
    created = api.post("/v1/endpoints", json={"name": "pinned", "model": {"source": "registry://pinned/1"},
                                              "compute": SERVERLESS})  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["model"]["task"] == "text-classification"  # the version's task
    running = wait_for_state(api, "pinned", {"running", "failed"})
    assert running["state"] == "running", running
    answer = api.post("/endpoints/pinned", json={"inputs": "great"})
    assert answer.status_code == 200 and answer.json()[0]["label"] in ("NEGATIVE", "POSITIVE")
    assert api.get("/v1/endpoints/pinned").json()["model_version"] == f"registry://pinned/1 (sha256 {sha})"
    assert any(f"running registry://pinned/1 (sha256 {sha})" in line for line in _events(api, "pinned"))

    refused = api.delete("/v1/models/pinned/versions/1")
    assert refused.status_code == 409 and refused.json()["error"]["type"] == "ModelVersionInUse"
    assert "pinned" in refused.json()["error"]["message"]
    assert api.get("/v1/models/pinned/versions/1").json()["endpoints"] == ["pinned"]
    api.delete("/v1/endpoints/pinned")
    wait_for_state(api, "pinned", {"gone"})
    assert api.delete("/v1/models/pinned/versions/1").status_code == 200


def test_unknown_or_unapproved_references_are_refused(api: httpx.Client, models: dict[str, Path]) -> None:
    api.post("/v1/models/unready/versions", json={"source": str(models["v1"])})
    api.post("/v1/models/unready/versions", json={"source": "s3://bucket/m/", "task": "fill-mask"})
    api.post("/v1/models/unready/versions", json={"source": str(models["v1"])})
    api.post("/v1/models/unready/versions/3/reject")
    for source, words in [
        ("registry://unready/2", "recorded only"),
        ("registry://unready/3", "is Rejected"),
        ("registry://unready/latest-approved", "no Approved version"),
        ("registry://unready/7", "no version 7"),
        ("registry://nowhere/1", "no version 1"),
        ("registry://bad name/1", "not a registry reference"),
    ]:
        answer = api.post("/v1/endpoints", json={"name": "refused", "model": {"source": source}, "compute": SERVERLESS})
        assert answer.status_code == 422, answer.text
        assert words in answer.json()["error"]["message"] and answer.json()["error"]["details"][0]["field"] == "model.source"


def test_approving_rolls_latest_approved_endpoints_without_dropping_requests(
    api: httpx.Client, models: dict[str, Path]
) -> None:
    api.post("/v1/models/rolling/versions", json={"source": str(models["v1"])})
    api.post("/v1/models/rolling/versions/1/approve")
    spec = {"name": "follower", "model": {"source": "registry://rolling/latest-approved"}, "compute": SERVERLESS}
    created = api.post("/v1/endpoints", json=spec)
    assert created.status_code == 201, created.text
    assert created.json()["model"]["revision"] == "1"  # pinned to what latest-approved is now
    assert wait_for_state(api, "follower", {"running", "failed"})["state"] == "running"
    second = api.post("/v1/models/rolling/versions", json={"source": str(models["v2"])}).json()
    assert api.get("/v1/endpoints/follower").json()["model"]["revision"] == "1"  # registered is not approved

    statuses: list[int] = []
    labels: set[str] = set()
    stop = time.monotonic() + 120

    def hammer() -> None:
        with httpx.Client(base_url=api.base_url, headers=api.headers, timeout=60) as client:
            while time.monotonic() < stop and not labels & {"bad", "good"}:
                response = client.post("/endpoints/follower", json={"inputs": "steady traffic"})
                statuses.append(response.status_code)
                if response.status_code == 200:
                    labels.add(response.json()[0]["label"])

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        workers = [pool.submit(hammer), pool.submit(hammer)]
        time.sleep(0.5)
        approved = api.post("/v1/models/rolling/versions/2/approve")
        assert approved.status_code == 200 and approved.json()["rolled_endpoints"] == ["follower"]
        for worker in workers:
            worker.result()
    assert labels & {"bad", "good"}, "never served the approved version"
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    described = wait_for_state(api, "follower", {"running"})
    assert described["model"]["revision"] == "2"
    assert described["model_version"] == f"registry://rolling/2 (sha256 {second['sha256']})"
    events = _events(api, "follower")
    assert any("registry://rolling/2 approved: rolling to it" in line for line in events)
    assert any(f"running registry://rolling/2 (sha256 {second['sha256']})" in line for line in events)
    rejected = api.post("/v1/models/rolling/versions/2/reject")
    assert rejected.status_code == 409 and "follower" in rejected.json()["error"]["message"]
    api.delete("/v1/endpoints/follower")
    wait_for_state(api, "follower", {"gone"})


def test_a_changed_stored_file_is_refused_naming_the_version(api: httpx.Client, server: RunningServer,
                                                            models: dict[str, Path], tmp_path: Path) -> None:  # fmt: skip
    import shutil

    own = tmp_path / "own"
    shutil.copytree(models["v1"], own)
    (own / "README.md").write_text("content of its own, so its stored copy is this test's alone")
    sha = api.post("/v1/models/tampered/versions", json={"source": str(own)}).json()["sha256"]
    stored = server.home / "registry" / sha / "config.json"
    stored.write_text(stored.read_text().replace("NEGATIVE", "HACKED"))
    created = api.post("/v1/endpoints", json={"name": "tampered", "model": {"source": "registry://tampered/1"},
                                              "compute": SERVERLESS})  # fmt: skip
    assert created.status_code == 201, created.text
    failed = wait_for_state(api, "tampered", {"failed", "running"})
    assert failed["state"] == "failed", failed
    assert "registry://tampered/1" in failed["reason"] and "changed since registration" in failed["reason"]
    assert "Register the model again" in failed["reason"]
    api.delete("/v1/endpoints/tampered")
