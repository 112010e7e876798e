"""A real PostgreSQL server for tests: initdb into a temporary folder, started on a free 127.0.0.1 port.

As root (initdb refuses root), the cluster belongs to ``nobody`` and the server runs as that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: /usr/local/bin, Debian's /usr/lib/postgresql/*/bin, or PATH."""
    candidates = [Path("/usr/local/bin"), *sorted(map(Path, glob.glob("/usr/lib/postgresql/*/bin")), reverse=True)]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user(uid: int | None, gid: int | None) -> dict[str, object]:
    if uid is None or gid is None:
        return {}
    return {"user": uid, "group": gid, "extra_groups": []}


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a ``postgresql+psycopg://`` URL of a fresh server; raises LookupError without binaries."""
    binaries = find_binaries()
    if binaries is None:
        raise LookupError(
            "no PostgreSQL binaries (initdb, pg_ctl) in /usr/local/bin, /usr/lib/postgresql/*/bin or PATH"
        )
    root = Path(tempfile.mkdtemp(prefix="hubserve-pg-"))
    uid = gid = None
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
        os.chown(root, uid, gid)
    data, sockets, log = root / "data", root / "sock", root / "server.log"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    run = _as_user(uid, gid)
    subprocess.run(
        [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, env=env, cwd=root, **run,  # type: ignore[call-overload]
    )  # fmt: skip
    sockets.mkdir()
    if uid is not None and gid is not None:
        os.chown(sockets, uid, gid)
    port = free_port()
    options = f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off -c max_connections=200"
    subprocess.run(
        [str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
        check=True, capture_output=True, env=env, cwd=root, **run,  # type: ignore[call-overload]
    )  # fmt: skip
    try:
        _wait_accepting(port)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True, env=env, cwd=root, **run,  # type: ignore[call-overload]
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def _wait_accepting(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL did not listen on 127.0.0.1:{port}")
