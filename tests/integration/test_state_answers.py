"""State answers that never lag (issue 14, part B), through a real server and the real clients.

``pause``, ``resume``, ``update`` and ``scale-to-zero`` answer with the state they lead to on every
dialect (hubserve's ``/v1``, Inference Endpoints' ``/v2`` through huggingface_hub's own
``InferenceEndpoint``, SageMaker's describe after boto3's ``update_endpoint``); an update of scaling
fields only is applied to the serving replicas, without a roll-out; describe's async queue counts
are counted when asked.
"""

from __future__ import annotations

import os
import shutil
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from huggingface_hub import HfApi, constants

from tests.integration.conftest import RunningServer, wait_for_state

NAMESPACE = "hubserve"
SLEEPY_HANDLER = textwrap.dedent(
    '''
    """Sleeps as long as the request asks, then echoes it."""
    import time


    class EndpointHandler:
        def __init__(self, path=""):
            pass

        def __call__(self, data):
            time.sleep(float(data.get("sleep", 0)))
            return {"echo": data.get("inputs")}
    '''
)


def _log(server: RunningServer, name: str) -> str:
    return (server.home / "logs" / name / "hubserve.log").read_text()


def _wait_ready(api: httpx.Client, name: str, ready: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described = api.get(f"/v1/endpoints/{name}").json()
        if described["replicas"]["ready"] == ready:
            return described
        assert time.monotonic() < deadline, f"{name} never had {ready} ready replicas: {described}"
        time.sleep(0.2)


# -- hubserve's own API -------------------------------------------------------------------------


def test_v1_operations_answer_the_state_they_lead_to(
    api: httpx.Client, server: RunningServer, tiny_models: dict[str, Path]
) -> None:
    name = "answers-v1"
    spec = {"name": name, "model": {"source": str(tiny_models["text-classification"])},
            "compute": {"type": "dedicated", "min_replicas": 1, "max_replicas": 1}}  # fmt: skip
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    wait_for_state(api, name, {"running"})

    # Scaling fields only: applied to the serving replica at once, no rolling replacement.
    scaled = api.patch(f"/v1/endpoints/{name}", json={"compute": {"min_replicas": 2, "max_replicas": 2}})
    assert scaled.status_code == 200, scaled.text
    assert scaled.json()["state"] == "running" and scaled.json()["replicas"]["desired"] == 2
    _wait_ready(api, name, 2)
    log = _log(server, name)
    assert "scaling changed: applied to the serving replicas" in log and "state updating" not in log

    # Anything else rolls out: the answer says so.
    updated = api.patch(f"/v1/endpoints/{name}", json={"env": {"GENERATION": "2"}})
    assert updated.status_code == 200 and updated.json()["state"] == "updating"
    wait_for_state(api, name, {"running"})

    paused = api.post(f"/v1/endpoints/{name}/pause")
    assert paused.status_code == 200 and paused.json()["state"] in ("pausing", "paused")
    assert paused.json()["replicas"]["ready"] == 0  # no new work goes to the replicas it stops
    resumed = api.post(f"/v1/endpoints/{name}/resume")
    assert resumed.status_code == 200 and resumed.json()["state"] == "initializing"
    invoked = api.post(f"/endpoints/{name}", json={"inputs": "back at once"})
    assert invoked.status_code == 200, invoked.text
    running = wait_for_state(api, name, {"running"})
    time.sleep(1.0)  # the pause's own pass is long over: it must not have paused the endpoint after all
    assert api.get(f"/v1/endpoints/{name}").json()["state"] == "running" and running["replicas"]["ready"] >= 1

    zero = api.post(f"/v1/endpoints/{name}/scale-to-zero")
    assert zero.status_code == 200 and zero.json()["state"] == "scaledToZero"
    assert api.delete(f"/v1/endpoints/{name}").status_code == 202


# -- huggingface_hub's InferenceEndpoint --------------------------------------------------------


@pytest.fixture(scope="module")
def hf(server: RunningServer) -> Iterator[HfApi]:
    """HfApi pointed at hubserve as test_hf_compat.py does (the constant, and the token as HF_TOKEN)."""
    previous = constants.INFERENCE_ENDPOINTS_ENDPOINT, os.environ.get("HF_TOKEN"), constants.HF_HUB_OFFLINE
    constants.INFERENCE_ENDPOINTS_ENDPOINT = f"{server.url}/v2"
    constants.HF_HUB_OFFLINE = False
    os.environ["HF_TOKEN"] = server.token
    yield HfApi(endpoint=server.url, token=server.token)
    constants.INFERENCE_ENDPOINTS_ENDPOINT, _, constants.HF_HUB_OFFLINE = previous
    if previous[1] is None:
        os.environ.pop("HF_TOKEN", None)
    else:
        os.environ["HF_TOKEN"] = previous[1]


def test_hf_update_pause_resume_scale_to_zero_back_to_back(hf: HfApi, tiny_models: dict[str, Path]) -> None:
    endpoint = hf.create_inference_endpoint(
        "answers-hf", repository=str(tiny_models["text-classification"]), framework="pytorch",
        task="text-classification", accelerator="cpu", instance_size="x1", instance_type="intel-icl",
        region="local", vendor="hubserve", namespace=NAMESPACE, min_replica=1, max_replica=1,
    )  # fmt: skip
    endpoint.wait(timeout=180, refresh_every=1)

    endpoint.update(min_replica=0, max_replica=2)
    assert endpoint.status == "running"  # scaling only: applied, nothing to roll out
    assert endpoint.raw["compute"]["scaling"]["minReplica"] == 0 and endpoint.raw["compute"]["scaling"]["maxReplica"] == 2
    endpoint.pause()
    assert endpoint.status == "paused"  # hubserve's "pausing" as the state huggingface_hub knows
    assert endpoint.raw["status"]["readyReplica"] == 0
    endpoint.resume()
    assert endpoint.status == "initializing"
    endpoint.scale_to_zero()
    assert endpoint.status == "scaledToZero"
    assert endpoint.fetch().status == "scaledToZero"
    assert endpoint.client.text_classification("wake up")  # the next request starts a replica
    assert endpoint.fetch().status == "running"
    endpoint.delete()


# -- SageMaker's describe after boto3's update_endpoint -----------------------------------------


def test_sagemaker_describe_after_update_endpoint(server: RunningServer, api: httpx.Client,
                                                  tiny_models: dict[str, Path]) -> None:  # fmt: skip
    sm = boto3.client("sagemaker", endpoint_url=server.url, aws_access_key_id="hubserve",
                      aws_secret_access_key=server.token, region_name="us-east-1")  # fmt: skip
    name, folder = "answers-sm", tiny_models["text-classification"]
    for model, env in (("answers-sm-model", {}), ("answers-sm-model-2", {"GENERATION": "2"})):
        sm.create_model(ModelName=model, PrimaryContainer={"Image": "hf-inference", "ModelDataUrl": f"file://{folder}",
                                                          "Environment": env})  # fmt: skip
    for config, model, count in (("answers-sm-1", "answers-sm-model", 1), ("answers-sm-2", "answers-sm-model", 2),
                                 ("answers-sm-3", "answers-sm-model-2", 2)):  # fmt: skip
        sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": model, "InstanceType": "ml.t2.medium", "InitialInstanceCount": count,
        }])  # fmt: skip
    sm.create_endpoint(EndpointName=name, EndpointConfigName="answers-sm-1")
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})

    sm.update_endpoint(EndpointName=name, EndpointConfigName="answers-sm-2")  # the instance count only
    described = sm.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "InService"  # applied in place: the final state
    assert described["ProductionVariants"][0]["DesiredInstanceCount"] == 2
    _wait_ready(api, name, 2)
    assert "state updating" not in _log(server, name)

    sm.update_endpoint(EndpointName=name, EndpointConfigName="answers-sm-3")  # another model: a rolling update
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    assert api.get(f"/v1/endpoints/{name}").json()["env"] == {"GENERATION": "2"}
    sm.delete_endpoint(EndpointName=name)


