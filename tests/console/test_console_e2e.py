"""The web console end to end in headless Chromium: sign in, create through the form, watch the list,
try three tasks in the playground, see the charts move, pause and delete through the UI.

The tests run in file order and share one server and one browser tab (module fixtures); the other
endpoints are deployed through the API at the start so their replicas load while the form is used.
Screenshots of every page go to test-artifacts/console/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.conftest import shot
from tests.integration.conftest import RunningServer, wait_for_state

OTHERS = {"qa": "question-answering", "fm": "fill-mask", "zs": "zero-shot-classification"}
RUNNING = 120_000  # ms: a replica's cold start on a busy 2-core machine


@pytest.fixture(scope="module")
def others(console_api: httpx.Client, console_models: dict[str, Path]) -> dict[str, str]:
    for name, task in OTHERS.items():
        model = {"source": str(console_models[task]), "task": task}  # NLI heads infer as text-classification
        response = console_api.post("/v1/endpoints", json={"name": name, "model": model})
        assert response.status_code == 201, response.text
    return OTHERS


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_static_files_need_no_token_but_data_does(console_server: RunningServer) -> None:
    assert httpx.get(f"{console_server.url}/").status_code == 200
    assert httpx.get(f"{console_server.url}/console/js/app.js").headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{console_server.url}/console/../../api/console.py").status_code == 404
    assert httpx.get(f"{console_server.url}/v1/console/options").status_code == 401


def test_sign_in(page: Any, console_server: RunningServer, others: dict[str, str]) -> None:
    page.goto(console_server.url + "/")
    expect(page.get_by_role("heading", name="Sign in to hubserve")).to_be_visible()
    page.get_by_label("Token").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("refused")
    shot(page, "01-login")
    page.get_by_label("Token").fill(console_server.token)
    page.get_by_label("Token").press("Enter")  # keyboard submit
    expect(page.get_by_role("heading", name="Endpoints")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('hubserve.token')") == console_server.token


def test_create_through_the_form(page: Any, console_models: dict[str, Path]) -> None:
    page.get_by_role("link", name="Create endpoint").first.click()
    expect(page.get_by_role("heading", name="Create an endpoint")).to_be_visible()
    page.get_by_label("Name", exact=False).first.fill("Bad_Name")
    page.get_by_label("Model source").fill(str(console_models["text-classification"]))
    task = page.locator("#create-model-task")
    expect(task).to_have_value("text-classification")  # pre-filled from the model's config
    expect(page.locator("#create-task-hint")).to_contain_text("text-classification")
    expect(page.locator("#create-compute-instance")).to_be_hidden()  # dedicated fields only for dedicated
    page.get_by_label("Dedicated (always-on replicas)").check()
    expect(page.locator("#create-compute-instance")).to_be_visible()
    expect(page.locator("#create-compute-memory_mb")).to_be_hidden()
    page.get_by_label("Serverless (scale to zero, sized by memory)").check()
    page.locator("#create-compute-max_concurrency").fill("3")
    page.locator("#create-compute-provisioned_concurrency").fill("0")
    page.get_by_role("button", name="Create endpoint").click()
    name_error = page.locator('[data-error-for="name"]')
    expect(name_error).to_contain_text("DNS-safe")  # the API's 422 detail, beside its field
    expect(page.locator("#create-name")).to_have_attribute("aria-invalid", "true")
    shot(page, "02-create-form-errors")
    page.locator("#create-name").fill("tc")
    page.locator("#create-env").fill("GREETING=hello")
    page.get_by_role("button", name="Create endpoint").click()
    row = page.locator('tr[data-endpoint="tc"]')
    expect(row).to_be_visible()
    expect(row.locator("td[data-state]")).to_have_attribute("data-state", "running", timeout=RUNNING)
    expect(row).to_contain_text("text-classification")
    expect(row).to_contain_text("1/1")


def test_list_shows_every_endpoint(page: Any, console_api: httpx.Client, others: dict[str, str]) -> None:
    for name in others:
        wait_for_state(console_api, name, {"running"}, timeout=RUNNING / 1000)
    for name in others:
        expect(page.locator(f'tr[data-endpoint="{name}"] td[data-state]')).to_have_attribute("data-state", "running")
    shot(page, "03-list")


def _run_playground(page: Any, name: str) -> None:
    page.goto(page.url.split("#")[0] + f"#/endpoints/{name}/playground")
    expect(page.get_by_role("heading", name=f"Playground: {name}")).to_be_visible()


def test_playground_text_classification(page: Any) -> None:
    _run_playground(page, "tc")
    page.get_by_label("top_k").fill("2")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#pg-result .bar")).to_have_count(2)
    expect(page.locator("#pg-meta")).to_contain_text("HTTP 200")
    expect(page.locator("#pg-meta")).to_contain_text("model")
    expect(page.locator("#pg-raw")).to_contain_text('"label"')
    expect(page.locator('[data-snippet="curl"]')).to_contain_text('"top_k":2')
    page.get_by_role("tab", name="Python").click()
    expect(page.locator('[data-snippet="Python"]')).to_contain_text('client.invoke("tc"')
    page.get_by_role("tab", name="hubserve invoke").click()
    expect(page.locator('[data-snippet="hubserve invoke"]')).to_contain_text("hubserve invoke tc")
    shot(page, "04-playground-text-classification")


def test_playground_question_answering(page: Any) -> None:
    _run_playground(page, "qa")
    page.get_by_label("Question").fill("Where do I live?")
    page.get_by_label("Context").fill("My name is Clara and I live in Berkeley.")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#pg-result mark")).to_have_count(1)  # the answer span, highlighted in the context
    expect(page.locator("#pg-result")).to_contain_text("Answer:")
    expect(page.locator("#pg-raw")).to_contain_text('"answer"')
    shot(page, "05-playground-question-answering")


def test_playground_fill_mask(page: Any) -> None:
    _run_playground(page, "fm")
    page.get_by_label("top_k").fill("3")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#pg-result .bar")).to_have_count(3)
    expect(page.locator("#pg-raw")).to_contain_text('"token_str"')
    shot(page, "06-playground-fill-mask")


def test_playground_zero_shot(page: Any) -> None:
    _run_playground(page, "zs")
    page.get_by_label("Candidate labels").fill("travel, cooking, sport")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#pg-result .bar")).to_have_count(3)
    expect(page.locator("#pg-cold")).to_have_text(re.compile("warm|cold start"))
    shot(page, "07-playground-zero-shot")


def test_endpoint_page_charts_update(page: Any, console_api: httpx.Client) -> None:
    page.goto(page.url.split("#")[0] + "#/endpoints/tc")
    expect(page.get_by_role("heading", name="tc", exact=True)).to_be_visible()
    chart = page.locator('#charts [data-chart^="Invocations"]')
    expect(chart.locator("figcaption")).to_contain_text("invocations:")
    before = int(float(chart.get_attribute("data-total") or 0))
    for _ in range(5):
        assert console_api.post("/endpoints/tc", json={"inputs": "charts please"}).status_code == 200
    expect(chart).to_have_attribute("data-total", str(before + 5), timeout=10_000)  # the 2 s poll redrew it
    expect(chart.locator("svg circle").first).to_be_visible()
    expect(page.locator('#charts [data-chart="Model latency"] svg circle').first).to_be_visible()  # a point per minute with traffic
    expect(page.locator("#cost")).to_contain_text("Serverless 2048 MB")
    expect(page.locator("#cost")).to_contain_text("cpu-")
    expect(page.locator("#logs")).to_contain_text("POST /endpoints/tc", timeout=10_000)  # followed access lines
    expect(page.locator("#async")).to_contain_text("Async inferences")
    shot(page, "08-endpoint-page")


def test_edit_through_patch(page: Any, console_api: httpx.Client) -> None:
    page.locator("#scale-max_concurrency").fill("4")
    page.get_by_role("button", name="Apply (PATCH)").click()
    expect(page.locator("#toast")).to_contain_text("Scaling updated")
    assert console_api.get("/v1/endpoints/tc").json()["compute"]["max_concurrency"] == 4


def test_pause_and_delete_through_the_ui(page: Any, console_api: httpx.Client) -> None:
    page.get_by_role("link", name="Endpoints").first.click()
    row = page.locator('tr[data-endpoint="tc"]')
    row.get_by_role("button", name="Pause tc").click()
    expect(row.locator("td[data-state]")).to_have_attribute("data-state", "paused", timeout=30_000)
    expect(row.get_by_role("button", name="Resume tc")).to_be_visible()
    shot(page, "09-list-paused")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete tc").click()
    expect(row).to_have_count(0, timeout=30_000)
    wait_for_state(console_api, "tc", {"gone"}, timeout=30)


def test_narrow_window(page: Any) -> None:
    page.set_viewport_size({"width": 420, "height": 800})
    expect(page.locator('tr[data-endpoint="qa"]')).to_be_visible()
    shot(page, "10-list-narrow")
    page.goto(page.url.split("#")[0] + "#/endpoints/qa/playground")
    expect(page.get_by_role("heading", name="Playground: qa")).to_be_visible()
    shot(page, "11-playground-narrow")
    page.set_viewport_size({"width": 1280, "height": 800})
