"""Alembic migrations: a new store reaches the head revision on SQLite and PostgreSQL, a SQLite
store made by ``create_all`` before migrations is adopted with its data, and servers starting at
once on one PostgreSQL database migrate it once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from hubserve.store import schema
from hubserve.store.endpoints import EndpointStore
from hubserve.store.engine import open_engine
from hubserve.store.inferences import InferenceStore
from tests.store.test_endpoints_store import make_spec

TABLES = {
    "alembic_version", "async_inferences", "audit_log", "batch_job_files", "batch_jobs", "endpoints", "leases", "servers",
    "model_groups", "model_versions",
    "sagemaker_endpoint_bindings", "sagemaker_endpoint_configs", "sagemaker_models", "sagemaker_tags", "tokens",
}  # fmt: skip


def url_for(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}" if kind == "sqlite" else str(request.getfixturevalue("pg_url"))


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_new_store_is_at_head_with_every_table(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    engine = open_engine(url_for(kind, tmp_path, request))
    EndpointStore(engine).close()
    assert schema.current(engine) == schema.head()
    assert set(sa.inspect(engine).get_table_names()) == TABLES
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_downgrade_to_nothing_and_back(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    engine = open_engine(url_for(kind, tmp_path, request))
    schema.upgrade(engine)
    settings = schema.config()
    with engine.begin() as conn:
        settings.attributes["connection"] = conn
        command.downgrade(settings, "base")
    assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    with engine.begin() as conn:
        settings.attributes["connection"] = conn
        command.upgrade(settings, "head")
    assert set(sa.inspect(engine).get_table_names()) == TABLES
    engine.dispose()


def test_a_sqlite_store_made_before_migrations_is_adopted_with_its_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    legacy = sa.create_engine(url)
    settings = schema.config()
    with legacy.begin() as conn:  # exactly what create_all made: revision 0001's tables, no version table
        settings.attributes["connection"] = conn
        command.upgrade(settings, "0001")
        conn.execute(sa.text("DROP TABLE alembic_version"))
    legacy.dispose()
    with sa.create_engine(url).begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO endpoints (name, spec, desired, state, reason, notes, created_at, updated_at) "
                "VALUES ('kept', :spec, 'running', 'running', NULL, '[]', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            ),
            {"spec": make_spec("kept").model_dump_json()},
        )
    store = EndpointStore(url)
    queue = InferenceStore(url)
    try:
        record = store.get("kept")
        assert record is not None and record.spec == make_spec("kept")
        engine = sa.create_engine(url)
        assert schema.current(engine) == schema.head()
        columns = {column["name"] for column in sa.inspect(engine).get_columns("async_inferences")}
        assert "lease_expires_at" in columns
        engine.dispose()
    finally:
        store.close()
        queue.close()


def test_servers_starting_at_once_migrate_postgresql_once(pg_url: str) -> None:
    code = "import sys; from hubserve.store import schema, engine; schema.upgrade(engine.open_engine(sys.argv[1]))"
    starts = [subprocess.Popen([sys.executable, "-c", code, pg_url], stderr=subprocess.PIPE) for _ in range(4)]
    failures = [process.communicate(timeout=120)[1].decode() for process in starts if process.wait(120) != 0]
    assert failures == []
    engine = open_engine(pg_url)
    assert schema.current(engine) == schema.head()
    engine.dispose()


def test_a_plain_postgresql_url_means_psycopg_3(pg_url: str) -> None:
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    engine = open_engine(plain)
    assert engine.dialect.driver == "psycopg"
    EndpointStore(engine).close()
    assert schema.current(engine) == schema.head()
    engine.dispose()
