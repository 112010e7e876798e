"""A real `hubserve serve` on a free 127.0.0.1 port, with a management token, for the session."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

TOKEN = "test-token-5f1c"


@dataclasses.dataclass
class RunningServer:
    url: str
    token: str
    home: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(home: Path, token: str = TOKEN, extra_env: dict[str, str] | None = None) -> RunningServer:
    port = free_port()
    log_path = home.parent / f"{home.name}-server-{port}.log"
    # Replicas keep the test's user: models live under pytest's private (0700) temp folder, which the
    # default replica user (nobody, as root) cannot read. tests/isolation/ runs servers that drop.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HUBSERVE_REPLICA_USER": "", **(extra_env or {})}
    env.pop("HUBSERVE_TOKEN", None)
    with open(log_path, "ab") as log:  # the server keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "hubserve", "serve", "--port", str(port), "--home", str(home), "--token", token],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return RunningServer(url, token, home, process, log_path)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not start: {log_path.read_text()[-3000:]}")


def stop_server(server: RunningServer, timeout: float = 30) -> int:
    """Ctrl-C, as a user would; returns the exit code."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("server") / "home")
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def api(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=120) as client:
        yield client


def wait_for_state(api: httpx.Client, name: str, states: set[str], timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    description: dict = {}
    while time.monotonic() < deadline:
        response = api.get(f"/v1/endpoints/{name}")
        if response.status_code == 404 and "gone" in states:
            return {}
        description = response.json()
        if description.get("state") in states:
            return description
        time.sleep(0.2)
    raise AssertionError(f"{name} never reached {states}: {description}")
