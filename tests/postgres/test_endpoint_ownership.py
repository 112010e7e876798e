"""Two real servers on one PostgreSQL store: each endpoint runs on exactly one of them (the holder of
its ``endpoint/<name>`` lease), and when the holder is killed (kill -9) the other takes it over."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from tests.integration.conftest import RunningServer, stop_server, wait_for_state
from tests.postgres.test_servers_on_postgres import serve_on


def ready(api: httpx.Client, name: str) -> int:
    """Replicas serving ``name`` on this server."""
    answer = api.get(f"/v1/endpoints/{name}")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["replicas"]["ready"])


def lease_holder(pg_url: str, name: str) -> str | None:
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        holder = conn.execute(sa.text("SELECT holder FROM leases WHERE name = :n"), {"n": f"endpoint/{name}"}).scalar()
    engine.dispose()
    return None if holder is None else str(holder)


def test_an_endpoint_runs_on_one_server_and_moves_when_its_holder_dies(
    pg_url: str, tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    first = serve_on(tmp_path / "home-a", pg_url)
    second: RunningServer | None = None
    try:
        second = serve_on(tmp_path / "home-b", pg_url)
        first_id = (tmp_path / "home-a" / "server-id").read_text().strip()
        spec = {"name": "owned", "model": {"source": str(tiny_models["text-classification"])}}
        with (
            httpx.Client(base_url=first.url, headers=first.headers(), timeout=60) as api_a,
            httpx.Client(base_url=second.url, headers=second.headers(), timeout=60) as api_b,
        ):
            assert api_a.post("/v1/endpoints", json=spec).status_code == 201
            assert wait_for_state(api_a, "owned", {"running"})["replicas"]["ready"] == 1
            assert lease_holder(pg_url, "owned") == first_id  # taken inline by the server that created it
            time.sleep(10)  # two of the other server's scans: it must leave a held endpoint alone
            assert (ready(api_a, "owned"), ready(api_b, "owned")) == (1, 0)
            assert api_b.get("/v1/endpoints/owned").json()["state"] == "running"  # the holder's state, from the store
            expected = api_a.post("/endpoints/owned", json={"inputs": "same input"}).json()
            elsewhere = api_b.post("/endpoints/owned", json={"inputs": "same input"})  # forwarded to the holder
            assert elsewhere.status_code == 200 and elsewhere.json() == expected, elsewhere.text
            assert (ready(api_a, "owned"), ready(api_b, "owned")) == (1, 0)  # ... whose replica answered it
            # a change made through the other server is applied by the holder at its next scan
            assert api_b.post("/v1/endpoints/owned/pause").status_code == 200
            assert wait_for_state(api_a, "owned", {"paused"}, timeout=20)["replicas"]["ready"] == 0
            assert api_b.post("/v1/endpoints/owned/resume").status_code == 200
            assert wait_for_state(api_a, "owned", {"running"}, timeout=60)["replicas"]["ready"] == 1

            os.kill(first.process.pid, signal.SIGKILL)
            first.process.wait()
            killed_at = time.monotonic()
            while ready(api_b, "owned") != 1:
                assert time.monotonic() - killed_at < 40, api_b.get("/v1/endpoints/owned").text
                time.sleep(0.2)
            took_s = time.monotonic() - killed_at
            assert lease_holder(pg_url, "owned") == (tmp_path / "home-b" / "server-id").read_text().strip()
            answer = api_b.post("/endpoints/owned", json={"inputs": "same input"})
            assert answer.status_code == 200, answer.text
            assert answer.json() == expected
            assert took_s < 30, took_s  # lease 15 s + one scan (4 s) + the replica's start
    finally:
        if first.process.poll() is None:
            first.process.kill()
            first.process.wait()
        if second is not None:
            stop_server(second)


def test_a_clean_stop_hands_endpoints_over_at_once(pg_url: str, tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    first = serve_on(tmp_path / "home-a", pg_url)
    second: RunningServer | None = None
    try:
        second = serve_on(tmp_path / "home-b", pg_url)
        with httpx.Client(base_url=first.url, headers=first.headers(), timeout=60) as api_a:
            spec = {"name": "handed", "model": {"source": str(tiny_models["text-classification"])}}
            assert api_a.post("/v1/endpoints", json=spec).status_code == 201
            wait_for_state(api_a, "handed", {"running"})
        assert stop_server(first) in (0, 130)
        first_id = (tmp_path / "home-a" / "server-id").read_text().strip()
        assert lease_holder(pg_url, "handed") != first_id  # released (perhaps taken already), not left to lapse
        stopped_at = time.monotonic()
        with httpx.Client(base_url=second.url, headers=second.headers(), timeout=60) as api_b:
            while ready(api_b, "handed") != 1:
                assert time.monotonic() - stopped_at < 15, api_b.get("/v1/endpoints/handed").text  # well under the TTL
                time.sleep(0.2)
            assert api_b.post("/endpoints/handed", json={"inputs": "x"}).status_code == 200
            assert api_b.delete("/v1/endpoints/handed").status_code in (200, 202, 204)
            wait_for_state(api_b, "handed", {"gone"}, timeout=30)
    finally:
        if first.process.poll() is None:
            first.process.kill()
            first.process.wait()
        if second is not None:
            stop_server(second)


def set_lease(pg_url: str, name: str, holder: str, expires_in_s: float) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE leases SET holder = :h, expires_at = now() + make_interval(secs => :s) WHERE name = :n"),
            {"h": holder, "s": expires_in_s, "n": f"endpoint/{name}"},
        )
    engine.dispose()


def test_a_server_that_loses_its_lease_stops_its_replicas(
    pg_url: str, tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    first = serve_on(tmp_path / "home-a", pg_url)
    second: RunningServer | None = None
    try:
        second = serve_on(tmp_path / "home-b", pg_url)
        with (
            httpx.Client(base_url=first.url, headers=first.headers(), timeout=60) as api_a,
            httpx.Client(base_url=second.url, headers=second.headers(), timeout=60) as api_b,
        ):
            spec = {"name": "stolen", "model": {"source": str(tiny_models["text-classification"])}}
            assert api_a.post("/v1/endpoints", json=spec).status_code == 201
            wait_for_state(api_a, "stolen", {"running"})
            set_lease(pg_url, "stolen", "a-server-elsewhere", 3600)  # as if A stalled past its TTL and lost it
            deadline = time.monotonic() + 15
            while ready(api_a, "stolen") != 0:
                assert time.monotonic() < deadline, api_a.get("/v1/endpoints/stolen").text
                time.sleep(0.2)
            assert ready(api_b, "stolen") == 0  # the (pretend) holder elsewhere is alive: nobody here takes it
            assert "a-server-elsewhere" in api_a.post("/endpoints/stolen", json={"inputs": "x"}).text
            set_lease(pg_url, "stolen", "a-server-elsewhere", -1)  # ... and now it died
            deadline = time.monotonic() + 30
            while max(ready(api_a, "stolen"), ready(api_b, "stolen")) != 1:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert lease_holder(pg_url, "stolen") != "a-server-elsewhere"
    finally:
        stop_server(first)
        if second is not None:
            stop_server(second)
