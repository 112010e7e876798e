"""The async queue's store tests on PostgreSQL, and its leases: a claim held by a live owner is
nobody's orphan; one whose lease lapsed is taken over by exactly one server."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest

from hubserve.store.inferences import QUEUED, RUNNING, SUCCEEDED, InferenceStore
from tests.asyncinf.test_inference_store import (  # noqa: F401 - collected here with this module's fixture
    row,
    test_claim_is_atomic_and_counts_an_attempt,
    test_insert_is_idempotent_per_endpoint,
    test_requeue_finish_and_counts,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InferenceStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('queue') / 'state.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    opened = InferenceStore(url)
    yield opened
    opened.close()


def later(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)


def test_a_live_lease_is_no_orphan_and_a_lapsed_one_is(store: InferenceStore) -> None:
    store.insert(row("busy"))
    assert store.claim("ep", "busy", "server-a", lease_s=30)
    assert store.orphans() == []  # server-a is alive: another server starting must leave it alone
    assert [r.id for r in store.orphans(at=later(31))] == ["busy"]


def test_a_heartbeat_extends_every_claim_of_its_owner(store: InferenceStore) -> None:
    for name in ("one", "two", "other"):
        store.insert(row(name))
    store.claim("ep", "one", "server-a", lease_s=1)
    store.claim("ep", "two", "server-a", lease_s=1)
    store.claim("ep", "other", "server-b", lease_s=1)
    assert store.heartbeat("server-a", 60) == 2
    assert sorted(r.id for r in store.orphans(at=later(5))) == ["other"]


def test_an_orphan_is_taken_over_once_and_its_old_owner_can_no_longer_settle_it(store: InferenceStore) -> None:
    store.insert(row("lost"))
    store.claim("ep", "lost", "dead-server", lease_s=-1)  # lapsed at once
    [orphan] = store.orphans()
    assert store.take_orphan(orphan, "server-b", 30)
    assert not store.take_orphan(orphan, "server-c", 30)  # taken already: no longer lapsed
    assert not store.finish("ep", "lost", SUCCEEDED, owner="dead-server")  # a late finish of the dead owner
    assert store.requeue("ep", "lost", refund_attempt=False, owner="server-b")
    again = store.get("ep", "lost")
    assert again is not None and again.status == QUEUED and again.owner is None and again.lease_expires_at is None


def test_many_servers_claiming_at_once_run_each_inference_once(store: InferenceStore) -> None:
    for index in range(40):
        store.insert(row(f"job-{index}"))
    won: dict[str, list[str]] = {}
    lock = threading.Lock()

    def server(name: str) -> None:
        for index in range(40):
            if store.claim("ep", f"job-{index}", name):
                with lock:
                    won.setdefault(f"job-{index}", []).append(name)

    threads = [threading.Thread(target=server, args=(f"server-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == sorted(f"job-{index}" for index in range(40))
    assert all(len(owners) == 1 for owners in won.values())
    assert store.counts() == {"ep": {QUEUED: 0, RUNNING: 40}}
