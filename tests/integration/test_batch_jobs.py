"""Batch transform jobs through a real `hubserve serve`: splitting, order, joins, errors, resume, S3, CLI.

Two kinds of model: the tiny text-classification model (one thread: ``instance: cpu-small``), and
an echo handler (``{"echo": inputs}`` after a few milliseconds, custom code on an endpoint) whose
answers name their record, so order and exactly-once can be read straight off the output, and
whose pace makes stopping or killing a job halfway deterministic.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import (
    RunningServer,
    start_server,
    stop_server,
    wait_for_state,
)
from tests.s3_server import S3Server

ECHO_HANDLER = textwrap.dedent(
    '''
    import time


    class EndpointHandler:
        def __init__(self, path=""):
            pass

        def __call__(self, data):
            time.sleep(0.004)
            return {"echo": data["inputs"]}
    '''
)


def echo_model(root: Path) -> Path:
    folder = root / "echo-model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "handler.py").write_text(ECHO_HANDLER)
    return folder


def echo_spec(model: Path) -> dict:
    return {"name": "echo", "model": {"source": str(model), "task": "text-classification"}, "custom_code": True}


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_job(api: httpx.Client, job_id: str, statuses: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = api.get(f"/v1/batch-jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"{job_id} never reached {statuses}: {job}")


def wait_records(api: httpx.Client, job_id: str, at_least: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = api.get(f"/v1/batch-jobs/{job_id}").json()
        if job["records"]["done"] >= at_least:
            return job
        time.sleep(0.02)
    raise AssertionError(f"{job_id} never did {at_least} records: {job}")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("batch-data")


def server_env(data_root: Path, s3: S3Server | None = None) -> dict[str, str]:
    return {"HUBSERVE_STORAGE_ROOTS": json.dumps([str(data_root)]), **(s3.env if s3 else {})}


@pytest.fixture(scope="module")
def batch_server(data_root: Path, s3_server: S3Server) -> Iterator[RunningServer]:
    running = start_server(data_root / "home", extra_env=server_env(data_root, s3_server))
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def api(batch_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=batch_server.url, headers=batch_server.headers(), timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def classifier(tiny_models: dict[str, Path]) -> dict[str, str]:
    return {"model": str(tiny_models["text-classification"]), "task": "text-classification", "instance": "cpu-small"}


def test_folder_of_jsonl_csv_and_text_in_order_with_join(
    api: httpx.Client, batch_server: RunningServer, data_root: Path, classifier: dict
) -> None:
    folder = data_root / "mixed"
    write_jsonl(folder / "a.jsonl", [{"inputs": f"review {i}"} if i % 2 else f"review {i}" for i in range(30)])
    (folder / "a.jsonl").write_text((folder / "a.jsonl").read_text() + "\n")  # a blank line is not a record
    (folder / "b.csv").write_text("id,inputs\n" + "".join(f'{i},"movie, number {i}"\n' for i in range(20)))
    (folder / "sub").mkdir()
    (folder / "sub" / "c.txt").write_text("".join(f"line {i}\n" for i in range(7)))
    out = data_root / "mixed-out"

    created = api.post("/v1/batch-jobs", json={
        **classifier, "input": str(folder), "output": str(out), "batch_size": 8, "join_source": "input",
    })  # fmt: skip
    assert created.status_code == 201, created.text
    job = wait_job(api, created.json()["id"], {"completed", "failed"})
    assert job["status"] == "completed", job
    assert job["records"] == {"total": 57, "done": 57, "succeeded": 57, "failed": 0, "remaining": 0}
    assert job["records_per_s"] > 0 and job["errors_location"] is None

    jsonl = lines(out / "a.jsonl.out")
    assert [row["input"] for row in jsonl] == [{"inputs": f"review {i}"} if i % 2 else f"review {i}" for i in range(30)]
    assert all(row["output"][0]["label"] in ("POSITIVE", "NEGATIVE") for row in jsonl)
    csv_rows = lines(out / "b.csv.out")
    assert [row["input"] for row in csv_rows] == [{"id": str(i), "inputs": f"movie, number {i}"} for i in range(20)]
    assert [row["input"] for row in lines(out / "sub" / "c.txt.out")] == [f"line {i}" for i in range(7)]

    # The same record alone through an endpoint gives the same answer: each record keeps its own shape.
    single = api.post("/v1/batch-jobs", json={**classifier, "input": str(folder / "b.csv"), "output": str(out / "plain")})
    plain = wait_job(api, single.json()["id"], {"completed", "failed"})
    assert plain["status"] == "completed" and plain["content_type"] is None
    outputs = lines(out / "plain" / "b.csv.out")
    assert outputs == [row["output"] for row in csv_rows]

    # The job's replica ran records in batches (its log counts batches of more than one request).
    logs = (batch_server.home / "logs" / job["id"]).glob("*.log")
    assert any("hubserve-replica-batch" in log.read_text() for log in logs)


def test_csv_without_header_and_split_none(api: httpx.Client, data_root: Path, classifier: dict) -> None:
    folder = data_root / "csv-none"
    (folder / "rows").mkdir(parents=True)
    (folder / "rows" / "plain.csv").write_text("".join(f"text {i}\n" for i in range(5)))
    (folder / "whole").mkdir()
    write_jsonl(folder / "whole" / "one.jsonl", [])
    (folder / "whole" / "one.jsonl").write_text(json.dumps({"inputs": ["first", "second", "third"]}))
    out = data_root / "csv-none-out"
    job = api.post("/v1/batch-jobs", json={**classifier, "input": str(folder / "rows"), "output": str(out),
                                           "join_source": "input"}).json()  # fmt: skip
    assert wait_job(api, job["id"], {"completed", "failed"})["status"] == "completed"
    assert [row["input"] for row in lines(out / "plain.csv.out")] == [f"text {i}" for i in range(5)]

    job = api.post("/v1/batch-jobs", json={**classifier, "input": str(folder / "whole"), "output": str(out / "whole"),
                                           "split_type": "none"}).json()  # fmt: skip
    done = wait_job(api, job["id"], {"completed", "failed"})
    assert done["records"]["total"] == 1
    [answer] = lines(out / "whole" / "one.jsonl.out")
    assert isinstance(answer, list) and len(answer) == 3  # one record, a list of three answers


def test_errors_file_line_numbers_and_max_failures(api: httpx.Client, data_root: Path, classifier: dict) -> None:
    source = data_root / "faulty" / "in.jsonl"
    source.parent.mkdir(parents=True)
    rows = [json.dumps({"inputs": f"fine {i}"}) for i in range(8)]
    rows[2] = '{"inputs": "broken'  # not JSON: line 3
    rows[5] = json.dumps({"inputs": 123})  # the model rejects it: line 6
    source.write_text("\n".join(rows) + "\n")

    out = data_root / "faulty-out"
    job = api.post("/v1/batch-jobs", json={**classifier, "input": str(source), "output": str(out), "max_failures": 2}).json()
    done = wait_job(api, job["id"], {"completed", "failed"})
    assert done["status"] == "completed", done
    assert done["records"]["failed"] == 2 and done["records"]["succeeded"] == 6
    assert done["errors_location"] == f"{out}/errors.jsonl"
    errors = lines(out / "errors.jsonl")
    assert [(e["file"], e["line"]) for e in errors] == [("in.jsonl", 3), ("in.jsonl", 6)]
    assert "not valid JSON" in errors[0]["message"] and "must be a string" in errors[1]["message"]
    results = lines(out / "in.jsonl.out")
    assert len(results) == 8 and "error" in results[2] and "error" in results[5] and results[0][0]["label"]

    strict_out = data_root / "faulty-strict"
    job = api.post("/v1/batch-jobs", json={**classifier, "input": str(source), "output": str(strict_out), "max_failures": 1}).json()
    failed = wait_job(api, job["id"], {"completed", "failed"})
    assert failed["status"] == "failed"
    assert "2 records failed, more than max_failures (1)" in failed["reason"]
    assert len(lines(strict_out / "errors.jsonl")) == 2 and not (strict_out / "in.jsonl.out").exists()
    again = api.post(f"/v1/batch-jobs/{job['id']}/start")
    assert again.status_code == 409 and "max_failures" in again.json()["error"]["message"]


def test_bad_requests_are_clear(api: httpx.Client, data_root: Path, classifier: dict) -> None:
    write_jsonl(data_root / "ok" / "x.jsonl", ["a"])
    cases = [
        ({"input": str(data_root / "ok"), "output": str(data_root / "o")}, 422, "exactly one of 'endpoint'"),
        ({**classifier, "input": "/etc/passwd", "output": str(data_root / "o")}, 400, "outside the allowed storage roots"),
        ({**classifier, "input": str(data_root / "missing"), "output": str(data_root / "o")}, 400, "has no files"),
        ({**classifier, "input": str(data_root / "ok"), "output": str(data_root / "ok" / "o")}, 400, "inside the input folder"),
        ({**classifier, "input": str(data_root / "ok"), "output": str(data_root / "o"), "split_type": "word"}, 422, "split_type"),
        ({**classifier, "model": str(data_root / "nope"), "input": str(data_root / "ok"), "output": str(data_root / "o")}, 422, "model"),
        ({"endpoint": "no-such", "input": str(data_root / "ok"), "output": str(data_root / "o")}, 404, "does not exist"),
    ]
    for body, status, words in cases:
        response = api.post("/v1/batch-jobs", json=body)
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["error"]["message"], response.text
    assert api.get("/v1/batch-jobs/batch-0000").status_code == 404
    assert httpx.get(f"{api.base_url}/v1/batch-jobs").status_code == 401  # the management token applies


def test_stop_then_start_resumes_exactly(api: httpx.Client, data_root: Path) -> None:
    model = echo_model(data_root)
    api.post("/v1/endpoints", json=echo_spec(model)).raise_for_status()
    wait_for_state(api, "echo", {"running"})
    source = write_jsonl(data_root / "echo" / "in.jsonl", [f"r{i}" for i in range(600)])
    out = data_root / "echo-out"
    job = api.post("/v1/batch-jobs", json={"endpoint": "echo", "input": str(source), "output": str(out),
                                           "batch_size": 4, "concurrency": 1}).json()  # fmt: skip
    wait_records(api, job["id"], 40)
    stopping = api.post(f"/v1/batch-jobs/{job['id']}/stop").json()
    assert stopping["status"] in ("stopping", "stopped")
    stopped = wait_job(api, job["id"], {"stopped", "completed"})
    assert stopped["status"] == "stopped" and 40 <= stopped["records"]["done"] < 600, stopped
    assert not (out / "in.jsonl.out").exists()
    assert api.post(f"/v1/batch-jobs/{job['id']}/stop").status_code == 409

    resumed = api.post(f"/v1/batch-jobs/{job['id']}/start").json()
    assert resumed["status"] == "running"
    done = wait_job(api, job["id"], {"completed", "failed"})
    assert done["status"] == "completed" and done["records"]["done"] == 600
    assert done["runs"] == 2 and done["resumed_at_record"] == stopped["records"]["done"]
    assert lines(out / "in.jsonl.out") == [{"echo": f"r{i}"} for i in range(600)]
    assert [j["id"] for j in api.get("/v1/batch-jobs").json()["items"]].count(job["id"]) == 1


def test_s3_input_and_output(api: httpx.Client, s3_server: S3Server, classifier: dict) -> None:
    s3 = s3_server.client()
    for name, count in (("part-a.jsonl", 12), ("part-b.jsonl", 5)):
        body = "".join(json.dumps({"inputs": f"{name} {i}"}) + "\n" for i in range(count))
        s3.put_object(Bucket=s3_server.bucket, Key=f"batch-in/{name}", Body=body.encode())
    job = api.post("/v1/batch-jobs", json={
        **classifier, "input": f"s3://{s3_server.bucket}/batch-in/", "output": f"s3://{s3_server.bucket}/batch-out",
        "batch_size": 4, "join_source": "input",
    }).json()  # fmt: skip
    done = wait_job(api, job["id"], {"completed", "failed"})
    assert done["status"] == "completed", done
    assert [f["output"] for f in done["files"]] == [
        f"s3://{s3_server.bucket}/batch-out/part-a.jsonl.out", f"s3://{s3_server.bucket}/batch-out/part-b.jsonl.out"
    ]
    text = s3.get_object(Bucket=s3_server.bucket, Key="batch-out/part-a.jsonl.out")["Body"].read().decode()
    assert [json.loads(line)["input"]["inputs"] for line in text.splitlines()] == [f"part-a.jsonl {i}" for i in range(12)]


def test_cli_batch_run_prints_progress(batch_server: RunningServer, data_root: Path, classifier: dict) -> None:
    source = write_jsonl(data_root / "cli" / "in.jsonl", [{"inputs": f"cli {i}"} for i in range(40)])
    out = data_root / "cli-out"
    command = [
        sys.executable, "-m", "hubserve", "--url", batch_server.url, "--token", batch_server.token, "batch", "run",
        "--model", classifier["model"], "--task", "text-classification", "--instance", "cpu-small",
        "--input", str(source), "--output", str(out), "--batch-size", "8",
    ]  # fmt: skip
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "completed: 40/40 records, 0 failed" in result.stdout and str(out) in result.stdout
    assert "40/40" in result.stderr and "records/s" in result.stderr  # the progress bar's last frame
    assert len(lines(out / "in.jsonl.out")) == 40

    listed = subprocess.run([*command[:7], "batch", "list"], check=False, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "completed" in listed.stdout


def test_killed_server_resumes_job_exactly_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    model = echo_model(tmp_path)
    source = write_jsonl(tmp_path / "in" / "records.jsonl", [{"inputs": f"k{i}"} for i in range(800)])
    out = tmp_path / "out"
    env = server_env(tmp_path)
    first = start_server(home, extra_env=env)
    try:
        with httpx.Client(base_url=first.url, headers=first.headers(), timeout=60) as api:
            api.post("/v1/endpoints", json=echo_spec(model)).raise_for_status()
            job = api.post("/v1/batch-jobs", json={"endpoint": "echo", "input": str(source), "output": str(out),
                                                   "batch_size": 4, "concurrency": 2}).json()  # fmt: skip
            wait_records(api, job["id"], 60)
            first.process.kill()  # SIGKILL: no shutdown code runs
            first.process.wait(10)
            killed_at = job["id"]
    finally:
        stop_server(first)

    second = start_server(home, extra_env=env)
    try:
        with httpx.Client(base_url=second.url, headers=second.headers(), timeout=60) as api:
            done = wait_job(api, killed_at, {"completed", "failed"})
    finally:
        stop_server(second)
    assert done["status"] == "completed", done
    assert done["records"] == {"total": 800, "done": 800, "succeeded": 800, "failed": 0, "remaining": 0}
    assert done["runs"] == 2 and 60 <= done["resumed_at_record"] < 800
    assert lines(out / "records.jsonl.out") == [{"echo": f"k{i}"} for i in range(800)]
