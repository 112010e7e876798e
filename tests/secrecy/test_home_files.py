"""What the server keeps on disk is readable by its own user only, including an older home's files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx

from tests.secrecy.conftest import Started


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_home_and_everything_in_it_is_private(secret_server: Started, admin: httpx.Client,
                                                  secret_endpoint: dict) -> None:  # fmt: skip
    home = secret_server.home
    admin.post(f"/endpoints/{secret_endpoint['name']}", json={"inputs": "PLAIN_SETTING"})  # access lines, logs
    assert _mode(home) == 0o700
    database = home / "state.db"
    assert _mode(database) == 0o600
    for suffix in ("-wal", "-shm"):
        sidecar = home / f"state.db{suffix}"
        if sidecar.exists():
            assert _mode(sidecar) == 0o600, sidecar
    assert _mode(home / "logs") == 0o700
    assert _mode(home / "logs" / "old.log") == 0o600  # an older home's file, narrowed at start
    exposed = []
    for folder, dirs, files in os.walk(home):
        for name in (*dirs, *files):
            path = Path(folder) / name
            if not path.is_symlink() and _mode(path) & 0o077:
                exposed.append(f"{path} {_mode(path):04o}")
    assert not exposed, exposed
    assert any((home / "logs").rglob("*")), "the server wrote no logs to check"
