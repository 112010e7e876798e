"""The token store: secrets derived, never stored; verification, revocation and the key file."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from hubserve.errors import NotFound, ValidationError
from hubserve.store import tokens as token_module
from hubserve.store.tokens import TokenStore, load_or_create_key, split


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}"), load_or_create_key(tmp_path / "token.key"))


def test_a_created_token_verifies_and_its_secret_is_nowhere_in_the_database(store: TokenStore, tmp_path: Path) -> None:
    record, token = store.create("ci", ["invoke", "read"], endpoints=["b", "a"], created_by="bootstrap")
    token_id, secret = split(token) or ("", "")
    assert token_id == record.id and len(record.id) == 12
    assert record.scopes == ("invoke", "read") and record.endpoints == ("a", "b") and record.created_by == "bootstrap"
    assert store.verify(token) == record
    assert store.secret_of(record.id) == secret
    assert secret.encode() not in (tmp_path / "state.db").read_bytes()
    assert token.encode() not in (tmp_path / "state.db").read_bytes()


@pytest.mark.parametrize("mangle", [
    lambda t: "", lambda t: "Bearer " + t, lambda t: t[:-1], lambda t: t + "x", lambda t: t.replace("hs_", "hx_"),
    lambda t: "hs_" + "0" * 12 + t[15:], lambda t: t[:-4] + "AAAA",
])  # fmt: skip
def test_malformed_unknown_and_wrong_tokens_do_not_verify(store: TokenStore, mangle) -> None:  # type: ignore[no-untyped-def]
    _, token = store.create("x", ["read"])
    assert store.verify(mangle(token)) is None


def test_a_revoked_token_stops_verifying_at_once_in_this_process(store: TokenStore) -> None:
    record, token = store.create("x", ["admin"])
    assert store.verify(token) is not None
    revoked = store.revoke(record.id)
    assert revoked.revoked_at is not None
    assert store.verify(token) is None and store.secret_of(record.id) is None
    assert [r.id for r in store.list()] == [] and [r.id for r in store.list(include_revoked=True)] == [record.id]
    with pytest.raises(NotFound):
        store.revoke("0123456789ab")


def test_revocation_through_another_store_takes_effect_within_the_cache_time(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    key = load_or_create_key(tmp_path / "token.key")
    serving, admin = TokenStore(engine, key), TokenStore(engine, key)
    record, token = admin.create("x", ["read"])
    assert serving.verify(token) is not None
    admin.revoke(record.id)
    time.sleep(token_module._CACHE_SECONDS + 0.1)
    assert serving.verify(token) is None


def test_scopes_are_checked(store: TokenStore) -> None:
    with pytest.raises(ValidationError):
        store.create("x", ["root"])  # type: ignore[list-item]
    with pytest.raises(ValidationError):
        store.create("x", [])


def test_the_key_is_made_once_with_mode_0600_and_another_key_invalidates_every_token(tmp_path: Path) -> None:
    path = tmp_path / "home" / "token.key"
    key = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key) == 32
    assert load_or_create_key(path) == key
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    _, token = TokenStore(engine, key).create("x", ["read"])
    assert TokenStore(engine, b"k" * 32).verify(token) is None
