"""model.tar.gz extraction: escaping members refused, the extracted size and member count capped."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from hubserve.api.sagemaker.artifacts import ArchiveLimits, extract
from hubserve.api.sagemaker.errors import SageMakerApiError


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, read without holding them: the content of a compression bomb."""

    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self._left)
        buffer[:count] = bytes(count)
        self._left -= count
        return count


def bomb(path: Path, size: int = 1024**3) -> Path:
    """A gzipped tar of a few megabytes that extracts to ``size`` bytes of zeros."""
    with tarfile.open(path, "w:gz", compresslevel=9) as tar:
        tar.addfile(_file("config.json", b"{}"), io.BytesIO(b"{}"))
        info = tarfile.TarInfo("model.safetensors")
        info.size = size
        tar.addfile(info, io.BufferedReader(_Zeros(size), 1 << 20))
    return path


def _file(name: str, data: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info


def _archive(path: Path, *members: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(_file("config.json", b"{}"), io.BytesIO(b"{}"))
        for member in members:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return path


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


ESCAPES = {
    "absolute": _file("/tmp/hubserve-escaped", b"x"),
    "dotdot": _file("../escaped", b"x"),
    "nested-dotdot": _file("code/../../escaped", b"x"),
    "symlink-out": _link("tokenizer.json", "/etc/passwd", tarfile.SYMTYPE),
    "symlink-in": _link("alias.json", "config.json", tarfile.SYMTYPE),
    "hardlink-out": _link("vocab.txt", "/etc/passwd", tarfile.LNKTYPE),
    "char-device": _special("null", tarfile.CHRTYPE),
    "block-device": _special("disk", tarfile.BLKTYPE),
    "fifo": _special("pipe", tarfile.FIFOTYPE),
}


@pytest.mark.parametrize("kind", sorted(ESCAPES))
def test_escaping_members_are_refused(tmp_path: Path, kind: str) -> None:
    archive = _archive(tmp_path / "model.tar.gz", ESCAPES[kind])
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(SageMakerApiError, match="unsafe member"):
        extract(archive, target)
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/hubserve-escaped").exists()
    assert not any(
        path.is_symlink() or (path.exists() and not (path.is_file() or path.is_dir())) for path in target.rglob("*")
    )


def test_compression_bomb_stops_at_the_cap(tmp_path: Path) -> None:
    archive = bomb(tmp_path / "model.tar.gz")
    assert archive.stat().st_size < 10 * 1024 * 1024  # a few megabytes...
    target = tmp_path / "out"
    target.mkdir()
    started = time.monotonic()
    with pytest.raises(SageMakerApiError, match="would extract to more than"):
        extract(archive, target, ArchiveLimits(max_bytes=64 * 1024 * 1024))
    written = sum(path.stat().st_size for path in target.rglob("*") if path.is_file())
    assert written <= 64 * 1024 * 1024  # ...refused before the 1 GiB member was written
    assert time.monotonic() - started < 30


def test_member_count_is_capped(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "model.tar.gz", *(_file(f"shard-{i}.txt", b"x") for i in range(20)))
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(SageMakerApiError, match="more than 10 members"):
        extract(archive, target, ArchiveLimits(max_members=10))


def test_a_plain_archive_extracts(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "model.tar.gz", _file("code/inference.py", b"x" * 10))
    target = tmp_path / "out"
    target.mkdir()
    extract(archive, target)
    assert (target / "config.json").read_bytes() == b"{}" and (target / "code" / "inference.py").stat().st_size == 10
    assert os.stat(target / "config.json").st_uid == os.getuid()
