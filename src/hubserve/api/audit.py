"""The audit log: the middleware that records every change, and ``GET /v1/audit`` that reads it.

``AuditLog`` sits inside the authentication layer, so it sees the principal the layer found. It
records mutations only (POST, PUT, PATCH, DELETE), never reads and never invocations: a request
passes through untouched after one method check and, for POST, one path-prefix check, so the
invocation hot path pays nothing. A recorded row holds who (token id and name), when, from where,
what (method, path, operation, target), the request id and the status code; never a body or a
token. The row is written once the response's status and first body part are known and before
they are sent on, so a client that sees the answer can already read its entry.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid

import pydantic
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubserve.api import deps
from hubserve.errors import StoreUnavailable, ValidationError
from hubserve.store.audit import AuditEntry, AuditStore

log = logging.getLogger("hubserve.audit")
router = APIRouter(prefix="/v1/audit", tags=["audit"])

_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_INVOCATIONS = "/endpoints/"  # POST under it: invocations (sync, streaming, async), not changes
_SAGEMAKER_READS = ("Describe", "List", "Get", "Search")
_PEEK_BYTES = 64 * 1024  # how much of a JSON body is looked at for a target name (never stored)
MAX_LIMIT = 10_000  # entries one GET /v1/audit returns at most
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,200}$")

# (method, path pattern, action); the pattern's ``target`` group names what changed
_ACTIONS: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), action)
    for method, pattern, action in (
        ("POST", r"^/v1/endpoints$", "endpoint.create"),
        ("PUT", r"^/v1/endpoints/(?P<target>[^/]+)$", "endpoint.update"),
        ("PATCH", r"^/v1/endpoints/(?P<target>[^/]+)$", "endpoint.patch"),
        ("DELETE", r"^/v1/endpoints/(?P<target>[^/]+)$", "endpoint.delete"),
        ("POST", r"^/v1/endpoints/(?P<target>[^/]+)/pause$", "endpoint.pause"),
        ("POST", r"^/v1/endpoints/(?P<target>[^/]+)/resume$", "endpoint.resume"),
        ("POST", r"^/v1/endpoints/(?P<target>[^/]+)/scale-to-zero$", "endpoint.scale_to_zero"),
        ("POST", r"^/v1/batch-jobs$", "batch_job.create"),
        ("POST", r"^/v1/batch-jobs/(?P<target>[^/]+)/stop$", "batch_job.stop"),
        ("POST", r"^/v1/batch-jobs/(?P<target>[^/]+)/start$", "batch_job.start"),
        ("POST", r"^/v1/tokens$", "token.create"),
        ("DELETE", r"^/v1/tokens/(?P<target>[^/]+)$", "token.revoke"),
        ("POST", r"^/v2/endpoint/[^/]+$", "hf.create_endpoint"),
        ("PUT", r"^/v2/endpoint/[^/]+/(?P<target>[^/]+)$", "hf.update_endpoint"),
        ("DELETE", r"^/v2/endpoint/[^/]+/(?P<target>[^/]+)$", "hf.delete_endpoint"),
        ("POST", r"^/v2/endpoint/[^/]+/(?P<target>[^/]+)/(?P<verb>[a-z-]+)$", "hf.{verb}_endpoint"),
    )
)
# where a request body names its target when the path does not (first found wins)
_BODY_TARGETS = ("name", "EndpointName", "EndpointConfigName", "ModelName", "TransformJobName", "endpoint")
# where a creation's answer names what it made (a batch job's or a token's id)
_ANSWER_TARGETS = ("id", "name", "EndpointArn")
_NAMED_BY_ANSWER = frozenset({"token.create", "batch_job.create"})  # the body's "name" is a label, not the target


def classify(method: str, path: str, headers: dict[str, str]) -> tuple[str, str | None] | None:
    """(action, target from the path) for a change to record, or None for a request that is no change."""
    if path == "/" and method == "POST":
        operation = headers.get("x-amz-target", "").rpartition(".")[2] or "(no X-Amz-Target)"
        if operation.startswith(_SAGEMAKER_READS):
            return None
        return f"sagemaker.{operation}", None
    for allowed, pattern, action in _ACTIONS:
        if method == allowed and (match := pattern.match(path)):
            groups = match.groupdict()
            return action.format(verb=groups.get("verb", "")).replace("-", "_"), groups.get("target")
    return f"{method} {path}", None  # a change this table does not name yet: recorded all the same


class AuditLog:
    """ASGI middleware: one audit row per change, written before the answer leaves."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method")
        if (
            scope["type"] != "http"
            or method not in _CHANGES
            or (method == "POST" and scope["path"].startswith(_INVOCATIONS))
        ):
            await self._app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        kind = classify(method, scope["path"], headers)
        if kind is None:
            await self._app(scope, receive, send)
            return
        await _Recording(scope, headers, *kind).run(self._app, receive, send)


