"""A server restarted on the same home serves its registry endpoints again from the verified stored files."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import start_server, stop_server, wait_for_state


def test_a_registry_endpoint_comes_back_after_a_restart(tmp_path_factory: pytest.TempPathFactory,
                                                         models: dict[str, Path]) -> None:  # fmt: skip
    home = tmp_path_factory.mktemp("registry-restart") / "home"
    first = start_server(home)
    try:
        with httpx.Client(base_url=first.url, headers=first.headers(), timeout=120) as api:
            sha = api.post("/v1/models/kept/versions", json={"source": str(models["v1"])}).json()["sha256"]
            api.post("/v1/models/kept/versions/1/approve")
            spec = {"name": "kept", "model": {"source": "registry://kept/latest-approved"},
                    "compute": {"type": "dedicated", "instance": "cpu-small", "min_replicas": 1, "max_replicas": 1}}  # fmt: skip
            assert api.post("/v1/endpoints", json=spec).status_code == 201
            assert wait_for_state(api, "kept", {"running", "failed"})["state"] == "running"
    finally:
        stop_server(first)
    second = start_server(home)
    try:
        with httpx.Client(base_url=second.url, headers=second.headers(), timeout=120) as api:
            running = wait_for_state(api, "kept", {"running", "failed"})
            assert running["state"] == "running", running
            assert running["model_version"] == f"registry://kept/1 (sha256 {sha})"
            assert api.post("/endpoints/kept", json={"inputs": "fine"}).status_code == 200
            assert api.get("/v1/models/kept/versions/1").json()["endpoints"] == ["kept"]
    finally:
        stop_server(second)
