"""Model files to a node once: a local-folder source, keyed by its content hash, in each node's cache.

The server hashes the folder (every file's relative path and bytes; remembered per folder while
no file's size or mtime changes), asks the node's agent whether it holds that hash, and only if
not sends the files through Ray's object store (``ray.put``) for the agent to write into
``<node cache>/<hash>/`` (written beside, then renamed: a half-copied folder is never used).
Replicas on that node then load from that folder and share its pages as local replicas do.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

_Signature = tuple[tuple[str, int, int], ...]
_known: dict[str, tuple[_Signature, str]] = {}  # folder -> (its files' signature, content hash)


def files_of(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def content_hash(folder: Path) -> str:
    """sha256 over each file's relative path and bytes; cached while sizes and mtimes stay the same."""
    files = files_of(folder)
    signature = tuple((str(path.relative_to(folder)), path.stat().st_size, path.stat().st_mtime_ns) for path in files)
    known = _known.get(str(folder))
    if known is not None and known[0] == signature:
        return known[1]
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    value = digest.hexdigest()
    _known[str(folder)] = (signature, value)
    return value


def pack(folder: Path) -> dict[str, bytes]:
    """The folder's files by relative path (what goes into the object store)."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in files_of(folder)}


def unpack(files: dict[str, bytes], cache: Path, key: str) -> Path:
    """Write ``files`` to ``cache/key`` (via a temporary folder and a rename); returns the folder."""
    target = cache / key
    if target.is_dir():
        return target
    partial = cache / f".{key}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    for relative, data in files.items():
        path = partial / relative
        if not path.resolve().is_relative_to(partial.resolve()):
            raise ValueError(f"a model file path leaves its folder: {relative!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    try:
        partial.rename(target)
    except OSError:  # another copy won the race: use it
        shutil.rmtree(partial, ignore_errors=True)
    return target
