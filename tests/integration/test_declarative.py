"""`hubserve apply / plan / export` end to end: the CLI as a subprocess against a real server.

The module runs its own server: ``--prune`` deletes every endpoint the file does not name, and
the session server holds other modules' endpoints.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tiny_models as builders

from tests.integration.conftest import RunningServer, start_server, stop_server


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("declarative") / "home")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def own_api(own_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=own_server.url, headers=own_server.headers(), timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the tiny model next to the spec files, named relatively (./models/sst2)."""
    root = tmp_path_factory.mktemp("declarative-files")
    builders.build_text_classification(root / "models" / "sst2")
    return root


def hubserve(server: RunningServer, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "hubserve", "--url", server.url, "--token", server.token, *args]
    return subprocess.run(command, capture_output=True, text=True, input=stdin or "", timeout=240, check=False)


def spec_file(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


TWO = """
endpoints:
  - name: decl-a
    model: {{source: ./models/sst2}}
    compute: {{memory_mb: {memory}}}
  - name: decl-b
    model: {{source: ./models/sst2, task: text-classification}}
    compute: {{type: dedicated, instance: cpu-small, min_replicas: 1}}
"""


def states(api: httpx.Client) -> dict[str, str]:
    return {item["name"]: item["state"] for item in api.get("/v1/endpoints").json()["items"]}


def test_apply_plan_update_export_drift_and_prune(own_server: RunningServer, own_api: httpx.Client, workdir: Path) -> None:
    first = spec_file(workdir, "endpoints.yaml", TWO.format(memory=2048))

    planned = hubserve(own_server, "plan", "-f", first)
    assert planned.returncode == 2, planned.stderr
    assert "+ create    decl-a" in planned.stdout and "+ create    decl-b" in planned.stdout
    assert "Plan: 2 to create, 0 to update, 0 to delete, 0 unchanged." in planned.stdout

    applied = hubserve(own_server, "apply", "-f", first, "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "ok   create decl-a: running" in applied.stdout and "ok   create decl-b: running" in applied.stdout
    assert states(own_api) == {"decl-a": "running", "decl-b": "running"}
    live_a = own_api.get("/v1/endpoints/decl-a").json()
    assert live_a["model"]["source"] == str(workdir / "models" / "sst2")  # relative to the file, not the cwd
    assert live_a["model"]["task"] == "text-classification"  # inferred by the server: no drift below

    again = hubserve(own_server, "plan", "-f", first)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes" in again.stdout and "= unchanged decl-a" in again.stdout

    # change a field: plan shows it and exits 2; apply without --yes on a pipe refuses; apply --yes updates
    second = spec_file(workdir, "endpoints.yaml", TWO.format(memory=4096))
    changed = hubserve(own_server, "plan", "-f", second)
    assert changed.returncode == 2
    assert "~ update    decl-a" in changed.stdout and "compute.memory_mb: 2048 -> 4096" in changed.stdout
    assert "= unchanged decl-b" in changed.stdout
    refused = hubserve(own_server, "apply", "-f", second)
    assert refused.returncode == 1 and "pass --yes" in refused.stderr
    assert own_api.get("/v1/endpoints/decl-a").json()["compute"]["memory_mb"] == 2048
    updated = hubserve(own_server, "apply", "-f", second, "--yes")
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert "ok   update decl-a: running" in updated.stdout
    assert own_api.get("/v1/endpoints/decl-a").json()["compute"]["memory_mb"] == 4096
    assert hubserve(own_server, "plan", "-f", second).returncode == 0

    # export -> plan and apply of the export are no-ops; --json is the same specs for machines
    exported = workdir / "exported.yaml"
    written = hubserve(own_server, "export", "-o", str(exported))
    assert written.returncode == 0, written.stderr
    assert "decl-a" in exported.read_text() and "state:" not in exported.read_text()
    assert hubserve(own_server, "plan", "-f", str(exported)).returncode == 0
    noop = hubserve(own_server, "apply", "-f", str(exported), "--yes")
    assert noop.returncode == 0 and "No changes" in noop.stdout
    as_json = hubserve(own_server, "export", "decl-b", "--json")
    assert '"name": "decl-b"' in as_json.stdout and "decl-a" not in as_json.stdout

    # drift: a manual change through the API shows up in plan
    own_api.patch("/v1/endpoints/decl-b", json={"compute": {"max_replicas": 2}}).raise_for_status()
    drift = hubserve(own_server, "plan", "-f", second, "--json")
    assert drift.returncode == 2
    assert '"field": "compute.max_replicas"' in drift.stdout and '"from": 2' in drift.stdout and '"to": 1' in drift.stdout

    # --prune: a file naming only decl-a deletes decl-b (and applies the drift-free rest)
    only_a = spec_file(workdir, "only-a.yaml", "name: decl-a\nmodel: {source: ./models/sst2}\ncompute: {memory_mb: 4096}\n")
    kept = hubserve(own_server, "plan", "-f", only_a)
    assert kept.returncode == 0 and "not in file decl-b" in kept.stdout
    pruned = hubserve(own_server, "apply", "-f", only_a, "--prune", "--yes")
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert "- delete    decl-b" in pruned.stdout and "ok   delete decl-b: deleted" in pruned.stdout
    assert states(own_api) == {"decl-a": "running"}


def test_bad_files_are_clear_errors(own_server: RunningServer, workdir: Path) -> None:
    bad = spec_file(workdir, "bad.yaml", "- name: Bad_Name\n  model: {source: org/x}\n  compute: {memory_mb: 3000}\n")
    result = hubserve(own_server, "plan", "-f", bad)
    assert result.returncode == 1
    assert f"{bad}: endpoint 1 ('Bad_Name'): name: name must be DNS-safe" in result.stderr
    assert f"{bad}: endpoint 1 ('Bad_Name'): compute.memory_mb: memory_mb must be one of" in result.stderr
    missing = hubserve(own_server, "apply", "-f", str(workdir / "nope.yaml"), "--yes")
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_a_failed_create_exits_non_zero(own_server: RunningServer, own_api: httpx.Client, workdir: Path) -> None:
    broken = workdir / "models" / "broken"
    broken.mkdir(parents=True, exist_ok=True)
    (broken / "config.json").write_text('{"model_type": "bert", "architectures": ["BertForSequenceClassification"]}')
    file = spec_file(workdir, "broken.yaml", "name: decl-broken\nmodel: {source: ./models/broken, task: text-classification}\n")
    result = hubserve(own_server, "apply", "-f", file, "--yes", "--timeout", "120")
    try:
        assert result.returncode == 1, result.stdout + result.stderr
        assert "FAIL create decl-broken: failed" in result.stdout
    finally:
        own_api.delete("/v1/endpoints/decl-broken")
        deadline = time.monotonic() + 60
        while "decl-broken" in states(own_api) and time.monotonic() < deadline:
            time.sleep(0.2)
