"""Authentication: one layer in front of every route, with the scope each route needs listed here.

``ROUTES`` maps every method and path of the app to what it needs: ``public`` (health, the
console's static files, the API's schema), ``read``, ``deploy``, ``admin``, ``invoke`` (the
invocation routes of every dialect, which also follow the endpoint's visibility) or ``sagemaker``
(the control plane ``POST /``: Describe/List read, everything else deploy, by ``X-Amz-Target``).
A test fails when the app gains a route this table does not name.

Credentials: ``Authorization: Bearer <token>`` (the SDK, huggingface_hub, the ``openai`` client) on
every route; SigV4 (boto3, the AWS CLI) on the SageMaker routes, with the token id as access key id
and its secret as secret key. The server's ``--token`` is the bootstrap admin token. Without any
token configured nothing is checked and every request acts as the ``local`` admin.

Refusals: 401 for a missing, malformed, unknown, wrong or revoked credential, 403 for a valid one
without the scope or the endpoint, each in the route's own dialect. Nothing of a request's body is
read before its credential is known, except for SigV4, whose signature covers the body: the header,
key id and date are checked first. The token never appears in an answer or a log.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import secrets
import time
from collections.abc import Sequence
from typing import Literal

from fastapi.routing import iter_route_contexts
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubserve.api.errors import error_response
from hubserve.api.generation.openai import error_json as openai_error_json
from hubserve.api.principal import ANONYMOUS, BOOTSTRAP_ID, LOCAL_ID, Principal
from hubserve.api.sagemaker import sigv4
from hubserve.api.sagemaker.errors import SageMakerApiError, error_json
from hubserve.control.controller import Controller
from hubserve.errors import Forbidden, HubserveError, PayloadTooLarge, Unauthorized
from hubserve.services import Services
from hubserve.settings import Settings
from hubserve.store.tokens import TokenRecord, TokenStore

Need = Literal["public", "read", "deploy", "admin", "invoke", "sagemaker"]
Dialect = Literal["hubserve", "hf", "sagemaker", "openai"]


@dataclasses.dataclass(frozen=True)
class Rule:
    method: str
    path: str  # the route's template: {name} matches one segment, {path:path} the rest
    need: Need
    dialect: Dialect = "hubserve"
    why: str = ""
    open_when_public: bool = True  # invoke rules: whether a 'public' endpoint opens it to anyone


_E = "/endpoints/{name}"
ROUTES: tuple[Rule, ...] = (
    # public: no data
    Rule("GET", "/health", "public", why="liveness probe for load balancers and process managers"),
    Rule("GET", "/", "public", why="the console's page; every data call it makes sends the token"),
    Rule("GET", "/console/config", "public", why="whether the server wants a token, so the console asks (no data)"),
    Rule("GET", "/console/{path:path}", "public", why="the console's static files (no data)"),
    Rule("GET", "/openapi.json", "public", why="the API's schema (no data)"),
    Rule("GET", "/docs", "public", why="the API's interactive documentation (no data)"),
    Rule("GET", "/docs/oauth2-redirect", "public", why="part of the documentation page"),
    Rule("GET", "/redoc", "public", why="the API's documentation (no data)"),
    # management: read
    Rule("GET", "/v1/endpoints", "read"),
    Rule("GET", "/v1/endpoints/{name}", "read"),
    Rule("GET", "/v1/endpoints/{name}/metrics", "read"),
    Rule("GET", "/v1/endpoints/{name}/models", "read", why="a multi-model endpoint's models"),
    Rule("GET", "/v1/endpoints/{name}/logs", "read"),
    Rule("GET", "/v1/endpoints/{name}/cost", "read"),
    Rule("GET", "/metrics", "read"),
    Rule("GET", "/v1/batch-jobs", "read"),
    Rule("GET", "/v1/batch-jobs/{job_id}", "read"),
    Rule("GET", "/v1/console/options", "read"),
    Rule("GET", "/v1/console/infer-task", "read"),
    Rule("GET", "/v2/endpoint/{namespace}", "read", "hf"),
    Rule("GET", "/v2/endpoint/{namespace}/{name}", "read", "hf"),
    # management: deploy
    Rule("POST", "/v1/endpoints", "deploy"),
    Rule("PUT", "/v1/endpoints/{name}", "deploy"),
    Rule("PATCH", "/v1/endpoints/{name}", "deploy"),
    Rule("DELETE", "/v1/endpoints/{name}", "deploy"),
    Rule("POST", "/v1/endpoints/{name}/pause", "deploy"),
    Rule("POST", "/v1/endpoints/{name}/scale-to-zero", "deploy"),
    Rule("POST", "/v1/endpoints/{name}/resume", "deploy"),
    # the model registry: reads are read; registering, deleting and approval (which rolls endpoints that
    # follow latest-approved, so it deploys) are deploy
    Rule("GET", "/v1/models", "read"),
    Rule("GET", "/v1/models/{group}/versions", "read"),
    Rule("GET", "/v1/models/{group}/versions/{number}", "read"),
    Rule("POST", "/v1/models/{group}/versions", "deploy"),
    Rule("POST", "/v1/models/{group}/versions/{number}/approve", "deploy", why="approval rolls latest-approved endpoints"),
    Rule("POST", "/v1/models/{group}/versions/{number}/reject", "deploy"),
    Rule("PATCH", "/v1/models/{group}/versions/{number}", "deploy", why="changes the approval status"),
    Rule("DELETE", "/v1/models/{group}/versions/{number}", "deploy"),
    Rule("POST", "/v1/batch-jobs", "deploy"),
    Rule("POST", "/v1/batch-jobs/{job_id}/stop", "deploy"),
    Rule("POST", "/v1/batch-jobs/{job_id}/start", "deploy"),
    Rule("POST", "/v2/endpoint/{namespace}", "deploy", "hf"),
    Rule("PUT", "/v2/endpoint/{namespace}/{name}", "deploy", "hf"),
    Rule("DELETE", "/v2/endpoint/{namespace}/{name}", "deploy", "hf"),
    Rule("POST", "/v2/endpoint/{namespace}/{name}/pause", "deploy", "hf"),
    Rule("POST", "/v2/endpoint/{namespace}/{name}/resume", "deploy", "hf"),
    Rule("POST", "/v2/endpoint/{namespace}/{name}/scale-to-zero", "deploy", "hf"),
    Rule("POST", "/", "sagemaker", "sagemaker", why="control plane: Describe*/List* read, the rest deploy"),
    # admin
    Rule("POST", "/v1/tokens", "admin"),
    Rule("GET", "/v1/tokens", "admin"),
    Rule("GET", "/v1/tokens/{token_id}", "admin"),
    Rule("DELETE", "/v1/tokens/{token_id}", "admin"),
    Rule("GET", "/v1/audit", "admin"),
    # invocation: invoke, and the endpoint's visibility
    Rule("POST", _E, "invoke", "hf", why="Hugging Face toolkit shape"),
    Rule("POST", f"{_E}/models/{{model}}", "invoke", "hf", why="one model of a multi-model endpoint"),
    Rule("POST", f"{_E}/invocations", "invoke", "sagemaker", why="SageMaker InvokeEndpoint"),
    Rule("POST", f"{_E}/invocations-response-stream", "invoke", "sagemaker", why="SageMaker response stream"),
    Rule("POST", f"{_E}/async-invocations", "invoke", "sagemaker", why="SageMaker InvokeEndpointAsync"),
    Rule("GET", f"{_E}/async-invocations", "invoke", why="the endpoint's async inferences: a token even when public",
         open_when_public=False),
    Rule("GET", f"{_E}/async-invocations/{{inference_id}}", "invoke", why="one async inference, as above"),
    Rule("POST", f"{_E}/generate", "invoke", "hf", why="text-generation-inference's /generate"),
    Rule("POST", f"{_E}/generate_stream", "invoke", "hf", why="text-generation-inference's stream"),
    Rule("POST", f"{_E}/v1/chat/completions", "invoke", "openai"),
    Rule("POST", f"{_E}/v1/completions", "invoke", "openai"),
    Rule("POST", f"{_E}/v1/embeddings", "invoke", "openai"),
    Rule("GET", f"{_E}/v1/models", "invoke", "openai"),
    Rule("GET", f"{_E}/v1/models/{{model:path}}", "invoke", "openai"),
    Rule("GET", f"{_E}/health", "invoke", "hf", why="what huggingface_hub's InferenceEndpoint.wait() polls"),
)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join(
        (".*" if part.endswith(":path}") else "[^/]+") if part.startswith("{") else re.escape(part) for part in parts
    )
    return re.compile(f"^{regex}$")


_NAME = re.compile(r"^/endpoints/([^/]+)")
# Rules by method and first path segment, so a request is matched against a handful of patterns, not all.
_BY_HEAD: dict[tuple[str, str], list[tuple[Rule, re.Pattern[str]]]] = {}
for _rule in ROUTES:
    _BY_HEAD.setdefault((_rule.method, _rule.path.split("/", 2)[1]), []).append((_rule, _pattern(_rule.path)))
_SAGEMAKER_READS = ("SageMaker.Describe", "SageMaker.List")
_STORED_S = 1.0  # how long the visibility of an endpoint held by another server is reused
_STORED_MAX = 10_000


def rule_for(method: str, path: str) -> Rule | None:
    """The rule of a request, or None for a method and path no rule names."""
    method = "GET" if method == "HEAD" else method
    for rule, pattern in _BY_HEAD.get((method, path.split("/", 2)[1]), ()):
        if pattern.match(path):
            return rule
    return None


def is_public(method: str, path: str) -> bool:
    rule = rule_for(method, path)
    return rule is not None and rule.need == "public"


def route_templates(routes: Sequence[BaseRoute]) -> list[tuple[str, str]]:
    """(method, path template) of every route of an app, included routers flattened (for the coverage test)."""
    found = []
    for context in iter_route_contexts(list(routes)):
        methods = getattr(context.original_route, "methods", None) or ()
        for method in sorted(set(methods) - {"HEAD"}):
            found.append((method, str(context.path)))
    return found


# Built once: the principals that are not stored tokens (frozen, shared by every request).
_LOCAL = Principal.admin(LOCAL_ID, "local (no token configured)")
_BOOTSTRAP = Principal.admin(BOOTSTRAP_ID, "bootstrap (--token)")


class Refusal(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _unauthorized(message: str, code: str = "UnrecognizedClientException") -> Refusal:
    return Refusal(401, message, code)


_NO_TOKEN = (
    "Missing or invalid bearer token: send 'Authorization: Bearer <token>' (CLI: --token or HUBSERVE_TOKEN; "
    "SigV4: the token's id as access key id, its secret as secret key)."
)


class Authentication:
    """ASGI middleware: finds the request's principal, checks it against ``ROUTES``, stores it in the scope.

    ``routes``: the app's routes; a path that is no route at all is passed on to get its 404.
    """

    def __init__(self, app: ASGIApp, settings: Settings, routes: Sequence[BaseRoute] = ()) -> None:
        self._app = app
        self._settings = settings
        self._bootstrap = settings.token.encode() if settings.token else None
        self._routes = routes
        self._networks = [ipaddress.ip_network(cidr, strict=False) for cidr in settings.private_networks]
        self._principals: dict[str, tuple[TokenRecord, Principal]] = {}  # token id -> its record's principal
        self._stored: dict[str, tuple[float, str]] = {}  # endpoint held elsewhere -> (until, its visibility)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if self._bootstrap is None:
            state["principal"] = _LOCAL
            await self._app(scope, receive, send)
            return
        rule = rule_for(scope["method"], scope["path"])
        try:
            receive = await self._admit(rule, scope, receive)
        except Refusal as refusal:
            await _refuse(refusal, rule, scope, receive, send)
            return
        await self._app(scope, receive, send)

    async def _admit(self, rule: Rule | None, scope: Scope, receive: Receive) -> Receive:
        """Store the principal and return the receive to pass on (a replay when SigV4 read the body); or raise."""
        state = scope["state"]
        if rule is not None and rule.need == "public":
            state["principal"] = ANONYMOUS
            return receive
        headers = Headers(scope=scope)
        authorization = headers.get("authorization")
        endpoint = _endpoint_of(scope["path"]) if rule is not None and rule.need == "invoke" else None
        access = self._access(scope, endpoint) if endpoint is not None else None
        if access == "public" and rule is not None and rule.open_when_public:
            principal = self._bearer(scope, authorization) if authorization else None
            state["principal"] = principal or ANONYMOUS
            return receive
        if rule is None and not any(route.matches(scope)[0] is not Match.NONE for route in self._routes):
            state["principal"] = ANONYMOUS
            return receive  # no route at all: the router answers 404
        if not authorization:
            raise _unauthorized(_NO_TOKEN, "MissingAuthenticationTokenException")
        if sigv4.is_sigv4(authorization) and rule is not None and rule.dialect == "sagemaker":
            principal, receive = await self._sigv4(scope, headers, receive)
        else:
            found = self._bearer(scope, authorization)
            if found is None:
                raise _unauthorized(_NO_TOKEN)
            principal = found
        state["principal"] = principal
        need = self._need(rule, headers)
        if not principal.allows(need, endpoint):
            where = f" on endpoint '{endpoint}'" if need == "invoke" and endpoint else ""
            raise Refusal(403, f"Token '{principal.token_id}' lacks the '{need}' scope{where}.", "AccessDeniedException")
        if access == "private" and not self._from_private_network(scope):
            raise Refusal(
                403,
                f"Endpoint '{endpoint}' is private: it answers only loopback and the server's private networks.",
                "AccessDeniedException",
            )
        return receive

    @staticmethod
    def _need(rule: Rule | None, headers: Headers) -> str:
        if rule is None:
            return "read"  # a route that exists for another method: authenticated, then its 405
        if rule.need == "sagemaker":
            return "read" if headers.get("x-amz-target", "").startswith(_SAGEMAKER_READS) else "deploy"
        return rule.need

    def _bearer(self, scope: Scope, authorization: str) -> Principal | None:
        scheme, _, given = authorization.partition(" ")
        token = given.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        assert self._bootstrap is not None
        if secrets.compare_digest(token.encode(), self._bootstrap):
            return _BOOTSTRAP
        record = _tokens(scope).verify(token)
        if record is None:
            return None
        known = self._principals.get(record.id)
        if known is None or known[0] is not record:  # the store's cache hands out the same record while it holds
            known = self._principals[record.id] = (record, Principal.of(record))
        return known[1]

    async def _sigv4(self, scope: Scope, headers: Headers, receive: Receive) -> tuple[Principal, Receive]:
        credential = sigv4.parse(headers.get("authorization"))
        if credential is None:
            raise _unauthorized("The Authorization header is not a well-formed SigV4 signature.", "IncompleteSignatureException")
        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            sigv4.check_scope(credential, lowered)
        except SageMakerApiError as error:
            raise _unauthorized(error.message, error.code) from None
        record = _tokens(scope).get(credential.key)
        if record is not None:
            secret = _tokens(scope).secret_of(credential.key)
            if secret is None:
                raise _unauthorized(f"The security token of access key id '{credential.key}' is revoked.")
            principal = Principal.of(record)
        else:
            assert self._settings.token is not None
            secret, principal = self._settings.token, _BOOTSTRAP
        body = await _read_body(receive, max(self._settings.max_payload_bytes, 6 * 1024 * 1024))
        url = f"{scope.get('scheme', 'http')}://{lowered.get('host', '')}{scope['path']}"
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            url += f"?{query}"
        try:
            sigv4.verify(secret, scope["method"], url, lowered, body)
        except SageMakerApiError as error:
            raise _unauthorized(error.message, error.code) from None
        return principal, _replay(body, receive)

    def _access(self, scope: Scope, endpoint: str) -> str:
        """The endpoint's visibility from the controller's live state (a dict look-up; no store query).

        An endpoint another server holds (a shared store) has no live state here: its stored spec
        decides, so this server admits exactly the callers the holder will when it forwards them.
        """
        controller = _services(scope).controller
        live = controller.live(endpoint)
        if live is None and controller.ownership.shared:
            return self._stored_access(controller, endpoint)
        spec = live.generation.spec if live is not None and live.generation is not None else None
        access = spec.access if spec is not None else None
        return "protected" if access in (None, "authenticated") else str(access)

    def _stored_access(self, controller: Controller, endpoint: str) -> str:
        """The visibility of an endpoint another server holds, from its stored spec, read at most once a second.

        A store read per forwarded request cost more than the forwarding itself (PostgreSQL, c=1).
        An unknown endpoint is read each time (and 'protected': its route answers 404 to the authenticated).
        """
        now = time.monotonic()
        known = self._stored.get(endpoint)
        if known is not None and known[0] > now:
            return known[1]
        spec = controller.stored_spec(endpoint)
        if spec is None:
            return "protected"
        access = "protected" if spec.access in (None, "authenticated") else str(spec.access)
        if len(self._stored) >= _STORED_MAX:
            self._stored.clear()
        self._stored[endpoint] = (now + _STORED_S, access)
        return access

    def _from_private_network(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return address.is_loopback or any(address in network for network in self._networks)


def _services(scope: Scope) -> Services:
    services: Services = scope["app"].state.services
    return services


def _tokens(scope: Scope) -> TokenStore:
    return _services(scope).tokens


def _endpoint_of(path: str) -> str | None:
    match = _NAME.match(path)
    return match[1] if match else None


async def _read_body(receive: Receive, limit: int) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refusal(400, "The client closed the connection before sending the whole body.", "ValidationException")
        body += message.get("body", b"")
        if len(body) > limit:
            raise Refusal(413, f"The body is larger than {limit} bytes.", "ValidationException")
        if not message.get("more_body", False):
            return bytes(body)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(refusal: Refusal, rule: Rule | None, scope: Scope, receive: Receive, send: Send) -> None:
    dialect = rule.dialect if rule is not None else ("hf" if scope["path"].startswith("/v2/") else "hubserve")
    error: HubserveError
    if refusal.status == 401:
        error = Unauthorized(refusal.message)
    elif refusal.status == 413:
        error = PayloadTooLarge(refusal.message)
    elif refusal.status == 403:
        error = Forbidden(refusal.message)
    else:
        error = HubserveError(refusal.message)
        error.status = refusal.status
    response: Response
    if dialect == "sagemaker":
        code = refusal.code if refusal.status != 403 else "AccessDeniedException"
        response = error_json(SageMakerApiError(code, refusal.message, refusal.status))
    elif dialect == "openai":
        body = openai_error_json(error)
        if refusal.status == 403:
            body["error"]["type"] = "permission_error"
        response = JSONResponse(body, status_code=error.status, headers={"x-amzn-ErrorType": error.type})
    else:
        response = error_response(error, hf=dialect == "hf")
    if refusal.status == 401:
        response.headers["www-authenticate"] = 'Bearer realm="hubserve"'
    await response(scope, receive, send)


