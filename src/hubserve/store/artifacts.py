"""Registered model files, stored once by content under ``<home>/registry/<sha256>/`` and verified on use.

The hash covers every file's relative path and bytes (sorted by path), so a renamed, added, removed
or changed file changes it. Storing copies into a temporary folder and renames it into place: two
registrations of the same content end with one copy, and a half-written copy is never seen.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

_CHUNK = 1 << 20
# folder -> the (path, size, mtime_ns, inode) of each file when its hash last matched. Replicas start from
# the control loop, so a full re-hash of gigabytes per replica would stall it: the hash is recomputed
# whenever any file's stat differs from the last verified one (any write changes mtime), else trusted.
_verified: dict[Path, tuple[tuple[str, int, int, int], ...]] = {}
_lock = threading.Lock()


class ArtifactMismatch(ValueError):
    """The stored files no longer hash to what was registered; the message says which and what to do."""


def content_hash(folder: Path) -> str:
    """sha256 over each file's path (relative, '/'-separated) and bytes, in path order."""
    digest = hashlib.sha256()
    for relative in _files(folder):
        digest.update(relative.encode() + b"\0")
        with open(folder / relative, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            digest.update(size.to_bytes(8, "big"))
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def _files(folder: Path) -> list[str]:
    found = []
    for parent, folders, files in os.walk(folder, followlinks=True):
        folders.sort()
        for name in files:
            found.append((Path(parent) / name).relative_to(folder).as_posix())
    return sorted(found)


def store(folder: Path, root: Path) -> str:
    """Copy ``folder``'s files under ``root/<sha256>`` unless that content is stored already; returns the hash."""
    sha = content_hash(folder)
    target = root / sha
    if target.is_dir():
        return sha
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=root))
    try:
        shutil.copytree(folder, staging / "files", symlinks=False)  # links copied as the files they point to
        if content_hash(staging / "files") != sha:
            raise ArtifactMismatch(f"'{folder}' changed while it was being registered; register it again")
        try:
            os.rename(staging / "files", target)
        except OSError:
            if not target.is_dir():  # another registration of the same content won the rename: fine
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sha


def path_of(root: Path, sha: str) -> Path:
    return root / sha


def verified(root: Path, sha: str, label: str) -> Path:
    """The stored folder of ``sha`` once its files hash to it; ``label`` names the version in the error."""
    folder = root / sha
    if not folder.is_dir():
        raise ArtifactMismatch(
            f"{label}: its files are missing from the registry ({folder}); register the model again as a new version"
        )
    signature = _signature(folder)
    with _lock:
        if _verified.get(folder) == signature:
            return folder
    actual = content_hash(folder)
    if actual != sha:
        raise ArtifactMismatch(
            f"{label}: the registry's files in {folder} were changed since registration (sha256 {actual}, "
            f"registered {sha}); refusing to load them. Register the model again as a new version and deploy that"
        )
    with _lock:
        _verified[folder] = signature
    return folder


def _signature(folder: Path) -> tuple[tuple[str, int, int, int], ...]:
    found = []
    for relative in _files(folder):
        stat = os.stat(folder / relative)
        found.append((relative, stat.st_size, stat.st_mtime_ns, stat.st_ino))
    return tuple(found)
