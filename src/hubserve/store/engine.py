"""One SQLAlchemy engine for the whole server: every table of the store shares it.

The composition root opens it once from the store URL (SQLite in WAL mode by default, any
SQLAlchemy URL such as PostgreSQL) and hands it to each store; a store given a URL instead (tests,
tools) opens and owns an engine of its own.

A store that is there but cannot answer now (SQLite locked past the busy timeout, its file
unopenable, a disk I/O error; PostgreSQL unreachable or the connection lost) raises
``errors.StoreUnavailable`` instead of the driver's error, here in one place (the engine's
``handle_error`` event): every route answers 503 with Retry-After in its dialect, rather than 500.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import sqlalchemy as sa

from hubserve.errors import StoreUnavailable

log = logging.getLogger("hubserve.store")

# How long a SQLite statement waits for another writer's lock before StoreUnavailable: in a worker thread
# BUSY_TIMEOUT_MS; on the event loop's thread, where every request in flight waits with it (the server's
# background loops and some routes call the store there), LOOP_BUSY_TIMEOUT_MS. A write takes milliseconds,
# so only a lock held from outside (another process, a stuck transaction) lasts that long.
BUSY_TIMEOUT_MS = 5000
LOOP_BUSY_TIMEOUT_MS = 250
# SQLite's messages for a database that is there but unusable now (not for a bad statement: that is a bug).
_SQLITE_UNAVAILABLE = (
    "database is locked", "database table is locked", "unable to open database file", "disk i/o error",
    "locking protocol", "database or disk is full", "attempt to write a readonly database",
)  # fmt: skip


def open_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite connections get WAL, NORMAL sync and a busy timeout.

    A plain ``postgresql://`` URL means psycopg 3 (the driver hubserve installs), and PostgreSQL
    connections are checked before use: a database restart must not fail the next request.
    """
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine = sa.create_engine(url, pool_pre_ping=True) if url.startswith("postgresql") else sa.create_engine(url)
    if url.startswith("sqlite"):
        _private_database_file(engine.url.database)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "checkout", _sqlite_busy_timeout)
    sa.event.listen(engine, "handle_error", _store_unavailable)
    return engine


def _store_unavailable(context: sa.engine.ExceptionContext) -> BaseException | None:
    """``StoreUnavailable`` in place of a driver error that means the store cannot answer now; else None (as is)."""
    error = context.original_exception
    if context.is_pre_ping:
        return None  # the pool's pre-ping: a lost connection there is replaced, never an error for anyone
    if not context.is_disconnect and not isinstance(context.sqlalchemy_exception, sa.exc.OperationalError):
        return None
    if context.dialect.name != "sqlite":  # the driver's words may name the database's host: kept for the log
        log.warning("the state store is unavailable: %s", error)
        return StoreUnavailable(f"the database cannot be reached or refused the statement ({type(error).__name__})")
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if not context.is_disconnect and not reason.lower().startswith(_SQLITE_UNAVAILABLE):
        return None  # "no such table" and the like: a bug, not an outage
    return StoreUnavailable(reason)


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


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()
    record.info["busy_timeout"] = BUSY_TIMEOUT_MS


def _sqlite_busy_timeout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """At each checkout: the busy timeout for the thread that uses the connection (see LOOP_BUSY_TIMEOUT_MS)."""
    wanted = LOOP_BUSY_TIMEOUT_MS if _on_event_loop() else BUSY_TIMEOUT_MS
    if record.info.get("busy_timeout") != wanted:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={wanted}")
        cursor.close()
        record.info["busy_timeout"] = wanted


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
