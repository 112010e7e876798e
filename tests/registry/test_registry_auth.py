"""The registry's routes need the scopes auth.ROUTES gives them: read for GETs, deploy for every change."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from hubserve.api.auth import route_templates, rule_for
from hubserve.compose import create_app
from hubserve.settings import Settings
from tests.integration.conftest import RunningServer

_VALUES = {"group": "no-such-group", "number": "1"}


def _registry_routes() -> list[tuple[str, str, str]]:
    app = create_app(Settings(home=Path("/nonexistent-home-for-routes"), token="t"))
    found = []
    for method, template in route_templates(app.routes):
        if template.startswith("/v1/models"):
            path = re.sub(r"\{(\w+)\}", lambda m: _VALUES[m[1]], template)
            rule = rule_for(method, path)
            assert rule is not None, f"{method} {template} has no rule"
            found.append((method, path, rule.need))
    return found


def test_every_registry_route_has_its_scope() -> None:
    routes = _registry_routes()
    assert len(routes) == 8
    assert {need for method, _, need in routes if method == "GET"} == {"read"}
    assert {need for method, _, need in routes if method != "GET"} == {"deploy"}


def test_tokens_without_the_scope_are_refused(api: httpx.Client, server: RunningServer, models: dict[str, Path]) -> None:
    made = {scope: api.post("/v1/tokens", json={"name": scope, "scopes": [scope]}).json()["token"]
            for scope in ("read", "deploy", "invoke")}  # fmt: skip
    api.post("/v1/models/scoped/versions", json={"source": "org/model"})
    for method, path, need in _registry_routes():
        path = path.replace("no-such-group", "scoped")
        below = "invoke" if need == "read" else "read"
        refused = httpx.request(method, server.url + path, headers={"Authorization": f"Bearer {made[below]}"},
                                json={"source": "org/model"})  # fmt: skip
        assert refused.status_code == 403 and refused.json()["error"]["type"] == "ForbiddenError", (method, path)
        nobody = httpx.request(method, server.url + path)
        assert nobody.status_code == 401, (method, path)
    deploy = {"Authorization": f"Bearer {made['deploy']}"}
    registered = httpx.post(f"{server.url}/v1/models/scoped/versions", headers=deploy, json={"source": str(models["v1"])})
    assert registered.status_code == 201
    approved = httpx.post(f"{server.url}/v1/models/scoped/versions/2/approve", headers=deploy)
    assert approved.status_code == 200
    listed = httpx.get(f"{server.url}/v1/models/scoped/versions", headers={"Authorization": f"Bearer {made['read']}"})
    assert listed.status_code == 200 and len(listed.json()["items"]) == 2
