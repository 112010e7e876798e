"""The async queue table on a real SQLite file: atomic claims, retries, expiry, orphans, counts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hubserve.store.inferences import EXPIRED, FAILED, QUEUED, RUNNING, SUCCEEDED, InferenceStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[InferenceStore]:
    opened = InferenceStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


def row(inference_id: str, endpoint: str = "ep", ttl_s: float = 3600, **extra: Any) -> dict[str, Any]:
    created = dt.datetime.now(dt.timezone.utc)
    return {
        "endpoint": endpoint, "id": inference_id, "input_location": f"/in/{inference_id}", "input_owned": True,
        "content_type": "application/json", "accept": "application/json", "output_location": f"/out/{inference_id}.out",
        "failure_location": f"/out/{inference_id}.error.json", "timeout_s": 900, "max_attempts": 3,
        "created_at": created, "expires_at": created + dt.timedelta(seconds=ttl_s), **extra,
    }  # fmt: skip


def test_insert_is_idempotent_per_endpoint(store: InferenceStore) -> None:
    first = store.insert(row("a"))
    assert first is not None and first.status == QUEUED and first.attempts == 0 and first.input_owned
    assert first.created_at.tzinfo is not None
    assert store.insert(row("a")) is None  # same (endpoint, id)
    assert store.insert(row("a", endpoint="other")) is not None  # ids are per endpoint


def test_claim_is_atomic_and_counts_an_attempt(store: InferenceStore) -> None:
    store.insert(row("a"))
    assert store.claim("ep", "a", "me") is True
    assert store.claim("ep", "a", "someone-else") is False
    claimed = store.get("ep", "a")
    assert claimed is not None and (claimed.status, claimed.attempts, claimed.owner) == (RUNNING, 1, "me")
    assert claimed.started_at is not None


def test_requeue_finish_and_counts(store: InferenceStore) -> None:
    for name in ("a", "b", "c"):
        store.insert(row(name))
    store.claim("ep", "a", "me")
    store.claim("ep", "b", "me")
    assert store.counts() == {"ep": {QUEUED: 1, RUNNING: 2}}
    assert store.requeue("ep", "a", refund_attempt=False, error_type="ReplicaCrashed", error="gone")
    again = store.get("ep", "a")
    assert again is not None and (again.status, again.attempts, again.error) == (QUEUED, 1, "gone")
    assert store.requeue("ep", "b", refund_attempt=True)
    assert store.get("ep", "b").attempts == 0  # type: ignore[union-attr]
    store.claim("ep", "a", "me")
    assert store.finish("ep", "a", SUCCEEDED, output_content_type="application/json")
    assert not store.finish("ep", "a", FAILED)  # already terminal
    done = store.get("ep", "a")
    assert done is not None and done.status == SUCCEEDED and done.error is None and done.finished_at is not None
    assert [r.id for r in store.oldest_queued("ep", 10)] == ["b", "c"]
    assert store.counts() == {"ep": {QUEUED: 2, RUNNING: 0}}


def test_expired_and_orphans(store: InferenceStore) -> None:
    store.insert(row("old", ttl_s=-1))
    store.insert(row("young"))
    store.insert(row("busy"))
    store.claim("ep", "busy", "dead-process")
    assert [r.id for r in store.expired()] == ["old"]
    assert store.finish("ep", "old", EXPIRED, from_status=QUEUED, error_type="RequestExpired", error="late")
    assert store.expired() == []
    assert store.orphans() == []  # its claim's lease is still live: another server may be running it
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
    assert [r.id for r in store.orphans(at=later)] == ["busy"]  # the lease lapsed: its server died
    assert [r.id for r in store.list("ep", status=EXPIRED)] == ["old"]
    assert {r.id for r in store.list("ep")} == {"old", "young", "busy"}
