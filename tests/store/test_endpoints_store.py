"""EndpointStore on a real SQLite file: CRUD, timestamps, notes, persistence, WAL."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubserve.spec import DedicatedCompute, EndpointSpec, EndpointState
from hubserve.store.endpoints import EndpointStore


def make_spec(name: str, source: str = "org/name") -> EndpointSpec:
    return EndpointSpec.model_validate({"name": name, "model": {"source": source, "task": "text-classification"}})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EndpointStore]:
    opened = EndpointStore.in_home(tmp_path)
    yield opened
    opened.close()


def assert_utc(moment: dt.datetime) -> None:
    assert moment.tzinfo is not None and moment.utcoffset() == dt.timedelta(0)


def test_insert_then_get(store: EndpointStore) -> None:
    before = dt.datetime.now(dt.timezone.utc)
    inserted = store.insert(make_spec("alpha"), ["a note"])
    after = dt.datetime.now(dt.timezone.utc)

    assert inserted.name == "alpha" and inserted.spec == make_spec("alpha")
    assert (inserted.desired, inserted.state, inserted.reason) == ("running", EndpointState.PENDING, None)
    assert inserted.notes == ["a note"]
    assert before <= inserted.created_at == inserted.updated_at <= after

    fetched = store.get("alpha")
    assert fetched == inserted


def test_get_of_an_unknown_name_is_none(store: EndpointStore) -> None:
    assert store.get("ghost") is None


def test_list_is_sorted_by_name(store: EndpointStore) -> None:
    assert store.list() == []
    for name in ["charlie", "alpha", "bravo"]:
        store.insert(make_spec(name), [])
    assert [record.name for record in store.list()] == ["alpha", "bravo", "charlie"]


def test_duplicate_insert_raises_key_error_and_keeps_the_first(store: EndpointStore) -> None:
    store.insert(make_spec("dup", source="org/first"), ["first"])
    with pytest.raises(KeyError) as excinfo:
        store.insert(make_spec("dup", source="org/second"), ["second"])
    assert excinfo.value.args == ("dup",)
    kept = store.get("dup")
    assert kept is not None and kept.spec.model.source == "org/first" and kept.notes == ["first"]
    assert len(store.list()) == 1


def test_update_changes_only_the_given_fields(store: EndpointStore) -> None:
    inserted = store.insert(make_spec("upd"), ["created"])
    time.sleep(0.01)

    state = store.update("upd", state=EndpointState.RUNNING)
    assert state is not None and state.state is EndpointState.RUNNING
    assert (state.desired, state.reason, state.notes, state.spec) == ("running", None, ["created"], inserted.spec)

    failed = store.update("upd", state="failed", reason="loading the model failed")
    assert failed is not None and failed.state is EndpointState.FAILED and failed.reason == "loading the model failed"

    new_spec = make_spec("upd", source="org/other").model_copy(update={"compute": DedicatedCompute(instance="cpu-medium")})
    replaced = store.update("upd", spec=new_spec, desired="paused", reason=None)
    assert replaced is not None
    assert replaced.spec == new_spec and isinstance(replaced.spec.compute, DedicatedCompute)
    assert replaced.desired == "paused" and replaced.reason is None and replaced.state is EndpointState.FAILED
    assert store.get("upd") == replaced


@pytest.mark.parametrize("state", list(EndpointState))
def test_every_state_round_trips(store: EndpointStore, state: EndpointState) -> None:
    store.insert(make_spec("states"), [])
    updated = store.update("states", state=state.value)
    assert updated is not None and updated.state is state


def test_update_refuses_an_unknown_state(store: EndpointStore) -> None:
    store.insert(make_spec("bad-state"), [])
    with pytest.raises(ValueError):
        store.update("bad-state", state="exploded")
    record = store.get("bad-state")
    assert record is not None and record.state is EndpointState.PENDING


def test_update_of_an_unknown_name_is_none(store: EndpointStore) -> None:
    assert store.update("ghost", state="running") is None
    assert store.list() == []


def test_timestamps_are_utc_and_updated_at_moves(store: EndpointStore) -> None:
    inserted = store.insert(make_spec("times"), [])
    stored = store.get("times")
    assert stored is not None
    assert_utc(stored.created_at)
    assert_utc(stored.updated_at)
    assert stored.created_at == inserted.created_at

    time.sleep(0.01)
    updated = store.update("times", reason="touched")
    assert updated is not None
    assert_utc(updated.updated_at)
    assert updated.created_at == inserted.created_at
    assert updated.updated_at > inserted.updated_at
    assert dt.datetime.now(dt.timezone.utc) - updated.updated_at < dt.timedelta(seconds=60)

    time.sleep(0.01)
    again = store.update("times", reason="touched again")
    assert again is not None and again.updated_at > updated.updated_at
    assert [record.updated_at for record in store.list()] == [again.updated_at]


@pytest.mark.parametrize(
    "notes",
    [
        [],
        ["one"],
        ["handler.py ignored: set custom_code: true to run it", "custom code enabled: handler.py"],
        ["ünïcode ✓", 'quotes " and \\ backslashes', "new\nline", ""],
    ],
)
def test_notes_round_trip(tmp_path: Path, notes: list[str]) -> None:
    store = EndpointStore.in_home(tmp_path)
    try:
        assert store.insert(make_spec("noted"), notes).notes == notes
        fetched = store.get("noted")
        assert fetched is not None and fetched.notes == notes
        replaced = store.update("noted", notes=[*notes, "added"])
        assert replaced is not None and replaced.notes == [*notes, "added"]
    finally:
        store.close()


def test_delete(store: EndpointStore) -> None:
    store.insert(make_spec("keep"), [])
    store.insert(make_spec("drop"), [])
    store.delete("drop")
    assert store.get("drop") is None
    assert [record.name for record in store.list()] == ["keep"]
    store.delete("drop")  # deleting twice is harmless
    store.delete("never-existed")
    assert [record.name for record in store.list()] == ["keep"]
    assert store.insert(make_spec("drop"), ["again"]).notes == ["again"]  # the name is free again


def test_a_second_store_on_the_same_file_sees_the_data(tmp_path: Path) -> None:
    first = EndpointStore.in_home(tmp_path)
    inserted = first.insert(make_spec("kept"), ["survives"])
    paused = first.update("kept", desired="paused", state="paused")
    first.insert(make_spec("gone"), [])
    first.delete("gone")
    first.close()

    second = EndpointStore.in_home(tmp_path)
    try:
        assert (tmp_path / "state.db").is_file()
        records = second.list()
        assert records == [paused]
        assert records[0].created_at == inserted.created_at and records[0].notes == ["survives"]
        assert (records[0].desired, records[0].state) == ("paused", EndpointState.PAUSED)
        with pytest.raises(KeyError):
            second.insert(make_spec("kept"), [])
    finally:
        second.close()


def test_two_open_stores_see_each_others_writes(tmp_path: Path) -> None:
    writer, reader = EndpointStore.in_home(tmp_path), EndpointStore.in_home(tmp_path)
    try:
        writer.insert(make_spec("shared"), [])
        assert [record.name for record in reader.list()] == ["shared"]
        reader.update("shared", reason="from the reader")
        shared = writer.get("shared")
        assert shared is not None and shared.reason == "from the reader"
    finally:
        writer.close()
        reader.close()


def test_the_database_is_in_wal_mode(store: EndpointStore, tmp_path: Path) -> None:
    store.insert(make_spec("wal"), [])
    connection = sqlite3.connect(tmp_path / "state.db")
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        connection.close()


def test_an_explicit_url_works_too(tmp_path: Path) -> None:
    store = EndpointStore(f"sqlite:///{tmp_path / 'custom.db'}")
    try:
        store.insert(make_spec("url"), [])
        assert (tmp_path / "custom.db").is_file()
        assert [record.name for record in store.list()] == ["url"]
    finally:
        store.close()
