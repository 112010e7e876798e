"""A multi-model endpoint through the real server: both dialects (boto3's TargetModel unchanged), routing,
LRU unloading within the budget, models added and removed live, the models listing and the metrics."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.integration.conftest import RunningServer, start_server, stop_server, wait_for_state
from tests.multimodel.conftest import build_classifier, relabel

NAME, SINGLE = "mme", "mme-single"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("mme-server") / "home")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def api(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, sized_model: Path) -> Path:
    folder = tmp_path_factory.mktemp("mme-models")
    for name in "abc":
        relabel(sized_model, folder / name, (f"{name}-neg", f"{name}-pos"))
    (folder / "notes.txt").write_text("not a model")  # files beside the models are ignored
    return folder


@pytest.fixture(scope="module")
def endpoint(api: httpx.Client, root: Path, sized_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A multi-model endpoint with room for two of its models, and a single-model endpoint beside it."""
    budget = int(2.5 * sum(f.stat().st_size for f in sized_model.glob("*.safetensors")) / 2**20)
    specs = [
        {"name": NAME, "model": {"source": str(root), "task": "text-classification", "multi_model": True,
                                 "models_memory_mb": budget},
         "compute": {"type": "dedicated", "instance": "cpu-medium", "min_replicas": 1, "max_replicas": 1}},
        {"name": SINGLE, "model": {"source": str(build_classifier(tmp_path_factory.mktemp("mme-one") / "m", ("x", "y")))}},
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
def runtime(server: RunningServer) -> Any:
    return boto3.client("sagemaker-runtime", endpoint_url=server.url, aws_access_key_id="hubserve",
                        aws_secret_access_key=server.token, region_name="us-east-1",
                        config=Config(retries={"total_max_attempts": 1}))  # fmt: skip


def _labels(answer: Any) -> set[str]:
    return {item["label"] for item in answer}


def _models(api: httpx.Client) -> dict[str, dict[str, Any]]:
    listing = api.get(f"/v1/endpoints/{NAME}/models")
    assert listing.status_code == 200, listing.text
    return {model["name"]: model for model in listing.json()["models"]}


def _invoke(api: httpx.Client, model: str) -> set[str]:
    answer = api.post(f"/endpoints/{NAME}/models/{model}", json={"inputs": "what a day"})
    assert answer.status_code == 200, answer.text
    return _labels(answer.json())


def _wait_listing(api: httpx.Client, check: Any, timeout: float = 10) -> dict[str, dict[str, Any]]:
    """The listing once ``check`` holds for it (replicas report within 50 ms of a change)."""
    deadline = time.monotonic() + timeout
    while True:
        models = _models(api)
        if check(models) or time.monotonic() > deadline:
            return models
        time.sleep(0.1)


def test_each_model_answers_by_name_on_the_hf_route(api: httpx.Client, endpoint: str) -> None:
    assert _invoke(api, "a") <= {"a-neg", "a-pos"}
    assert _invoke(api, "b") <= {"b-neg", "b-pos"}


def test_boto3_target_model_unchanged(api: httpx.Client, endpoint: str, runtime: Any) -> None:
    for target in ("b", "b.tar.gz"):  # SageMaker clients name archives; the folder answers
        answer = runtime.invoke_endpoint(EndpointName=NAME, TargetModel=target, ContentType="application/json",
                                         Body=b'{"inputs": "what a day"}')  # fmt: skip
        assert _labels(json.loads(answer["Body"].read())) <= {"b-neg", "b-pos"}


def test_unknown_models_and_missing_names_get_clear_errors(api: httpx.Client, endpoint: str, runtime: Any) -> None:
    missing = api.post(f"/endpoints/{NAME}/models/nope", json={"inputs": "x"})
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "TargetModelNotFound" and "nope" in missing.json()["error"]["message"]
    with pytest.raises(runtime.exceptions.ValidationError, match="nope"):
        runtime.invoke_endpoint(EndpointName=NAME, TargetModel="nope", Body=b'{"inputs": "x"}', ContentType="application/json")
    unnamed = api.post(f"/endpoints/{NAME}", json={"inputs": "x"})
    assert unnamed.status_code == 400 and "TargetModel" in unnamed.json()["error"]["message"]
    path = api.post(f"/endpoints/{NAME}/invocations", json={"inputs": "x"}, headers={"X-Amzn-SageMaker-Target-Model": "../a"})
    assert path.status_code == 400 and "not a model name" in path.json()["message"]
    single = api.post(f"/endpoints/{SINGLE}/models/a", json={"inputs": "x"})
    assert single.status_code == 400 and "serves one model" in single.json()["error"]["message"]


def test_least_recently_used_is_unloaded_and_the_listing_says_so(api: httpx.Client, endpoint: str) -> None:
    _invoke(api, "a")
    _invoke(api, "b")
    _invoke(api, "a")  # b is the least recently used of the two
    _invoke(api, "c")
    models = _wait_listing(api, lambda m: m["c"]["state"] == "loaded" and m["b"]["state"] == "unloaded")
    assert {name: models[name]["state"] for name in "abc"} == {"a": "loaded", "b": "unloaded", "c": "loaded"}
    loaded = models["a"]
    assert loaded["available"] and loaded["replicas"] and loaded["size_mb"] > 10 and loaded["load_s"] > 0
    assert loaded["last_used"] > time.time() - 120 and loaded["hits"] >= 1 and loaded["loads"] == 1
    assert models["b"]["unloads"] >= 1


def test_models_added_and_removed_live(api: httpx.Client, endpoint: str, root: Path) -> None:
    relabel(root / "a", root / "late", ("late-neg", "late-pos"))
    assert "late" in _models(api)
    assert _invoke(api, "late") <= {"late-neg", "late-pos"}
    shutil.rmtree(root / "late")
    gone = api.post(f"/endpoints/{NAME}/models/late", json={"inputs": "x"})
    assert gone.status_code == 404
    models = _wait_listing(api, lambda m: m["late"]["state"] == "unloaded")
    assert models["late"]["state"] == "unloaded" and not models["late"]["available"]


def test_metrics_count_loads_hits_and_misses_per_model(api: httpx.Client, endpoint: str) -> None:
    _invoke(api, "a")
    deadline = time.monotonic() + 10
    while True:
        text = api.get("/metrics").text
        if 'hubserve_multi_model_hits_total{endpoint="mme",model="a"}' in text or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    for family in ("loads", "misses", "hits"):
        assert f'hubserve_multi_model_{family}_total{{endpoint="mme",model="a"}}' in text, text[-2000:]
    assert 'hubserve_multi_model_load_seconds_count{endpoint="mme",model="a"}' in text


def test_the_listing_of_a_single_model_endpoint_is_refused(api: httpx.Client, endpoint: str) -> None:
    answer = api.get(f"/v1/endpoints/{SINGLE}/models")
    assert answer.status_code == 400 and "multi_model" in answer.json()["error"]["message"]
    assert api.get("/v1/endpoints/nothing/models").status_code == 404


def test_the_sagemaker_workflow_creates_a_multi_model_endpoint(server: RunningServer, root: Path, runtime: Any) -> None:
    """create_model with Mode MultiModel, an endpoint config and an endpoint, as the seed's boto3 code does."""
    sm = boto3.client("sagemaker", endpoint_url=server.url, aws_access_key_id="hubserve",
                      aws_secret_access_key=server.token, region_name="us-east-1")  # fmt: skip
    sm.create_model(ModelName="mme-sm-model", PrimaryContainer={
        "Image": "hf-inference", "Mode": "MultiModel", "ModelDataUrl": str(root),
        "Environment": {"HF_TASK": "text-classification"}})  # fmt: skip
    assert sm.describe_model(ModelName="mme-sm-model")["PrimaryContainer"]["Mode"] == "MultiModel"
    sm.create_endpoint_config(EndpointConfigName="mme-sm-config", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "mme-sm-model", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])  # fmt: skip
    sm.create_endpoint(EndpointName="mme-sm", EndpointConfigName="mme-sm-config")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="mme-sm", WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    try:
        answer = runtime.invoke_endpoint(EndpointName="mme-sm", TargetModel="c.tar.gz", ContentType="application/json",
                                         Body=b'{"inputs": "what a day"}')  # fmt: skip
        assert _labels(json.loads(answer["Body"].read())) <= {"c-neg", "c-pos"}
        with pytest.raises(runtime.exceptions.ValidationError, match="TargetModel"):
            runtime.invoke_endpoint(EndpointName="mme-sm", ContentType="application/json", Body=b'{"inputs": "x"}')
        with pytest.raises(sm.exceptions.ClientError, match="ModelDataUrl"):
            sm.create_model(ModelName="mme-sm-bad", PrimaryContainer={"Image": "x", "Mode": "MultiModel"})
    finally:
        sm.delete_endpoint(EndpointName="mme-sm")
