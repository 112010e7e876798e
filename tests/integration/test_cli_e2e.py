"""The `hubserve` CLI end to end against a real `hubserve serve` and tiny models.

Commands run in-process through typer's CliRunner (one also through the installed
console script) with HUBSERVE_URL / HUBSERVE_TOKEN pointing at the session server,
as a user's shell would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from hubserve.cli.main import app
from tests.integration.conftest import RunningServer

Hubserve = Callable[..., Result]


@pytest.fixture
def hubserve(server: RunningServer) -> Hubserve:
    """Run `hubserve ARGS` with the session server's URL and token in the environment."""
    runner = CliRunner()
    env = {"HUBSERVE_URL": server.url, "HUBSERVE_TOKEN": server.token}

    def run(*args: str, input: str | None = None, token: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input, env={**env, "HUBSERVE_TOKEN": token or server.token})

    return run


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


def wait_gone(hubserve: Hubserve, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if name not in [item["name"] for item in as_json(hubserve("endpoint", "list", "--json"))]:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} still listed after {timeout}s")


def test_endpoint_lifecycle_from_a_spec_file(hubserve: Hubserve, tiny_models: dict[str, Path], tmp_path: Path) -> None:
    name = "cli-file"
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(
        f"name: {name}\n"
        "model:\n"
        f"  source: {tiny_models['text-classification']}\n"
        "  task: text-classification\n"
        "compute:\n"
        "  type: serverless\n"
        "  memory_mb: 2048\n"
        "  max_concurrency: 4\n"
    )

    created = ok(hubserve("endpoint", "create", "-f", str(spec_file), "--wait", "--timeout", "180"))
    assert "running" in created.stdout and f"/endpoints/{name}" in created.stdout

    again = hubserve("endpoint", "create", "-f", str(spec_file))
    assert again.exit_code == 1
    assert again.stderr.startswith("Error (409 EndpointExists): ") and len(again.stderr.splitlines()) == 1

    listing = ok(hubserve("endpoint", "list"))
    assert listing.stdout.splitlines()[0].split() == ["NAME", "TASK", "STATE", "REPLICAS", "COMPUTE", "URL"]
    row = next(line.split() for line in listing.stdout.splitlines() if line.split()[0] == name)
    assert row[1:3] == ["text-classification", "running"] and row[4:7] == ["serverless", "2048", "MB"]
    assert name in [item["name"] for item in as_json(hubserve("endpoint", "list", "--json"))]

    described = ok(hubserve("endpoint", "describe", name)).stdout
    assert "model.task" in described and str(tiny_models["text-classification"]) in described
    description = as_json(hubserve("endpoint", "describe", name, "--json"))
    assert description["compute"]["max_concurrency"] == 4 and description["url"].endswith(f"/endpoints/{name}")

    # invoke: the HF toolkit shape, plain text, the SageMaker route, and the timing headers
    answer = as_json(hubserve("invoke", name, '{"inputs": "I love this"}'))
    assert isinstance(answer, list) and {"label", "score"} <= set(answer[0])
    assert as_json(hubserve("invoke", name, "I love this"))[0]["label"] == answer[0]["label"]
    verbose = ok(hubserve("invoke", name, '{"inputs": "meh"}', "--verbose"))
    assert "model-latency:" in verbose.stderr and "overhead-latency:" in verbose.stderr and "cold-start:" in verbose.stderr
    assert isinstance(json.loads(verbose.stdout), list)
    sagemaker = as_json(hubserve("invoke", name, "--sagemaker", "-d", '{"inputs": "I love this"}', "--json"))
    assert sagemaker["status"] == 200 and sagemaker["model_latency_ms"] > 0 and sagemaker["body"][0]["label"]

    # update by flags (merge patch), then by file (full spec)
    patched = as_json(hubserve("endpoint", "update", name, "--max-concurrency", "8", "--wait", "--timeout", "180", "--json"))
    assert patched["compute"]["max_concurrency"] == 8 and patched["compute"]["memory_mb"] == 2048
    spec_file.write_text(spec_file.read_text() + "env:\n  CLI_E2E: 'yes'\n")
    ok(hubserve("endpoint", "update", name, "-f", str(spec_file), "--wait", "--timeout", "180"))
    description = as_json(hubserve("endpoint", "describe", name, "--json"))
    assert description["env"] == {"CLI_E2E": "yes"} and description["compute"]["max_concurrency"] == 4

    # pause refuses invocations with one clear line; resume brings it back
    assert ok(hubserve("endpoint", "pause", name)).stdout.strip().startswith(f"Endpoint '{name}': ")
    deadline = time.monotonic() + 60
    while as_json(hubserve("endpoint", "describe", name, "--json"))["state"] != "paused":
        assert time.monotonic() < deadline, "never paused"
        time.sleep(0.2)
    refused = hubserve("invoke", name, "x")
    assert refused.exit_code == 1 and refused.stdout == ""
    assert refused.stderr.startswith("Error (503 ModelNotReadyException): ") and "paused" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    ok(hubserve("endpoint", "resume", name, "--wait", "--timeout", "180"))
    assert as_json(hubserve("invoke", name, "back again"))[0]["label"]

    deleted = ok(hubserve("endpoint", "delete", name, "--yes"))
    assert deleted.stdout.strip() == f"Endpoint '{name}': deleting"
    wait_gone(hubserve, name)
    gone = hubserve("endpoint", "describe", name)
    assert gone.exit_code == 1 and gone.stderr.startswith("Error (404 EndpointNotFound): ")


