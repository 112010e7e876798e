"""model.runtime end to end: a replica serves ONNX Runtime, and describe says which runtime it chose."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import wait_for_state

ENDPOINTS = {"rt-int8": "onnx-int8", "rt-auto": "auto"}


@pytest.fixture(scope="module")
def runtime_endpoints(api: httpx.Client, tiny_models: dict[str, Path]) -> dict[str, dict]:
    """Both endpoints created together (their replicas share one export through the lock), then awaited."""
    for name, runtime in ENDPOINTS.items():
        model = {"source": str(tiny_models["text-classification"]), "task": "text-classification", "runtime": runtime}
        response = api.post("/v1/endpoints", json={"name": name, "model": model})
        assert response.status_code == 201, response.text
    described = {}
    for name in ENDPOINTS:
        description = wait_for_state(api, name, {"running", "failed"}, timeout=300)
        assert description["state"] == "running", description
        described[name] = description
    yield described
    for name in ENDPOINTS:
        api.delete(f"/v1/endpoints/{name}")


def _invoke(api: httpx.Client, name: str) -> list[dict]:
    response = api.post(f"/endpoints/{name}", json={"inputs": "I love this movie", "parameters": {"top_k": 2}})
    assert response.status_code == 200, response.text
    result = response.json()
    assert sorted(item["label"] for item in result) == ["NEGATIVE", "POSITIVE"]
    assert abs(sum(item["score"] for item in result) - 1.0) < 1e-3
    return result


def test_onnx_int8_endpoint(api: httpx.Client, runtime_endpoints: dict[str, dict]) -> None:
    _invoke(api, "rt-int8")
    runtime = api.get("/v1/endpoints/rt-int8").json()["runtime"]
    assert runtime["requested"] == "onnx-int8" and runtime["chosen"] == "onnx-int8", runtime
    assert "fallback_reason" not in runtime


def test_auto_endpoint_shows_its_timings(api: httpx.Client, runtime_endpoints: dict[str, dict]) -> None:
    _invoke(api, "rt-auto")
    runtime = api.get("/v1/endpoints/rt-auto").json()["runtime"]
    assert runtime["requested"] == "auto" and runtime["chosen"] in ("torch", "onnx", "onnx-int8"), runtime
    assert runtime["decision"] in ("timed", "cached")
    assert set(runtime["timings_ms"]) | set(runtime.get("rejected", {})) == {"torch", "onnx", "onnx-int8"}
    assert all(ms > 0 for ms in runtime["timings_ms"].values())
