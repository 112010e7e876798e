"""Streams' visibility end to end through the real server: time to first token and inter-token latency
in the metrics route, Prometheus and `hubserve endpoint metrics`; `Client.stream`/`AsyncClient.stream`
and `hubserve invoke --stream` printing tokens as they arrive.

The endpoint is custom code whose handler yields one TGI-shaped token event per part at a known pace
(tests/integration/models.py), so the figures have known values whatever model engine serves
text generation.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from hubserve.cli.main import app
from hubserve.errors import ModelError
from hubserve.sdk import AsyncClient, Client
from tests.integration.conftest import RunningServer, wait_for_state
from tests.integration.models import streaming_handler_model

NAME = "gen-visible"
DELAY_S = 0.3


@pytest.fixture(scope="module")
def streamer(api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = streaming_handler_model(tmp_path_factory.mktemp("gen-visible") / "model")
    spec = {"name": NAME, "model": {"source": str(folder), "task": "text-generation"}, "custom_code": True}
    response = api.post("/v1/endpoints", json=spec)
    assert response.status_code == 201, response.text
    wait_for_state(api, NAME, {"running"})
    return NAME


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Any:
    with Client(server.url, token=server.token) as sdk:
        yield sdk


def _generation(api: httpx.Client, streams: int, timeout: float = 10.0) -> dict[str, Any]:
    """The generation section once ``streams`` streams are recorded (a stream is recorded as it closes)."""
    deadline = time.monotonic() + timeout
    while True:
        generation = api.get(f"/v1/endpoints/{NAME}/metrics", params={"window": "5m"}).json()["generation"]
        if (generation is not None and generation["streams"] >= streams) or time.monotonic() > deadline:
            return generation
        time.sleep(0.1)


def test_client_stream_yields_tokens_as_they_are_made(client: Client, streamer: str) -> None:
    started = time.perf_counter()
    arrivals: list[float] = []
    texts: list[str] = []
    for event in client.stream(streamer, {"inputs": {"parts": 4, "delay_s": DELAY_S}}):
        arrivals.append(time.perf_counter() - started)
        texts.append(event.text)
    assert texts == ["t0", "t1", "t2", "t3"]
    assert arrivals[0] < arrivals[-1] - 2 * DELAY_S  # the first came long before the last: streamed, not buffered


def test_time_to_first_token_and_inter_token_latency_are_in_the_metrics(
    api: httpx.Client, client: Client, streamer: str
) -> None:
    before = _generation(api, 0)
    seen = before["streams"] if before else 0
    list(client.stream(streamer, {"inputs": {"parts": 5, "delay_s": DELAY_S}}))
    generation = _generation(api, seen + 1)
    assert generation["streams"] >= seen + 1
    ttft = generation["time_to_first_token_ms"]
    assert ttft["count"] >= 1 and 0 < ttft["p50"] < 2000
    itl = generation["inter_token_latency_ms"]
    assert itl["count"] >= 4
    assert DELAY_S * 1000 * 0.9 <= itl["p50"] <= DELAY_S * 1000 + 250  # the handler's pace, measured at the gateway
    assert generation["generated_tokens"] >= 5  # no engine here: the streamed parts are the tokens
    assert generation["tokens_per_second"]["avg"] > 0
    row = api.get(f"/v1/endpoints/{NAME}/metrics", params={"window": "5m"}).json()["series"][-1]
    assert row["itl_ms_p50"] is not None and row["ttft_ms_p50"] is not None

    text = api.get("/metrics").text
    assert f'hubserve_time_to_first_token_seconds_count{{endpoint="{NAME}"}}' in text
    assert f'hubserve_inter_token_latency_seconds_bucket{{endpoint="{NAME}",le="0.5"}}' in text
    assert f'hubserve_generated_tokens_total{{endpoint="{NAME}"}}' in text

    shown = CliRunner().invoke(app, ["endpoint", "metrics", NAME, "--window", "5m"],
                               env={"HUBSERVE_URL": api.base_url.__str__().rstrip("/"),
                                    "HUBSERVE_TOKEN": api.headers["authorization"].split()[-1], "COLUMNS": "160"})  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert "time to first token, ms" in shown.output and "inter-token latency, ms" in shown.output
    assert "generated tokens/s" in shown.output


def test_a_failure_mid_stream_raises_the_typed_error_after_the_tokens(client: Client, streamer: str) -> None:
    texts: list[str] = []
    with pytest.raises(ModelError, match="failed after 2 parts"):
        for event in client.stream(streamer, {"inputs": {"parts": 5, "fail_after": 2}}):
            texts.append(event.text)
    assert texts == ["t0", "t1"]


def test_async_client_stream(server: RunningServer, streamer: str) -> None:
    async def run() -> list[str]:
        async with AsyncClient(server.url, token=server.token) as sdk:
            return [event.text async for event in sdk.stream(streamer, {"inputs": {"parts": 3}})]

    assert asyncio.run(run()) == ["t0", "t1", "t2"]


def _cli(server: RunningServer, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HUBSERVE_URL": server.url, "HUBSERVE_TOKEN": server.token}
    return subprocess.Popen([sys.executable, "-m", "hubserve", "invoke", NAME, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)  # fmt: skip


def test_invoke_stream_prints_tokens_as_they_arrive(server: RunningServer, streamer: str) -> None:
    body = json.dumps({"inputs": {"parts": 5, "delay_s": DELAY_S}})
    process = _cli(server, body, "--stream")
    assert process.stdout is not None
    first = os.read(process.stdout.fileno(), 100)  # blocks until the CLI flushes its first token
    first_at = time.monotonic()
    rest = process.stdout.read()
    process.wait(60)
    ended_at = time.monotonic()
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
    assert first.startswith(b"t0")
    assert (first + rest).decode() == "t0t1t2t3t4\n"
    assert ended_at - first_at > 2 * DELAY_S  # printed while the rest was still being made


def test_invoke_stream_json_prints_one_event_per_line(server: RunningServer, streamer: str) -> None:
    process = _cli(server, '{"inputs": {"parts": 3}}', "--stream", "--json")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert [json.loads(line)["token"]["id"] for line in out.decode().splitlines()] == [0, 1, 2]


def test_invoke_stream_error_mid_stream_is_one_line_and_exit_1(server: RunningServer, streamer: str) -> None:
    process = _cli(server, '{"inputs": {"parts": 5, "fail_after": 1}}', "--stream")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert out.decode() == "t0\n"
    assert "ModelError" in err.decode() and "failed after 1 parts" in err.decode()
