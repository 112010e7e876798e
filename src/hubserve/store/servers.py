"""Where the servers sharing a store can be reached: one row per server (id, advertised URL, last seen).

A server that does not hold an endpoint forwards its invocations to the holder (api/forwarding.py);
the lease (leases.py) names the holder by id, this table turns the id into a URL. A table of its
own rather than a column on ``leases``: a lease is per endpoint and comes and goes, while a server's
address is per server and outlives its leases (a holder of nothing is still reachable). Liveness
stays the leases' job: ``seen_at`` is refreshed with the lease renewals for people reading the
table, and nothing here decides who is alive.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from hubserve.store.engine import engine_for
from hubserve.store.schema import upgrade

_metadata = sa.MetaData()

servers_table = sa.Table(
    "servers",
    _metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("url", sa.String(500), nullable=False),
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
)


class ServerStore:
    """Record this server's address; read another's. Every call is one short statement."""

    def __init__(self, engine: sa.Engine | str) -> None:
        """``engine``: the server's shared engine, or a store URL for an engine of this store's own."""
        self._engine, self._owns_engine = engine_for(engine)
        upgrade(self._engine)

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()

    def advertise(self, server: str, url: str) -> None:
        """Record (or refresh) that ``server`` is reached at ``url``."""
        table = servers_table
        stamp = dt.datetime.now(dt.timezone.utc)
        with self._engine.begin() as conn:
            if conn.execute(table.update().where(table.c.id == server).values(url=url, seen_at=stamp)).rowcount == 1:
                return
        try:
            with self._engine.begin() as conn:
                conn.execute(table.insert().values(id=server, url=url, seen_at=stamp))
        except sa.exc.IntegrityError:  # another process of the same id raced us: it recorded the same row
            pass

    def url_of(self, server: str) -> str | None:
        """The URL ``server`` advertised last; None for a server that never did (an older hubserve)."""
        table = servers_table
        with self._engine.connect() as conn:
            found = conn.execute(sa.select(table.c.url).where(table.c.id == server)).scalar()
        return None if found is None else str(found)
