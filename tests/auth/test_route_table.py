"""Every route of the app has an entry in the authentication table: a new route cannot slip in unguarded."""

from __future__ import annotations

from pathlib import Path

from hubserve.api.auth import ROUTES, route_templates, rule_for
from hubserve.compose import create_app
from hubserve.settings import Settings


def test_every_route_of_the_app_is_in_the_table(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path, token="t"))
    routes = route_templates(app.routes)
    assert len(routes) > 50  # included routers are flattened, not skipped
    named = {(rule.method, rule.path) for rule in ROUTES}
    missing = [route for route in routes if route not in named]
    assert missing == [], f"add these routes to hubserve.api.auth.ROUTES with the scope they need: {missing}"


def test_the_table_matches_paths_as_the_router_does() -> None:
    assert rule_for("POST", "/").need == "sagemaker"  # type: ignore[union-attr]
    assert rule_for("GET", "/").need == "public"  # type: ignore[union-attr]
    assert rule_for("HEAD", "/health").need == "public"  # type: ignore[union-attr]
    assert rule_for("GET", "/console/app.js").need == "public"  # type: ignore[union-attr]
    assert rule_for("GET", "/endpoints/x/v1/models/a/b").need == "invoke"  # type: ignore[union-attr]
    assert rule_for("POST", "/endpoints/x/invocations").dialect == "sagemaker"  # type: ignore[union-attr]
    assert rule_for("GET", "/v1/endpoints/x/metrics").need == "read"  # type: ignore[union-attr]
    assert rule_for("DELETE", "/v1/tokens/abc").need == "admin"  # type: ignore[union-attr]
    assert rule_for("GET", "/nowhere") is None
