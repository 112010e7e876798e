"""A real PostgreSQL server for the whole session (skipped, with the reason, where none can run),
and a fresh database per test so tests do not see each other's rows."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.postgres.pg_server import postgres_server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of the session's server (its ``postgres`` database)."""
    try:
        with postgres_server() as url:
            yield url
    except LookupError as missing:
        pytest.skip(f"PostgreSQL cannot run here: {missing} (scripts/setup.sh installs Debian's postgresql)")


@contextlib.contextmanager
def fresh_database(postgres_url: str) -> Iterator[str]:
    """The URL of a new, empty database on the session's server, dropped afterwards."""
    name = f"t_{secrets.token_hex(6)}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the session's server."""
    with fresh_database(postgres_url) as url:
        yield url
