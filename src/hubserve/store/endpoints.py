"""The endpoints table: one row per endpoint, the spec as JSON plus desired/observed state."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from hubserve.spec import EndpointSpec, EndpointState
from hubserve.store.engine import engine_for
from hubserve.store.schema import upgrade

_metadata = sa.MetaData()

endpoints_table = sa.Table(
    "endpoints",
    _metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    # What the user asked for: "running" or "paused". Restart restores this.
    sa.Column("desired", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("notes", sa.Text, nullable=False, default="[]"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclasses.dataclass(frozen=True)
class EndpointRecord:
    """One endpoint as stored: what the user asked for and what we last observed."""

    spec: EndpointSpec
    desired: str
    state: EndpointState
    reason: str | None
    notes: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def name(self) -> str:
        return self.spec.name


class EndpointStore:
    """CRUD over endpoints. Synchronous: SQLite calls take microseconds and stay off the hot path."""

    def __init__(self, engine: sa.Engine | str) -> None:
        """``engine``: the server's shared engine, or a store URL for an engine of this store's own."""
        self._engine, self._owns_engine = engine_for(engine)
        upgrade(self._engine)  # the schema is the migrations', not this module's metadata

    @classmethod
    def in_home(cls, home: Path) -> EndpointStore:
        return cls(f"sqlite:///{home / 'state.db'}")

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()

    def insert(self, spec: EndpointSpec, notes: list[str]) -> EndpointRecord:
        """Add a new endpoint; returns None-free record. Raises KeyError if the name is taken."""
        now = _now()
        row = {
            "name": spec.name,
            "spec": spec.model_dump_json(),
            "desired": "running",
            "state": EndpointState.PENDING.value,
            "reason": None,
            "notes": json.dumps(notes),
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(endpoints_table.insert().values(**row))
        except sa.exc.IntegrityError as exc:
            raise KeyError(spec.name) from exc
        return _record(row)

    def get(self, name: str) -> EndpointRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(endpoints_table.select().where(endpoints_table.c.name == name)).mappings().first()
        return None if row is None else _record(dict(row))

    def list(self) -> list[EndpointRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(endpoints_table.select().order_by(endpoints_table.c.name)).mappings().all()
        return [_record(dict(row)) for row in rows]

    def update(self, name: str, **fields: Any) -> EndpointRecord | None:
        """Change stored fields (spec, desired, state, reason, notes); returns the new record."""
        values: dict[str, Any] = {"updated_at": _now()}
        for key, value in fields.items():
            if key == "spec":
                value = value.model_dump_json()
            elif key == "state":
                value = EndpointState(value).value
            elif key == "notes":
                value = json.dumps(value)
            values[key] = value
        with self._engine.begin() as conn:
            conn.execute(endpoints_table.update().where(endpoints_table.c.name == name).values(**values))
        return self.get(name)

    def delete(self, name: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(endpoints_table.delete().where(endpoints_table.c.name == name))


def _record(row: dict[str, Any]) -> EndpointRecord:
    created, updated = row["created_at"], row["updated_at"]
    # SQLite drops the timezone; everything we store is UTC.
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.timezone.utc)
    if updated.tzinfo is None:
        updated = updated.replace(tzinfo=dt.timezone.utc)
    return EndpointRecord(
        spec=EndpointSpec.model_validate_json(row["spec"]),
        desired=row["desired"],
        state=EndpointState(row["state"]),
        reason=row["reason"],
        notes=json.loads(row["notes"] or "[]"),
        created_at=created,
        updated_at=updated,
    )
