"""A real `hubserve serve` for the hostile-input tests, with short header and body deadlines so they run fast."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import RunningServer, start_server, stop_server

HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
MIN_BODY_RATE = 16 * 1024


@pytest.fixture(scope="session")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {
        "HUBSERVE_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "HUBSERVE_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "HUBSERVE_MIN_BODY_RATE_BYTES_S": str(MIN_BODY_RATE),
    }
    running = start_server(tmp_path_factory.mktemp("hostile") / "home", extra_env=env)
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def hostile_api(hostile_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hostile_server.url, headers=hostile_server.headers(), timeout=60) as client:
        yield client


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` (VmRSS), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