def test_create_from_flags_and_stdin(hubserve: Hubserve, tiny_models: dict[str, Path]) -> None:
    created = as_json(
        hubserve(
            "endpoint", "create", "cli-flags", "--model", str(tiny_models["text-classification"]),
            "--task", "sentiment-analysis", "--memory-mb", "1024", "--max-concurrency", "2",
            "--env", "GREETING=hello=world", "--wait", "--timeout", "180", "--json",
        )
    )  # fmt: skip
    assert created["state"] == "running"
    assert created["model"]["task"] == "text-classification"
    assert created["compute"] == {**created["compute"], "type": "serverless", "memory_mb": 1024, "max_concurrency": 2}
    assert created["env"] == {"GREETING": "hello=world"}
    answer = as_json(hubserve("invoke", "cli-flags", "-", input='{"inputs": ["good", "bad"]}'))
    assert len(answer) == 2
    ok(hubserve("endpoint", "delete", "cli-flags", "--yes"))

    spec = {"name": "cli-stdin", "model": {"source": str(tiny_models["text-classification"])}}
    created = as_json(hubserve("endpoint", "create", "-f", "-", "--json", input=json.dumps(spec)))
    assert created["name"] == "cli-stdin" and created["model"]["task"] == "text-classification"
    ok(hubserve("endpoint", "delete", "cli-stdin", "--yes"))
    wait_gone(hubserve, "cli-flags")
    wait_gone(hubserve, "cli-stdin")


def test_errors_are_one_line_with_exit_1(hubserve: Hubserve, tiny_models: dict[str, Path]) -> None:
    missing = hubserve("endpoint", "describe", "cli-does-not-exist")
    assert missing.exit_code == 1 and missing.stdout == ""
    assert missing.stderr.splitlines() == [
        (
            "Error (404 EndpointNotFound): Endpoint 'cli-does-not-exist' does not exist. "
            "List endpoints with `hubserve endpoint list`."  # the CLI's words, not the REST route
        )
    ]
    for args in (("invoke", "cli-does-not-exist", "x"), ("endpoint", "pause", "cli-does-not-exist")):
        result = hubserve(*args)
        assert result.exit_code == 1 and result.stderr.startswith("Error (404 EndpointNotFound): ")

    bad = hubserve(
        "endpoint", "create", "Bad_Name", "--model", str(tiny_models["text-classification"]), "--memory-mb", "1000"
    )
    assert bad.exit_code == 1
    (line,) = bad.stderr.splitlines()
    assert line.startswith("Error (422 ValidationError): ")
    assert "name:" in line and "compute.memory_mb:" in line

    denied = hubserve("endpoint", "list", token="wrong-token")
    assert denied.exit_code == 1 and denied.stderr.startswith("Error (401 UnauthorizedError): ")

    usage = hubserve("endpoint", "create", "x", "--serverless", "--instance", "cpu-small", "--model", "/m")
    assert usage.exit_code == 2


def test_console_script(server: RunningServer) -> None:
    script = Path(sys.executable).with_name("hubserve")
    if not script.exists():
        pytest.skip("the hubserve console script is not installed next to this interpreter")
    env = {**os.environ, "HUBSERVE_TOKEN": server.token}
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert (version.returncode, version.stdout.strip()) == (0, "hubserve 0.1.0")
    listing = subprocess.run(
        [str(script), "--url", server.url, "endpoint", "list", "--json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert listing.returncode == 0, listing.stderr
    assert isinstance(json.loads(listing.stdout), list)


def test_scale_to_zero_from_the_cli(hubserve: Hubserve, tiny_models: dict[str, Path]) -> None:
    name = "cli-zero"
    ok(hubserve("endpoint", "create", name, "--model", str(tiny_models["text-classification"]), "--wait"))
    zero = as_json(hubserve("endpoint", "scale-to-zero", name, "--json"))
    assert zero["state"] == "scaledToZero" and zero["replicas"]["ready"] == 0
    result = as_json(hubserve("invoke", name, '{"inputs": "wake up"}'))
    assert result[0]["label"] in ("NEGATIVE", "POSITIVE")
    described = as_json(hubserve("endpoint", "describe", name, "--json"))
    assert described["state"] == "running" and described["cold_starts"] == 1
    ok(hubserve("endpoint", "delete", name, "--yes"))
