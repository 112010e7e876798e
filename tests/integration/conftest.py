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

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(
    home: Path, *args: str, env: dict[str, str] | None = None, host: str = "127.0.0.1", token: str = ""
) -> RunningServer:
    """``hubserve serve --host HOST --port <free> --home HOME ARGS...``, not waited for (it may be meant to refuse).

    The server gets this process's environment less HUBSERVE_TOKEN, plus HF_HUB_OFFLINE and ``env``;
    ``token`` is only what the returned server's ``headers()`` send.
    """
    port = free_port()
    log_path = home.parent / f"{home.name}-server-{port}.log"
    environment = {key: value for key, value in os.environ.items() if key != "HUBSERVE_TOKEN"}
    environment.update({"HF_HUB_OFFLINE": "1", **(env or {})})
    args = (*args, *backend_args(args))
    with open(log_path, "ab") as log:  # the server keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "hubserve", "serve", "--host", host, "--port", str(port), "--home", str(home), *args],
            stdout=log, stderr=subprocess.STDOUT, env=environment,
        )  # fmt: skip
    return RunningServer(f"http://127.0.0.1:{port}", token, home, process, log_path)


def backend_args(args: tuple[str, ...] | list[str] = ()) -> list[str]:
    """``--backend ray [--ray-address A]`` when HUBSERVE_TEST_BACKEND=ray (HUBSERVE_TEST_RAY_ADDRESS), else nothing.

    So the same integration suite runs on either backend (tests/ray/test_integration_suite_on_ray.py);
    a launch that names its own ``--backend`` keeps it.
    """
    if os.environ.get("HUBSERVE_TEST_BACKEND", "local") != "ray" or "--backend" in args:
        return []
    address = os.environ.get("HUBSERVE_TEST_RAY_ADDRESS")
    return ["--backend", "ray", *(["--ray-address", address] if address else [])]


def wait_healthy(server: RunningServer, timeout: float = 90) -> RunningServer:
    """``server`` once /health answers; raises with the log's tail if it exits or does not answer in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited: {server.log()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.process.kill()
    raise RuntimeError(f"server did not start: {server.log()[-3000:]}")


def start_server(home: Path, token: str = TOKEN, extra_env: dict[str, str] | None = None) -> RunningServer:
    """A healthy server with ``token`` as its bootstrap token (on the command line: these are tests)."""
    # Replicas keep the test's user: models live under pytest's private (0700) temp folder, which the
    # default replica user (nobody, as root) cannot read. tests/isolation/ runs servers that drop.
    env = {"HUBSERVE_REPLICA_USER": "", **(extra_env or {})}
    return wait_healthy(launch(home, "--token", token, env=env, token=token), timeout=120 if backend_args() else 60)


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
