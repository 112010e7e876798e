"""A real server bound to every address (0.0.0.0) with a bootstrap token, and tokens made through its API."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import TOKEN, RunningServer, launch, stop_server, wait_for_state, wait_healthy

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
    running = wait_healthy(launch(
        home, "--private-network", OTHER_NETWORK, host="0.0.0.0", token=TOKEN,
        env={"HUBSERVE_REPLICA_USER": "", "HUBSERVE_TOKEN": TOKEN},
    ), timeout=60)  # fmt: skip
    yield running
    stop_server(running)
    assert TOKEN not in running.log(), "the bootstrap token appeared in the server's log"


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
