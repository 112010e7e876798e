"""Bearer-token check for the management API; the token itself is never logged."""

from __future__ import annotations

import secrets

from fastapi import Request

from hubserve.errors import Unauthorized


async def require_token(request: Request) -> None:
    expected: str | None = request.app.state.settings.token
    if not expected:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), expected.encode()):
        raise Unauthorized(
            "Missing or invalid bearer token: send 'Authorization: Bearer <token>' "
            "(CLI: --token or HUBSERVE_TOKEN)."
        )
