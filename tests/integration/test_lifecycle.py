"""An endpoint's life through the real server: create, invoke, update, pause, resume, delete, errors."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import RunningServer, wait_for_state
from tests.integration.models import faulty_handler_model


def test_openapi_is_published(server: RunningServer) -> None:
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert {"/v1/endpoints", "/v1/endpoints/{name}", "/endpoints/{name}", "/endpoints/{name}/invocations"} <= set(paths)


def test_management_requires_the_token(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/v1/endpoints").status_code == 401
    wrong = httpx.get(f"{server.url}/v1/endpoints", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "UnauthorizedError"
    assert server.token not in server.log_path.read_text()


def test_full_lifecycle(api: httpx.Client, tiny_models: dict[str, Path]) -> None:
    spec = {
        "name": "life",
        "model": {"source": str(tiny_models["text-classification"])},  # task inferred from the config
        "compute": {"type": "serverless", "memory_mb": 2048, "max_concurrency": 10},
    }
    created = api.post("/v1/endpoints", json=spec)
    assert created.status_code == 201, created.text
    assert created.json()["model"]["task"] == "text-classification"
    assert api.post("/v1/endpoints", json=spec).status_code == 409

    running = wait_for_state(api, "life", {"running"})
    assert running["url"].endswith("/endpoints/life") and running["created_at"] and running["updated_at"]
    first = api.post("/endpoints/life", json={"inputs": "great"})
    assert first.status_code == 200 and first.json()[0]["label"] in ("NEGATIVE", "POSITIVE")

    # Rolling update to a model with other labels while requests keep flowing: none may fail.
    statuses: list[int] = []
    labels: set[str] = set()
    stop = time.monotonic() + 120

    def hammer() -> None:
        with httpx.Client(base_url=api.base_url, headers=api.headers, timeout=60) as client:
            while time.monotonic() < stop:
                response = client.post("/endpoints/life", json={"inputs": "steady traffic"})
                statuses.append(response.status_code)
                if response.status_code == 200:
                    labels.add(response.json()[0]["label"])
                    if labels & {"contradiction", "neutral", "entailment"}:
                        return

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        workers = [pool.submit(hammer), pool.submit(hammer)]
        time.sleep(0.5)
        patched = api.patch(
            "/v1/endpoints/life",
            json={"model": {"source": str(tiny_models["zero-shot-classification"]), "task": "text-classification"}},
        )
        assert patched.status_code == 200, patched.text
        for worker in workers:
            worker.result()
    assert statuses and set(statuses) == {200}, statuses
    assert labels & {"contradiction", "neutral", "entailment"}
    assert wait_for_state(api, "life", {"running"})["model"]["source"] == str(tiny_models["zero-shot-classification"])

    # PUT replaces the whole spec.
    spec["compute"] = {"type": "dedicated", "instance": "cpu-small"}
    put = api.put("/v1/endpoints/life", json=spec)
    assert put.status_code == 200 and put.json()["compute"]["type"] == "dedicated"
    wait_for_state(api, "life", {"running"})

    paused = api.post("/v1/endpoints/life/pause")
    assert paused.status_code == 200
    assert wait_for_state(api, "life", {"paused"})["replicas"]["ready"] == 0
    refused = api.post("/endpoints/life", json={"inputs": "x"})
    assert refused.status_code == 503 and "paused" in refused.json()["error"]["message"]

    assert api.post("/v1/endpoints/life/resume").status_code == 200
    wait_for_state(api, "life", {"running"})
    assert api.post("/endpoints/life", json={"inputs": "back"}).status_code == 200

    deleted = api.delete("/v1/endpoints/life")
    assert deleted.status_code == 202 and deleted.json()["state"] == "deleting"
    wait_for_state(api, "life", {"gone"})
    assert api.get("/v1/endpoints/life").status_code == 404
    assert api.post("/endpoints/life", json={"inputs": "x"}).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "Not_DNS"}, "name"),
        ({"model": {"source": "/definitely/not/here", "task": "text-classification"}}, "model.source"),
        ({"model": {"source": "SOURCE", "task": "image-to-banana"}}, "model.task"),
        ({"compute": {"type": "serverless", "memory_mb": 1500}}, "compute.memory_mb"),
        ({"compute": {"type": "serverless", "max_concurrency": 500}}, "compute.max_concurrency"),
        ({"compute": {"type": "dedicated", "instance": "cpu-huge"}}, "compute.instance"),
        ({"compute": {"type": "quantum"}}, "compute"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_bad_specs_get_422_per_field(api: httpx.Client, tiny_models: dict[str, Path], change: dict, field: str) -> None:
    spec = {"name": "valid-name", "model": {"source": str(tiny_models["text-classification"])}, **change}
    if spec["model"].get("source") == "SOURCE":
        spec["model"]["source"] = str(tiny_models["text-classification"])
    response = api.post("/v1/endpoints", json=spec)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "ValidationError"
    assert any(detail["field"].startswith(field) for detail in error["details"]), error


def test_task_that_cannot_be_inferred_says_so(api: httpx.Client, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    response = api.post("/v1/endpoints", json={"name": "noinfer", "model": {"source": str(tmp_path)}})
    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert detail["field"] == "model.task" and "task" in detail["message"].lower()


def test_unknown_endpoints_are_404(api: httpx.Client) -> None:
    for method, path in [("GET", "/v1/endpoints/ghost"), ("DELETE", "/v1/endpoints/ghost"), ("POST", "/v1/endpoints/ghost/pause")]:
        response = api.request(method, path)
        assert response.status_code == 404 and response.json()["error"]["type"] == "EndpointNotFound"
    sagemaker = api.post("/endpoints/ghost/invocations", json={"inputs": "x"})
    assert sagemaker.status_code == 404 and sagemaker.headers["x-amzn-ErrorType"] == "EndpointNotFound"


def test_broken_model_fails_with_the_loading_error(api: httpx.Client, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "bert", "architectures": ["BertForSequenceClassification"]}')
    api.post("/v1/endpoints", json={"name": "broken", "model": {"source": str(tmp_path)}}).raise_for_status()
    failed = wait_for_state(api, "broken", {"failed"})
    assert "loading the model failed" in failed["reason"]
    refused = api.post("/endpoints/broken", json={"inputs": "x"})
    assert refused.status_code == 503 and "failed" in refused.json()["error"]["message"]
    api.delete("/v1/endpoints/broken")


@pytest.fixture(scope="module")
def faulty(api: httpx.Client, tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = faulty_handler_model(tiny_models["text-classification"], tmp_path_factory.mktemp("faulty") / "model")
    spec = {"name": "faulty", "model": {"source": str(folder), "task": "text-classification"}, "custom_code": True}
    response = api.post("/v1/endpoints", json=spec)
    assert response.status_code == 201, response.text
    assert any("handler.py" in note for note in response.json()["notes"])
    wait_for_state(api, "faulty", {"running"})
    return "faulty"


def test_invocation_errors(api: httpx.Client, faulty: str) -> None:
    malformed = api.post("/endpoints/faulty", content=b"{not json", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["type"] == "ValidationError"
    missing = api.post("/endpoints/tc-missing-inputs-does-not-exist", json={"text": "x"})
    assert missing.status_code == 404
    too_big = api.post("/endpoints/faulty", content=b'{"inputs": "' + b"x" * (7 * 1024 * 1024) + b'"}')
    assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "PayloadTooLarge"
    model_error = api.post("/endpoints/faulty", json={"inputs": "boom"})
    assert model_error.status_code == 424
    assert model_error.json()["error"]["type"] == "ModelError" and "boom requested" in model_error.json()["error"]["message"]
    sagemaker = api.post("/endpoints/faulty/invocations", json={"inputs": "boom"})
    assert sagemaker.status_code == 424 and sagemaker.headers["x-amzn-ErrorType"] == "ModelError"
    assert "boom requested" in sagemaker.json()["Message"]


def test_missing_inputs_is_400(api: httpx.Client, tiny_models: dict[str, Path]) -> None:
    api.post("/v1/endpoints", json={"name": "plain", "model": {"source": str(tiny_models["text-classification"])}})
    wait_for_state(api, "plain", {"running"})
    missing = api.post("/endpoints/plain", json={"text": "no inputs field"})
    assert missing.status_code == 400 and "inputs" in missing.json()["error"]["message"]
    api.delete("/v1/endpoints/plain")


def test_replica_crash_fails_only_that_request_and_recovers(api: httpx.Client, faulty: str) -> None:
    before = api.post("/endpoints/faulty", json={"inputs": "hello"})
    assert before.status_code == 200
    crashed = api.post("/endpoints/faulty", json={"inputs": "crash"})
    assert crashed.status_code == 502 and crashed.json()["error"]["type"] == "ReplicaCrashed"
    after = api.post("/endpoints/faulty", json={"inputs": "hello again"})  # held until the new replica is ready
    assert after.status_code == 200, after.text
    assert after.json()["pid"] != before.json()["pid"]
    assert after.headers["x-cold-start"] == "true"


def test_custom_code_is_ignored_without_opt_in(api: httpx.Client, tiny_models: dict[str, Path]) -> None:
    spec = {"name": "nocode", "model": {"source": str(tiny_models["custom-handler"]), "task": "text-classification"}}
    created = api.post("/v1/endpoints", json=spec).json()
    assert any("handler.py ignored" in note for note in created["notes"])
    wait_for_state(api, "nocode", {"running"})
    result = api.post("/endpoints/nocode", json={"inputs": "hi"}).json()
    assert isinstance(result, list) and "handled_by" not in result[0]
    api.patch("/v1/endpoints/nocode", json={"custom_code": True}).raise_for_status()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        result = api.post("/endpoints/nocode", json={"inputs": "hi"}).json()
        if isinstance(result, dict):
            break
        time.sleep(0.2)
    assert result["handled_by"] == "handler.py"
    api.delete("/v1/endpoints/nocode")


def test_sagemaker_inference_script(api: httpx.Client, tiny_models: dict[str, Path]) -> None:
    spec = {
        "name": "smcode",
        "model": {"source": str(tiny_models["custom-inference"]), "task": "text-classification"},
        "custom_code": True,
    }
    api.post("/v1/endpoints", json=spec).raise_for_status()
    wait_for_state(api, "smcode", {"running"})
    response = api.post("/endpoints/smcode/invocations", content=b"plain text body", headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, response.text
    assert response.json()["handled_by"] == "inference.py"
    api.delete("/v1/endpoints/smcode")


def test_accept_is_honoured(api: httpx.Client, faulty: str) -> None:
    refused = api.post("/endpoints/faulty/invocations", json={"inputs": "hi"}, headers={"Accept": "text/csv"})
    assert refused.status_code == 400 and "Accept" in refused.json()["Message"]
    accepted = api.post("/endpoints/faulty/invocations", json={"inputs": "hi"}, headers={"Accept": "application/json"})
    assert accepted.status_code == 200 and accepted.headers["content-type"].startswith("application/json")
