"""The tokens table: scoped API tokens, never stored in clear.

A token reads ``hs_<id>_<secret>``. The id is short and public (it names the token in lists, the
audit log and as the SigV4 access key id); the secret is derived, not stored:
``secret = base64url(HMAC-SHA256(server key, id + salt))`` with a random per-token salt kept in the
row and the server key in ``<home>/token.key`` (0600). Verification recomputes the secret and
compares with ``hmac.compare_digest``.

Why HMAC and not a password hash (bcrypt, scrypt, argon2): SigV4 (boto3, the AWS CLI) signs each
request with the secret itself, so the server must be able to recompute it to check a signature;
a one-way password hash would make SigV4 impossible. A stolen ``state.db`` without ``token.key``
yields no secret; the secrets carry 256 bits, so there is nothing to guess offline either.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import sqlalchemy as sa

from hubserve.errors import NotFound, StoreUnavailable, ValidationError
from hubserve.store.schema import upgrade

Scope = Literal["admin", "deploy", "invoke", "read"]
SCOPES: tuple[Scope, ...] = get_args(Scope)

PREFIX = "hs_"
_ID_BYTES = 6  # 12 hex characters
_CACHE_SECONDS = 2.0  # a revoked token stops working within this long on every process
_LAST_USED_EVERY = 60.0  # write last_used_at at most this often per token (verification is on every request)

_metadata = sa.MetaData()

tokens_table = sa.Table(
    "tokens",
    _metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("salt", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("scopes", sa.Text, nullable=False),  # JSON list
    sa.Column("endpoints", sa.Text, nullable=True),  # JSON list, or NULL for all
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(32), nullable=True),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)


@dataclasses.dataclass(frozen=True)
class TokenRecord:
    """One token as stored: what it may do, never its secret."""

    id: str
    name: str
    scopes: tuple[Scope, ...]
    endpoints: tuple[str, ...] | None
    created_at: dt.datetime
    created_by: str | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite drops the timezone; everything stored is UTC.
    return value.replace(tzinfo=dt.timezone.utc) if value is not None and value.tzinfo is None else value


def split(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed ``hs_<id>_<secret>``, or None."""
    if not token.startswith(PREFIX):
        return None
    token_id, sep, secret = token[len(PREFIX) :].partition("_")
    if not sep or len(token_id) != 2 * _ID_BYTES or not secret or len(secret) > 100:
        return None
    if any(ch not in "0123456789abcdef" for ch in token_id):
        return None
    return token_id, secret


