"""The SDK and a multi-model endpoint through the real server: ``endpoint_models`` (sync and async), ``invoke``
with ``target_model`` in both dialects, and the typed errors for unknown models and single-model endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hubserve.errors import EndpointNotFound, TargetModelNotFound, ValidationError
from hubserve.sdk import AsyncClient, Client
from tests.integration.conftest import RunningServer, start_server, stop_server, wait_for_state
from tests.multimodel.conftest import build_classifier, relabel

NAME, SINGLE = "mme-sdk", "mme-sdk-single"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("mme-sdk-server") / "home")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[Client]:
    with Client(server.url, server.token) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def endpoint(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Three small models (about 4 MB each) behind one dedicated replica, and a single-model endpoint beside it."""
    root = tmp_path_factory.mktemp("mme-sdk-models")
    base = build_classifier(tmp_path_factory.mktemp("mme-sdk-base") / "m", ("a-neg", "a-pos"))
    relabel(base, root / "a", ("a-neg", "a-pos"))
    relabel(base, root / "b", ("b-neg", "b-pos"))
    relabel(base, root / "c", ("c-neg", "c-pos"))
    specs = [
        {"name": NAME, "model": {"source": str(root), "task": "text-classification", "multi_model": True,
                                 "models_memory_mb": 64},
         "compute": {"type": "dedicated", "instance": "cpu-small", "min_replicas": 1, "max_replicas": 1}},
        {"name": SINGLE, "model": {"source": str(base)}},
    ]  # fmt: skip
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=120) as api:
        for spec in specs:
            created = api.post("/v1/endpoints", json=spec)
            assert created.status_code == 201, created.text
        for spec in specs:
            assert wait_for_state(api, spec["name"], {"running", "failed"}, timeout=300)["state"] == "running"
        yield NAME
        for spec in specs:
            api.delete(f"/v1/endpoints/{spec['name']}")


def _labels(answer: Any) -> set[str]:
    return {item["label"] for item in answer}


def _wait_models(client: Client, check: Any, timeout: float = 10) -> dict[str, Any]:
    """The listing once ``check`` holds for it (replicas report their models within moments of a change)."""
    deadline = time.monotonic() + timeout
    while True:
        listing = client.endpoint_models(NAME)
        if check({m["name"]: m for m in listing["models"]}) or time.monotonic() > deadline:
            return listing
        time.sleep(0.1)


def test_the_listing_before_any_call(client: Client, endpoint: str) -> None:
    listing = client.endpoint_models(endpoint)
    assert listing["endpoint"] == NAME and listing["models_memory_mb"] == 64
    assert {m["name"]: m["state"] for m in listing["models"]} == {"a": "unloaded", "b": "unloaded", "c": "unloaded"}
    assert all(m["available"] for m in listing["models"])


def test_invoke_names_the_model_in_either_dialect(client: Client, endpoint: str) -> None:
    hf = client.invoke(NAME, "what a day", target_model="a")
    assert hf.status == 200 and _labels(hf.body) <= {"a-neg", "a-pos"}
    sagemaker = client.invoke(NAME, {"inputs": "what a day"}, dialect="sagemaker", target_model="b")
    assert _labels(sagemaker.body) <= {"b-neg", "b-pos"}
    listing = _wait_models(client, lambda m: m["a"]["state"] == m["b"]["state"] == "loaded")
    models = {m["name"]: m for m in listing["models"]}
    assert models["a"]["state"] == "loaded" and models["b"]["state"] == "loaded", models
    assert models["a"]["misses"] == 1 and models["a"]["loads"] == 1 and models["a"]["replicas"]
    replica = models["a"]["replicas"][0]
    assert listing["replicas"][replica]["budget_mb"] == 64 and listing["replicas"][replica]["used_mb"] > 0


def test_a_second_call_is_a_hit(client: Client, endpoint: str) -> None:
    client.invoke(NAME, "again", target_model="a")
    # A replica reports its counters when a model loads or unloads (not on every hit): load c to hear of a's hit.
    client.invoke(NAME, "again", target_model="c")
    listing = _wait_models(client, lambda m: m["a"]["hits"] >= 1 and m["c"]["state"] == "loaded")
    assert {m["name"]: m for m in listing["models"]}["a"]["hits"] >= 1


def test_unknown_models_raise_the_sdks_error_types(client: Client, endpoint: str) -> None:
    with pytest.raises(TargetModelNotFound, match="nope") as missing:
        client.invoke(NAME, "x", target_model="nope")
    assert missing.value.status == 404
    with pytest.raises(ValidationError, match="nope"):  # SageMaker's runtime answers a missing TargetModel so
        client.invoke(NAME, "x", dialect="sagemaker", target_model="nope")
    with pytest.raises(ValidationError, match="TargetModel"):  # a multi-model endpoint needs a model named
        client.invoke(NAME, "x")
    with pytest.raises(ValueError, match="target_model"):
        client.invoke(NAME, "x", target_model="")


def test_listing_a_single_model_or_unknown_endpoint_is_refused(client: Client, endpoint: str) -> None:
    with pytest.raises(ValidationError, match="multi_model") as single:
        client.endpoint_models(SINGLE)
    assert single.value.status == 400
    with pytest.raises(EndpointNotFound):
        client.endpoint_models("nothing-here")
    with pytest.raises(ValidationError, match="serves one model"):
        client.invoke(SINGLE, "x", target_model="a")


def test_the_async_client_does_the_same(server: RunningServer, endpoint: str) -> None:
    async def run() -> tuple[dict[str, Any], Any]:
        async with AsyncClient(server.url, server.token) as aio:
            answer = await aio.invoke(NAME, "async day", target_model="b")
            listing = await aio.endpoint_models(NAME)
            with pytest.raises(TargetModelNotFound):
                await aio.invoke(NAME, "x", target_model="nope")
            with pytest.raises(ValidationError, match="multi_model"):
                await aio.endpoint_models(SINGLE)
            return listing, answer

    listing, answer = asyncio.run(run())
    assert _labels(answer.body) <= {"b-neg", "b-pos"}
    assert {m["name"] for m in listing["models"]} == {"a", "b", "c"}
