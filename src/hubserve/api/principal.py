"""Who a request acts as: the token the authentication layer found, with what it may do.

The layer stores it in ``scope["state"]["principal"]`` for every request (the audit log and any
route read it there). Scopes nest: ``admin`` implies everything, ``deploy`` implies ``read``;
``invoke`` is separate (an invoke-only token can read nothing) and may be limited to named endpoints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from starlette.types import Scope as AsgiScope

from hubserve.store.tokens import TokenRecord

BOOTSTRAP_ID = "bootstrap"  # the --token given to serve: an admin token that lives in the settings
LOCAL_ID = "local"  # a server without any token checks nothing: everyone is this admin
ANONYMOUS_ID = "anonymous"  # no credentials, on a public endpoint

_IMPLIED: dict[str, frozenset[str]] = {
    "admin": frozenset({"admin", "deploy", "invoke", "read"}),
    "deploy": frozenset({"deploy", "read"}),
    "invoke": frozenset({"invoke"}),
    "read": frozenset({"read"}),
}


@dataclasses.dataclass(frozen=True)
class Principal:
    """A token's identity and rights; never its secret."""

    token_id: str
    name: str
    scopes: frozenset[str]
    endpoints: frozenset[str] | None = None  # invoke limited to these endpoint names; None: all

    @classmethod
    def of(cls, record: TokenRecord) -> Principal:
        endpoints = None if record.endpoints is None else frozenset(record.endpoints)
        return cls(record.id, record.name, _expand(record.scopes), endpoints)

    @classmethod
    def admin(cls, token_id: str, name: str) -> Principal:
        return cls(token_id, name, _expand(["admin"]))

    def allows(self, scope: str, endpoint: str | None = None) -> bool:
        """Whether this principal may do what ``scope`` names (on ``endpoint``, for invoke)."""
        if scope not in self.scopes:
            return False
        if scope == "invoke" and self.endpoints is not None and "admin" not in self.scopes:
            return endpoint is not None and endpoint in self.endpoints
        return True


ANONYMOUS = Principal(ANONYMOUS_ID, "anonymous", frozenset())


def _expand(scopes: Iterable[str]) -> frozenset[str]:
    return frozenset().union(*(_IMPLIED.get(scope, frozenset()) for scope in scopes))


def principal_of(scope: AsgiScope) -> Principal | None:
    """The principal the authentication layer stored on this request, if any."""
    state = scope.get("state")
    found = state.get("principal") if isinstance(state, dict) else None
    return found if isinstance(found, Principal) else None
