"""`hubserve model ...` against a real server (typer's CliRunner, through the SDK over HTTP)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

from hubserve.cli.main import app
from tests.integration.conftest import RunningServer


def _run(server: RunningServer, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"HUBSERVE_URL": server.url, "HUBSERVE_TOKEN": server.token})


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def test_the_model_commands(server: RunningServer, models: dict[str, Path]) -> None:
    registered = _ok(_run(server, "model", "register", "cli-group", str(models["v1"]), "-m", "f1=0.91",
                          "-m", "note=fine", "-d", "from the CLI"))  # fmt: skip
    assert "Registered registry://cli-group/1 (text-classification, sha256" in registered.stdout
    assert "PendingManualApproval" in registered.stdout
    as_json = json.loads(_ok(_run(server, "--json", "model", "describe", "cli-group", "1")).stdout)
    assert as_json["metrics"] == {"f1": 0.91, "note": "fine"} and as_json["description"] == "from the CLI"
    assert "cli-group" in _ok(_run(server, "model", "list")).stdout
    assert "PendingManualApproval" in _ok(_run(server, "model", "list", "cli-group")).stdout
    assert "registry://cli-group/1 approved; endpoints rolling to it: none." in _ok(
        _run(server, "model", "approve", "cli-group", "1")).stdout  # fmt: skip
    assert "Approved" in _ok(_run(server, "model", "describe", "cli-group", "1")).stdout
    assert "rejected" in _ok(_run(server, "model", "reject", "cli-group", "1")).stdout
    missing = _run(server, "model", "describe", "cli-group", "5")
    assert missing.exit_code != 0 and "has no version 5" in missing.stdout + missing.stderr
    bad = _run(server, "model", "register", "cli-group", "./no/such/folder")  # made absolute here, so named so
    assert bad.exit_code != 0 and "does not exist" in bad.stdout + bad.stderr
    assert "deleted" in _ok(_run(server, "model", "delete", "cli-group", "1")).stdout


def test_the_async_sdk_speaks_the_same_calls(server: RunningServer) -> None:
    import asyncio

    from hubserve.sdk.aio import AsyncClient

    async def run() -> None:
        async with AsyncClient(server.url, token=server.token) as client:
            created = await client.register_model("aio-group", "org/model", revision="main", task="fill-mask",
                                                  metrics={"acc": 1}, description="async")  # fmt: skip
            assert created["uri"] == "registry://aio-group/1" and created["revision"] == "main"
            assert (await client.approve_model_version("aio-group", 1))["approval_status"] == "Approved"
            assert [g["latest_approved"] for g in await client.list_model_groups() if g["name"] == "aio-group"] == [1]
            assert len(await client.list_model_versions("aio-group")) == 1
            assert (await client.get_model_version("aio-group", 1))["description"] == "async"
            assert (await client.reject_model_version("aio-group", 1))["approval_status"] == "Rejected"
            assert (await client.delete_model_version("aio-group", 1))["deleted"] is True

    asyncio.run(run())