class TokenStore:
    """Create, list, revoke and verify tokens; verification is cached for a couple of seconds."""

    def __init__(self, engine: sa.Engine, key: bytes) -> None:
        """``engine``: the server's shared engine; ``key``: the server key from ``load_or_create_key``."""
        if len(key) < 32:
            raise ValueError("the token key must be at least 32 bytes")
        self._engine = engine
        self._key = key
        upgrade(self._engine)  # the schema is the migrations', not this module's metadata
        self._lock = threading.Lock()
        # token id -> (monotonic time cached, the token's secret, its record); None for an unknown id
        self._cache: dict[str, tuple[float, tuple[str, TokenRecord] | None]] = {}
        self._used: dict[str, float] = {}

    def _secret(self, token_id: str, salt: str) -> str:
        digest = hmac.new(self._key, (token_id + salt).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def create(
        self,
        name: str,
        scopes: Sequence[Scope],
        endpoints: Sequence[str] | None = None,
        created_by: str | None = None,
    ) -> tuple[TokenRecord, str]:
        """A new token: (its record, the full token), the token shown this once and never again."""
        unknown = [scope for scope in scopes if scope not in SCOPES]
        if unknown or not scopes:
            raise ValidationError(f"scopes must be a non-empty list of {', '.join(SCOPES)}; got {list(scopes)}")
        if not name or len(name) > 200:
            raise ValidationError("a token needs a name of 1 to 200 characters")
        ordered = tuple(scope for scope in SCOPES if scope in scopes)
        token_id = secrets.token_hex(_ID_BYTES)
        salt = secrets.token_hex(16)
        row: dict[str, Any] = {
            "id": token_id,
            "salt": salt,
            "name": name,
            "scopes": json.dumps(list(ordered)),
            "endpoints": None if endpoints is None else json.dumps(sorted(set(endpoints))),
            "created_at": _now(),
            "created_by": created_by,
            "last_used_at": None,
            "revoked_at": None,
        }
        with self._engine.begin() as conn:
            conn.execute(tokens_table.insert().values(**row))
        return _record(row), f"{PREFIX}{token_id}_{self._secret(token_id, salt)}"

    def list(self, include_revoked: bool = False) -> list[TokenRecord]:
        query = tokens_table.select().order_by(tokens_table.c.created_at)
        if not include_revoked:
            query = query.where(tokens_table.c.revoked_at.is_(None))
        with self._engine.connect() as conn:
            return [_record(dict(row)) for row in conn.execute(query).mappings()]

    def get(self, token_id: str) -> TokenRecord | None:
        """The token's record (revoked ones too); cached like ``verify``."""
        salt_and_record = self._cached(token_id)
        return None if salt_and_record is None else salt_and_record[1]

    def revoke(self, token_id: str) -> TokenRecord:
        """Revoke a token (idempotent); raises NotFound for an unknown id."""
        with self._engine.begin() as conn:
            conn.execute(
                tokens_table.update()
                .where(tokens_table.c.id == token_id, tokens_table.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
        with self._lock:
            self._cache.pop(token_id, None)
        loaded = self._load(token_id)
        if loaded is None:
            raise NotFound(f"No token with id '{token_id}'.")
        return loaded[1]

    def verify(self, token: str) -> TokenRecord | None:
        """The token's record if it is well-formed, known, its secret right and not revoked; else None."""
        parts = split(token)
        if parts is None:
            return None
        token_id, secret = parts
        loaded = self._cached(token_id)
        if loaded is None:
            return None
        expected, record = loaded
        if not hmac.compare_digest(expected.encode(), secret.encode()):
            return None
        if record.revoked_at is not None:
            return None
        self._touch(token_id)
        return record

    def secret_of(self, token_id: str) -> str | None:
        """The secret part of a live token (the SigV4 secret key for access key id ``token_id``)."""
        loaded = self._cached(token_id)
        if loaded is None or loaded[1].revoked_at is not None:
            return None
        return loaded[0]

    def _cached(self, token_id: str) -> tuple[str, TokenRecord] | None:
        """(the token's secret, its record), derived once per load rather than per request."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(token_id)
        if hit is not None and now - hit[0] < _CACHE_SECONDS:
            return hit[1]
        row = self._load(token_id)
        loaded = None if row is None else (self._secret(token_id, row[0]), row[1])
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()  # bounded: random unknown ids cannot grow it without limit
            self._cache[token_id] = (now, loaded)
        return loaded

    def _load(self, token_id: str) -> tuple[str, TokenRecord] | None:
        with self._engine.connect() as conn:
            row = conn.execute(tokens_table.select().where(tokens_table.c.id == token_id)).mappings().first()
        return None if row is None else (row["salt"], _record(dict(row)))

    def _touch(self, token_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._used.get(token_id, -_LAST_USED_EVERY) < _LAST_USED_EVERY:
                return
            self._used[token_id] = now
        try:
            with self._engine.begin() as conn:
                conn.execute(tokens_table.update().where(tokens_table.c.id == token_id).values(last_used_at=_now()))
        except StoreUnavailable:
            pass  # the stamp is advisory: a request must not fail because the store is locked for a while


def _record(row: dict[str, Any]) -> TokenRecord:
    endpoints = row["endpoints"]
    return TokenRecord(
        id=row["id"],
        name=row["name"],
        scopes=tuple(json.loads(row["scopes"])),
        endpoints=None if endpoints is None else tuple(json.loads(endpoints)),
        created_at=_utc(row["created_at"]) or _now(),
        created_by=row["created_by"],
        last_used_at=_utc(row["last_used_at"]),
        revoked_at=_utc(row["revoked_at"]),
    )


def load_or_create_key(path: Path) -> bytes:
    """The server's token key: read from ``path``, or 32 random bytes written there 0600 on first start."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()  # another process created it first
        with os.fdopen(fd, "wb") as file:
            file.write(key)
        return key
    if len(key) < 32:
        raise ValueError(f"{path} holds {len(key)} bytes; a token key needs 32 (delete it to make a new one)")
    return key
