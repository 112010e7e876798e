"""SageMaker's own resources: models, endpoint configs, and which config an endpoint was made from.

SageMaker has models and endpoint configs as resources separate from endpoints, so they are
stored here as the definitions the client sent (JSON). Endpoints themselves are hubserve
endpoints (the `endpoints` table and the controller); this module keeps only the name of the
config each one was created or last updated from, never its state or spec.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from hubserve.store.engine import engine_for

_metadata = sa.MetaData()


def _definitions(name: str) -> sa.Table:
    return sa.Table(
        name,
        _metadata,
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


models_table = _definitions("sagemaker_models")
configs_table = _definitions("sagemaker_endpoint_configs")
bindings_table = sa.Table(
    "sagemaker_endpoint_bindings",
    _metadata,
    sa.Column("endpoint", sa.String(63), primary_key=True),
    sa.Column("config", sa.String(63), nullable=False),
)


@dataclasses.dataclass(frozen=True)
class Definition:
    """One stored model or endpoint config: the request as the client sent it, plus our additions."""

    name: str
    definition: dict[str, Any]
    created_at: dt.datetime


class SageMakerStore:
    """CRUD over SageMaker models, endpoint configs and endpoint -> config bindings."""

    def __init__(self, engine: sa.Engine | str) -> None:
        """``engine``: the server's shared engine, or a store URL for an engine of this store's own."""
        self._engine, self._owns_engine = engine_for(engine)
        _metadata.create_all(self._engine)

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()

    # models and configs share one shape -------------------------------------------------

    def put_model(self, name: str, definition: dict[str, Any]) -> Definition:
        return self._insert(models_table, name, definition)

    def get_model(self, name: str) -> Definition | None:
        return self._get(models_table, name)

    def delete_model(self, name: str) -> bool:
        return self._delete(models_table, name)

    def put_config(self, name: str, definition: dict[str, Any]) -> Definition:
        return self._insert(configs_table, name, definition)

    def get_config(self, name: str) -> Definition | None:
        return self._get(configs_table, name)

    def delete_config(self, name: str) -> bool:
        return self._delete(configs_table, name)

    # bindings -----------------------------------------------------------------------------

    def bind(self, endpoint: str, config: str) -> None:
        """Remember the config an endpoint was created or last updated from."""
        with self._engine.begin() as conn:
            conn.execute(bindings_table.delete().where(bindings_table.c.endpoint == endpoint))
            conn.execute(bindings_table.insert().values(endpoint=endpoint, config=config))

    def binding(self, endpoint: str) -> str | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(bindings_table.c.config).where(bindings_table.c.endpoint == endpoint)).first()
        return None if row is None else str(row[0])

    def unbind(self, endpoint: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(bindings_table.delete().where(bindings_table.c.endpoint == endpoint))

    # ----------------------------------------------------------------------------------------

    def _insert(self, table: sa.Table, name: str, definition: dict[str, Any]) -> Definition:
        """Raises KeyError when the name is taken (SageMaker never overwrites a model or config)."""
        now = dt.datetime.now(dt.timezone.utc)
        try:
            with self._engine.begin() as conn:
                conn.execute(table.insert().values(name=name, definition=json.dumps(definition), created_at=now))
        except sa.exc.IntegrityError as exc:
            raise KeyError(name) from exc
        return Definition(name, definition, now)

    def _get(self, table: sa.Table, name: str) -> Definition | None:
        with self._engine.connect() as conn:
            row = conn.execute(table.select().where(table.c.name == name)).mappings().first()
        if row is None:
            return None
        created = row["created_at"]
        if created.tzinfo is None:  # SQLite drops the timezone; everything we store is UTC
            created = created.replace(tzinfo=dt.timezone.utc)
        return Definition(row["name"], json.loads(row["definition"]), created)

    def _delete(self, table: sa.Table, name: str) -> bool:
        with self._engine.begin() as conn:
            return bool(conn.execute(table.delete().where(table.c.name == name)).rowcount)

