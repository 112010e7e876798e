"""One SQLAlchemy engine for the whole server: every table of the store shares it.

The composition root opens it once from the store URL (SQLite in WAL mode by default, any
SQLAlchemy URL such as PostgreSQL) and hands it to each store; a store given a URL instead (tests,
tools) opens and owns an engine of its own.
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa


def open_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite connections get WAL, NORMAL sync and a busy timeout.

    A plain ``postgresql://`` URL means psycopg 3 (the driver hubserve installs), and PostgreSQL
    connections are checked before use: a database restart must not fail the next request.
    """
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("postgresql"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url)
    if url.startswith("sqlite"):
        _private_database_file(engine.url.database)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _private_database_file(path: str | None) -> None:
    """Create (or narrow) the SQLite file as 0600 first: it holds endpoint secrets and token hashes,
    and SQLite gives its -wal and -shm files the database file's mode."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        os.chmod(path, 0o600)
    except (FileNotFoundError, PermissionError):
        return  # no such folder, or another user's file: SQLite says so on connect if it matters


def engine_for(target: sa.Engine | str) -> tuple[sa.Engine, bool]:
    """(the engine to use, whether the caller owns it and must dispose of it)."""
    if isinstance(target, sa.Engine):
        return target, False
    return open_engine(target), True


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
