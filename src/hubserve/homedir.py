"""The home folder's permissions: only the server's user may read what it holds.

The home holds ``state.db`` (endpoint secrets, token hashes), the token key, logs (request
lines, replica output) and stored async and batch results. The server runs with ``PRIVATE_UMASK``
so what it creates is 0600 (files) and 0700 (folders); ``make_private`` narrows what an older
server or another tool left readable to the group or to others.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
_OPEN_BITS = stat.S_IRWXG | stat.S_IRWXO

log = logging.getLogger(__name__)


def use_private_umask() -> int:
    """Set the process umask to ``PRIVATE_UMASK``; returns the previous one."""
    return os.umask(PRIVATE_UMASK)


def make_private(home: Path) -> int:
    """Create ``home`` as 0700 and strip group and other bits from everything under it that is ours.

    Symbolic links are not followed (their targets may lie outside the home). Returns how many
    entries were narrowed, so start-up can say it fixed an older home.
    """
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    narrowed = int(_narrow(home))
    for folder, dirs, files in os.walk(home):
        for name in (*dirs, *files):
            narrowed += _narrow(Path(folder) / name)
    if narrowed:
        log.info("narrowed the permissions of %d entries under %s to the server's user only", narrowed, home)
    return narrowed


def _narrow(path: Path) -> bool:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode) or not info.st_mode & _OPEN_BITS or info.st_uid != os.geteuid():
        return False
    try:
        path.chmod(stat.S_IMODE(info.st_mode) & ~_OPEN_BITS)
    except OSError:
        return False
    return True
