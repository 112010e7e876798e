"""`hubserve token create|list|revoke` and `hubserve audit` end to end against a real server."""

from __future__ import annotations

import json

import httpx
from typer.testing import CliRunner, Result

from hubserve.cli.main import app
from tests.integration.conftest import RunningServer


def run(server: RunningServer, *args: str, token: str | None = None) -> Result:
    env = {"HUBSERVE_URL": server.url, "HUBSERVE_TOKEN": token or server.token}
    return CliRunner().invoke(app, list(args), env=env)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def test_create_prints_the_token_once_and_it_works(server: RunningServer) -> None:
    created = ok(
        run(server, "token", "create", "cli-app", "--scope", "invoke", "--scope", "read", "--endpoint", "some-ep")
    )
    token = created.stdout.strip()
    assert token.startswith("hs_") and "\n" not in token  # stdout holds the token alone: $(hubserve token create ...)
    assert "will not be shown again" in created.stderr
    token_id = token.split("_")[1]
    assert token_id in created.stderr and "invoke, read" in created.stderr and "some-ep" in created.stderr
    assert httpx.get(f"{server.url}/v1/endpoints", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    listed = ok(run(server, "token", "list"))
    line = next(line for line in listed.stdout.splitlines() if token_id in line)
    assert "cli-app" in line and "invoke,read" in line and "some-ep" in line
    assert token.rpartition("_")[2] not in listed.stdout
    as_json = json.loads(ok(run(server, "token", "list", "--json")).stdout)
    assert any(item["id"] == token_id for item in as_json) and all("token" not in item for item in as_json)

    revoked = ok(run(server, "token", "revoke", token_id))
    assert f"Token {token_id} (cli-app) revoked" in revoked.stdout
    assert httpx.get(f"{server.url}/v1/endpoints", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert token_id not in ok(run(server, "token", "list")).stdout
    assert token_id in ok(run(server, "token", "list", "--all")).stdout


def test_create_as_json_and_errors_are_one_line(server: RunningServer) -> None:
    created = json.loads(ok(run(server, "token", "create", "cli-json", "--scope", "deploy", "--json")).stdout)
    assert created["token"].startswith("hs_") and created["scopes"] == ["deploy"]
    bad = run(server, "token", "create", "x", "--scope", "root")
    assert bad.exit_code == 1 and "allowed: admin, deploy, invoke, read" in bad.stderr
    missing = run(server, "token", "revoke", "0123456789ab")
    assert missing.exit_code == 1 and "404" in missing.stderr and "`hubserve token list`" in missing.stderr
    refused = run(server, "token", "list", token=created["token"])  # a deploy token may not manage tokens
    assert refused.exit_code == 1 and "403" in refused.stderr


def test_audit_prints_the_changes_as_a_table(server: RunningServer) -> None:
    made = json.loads(ok(run(server, "token", "create", "cli-audited", "--scope", "read", "--json")).stdout)
    ok(run(server, "token", "revoke", made["id"]))
    table = ok(run(server, "audit", "--limit", "2")).stdout
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["TIME", "(UTC)", "TOKEN"] and len(lines) == 3
    assert "token.revoke" in lines[1] and made["id"] in lines[1] and "127.0.0.1" in lines[1] and "bootstrap" in lines[1]
    assert "token.create" in lines[2] and "201" in lines[2]
    entries = json.loads(ok(run(server, "audit", "--endpoint", made["id"], "--json")).stdout)
    assert [entry["action"] for entry in entries] == ["token.revoke", "token.create"]
    assert "No changes recorded since" in ok(run(server, "audit", "--since", "2999-01-01T00:00:00Z")).stdout
    bad = run(server, "audit", "--since", "last tuesday")
    assert bad.exit_code == 1 and "ISO 8601" in bad.stderr
