"""The audit log through a real server: every change recorded with who, from where and its outcome."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx

from tests.integration.conftest import RunningServer, wait_for_state


def entries(api: httpx.Client, **params: object) -> list[dict]:
    response = api.get("/v1/audit", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_token_create_and_revoke_are_recorded_with_the_acting_token(api: httpx.Client, server: RunningServer) -> None:
    admin = api.post("/v1/tokens", json={"name": "second-admin", "scopes": ["admin"]}).json()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {admin['token']}"}) as as_admin:
        made = as_admin.post(
            "/v1/tokens", json={"name": "made-by-second", "scopes": ["read"]}, headers={"x-request-id": "req-made-1"}
        )
        assert made.status_code == 201 and made.headers["x-request-id"] == "req-made-1"
        revoked = as_admin.delete(f"/v1/tokens/{made.json()['id']}")
        assert revoked.status_code == 200 and len(revoked.headers["x-request-id"]) == 32  # generated when not sent
    log = entries(api, limit=10)
    revoke, create = log[0], log[1]  # newest first
    assert revoke["action"] == "token.revoke" and revoke["target"] == made.json()["id"] and revoke["status"] == 200
    assert revoke["request_id"] == revoked.headers["x-request-id"]
    assert create["action"] == "token.create" and create["target"] == made.json()["id"] and create["status"] == 201
    assert create["request_id"] == "req-made-1" and create["method"] == "POST" and create["path"] == "/v1/tokens"
    for entry in (create, revoke):
        assert entry["token_id"] == admin["id"] and entry["token_name"] == "second-admin"
        assert entry["source"] == "127.0.0.1"
        assert dt.datetime.fromisoformat(entry["at"]).utcoffset() == dt.timedelta(0)
    secret = made.json()["token"].rpartition("_")[2]
    everything = api.get("/v1/audit", params={"limit": 10_000}).text
    assert secret not in everything and admin["token"].rpartition("_")[2] not in everything
    assert server.token not in everything


def test_endpoint_create_and_delete_are_recorded_and_invocations_are_not(
    api: httpx.Client, tiny_models: dict[str, Path]
) -> None:
    spec = {
        "name": "audited",
        "model": {"source": str(tiny_models["text-classification"])},
        "compute": {"type": "serverless", "memory_mb": 2048, "max_concurrency": 4},
        "env": {"SOME_SECRET": "s3cr3t-value-in-the-body"},
    }
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    assert api.post("/v1/endpoints", json=spec).status_code == 409  # a refused change is recorded too
    wait_for_state(api, "audited", {"running"})
    assert api.post("/endpoints/audited", json={"inputs": "fine"}).status_code == 200
    assert api.delete("/v1/endpoints/audited").status_code == 202
    log = entries(api, endpoint="audited")
    assert [(e["action"], e["status"]) for e in log] == [
        ("endpoint.delete", 202), ("endpoint.create", 409), ("endpoint.create", 201),
    ]  # fmt: skip
    assert all(e["target"] == "audited" and e["source"] == "127.0.0.1" and e["token_id"] for e in log)
    assert all(e["token_id"] != "local" for e in log)  # the server has a token: the bootstrap one acted
    everything = api.get("/v1/audit", params={"limit": 10_000})
    assert "s3cr3t-value-in-the-body" not in everything.text  # bodies are never stored
    assert not [
        e for e in everything.json()["items"] if e["path"] == "/endpoints/audited"
    ]  # invocations are no changes


def test_reads_are_not_recorded_and_since_and_limit_filter(api: httpx.Client) -> None:
    before = dt.datetime.now(dt.timezone.utc)
    api.get("/v1/endpoints")
    api.get("/v1/tokens")
    assert api.post("/v1/endpoints/nope-nothing/pause").status_code == 404
    recent = entries(api, since=before.isoformat())
    assert [(e["action"], e["target"], e["status"]) for e in recent] == [("endpoint.pause", "nope-nothing", 404)]
    assert len(entries(api, limit=1)) == 1
    future = (before + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert entries(api, since=future) == []
    bad = api.get("/v1/audit", params={"since": "yesterday"})
    assert bad.status_code == 400 and "ISO 8601" in bad.json()["error"]["message"]
    for limit in (0, 10_001):
        bad = api.get("/v1/audit", params={"limit": limit})
        assert bad.status_code == 400 and "give 1 to 10000" in bad.json()["error"]["message"]


def test_sagemaker_mutations_are_recorded_with_their_operation(api: httpx.Client) -> None:
    headers = {"X-Amz-Target": "SageMaker.DeleteEndpoint", "Content-Type": "application/x-amz-json-1.1"}
    api.post("/", content=b'{"EndpointName": "sm-not-there"}', headers=headers)
    api.post("/", content=b"{}", headers={**headers, "X-Amz-Target": "SageMaker.ListEndpoints"})
    log = entries(api, endpoint="sm-not-there")
    assert len(log) == 1 and log[0]["action"] == "sagemaker.DeleteEndpoint" and log[0]["path"] == "/"
    assert not any(e["action"] == "sagemaker.ListEndpoints" for e in entries(api, limit=50))


def test_hf_v2_and_batch_job_changes_are_recorded(api: httpx.Client) -> None:
    assert api.delete("/v2/endpoint/me/v2-not-there").status_code == 404
    assert api.post("/v1/batch-jobs/batch-not-there/stop").status_code == 404
    log = entries(api, limit=2)
    assert [(e["action"], e["target"], e["status"]) for e in log] == [
        ("batch_job.stop", "batch-not-there", 404), ("hf.delete_endpoint", "v2-not-there", 404),
    ]  # fmt: skip


def test_a_request_id_that_is_not_an_id_is_replaced(api: httpx.Client) -> None:
    answer = api.post("/v1/endpoints/nope-rid/resume", headers={"x-request-id": "x" * 201})
    assert answer.status_code == 404 and len(answer.headers["x-request-id"]) == 32
    assert entries(api, endpoint="nope-rid")[0]["request_id"] == answer.headers["x-request-id"]
