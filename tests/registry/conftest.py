"""A real `hubserve serve` for the registry tests, and two tiny text-classification models of other content."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tiny_models as builders

from tests.integration.conftest import RunningServer, start_server, stop_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("registry-server") / "home")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def api(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=120) as client:
        yield client


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """"v1": labels NEGATIVE/POSITIVE; "v2": the same weights labelled bad/good (so other content, other hash)."""
    root = tmp_path_factory.mktemp("registry-models")
    first = builders.build_text_classification(root / "v1")
    second = root / "v2"
    shutil.copytree(first, second)
    config = json.loads((second / "config.json").read_text())
    config["id2label"] = {"0": "bad", "1": "good"}
    config["label2id"] = {"bad": 0, "good": 1}
    (second / "config.json").write_text(json.dumps(config))
    return {"v1": first, "v2": second}


from tests.postgres.conftest import pg_url, postgres_url  # noqa: E402,F401 - a real PostgreSQL for the store tests
