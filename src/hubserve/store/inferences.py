"""The async inference queue: one row per accepted inference, durable before the 202 answer.

Portable SQL only (SQLAlchemy Core; SQLite by default, PostgreSQL by ``database_url``). Work is
claimed with ``UPDATE ... WHERE status = 'queued'``: whoever changes the row owns the attempt,
so two dispatchers never run one inference twice at once. A claim is a lease (``owner``,
``lease_expires_at``) that the owner's heartbeat extends; a running row whose lease has expired
belongs to a server that died and may be queued again by any server (``orphans``,
``take_orphan``). Statuses:

    queued -> running -> succeeded | failed      (running -> queued again on a retryable error)
    queued -> expired                            (still queued after its TTL)
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
from typing import Any

import sqlalchemy as sa

from hubserve.store.engine import engine_for
from hubserve.store.schema import upgrade

QUEUED, RUNNING, SUCCEEDED, FAILED, EXPIRED = "queued", "running", "succeeded", "failed", "expired"
TERMINAL = (SUCCEEDED, FAILED, EXPIRED)

_metadata = sa.MetaData()

inferences_table = sa.Table(
    "async_inferences",
    _metadata,
    sa.Column("endpoint", sa.String(63), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    # Where the payload is: a file we stored (input_owned) or the user's own location.
    sa.Column("input_location", sa.Text, nullable=False),
    sa.Column("input_owned", sa.Boolean, nullable=False),
    sa.Column("content_type", sa.Text, nullable=False),
    sa.Column("accept", sa.Text, nullable=False),
    sa.Column("output_location", sa.Text, nullable=False),
    sa.Column("failure_location", sa.Text, nullable=False),
    sa.Column("timeout_s", sa.Integer, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("error_type", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("output_content_type", sa.Text, nullable=True),
    sa.Column("owner", sa.String(64), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # A running attempt is its owner's while this is in the future; the owner's heartbeat extends it.
    sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_async_inferences_status", "status", "endpoint", "created_at"),
)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclasses.dataclass(frozen=True)
class InferenceRecord:
    """One async inference as stored."""

    endpoint: str
    id: str
    status: str
    input_location: str
    input_owned: bool
    content_type: str
    accept: str
    output_location: str
    failure_location: str
    timeout_s: int
    attempts: int
    max_attempts: int
    error_type: str | None
    error: str | None
    output_content_type: str | None
    owner: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    updated_at: dt.datetime
    lease_expires_at: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The API's view (camelCase like SageMaker's headers and bodies)."""
        return {
            "inferenceId": self.id,
            "endpoint": self.endpoint,
            "status": self.status,
            "attempts": self.attempts,
            "maxAttempts": self.max_attempts,
            "outputLocation": self.output_location,
            "failureLocation": self.failure_location,
            "outputContentType": self.output_content_type,
            "inputLocation": None if self.input_owned else self.input_location,
            "error": {"type": self.error_type, "message": self.error} if self.error else None,
            "invocationTimeoutSeconds": self.timeout_s,
            "createdAt": self.created_at.isoformat(),
            "expiresAt": self.expires_at.isoformat(),
            "startedAt": self.started_at.isoformat() if self.started_at else None,
            "finishedAt": self.finished_at.isoformat() if self.finished_at else None,
        }


