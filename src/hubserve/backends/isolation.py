"""The server's half of replica isolation: the user replicas run as, their own folder, their process group.

The replica's half (dropping to that user, the scrubbed environment) is worker/sandbox.py. Here:
which uid and gid a replica user names, a folder only that user (and the server) may write, and
killing a replica's whole process group, so a child it forked does not outlive it.
"""

from __future__ import annotations

import os
import pwd
import signal
from pathlib import Path


class ReplicaUserError(ValueError):
    """The configured replica user cannot be used; the message says what to set instead."""


def default_replica_user() -> str:
    """``nobody`` when the server runs as root (replicas must not), else "" (they run as the server's user)."""
    return "nobody" if os.geteuid() == 0 else ""


def replica_ids(user: str | None) -> tuple[int, int] | None:
    """The (uid, gid) replicas switch to; None when they keep the server's user."""
    if not user:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ReplicaUserError(f"replica user {user!r} does not exist; create it or set --replica-user ''") from None
    if os.geteuid() != 0 and entry.pw_uid != os.geteuid():
        raise ReplicaUserError(f"only a server running as root can run replicas as {user!r}; set --replica-user ''")
    return entry.pw_uid, entry.pw_gid


def own_folder(folder: Path, ids: tuple[int, int] | None) -> None:
    """Create ``folder`` (mode 0700) for one replica, owned by its user, and let that user reach it."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if ids is not None:
        os.chmod(folder.parent, 0o711)  # others may pass through the sockets folder, not list it
        os.chown(folder, *ids)


def kill_group(pgid: int) -> None:
    """SIGKILL what is left of a replica's process group (its pid: it leads its own session)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
