"""Hub repo ids end to end: a server whose Hub cache is laid out by hand, offline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.hub_cache import lay_out_hub_cache
from tests.integration.conftest import RunningServer, start_server, stop_server, wait_for_state


@pytest.fixture(scope="module")
def hub_api(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A second server, offline, whose Hub cache holds only org/name."""
    root = tmp_path_factory.mktemp("hub-server")
    cache = root / "hub-cache"
    lay_out_hub_cache(cache, "org/name", tiny_models["text-classification"])
    server: RunningServer = start_server(root / "home", extra_env={"HUBSERVE_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    try:
        with httpx.Client(base_url=server.url, headers=server.headers(), timeout=120) as client:
            yield client
    finally:
        stop_server(server)


def test_a_cached_hub_repo_is_served(hub_api: httpx.Client) -> None:
    spec = {"name": "hub", "model": {"source": "org/name", "task": "text-classification"}}
    created = hub_api.post("/v1/endpoints", json=spec)
    assert created.status_code == 201, created.text
    assert created.json()["model"]["source"] == "org/name"

    running = wait_for_state(hub_api, "hub", {"running", "failed"}, timeout=50)
    assert running["state"] == "running", running["reason"]
    answer = hub_api.post("/endpoints/hub", json={"inputs": "I love this"})
    assert answer.status_code == 200, answer.text
    labels = answer.json()
    assert isinstance(labels, list) and labels[0]["label"] in ("NEGATIVE", "POSITIVE")
    assert isinstance(labels[0]["score"], float)
    hub_api.delete("/v1/endpoints/hub")


def test_an_uncached_hub_repo_fails_saying_it_could_not_be_fetched(hub_api: httpx.Client) -> None:
    spec = {"name": "uncached", "model": {"source": "org/not-in-cache", "task": "text-classification"}}
    created = hub_api.post("/v1/endpoints", json=spec)
    assert created.status_code == 201, created.text  # the id is valid; only fetching can tell

    failed = wait_for_state(hub_api, "uncached", {"failed", "running"}, timeout=30)
    assert failed["state"] == "failed"
    assert "could not fetch 'org/not-in-cache'" in failed["reason"] and "offline" in failed["reason"]
    refused = hub_api.post("/endpoints/uncached", json={"inputs": "x"})
    assert refused.status_code == 503 and "failed" in refused.json()["error"]["message"]
    hub_api.delete("/v1/endpoints/uncached")


@pytest.mark.parametrize("source", ["../../etc", "org/../../etc", "a/b/c", "org/..", "org//name", "bad id/name"])
def test_sources_that_are_neither_folders_nor_hub_ids_get_422(api: httpx.Client, source: str) -> None:
    response = api.post("/v1/endpoints", json={"name": "bad-source", "model": {"source": source, "task": "text-classification"}})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "ValidationError"
    assert [detail["field"] for detail in error["details"]] == ["model.source"]
    assert api.get("/v1/endpoints/bad-source").status_code == 404
