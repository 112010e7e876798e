"""A job's staging folder: per input file, a part file of results and one of errors.

Parts are local (``<home>/batch-jobs/<job id>/``) whatever the output location: appends and
truncation need a real file, and S3 has neither. A part is only ever appended to; opening it for
a (re)start cuts it back to the committed length, which drops a tail written by a run that died
before its commit. When every file is done, ``assemble`` copies each part to
``<output>/<input name>.out`` and the error parts, in file order, to ``<output>/errors.jsonl``.
"""

from __future__ import annotations

import contextlib
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
    All or nothing: every file is written under a temporary name first and renamed only once all
    are whole, so a full disk (or a kill) halfway leaves no ``.out`` that looks complete; the
    temporary files are removed when a write fails. (S3 objects appear only once uploaded.)
    """
    writes: list[tuple[list[Path], Location]] = []
    if results:
        writes += [([out_path(staging, idx)], output.child(name + OUT_SUFFIX)) for idx, name in enumerate(names)]
    errors = [err_path(staging, idx) for idx in range(len(names))]
    errors_target: Location | None = None
    if any(path.exists() and path.stat().st_size for path in errors):
        errors_target = output.child(ERRORS_NAME)
        writes.append(([path for path in errors if path.exists()], errors_target))
    written: list[tuple[Location, Location]] = []
    try:
        for sources, target in writes:
            staged = target.staging()
            written.append((staged, target))
            _copy(sources, staged)
        for staged, target in written:
            target.put_in_place(staged)
    except BaseException:
        for staged, target in written:
            if staged.path != target.path:
                with contextlib.suppress(OSError):
                    staged.remove()
        raise
    return errors_target.url if errors_target is not None else None


def _copy(sources: list[Path], target: Location) -> None:
    with target.open("wb") as sink:
        for source in sources:
            if source.exists():
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, sink, _COPY_CHUNK)
