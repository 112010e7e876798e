"""`hubserve bench` (and `hubserve cost --endpoint`) as subprocesses against the real session server.

The endpoint runs a custom handler that appends one byte to a file per call, so the server's
side of the count is read from disk, not from bench's own report.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import RunningServer, wait_for_state

NAME = "bench-count"

COUNTING_HANDLER = '''"""Answers at once and counts its calls: one byte appended to $BENCH_COUNT_FILE per call."""

import os


class EndpointHandler:
    def __init__(self, path: str = "") -> None:
        self.count_file = os.environ["BENCH_COUNT_FILE"]

    def __call__(self, data: dict) -> dict:
        fd = os.open(self.count_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
        return {"ok": True}
'''


@pytest.fixture(scope="module")
def counted(api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A serverless no-op endpoint whose handler counts the calls that reached it; returns the count file."""
    folder = tmp_path_factory.mktemp("bench-handler")
    (folder / "handler.py").write_text(COUNTING_HANDLER)
    count_file = folder / "calls"
    spec = {"name": NAME, "model": {"source": str(folder), "task": "text-classification"}, "custom_code": True,
            "compute": {"type": "serverless", "memory_mb": 1024, "max_concurrency": 8},
            "env": {"BENCH_COUNT_FILE": str(count_file)}}  # fmt: skip
    response = api.post("/v1/endpoints", json=spec)
    assert response.status_code == 201, response.text
    wait_for_state(api, NAME, {"running", "scaledToZero"})
    return count_file


def calls(count_file: Path) -> int:
    return count_file.stat().st_size if count_file.exists() else 0


def hubserve(server: RunningServer, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "hubserve", "--url", server.url, "--token", server.token, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def bench_json(server: RunningServer, *args: str, exit_code: int = 0) -> dict[str, Any]:
    done = hubserve(server, "bench", *args, "--json")
    assert done.returncode == exit_code, done.stderr
    return json.loads(done.stdout)


def test_counts_match_the_server(server: RunningServer, counted: Path) -> None:
    before = calls(counted)
    report = bench_json(server, NAME, "-n", "50", "-c", "4")
    assert report["target"] == f"{server.url}/endpoints/{NAME}"
    assert (report["requests"], report["completed"], report["succeeded"], report["failed"]) == (50, 50, 50, 0)
    assert report["statuses"] == {"200": 50}
    assert calls(counted) - before == 50  # the handler ran exactly once per request bench counted
    assert report["hubserve"] is True
    latency, model, overhead = report["latency_ms"], report["model_latency_ms"], report["overhead_latency_ms"]
    assert latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert model["p50"] + overhead["p50"] <= latency["max"]  # the server's share fits inside the client's
    assert sum(b["count"] for b in report["histogram"]) == 50
    assert report["throughput_rps"] > 0 and report["client_cpu_s"] > 0


def test_cold_start_is_seen(server: RunningServer, api: httpx.Client, counted: Path) -> None:
    api.post(f"/v1/endpoints/{NAME}/scale-to-zero").raise_for_status()
    wait_for_state(api, NAME, {"scaledToZero"})
    report = bench_json(server, NAME, "-n", "5", "-c", "1")
    assert report["cold_starts"] == 1 and report["statuses"] == {"200": 5}
    assert report["latency_ms"]["max"] > report["latency_ms"]["p50"]  # the first one waited for a replica


def test_bad_payloads_are_failures_by_status(server: RunningServer, counted: Path) -> None:
    before = calls(counted)
    report = bench_json(server, NAME, "-n", "20", "-c", "2", "--data", "not json at all", exit_code=1)
    assert (report["requests"], report["succeeded"], report["failed"]) == (20, 0, 20)
    assert report["failures_by_status"] == {"400": 20} and report["errors"] == {}
    assert report["first_failure"]["status"] == 400 and "not valid JSON" in report["first_failure"]["message"]
    assert calls(counted) == before  # rejected before the handler
    text = hubserve(server, "bench", NAME, "-n", "4", "--data", "not json at all")
    assert text.returncode == 1, text.stderr  # failures show in the exit code, with the first one's message
    assert "4 sent, 0 succeeded, 4 failed" in text.stdout and "400: 4" in text.stdout
    assert text.stderr.startswith("Error: 4 of 4 requests failed; the first: 400: ") and "not valid JSON" in text.stderr


def test_duration_bounds_the_run(server: RunningServer, counted: Path) -> None:
    before = calls(counted)
    started = time.monotonic()
    report = bench_json(server, NAME, "-n", "1000000", "-c", "2", "--duration", "1")
    assert time.monotonic() - started < 10  # process start, 1 s of load, the report
    assert 1.0 <= report["wall_s"] < 1.5
    assert 0 < report["completed"] < 1_000_000 and report["failed"] == 0
    assert calls(counted) - before == report["completed"]


def test_open_loop_rate(server: RunningServer, counted: Path) -> None:
    report = bench_json(server, NAME, "--rate", "40", "--duration", "0.5", "-c", "4")
    assert report["rate"] == 40 and report["requests"] == 20  # arrivals due at 0, 25, ..., 475 ms
    assert report["statuses"] == {"200": 20}


def test_unreachable_target_exits_1(server: RunningServer) -> None:
    done = hubserve(server, "bench", "http://127.0.0.1:9/nothing", "-n", "3", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["completed"] == 0 and report["failed"] == 3 and report["errors"]


def test_cost_of_an_endpoints_traffic(server: RunningServer, counted: Path) -> None:
    """Prices the metrics route's answer; until that route exists, a clear one-line error."""
    missing = hubserve(server, "cost", "--endpoint", "no-such-endpoint")
    assert missing.returncode == 1 and missing.stderr.startswith("Error (404 EndpointNotFound)")
    done = hubserve(server, "cost", "--endpoint", NAME, "--window", "1h", "--json")
    probe = httpx.get(f"{server.url}/v1/endpoints/{NAME}/metrics", params={"window": "1h"}, headers=server.headers())
    if probe.status_code == 404:
        assert done.returncode == 1
        assert "no per-endpoint metrics" in done.stderr and "404" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        return
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["endpoint"] == NAME and report["memory_mb"] == 1024 and report["invocations"] > 0
    assert report["serverless"]["compute"] == pytest.approx(report["billed_ms"] / 1000 * 0.00002)
