"""The state store locked for a while (another process holds SQLite's write lock on state.db): a management call
that must write (create an endpoint, queue an async inference) answers 503 StoreUnavailable within the busy
timeout, in its route's dialect, with Retry-After and a message saying to retry; calls that only read (describe,
list, list async inferences) keep answering, since in WAL mode readers never wait for a writer; sync
invocations of a running endpoint keep answering throughout, with a stored token as with the bootstrap one;
once the lock is released everything works again and a create made then deploys. The numbers are printed."""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from hubserve.errors import StoreUnavailable
from hubserve.store.engine import open_engine
from tests.integration.conftest import RunningServer, wait_for_state

NAME = "store-outage"
LATER = "store-outage-later"
LOCKED_S = 8.0  # longer than the 5 s busy timeout, so a write gives up while the lock is still held


def _spec(name: str, tiny_models: dict[str, Path]) -> dict[str, object]:
    return {"name": name, "model": {"source": str(tiny_models["text-classification"])},
            "compute": {"type": "serverless", "provisioned_concurrency": 1}}  # fmt: skip


class _Invoking(threading.Thread):
    """Sync invocations one after another until stopped: each one's status and latency."""

    def __init__(self, server: RunningServer, token: str) -> None:
        super().__init__(daemon=True)
        self._client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        self.results: list[tuple[int, float]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with self._client:
            while not self.stopping.is_set():
                started = time.perf_counter()
                status = self._client.post(f"/endpoints/{NAME}", json={"inputs": "still here"}).status_code
                self.results.append((status, (time.perf_counter() - started) * 1000))
                time.sleep(0.02)


def test_a_locked_store_answers_503_to_writes_and_invocations_keep_working(
    server: RunningServer, api: httpx.Client, tiny_models: dict[str, Path]
) -> None:
    assert api.post("/v1/endpoints", json=_spec(NAME, tiny_models)).status_code == 201
    wait_for_state(api, NAME, {"running"}, timeout=60)
    made = api.post("/v1/tokens", json={"name": "invoker", "scopes": ["invoke"]})
    assert made.status_code == 201, made.text
    invokers = [_Invoking(server, server.token), _Invoking(server, made.json()["token"])]  # bootstrap, stored

    lock = sqlite3.connect(server.home / "state.db", isolation_level=None, timeout=10)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # held by another process: the server's writers wait, then give up
        locked = time.monotonic()
        for invoker in invokers:
            invoker.start()
        answers: dict[str, tuple[httpx.Response, float]] = {}

        def timed(key: str, method: str, path: str, **kwargs: object) -> None:
            started = time.perf_counter()
            response = api.request(method, path, **kwargs)  # type: ignore[arg-type]
            answers[key] = (response, time.perf_counter() - started)

        calls = [
            threading.Thread(target=timed, args=("create", "POST", "/v1/endpoints"), kwargs={"json": _spec(LATER, tiny_models)}),
            threading.Thread(target=timed, args=("async", "POST", f"/endpoints/{NAME}/async-invocations"),
                             kwargs={"json": {"inputs": "later"}}),
        ]  # fmt: skip
        for call in calls:
            call.start()
        time.sleep(0.5)
        for key, path in (("describe", f"/v1/endpoints/{NAME}"), ("list", "/v1/endpoints"),
                          ("list async", f"/endpoints/{NAME}/async-invocations")):  # fmt: skip
            timed(key, "GET", path)
        for call in calls:
            call.join(30)
        assert time.monotonic() - locked < LOCKED_S, "every call was made while the lock was held"
        time.sleep(max(0.0, LOCKED_S - (time.monotonic() - locked)))
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    released = time.monotonic()
    time.sleep(1.0)  # invocations go on after the release too
    for invoker in invokers:
        invoker.stopping.set()
        invoker.join(30)

    create, create_s = answers["create"]
    assert create.status_code == 503, create.text
    assert create_s < 5.0, f"a management call waited {create_s:.1f} s for the store"
    error = create.json()["error"]
    assert error["type"] == "StoreUnavailable" and "state store is unavailable" in error["message"], error
    assert "database is locked" in error["message"] and "retry" in error["message"]
    assert create.headers["retry-after"] == "2" and create.headers["x-amzn-errortype"] == "StoreUnavailable"
    queued, queued_s = answers["async"]  # InvokeEndpointAsync answers in SageMaker's shape
    assert queued.status_code == 503, queued.text
    assert queued.json()["ErrorCode"] == "ServiceUnavailable" and "retry" in queued.json()["Message"]
    assert queued.headers["retry-after"] == "2"
    assert queued_s < 5.0, f"InvokeEndpointAsync waited {queued_s:.1f} s for the store"
    for key in ("describe", "list", "list async"):
        assert answers[key][0].status_code == 200, (key, answers[key][0].text)
    assert answers["describe"][0].json()["state"] == "running"
    print(
        f"\nstore locked {LOCKED_S:.0f} s: create answered 503 after {create_s:.2f} s, async POST 503 after "
        f"{queued_s:.2f} s; describe, list and list async answered 200 in "
        + ", ".join(f"{answers[key][1] * 1000:.0f} ms" for key in ("describe", "list", "list async"))
    )
    for kind, invoker in zip(("bootstrap token", "stored token"), invokers, strict=True):
        statuses = [status for status, _ in invoker.results]
        latencies = [ms for _, ms in invoker.results]
        print(
            f"sync invocations ({kind}) during and after the outage: {len(statuses)}, "
            f"{statuses.count(200)} answered 200; p50 {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms"
        )
        assert statuses and set(statuses) == {200}, statuses

    # Released: everything works again, and a create made now deploys.
    assert api.get(f"/v1/endpoints/{NAME}").status_code == 200
    created = api.post("/v1/endpoints", json=_spec(LATER, tiny_models))
    assert created.status_code == 201, created.text
    assert api.post(f"/endpoints/{NAME}/async-invocations", json={"inputs": "now"}).status_code == 202
    wait_for_state(api, LATER, {"running"}, timeout=60)
    assert api.post(f"/endpoints/{LATER}", json={"inputs": "new"}).status_code == 200
    assert api.get(f"/v1/endpoints/{NAME}").json()["state"] == "running"
    print(
        f"after the release: create, async POST and the new endpoint's first answer within {time.monotonic() - released:.1f} s"
    )


def test_only_a_store_that_cannot_answer_becomes_store_unavailable(tmp_path: Path) -> None:
    """The engine's mapping: a lock past the busy timeout is StoreUnavailable (waited for briefly on the event
    loop's thread, longer in a worker thread); a bad statement stays the driver's error (a bug, not an outage)."""
    engine = open_engine(f"sqlite:///{tmp_path / 'state.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    lock = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")

    def write() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))

    async def write_on_the_loop() -> None:
        write()

    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="database is locked") as raised:
            asyncio.run(write_on_the_loop())
        assert time.monotonic() - started < 2.0  # LOOP_BUSY_TIMEOUT_MS, not BUSY_TIMEOUT_MS
        assert raised.value.status == 503 and raised.value.headers["Retry-After"] == "2"
        with engine.connect() as conn:  # WAL: readers do not wait for the writer
            assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar() == 0
        with pytest.raises(sa.exc.OperationalError, match="no such table"), engine.connect() as conn:
            conn.execute(sa.text("SELECT * FROM missing"))
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    write()  # released: writes work again
    engine.dispose()
