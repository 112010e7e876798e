"""The audit log table: one row per change a client asked for (who, when, from where, what, outcome).

Rows are appended by the API's audit middleware after the response status is known and read newest
first. A row names the token (its id and name, or "bootstrap"/"local"), never the token itself, and
never holds a request body (bodies may carry secrets): only method, path, the operation (``action``),
the thing it changed (``target``), the source address, the request id and the status code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import sqlalchemy as sa

from hubserve.store.engine import engine_for
from hubserve.store.schema import upgrade

_metadata = sa.MetaData()

audit_table = sa.Table(
    "audit_log",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("token_id", sa.String(32), nullable=False),  # a token id, "bootstrap" or "local"
    sa.Column("token_name", sa.String(200), nullable=True),
    sa.Column("method", sa.String(10), nullable=False),
    sa.Column("path", sa.String(2048), nullable=False),
    sa.Column("action", sa.String(100), nullable=True),  # e.g. SageMaker's X-Amz-Target operation
    sa.Column("target", sa.String(300), nullable=True, index=True),  # endpoint name, job id, token id
    sa.Column("source", sa.String(100), nullable=True),  # the client's address
    sa.Column("request_id", sa.String(200), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
)


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite drops the timezone; everything stored is UTC.
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    """One recorded change; ``id`` is None until stored."""

    at: dt.datetime
    token_id: str
    token_name: str | None
    method: str
    path: str
    action: str | None
    target: str | None
    source: str | None
    request_id: str
    status: int
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry as the API returns it (time as ISO 8601 UTC)."""
        data = dataclasses.asdict(self)
        data["at"] = self.at.isoformat()
        return data


class AuditStore:
    """Append entries and read them back newest first."""

    def __init__(self, target: sa.Engine | str) -> None:
        self._engine, self._owns = engine_for(target)
        upgrade(self._engine)  # the schema is the migrations', not this module's metadata

    def close(self) -> None:
        if self._owns:
            self._engine.dispose()

    def record(self, entry: AuditEntry) -> None:
        row = {key: value for key, value in dataclasses.asdict(entry).items() if key != "id"}
        row["path"] = row["path"][:2048]
        row["request_id"] = row["request_id"][:200]
        with self._engine.begin() as conn:
            conn.execute(audit_table.insert().values(**row))

    def list(self, limit: int = 100, since: dt.datetime | None = None, target: str | None = None) -> list[AuditEntry]:
        """At most ``limit`` entries, newest first; only those at or after ``since`` and about ``target``."""
        query = audit_table.select().order_by(audit_table.c.at.desc(), audit_table.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(audit_table.c.at >= since)
        if target is not None:
            query = query.where(audit_table.c.target == target)
        with self._engine.connect() as conn:
            return [_entry(dict(row)) for row in conn.execute(query).mappings()]


def _entry(row: dict[str, Any]) -> AuditEntry:
    row["at"] = _utc(row["at"])
    return AuditEntry(**row)
