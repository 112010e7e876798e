"""The console's Models page in a real browser: groups and versions listed, approve and reject buttons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.console.conftest import console_api, console_server, page  # noqa: F401 - the console's fixtures
from tests.integration.conftest import RunningServer


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_the_models_page(page: Any, console_server: RunningServer, console_api: httpx.Client,  # noqa: F811
                         models: dict[str, Path]) -> None:  # fmt: skip
    for source in (str(models["v1"]), "org/model"):
        assert console_api.post("/v1/models/console-group/versions", json={"source": source}).status_code == 201
    page.goto(console_server.url + "/")
    page.get_by_label("Token").fill(console_server.token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Models").click()
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    first = page.locator('tr[data-version="registry://console-group/1"]')
    expect(first).to_contain_text("PendingManualApproval")
    expect(first).to_contain_text("text-classification")
    first.get_by_role("button", name="approve registry://console-group/1").click()
    expect(first).to_contain_text("Approved")
    expect(page.locator('section[data-group="console-group"] h2')).to_contain_text("latest approved: 1")
    second = page.locator('tr[data-version="registry://console-group/2"]')
    second.get_by_role("button", name="reject registry://console-group/2").click()
    expect(second).to_contain_text("Rejected")
    assert console_api.get("/v1/models/console-group/versions/2").json()["approval_status"] == "Rejected"
