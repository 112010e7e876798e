"""A fresh `hubserve serve` per test module (a fault one module injects never reaches another), and a client.

A module with other needs (test_disk_full.py: its own storage root) defines its own ``server`` and ``api``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import RunningServer, start_server, stop_server


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2]) / "home")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def api(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=120) as client:
        yield client
