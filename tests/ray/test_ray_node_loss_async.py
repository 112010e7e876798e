"""On a two-node Ray cluster of its own (the node kill is destructive): memory decides placement, and async
work that was running on a node that dies is retried elsewhere, every accepted inference done exactly once.

The nodes are started with ``--memory`` (6 GiB each), so an endpoint asking for more than that fails with a
reason naming memory and what the nodes have instead of waiting forever on a lease Ray cannot place.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import RunningServer, wait_for_state
from tests.ray.conftest import RayCluster, running_cluster
from tests.ray.test_ray_backend import deploy, nodes_of

NODE_MEMORY = 6 * 1024**3
# Records every run (one file per run, under a folder the inputs name) before it sleeps, so a test can
# tell runs that were cut short by the node loss from those that finished.
RECORDING_HANDLER = textwrap.dedent(
    """
    import os
    import time
    import uuid


    class EndpointHandler:
        def __init__(self, path=""):
            pass

        def __call__(self, data):
            runs = os.path.join(data["runs"], data["inputs"])
            os.makedirs(runs, exist_ok=True)
            open(os.path.join(runs, uuid.uuid4().hex), "w").close()
            time.sleep(float(data.get("sleep", 0)))
            return {"echo": data["inputs"]}
    """
)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    """This module's own cluster (it kills a node): two nodes of 2 CPUs and 6 GiB of Ray memory each."""
    with running_cluster(num_cpus=2, memory=NODE_MEMORY) as cluster:
        yield cluster


def test_more_memory_than_any_node_has_fails_with_the_reason(rapi: httpx.Client, tiny_models: dict[str, Path]) -> None:
    spec = {"name": "huge", "model": {"source": str(tiny_models["text-classification"])},
            "compute": {"type": "dedicated", "instance": "cpu-large"}}  # fmt: skip  # 8192 MB; the nodes have 6144
    assert rapi.post("/v1/endpoints", json=spec).status_code == 201
    failed = wait_for_state(rapi, "huge", {"failed", "running"}, timeout=60)
    assert failed["state"] == "failed", failed
    reason = str(failed)
    assert "8192 MB of memory" in reason and "6144 MB of memory" in reason, reason  # asked, and what nodes have
    assert rapi.delete("/v1/endpoints/huge").status_code in (200, 202, 204)


def test_async_work_on_a_lost_node_is_retried_and_done_exactly_once(
    ray_cluster: RayCluster, ray_server: RunningServer, rapi: httpx.Client, tmp_path: Path,
    tiny_models: dict[str, Path],
) -> None:  # fmt: skip
    model = tmp_path / "recording"
    shutil.copytree(tiny_models["text-classification"], model)
    (model / "handler.py").write_text(RECORDING_HANDLER)
    runs = tmp_path / "runs"  # a folder both nodes see (one machine): the replicas' run records
    compute = {"type": "dedicated", "instance": "cpu-small", "min_replicas": 2, "max_replicas": 2}
    deploy(rapi, "later", model, compute, custom_code=True, async_inference={"max_concurrent_invocations_per_replica": 1})
    deadline = time.monotonic() + 120
    while rapi.get("/v1/endpoints/later").json()["replicas"]["ready"] < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
    first_nodes = nodes_of(rapi, "later")
    assert len(set(first_nodes)) == 2, "SPREAD should put the two replicas on the two nodes"

    accepted = []
    for i in range(8):
        body = {"inputs": f"job-{i}", "sleep": 4, "runs": str(runs)}
        response = rapi.post("/endpoints/later/async-invocations", json=body)
        assert response.status_code == 202, response.text
        accepted.append(response.json()["inferenceId"])
    deadline = time.monotonic() + 60
    while len(list(runs.glob("*/*"))) < 2:  # one running on each replica, so one on the node about to die
        assert time.monotonic() < deadline, "the inferences never started"
        time.sleep(0.1)
    time.sleep(1)
    ray_cluster.kill_second_node()
    killed_at = time.monotonic()

    done: dict[str, dict] = {}
    replaced_after = None
    deadline = time.monotonic() + 240
    while len(done) < len(accepted) and time.monotonic() < deadline:
        for inference_id in accepted:
            if inference_id not in done:
                status = rapi.get(f"/endpoints/later/async-invocations/{inference_id}").json()
                if status["status"] in {"succeeded", "failed", "expired"}:
                    done[inference_id] = status
        if replaced_after is None and len(nodes_of(rapi, "later")) >= 3:
            replaced_after = time.monotonic() - killed_at
        time.sleep(0.3)
    all_done_after = time.monotonic() - killed_at
    print(f"node loss: replacement ready after {replaced_after} s, all {len(accepted)} inferences done after "
          f"{all_done_after:.1f} s")  # fmt: skip
    assert len(done) == len(accepted), f"not done after the node loss: {set(accepted) - set(done)}"
    assert [status["status"] for status in done.values()] == ["succeeded"] * len(accepted), done
    retried = [status for status in done.values() if status["attempts"] >= 2]
    assert retried, "no inference was running on the lost node (none needed a second attempt)"
    for i, inference_id in enumerate(accepted):  # one output each, its own, and a run per attempt, no more
        status = done[inference_id]
        assert json.loads(Path(status["outputLocation"]).read_text()) == {"echo": f"job-{i}"}
        assert len(list((runs / f"job-{i}").iterdir())) == status["attempts"], status
    output_folder = Path(done[accepted[0]]["outputLocation"]).parent
    assert len(list(output_folder.glob("*.out"))) == len(accepted)
    assert not list(output_folder.glob("*.error.json"))  # no failure was written, not even a retried one's
    log = ray_server.log()
    lost = re.findall(r"node (\w+) was lost", log)
    assert lost, log[-3000:]
    after = nodes_of(rapi, "later")[len(first_nodes) :]
    assert after and lost[0] not in after, (lost, after)  # replaced on the node that is left
    assert rapi.get("/v1/endpoints/later").json()["replicas"]["ready"] >= 1