class _Recording:
    """One change on its way through: peeks at the bodies for a target, then writes the row."""

    def __init__(self, scope: Scope, headers: dict[str, str], action: str, target: str | None) -> None:
        self.scope = scope
        self.action = action
        self.target = target
        given = headers.get("x-request-id", "")
        self.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        self.peek = target is None and action not in _NAMED_BY_ANSWER and "json" in headers.get("content-type", "json")
        self.body = bytearray()
        self.start: Message | None = None
        self.recorded = False
        self.store_unavailable = False  # answered 503 StoreUnavailable: nothing changed and no row could be written

    async def run(self, app: ASGIApp, receive: Receive, send: Send) -> None:
        async def receive_peeking() -> Message:
            message = await receive()
            if self.peek and message["type"] == "http.request" and len(self.body) < _PEEK_BYTES:
                self.body += message.get("body", b"")[: _PEEK_BYTES - len(self.body)]
            return message

        async def send_recorded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                self.start = {**message, "headers": [*headers, (b"x-request-id", self.request_id.encode())]}
                self.store_unavailable = (b"x-amzn-errortype", b"StoreUnavailable") in headers
                return
            if message["type"] == "http.response.body" and self.start is not None:
                start, self.start = self.start, None
                await self._record(int(start["status"]), message.get("body", b""))
                await send(start)
            await send(message)

        try:
            await app(self.scope, receive_peeking, send_recorded)
        except Exception:
            if not self.recorded:  # answered 500 by the outermost layer
                await self._record(500, b"")
            raise
        if not self.recorded and self.start is not None:  # the app ended after the status alone
            await self._record(int(self.start["status"]), b"")
            await send(self.start)

    async def _record(self, status: int, answer: bytes) -> None:
        self.recorded = True
        store: AuditStore | None = getattr(getattr(self.scope["app"].state, "services", None), "audit", None)
        if store is None:
            return
        target = self.target or _name_in(bytes(self.body), _BODY_TARGETS)
        if target is None and 200 <= status < 300:
            target = _name_in(answer[:_PEEK_BYTES], _ANSWER_TARGETS)
        principal = self.scope.get("state", {}).get("principal")
        client = self.scope.get("client")
        entry = AuditEntry(
            at=dt.datetime.now(dt.timezone.utc),
            token_id=str(getattr(principal, "token_id", None) or "local"),
            token_name=getattr(principal, "name", None),
            method=self.scope["method"],
            path=self.scope["path"],
            action=self.action[:100],
            target=None if target is None else target[:300],
            source=client[0] if client else None,
            request_id=self.request_id,
            status=status,
        )
        if self.store_unavailable:  # writing would only wait for the store that just failed this request
            log.warning("audit entry not recorded, the state store is unavailable: %s", entry)
            return
        try:
            await run_in_threadpool(store.record, entry)
        except StoreUnavailable as exc:  # the answer still goes out; the log keeps what the row would have
            log.warning("audit entry not recorded (%s): %s", exc.message, entry)


def _name_in(body: bytes, keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` that a JSON object body holds as a string, else None (the body is not kept)."""
    if not body:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return None


class AuditEntryInfo(pydantic.BaseModel):
    """One recorded change."""

    id: int
    at: dt.datetime = pydantic.Field(description="When it was answered (UTC).")
    token_id: str = pydantic.Field(description="The token's id, 'bootstrap' (serve's --token) or 'local' (no token).")
    token_name: str | None
    method: str
    path: str
    action: str | None = pydantic.Field(description="The operation, e.g. endpoint.create or sagemaker.CreateEndpoint.")
    target: str | None = pydantic.Field(description="What changed: an endpoint name, a job id, a token id.")
    source: str | None = pydantic.Field(description="The client's address.")
    request_id: str = pydantic.Field(description="The x-request-id sent, or the one generated and returned.")
    status: int = pydantic.Field(description="The status code answered.")


class AuditList(pydantic.BaseModel):
    items: list[AuditEntryInfo]


@router.get("", response_model=AuditList, summary="The audit log of changes, newest first")
async def list_audit(
    request: Request,
    limit: int = Query(100, description=f"At most this many entries (1..{MAX_LIMIT})."),
    since: str | None = Query(None, description="Only entries at or after this ISO 8601 time (UTC if no offset)."),
    endpoint: str | None = Query(None, description="Only entries about this endpoint (or job id, token id)."),
) -> AuditList:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit: {limit} is out of range; give 1 to {MAX_LIMIT}.")
    store = deps.services(request).audit
    entries = await run_in_threadpool(store.list, limit, parse_since(since), endpoint)
    return AuditList(items=[AuditEntryInfo.model_validate(entry.to_dict()) for entry in entries])


def parse_since(since: str | None) -> dt.datetime | None:
    """An ISO 8601 time as aware UTC (naive means UTC), or a 400 naming the expected form."""
    if since is None:
        return None
    try:
        when = dt.datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"since: {since!r} is not an ISO 8601 time such as 2026-01-31T12:00:00Z.") from None
    return when.replace(tzinfo=dt.timezone.utc) if when.tzinfo is None else when.astimezone(dt.timezone.utc)