class InferenceStore:
    """The queue. Synchronous like EndpointStore: each statement is one short transaction."""

    def __init__(self, engine: sa.Engine | str) -> None:
        """``engine``: the server's shared engine, or a store URL for an engine of this store's own."""
        self._engine, self._owns_engine = engine_for(engine)
        upgrade(self._engine)  # the schema is the migrations', not this module's metadata

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()

    def insert(self, row: dict[str, Any]) -> InferenceRecord | None:
        """Queue a new inference; None when (endpoint, id) exists already (the caller returns that one)."""
        stamp = now()
        values = {"status": QUEUED, "attempts": 0, "created_at": stamp, "updated_at": stamp, **row}
        try:
            with self._engine.begin() as conn:
                conn.execute(inferences_table.insert().values(**values))
        except sa.exc.IntegrityError:
            return None
        return self.get(row["endpoint"], row["id"])

    def get(self, endpoint: str, inference_id: str) -> InferenceRecord | None:
        table = inferences_table
        query = table.select().where(table.c.endpoint == endpoint, table.c.id == inference_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _record(dict(row))

    def list(self, endpoint: str, status: str | None = None, limit: int = 100) -> list[InferenceRecord]:
        """Newest first."""
        table = inferences_table
        query = table.select().where(table.c.endpoint == endpoint)
        if status is not None:
            query = query.where(table.c.status == status)
        query = query.order_by(table.c.created_at.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [_record(dict(row)) for row in conn.execute(query).mappings()]

    def counts(self) -> dict[str, dict[str, int]]:
        """{endpoint: {"queued": n, "running": m}}: the backlog metric, one GROUP BY."""
        table = inferences_table
        query = (
            sa.select(table.c.endpoint, table.c.status, sa.func.count())
            .where(table.c.status.in_((QUEUED, RUNNING)))
            .group_by(table.c.endpoint, table.c.status)
        )
        found: dict[str, dict[str, int]] = {}
        with self._engine.connect() as conn:
            for endpoint, status, count in conn.execute(query):
                found.setdefault(endpoint, {QUEUED: 0, RUNNING: 0})[status] = int(count)
        return found

    def backlog(self, endpoint: str) -> tuple[int, int]:
        """(queued, running) inferences of one endpoint now: one COUNT grouped by status, on the status index."""
        table = inferences_table
        query = (
            sa.select(table.c.status, sa.func.count())
            .where(table.c.status.in_((QUEUED, RUNNING)), table.c.endpoint == endpoint)
            .group_by(table.c.status)
        )
        with self._engine.connect() as conn:
            found = {status: int(count) for status, count in conn.execute(query)}
        return found.get(QUEUED, 0), found.get(RUNNING, 0)

    def oldest_queued(self, endpoint: str, limit: int) -> builtins.list[InferenceRecord]:
        table = inferences_table
        query = (
            table.select()
            .where(table.c.endpoint == endpoint, table.c.status == QUEUED)
            .order_by(table.c.created_at)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [_record(dict(row)) for row in conn.execute(query).mappings()]

    def claim(self, endpoint: str, inference_id: str, owner: str, lease_s: float = 30.0) -> bool:
        """Take a queued inference for one attempt, leased to ``owner`` for ``lease_s``; False when
        someone else took it first."""
        stamp = now()
        return self._transition(
            endpoint, inference_id, QUEUED,
            status=RUNNING, owner=owner, attempts=inferences_table.c.attempts + 1, started_at=stamp,
            lease_expires_at=stamp + dt.timedelta(seconds=lease_s),
        )  # fmt: skip

    def heartbeat(self, owner: str, lease_s: float) -> int:
        """Extend the lease of every inference ``owner`` runs, in one statement; how many it holds."""
        table = inferences_table
        statement = (
            table.update()
            .where(table.c.owner == owner, table.c.status == RUNNING)
            .values(lease_expires_at=now() + dt.timedelta(seconds=lease_s))
        )
        with self._engine.begin() as conn:
            return int(conn.execute(statement).rowcount)

    def requeue(self, endpoint: str, inference_id: str, *, refund_attempt: bool, error_type: str | None = None,
                error: str | None = None, owner: str | None = None) -> bool:  # fmt: skip
        """Put a running inference back in the queue (a retryable failure, or a shutdown: refunded);
        with ``owner``, only while that owner still holds it."""
        attempts = inferences_table.c.attempts - 1 if refund_attempt else inferences_table.c.attempts
        return self._transition(
            endpoint, inference_id, RUNNING, holder=owner,
            status=QUEUED, owner=None, attempts=attempts, error_type=error_type, error=error, lease_expires_at=None,
        )  # fmt: skip

    def take_orphan(self, row: InferenceRecord, owner: str, lease_s: float = 30.0) -> bool:
        """Take over a running inference whose lease lapsed (its server died), to queue it again or
        fail it; False when its owner renewed it or another server took it first (owner, status and
        lease are checked in the one UPDATE)."""
        table = inferences_table
        stamp = now()
        statement = (
            table.update()
            .where(table.c.endpoint == row.endpoint, table.c.id == row.id, table.c.status == RUNNING, _lapsed(stamp))
            .where(table.c.owner.is_(None) if row.owner is None else table.c.owner == row.owner)
            .values(owner=owner, lease_expires_at=stamp + dt.timedelta(seconds=lease_s), updated_at=stamp)
        )
        with self._engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def finish(self, endpoint: str, inference_id: str, status: str, *, from_status: str = RUNNING,
               error_type: str | None = None, error: str | None = None,
               output_content_type: str | None = None, owner: str | None = None) -> bool:  # fmt: skip
        """Move to a terminal status; False when the row was no longer in ``from_status`` (or, with
        ``owner``, no longer held by that owner: its lease lapsed and another server took it)."""
        return self._transition(
            endpoint, inference_id, from_status, holder=owner,
            status=status, error_type=error_type, error=error, output_content_type=output_content_type,
            finished_at=now(), owner=None, lease_expires_at=None,
        )  # fmt: skip

    def expired(self, at: dt.datetime | None = None) -> builtins.list[InferenceRecord]:
        """Queued inferences past their TTL."""
        table = inferences_table
        query = table.select().where(table.c.status == QUEUED, table.c.expires_at < (at or now()))
        with self._engine.connect() as conn:
            return [_record(dict(row)) for row in conn.execute(query).mappings()]

    def orphans(self, at: dt.datetime | None = None) -> builtins.list[InferenceRecord]:
        """Inferences left ``running`` by a server that died: their lease expired (or they have none,
        from a server before leases). Work under another live server's lease is not among them."""
        query = inferences_table.select().where(inferences_table.c.status == RUNNING, _lapsed(at or now()))
        with self._engine.connect() as conn:
            return [_record(dict(row)) for row in conn.execute(query).mappings()]

    def _transition(
        self, endpoint: str, inference_id: str, from_status: str, holder: str | None = None, **values: Any
    ) -> bool:
        table = inferences_table
        statement = (
            table.update()
            .where(table.c.endpoint == endpoint, table.c.id == inference_id, table.c.status == from_status)
            .values(updated_at=now(), **values)
        )
        if holder is not None:
            statement = statement.where(table.c.owner == holder)
        with self._engine.begin() as conn:
            return conn.execute(statement).rowcount == 1


def _lapsed(at: dt.datetime) -> sa.ColumnElement[bool]:
    column = inferences_table.c.lease_expires_at
    return sa.or_(column.is_(None), column < at)


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    # SQLite drops the timezone; everything we store is UTC.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment


def _record(row: dict[str, Any]) -> InferenceRecord:
    for key in ("created_at", "expires_at", "started_at", "finished_at", "updated_at", "lease_expires_at"):
        row[key] = _utc(row[key])
    row["input_owned"] = bool(row["input_owned"])
    return InferenceRecord(**row)
