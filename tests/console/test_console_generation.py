"""The console on a text-generation endpoint, in headless Chromium against a real server: the playground
streams the text as it is made (fetch over the SSE route, read as a ReadableStream) and shows the time to
the first token; the endpoint page charts time to first token, inter-token latency, tokens/s and sequences.

The endpoint is custom code whose handler yields text-generation-inference's events one word at a time at a
slow, known pace, so the page can be seen half-written before the stream ends.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.conftest import shot
from tests.integration.conftest import RunningServer, wait_for_state

NAME = "storyteller"
WORDS = ["Once", " upon", " a", " time", " there", " was", " a", " model"]

HANDLER = textwrap.dedent(
    f"""
    import time

    WORDS = {WORDS!r}


    class EndpointHandler:
        def __init__(self, path=""):
            pass

        def __call__(self, data):
            def events():
                for index, word in enumerate(WORDS):
                    time.sleep(0.4)
                    last = index == len(WORDS) - 1
                    yield {{"token": {{"id": index, "text": word, "logprob": -1.0, "special": False}},
                           "generated_text": "".join(WORDS) if last else None, "details": None}}
            return events()
    """
)


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture(scope="module")
def storyteller(console_api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder: Path = tmp_path_factory.mktemp("storyteller") / "model"
    folder.mkdir()
    (folder / "handler.py").write_text(HANDLER)
    spec = {"name": NAME, "model": {"source": str(folder), "task": "text-generation"}, "custom_code": True}
    response = console_api.post("/v1/endpoints", json=spec)
    assert response.status_code == 201, response.text
    wait_for_state(console_api, NAME, {"running"})
    return NAME


def test_the_playground_streams_text_as_it_arrives(page: Any, console_server: RunningServer, storyteller: str) -> None:
    page.goto(console_server.url + "/")
    page.get_by_label("Token").fill(console_server.token)
    page.get_by_label("Token").press("Enter")
    expect(page.get_by_role("heading", name="Endpoints")).to_be_visible()
    page.goto(console_server.url + f"/#/endpoints/{storyteller}/playground")
    expect(page.get_by_role("heading", name=f"Playground: {storyteller}")).to_be_visible()
    expect(page.get_by_label("Stream tokens as they are made")).to_be_checked()
    expect(page.locator("[data-snippet=curl]")).to_contain_text("curl -N")

    page.get_by_role("button", name="Run").click()
    text = page.locator("#pg-stream")
    expect(text).to_contain_text("Once upon", timeout=20_000)
    expect(page.locator("#pg-ttft")).to_contain_text(" ms")  # shown as soon as the first token came
    partial = text.inner_text()
    assert "model" not in partial, f"the whole text came at once: {partial!r}"  # half-written: streamed
    shot(page, "20-playground-streaming")

    expect(text).to_have_text("".join(WORDS), timeout=20_000)
    expect(page.locator("#pg-tokens")).to_have_text(f"{len(WORDS)} tokens")
    expect(page.locator("#pg-rate")).to_contain_text("tokens/s")
    expect(page.locator("#pg-raw")).to_contain_text('"generated_text"')
    shot(page, "21-playground-streamed")


def test_the_endpoint_page_charts_generation(page: Any, console_api: httpx.Client, storyteller: str) -> None:
    deadline = time.monotonic() + 10  # the stream is recorded as it closes
    while (console_api.get(f"/v1/endpoints/{NAME}/metrics").json()["generation"] or {}).get("streams", 0) < 1:
        assert time.monotonic() < deadline, "the playground's stream was never recorded"
        time.sleep(0.2)
    page.goto(page.url.split("#")[0] + f"#/endpoints/{storyteller}")
    for title in ("Time to first token", "Inter-token latency", "Generated tokens / s", "Sequences"):
        expect(page.locator(f'figure[data-chart="{title}"]')).to_be_visible()
    expect(page.get_by_text("time to first token p50 / p99")).to_be_visible()
    expect(page.locator('figure[data-chart="Generated tokens / s"]')).not_to_have_attribute("data-total", "0")
    shot(page, "22-endpoint-generation-charts")


def test_the_playground_streams_a_real_text_generation_model(
    page: Any, console_api: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import tiny_models

    folder = tiny_models.BUILDERS["text-generation"](tmp_path_factory.mktemp("console-gpt") / "model")
    spec = {"name": "console-gpt", "model": {"source": str(folder), "task": "text-generation"}}
    assert console_api.post("/v1/endpoints", json=spec).status_code == 201
    wait_for_state(console_api, "console-gpt", {"running"})
    page.goto(page.url.split("#")[0] + "#/endpoints/console-gpt/playground")
    expect(page.get_by_role("heading", name="Playground: console-gpt")).to_be_visible()
    page.get_by_label("Text").fill("Hello there")  # greedy on these random weights: 12 tokens, not EOS at once
    page.get_by_label("max_new_tokens").fill("12")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#pg-rate")).to_contain_text("tokens/s", timeout=30_000)  # the stream ended
    expect(page.locator("#pg-ttft")).to_contain_text(" ms")
    expect(page.locator("#pg-raw")).to_contain_text('"generated_text"')
    last = json.loads(page.locator("#pg-raw").inner_text().strip().splitlines()[-1])
    assert last["details"]["generated_tokens"] > 1
    expect(page.locator("#pg-tokens")).to_have_text(f"{last['details']['generated_tokens']} tokens")
    expect(page.locator("#pg-stream")).to_have_text(last["generated_text"])  # the tokens' texts add up to it
    shot(page, "23-playground-text-generation")
