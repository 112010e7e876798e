"""``hubserve serve --backend ray`` without an address starts its own local Ray instance, and stops it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import TOKEN, launch, stop_server, wait_for_state, wait_healthy

pytest.importorskip("ray", reason="the Ray backend needs ray installed (pip install 'ray[default]')")


def test_a_local_ray_instance_serves_and_stops(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    short_tmp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    # A private HOME: a local Ray instance writes ~/.ray/auth_token, which `ray start` clusters would then send.
    env = {
        "HUBSERVE_REPLICA_USER": "",
        "RAY_USAGE_STATS_ENABLED": "0",
        "HUBSERVE_BACKEND": "ray",
        "HOME": str(tmp_path),
        "TMPDIR": str(short_tmp),  # Ray's sessions and the node's model cache; short: Ray's socket paths are limited
    }
    server = wait_healthy(launch(tmp_path / "home", "--token", TOKEN, env=env, token=TOKEN), timeout=120)
    try:
        with httpx.Client(base_url=server.url, headers=server.headers(), timeout=120) as api:
            spec = {"name": "solo", "model": {"source": str(tiny_models["text-classification"])}}
            assert api.post("/v1/endpoints", json=spec).status_code == 201
            wait_for_state(api, "solo", {"running"}, timeout=180)
            assert api.post("/endpoints/solo", json={"inputs": "hi"}).status_code == 200
            lines = api.get("/v1/endpoints/solo/logs", params={"tail": 200, "source": "hubserve"}).json()["lines"]
            assert any("ready (node " in line["message"] for line in lines)  # on a Ray node, not a local process
    finally:
        code = stop_server(server)
        shutil.rmtree(short_tmp, ignore_errors=True)
        assert code in (0, 130, -2), server.log()[-3000:]  # Ctrl-C honoured, not killed after the grace time
        assert "Finished server process" in server.log()
