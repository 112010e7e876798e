"""A hubserve server, tiny models and a headless Chromium page for the console's end-to-end tests.

Skips (with the reason) when Debian's chromium or the playwright package is missing: the set-up
(`scripts/setup.sh`) installs chromium when it can.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import RunningServer, start_server, stop_server

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"


def _playwright() -> Any:
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("no /usr/bin/chromium: install Debian's chromium (scripts/setup.sh does when apt is available)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed: pip install -e '.[test]'")
    return sync_playwright


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    _playwright()  # skip before starting anything
    running = start_server(tmp_path_factory.mktemp("console") / "home")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def console_api(console_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=console_server.url, headers=console_server.headers(), timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def console_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Only the tiny models these tests deploy (building all of them would cost half a minute)."""
    import tiny_models

    root = tmp_path_factory.mktemp("console-models")
    tasks = ("text-classification", "question-answering", "fill-mask", "zero-shot-classification")
    return {task: tiny_models.BUILDERS[task](root / task) for task in tasks}


@pytest.fixture(scope="module")
def page(console_server: RunningServer) -> Iterator[Any]:
    sync_playwright = _playwright()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.set_default_timeout(15_000)
        yield tab
        context.close()
        browser.close()
        assert not errors, f"JavaScript errors in the console: {errors}"


def shot(page: Any, name: str, full_page: bool = True) -> None:
    page.evaluate("document.getElementById('toast').replaceChildren()")  # passing notices would hide the page
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)
