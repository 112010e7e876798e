"""Real ``hubserve serve --store postgresql+psycopg://...`` servers: state survives a restart, and
two servers on one store share the async queue so that killing one (kill -9) mid-queue loses nothing
and runs nothing twice to completion."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from tests.integration.conftest import TOKEN, RunningServer, launch, stop_server, wait_for_state, wait_healthy
from tests.integration.test_async_inference import SLEEPY_HANDLER, wait_done


def serve_on(home: Path, store: str, **env: str) -> RunningServer:
    """A healthy server on ``store``; replicas keep the test's user (the models are in pytest's 0700 folders)."""
    server = launch(home, "--token", TOKEN, "--store", store, env={"HUBSERVE_REPLICA_USER": "", **env}, token=TOKEN)
    return wait_healthy(server, timeout=60)


def test_a_server_on_postgresql_keeps_its_endpoints_across_a_restart(
    pg_url: str, tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    home = tmp_path / "home"
    first = serve_on(home, pg_url)
    try:
        with httpx.Client(base_url=first.url, headers=first.headers(), timeout=60) as api:
            spec = {"name": "on-pg", "model": {"source": str(tiny_models["text-classification"])}}
            assert api.post("/v1/endpoints", json=spec).status_code == 201
            wait_for_state(api, "on-pg", {"running"})
            expected = api.post("/endpoints/on-pg", json={"inputs": "same input"}).json()
    finally:
        assert stop_server(first) in (0, 130)
    assert not (home / "state.db").exists()  # the state is in PostgreSQL, not the home folder
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM endpoints")).scalars().all() == ["on-pg"]
    engine.dispose()
    second = serve_on(home, pg_url)
    try:
        with httpx.Client(base_url=second.url, headers=second.headers(), timeout=60) as api:
            assert wait_for_state(api, "on-pg", {"running"})["replicas"]["ready"] == 1
            assert api.post("/endpoints/on-pg", json={"inputs": "same input"}).json() == expected
    finally:
        stop_server(second)


def running_owners(pg_url: str) -> dict[str, str]:
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, owner FROM async_inferences WHERE status = 'running'")).all()
    engine.dispose()
    return {row[0]: row[1] for row in rows}


def test_two_servers_one_killed_mid_queue_complete_every_inference_once(
    pg_url: str, tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    shared = tmp_path / "shared"  # the object store both servers see (a local folder here)
    shared.mkdir()
    model = tmp_path / "sleepy"
    shutil.copytree(tiny_models["text-classification"], model)
    (model / "handler.py").write_text(SLEEPY_HANDLER)
    env = {"HUBSERVE_STORAGE_ROOTS": json.dumps([str(shared)])}
    spec: dict[str, Any] = {
        "name": "shared-queue", "model": {"source": str(model)}, "custom_code": True,
        "compute": {"type": "dedicated", "min_replicas": 1, "max_replicas": 1},
        "async_inference": {"output_location": str(shared / "out"), "max_concurrent_invocations_per_replica": 2},
    }  # fmt: skip
    first = serve_on(tmp_path / "home-a", pg_url, **env)
    second: RunningServer | None = None
    try:
        with httpx.Client(base_url=first.url, headers=first.headers(), timeout=60) as api:
            assert api.post("/v1/endpoints", json=spec).status_code == 201, api.get("/v1/endpoints").text
            wait_for_state(api, "shared-queue", {"running"})
            accepted = []
            (shared / "in").mkdir()
            for index in range(12):  # by reference, in the shared store: an inline payload stays in one server's home
                (shared / "in" / f"{index}.json").write_text(json.dumps({"inputs": index, "sleep": 1.5}))
                headers = {"X-Amzn-SageMaker-InputLocation": str(shared / "in" / f"{index}.json")}
                answer = api.post("/endpoints/shared-queue/async-invocations", headers=headers)
                assert answer.status_code == 202, answer.text
                accepted.append(answer.json()["inferenceId"])
            deadline = time.monotonic() + 30
            while not running_owners(pg_url) and time.monotonic() < deadline:
                time.sleep(0.1)
            held_by_first = running_owners(pg_url)
            assert held_by_first, "the first server never started the queue"
        # A second server starting now must leave the first's running work alone: its lease is live.
        second = serve_on(tmp_path / "home-b", pg_url, **env)
        owners_now = running_owners(pg_url)
        first_owner = next(iter(held_by_first.values()))
        assert all(owners_now.get(name) == first_owner for name in held_by_first if name in owners_now)
        os.kill(first.process.pid, signal.SIGKILL)  # mid-queue, holding running work
        first.process.wait()
        with httpx.Client(base_url=second.url, headers=second.headers(), timeout=60) as api:
            wait_for_state(api, "shared-queue", {"running"})
            finals = {name: wait_done(api, "shared-queue", name, timeout=180) for name in accepted}
    finally:
        if first.process.poll() is None:
            first.process.kill()
            first.process.wait()
        if second is not None:
            stop_server(second)
    failed = {name: final["error"] for name, final in finals.items() if final["status"] != "succeeded"}
    assert failed == {}, (failed, second.log()[-4000:] if second is not None else "")
    outputs = sorted((shared / "out").glob("*.out"))
    assert sorted(path.name for path in outputs) == sorted(f"{name}.out" for name in accepted)  # one each
    for index, name in enumerate(accepted):
        assert json.loads((shared / "out" / f"{name}.out").read_text()) == {"echo": index, "slept": 1.5}
    retried = {name for name, final in finals.items() if final["attempts"] > 1}
    assert retried, "the killed server held running work: it must have been taken over and run again"
