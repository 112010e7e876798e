"""The generation routes are invocation routes: public exactly as the toolkit's and SageMaker's are today."""

from __future__ import annotations

from starlette.routing import Route

from hubserve.api.auth import is_public
from hubserve.api.generation.routes import router


def test_every_generation_route_is_public_and_management_is_not() -> None:
    for route in router.routes:
        assert isinstance(route, Route)
        path = route.path.replace("{name}", "llm").replace("{model:path}", "llm")
        for method in route.methods or ():
            assert is_public(method, path), f"{method} {route.path} needs a PublicRoute in api/auth.py"
    assert not is_public("GET", "/v1/endpoints/llm")
    assert not is_public("POST", "/endpoints/llm/v1/fine-tunes")  # only the routes that exist
