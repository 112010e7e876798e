"""One SQLAlchemy engine for the whole server: every table of the store shares it.

The composition root opens it once from the store URL (SQLite in WAL mode by default, any
SQLAlchemy URL such as PostgreSQL) and hands it to each store; a store given a URL instead (tests,
tools) opens and owns an engine of its own.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def open_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite connections get WAL, NORMAL sync and a busy timeout."""
    engine = sa.create_engine(url)
    if url.startswith("sqlite"):
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


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
