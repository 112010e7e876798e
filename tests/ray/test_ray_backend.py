"""hubserve on a real two-node Ray cluster: deploy, invoke, stream, scale to zero and back, logs, node loss.

The tests run in order on one cluster and one server (module fixtures, tests/ray/conftest.py); the
node-loss test is last because it kills the second node.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import shutil
import textwrap
import time
from pathlib import Path

import httpx

from tests.integration.conftest import RunningServer, wait_for_state
from tests.ray.conftest import RayCluster

SSE = {"Accept": "text/event-stream"}
SLEEPY_HANDLER = textwrap.dedent(
    """
    import time


    class EndpointHandler:
        def __init__(self, path=""):
            pass

        def __call__(self, data):
            time.sleep(float(data.get("sleep", 0)))
            return {"echo": data.get("inputs")}
    """
)


def deploy(api: httpx.Client, name: str, source: Path, compute: dict | None = None, **extra: object) -> dict:
    spec = {"name": name, "model": {"source": str(source)}, "compute": compute or {"type": "serverless"}, **extra}
    response = api.post("/v1/endpoints", json=spec)
    assert response.status_code == 201, response.text
    return wait_for_state(api, name, {"running"}, timeout=180)


def nodes_of(api: httpx.Client, name: str) -> list[str]:
    """The node (id prefix) of every replica that became ready, from the endpoint's events."""
    lines = api.get(f"/v1/endpoints/{name}/logs", params={"tail": 1000, "source": "hubserve"}).json()["lines"]
    return [m.group(1) for line in lines if (m := re.search(r"ready \(node (\w+)", line["message"]))]


def test_deploy_invoke_and_logs(rapi: httpx.Client, tiny_models: dict[str, Path]) -> None:
    deploy(rapi, "classify", tiny_models["text-classification"])
    answer = rapi.post("/endpoints/classify", json={"inputs": "hello ray"})
    assert answer.status_code == 200, answer.text
    assert "label" in answer.json()[0]
    assert len(nodes_of(rapi, "classify")) == 1  # placed on a Ray node, named in the event
    deadline = time.monotonic() + 10
    replica_lines: list[dict] = []
    while time.monotonic() < deadline and not replica_lines:  # copied from the node every second
        lines = rapi.get("/v1/endpoints/classify/logs", params={"tail": 500}).json()["lines"]
        replica_lines = [line for line in lines if line["source"] != "hubserve" and "model loaded" in line["message"]]
        time.sleep(0.3)
    assert replica_lines, "the replica's log never reached the server"
    assert "/hubserve-node-" in replica_lines[0]["message"], "the model was not loaded from the node's cache"
    events = rapi.get("/v1/endpoints/classify/logs", params={"tail": 500, "source": "hubserve"}).json()["lines"]
    assert any(line["message"].endswith(": loading the model") for line in events)  # start phases relayed from the node
    deadline = time.monotonic() + 15
    memory = 0.0
    while time.monotonic() < deadline and memory <= 0:  # figures from /proc on the node, through the agent
        memory = rapi.get("/v1/endpoints/classify/metrics", params={"window": "5m"}).json()["memory_mb"][
            "max_per_replica"
        ]
        time.sleep(0.5)
    assert memory > 0
    assert rapi.delete("/v1/endpoints/classify").status_code in (200, 202, 204)


def test_stream_a_generation(ray_server: RunningServer, rapi: httpx.Client, tiny_models: dict[str, Path]) -> None:
    deploy(rapi, "gen", tiny_models["text-generation"])
    body = {"inputs": "hello", "parameters": {"max_new_tokens": 4, "do_sample": False}}
    url = f"{ray_server.url}/endpoints/gen"
    with httpx.stream("POST", url, json=body, headers={**ray_server.headers(), **SSE}, timeout=60) as response:
        assert response.status_code == 200, response.read()
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
    assert len(events) >= 2 and events[-1].get("generated_text") is not None
    rapi.delete("/v1/endpoints/gen")


