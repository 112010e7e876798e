"""Tags on SageMaker resources (AddTags, DeleteTags, ListTags), keyed by the resource part of its ARN.

SageMaker clients tag models, endpoint configs and endpoints, and read the tags back (the
SageMaker Python SDK's ``Predictor.update_endpoint()`` calls ListTags before it updates), so they
are stored here, one row per (resource, key), and outlive a server restart like everything else.
A resource is what its ARN names after the account, such as ``model/my-model`` (hubserve's
resources are the same whichever region a client signs for). The table comes from the store's
migrations, like every store table.
"""

from __future__ import annotations

import sqlalchemy as sa

from hubserve.store.engine import engine_for
from hubserve.store.schema import upgrade

_metadata = sa.MetaData()

tags_table = sa.Table(
    "sagemaker_tags",
    _metadata,
    sa.Column("resource", sa.String(128), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)


class TagStore:
    """The tags of each SageMaker resource; a key is set at most once per resource."""

    def __init__(self, engine: sa.Engine | str) -> None:
        """``engine``: the server's shared engine, or a store URL for an engine of this store's own."""
        self._engine, self._owns_engine = engine_for(engine)
        upgrade(self._engine)  # the schema is the migrations', not this module's metadata

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()

    def add(self, resource: str, tags: dict[str, str]) -> None:
        """Set ``tags`` on ``resource``; a key already there gets the new value (AddTags overwrites)."""
        if not tags:
            return
        with self._engine.begin() as conn:
            condition = sa.and_(tags_table.c.resource == resource, tags_table.c.key.in_(list(tags)))
            conn.execute(tags_table.delete().where(condition))
            rows = [{"resource": resource, "key": key, "value": value} for key, value in tags.items()]
            conn.execute(tags_table.insert(), rows)

    def delete(self, resource: str, keys: list[str] | None = None) -> None:
        """Remove ``keys`` from ``resource`` (keys it lacks are ignored); None: every tag (the resource is gone)."""
        condition = tags_table.c.resource == resource
        if keys is not None:
            condition = sa.and_(condition, tags_table.c.key.in_(keys))
        with self._engine.begin() as conn:
            conn.execute(tags_table.delete().where(condition))

    def list(self, resource: str) -> dict[str, str]:
        """The tags of ``resource``, ordered by key (so pages of ListTags are stable)."""
        columns = sa.select(tags_table.c.key, tags_table.c.value)
        query = columns.where(tags_table.c.resource == resource).order_by(tags_table.c.key)
        with self._engine.connect() as conn:
            return {str(key): str(value) for key, value in conn.execute(query)}
