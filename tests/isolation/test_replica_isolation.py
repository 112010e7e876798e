"""A custom handler is contained: no secrets, not root, no process outliving its replica."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import TOKEN, RunningServer, wait_for_state
from tests.isolation.conftest import DROP_BLOCKED, SECRET, probe_model


def _deploy(api: httpx.Client, name: str, model: Path) -> None:
    spec = {"name": name, "model": {"source": str(model), "task": "text-classification"}, "custom_code": True}
    api.post("/v1/endpoints", json=spec).raise_for_status()
    wait_for_state(api, name, {"running"})


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def probe(isolated_api: httpx.Client, open_dir: Path) -> str:
    _deploy(isolated_api, "probe", probe_model(open_dir))
    return "probe"


def _checked_ancestors(seen: dict[str, Any], server: RunningServer) -> list[dict[str, Any]]:
    """The ancestors whose environment must hide the secrets: the zygote (scrubbed) and the server,
    unreadable to the replica's user. Where replicas keep the server's user (the drop is blocked:
    DROP_BLOCKED says why), that user may read the server's own /proc/<pid>/environ, as docs/security.md says."""
    if DROP_BLOCKED is None:
        return list(seen["ancestors"])
    return [ancestor for ancestor in seen["ancestors"] if ancestor["pid"] != server.process.pid]


def test_no_secret_in_replica_or_zygote_environment(
    isolated_api: httpx.Client, isolated_server: RunningServer, probe: str
) -> None:
    seen = isolated_api.post(f"/endpoints/{probe}", json={"inputs": "env"}).json()
    own = seen["own"]
    assert not [name for name in own if name.startswith("HUBSERVE_") and name not in ("HUBSERVE_REPLICA_ID", "HUBSERVE_REPLICA_SERVER_PID")]
    assert "AWS_SECRET_ACCESS_KEY" not in own and SECRET not in str(own) and TOKEN not in str(own)
    assert seen["ancestors"], "the replica should see its parent (the zygote or the server)"
    for ancestor in _checked_ancestors(seen, isolated_server):
        assert SECRET not in ancestor["environ"], ancestor["pid"]
        assert TOKEN not in ancestor["environ"], ancestor["pid"]


@pytest.mark.skipif(DROP_BLOCKED is not None, reason=DROP_BLOCKED or "")
def test_replica_runs_unprivileged(
    isolated_api: httpx.Client, isolated_server: RunningServer, probe: str, etc_target: Path
) -> None:
    asked = {"inputs": "who", "home": str(isolated_server.home), "etc": str(etc_target)}
    who = isolated_api.post(f"/endpoints/{probe}", json=asked).json()
    assert who["uid"] != 0 and who["euid"] != 0
    assert who["write_etc"] == "PermissionError"
    assert who["write_home"] == "PermissionError"
    assert who["passwd_readable"]  # world-readable files stay readable: documented in docs/security.md
    assert not etc_target.exists()


def test_replica_leads_its_own_process_group(isolated_api: httpx.Client, probe: str) -> None:
    who = isolated_api.post(f"/endpoints/{probe}", json={"inputs": "who"}).json()
    assert who["pgid"] == who["pid"]


def test_forked_child_dies_with_the_endpoint(isolated_api: httpx.Client, open_dir: Path) -> None:
    _deploy(isolated_api, "forker", probe_model(open_dir / "forker"))
    child = isolated_api.post("/endpoints/forker", json={"inputs": "fork"}).json()["child"]
    assert _alive(child)
    isolated_api.delete("/v1/endpoints/forker").raise_for_status()
    wait_for_state(isolated_api, "forker", {"gone"})
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child), f"pid {child}, forked by the replica, outlived its endpoint"


@pytest.mark.skipif(DROP_BLOCKED is not None, reason=DROP_BLOCKED or "")
def test_a_real_model_serves_as_the_replica_user(
    isolated_api: httpx.Client, open_dir: Path, tiny_models: dict[str, Path]
) -> None:
    """Dropping privileges keeps plain models working: the replica reads a world-readable model folder."""
    folder = open_dir / "tiny-classifier"
    shutil.copytree(tiny_models["text-classification"], folder)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    spec = {"name": "plain", "model": {"source": str(folder), "task": "text-classification"}}
    isolated_api.post("/v1/endpoints", json=spec).raise_for_status()
    wait_for_state(isolated_api, "plain", {"running"})
    answer = isolated_api.post("/endpoints/plain", json={"inputs": "I love this"})
    assert answer.status_code == 200, answer.text
    assert isinstance(answer.json(), list) and "label" in answer.json()[0]


def test_a_fresh_process_replica_is_contained_too(
    isolated_api: httpx.Client, isolated_server: RunningServer, open_dir: Path, etc_target: Path
) -> None:
    """An endpoint env read at import time (HF_*) starts `python -m hubserve.worker`, not a fork: same rules."""
    model = probe_model(open_dir / "fresh")
    spec = {
        "name": "fresh", "model": {"source": str(model), "task": "text-classification"},
        "custom_code": True, "env": {"HF_PROBE_SETTING": "1"},
    }  # fmt: skip
    isolated_api.post("/v1/endpoints", json=spec).raise_for_status()
    wait_for_state(isolated_api, "fresh", {"running"})
    seen = isolated_api.post("/endpoints/fresh", json={"inputs": "env"}).json()
    assert seen["own"]["HF_PROBE_SETTING"] == "1"
    assert SECRET not in str(seen["own"]) and TOKEN not in str(seen["own"])
    for ancestor in _checked_ancestors(seen, isolated_server):
        assert SECRET not in ancestor["environ"] and TOKEN not in ancestor["environ"], ancestor["pid"]
    who = isolated_api.post("/endpoints/fresh", json={"inputs": "who", "etc": str(etc_target)}).json()
    assert who["pgid"] == who["pid"]
    if DROP_BLOCKED is None:
        assert who["uid"] != 0 and who["write_etc"] == "PermissionError" and not etc_target.exists()
    child = isolated_api.post("/endpoints/fresh", json={"inputs": "fork"}).json()["child"]
    isolated_api.delete("/v1/endpoints/fresh").raise_for_status()
    wait_for_state(isolated_api, "fresh", {"gone"})
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


@pytest.mark.skipif(DROP_BLOCKED is not None, reason=DROP_BLOCKED or "")
def test_a_private_model_folder_fails_with_a_clear_reason(
    isolated_api: httpx.Client, tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    """pytest's temp folders are 0700 root: the replica's user cannot read them, and the endpoint says so."""
    spec = {"name": "private-folder", "model": {"source": str(tiny_models["text-classification"])}}
    isolated_api.post("/v1/endpoints", json=spec).raise_for_status()
    failed = wait_for_state(isolated_api, "private-folder", {"failed"})
    assert "cannot be read by the replica's user" in failed["reason"]
    assert "HUBSERVE_REPLICA_USER" in failed["reason"]
    isolated_api.delete("/v1/endpoints/private-folder")
