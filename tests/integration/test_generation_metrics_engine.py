"""A real text-generation endpoint (a tiny GPT-2 with random weights, served by the replica's
continuous-batching engine) seen from outside: `Client.stream` and `hubserve invoke --stream` get its
tokens, and the metrics route, Prometheus and `hubserve endpoint metrics` show time to first token,
inter-token latency, generated tokens (streamed and not: the engine counts them) and the engine's levels.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hubserve.sdk import Client
from tests.integration.conftest import RunningServer, wait_for_state

NAME = "gen-engine"


@pytest.fixture(scope="module")
def gpt(api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    import tiny_models

    folder = tiny_models.BUILDERS["text-generation"](tmp_path_factory.mktemp("gen-engine") / "model")
    spec = {"name": NAME, "model": {"source": str(folder), "task": "text-generation"}}
    response = api.post("/v1/endpoints", json=spec)
    assert response.status_code == 201, response.text
    wait_for_state(api, NAME, {"running"})
    return NAME


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[Client]:
    with Client(server.url, token=server.token) as sdk:
        yield sdk


def _metrics(api: httpx.Client) -> dict[str, Any]:
    return api.get(f"/v1/endpoints/{NAME}/metrics", params={"window": "5m"}).json()  # type: ignore[no-any-return]


def _until(api: httpx.Client, check: Any, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        generation = _metrics(api)["generation"]
        if check(generation) or time.monotonic() > deadline:
            return generation  # type: ignore[no-any-return]
        time.sleep(0.2)


def test_the_generation_section_is_there_before_any_request(api: httpx.Client, gpt: str) -> None:
    generation = _until(api, lambda g: g is not None)
    assert generation is not None and "time_to_first_token_ms" in generation


def test_streamed_tokens_are_timed_and_counted(api: httpx.Client, client: Client, gpt: str) -> None:
    body = {"inputs": "Hello there", "parameters": {"max_new_tokens": 12}}
    events = list(client.stream(gpt, body))
    assert events and isinstance(events[-1].data.get("generated_text"), str)
    assert "".join(e.text for e in events if not e.data["token"].get("special")) == events[-1].data["generated_text"]
    made = events[-1].data["details"]["generated_tokens"]  # the last event may carry only the summary
    generation = _until(api, lambda g: g["streams"] >= 1 and g["generated_tokens"] >= made)
    assert generation["time_to_first_token_ms"]["count"] >= 1
    assert generation["inter_token_latency_ms"]["count"] >= made - 1
    assert generation["generated_tokens"] >= made


def test_tokens_of_answers_that_are_not_streamed_count_too(api: httpx.Client, client: Client, gpt: str) -> None:
    before = _until(api, lambda g: True)["generated_tokens"]
    answer = client.invoke(gpt, {"inputs": "Hello there", "parameters": {"max_new_tokens": 6}})
    assert answer.status == 200 and "generated_text" in answer.body[0]
    after = _until(api, lambda g: g["generated_tokens"] > before)
    assert after["generated_tokens"] > before  # from the engine's counter: the route parsed nothing for it


def test_sequences_running_are_sampled_while_streams_run(api: httpx.Client, server: RunningServer, gpt: str) -> None:
    results: list[int] = []

    def one(seed: int) -> None:
        # Sampled: a random-weight model's greedy answer may be EOS at once; a sampled one of 200 hardly is.
        parameters = {"max_new_tokens": 200, "do_sample": True, "seed": seed}
        with Client(server.url, token=server.token) as own:
            results.append(len(list(own.stream(gpt, {"inputs": "Hello there", "parameters": parameters}))))

    threads = [threading.Thread(target=one, args=(seed,)) for seed in range(5)]  # max_concurrency is 5
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    took = time.monotonic() - started
    assert len(results) == 5
    generation = _until(api, lambda g: g["streams"] >= 5)
    assert generation["sequences_running"]["max"] >= 1 and generation["batch_size"]["max"] >= 1, (
        results,
        took,
        generation,
    )
    assert "current" in generation["sequences_running"]
    assert generation["tokens_per_second"]["avg"] > 0

    text = api.get("/metrics").text
    for series in ("hubserve_time_to_first_token_seconds_count", "hubserve_inter_token_latency_seconds_count",
                   "hubserve_generated_tokens_total", "hubserve_sequences_running", "hubserve_batch_size"):  # fmt: skip
        assert f'{series}{{endpoint="{NAME}"}}' in text, series


def test_cli_stream_and_metrics(server: RunningServer, gpt: str) -> None:
    env = {**os.environ, "HUBSERVE_URL": server.url, "HUBSERVE_TOKEN": server.token, "COLUMNS": "160"}
    run = [sys.executable, "-m", "hubserve"]
    streamed = subprocess.run([*run, "invoke", NAME, '{"inputs": "Hi", "parameters": {"max_new_tokens": 5}}', "--stream"],
                              capture_output=True, env=env, timeout=120)  # fmt: skip
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout.endswith(b"\n")
    shown = subprocess.run(
        [*run, "endpoint", "metrics", NAME, "--window", "5m"], capture_output=True, env=env, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    for label in (b"time to first token, ms", b"inter-token latency, ms", b"sequences running", b"batch size"):
        assert label in shown.stdout


def test_an_endpoint_that_does_not_generate_has_no_generation_section(
    api: httpx.Client, tiny_models: dict[str, Path]
) -> None:
    spec = {
        "name": "gen-not",
        "model": {"source": str(tiny_models["text-classification"]), "task": "text-classification"},
    }
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    wait_for_state(api, "gen-not", {"running"})
    assert api.post("/endpoints/gen-not", json={"inputs": "fine"}).status_code == 200
    time.sleep(1.2)  # a sampler round
    assert api.get("/v1/endpoints/gen-not/metrics").json()["generation"] is None
    api.delete("/v1/endpoints/gen-not")
