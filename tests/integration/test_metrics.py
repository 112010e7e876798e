"""Metrics through the real server: exact counts after known invocations, latencies as the client saw them,
Prometheus text that the official parser reads, and the CLI's table."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import RunningServer, wait_for_state

NAME = "metered"


@pytest.fixture(scope="module")
def metered(api: httpx.Client, tiny_models: dict[str, Path]) -> Iterator[dict[str, list[float]]]:
    """Deploy, then a known sequence: 12 good invocations, 3 bad bodies (400); returns client-side timings."""
    spec = {
        "name": NAME,
        "model": {"source": str(tiny_models["text-classification"]), "task": "text-classification"},
        "compute": {"type": "serverless", "memory_mb": 2048, "max_concurrency": 5},
    }
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    wait_for_state(api, NAME, {"running"})
    seen: dict[str, list[float]] = {"total_ms": [], "model_ms": [], "overhead_ms": []}
    for i in range(12):
        started = time.perf_counter()
        response = api.post(f"/endpoints/{NAME}", json={"inputs": f"sentence {i}"})
        seen["total_ms"].append((time.perf_counter() - started) * 1000.0)
        assert response.status_code == 200, response.text
        seen["model_ms"].append(float(response.headers["x-model-latency-ms"]))
        seen["overhead_ms"].append(float(response.headers["x-overhead-latency-ms"]))
    for _ in range(3):
        assert api.post(f"/endpoints/{NAME}", content=b"{not json").status_code == 400
    assert api.post("/endpoints/no-such-endpoint", json={"inputs": "x"}).status_code == 404
    time.sleep(1.5)  # one sampler pass at least (levels, model setup time)
    yield seen
    api.delete(f"/v1/endpoints/{NAME}")


def test_counts_are_exact_and_latencies_match_the_client(api: httpx.Client, metered: dict[str, list[float]]) -> None:
    body = api.get(f"/v1/endpoints/{NAME}/metrics", params={"window": "5m"}).json()
    assert body["invocations"] == 15
    assert body["errors_4xx"] == 3 and body["errors_5xx"] == 0 and body["throttles"] == 0
    model, overhead = body["model_latency_ms"], body["overhead_latency_ms"]
    assert model["count"] == 15 and overhead["count"] == 15  # bad bodies reach the replica, which rejects them
    good_model = sorted(metered["model_ms"])
    # every figure the server keeps lies within what the client measured for the whole request
    assert model["max"] <= max(metered["total_ms"]) and overhead["max"] <= max(metered["total_ms"])
    assert min(good_model) * 0.5 <= model["p50"] <= max(metered["total_ms"])
    assert model["p50"] <= model["p90"] <= model["p99"] <= model["max"]
    assert abs(sum(metered["model_ms"]) - sum(good_model)) < 1e-6
    assert body["model_setup_time_ms"]["count"] >= 1 and body["model_setup_time_ms"]["avg"] > 0
    assert body["replicas"]["ready"] >= 1
    assert body["concurrent_executions"]["max_concurrency"] == 5
    assert body["memory_mb"]["limit"] == 2048 and 0 < body["memory_mb"]["max_per_replica"] < 2048
    assert body["bytes_in"] > 0 and body["bytes_out"] > 0
    assert sum(row["invocations"] for row in body["series"]) == 15


def test_window_and_unknown_endpoint_errors(api: httpx.Client, metered: dict[str, list[float]]) -> None:
    bad = api.get(f"/v1/endpoints/{NAME}/metrics", params={"window": "3d"})
    assert bad.status_code == 400 and "window" in bad.json()["error"]["message"]
    assert api.get("/v1/endpoints/no-such-endpoint/metrics").status_code == 404


def test_prometheus_text_parses_with_the_official_parser(server: RunningServer, api: httpx.Client,
                                                        metered: dict[str, list[float]]) -> None:  # fmt: skip
    assert httpx.get(f"{server.url}/metrics").status_code == 401  # behind the management token
    text = api.get("/metrics").text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    invocations = {
        s.labels["status"]: s.value for s in families["hubserve_invocations"].samples
        if s.labels.get("endpoint") == NAME and s.name == "hubserve_invocations_total"
    }  # fmt: skip
    assert invocations == {"200": 12.0, "400": 3.0}
    overhead = [s for s in families["hubserve_overhead_latency_seconds"].samples if s.labels.get("endpoint") == NAME]
    count = next(s.value for s in overhead if s.name.endswith("_count"))
    assert count == 15
    # sub-millisecond buckets exist, and the cold-start range reaches minutes
    bounds = {float(s.labels["le"]) for s in overhead if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"}
    assert min(bounds) <= 0.0001
    setup_bounds = {float(s.labels["le"]) for s in families["hubserve_model_setup_seconds"].samples
                    if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"}  # fmt: skip
    assert max(setup_bounds) >= 300
    replicas = [s for s in families["hubserve_replicas"].samples if s.labels.get("endpoint") == NAME]
    assert any(s.labels["state"] == "ready" and s.value >= 1 for s in replicas)
    assert "no-such-endpoint" not in text


def test_cli_prints_the_table_and_json(server: RunningServer, metered: dict[str, list[float]]) -> None:
    base = [sys.executable, "-m", "hubserve", "--url", server.url, "--token", server.token, "endpoint", "metrics", NAME]
    table = subprocess.run([*base, "--window", "5m"], capture_output=True, text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    assert "invocations" in table.stdout and "15" in table.stdout and "overhead" in table.stdout
    raw = subprocess.run([*base, "--json"], capture_output=True, text=True, timeout=60)
    assert raw.returncode == 0 and json.loads(raw.stdout)["invocations"] == 15
