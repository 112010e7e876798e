"""The token API: create (the token shown once), list, describe and revoke scoped tokens.

Admin-only: the authentication layer lets only an admin-scoped token reach ``/v1/tokens``. No answer
ever carries a token except the ``201`` of its creation; lists and describes hold records only.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pydantic
from fastapi import APIRouter, Request

from hubserve.api import deps
from hubserve.errors import NotFound, ValidationError
from hubserve.spec import NAME_PATTERN
from hubserve.store.tokens import SCOPES, Scope, TokenRecord, TokenStore

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


class TokenCreate(pydantic.BaseModel):
    """What a new token may do."""

    model_config = pydantic.ConfigDict(extra="forbid")

    name: str = pydantic.Field(description="A label for people (1..200 characters): who or what uses the token.")
    scopes: list[Scope] = pydantic.Field(
        description="admin (everything, tokens included), deploy (create/update/delete/pause endpoints, jobs), "
        "invoke (invocation routes), read (list/describe/metrics/logs)."
    )
    endpoints: list[str] | None = pydantic.Field(
        default=None,
        description="Limit the token to these endpoint names (DNS-safe; they need not exist yet). Omit for all.",
    )


class TokenInfo(pydantic.BaseModel):
    """A token as stored: what it may do and when it was used, never its secret."""

    id: str = pydantic.Field(
        description="Public id; names the token in lists, the audit log and as SigV4 access key id."
    )
    name: str
    scopes: list[Scope]
    endpoints: list[str] | None = pydantic.Field(description="The endpoints it is limited to; null for all.")
    created_at: dt.datetime
    created_by: str | None = pydantic.Field(description="Id of the token that created it ('bootstrap', 'local').")
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class TokenCreated(TokenInfo):
    """The new token's record and the token itself, shown this once."""

    token: str = pydantic.Field(description="The bearer token. It is not stored and will not be shown again.")


class TokenList(pydantic.BaseModel):
    items: list[TokenInfo]


def info(record: TokenRecord) -> TokenInfo:
    return TokenInfo(
        id=record.id, name=record.name, scopes=list(record.scopes),
        endpoints=None if record.endpoints is None else list(record.endpoints),
        created_at=record.created_at, created_by=record.created_by,
        last_used_at=record.last_used_at, revoked_at=record.revoked_at,
    )  # fmt: skip


def _store(request: Request) -> TokenStore:
    return deps.services(request).tokens


def _principal_id(request: Request) -> str:
    principal = request.scope.get("state", {}).get("principal")
    return str(getattr(principal, "token_id", None) or "local")


def parse_create(body: Any) -> TokenCreate:
    """The body as a TokenCreate, or a 400 that says what is wrong (naming the allowed scopes)."""
    if not isinstance(body, dict):
        raise ValidationError('Send a JSON object: {"name": ..., "scopes": [...], "endpoints": [...]?}.')
    scopes = body.get("scopes")
    if isinstance(scopes, list):
        unknown = [scope for scope in scopes if scope not in SCOPES]
        if unknown:
            raise _invalid(
                "scopes", f"unknown scope(s) {', '.join(map(repr, map(str, unknown)))}; allowed: {', '.join(SCOPES)}"
            )
    try:
        create = TokenCreate.model_validate(body)
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error.get("loc", ())) or "(body)"
        raise _invalid(field, str(error.get("msg", "invalid value"))) from None
    if not create.name.strip() or len(create.name) > 200:
        raise _invalid("name", "a token needs a name of 1 to 200 characters")
    if not create.scopes:
        raise _invalid("scopes", f"give at least one scope of {', '.join(SCOPES)}")
    for name in create.endpoints or ():
        if not NAME_PATTERN.fullmatch(name):
            raise _invalid(
                "endpoints", f"{name!r} is not an endpoint name (DNS-safe: 1-63 lowercase letters, digits or '-')"
            )
    return create


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(
        f"The token request is invalid: {field}: {message}", details=[{"field": field, "message": message}]
    )


_CREATE_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": TokenCreate.model_json_schema(ref_template="#/components/schemas/{model}")}
        },
    }
}


@router.post(
    "", status_code=201, response_model=TokenCreated, summary="Create a token (shown once)", openapi_extra=_CREATE_DOC
)
async def create_token(request: Request) -> TokenCreated:
    """Create a scoped token; the answer's ``token`` is the only time it is shown."""
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        raise ValidationError("The request body is not valid JSON; send a JSON object.") from None
    create = parse_create(body)
    record, token = _store(request).create(
        create.name, create.scopes, create.endpoints, created_by=_principal_id(request)
    )
    return TokenCreated(**info(record).model_dump(), token=token)


@router.get("", response_model=TokenList, summary="List tokens (records only, never secrets)")
async def list_tokens(request: Request, include_revoked: bool = False) -> TokenList:
    return TokenList(items=[info(record) for record in _store(request).list(include_revoked=include_revoked)])


@router.get("/{token_id}", response_model=TokenInfo, summary="Describe a token")
async def get_token(request: Request, token_id: str) -> TokenInfo:
    return info(_known(_store(request), token_id))


@router.delete("/{token_id}", response_model=TokenInfo, summary="Revoke a token: it stops working at once")
async def revoke_token(request: Request, token_id: str) -> TokenInfo:
    """Revoke a token (idempotent); every request that sends it is refused from now on."""
    store = _store(request)
    _known(store, token_id)
    return info(store.revoke(token_id))


def _known(store: TokenStore, token_id: str) -> TokenRecord:
    record = store.get(token_id)
    if record is None:
        raise NotFound(f"No token with id '{token_id}'. List them with GET /v1/tokens.")
    return record
