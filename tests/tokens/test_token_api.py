"""`/v1/tokens` through a real server: created once, listed without secrets, scoped, revoked at once."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import RunningServer, wait_for_state


def create(api: httpx.Client, name: str, scopes: list[str], endpoints: list[str] | None = None) -> dict:
    body: dict = {"name": name, "scopes": scopes}
    if endpoints is not None:
        body["endpoints"] = endpoints
    response = api.post("/v1/tokens", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_create_shows_the_token_once_and_lists_never_do(api: httpx.Client) -> None:
    created = create(api, "ci-reader", ["read"])
    token = created["token"]
    assert created["name"] == "ci-reader" and created["scopes"] == ["read"] and created["endpoints"] is None
    assert created["revoked_at"] is None and created["created_at"] and created["id"] in token

    listed = api.get("/v1/tokens")
    assert listed.status_code == 200
    assert created["id"] in [item["id"] for item in listed.json()["items"]]
    described = api.get(f"/v1/tokens/{created['id']}")
    assert described.status_code == 200 and described.json()["name"] == "ci-reader"
    secret = token.split("_", 2)[2]  # hs_<id>_<secret>: the secret itself may hold "_"
    for answer in (listed, described, api.get("/v1/tokens", params={"include_revoked": "true"})):
        assert secret not in answer.text
    assert all("token" not in item for item in listed.json()["items"]) and "token" not in described.json()


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"name": "x", "scopes": ["admin", "superuser"]}, "scopes", "allowed: admin, deploy, invoke, read"),
        ({"name": "", "scopes": ["read"]}, "name", "name of 1 to 200"),
        ({"name": "   ", "scopes": ["read"]}, "name", "name of 1 to 200"),
        ({"name": "x", "scopes": []}, "scopes", "at least one scope"),
        ({"name": "x", "scopes": ["invoke"], "endpoints": ["Not_DNS"]}, "endpoints", "DNS-safe"),
        ({"scopes": ["read"]}, "name", "Field required"),
        ({"name": "x", "scopes": ["read"], "extra": 1}, "extra", "not permitted"),
    ],
)
def test_bad_requests_are_400_naming_the_field(api: httpx.Client, body: dict, field: str, words: str) -> None:
    response = api.post("/v1/tokens", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "ValidationError" and words in error["message"]
    assert error["details"][0]["field"] == field


def test_not_json_and_unknown_ids(api: httpx.Client) -> None:
    response = api.post("/v1/tokens", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    for answer in (api.get("/v1/tokens/0123456789ab"), api.delete("/v1/tokens/0123456789ab")):
        assert answer.status_code == 404 and answer.json()["error"]["type"] == "NotFound"


def test_endpoints_not_created_yet_are_accepted(api: httpx.Client) -> None:
    created = create(api, "future", ["invoke"], ["not-there-yet", "also-later"])
    assert created["endpoints"] == ["also-later", "not-there-yet"]


def test_an_invoke_token_invokes_but_cannot_manage(
    api: httpx.Client, server: RunningServer, tiny_models: dict[str, Path]
) -> None:
    spec = {
        "name": "tok-invoke",
        "model": {"source": str(tiny_models["text-classification"])},
        "compute": {"type": "serverless", "memory_mb": 2048, "max_concurrency": 4},
    }
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    try:
        wait_for_state(api, "tok-invoke", {"running"})
        token = create(api, "app", ["invoke"], ["tok-invoke"])["token"]
        with httpx.Client(base_url=server.url, headers=bearer(token), timeout=60) as client:
            answer = client.post("/endpoints/tok-invoke", json={"inputs": "great"})
            assert answer.status_code == 200, answer.text
            for method, path in (
                ("GET", "/v1/endpoints"),
                ("DELETE", "/v1/endpoints/tok-invoke"),
                ("GET", "/v1/tokens"),
            ):
                refused = client.request(method, path)
                assert refused.status_code == 403, (method, path, refused.text)
                assert token not in refused.text
        assert api.get("/v1/endpoints/tok-invoke").status_code == 200  # the refused delete changed nothing
    finally:
        api.delete("/v1/endpoints/tok-invoke")


def test_a_revoked_token_is_refused_on_the_next_request(api: httpx.Client, server: RunningServer) -> None:
    created = create(api, "short-lived", ["read"])
    with httpx.Client(base_url=server.url, headers=bearer(created["token"]), timeout=30) as client:
        assert client.get("/v1/endpoints").status_code == 200
        revoked = api.delete(f"/v1/tokens/{created['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        refused = client.get("/v1/endpoints")
        assert refused.status_code == 401, refused.text
    assert created["id"] not in [item["id"] for item in api.get("/v1/tokens").json()["items"]]
    everything = api.get("/v1/tokens", params={"include_revoked": "true"}).json()["items"]
    assert any(item["id"] == created["id"] and item["revoked_at"] for item in everything)
    assert api.delete(f"/v1/tokens/{created['id']}").status_code == 200  # revoking again is harmless


def test_tokens_and_audit_are_admin_only(api: httpx.Client, server: RunningServer) -> None:
    deploy = create(api, "deployer", ["deploy", "read"])["token"]
    for method, path in (("GET", "/v1/tokens"), ("POST", "/v1/tokens"), ("GET", "/v1/audit")):
        refused = httpx.request(
            method, f"{server.url}{path}", headers=bearer(deploy), json={"name": "x", "scopes": ["admin"]}
        )
        assert refused.status_code == 403, (method, path, refused.text)
        assert httpx.request(method, f"{server.url}{path}").status_code == 401


def test_the_schemas_are_in_openapi(server: RunningServer) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    create_body = document["paths"]["/v1/tokens"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create_body["properties"]["scopes"]["items"]["enum"] == ["admin", "deploy", "invoke", "read"]
    assert {"TokenCreated", "TokenInfo", "TokenList", "AuditList", "AuditEntryInfo"} <= set(
        document["components"]["schemas"]
    )
    assert "token" not in document["components"]["schemas"]["TokenInfo"]["properties"]
