"""Batch jobs on Ray Data (the Ray backend): the local runner's outputs, order, counters, stop and resume.

One two-node cluster and one Ray server for the module (tests/ray/conftest.py), plus a server on
the local backend over the same storage root: the same job on both gives the same files, line for
line. The Ray server's log says Ray Data computed the records, and on which nodes.
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

from tests.integration.conftest import RunningServer, start_server, stop_server, wait_for_state
from tests.integration.test_batch_jobs import lines, wait_job, wait_records, write_jsonl

SLOW_ECHO = textwrap.dedent(
    """
    import time


    class EndpointHandler:
        def __init__(self, path=""):
            pass

        def __call__(self, data):
            time.sleep(float(data.get("parameters", {}).get("sleep", 0.01)))
            return {"echo": data["inputs"]}
    """
)


def scores_rounded(text: str) -> str:
    """Floats to 4 places: a record batched with other neighbours is padded differently, which moves the 7th digit."""
    return re.sub(r"\d+\.\d{5,}(?:e-?\d+)?", lambda number: f"{float(number.group()):.4f}", text)


def echo_model(root: Path) -> Path:
    """A custom handler whose answers name their record: order and exactly-once read straight off the output."""
    folder = root / "slow-echo"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "handler.py").write_text(SLOW_ECHO)
    return folder


def deploy_echo(api: httpx.Client, name: str, model: Path) -> None:
    spec = {"name": name, "model": {"source": str(model), "task": "text-classification"}, "custom_code": True,
            "compute": {"type": "dedicated", "instance": "cpu-small", "min_replicas": 1, "max_replicas": 1}}  # fmt: skip
    created = api.post("/v1/endpoints", json=spec)
    assert created.status_code == 201, created.text
    wait_for_state(api, name, {"running"}, timeout=180)


def ray_data_nodes(server: RunningServer, job_id: str) -> set[str]:
    """The nodes the server's log says Ray Data computed this job's records on."""
    found: set[str] = set()
    for line in server.log().splitlines():
        if f"batch job {job_id}:" in line and "computed by Ray Data on node(s)" in line:
            found.update(node.strip() for node in line.rsplit("node(s)", 1)[1].split(","))
    return found


@pytest.fixture(scope="module")
def local_server(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server on the local backend reading and writing the same storage root: the reference runner."""
    home = tmp_path_factory.mktemp("local-server") / "home"
    running = start_server(home, extra_env={"HUBSERVE_STORAGE_ROOTS": json.dumps([str(data_root)])})
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def lapi(local_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_server.url, headers=local_server.headers(), timeout=120) as client:
        yield client


def test_jsonl_csv_and_text_equal_the_local_runner_line_for_line(
    ray_server: RunningServer, rapi: httpx.Client, lapi: httpx.Client, data_root: Path, tiny_models: dict[str, Path]
) -> None:
    folder = data_root / "mixed"
    rows = [json.dumps({"inputs": f"review {i} was {'great' if i % 3 else 'awful'}"}) for i in range(45)]
    rows[7] = '{"inputs": "broken'  # not JSON: an error line, line 8
    rows[20] = json.dumps({"inputs": 123})  # the model refuses it: an error line, line 21
    (folder / "sub").mkdir(parents=True)
    (folder / "a.jsonl").write_text("\n".join(rows) + "\n\n")
    (folder / "b.csv").write_text("id,inputs\n" + "".join(f'{i},"movie, number {i}"\n' for i in range(23)))
    (folder / "sub" / "c.txt").write_text("".join(f"line {i}\n" for i in range(9)))
    job = {"model": str(tiny_models["text-classification"]), "task": "text-classification", "instance": "cpu-small",
           "input": str(folder), "batch_size": 4, "join_source": "input", "max_failures": 2}  # fmt: skip

    outputs, described = {}, {}
    for name, api in (("ray", rapi), ("local", lapi)):
        created = api.post("/v1/batch-jobs", json={**job, "output": str(data_root / f"mixed-{name}")})
        assert created.status_code == 201, created.text
        described[name] = wait_job(api, created.json()["id"], {"completed", "failed"}, timeout=300)
        outputs[name] = data_root / f"mixed-{name}"
    ray_job, local_job = described["ray"], described["local"]
    assert ray_job["status"] == "completed", ray_job
    assert ray_job["records"] == local_job["records"] == {
        "total": 77, "done": 77, "succeeded": 75, "failed": 2, "remaining": 0
    }  # fmt: skip
    assert [(f["records"], f["done"], f["failed"]) for f in ray_job["files"]] == [(45, 45, 2), (23, 23, 0), (9, 9, 0)]
    assert [(f["records"], f["done"], f["failed"]) for f in ray_job["files"]] == [
        (f["records"], f["done"], f["failed"]) for f in local_job["files"]
    ]
    for name in ("a.jsonl.out", "b.csv.out", "sub/c.txt.out", "errors.jsonl"):
        ray_lines = scores_rounded((outputs["ray"] / name).read_text()).splitlines()
        assert ray_lines == scores_rounded((outputs["local"] / name).read_text()).splitlines(), name
    jsonl = lines(outputs["ray"] / "a.jsonl.out")
    assert [row["input"] for row in jsonl][:3] == [{"inputs": f"review {i} was {'great' if i % 3 else 'awful'}"} for i in range(3)]
    assert jsonl[0]["output"][0]["label"] in ("POSITIVE", "NEGATIVE") and "error" in jsonl[7]["output"]
    assert ray_job["errors_location"] == f"{outputs['ray']}/errors.jsonl"
    assert ray_data_nodes(ray_server, ray_job["id"]), "the Ray server's log does not say Ray Data computed the job"
    assert not list((ray_server.home / "logs" / ray_job["id"]).glob("*.log")), "a replica ran the job's records"


