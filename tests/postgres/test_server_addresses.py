"""Where servers of a shared store are reached (store/servers.py), on SQLite and PostgreSQL, and the
URL a server advertises by default (settings.advertised_base_url)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hubserve.settings import Settings
from hubserve.store.servers import ServerStore
from tests.postgres.test_migrations import url_for


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_server_records_its_url_and_another_reads_it(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = url_for(kind, tmp_path, request)
    mine, theirs = ServerStore(url), ServerStore(url)
    try:
        assert theirs.url_of("server-a") is None  # never advertised (an older hubserve): not forwarded to
        mine.advertise("server-a", "http://10.0.0.1:8080")
        assert theirs.url_of("server-a") == "http://10.0.0.1:8080"
        mine.advertise("server-a", "http://10.0.0.1:9090")  # restarted on another port: the same row, refreshed
        assert theirs.url_of("server-a") == "http://10.0.0.1:9090"
        theirs.advertise("server-b", "http://10.0.0.2:8080")
        assert (mine.url_of("server-a"), mine.url_of("server-b")) == ("http://10.0.0.1:9090", "http://10.0.0.2:8080")
    finally:
        mine.close()
        theirs.close()


def test_the_advertised_url_is_the_bind_address_unless_given() -> None:
    assert Settings(host="127.0.0.1", port=8123).advertised_base_url == "http://127.0.0.1:8123"
    assert Settings(host="10.1.2.3", port=80, public_url="https://lb.example.com").advertised_base_url == "http://10.1.2.3:80"
    assert Settings(advertise_url="http://node-3:8080/").advertised_base_url == "http://node-3:8080"
    assert Settings(host="0.0.0.0").advertised_base_url not in ("http://0.0.0.0:8080", "http://:8080")
    with pytest.raises(ValidationError, match="advertise_url"):
        Settings(advertise_url="node-3:8080")
