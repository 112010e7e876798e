"""The console's Tokens and Audit log pages in headless Chromium against a real server."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.console.conftest import console_server, page, shot  # noqa: F401 - fixtures: a server, a Chromium tab
from tests.integration.conftest import RunningServer


def test_create_shows_the_token_once_and_revoke_asks_first(page: Any, console_server: RunningServer) -> None:  # noqa: F811
    page.goto(console_server.url + "/")
    page.get_by_label("Token").fill(console_server.token)
    page.get_by_label("Token").press("Enter")
    expect(page.get_by_role("heading", name="Endpoints")).to_be_visible()
    page.get_by_role("link", name="Tokens").click()
    expect(page.get_by_role("heading", name="Tokens", exact=True)).to_be_visible()

    page.locator("#token-name").fill("console-app")
    page.locator("#scope-read").check()  # invoke is checked by default
    page.locator("#token-endpoints").fill("ep-one, ep-two")
    page.get_by_role("button", name="Create token").click()
    shown = page.locator("#created-token")
    expect(shown).to_have_value(re.compile(r"^hs_[0-9a-f]{12}_"))
    token = shown.input_value()
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    expect(page.locator("#new-token")).to_contain_text("will not be shown again")
    token_id = token.split("_")[1]
    row = page.locator(f'tr[data-token="{token_id}"]')
    expect(row).to_contain_text("console-app")
    expect(row).to_contain_text("invoke, read")
    expect(row).to_contain_text("ep-one, ep-two")
    shot(page, "tokens-created")
    assert (
        httpx.get(f"{console_server.url}/v1/endpoints", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )

    page.get_by_role("button", name="Done").click()
    assert token.rpartition("_")[2] not in page.content()  # once dismissed, the token is nowhere on the page
    page.reload()
    expect(page.locator(f'tr[data-token="{token_id}"]')).to_be_visible()
    assert token.rpartition("_")[2] not in page.content()

    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Revoke console-app").click()
    expect(page.locator(f'tr[data-token="{token_id}"]')).to_be_visible()  # not confirmed: nothing revoked
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke console-app").click()
    expect(page.locator(f'tr[data-token="{token_id}"]')).to_have_count(0)
    assert (
        httpx.get(f"{console_server.url}/v1/endpoints", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    )
    page.get_by_label("Show revoked tokens").check()
    expect(page.locator(f'tr[data-token="{token_id}"]')).to_contain_text("console-app")

    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    first = page.locator("tr[data-audit]").first
    expect(first).to_contain_text("token.revoke")
    expect(first).to_contain_text(token_id)
    expect(first).to_contain_text("bootstrap")
    shot(page, "audit-log")
