"""The generation routes are invocation routes: they need the invoke scope, as the toolkit's and SageMaker's do."""

from __future__ import annotations

from starlette.routing import Route

from hubserve.api.auth import is_public, rule_for
from hubserve.api.generation.routes import router


def test_every_generation_route_is_an_invocation_route_and_management_is_not() -> None:
    for route in router.routes:
        assert isinstance(route, Route)
        path = route.path.replace("{name}", "llm").replace("{model:path}", "llm")
        for method in route.methods or ():
            rule = rule_for(method, path)
            assert rule is not None and rule.need == "invoke", f"{method} {route.path} needs an invoke Rule in api/auth.py"
    assert rule_for("GET", "/v1/endpoints/llm").need == "read"  # type: ignore[union-attr]
    assert not is_public("POST", "/endpoints/llm/v1/chat/completions")
    assert rule_for("POST", "/endpoints/llm/v1/fine-tunes") is None  # only the routes that exist
