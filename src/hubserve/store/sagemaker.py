"""SageMaker's own resources: models, endpoint configs, and which config an endpoint was made from.

SageMaker has models and endpoint configs as resources separate from endpoints, so they are
stored here as the definitions the client sent (JSON). Endpoints themselves are hubserve
endpoints (the `endpoints` table and the controller); this module keeps only the name of the
config each one was created or last updated from, never its state or spec. Tags on any of these
resources are in ``sagemaker_tags.py`` (``SageMakerStore.tags``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any, Literal

import sqlalchemy as sa

from hubserve.store.engine import engine_for
from hubserve.store.sagemaker_tags import TagStore
from hubserve.store.schema import upgrade

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
class Listing:
    """ListModels' and ListEndpointConfigs' filters and order (pagination is the caller's)."""

    name_contains: str | None = None  # case-insensitive
    created_before: dt.datetime | None = None
    created_after: dt.datetime | None = None
    sort_by: Literal["Name", "CreationTime"] = "CreationTime"
    descending: bool = True


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
        upgrade(self._engine)  # the schema is the migrations', not this module's metadata
        self.tags = TagStore(self._engine)

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

    def list_models(self, listing: Listing) -> list[Definition]:
        return self._list(models_table, listing)

    def put_config(self, name: str, definition: dict[str, Any]) -> Definition:
        return self._insert(configs_table, name, definition)

    def get_config(self, name: str) -> Definition | None:
        return self._get(configs_table, name)

    def delete_config(self, name: str) -> bool:
        return self._delete(configs_table, name)

    def list_configs(self, listing: Listing) -> list[Definition]:
        return self._list(configs_table, listing)

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
        return None if row is None else _definition(row)

    def _list(self, table: sa.Table, listing: Listing) -> list[Definition]:
        """Every definition that passes ``listing``'s filters, in its order (ties by name)."""
        query = table.select()
        if listing.name_contains:
            query = query.where(sa.func.lower(table.c.name).contains(listing.name_contains.lower(), autoescape=True))
        if listing.created_before is not None:
            query = query.where(table.c.created_at < _utc(listing.created_before))
        if listing.created_after is not None:
            query = query.where(table.c.created_at > _utc(listing.created_after))
        first = table.c.name if listing.sort_by == "Name" else table.c.created_at
        query = (
            query.order_by(first.desc(), table.c.name.desc())
            if listing.descending
            else query.order_by(first, table.c.name)
        )
        with self._engine.connect() as conn:
            return [_definition(row) for row in conn.execute(query).mappings()]

    def _delete(self, table: sa.Table, name: str) -> bool:
        with self._engine.begin() as conn:
            return bool(conn.execute(table.delete().where(table.c.name == name)).rowcount)


def _definition(row: sa.RowMapping) -> Definition:
    return Definition(row["name"], json.loads(row["definition"]), _utc(row["created_at"]))


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite drops the timezone and everything stored is UTC: naive reads as UTC, aware is converted."""
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment.astimezone(dt.timezone.utc)
