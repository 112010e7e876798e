"""`hubserve serve` keeps the token out of `ps`, refuses an open bind without one, and reports its own URL."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.secrecy.conftest import ENDPOINT, PUBLIC_URL, TOKEN, Started, launch, stop, wait_healthy

LIGHT = {"HUBSERVE_ZYGOTE": "false"}  # these servers deploy nothing: no zygote to import torch


def test_the_token_file_keeps_the_token_out_of_the_command_line(secret_server: Started, token_file: Path) -> None:
    cmdline = Path(f"/proc/{secret_server.process.pid}/cmdline").read_bytes()
    assert b"--token-file" in cmdline and str(token_file).encode() in cmdline
    assert TOKEN.encode() not in cmdline
    assert httpx.get(f"{secret_server.url}/v1/endpoints").status_code == 401
    authed = httpx.get(f"{secret_server.url}/v1/endpoints", headers={"Authorization": f"Bearer {TOKEN}"})
    assert authed.status_code == 200


def test_the_token_from_the_environment_works_and_stays_off_the_command_line(tmp_path: Path) -> None:
    started = wait_healthy(launch(tmp_path / "home", env={**LIGHT, "HUBSERVE_TOKEN": TOKEN}))
    try:
        assert TOKEN.encode() not in Path(f"/proc/{started.process.pid}/cmdline").read_bytes()
        assert httpx.get(f"{started.url}/v1/endpoints").status_code == 401
        authed = httpx.get(f"{started.url}/v1/endpoints", headers={"Authorization": f"Bearer {TOKEN}"})
        assert authed.status_code == 200
        assert "visible to every local user" not in started.log()
    finally:
        stop(started)


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose.token"
    loose.write_text(TOKEN)
    loose.chmod(0o644)
    started = launch(tmp_path / "home", "--token-file", str(loose), env=LIGHT)
    assert started.process.wait(60) != 0
    assert "readable by other users" in started.log() and "chmod 600" in started.log()
    assert TOKEN not in started.log()


def test_token_on_the_command_line_still_works_with_a_warning(tmp_path: Path) -> None:
    started = wait_healthy(launch(tmp_path / "home", "--token", TOKEN, env=LIGHT))
    try:
        authed = httpx.get(f"{started.url}/v1/endpoints", headers={"Authorization": f"Bearer {TOKEN}"})
        assert authed.status_code == 200
        assert "visible to every local user in `ps`" in started.log() and "--token-file" in started.log()
    finally:
        stop(started)


def test_without_a_token_the_server_says_it_listens_on_loopback_only(tmp_path: Path) -> None:
    started = wait_healthy(launch(tmp_path / "home", env=LIGHT))
    try:
        assert "no token configured: listening on loopback only" in started.log()
    finally:
        stop(started)


def test_an_open_bind_without_a_token_is_refused(tmp_path: Path) -> None:
    started = launch(tmp_path / "home", env=LIGHT, host="0.0.0.0")
    assert started.process.wait(60) == 2
    assert "refusing to listen on 0.0.0.0 without a token" in started.log()
    assert "--insecure-no-auth" in started.log()


def test_an_open_bind_without_a_token_starts_with_insecure_no_auth_and_warns(tmp_path: Path) -> None:
    started = wait_healthy(launch(tmp_path / "home", "--insecure-no-auth", env=LIGHT, host="0.0.0.0"))
    try:
        assert "WARNING" in started.log() and "INSECURE" in started.log()
    finally:
        stop(started)


@pytest.mark.parametrize("path", [f"/v1/endpoints/{ENDPOINT}", f"/v2/endpoint/ns/{ENDPOINT}"])
def test_describe_reports_the_public_url_not_the_host_header(admin: httpx.Client, secret_endpoint: dict,
                                                             path: str) -> None:  # fmt: skip
    response = admin.get(path, headers={"Host": "evil.example"})
    assert response.status_code == 200, response.text
    assert "evil.example" not in response.text
    body = response.json()
    url = body["url"] if "url" in body else body["status"]["url"]
    assert url == f"{PUBLIC_URL}/endpoints/{ENDPOINT}"


def test_without_a_public_url_describe_reports_the_bind_address(tmp_path: Path) -> None:
    started = wait_healthy(launch(tmp_path / "home", "--token", TOKEN, env=LIGHT))
    try:
        headers = {"Authorization": f"Bearer {TOKEN}", "Host": "evil.example"}
        spec = {"name": "addressed", "model": {"source": "hf-internal-testing/tiny-random-bert",
                                               "task": "fill-mask"}, "compute": {"provisioned_concurrency": 0}}  # fmt: skip
        created = httpx.post(f"{started.url}/v1/endpoints", json=spec, headers=headers, timeout=60)
        assert created.status_code == 201, created.text
        assert created.json()["url"] == f"{started.url}/endpoints/addressed"
    finally:
        stop(started)


def test_a_public_url_that_is_not_http_is_refused(tmp_path: Path) -> None:
    started = launch(tmp_path / "home", "--public-url", "javascript:alert(1)", env=LIGHT)
    assert started.process.wait(60) == 2
    assert "--public-url must be an http:// or https:// URL" in started.log()
