"""A batch job on Ray Data whose second node dies mid-run completes with every record exactly once.

Its own module: the cluster fixture is module-scoped and this test kills the second node.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.conftest import RunningServer
from tests.integration.test_batch_jobs import lines, wait_job, wait_records, write_jsonl
from tests.ray.conftest import RayCluster
from tests.ray.test_ray_data_batch import deploy_echo, echo_model, ray_data_nodes


def test_second_node_killed_mid_run_every_record_once(
    ray_cluster: RayCluster, ray_server: RunningServer, rapi: httpx.Client, data_root: Path
) -> None:
    deploy_echo(rapi, "echo", echo_model(data_root))
    count = 1200
    source = write_jsonl(data_root / "lost" / "in.jsonl", [{"inputs": f"n{i}", "parameters": {"sleep": 0.01}}
                                                           for i in range(count)])  # fmt: skip
    out = data_root / "lost-out"
    created = rapi.post("/v1/batch-jobs", json={"endpoint": "echo", "input": str(source), "output": str(out),
                                                "batch_size": 8, "concurrency": 2})  # fmt: skip
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    rapi.delete("/v1/endpoints/echo")  # the job runs the spec it copied: its actors need the CPUs
    before = wait_records(rapi, job_id, 80, timeout=240)["records"]["done"]
    ray_cluster.kill_second_node()
    done = wait_job(rapi, job_id, {"completed", "failed"}, timeout=400)
    assert done["status"] == "completed", done
    assert before < count, "the job was over before the node died: nothing was tested"
    assert done["records"] == {"total": count, "done": count, "succeeded": count, "failed": 0, "remaining": 0}
    assert lines(out / "in.jsonl.out") == [{"echo": f"n{i}"} for i in range(count)]
    # Both nodes computed records (the pool spreads): one of them is the node that died mid-run.
    assert len(ray_data_nodes(ray_server, job_id)) == 2, ray_data_nodes(ray_server, job_id)