def test_stop_then_start_resumes_without_duplicates(
    ray_server: RunningServer, rapi: httpx.Client, data_root: Path
) -> None:
    deploy_echo(rapi, "echo", echo_model(data_root))
    source = write_jsonl(data_root / "echo" / "in.jsonl", [{"inputs": f"r{i}", "parameters": {"sleep": 0.03}}
                                                           for i in range(600)])  # fmt: skip
    out = data_root / "echo-out"
    created = rapi.post("/v1/batch-jobs", json={"endpoint": "echo", "input": str(source), "output": str(out),
                                                "batch_size": 4, "concurrency": 2})  # fmt: skip
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    rapi.delete("/v1/endpoints/echo")  # the job runs the spec it copied: its actors need the CPUs
    wait_records(rapi, job_id, 40, timeout=180)
    stopping = rapi.post(f"/v1/batch-jobs/{job_id}/stop").json()
    assert stopping["status"] in ("stopping", "stopped")
    stopped = wait_job(rapi, job_id, {"stopped", "completed"})
    assert stopped["status"] == "stopped" and 40 <= stopped["records"]["done"] < 600, stopped
    assert not (out / "in.jsonl.out").exists()
    assert rapi.post(f"/v1/batch-jobs/{job_id}/stop").status_code == 409

    assert rapi.post(f"/v1/batch-jobs/{job_id}/start").json()["status"] == "running"
    done = wait_job(rapi, job_id, {"completed", "failed"}, timeout=300)
    assert done["status"] == "completed" and done["records"]["done"] == 600, done
    assert done["runs"] == 2 and done["resumed_at_record"] == stopped["records"]["done"]
    assert lines(out / "in.jsonl.out") == [{"echo": f"r{i}"} for i in range(600)]
    assert ray_data_nodes(ray_server, job_id)


def test_records_per_second_on_ray_data_and_the_local_runner(
    rapi: httpx.Client, lapi: httpx.Client, data_root: Path, tiny_models: dict[str, Path]
) -> None:
    """The figures of the report: ~2,000 records of the tiny classifier on each (printed; run with -s)."""
    source = write_jsonl(data_root / "bench" / "in.jsonl", [{"inputs": f"record number {i} is fine"} for i in range(2000)])
    job = {"model": str(tiny_models["text-classification"]), "task": "text-classification", "instance": "cpu-small",
           "input": str(source), "batch_size": 32, "concurrency": 2}  # fmt: skip
    figures = {}
    for name, api in (("ray-data", rapi), ("local", lapi)):
        started = time.monotonic()
        created = api.post("/v1/batch-jobs", json={**job, "output": str(data_root / f"bench-{name}")})
        done = wait_job(api, created.json()["id"], {"completed", "failed"}, timeout=600)
        wall = time.monotonic() - started
        assert done["status"] == "completed", done
        figures[name] = (done["records_per_s"], round(2000 / wall, 1), round(wall, 1))
    print("\nbatch records/s (run, create-to-completed), seconds:", figures)
    assert (data_root / "bench-ray-data" / "in.jsonl.out").read_text() == (
        data_root / "bench-local" / "in.jsonl.out"
    ).read_text()
    shutil.rmtree(data_root / "bench-ray-data")


def test_a_run_of_only_unreadable_records_needs_no_dataset(rapi: httpx.Client, data_root: Path, tiny_models: dict[str, Path]) -> None:
    source = data_root / "broken" / "in.jsonl"
    source.parent.mkdir(parents=True)
    source.write_text('{"inputs": "a\n{"inputs": "b\n')
    job = {"model": str(tiny_models["text-classification"]), "task": "text-classification", "instance": "cpu-small",
           "input": str(source), "output": str(data_root / "broken-out"), "max_failures": 2}  # fmt: skip
    created = rapi.post("/v1/batch-jobs", json=job)
    done = wait_job(rapi, created.json()["id"], {"completed", "failed"})
    assert done["status"] == "completed" and done["records"]["failed"] == 2, done
    assert [e["line"] for e in lines(data_root / "broken-out" / "errors.jsonl")] == [1, 2]
