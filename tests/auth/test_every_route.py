"""Every route of the real app, against a real server: refused without the right token, in its own dialect.

The routes come from the app itself (``app.routes``, included routers flattened), not from OpenAPI, so
``POST /`` (the SageMaker control plane), ``/v2/...``, ``/metrics``, the streaming, OpenAI and async
routes are all here, and a route added later is tested without editing this file.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from hubserve.api.auth import Rule, route_templates, rule_for
from hubserve.compose import create_app
from hubserve.settings import Settings
from tests.auth.conftest import MakeToken
from tests.integration.conftest import RunningServer

# which token lacks the scope a rule needs, and which has it
_UNDER = {"read": "invoke", "deploy": "read", "admin": "deploy", "invoke": "read", "sagemaker": "invoke"}
_VALUES = {"name": "no-such-endpoint", "namespace": "hubserve", "job_id": "no-such-job", "token_id": "0123456789ab",
           "inference_id": "no-such-inference", "model": "m", "path": "app.js", "group": "no-such-group",
           "number": "1"}  # fmt: skip


def _routes() -> list[tuple[str, str, Rule]]:
    app = create_app(Settings(home=Path("/nonexistent-home-for-routes"), token="t"))
    found = []
    for method, template in route_templates(app.routes):
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: _VALUES[m[1]], template)
        rule = rule_for(method, path)
        assert rule is not None, f"{method} {template} has no rule"
        found.append((method, path, rule))
    return found


ROUTES = _routes()
GUARDED = [(m, p, r) for m, p, r in ROUTES if r.need != "public"]


@pytest.fixture(scope="module")
def tokens(make_token: MakeToken, admin: httpx.Client) -> dict[str, str]:
    made = {scope: make_token(scope) for scope in ("read", "deploy", "invoke", "admin")}
    revoked = make_token("admin")
    assert admin.delete(f"/v1/tokens/{revoked['id']}").status_code in (200, 204)
    right = made["read"]["token"]
    token_id = made["read"]["id"]
    return {
        **{scope: info["token"] for scope, info in made.items()},
        "revoked": revoked["token"],
        "wrong": right[:-6] + ("A" if right[-6] != "A" else "B") + right[-5:],  # right id, wrong secret
        "unknown": f"hs_{'f' * 12}_{right.split('_', 2)[2]}",
        "malformed": f"hs_{token_id}",
    }


def _send(server: RunningServer, method: str, path: str, rule: Rule, authorization: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization
    if rule.need == "sagemaker":
        headers["x-amz-target"] = "SageMaker.DescribeEndpoint"
        headers["content-type"] = "application/x-amz-json-1.1"
    body = b'{"EndpointName": "no-such-endpoint"}' if rule.need == "sagemaker" else b"{}"
    content = body if method in ("POST", "PUT", "PATCH") else None
    return httpx.request(method, server.url + path, headers=headers, content=content, timeout=60)


def _assert_dialect(response: httpx.Response, rule: Rule, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    if rule.dialect == "sagemaker":
        assert body["__type"] == response.headers["x-amzn-ErrorType"] and body["message"]
    elif rule.dialect == "hf":
        assert isinstance(body["error"], str) and body["error"]
    elif rule.dialect == "openai":
        assert {"message", "type", "code"} <= set(body["error"])
    else:
        assert body["error"]["type"] and body["error"]["message"]


def _id(route: tuple[str, str, Rule]) -> str:
    return f"{route[0]} {route[1]}"


@pytest.mark.parametrize("route", GUARDED, ids=_id)
def test_every_guarded_route_refuses_bad_credentials_and_accepts_the_right_scope(
    auth_server: RunningServer, tokens: dict[str, str], route: tuple[str, str, Rule]
) -> None:
    method, path, rule = route
    for authorization in (None, "", "Basic dXNlcjpwYXNz", "Bearer", f"Bearer {tokens['malformed']}",
                          f"Bearer {tokens['unknown']}", f"Bearer {tokens['wrong']}", f"Bearer {tokens['revoked']}",
                          "Bearer not-the-bootstrap-token"):  # fmt: skip
        response = _send(auth_server, method, path, rule, authorization)
        _assert_dialect(response, rule, 401)
        for secret in tokens.values():
            assert secret not in response.text
    under = _send(auth_server, method, path, rule, f"Bearer {tokens[_UNDER[rule.need]]}")
    _assert_dialect(under, rule, 403)
    need = "read" if rule.need == "sagemaker" else rule.need  # DescribeEndpoint is a read
    right = _send(auth_server, method, path, rule, f"Bearer {tokens[need]}")
    assert right.status_code not in (401, 403), right.text
    bootstrap = _send(auth_server, method, path, rule, f"Bearer {auth_server.token}")
    assert bootstrap.status_code not in (401, 403), bootstrap.text


@pytest.mark.parametrize("route", [r for r in ROUTES if r[2].need == "public"], ids=_id)
def test_public_routes_need_no_token(auth_server: RunningServer, route: tuple[str, str, Rule]) -> None:
    method, path, rule = route
    assert _send(auth_server, method, path, rule, None).status_code not in (401, 403)


def test_an_unknown_path_is_still_404(auth_server: RunningServer) -> None:
    assert httpx.get(f"{auth_server.url}/no/such/path", timeout=10).status_code == 404


def test_the_control_plane_needs_deploy_for_changes(auth_server: RunningServer, tokens: dict[str, str]) -> None:
    rule = rule_for("POST", "/")
    assert rule is not None
    headers = {"authorization": f"Bearer {tokens['read']}", "x-amz-target": "SageMaker.DeleteEndpoint",
               "content-type": "application/x-amz-json-1.1"}  # fmt: skip
    response = httpx.post(f"{auth_server.url}/", headers=headers, content=b'{"EndpointName": "x"}', timeout=30)
    _assert_dialect(response, rule, 403)
    headers["authorization"] = f"Bearer {tokens['deploy']}"
    allowed = httpx.post(f"{auth_server.url}/", headers=headers, content=b'{"EndpointName": "x"}', timeout=30)
    assert allowed.status_code not in (401, 403)


def test_a_large_body_without_a_token_is_refused_before_it_is_read(auth_server: RunningServer) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(64):
            yield b"x" * (1024 * 1024)

    for path in ("/v1/endpoints", "/", "/endpoints/no-such-endpoint/invocations"):
        response = httpx.post(auth_server.url + path, content=chunks(), timeout=30)
        assert response.status_code == 401
