"""Ctrl-C stops the server and its replicas; a restart brings back every endpoint from the store."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from tests.integration.conftest import start_server, stop_server, wait_for_state


def replica_pids(model_dir: Path) -> list[int]:
    """Processes whose command line names this model folder (the replicas serving it)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # The model folder is inside the replica's --launch JSON argument.
        if b"hubserve.worker" in cmdline and any(str(model_dir).encode() in part for part in cmdline):
            pids.append(int(proc.name))
    return pids


def test_restart_restores_endpoints(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    model_dir = tmp_path / "restart-model"
    shutil.copytree(tiny_models["text-classification"], model_dir)
    home = tmp_path / "home"

    first = start_server(home)
    try:
        with httpx.Client(base_url=first.url, headers=first.headers(), timeout=60) as api:
            api.post("/v1/endpoints", json={"name": "keep", "model": {"source": str(model_dir)}}).raise_for_status()
            api.post("/v1/endpoints", json={"name": "stay-paused", "model": {"source": str(model_dir)}}).raise_for_status()
            wait_for_state(api, "keep", {"running"})
            wait_for_state(api, "stay-paused", {"running"})
            api.post("/v1/endpoints/stay-paused/pause").raise_for_status()
            wait_for_state(api, "stay-paused", {"paused"})
            expected = api.post("/endpoints/keep", json={"inputs": "same input"}).json()
            assert len(replica_pids(model_dir)) == 1
    finally:
        code = stop_server(first)
    assert code in (0, 130)  # 130: the conventional exit status after Ctrl-C
    assert "Application shutdown complete" in first.log_path.read_text()
    assert replica_pids(model_dir) == []  # Ctrl-C stopped every replica

    second = start_server(home)
    try:
        with httpx.Client(base_url=second.url, headers=second.headers(), timeout=60) as api:
            assert wait_for_state(api, "keep", {"running"})["replicas"]["ready"] == 1
            assert api.post("/endpoints/keep", json={"inputs": "same input"}).json() == expected
            assert api.get("/v1/endpoints/stay-paused").json()["state"] == "paused"
    finally:
        stop_server(second)
