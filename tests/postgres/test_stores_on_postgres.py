"""The store modules' own tests, run again on a real PostgreSQL server (one fresh database each).

The tests are imported from their SQLite modules; only the ``store`` fixture differs. Tests about
SQLite itself (WAL, file modes, a second store on the same file) stay there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from hubserve.store.endpoints import EndpointStore
from tests.store.test_endpoints_store import (  # noqa: F401 - collected here with this module's fixture
    test_delete,
    test_duplicate_insert_raises_key_error_and_keeps_the_first,
    test_every_state_round_trips,
    test_get_of_an_unknown_name_is_none,
    test_insert_then_get,
    test_list_is_sorted_by_name,
    test_timestamps_are_utc_and_updated_at_moves,
    test_update_changes_only_the_given_fields,
    test_update_of_an_unknown_name_is_none,
    test_update_refuses_an_unknown_state,
)


@pytest.fixture
def store(pg_url: str) -> Iterator[EndpointStore]:
    opened = EndpointStore(pg_url)
    yield opened
    opened.close()


def test_two_stores_on_one_database_see_each_others_writes(pg_url: str) -> None:
    from tests.store.test_endpoints_store import make_spec

    first, second = EndpointStore(pg_url), EndpointStore(pg_url)
    try:
        first.insert(make_spec("shared"), [])
        record = second.get("shared")
        assert record is not None and record.spec == make_spec("shared")
    finally:
        first.close()
        second.close()


def test_the_engine_is_postgresql(store: EndpointStore, pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.dialect.name == "postgresql"
        assert conn.execute(sa.text("SELECT count(*) FROM endpoints")).scalar() == 0
    engine.dispose()
