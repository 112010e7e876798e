"""The store's schema, by Alembic migrations (``store/migrations``, shipped in the package).

Every store calls ``upgrade`` on its engine before its first statement, so starting a server
brings its database to the newest revision (once per engine). A store made by ``create_all``
before migrations has tables but no ``alembic_version``: the first revision creates only what is
missing, so it is adopted as it is. Several servers starting at once on one PostgreSQL store take
turns through an advisory lock.
"""

from __future__ import annotations

import logging
import threading
import weakref
from importlib import resources

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

log = logging.getLogger("hubserve.store")

_LOCK_KEY = 0x6875627365727665  # "hubserve": one advisory lock for migrations on PostgreSQL
_done: weakref.WeakSet[sa.Engine] = weakref.WeakSet()
_guard = threading.Lock()


def config() -> Config:
    """Alembic's configuration, built in code: the scripts are the package's ``migrations`` folder."""
    settings = Config()
    settings.set_main_option("script_location", str(resources.files("hubserve.store") / "migrations"))
    return settings


def head() -> str:
    """The newest revision this hubserve knows."""
    revision = ScriptDirectory.from_config(config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: sa.Engine) -> str | None:
    """The revision the database is at; None before any migration."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: sa.Engine) -> None:
    """Bring the database to the newest revision; a no-op after the first call for an engine."""
    with _guard:
        if engine in _done:
            return
        settings = config()
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            inspector = sa.inspect(conn)
            if not inspector.has_table("alembic_version") and inspector.has_table("endpoints"):
                log.info("store %s was made before migrations: adopting it", engine.url.render_as_string())
            settings.attributes["connection"] = conn
            command.upgrade(settings, "head")
        _done.add(engine)
