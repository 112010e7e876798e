"""Named leases in the store: how several servers on one database agree who does what.

A lease is one row (name, holder, expires_at). ``take`` succeeds when the lease is free, expired,
or already ours; ``renew`` only while it is still ours; ``release`` only ours. Each is one
statement (an INSERT, or an UPDATE guarded by holder and expiry), so the database decides a race:
the same on SQLite and PostgreSQL. Times are the servers' UTC clocks: keep them in sync (NTP) and
leases much longer than the skew.

Used for async inferences' server liveness and meant for endpoint reconciliation: control takes
``endpoint/<name>`` before reconciling an endpoint and renews it from its loop (see docs/deploy.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa

from hubserve.store.engine import engine_for
from hubserve.store.schema import upgrade

_metadata = sa.MetaData()

leases_table = sa.Table(
    "leases",
    _metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclasses.dataclass(frozen=True)
class Lease:
    """Who holds a lease, until when."""

    name: str
    holder: str
    expires_at: dt.datetime


class LeaseStore:
    """Take, renew, release and read leases; every call is one short transaction."""

    def __init__(self, engine: sa.Engine | str) -> None:
        """``engine``: the server's shared engine, or a store URL for an engine of this store's own."""
        self._engine, self._owns_engine = engine_for(engine)
        upgrade(self._engine)

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()

    def take(self, name: str, holder: str, ttl_s: float) -> bool:
        """Hold ``name`` for ``ttl_s`` from now: True when it was free, expired or ours already."""
        stamp = _now()
        expires = stamp + dt.timedelta(seconds=ttl_s)
        table = leases_table
        try:
            with self._engine.begin() as conn:
                conn.execute(table.insert().values(name=name, holder=holder, expires_at=expires))
            return True
        except sa.exc.IntegrityError:
            pass  # someone holds (or held) it: take it over only if it is ours or lapsed
        statement = (
            table.update()
            .where(table.c.name == name, sa.or_(table.c.holder == holder, table.c.expires_at < stamp))
            .values(holder=holder, expires_at=expires)
        )
        with self._engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def renew(self, name: str, holder: str, ttl_s: float) -> bool:
        """Extend our lease; False when it is no longer ours (it lapsed and another server took it)."""
        table = leases_table
        statement = (
            table.update()
            .where(table.c.name == name, table.c.holder == holder)
            .values(expires_at=_now() + dt.timedelta(seconds=ttl_s))
        )
        with self._engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def release(self, name: str, holder: str) -> bool:
        """Give up our lease at once (a clean stop), so another server need not wait for it to lapse."""
        table = leases_table
        with self._engine.begin() as conn:
            return conn.execute(table.delete().where(table.c.name == name, table.c.holder == holder)).rowcount == 1

    def get(self, name: str) -> Lease | None:
        """The live lease on ``name``; None when it is free or lapsed."""
        table = leases_table
        query = table.select().where(table.c.name == name, table.c.expires_at >= _now())
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _lease(dict(row))

    def held(self, prefix: str = "") -> list[Lease]:
        """Live leases whose name starts with ``prefix`` (e.g. ``server/``: the servers alive now)."""
        table = leases_table
        query = table.select().where(table.c.name.startswith(prefix, autoescape=True), table.c.expires_at >= _now())
        with self._engine.connect() as conn:
            return [_lease(dict(row)) for row in conn.execute(query.order_by(table.c.name)).mappings()]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _lease(row: dict[str, object]) -> Lease:
    moment = row["expires_at"]
    assert isinstance(moment, dt.datetime)
    if moment.tzinfo is None:  # SQLite drops the timezone; everything we store is UTC
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return Lease(name=str(row["name"]), holder=str(row["holder"]), expires_at=moment)
