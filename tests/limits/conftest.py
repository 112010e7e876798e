"""One real `hubserve serve` for the limits tests, and the misbehaving model they deploy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import RunningServer, start_server, stop_server
from tests.limits.handlers import misbehaving_model


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("limits") / "home")
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def api(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=120) as client:
        yield client


@pytest.fixture(scope="session")
def misbehaving(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return misbehaving_model(tiny_models["text-classification"], tmp_path_factory.mktemp("misbehaving") / "model")
