"""The model registry through a real server: register, list, describe, approve, reject, delete; bad input."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.conftest import RunningServer


def test_register_a_folder_stores_its_files_once_by_content(api: httpx.Client, server: RunningServer,
                                                           models: dict[str, Path]) -> None:  # fmt: skip
    first = api.post("/v1/models/sentiment/versions", json={"source": str(models["v1"]), "metrics": {"f1": 0.9},
                                                             "description": "first"})  # fmt: skip
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["version"] == 1 and body["uri"] == "registry://sentiment/1"
    assert body["source_kind"] == "folder" and body["task"] == "text-classification"  # inferred from the config
    assert body["approval_status"] == "PendingManualApproval" and body["metrics"] == {"f1": 0.9}
    sha = body["sha256"]
    stored = server.home / "registry" / sha
    assert (stored / "config.json").read_bytes() == (models["v1"] / "config.json").read_bytes()

    again = api.post("/v1/models/sentiment/versions", json={"source": str(models["v1"])})
    assert again.status_code == 201 and again.json()["version"] == 2 and again.json()["sha256"] == sha
    other = api.post("/v1/models/sentiment/versions", json={"source": str(models["v2"])}).json()
    assert other["version"] == 3 and other["sha256"] != sha
    assert sorted(p.name for p in (server.home / "registry").iterdir()) == sorted([sha, other["sha256"]])

    groups = api.get("/v1/models").json()["items"]
    assert {"name": "sentiment", "versions": 3, "latest_approved": None}.items() <= next(
        g for g in groups if g["name"] == "sentiment").items()  # fmt: skip
    listed = api.get("/v1/models/sentiment/versions").json()["items"]
    assert [v["version"] for v in listed] == [1, 2, 3]
    described = api.get("/v1/models/sentiment/versions/1").json()
    assert described["description"] == "first" and described["endpoints"] == []


def test_hub_ids_and_uris_are_recorded_not_downloaded(api: httpx.Client) -> None:
    hub = api.post("/v1/models/hubbed/versions", json={"source": "org/model", "revision": "v1.0", "task": "fill-mask"})
    assert hub.status_code == 201, hub.text
    assert hub.json()["source_kind"] == "hub" and hub.json()["revision"] == "v1.0" and hub.json()["sha256"] is None
    uri = api.post("/v1/models/hubbed/versions", json={"source": "s3://bucket/models/a/", "task": "fill-mask"})
    assert uri.status_code == 201 and uri.json()["source_kind"] == "uri" and uri.json()["version"] == 2


def test_approval_statuses(api: httpx.Client, models: dict[str, Path]) -> None:
    api.post("/v1/models/approvals/versions", json={"source": str(models["v1"])})
    api.post("/v1/models/approvals/versions", json={"source": str(models["v2"])})
    approved = api.post("/v1/models/approvals/versions/1/approve")
    assert approved.status_code == 200 and approved.json()["approval_status"] == "Approved"
    rejected = api.post("/v1/models/approvals/versions/2/reject")
    assert rejected.json()["approval_status"] == "Rejected"
    patched = api.patch("/v1/models/approvals/versions/2", json={"approval_status": "Approved"})
    assert patched.status_code == 200 and patched.json()["approval_status"] == "Approved"
    group = next(g for g in api.get("/v1/models").json()["items"] if g["name"] == "approvals")
    assert group["latest_approved"] == 2
    bad = api.patch("/v1/models/approvals/versions/2", json={"approval_status": "Maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "ValidationError"
    assert "PendingManualApproval, Approved or Rejected" in bad.json()["error"]["message"] or "Approved" in bad.text


def test_bad_input_answers_in_the_management_dialect(api: httpx.Client, tmp_path: Path) -> None:
    cases = [
        ("/v1/models/ok/versions", {"source": str(tmp_path / "missing")}, 400, "source"),
        ("/v1/models/ok/versions", {"source": "org/model", "colour": "red"}, 400, "colour"),
        ("/v1/models/ok/versions", {"metrics": {}}, 400, "source"),
        ("/v1/models/-bad-/versions", {"source": "org/model"}, 400, "group"),
        ("/v1/models/ok/versions", {"source": "org/model", "revision": "../main"}, 400, "revision"),
        ("/v1/models/ok/versions", {"source": str(tmp_path), "revision": "main"}, 400, "revision"),
    ]
    for path, body, status, field in cases:
        answer = api.post(path, json=body)
        assert answer.status_code == status, (body, answer.text)
        error = answer.json()["error"]
        assert error["type"] == "ValidationError" and field in error["message"], (body, error)
    assert api.get("/v1/models/nobody/versions").json()["error"]["type"] == "ModelGroupNotFound"
    api.post("/v1/models/ok/versions", json={"source": "org/model"})
    missing = api.get("/v1/models/ok/versions/9")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "ModelVersionNotFound"
    assert api.post("/v1/models/ok/versions/9/approve").status_code == 404
    assert api.delete("/v1/models/ok/versions/9").status_code == 404


def test_delete_removes_files_no_other_version_holds(api: httpx.Client, server: RunningServer,
                                                      models: dict[str, Path]) -> None:  # fmt: skip
    one = api.post("/v1/models/gone/versions", json={"source": str(models["v2"])}).json()
    two = api.post("/v1/models/gone/versions", json={"source": str(models["v2"])}).json()
    folder = server.home / "registry" / one["sha256"]
    assert api.delete("/v1/models/gone/versions/1").status_code == 200
    assert folder.is_dir()  # version 2 (and the 'sentiment' group) still hold the same content
    assert api.delete(f"/v1/models/gone/versions/{two['version']}").status_code == 200
    assert api.get("/v1/models/gone/versions/1").status_code == 404
