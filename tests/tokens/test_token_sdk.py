"""The SDK's token and audit calls (sync and async) against a real server."""

from __future__ import annotations

import asyncio

import pytest

from hubserve.errors import Forbidden, NotFound, Unauthorized, ValidationError
from hubserve.sdk.aio import AsyncClient
from hubserve.sdk.client import Client
from tests.integration.conftest import RunningServer


def test_create_list_revoke_and_audit(server: RunningServer) -> None:
    with Client(server.url, server.token) as admin:
        created = admin.create_token("sdk-app", ["invoke"], endpoints=["sdk-ep"])
        assert created["token"].startswith("hs_") and created["endpoints"] == ["sdk-ep"]
        assert created["id"] in [item["id"] for item in admin.list_tokens()]
        assert admin.get_token(created["id"])["name"] == "sdk-app"
        with Client(server.url, created["token"]) as limited, pytest.raises(Forbidden):
            limited.list_endpoints()
        revoked = admin.revoke_token(created["id"])
        assert revoked["revoked_at"]
        assert created["id"] in [item["id"] for item in admin.list_tokens(include_revoked=True)]
        with Client(server.url, created["token"]) as gone, pytest.raises(Unauthorized):
            gone.create_endpoint({"name": "x", "model": {"source": "/nowhere", "task": "fill-mask"}})
        with pytest.raises(ValidationError, match="allowed: admin, deploy, invoke, read"):
            admin.create_token("bad", ["everything"])
        with pytest.raises(NotFound):
            admin.revoke_token("0123456789ab")
        log = admin.audit(limit=3)  # refused changes are recorded too, with their status
        assert [(e["action"], e["target"], e["status"]) for e in log] == [
            ("token.revoke", "0123456789ab", 404), ("token.create", None, 400), ("token.revoke", created["id"], 200),
        ]  # fmt: skip
        mine = admin.audit(endpoint=created["id"])
        assert [e["action"] for e in mine] == ["token.revoke", "token.create"]
        assert admin.audit(since="2999-01-01T00:00:00+00:00") == []


def test_the_async_client_mirrors_it(server: RunningServer) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url, server.token) as admin:
            created = await admin.create_token("sdk-async", ["read"])
            assert created["id"] in [item["id"] for item in await admin.list_tokens()]
            assert (await admin.get_token(created["id"]))["scopes"] == ["read"]
            await admin.revoke_token(created["id"])
            assert (await admin.audit(limit=1, endpoint=created["id"]))[0]["action"] == "token.revoke"

    asyncio.run(scenario())
