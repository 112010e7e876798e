"""A real server bound to every address (0.0.0.0) with a bootstrap token, and tokens made through its API."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import TOKEN, RunningServer, free_port, stop_server, wait_for_state

OTHER_NETWORK = "198.51.100.0/24"  # allow-listed for private endpoints; this machine is not in it


def outside_address() -> str | None:
    """A non-loopback address of this machine (what a request from another host looks like), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.123", 9))  # no packet is sent: this only picks the outgoing interface
            address = str(sock.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("auth") / "home"
    port = free_port()
    log_path = home.parent / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HUBSERVE_REPLICA_USER": ""}
    env.pop("HUBSERVE_TOKEN", None)
    command = [sys.executable, "-m", "hubserve", "serve", "--host", "0.0.0.0", "--port", str(port), "--home", str(home),
               "--private-network", OTHER_NETWORK]  # fmt: skip
    env["HUBSERVE_TOKEN"] = TOKEN
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    running = RunningServer(url, TOKEN, home, process, log_path)
    yield running
    stop_server(running)
    assert TOKEN not in log_path.read_text(), "the bootstrap token appeared in the server's log"


@pytest.fixture(scope="session")
def admin(auth_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=auth_server.url, headers=auth_server.headers(), timeout=60) as client:
        yield client


MakeToken = Callable[..., dict]


@pytest.fixture(scope="session")
def make_token(admin: httpx.Client) -> MakeToken:
    """Create a token through the API: make_token("invoke", endpoints=[...]) -> {"id", "token", ...}."""

    def make(*scopes: str, endpoints: list[str] | None = None) -> dict:
        body: dict = {"name": f"test-{'-'.join(scopes)}", "scopes": list(scopes)}
        if endpoints is not None:
            body["endpoints"] = endpoints
        created = admin.post("/v1/tokens", json=body)
        assert created.status_code == 201, created.text
        return dict(created.json())

    return make


@pytest.fixture(scope="session")
def endpoints(admin: httpx.Client, tiny_models: dict[str, Path]) -> dict[str, str]:
    """Three running text-classification endpoints: access public, protected (the default) and private."""
    source = str(tiny_models["text-classification"])
    names = {"public": "vis-public", "protected": "vis-protected", "private": "vis-private"}
    for access, name in names.items():
        spec: dict = {"name": name, "model": {"source": source, "task": "text-classification"}}
        if access != "protected":
            spec["access"] = access
        created = admin.post("/v1/endpoints", json=spec)
        assert created.status_code == 201, created.text
    for name in names.values():
        wait_for_state(admin, name, {"running", "scaledToZero"})
    return names