# -- describe's async queue counts ----------------------------------------------------------------


@pytest.fixture(scope="module")
def sleepy(api: httpx.Client, tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("answers-sleepy") / "model"
    shutil.copytree(tiny_models["text-classification"], folder)
    (folder / "handler.py").write_text(SLEEPY_HANDLER)
    spec = {"name": "answers-async", "model": {"source": str(folder)}, "custom_code": True,
            "compute": {"type": "serverless", "max_concurrency": 1},
            "async_inference": {"max_concurrent_invocations_per_replica": 1}}  # fmt: skip
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    wait_for_state(api, "answers-async", {"running"})
    yield "answers-async"
    api.delete("/v1/endpoints/answers-async")


def test_async_queue_counts_are_current_when_described(api: httpx.Client, sleepy: str) -> None:
    ids = [api.post(f"/endpoints/{sleepy}/async-invocations", json={"inputs": i, "sleep": 1.0}).json()["inferenceId"]
           for i in range(2)]  # fmt: skip
    for position, inference_id in enumerate(ids):
        deadline = time.monotonic() + 60
        while (status := api.get(f"/endpoints/{sleepy}/async-invocations/{inference_id}").json()["status"]) == "queued":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert status == "running"
        queue = api.get(f"/v1/endpoints/{sleepy}").json()["asyncQueue"]
        assert queue == {"queued": len(ids) - 1 - position, "running": 1}, queue
        while (status := api.get(f"/endpoints/{sleepy}/async-invocations/{inference_id}").json()["status"]) == "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert status == "succeeded"
        if position == len(ids) - 1:
            queue = api.get(f"/v1/endpoints/{sleepy}").json()["asyncQueue"]
            assert queue == {"queued": 0, "running": 0}, queue  # finished: never still counted
