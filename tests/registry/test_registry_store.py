"""The registry's records on SQLite and a real PostgreSQL (migration 0004), and content hashing of artifacts."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest
import sqlalchemy as sa

from hubserve.store import artifacts, schema
from hubserve.store.registry import APPROVED, REJECTED, RegistryError, RegistryStore, find, parse_ref


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("pg_url"))


def _add(store: RegistryStore, group: str, source: str = "org/model") -> int:
    return store.add_version(group, source_kind="hub", source=source, revision=None, task="fill-mask",
                             metrics={"acc": 0.5}, description="", sha256=None).number  # fmt: skip


def test_versions_are_numbered_per_group_even_when_registered_at_once(url: str) -> None:
    store = RegistryStore(url)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    assert schema.current(engine) == schema.head() == "0004"
    engine.dispose()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        numbers = list(pool.map(lambda _: _add(store, "busy"), range(12)))
    assert sorted(numbers) == list(range(1, 13))
    assert _add(store, "other") == 1
    assert [(g.name, g.versions) for g in store.groups()] == [("busy", 12), ("other", 1)]
    store.close()


def test_latest_approved_and_references(url: str) -> None:
    store = RegistryStore(url)
    for _ in range(3):
        _add(store, "g")
    assert store.latest_approved("g") is None
    store.set_approval("g", 1, APPROVED)
    store.set_approval("g", 2, APPROVED)
    store.set_approval("g", 3, REJECTED)
    assert find(store, "registry://g/latest-approved").number == 2
    assert find(store, "registry://g/latest-approved", pinned="1").number == 1  # what an endpoint was pinned to
    with pytest.raises(RegistryError, match="Rejected"):
        find(store, "registry://g/3")
    with pytest.raises(RegistryError, match="no version 4"):
        find(store, "registry://g/4")
    with pytest.raises(ValueError, match="approval status"):
        store.set_approval("g", 1, "Fine")
    store.delete_version("g", 2)
    assert store.latest_approved("g").number == 1  # type: ignore[union-attr]
    store.close()


@pytest.mark.parametrize("source", ["registry://g", "registry://g/0", "registry://g/x", "registry://-g/1", "s3://g/1"])
def test_bad_references(source: str) -> None:
    with pytest.raises(RegistryError):
        parse_ref(source)


def test_the_hash_covers_names_and_bytes_and_a_change_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "weights").write_bytes(b"\0" * 10)
    sha = artifacts.store(folder, tmp_path / "registry")
    assert artifacts.store(folder, tmp_path / "registry") == sha  # stored once
    assert artifacts.verified(tmp_path / "registry", sha, "registry://m/1") == tmp_path / "registry" / sha
    assert artifacts.verified(tmp_path / "registry", sha, "registry://m/1") == tmp_path / "registry" / sha  # cached
    (folder / "sub" / "weights").rename(folder / "sub" / "weights2")
    assert artifacts.content_hash(folder) != sha  # a rename is a change
    (tmp_path / "registry" / sha / "config.json").write_text('{"a": 1}')
    with pytest.raises(artifacts.ArtifactMismatch, match=r"registry://m/1: the registry's files .* were changed"):
        artifacts.verified(tmp_path / "registry", sha, "registry://m/1")
    (tmp_path / "registry" / sha / "config.json").unlink()
    with pytest.raises(artifacts.ArtifactMismatch):
        artifacts.verified(tmp_path / "registry", sha, "registry://m/1")


def test_the_migration_goes_down_and_up(url: str) -> None:
    from alembic import command

    RegistryStore(url).close()
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    settings = schema.config()
    with engine.begin() as conn:
        settings.attributes["connection"] = conn
        command.downgrade(settings, "0003")
    assert not {"model_groups", "model_versions"} & set(sa.inspect(engine).get_table_names())
    with engine.begin() as conn:
        settings.attributes["connection"] = conn
        command.upgrade(settings, "head")
    assert {"model_groups", "model_versions"} <= set(sa.inspect(engine).get_table_names())
    engine.dispose()
