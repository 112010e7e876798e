"""Serverless and autoscaled endpoints through a real server with short windows."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import TOKEN, RunningServer, start_server, stop_server, wait_for_state
from tests.integration.models import faulty_handler_model

FAST_SCALING = {"HUBSERVE_SCALE_DOWN_WINDOW_S": "1", "HUBSERVE_AUTOSCALE_INTERVAL_S": "0.1"}


@pytest.fixture(scope="module")
def scaling_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("scaling") / "home", extra_env=FAST_SCALING)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def sapi(scaling_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=scaling_server.url, headers=scaling_server.headers(), timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def handler_model(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(faulty_handler_model(tiny_models["text-classification"], tmp_path_factory.mktemp("handler") / "model"))


def deploy(api: httpx.Client, name: str, source: str, compute: dict, env: dict | None = None) -> dict:
    spec = {"name": name, "model": {"source": source, "task": "text-classification"}, "compute": compute,
            "custom_code": True, "env": env or {}}  # fmt: skip
    response = api.post("/v1/endpoints", json=spec)
    assert response.status_code == 201, response.text
    return wait_for_state(api, name, {"running"})


def concurrently(url: str, name: str, bodies: list[dict]) -> list[httpx.Response]:
    def call(body: dict) -> httpx.Response:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
            return client.post(f"/endpoints/{name}", json=body)

    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(call, bodies))


def replicas_started(server: RunningServer, name: str) -> int:
    return len(list((server.home / "logs" / name).glob("*.log")))


def test_scales_to_zero_when_idle_and_back(sapi: httpx.Client, handler_model: str) -> None:
    deploy(sapi, "idle", handler_model, {"type": "serverless", "idle_timeout_s": 2})
    warm = sapi.post("/endpoints/idle", json={"inputs": "warm"})
    assert warm.status_code == 200 and warm.headers["x-cold-start"] == "false"
    zero = wait_for_state(sapi, "idle", {"scaledToZero"}, timeout=30)
    assert zero["replicas"]["ready"] == 0 and zero["replicas"]["desired"] == 0
    cold = sapi.post("/endpoints/idle", json={"inputs": "wake up"})
    assert cold.status_code == 200 and cold.headers["x-cold-start"] == "true"
    described = sapi.get("/v1/endpoints/idle").json()
    assert described["state"] == "running" and described["cold_starts"] == 1
    assert described["model_setup_ms"]["last"] > 0
    sapi.delete("/v1/endpoints/idle")


def test_burst_to_a_cold_endpoint_is_all_answered(scaling_server: RunningServer, sapi: httpx.Client, handler_model: str) -> None:
    deploy(sapi, "burst", handler_model, {"type": "serverless", "max_concurrency": 8, "idle_timeout_s": 60})
    zero = sapi.post("/v1/endpoints/burst/scale-to-zero")
    assert zero.status_code == 200 and zero.json()["state"] == "scaledToZero"
    before = replicas_started(scaling_server, "burst")
    responses = concurrently(scaling_server.url, "burst", [{"inputs": "slow"}] * 8)
    assert [r.status_code for r in responses] == [200] * 8
    assert all(r.headers["x-cold-start"] == "true" for r in responses)
    # 8 held invocations at 4 slots per replica: two replicas were started for them.
    assert replicas_started(scaling_server, "burst") - before == 2
    sapi.delete("/v1/endpoints/burst")


def test_throttles_exactly_past_max_concurrency(scaling_server: RunningServer, sapi: httpx.Client, handler_model: str) -> None:
    deploy(sapi, "narrow", handler_model, {"type": "serverless", "max_concurrency": 2})
    responses = concurrently(scaling_server.url, "narrow", [{"inputs": "slow"}] * 3)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429]
    throttled = next(r for r in responses if r.status_code == 429)
    assert throttled.headers["Retry-After"] == "1" and throttled.json()["error"]["type"] == "ThrottlingException"
    assert sapi.get("/v1/endpoints/narrow").json()["throttles"] == 1
    sapi.delete("/v1/endpoints/narrow")


def test_provisioned_concurrency_stays_warm(sapi: httpx.Client, handler_model: str) -> None:
    deploy(sapi, "warm", handler_model, {"type": "serverless", "provisioned_concurrency": 1, "idle_timeout_s": 1})
    time.sleep(3)
    described = sapi.get("/v1/endpoints/warm").json()
    assert described["state"] == "running" and described["replicas"]["ready"] == 1
    assert sapi.post("/endpoints/warm", json={"inputs": "hi"}).headers["x-cold-start"] == "false"
    sapi.delete("/v1/endpoints/warm")


def test_memory_breach_by_a_request_fails_it_alone_and_replaces_the_replica(sapi: httpx.Client, handler_model: str) -> None:
    deploy(sapi, "small", handler_model, {"type": "serverless", "memory_mb": 1024})
    breach = sapi.post("/endpoints/small", json={"inputs": "eat"})
    assert breach.status_code == 424, breach.text
    message = breach.json()["error"]["message"]
    assert "while serving this request" in message and "memory size of 1024 MB" in message
    assert sapi.post("/endpoints/small", json={"inputs": "fine"}, timeout=120).status_code == 200  # a new replica
    assert sapi.get("/v1/endpoints/small").json()["state"] == "running"  # the endpoint never failed
    assert sapi.get("/health").status_code == 200  # the server is fine
    sapi.delete("/v1/endpoints/small")


def test_dedicated_autoscaling_up_and_down(scaling_server: RunningServer, sapi: httpx.Client, handler_model: str) -> None:
    compute = {"type": "dedicated", "instance": "cpu-small", "min_replicas": 1, "max_replicas": 2, "target_concurrency": 1}
    deploy(sapi, "auto", handler_model, compute)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        burst = pool.submit(concurrently, scaling_server.url, "auto", [{"inputs": "slow"}] * 6)
        peak = 0
        while not burst.done():
            peak = max(peak, sapi.get("/v1/endpoints/auto").json()["replicas"]["ready"])
            time.sleep(0.1)
        assert [r.status_code for r in burst.result()] == [200] * 6
    assert peak == 2
    deadline = time.monotonic() + 30
    while sapi.get("/v1/endpoints/auto").json()["replicas"]["ready"] != 1:
        assert time.monotonic() < deadline, "never scaled back down to min_replicas"
        time.sleep(0.2)
    sapi.delete("/v1/endpoints/auto")


def test_dedicated_min_zero_scales_to_zero(sapi: httpx.Client, handler_model: str) -> None:
    deploy(sapi, "dzero", handler_model, {"type": "dedicated", "min_replicas": 0, "max_replicas": 1, "scale_to_zero_after_s": 2})
    assert wait_for_state(sapi, "dzero", {"scaledToZero"}, timeout=30)["replicas"]["ready"] == 0
    assert sapi.post("/endpoints/dzero", json={"inputs": "back"}).headers["x-cold-start"] == "true"
    sapi.delete("/v1/endpoints/dzero")


def test_gpu_sizes_need_a_gpu(sapi: httpx.Client, handler_model: str) -> None:
    import shutil

    spec = {"name": "gpu", "model": {"source": handler_model}, "compute": {"type": "dedicated", "instance": "gpu-small"}}
    response = sapi.post("/v1/endpoints", json=spec)
    if shutil.which("nvidia-smi"):
        assert response.status_code == 201
        sapi.delete("/v1/endpoints/gpu")
    else:
        assert response.status_code == 422 and response.json()["error"]["details"][0]["field"] == "compute.instance"


def test_cold_start_timeout_fails_the_request_clearly(tmp_path: Path, handler_model: str) -> None:
    server = start_server(tmp_path / "home", extra_env={**FAST_SCALING, "HUBSERVE_COLD_START_TIMEOUT_S": "1"})
    try:
        with httpx.Client(base_url=server.url, headers=server.headers(), timeout=60) as api:
            spec = {"name": "sluggish", "model": {"source": handler_model, "task": "text-classification"},
                    "custom_code": True, "env": {"TEST_INIT_SLEEP_S": "4"}}  # fmt: skip
            api.post("/v1/endpoints", json=spec).raise_for_status()
            held = api.post("/endpoints/sluggish", json={"inputs": "too soon"})
            assert held.status_code == 503 and "cold-start timeout" in held.json()["error"]["message"]
            assert "cold-start timeout" in (api.get("/v1/endpoints/sluggish").json()["reason"] or "")
            wait_for_state(api, "sluggish", {"running"})
            assert api.post("/endpoints/sluggish", json={"inputs": "now"}).status_code == 200
    finally:
        stop_server(server)
