"""The server's half of replica isolation: the user replicas run as, their own folder, their process group.

The replica's half (dropping to that user, the scrubbed environment) is worker/sandbox.py. Here:
which uid and gid a replica user names, a folder only that user (and the server) may write, and
killing a replica's whole process group, so a child it forked does not outlive it.
"""

from __future__ import annotations

import os
import pwd
import signal
import stat
import sysconfig
from pathlib import Path

import hubserve


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


def code_unreadable_by(ids: tuple[int, int]) -> Path | None:
    """The first folder of installed Python code (site-packages, hubserve's own) the user ``ids`` cannot read.

    Replicas import model code lazily (transformers loads a model's module when it first meets it),
    after they switch user: a virtual environment inside a private folder (a checkout under /root, a
    0700 temporary folder) would fail them at load. The standard library is not checked: the zygote
    and a fresh replica import what they need of it before the switch.
    """
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], str(Path(hubserve.__file__).parent)}
    for path in sorted(paths):
        if not readable_by(Path(path), *ids):
            return Path(path)
    return None


def readable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether ``uid``/``gid`` may list ``path`` and pass through every folder above it (by mode bits)."""
    for folder in (path, *path.parents):
        try:
            info = folder.stat()
        except OSError:
            return False
        if info.st_uid == uid:
            allowed = info.st_mode & stat.S_IRWXU
            read, search = stat.S_IRUSR, stat.S_IXUSR
        elif info.st_gid == gid:
            allowed = info.st_mode & stat.S_IRWXG
            read, search = stat.S_IRGRP, stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IRWXO
            read, search = stat.S_IROTH, stat.S_IXOTH
        needed = search | (read if folder == path else 0)
        if allowed & needed != needed:
            return False
    return True


def choose_replica_user(configured: str | None) -> tuple[str, str | None]:
    """The user replicas run as, and a warning when the default had to give way.

    ``configured`` None means the default: ``nobody`` as root, unless it cannot read the installed
    code, in which case replicas keep the server's user and the warning says why and how to fix it.
    A user named explicitly that cannot read the code is refused (ReplicaUserError).
    """
    user = default_replica_user() if configured is None else configured
    ids = replica_ids(user)
    if ids is None:
        return user, None
    unreadable = code_unreadable_by(ids)
    if unreadable is None:
        return user, None
    advice = (
        f"replica user {user!r} cannot read {unreadable} (Python code replicas import); install hubserve where "
        f"{user!r} can read it (no private folder above it)"
    )
    if configured is not None:
        raise ReplicaUserError(f"{advice}, or set --replica-user ''")
    return "", f"replicas run as the server's user: {advice}, or set --replica-user '' to silence this"


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
