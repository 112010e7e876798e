"""The console's "Sign out" is there only when the server asks for a token (issue 14).

A server started without ``--token`` answers every call without one; the console then never shows
the sign-in form, so a "Sign out" that leads to it would only confuse. ``GET /console/config`` (public)
tells the console which case it is in. Runs in headless Chromium against real servers, one without a
token (this module's ``console_server``, which the shared ``page`` fixture starts) and one with.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.console.conftest import _playwright, shot
from tests.integration.conftest import RunningServer, free_port, start_server, stop_server


def start_without_token(home: Any) -> RunningServer:
    """`hubserve serve` as a single user starts it: no --token, no HUBSERVE_TOKEN."""
    port = free_port()
    log_path = home.parent / f"{home.name}-server-{port}.log"
    env = {key: value for key, value in os.environ.items() if key != "HUBSERVE_TOKEN"}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hubserve", "serve", "--port", str(port), "--home", str(home)],
            stdout=log, stderr=subprocess.STDOUT, env={**env, "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return RunningServer(url, "", home, process, log_path)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not start: {log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Overrides the shared fixture: this module's browser tab talks to a server without a token."""
    _playwright()
    running = start_without_token(tmp_path_factory.mktemp("console-open") / "home")
    yield running
    stop_server(running)


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_config_says_whether_a_token_is_needed(console_server: RunningServer, tmp_path: Any) -> None:
    assert httpx.get(f"{console_server.url}/console/config").json() == {"auth_required": False}
    guarded = start_server(tmp_path / "home")
    try:
        answer = httpx.get(f"{guarded.url}/console/config")  # public: asked before anyone signs in
        assert answer.status_code == 200 and answer.json() == {"auth_required": True}
        assert httpx.get(f"{guarded.url}/v1/console/options").status_code == 401
    finally:
        stop_server(guarded)


def test_no_sign_out_without_a_token(page: Any, console_server: RunningServer) -> None:
    page.goto(console_server.url + "/")
    expect(page.get_by_role("heading", name="Endpoints")).to_be_visible()  # no sign-in form either
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Endpoints")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    shot(page, "sign-out-hidden-without-token")


def test_sign_out_with_a_token(page: Any, tmp_path: Any) -> None:
    guarded = start_server(tmp_path / "home")
    try:
        page.goto(guarded.url + "/")
        page.get_by_label("Token").fill(guarded.token)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Endpoints")).to_be_visible()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in to hubserve")).to_be_visible()
    finally:
        stop_server(guarded)
