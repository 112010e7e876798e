"""Servers whose replicas run as the default replica user, and a probing custom handler."""

from __future__ import annotations

import os
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hubserve.backends.isolation import ReplicaUserError, code_unreadable_by, replica_ids
from tests.integration.conftest import RunningServer, start_server, stop_server

SECRET = "aws-secret-9d1e-never-in-a-replica"


def _drop_blocked() -> str | None:
    """Why replicas cannot switch to ``nobody`` on this machine, or None when they can."""
    if os.geteuid() != 0:
        return "dropping privileges needs a server running as root"
    try:
        unreadable = code_unreadable_by(replica_ids("nobody") or (0, 0))
    except ReplicaUserError as exc:
        return str(exc)
    if unreadable is not None:
        return (
            f"nobody cannot read {unreadable} (the checkout lies in a private folder): replicas keep the server's user"
        )
    return None


DROP_BLOCKED = _drop_blocked()

# One handler, many probes: what the replica can see and do, asked for by the request's "inputs".
PROBE_HANDLER = textwrap.dedent(
    """
    import os
    import subprocess


    def _ancestors():
        pid, seen = os.getppid(), []
        while pid > 1:
            try:
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    environ = handle.read().decode(errors="replace")
            except OSError as exc:
                environ = f"unreadable: {type(exc).__name__}"
            seen.append({"pid": pid, "environ": environ})
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])
        return seen


    def _try_write(path):
        try:
            with open(path, "w") as handle:
                handle.write("written by a replica")
        except OSError as exc:
            return type(exc).__name__
        return "written"


    class EndpointHandler:
        def __init__(self, path=""):
            pass

        def __call__(self, data):
            probe = data["inputs"]
            if probe == "env":
                return {"own": dict(os.environ), "ancestors": _ancestors()}
            if probe == "who":
                with open("/etc/passwd") as passwd:
                    readable = bool(passwd.read())
                return {
                    "uid": os.getuid(), "euid": os.geteuid(), "pgid": os.getpgid(0), "pid": os.getpid(),
                    "passwd_readable": readable,
                    "write_etc": _try_write(data["etc"]) if "etc" in data else None,
                    "write_home": _try_write(data["home"] + "/replica-probe") if "home" in data else None,
                }
            if probe == "fork":
                child = subprocess.Popen(["sleep", "1000"])
                return {"child": child.pid, "pid": os.getpid()}
            return {"unknown": probe}
    """
)


@pytest.fixture
def etc_target() -> Iterator[Path]:
    """A path under /etc no one has written yet, removed afterwards whoever wrote it."""
    target = Path(f"/etc/hubserve-replica-probe-{uuid.uuid4().hex[:12]}")
    yield target
    target.unlink(missing_ok=True)


def probe_model(root: Path) -> Path:
    """A handler-only model folder that any user can read (pytest's own temp folder is private)."""
    folder = root / "probe-model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "handler.py").write_text(PROBE_HANDLER)
    for path in (root, folder, folder / "handler.py"):
        path.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def open_dir() -> Iterator[Path]:
    """A world-readable folder for models replicas read as an unprivileged user."""
    with tempfile.TemporaryDirectory(prefix="hubserve-isolation-") as folder:
        path = Path(folder)
        path.chmod(0o755)
        yield path


@pytest.fixture(scope="module")
def isolated_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server started with credentials in its environment, replicas at their default user."""
    home = tmp_path_factory.mktemp("isolated") / "home"
    env = {
        "HUBSERVE_REPLICA_USER": os.environ.get("HUBSERVE_TEST_REPLICA_USER", "nobody" if DROP_BLOCKED is None else ""),
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "HUBSERVE_ADMIN_NOTE": SECRET,
    }
    running = start_server(home, extra_env=env)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def isolated_api(isolated_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=isolated_server.url, headers=isolated_server.headers(), timeout=120) as client:
        yield client
