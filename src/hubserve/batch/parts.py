"""A job's staging folder: per input file, a part file of results and one of errors.

Parts are local (``<home>/batch-jobs/<job id>/``) whatever the output location: appends and
truncation need a real file, and S3 has neither. A part is only ever appended to; opening it for
a (re)start cuts it back to the committed length, which drops a tail written by a run that died
before its commit. When every file is done, ``assemble`` copies each part to
``<output>/<input name>.out`` and the error parts, in file order, to ``<output>/errors.jsonl``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import IO

from hubserve.storage import Location

OUT_SUFFIX = ".out"
ERRORS_NAME = "errors.jsonl"
_COPY_CHUNK = 1 << 20


class PartFiles:
    """The open results and errors parts of one input file, cut back to their committed length."""

    def __init__(self, staging: Path, idx: int, out_bytes: int, err_bytes: int) -> None:
        staging.mkdir(parents=True, exist_ok=True)
        self.out = _open_at(out_path(staging, idx), out_bytes)
        self.err = _open_at(err_path(staging, idx), err_bytes)

    def append(self, out: bytes, err: bytes) -> tuple[int, int]:
        """Write a chunk and flush it to the OS; returns the new (out, err) lengths to commit."""
        self.out.write(out)
        self.err.write(err)
        self.out.flush()
        self.err.flush()
        return self.out.tell(), self.err.tell()

    def close(self) -> None:
        self.out.close()
        self.err.close()


def out_path(staging: Path, idx: int) -> Path:
    return staging / f"part-{idx:05d}.out"


def err_path(staging: Path, idx: int) -> Path:
    return staging / f"part-{idx:05d}.errors"


def _open_at(path: Path, length: int) -> IO[bytes]:
    path.touch(exist_ok=True)
    handle = open(path, "r+b")  # noqa: SIM115 - PartFiles closes it
    handle.truncate(length)
    handle.seek(length)
    return handle


def assemble(staging: Path, names: list[str], output: Location, *, results: bool = True) -> str | None:
    """Copy the parts to ``output``; returns the errors file's URL when any record failed.

    ``results=False`` writes only the errors file (a failed job leaves no partial ``.out``).
    """
    if results:
        for idx, name in enumerate(names):
            _copy(out_path(staging, idx), output.child(name + OUT_SUFFIX))
    errors = [err_path(staging, idx) for idx in range(len(names))]
    if not any(path.exists() and path.stat().st_size for path in errors):
        return None
    target = output.child(ERRORS_NAME)
    with target.open("wb") as sink:
        for path in errors:
            if path.exists():
                with open(path, "rb") as source:
                    shutil.copyfileobj(source, sink, _COPY_CHUNK)
    return target.url


def _copy(source: Path, target: Location) -> None:
    if not source.exists():
        source.touch()
    with open(source, "rb") as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst, _COPY_CHUNK)
