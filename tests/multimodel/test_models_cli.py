"""`hubserve endpoint models NAME` against the real server: the table before and after a model loads, --json,
and the API's own error (exit code 1) for a single-model or unknown endpoint."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from hubserve.cli.endpoint import relative_time
from hubserve.cli.main import app
from tests.integration.conftest import RunningServer, start_server, stop_server, wait_for_state
from tests.multimodel.conftest import build_classifier, relabel

NAME, SINGLE = "mme-cli", "mme-cli-single"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("mme-cli-server") / "home")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def api(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def endpoint(api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Two small models (about 4 MB each) behind one dedicated replica, and a single-model endpoint beside it."""
    root = tmp_path_factory.mktemp("mme-cli-models")
    base = build_classifier(tmp_path_factory.mktemp("mme-cli-base") / "m", ("x", "y"))
    for name in ("alpha", "beta"):
        relabel(base, root / name, (f"{name}-neg", f"{name}-pos"))
    specs = [
        {"name": NAME, "model": {"source": str(root), "task": "text-classification", "multi_model": True,
                                 "models_memory_mb": 64},
         "compute": {"type": "dedicated", "instance": "cpu-small", "min_replicas": 1, "max_replicas": 1}},
        {"name": SINGLE, "model": {"source": str(base)}},
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
def cli(server: RunningServer) -> Any:
    """Run `hubserve ARGS --url URL --token TOKEN` as a user would, in this process (as tests/cli do)."""
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, [*args, "--url", server.url, "--token", server.token])

    return run


def _rows(output: str) -> dict[str, list[str]]:
    """The table's lines by model name, split on runs of two or more spaces (cells hold single spaces)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("MODEL"))
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", line.strip()) for line in lines[start + 1 :] if line.strip())}


def test_before_any_call_every_model_is_unloaded(cli: Any, endpoint: str) -> None:
    result = cli("endpoint", "models", NAME)
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith(f"Endpoint '{NAME}' (") and "memory used/budget per replica:" in first
    assert re.search(r"\S+ 0\.0/64\.0 MB", first), first
    header = result.output.splitlines()[1].split()
    assert header == ["MODEL", "STATE", "REPLICAS", "SIZE", "MB", "LAST", "USED", "LOAD", "TIME", "HITS/MISSES"]
    rows = _rows(result.output)
    assert set(rows) == {"alpha", "beta"}
    assert rows["alpha"][1:] == ["unloaded", "-", "-", "-", "-", "0/0"]


def test_a_loaded_model_shows_its_replica_size_use_and_load_time(cli: Any, api: httpx.Client, endpoint: str) -> None:
    answer = api.post(f"/endpoints/{NAME}/models/alpha", json={"inputs": "what a day"})
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 10
    while True:  # the replica reports a model's load within moments
        result = cli("endpoint", "models", NAME)
        rows = _rows(result.output)
        if rows["alpha"][1] == "loaded" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert result.exit_code == 0, result.output
    _, state, replicas, size, last_used, load_time, counts = rows["alpha"]
    assert state == "loaded" and replicas.startswith(f"{NAME}-") and float(size) > 0
    assert re.fullmatch(r"\d+s ago", last_used) and re.fullmatch(r"\d+\.\d\ds", load_time) and counts == "0/1"
    assert rows["beta"][1] == "unloaded"
    memory = re.search(rf"{re.escape(replicas)} (\d+\.\d)/64\.0 MB", result.output.splitlines()[0])
    assert memory is not None and float(memory.group(1)) == pytest.approx(float(size), abs=0.2)


def test_json_is_the_apis_listing(cli: Any, api: httpx.Client, endpoint: str) -> None:
    result = cli("endpoint", "models", NAME, "--json")
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    assert listing["endpoint"] == NAME and {m["name"] for m in listing["models"]} == {"alpha", "beta"}
    assert listing.keys() == api.get(f"/v1/endpoints/{NAME}/models").json().keys()


def test_single_model_and_unknown_endpoints_fail_with_the_apis_message(cli: Any, endpoint: str) -> None:
    single = cli("endpoint", "models", SINGLE)
    assert single.exit_code == 1 and single.stdout == ""
    assert single.stderr.startswith("Error (400 ValidationError): Endpoint 'mme-cli-single' serves one model"), single.stderr
    assert "multi_model: true" in single.stderr
    unknown = cli("endpoint", "models", "nothing-here")
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("Error (404 EndpointNotFound): Endpoint 'nothing-here' does not exist"), unknown.stderr


def test_relative_times() -> None:
    now = 1_000_000.0
    assert [relative_time(now - ago, now) for ago in (0, 12.7, 59, 60, 3599, 3600, 86400 * 2 + 5)] == [
        "0s ago", "12s ago", "59s ago", "1m ago", "59m ago", "1h ago", "2d ago",
    ]  # fmt: skip
    assert relative_time(None, now) == "-" and relative_time(now + 5, now) == "0s ago"  # a replica's clock ahead


def test_with_no_replica_running_the_models_stay_listed(cli: Any, api: httpx.Client, endpoint: str) -> None:
    """Last in the file: the endpoint is scaled to zero, so no replica holds a model or reports memory."""
    assert api.post(f"/v1/endpoints/{NAME}/scale-to-zero").status_code == 200
    wait_for_state(api, NAME, {"scaledToZero"}, timeout=60)
    result = cli("endpoint", "models", NAME)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].endswith("memory used/budget per replica: no replica running"), result.output
    rows = _rows(result.output)
    assert set(rows) == {"alpha", "beta"} and rows["alpha"][1:3] == rows["beta"][1:3] == ["unloaded", "-"]



def test_invoke_names_the_model(cli: Any, endpoint: str) -> None:
    """`hubserve invoke NAME DATA --target-model M`, on both routes, as the console's snippet writes it."""
    for extra in ([], ["--sagemaker"]):
        result = cli("invoke", NAME, '{"inputs": "hi"}', "--target-model", "beta", *extra)
        assert result.exit_code == 0, result.output
        assert '"beta-' in result.output


def test_create_makes_a_multi_model_endpoint_from_flags(cli: Any, api: httpx.Client, endpoint: str, tmp_path: Path) -> None:
    single_source = Path(api.get(f"/v1/endpoints/{SINGLE}").json()["model"]["source"])
    relabel(single_source, tmp_path / "gamma", ("gamma-neg", "gamma-pos"))
    created = cli("endpoint", "create", "mme-flags", "--model", str(tmp_path), "--multi-model", "--task",
                  "text-classification", "--json")  # fmt: skip
    assert created.exit_code == 0, created.output
    try:
        assert wait_for_state(api, "mme-flags", {"running", "failed"})["model"]["multi_model"] is True
        answer = cli("invoke", "mme-flags", '{"inputs": "hi"}', "--target-model", "gamma")
        assert answer.exit_code == 0 and '"gamma-' in answer.output, answer.output
    finally:
        api.delete("/v1/endpoints/mme-flags")
