"""Authentication: one layer in front of every route, with the routes that are public listed here.

With a token configured (``--token`` / HUBSERVE_TOKEN), a request must send
``Authorization: Bearer <token>`` unless its method and path match ``PUBLIC_ROUTES``; each public
route says why it is public. Without a token, nothing is checked (a single-user machine). The
token itself is never logged. Scopes and per-endpoint visibility build on this layer later.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from hubserve.api.errors import error_response
from hubserve.errors import Unauthorized


@dataclasses.dataclass(frozen=True)
class PublicRoute:
    method: str
    path: str  # a route template: {name} matches one segment, {path:path} the rest
    why: str


PUBLIC_ROUTES: tuple[PublicRoute, ...] = (
    PublicRoute("GET", "/health", "liveness probe for load balancers and process managers"),
    PublicRoute("GET", "/", "the console's page; every data call it makes sends the token"),
    PublicRoute("GET", "/console/config", "whether the server wants a token, so the console knows to ask (no data)"),
    PublicRoute("GET", "/console/{path:path}", "the console's static files (no data)"),
    PublicRoute("GET", "/openapi.json", "the API's schema (no data)"),
    PublicRoute("GET", "/docs", "the API's interactive documentation (no data)"),
    PublicRoute("GET", "/docs/oauth2-redirect", "part of the documentation page"),
    PublicRoute("GET", "/redoc", "the API's documentation (no data)"),
    PublicRoute("POST", "/", "SageMaker control plane: authenticated in its route by SigV4, the token as secret key"),
    # Invocation dialects: SageMaker InvokeEndpoint, HF toolkit, TGI and OpenAI clients need no bearer token; they stay
    # open until endpoints get visibility (public, protected, private) with scoped tokens.
    PublicRoute("POST", "/endpoints/{name}", "invocation, Hugging Face toolkit shape"),
    PublicRoute("POST", "/endpoints/{name}/invocations", "invocation, SageMaker InvokeEndpoint shape"),
    PublicRoute("POST", "/endpoints/{name}/invocations-response-stream", "invocation, SageMaker response stream"),
    PublicRoute("POST", "/endpoints/{name}/generate", "invocation, text-generation-inference's /generate"),
    PublicRoute("POST", "/endpoints/{name}/generate_stream", "invocation, text-generation-inference's stream"),
    PublicRoute("POST", "/endpoints/{name}/v1/chat/completions", "invocation, OpenAI's chat completions"),
    PublicRoute("POST", "/endpoints/{name}/v1/completions", "invocation, OpenAI's completions"),
    PublicRoute("POST", "/endpoints/{name}/v1/embeddings", "invocation, OpenAI's embeddings"),
    PublicRoute("GET", "/endpoints/{name}/v1/models", "the endpoint as OpenAI's model list, beside its routes"),
    PublicRoute("GET", "/endpoints/{name}/v1/models/{model:path}", "the endpoint as OpenAI's model, as above"),
    PublicRoute("POST", "/endpoints/{name}/async-invocations", "async invocation (SageMaker InvokeEndpointAsync)"),
    PublicRoute("GET", "/endpoints/{name}/async-invocations", "async inferences of an endpoint, like the route above"),
    PublicRoute("GET", "/endpoints/{name}/async-invocations/{id}", "one async inference, like the routes above"),
    PublicRoute("GET", "/endpoints/{name}/health", "what huggingface_hub's InferenceEndpoint.wait() polls"),
)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join(
        (".*" if part.endswith(":path}") else "[^/]+") if part.startswith("{") else re.escape(part) for part in parts
    )
    return re.compile(f"^{regex}$")


_PUBLIC = [(route.method, _pattern(route.path)) for route in PUBLIC_ROUTES]


def is_public(method: str, path: str) -> bool:
    method = "GET" if method == "HEAD" else method
    return any(method == allowed and pattern.match(path) for allowed, pattern in _PUBLIC)


class Authentication:
    """ASGI middleware: a bearer token on every route but the public ones.

    ``routes``: the app's routes; a path that is no route at all is passed on to get its 404.
    """

    def __init__(self, app: ASGIApp, token: str, routes: Sequence[BaseRoute] = ()) -> None:
        self._app = app
        self._expected = token.encode()
        self._routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["method"], scope["path"]) or self._valid(scope):
            await self._app(scope, receive, send)
            return
        if not any(route.matches(scope)[0] is not Match.NONE for route in self._routes):
            await self._app(scope, receive, send)  # not a route: the router answers 404
            return
        error = Unauthorized(
            "Missing or invalid bearer token: send 'Authorization: Bearer <token>' (CLI: --token or HUBSERVE_TOKEN)."
        )
        response = error_response(error, hf=scope["path"].startswith("/v2/"))
        await response(scope, receive, send)

    def _valid(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and secrets.compare_digest(given.strip(), self._expected)
        return False
