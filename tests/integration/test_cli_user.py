"""What a new user tripped on at the CLI (issue 14, part D), against the real session server.

Each test runs the `hubserve` command as a subprocess (the installed module, a real terminal-less
shell) with the server's URL and token, on endpoints of tiny models built here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import RunningServer, wait_for_state

SERVING = {"running", "scaledToZero"}


def hubserve(server: RunningServer, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUBSERVE_URL": server.url, "HUBSERVE_TOKEN": server.token}
    return subprocess.run([sys.executable, "-m", "hubserve", *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=timeout, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import tiny_models

    root = tmp_path_factory.mktemp("cli-user-models")
    return {task: tiny_models.BUILDERS[task](root / task) for task in ("text-classification", "question-answering")}


@pytest.fixture(scope="module")
def classifier(api: httpx.Client, models: dict[str, Path]) -> Iterator[str]:
    name = "cli-user"
    spec = {"name": name, "model": {"source": str(models["text-classification"]), "task": "text-classification"},
            "compute": {"type": "serverless", "memory_mb": 1024, "max_concurrency": 4}}  # fmt: skip
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    wait_for_state(api, name, SERVING)
    yield name
    api.delete(f"/v1/endpoints/{name}")


def test_pause_resume_and_scale_to_zero_wait(server: RunningServer, api: httpx.Client, classifier: str) -> None:
    paused = hubserve(server, "endpoint", "pause", classifier, "--wait", "--timeout", "120")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.strip() == f"Endpoint '{classifier}': paused"
    assert paused.stderr.splitlines()[-1].split()[-1] == "paused"  # the last phase line
    assert api.get(f"/v1/endpoints/{classifier}").json()["state"] == "paused"

    resumed = hubserve(server, "endpoint", "resume", classifier, "--wait", "--timeout", "180")
    assert resumed.returncode == 0, resumed.stderr
    assert api.get(f"/v1/endpoints/{classifier}").json()["state"] in SERVING

    zero = hubserve(server, "endpoint", "scale-to-zero", classifier, "--wait", "--timeout", "120")
    assert zero.returncode == 0, zero.stderr
    assert zero.stdout.strip() == f"Endpoint '{classifier}': scaledToZero"


def test_invoking_a_paused_endpoint_names_the_resume_command(
    server: RunningServer, api: httpx.Client, classifier: str
) -> None:
    assert hubserve(server, "endpoint", "pause", classifier, "--wait").returncode == 0
    try:
        done = hubserve(server, "invoke", classifier, '{"inputs": "I love this movie"}')
        assert done.returncode == 1
        assert f"resume it with `hubserve endpoint resume {classifier}`" in done.stderr
        assert "POST /v1/" not in done.stderr
        answer = httpx.post(f"{server.url}/endpoints/{classifier}", headers=server.headers(), json={"inputs": "x"})
        assert f"POST /v1/endpoints/{classifier}/resume" in answer.json()["error"]["message"]  # the API keeps its route
    finally:
        api.post(f"/v1/endpoints/{classifier}/resume")


def test_delete_without_a_terminal_names_yes(server: RunningServer, api: httpx.Client, classifier: str) -> None:
    done = hubserve(server, "endpoint", "delete", classifier)
    assert done.returncode == 1
    assert done.stderr == "Error: not deleting: stdin is not a terminal to confirm on; pass --yes to delete without asking\n"
    assert api.get(f"/v1/endpoints/{classifier}").status_code == 200  # still there


def test_a_wrong_type_gets_the_allowed_values(server: RunningServer, api: httpx.Client, models: dict[str, Path],
                                             tmp_path: Path) -> None:  # fmt: skip
    allowed = "1024, 2048, 3072, 4096, 5120, 6144 (1024..6144 in steps of 1024)"
    spec = {"name": "wrong-type", "model": {"source": str(models["text-classification"])}, "compute": {"memory_mb": "4GB"}}
    answer = api.post("/v1/endpoints", json=spec)
    assert answer.status_code == 422
    [detail] = answer.json()["error"]["details"]
    assert detail == {"field": "compute.memory_mb", "message": f"memory_mb must be a whole number of MB, one of {allowed}; got '4GB'"}

    answer = api.post("/v1/endpoints", json={**spec, "compute": {"max_concurrency": "lots"}})
    assert answer.json()["error"]["details"][0]["message"] == "must be a whole number between 1 and 200; got 'lots'"

    (tmp_path / "spec.yaml").write_text(f"name: wrong-type\nmodel:\n  source: {spec['model']['source']}\ncompute:\n  memory_mb: 4GB\n")
    done = hubserve(server, "endpoint", "create", "-f", str(tmp_path / "spec.yaml"))
    assert done.returncode == 1
    assert done.stderr.startswith("Error (422 ValidationError): ") and f"one of {allowed}; got '4GB'" in done.stderr
    planned = hubserve(server, "plan", "-f", str(tmp_path / "spec.yaml"))  # checked before any request
    assert planned.returncode == 1 and f"compute.memory_mb: memory_mb must be a whole number of MB, one of {allowed}; got '4GB'" in planned.stderr


def test_bench_sends_an_example_the_task_accepts(server: RunningServer, api: httpx.Client, models: dict[str, Path]) -> None:
    name = "cli-user-qa"
    spec = {"name": name, "model": {"source": str(models["question-answering"]), "task": "question-answering"},
            "compute": {"type": "serverless", "memory_mb": 1024, "max_concurrency": 4}}  # fmt: skip
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    try:
        wait_for_state(api, name, SERVING)
        done = hubserve(server, "bench", name, "-n", "6", "-c", "2", "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert (report["succeeded"], report["failed"], report["first_failure"]) == (6, 0, None)

        failing = hubserve(server, "bench", name, "-n", "3", "--data", '{"inputs": "no context here"}')
        assert failing.returncode == 1
        first = failing.stderr.strip().splitlines()[-1]
        assert first.startswith("Error: 3 of 3 requests failed; the first: ")
        assert "First failure" in failing.stdout

        missing = hubserve(server, "bench", "no-such-endpoint", "-n", "3")
        assert missing.returncode == 1 and "hubserve endpoint list" in missing.stderr  # nothing was sent
    finally:
        api.delete(f"/v1/endpoints/{name}")