def test_scale_to_zero_and_back(rapi: httpx.Client, tiny_models: dict[str, Path]) -> None:
    deploy(rapi, "idle", tiny_models["text-classification"], {"type": "serverless", "idle_timeout_s": 2})
    assert rapi.post("/endpoints/idle", json={"inputs": "warm"}).status_code == 200
    assert wait_for_state(rapi, "idle", {"scaledToZero"}, timeout=60)["replicas"]["ready"] == 0
    cold = rapi.post("/endpoints/idle", json={"inputs": "wake up"})
    assert cold.status_code == 200 and cold.headers["x-cold-start"] == "true"
    rapi.delete("/v1/endpoints/idle")


def test_async_inference(rapi: httpx.Client, tiny_models: dict[str, Path]) -> None:
    deploy(rapi, "later", tiny_models["text-classification"], async_inference={})
    accepted = rapi.post("/endpoints/later/async-invocations", json={"inputs": "in a while"})
    assert accepted.status_code == 202, accepted.text
    inference_id = accepted.json()["inferenceId"]
    deadline = time.monotonic() + 60
    status: dict = {}
    while time.monotonic() < deadline:
        status = rapi.get(f"/endpoints/later/async-invocations/{inference_id}").json()
        if status["status"] in {"succeeded", "failed", "expired"}:
            break
        time.sleep(0.2)
    assert status["status"] == "succeeded", status
    rapi.delete("/v1/endpoints/later")


def test_batch_job_runs_on_a_ray_replica(rapi: httpx.Client, data_root: Path, tiny_models: dict[str, Path]) -> None:
    source = data_root / "reviews.jsonl"
    source.write_text("".join(json.dumps({"inputs": f"review {i}"}) + "\n" for i in range(20)))
    job = {"model": str(tiny_models["text-classification"]), "task": "text-classification", "instance": "cpu-small",
           "input": str(source), "output": str(data_root / "out"), "batch_size": 8}  # fmt: skip
    created = rapi.post("/v1/batch-jobs", json=job)
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 120
    status: dict = {}
    while time.monotonic() < deadline:
        status = rapi.get(f"/v1/batch-jobs/{created.json()['id']}").json()
        if status["status"] in {"completed", "failed"}:
            break
        time.sleep(0.2)
    assert status["status"] == "completed", status
    rows = [json.loads(line) for line in (data_root / "out" / "reviews.jsonl.out").read_text().splitlines()]
    assert len(rows) == 20 and all(row[0]["label"] for row in rows)


def test_node_loss_fails_in_flight_requests_and_replaces_replicas(
    ray_cluster: RayCluster, ray_server: RunningServer, rapi: httpx.Client, tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    model = tmp_path / "sleepy"
    shutil.copytree(tiny_models["text-classification"], model)
    (model / "handler.py").write_text(SLEEPY_HANDLER)
    compute = {"type": "dedicated", "instance": "cpu-small", "min_replicas": 2, "max_replicas": 2}
    deploy(rapi, "sleepy", model, compute, custom_code=True)
    deadline = time.monotonic() + 120
    while rapi.get("/v1/endpoints/sleepy").json()["replicas"]["ready"] < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert len(set(nodes_of(rapi, "sleepy"))) == 2, "SPREAD should put the two replicas on the two nodes"

    def call(_: int) -> httpx.Response:
        return httpx.post(f"{ray_server.url}/endpoints/sleepy", json={"inputs": "x", "sleep": 20}, headers=ray_server.headers(),
                          timeout=60)  # fmt: skip

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        in_flight = [pool.submit(call, i) for i in range(4)]
        time.sleep(2)  # all four are running, two on each replica
        ray_cluster.kill_second_node()
        answers = [future.result() for future in in_flight]
    failed = [answer for answer in answers if answer.status_code >= 500]
    assert failed, [answer.status_code for answer in answers]
    assert all("node" in answer.text for answer in failed), [answer.text for answer in failed]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # a replacement is placed on the node that is left
        if len(nodes_of(rapi, "sleepy")) >= 3 and rapi.get("/v1/endpoints/sleepy").json()["replicas"]["ready"] >= 1:
            break
        time.sleep(0.5)
    later = rapi.post("/endpoints/sleepy", json={"inputs": "after", "sleep": 0})
    assert later.status_code == 200, later.text
    assert len(nodes_of(rapi, "sleepy")) >= 3, "no replacement replica became ready"
