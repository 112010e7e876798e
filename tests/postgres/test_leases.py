"""Named leases on SQLite and PostgreSQL: one holder at a time, taken over only once lapsed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from hubserve.store.leases import LeaseStore


@pytest.fixture(params=["sqlite", "postgresql"])
def leases(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeaseStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('leases') / 'state.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    opened = LeaseStore(url)
    yield opened
    opened.close()


def test_one_holder_at_a_time(leases: LeaseStore) -> None:
    assert leases.take("endpoint/a", "server-1", 30)
    assert not leases.take("endpoint/a", "server-2", 30)
    assert leases.take("endpoint/a", "server-1", 30)  # taking again is renewing
    held = leases.get("endpoint/a")
    assert held is not None and held.holder == "server-1"
    assert not leases.renew("endpoint/a", "server-2", 30)
    assert not leases.release("endpoint/a", "server-2")
    assert leases.release("endpoint/a", "server-1")
    assert leases.get("endpoint/a") is None
    assert leases.take("endpoint/a", "server-2", 30)


def test_a_lapsed_lease_is_taken_over_and_its_old_holder_cannot_renew(leases: LeaseStore) -> None:
    assert leases.take("endpoint/b", "server-1", 0.2)
    time.sleep(0.3)
    assert leases.get("endpoint/b") is None
    assert leases.take("endpoint/b", "server-2", 30)
    assert not leases.renew("endpoint/b", "server-1", 30)
    assert [lease.holder for lease in leases.held("endpoint/")] == ["server-2"]


def test_racing_takers_get_one_winner(leases: LeaseStore) -> None:
    winners: list[str] = []
    barrier = threading.Barrier(6)

    def contender(name: str) -> None:
        barrier.wait()
        if leases.take("endpoint/race", name, 30):
            winners.append(name)

    threads = [threading.Thread(target=contender, args=(f"server-{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def test_held_filters_by_prefix_literally(leases: LeaseStore) -> None:
    leases.take("server/x", "x", 30)
    leases.take("server_y", "y", 30)  # '_' is a LIKE wildcard: must not match "server/"
    assert [lease.name for lease in leases.held("server/")] == ["server/x"]
