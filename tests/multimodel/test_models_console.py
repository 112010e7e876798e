"""The console and a multi-model endpoint in headless Chromium: the endpoint page's Models panel (state badges,
memory per replica) follows an invocation, and the playground invokes the model picked.

One server and one browser tab for the module, as tests/console/ does; screenshots go to test-artifacts/console/.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.console.conftest import ARTIFACTS, CHROMIUM, _playwright, shot
from tests.integration.conftest import RunningServer, start_server, stop_server, wait_for_state
from tests.multimodel.conftest import build_classifier, relabel

NAME, SINGLE = "mme-ui", "mme-ui-single"
REFRESH = 10_000  # ms: the page polls every 2 s and a replica reports a load within moments


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    _playwright()  # skip before starting anything when there is no browser
    running = start_server(tmp_path_factory.mktemp("mme-ui-server") / "home")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def api(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def endpoint(api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Two small models (about 4 MB each) behind one dedicated replica, and a single-model endpoint beside it."""
    root = tmp_path_factory.mktemp("mme-ui-models")
    base = build_classifier(tmp_path_factory.mktemp("mme-ui-base") / "m", ("x-neg", "x-pos"))
    for name in ("alpha", "beta"):
        relabel(base, root / name, (f"{name}-neg", f"{name}-pos"))
    specs = [
        {"name": NAME, "model": {"source": str(root), "task": "text-classification", "multi_model": True,
                                 "models_memory_mb": 64},
         "compute": {"type": "dedicated", "instance": "cpu-small", "min_replicas": 1, "max_replicas": 1}},
        {"name": SINGLE, "model": {"source": str(base)}},
    ]  # fmt: skip
    for spec in specs:
        created = api.post("/v1/endpoints", json=spec)
        assert created.status_code == 201, created.text
    for spec in specs:
        assert wait_for_state(api, spec["name"], {"running", "failed"}, timeout=300)["state"] == "running"
    yield NAME
    for spec in specs:
        api.delete(f"/v1/endpoints/{spec['name']}")


@pytest.fixture(scope="module")
def page(server: RunningServer) -> Iterator[Any]:
    """A signed-in tab (the token in sessionStorage, as the sign-in form leaves it); no JavaScript errors allowed."""
    sync_playwright = _playwright()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.set_default_timeout(15_000)
        tab.goto(server.url + "/")
        tab.get_by_label("Token").fill(server.token)
        tab.get_by_role("button", name="Sign in").click()
        expect(tab.get_by_role("heading", name="Endpoints")).to_be_visible()
        yield tab
        context.close()
        browser.close()
        assert not errors, f"JavaScript errors in the console: {errors}"


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def _open(page: Any, fragment: str) -> None:
    page.goto(page.url.split("#")[0] + f"#/endpoints/{fragment}")


def test_the_models_panel_before_any_call(page: Any, endpoint: str) -> None:
    _open(page, NAME)
    expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()
    for model in ("alpha", "beta"):
        expect(page.locator(f'tr[data-model="{model}"] td[data-state]')).to_have_attribute("data-state", "unloaded")
    expect(page.locator('tr[data-model="alpha"]')).to_contain_text("0 / 0")
    bar = page.locator("#models-memory .membar")
    expect(bar).to_have_count(1)
    expect(bar).to_contain_text("0 / 64 MB")
    expect(bar.get_by_role("meter")).to_have_attribute("aria-valuemax", "64")


def test_the_table_shows_the_model_loaded_by_an_invocation(page: Any, api: httpx.Client, endpoint: str) -> None:
    answer = api.post(f"/endpoints/{NAME}/models/alpha", json={"inputs": "what a day"})
    assert answer.status_code == 200, answer.text
    row = page.locator('tr[data-model="alpha"]')
    expect(row.locator("td[data-state]")).to_have_attribute("data-state", "loaded", timeout=REFRESH)
    expect(row.locator("span.state.model-loaded")).to_have_text("loaded")
    expect(row).to_contain_text("s ago")
    expect(row).to_contain_text("0 / 1")  # hits / misses: the first call waited for the load
    expect(row.locator('td[data-label="Replicas"]')).to_contain_text(f"{NAME}-")
    expect(page.locator('tr[data-model="beta"] td[data-state]')).to_have_attribute("data-state", "unloaded")
    expect(page.locator("#models-memory .membar")).not_to_contain_text("0 / 64 MB")  # the loaded model's memory counts
    width = page.locator("#models-memory .membar .fill").evaluate("element => parseFloat(element.style.width)")
    assert 0 < width <= 100
    shot(page, "mm-01-endpoint-models")


def test_the_playground_invokes_the_model_picked(page: Any, endpoint: str) -> None:
    _open(page, f"{NAME}/playground")
    expect(page.get_by_role("heading", name=f"Playground: {NAME}")).to_be_visible()
    picker = page.get_by_label("Model", exact=False).and_(page.locator("select"))
    expect(picker.locator("option")).to_have_text(["alpha", "beta"])
    picker.select_option("beta")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#pg-meta")).to_contain_text("HTTP 200")
    expect(page.locator("#pg-raw")).to_contain_text('"beta-')
    expect(page.locator("#pg-raw")).not_to_contain_text("alpha")
    expect(page.locator('[data-snippet="curl"]')).to_contain_text(f"/endpoints/{NAME}/models/beta")
    page.get_by_role("tab", name="Python").click()
    expect(page.locator('[data-snippet="Python"]')).to_contain_text('target_model="beta"')
    page.get_by_role("tab", name="hubserve invoke").click()
    expect(page.locator('[data-snippet="hubserve invoke"]')).to_contain_text("--target-model 'beta'")
    shot(page, "mm-02-playground-model-picker")
    _open(page, NAME)
    expect(page.locator('tr[data-model="beta"] td[data-state]')).to_have_attribute("data-state", "loaded", timeout=REFRESH)


def test_a_single_model_endpoint_has_neither_panel_nor_picker(page: Any, endpoint: str) -> None:
    _open(page, SINGLE)
    expect(page.get_by_role("heading", name="Now")).to_be_visible()
    expect(page.get_by_role("heading", name="Models", exact=True)).to_have_count(0)
    _open(page, f"{SINGLE}/playground")
    expect(page.get_by_role("heading", name=f"Playground: {SINGLE}")).to_be_visible()
    expect(page.locator("#pg-model")).to_have_count(0)
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#pg-meta")).to_contain_text("HTTP 200")
