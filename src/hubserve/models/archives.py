"""Model archives (``model.tar.gz``) extracted safely: what SageMaker packs, wherever it is opened.

Every member is checked before it is written: no absolute paths, no ``..``, no links or devices,
so an archive cannot write outside its folder; tarfile's ``data`` filter applies on top. The
archive is read as a stream and refused as soon as its members would add up to more than
``ArchiveLimits.max_bytes`` (or the free disk, less a margin) or count more than ``max_members``:
a small archive that inflates to gigabytes stops at the cap, not at a full disk. The SageMaker
control plane (CreateModel's ModelDataUrl) and multi-model replicas (an ``s3://`` prefix of
archives) both extract through here.
"""

from __future__ import annotations

import dataclasses
import shutil
import tarfile
from pathlib import Path

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_DISK_MARGIN_BYTES = 512 * 1024 * 1024  # an extraction never fills the disk to its last half gigabyte


class ArchiveRefused(ValueError):
    """The archive cannot be extracted safely; the message says why and what to pack instead."""


@dataclasses.dataclass(frozen=True)
class ArchiveLimits:
    """How large a model archive may become once extracted (settings ``model_archive_max_*``)."""

    max_bytes: int = 20 * 1024**3
    max_members: int = 100_000


def extract(archive: Path, target: Path, limits: ArchiveLimits | None = None) -> None:
    """Extract a (gzipped) tar into ``target``, refusing any member that would land outside it or overflow the caps.

    Members are checked one at a time as the stream is read, before each is written; what was
    written before a refusal is left for the caller to remove with ``target``.
    """
    limits = limits or ArchiveLimits()
    budget = min(limits.max_bytes, max(0, shutil.disk_usage(target).free - _DISK_MARGIN_BYTES))
    total = count = 0
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                _check_member(member)
                count += 1
                total += max(0, member.size)
                if count > limits.max_members:
                    raise ArchiveRefused(f"The model archive has more than {limits.max_members} members; refusing to extract it.")
                if total > budget:
                    raise ArchiveRefused(
                        f"The model archive would extract to more than {_gib(budget)} (at member {member.name!r}); "
                        f"the limit is {_gib(limits.max_bytes)} and the free disk {_gib(shutil.disk_usage(target).free)}."
                    )
                tar.extract(member, target, filter="data")
    except tarfile.TarError as exc:  # the data filter's refusals (FilterError) are TarErrors too
        raise ArchiveRefused(f"The model archive {archive.name} cannot be read: {exc}") from None


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or ".." in parts or not (member.isfile() or member.isdir()) or member.issparse():
        raise ArchiveRefused(
            f"The model archive has an unsafe member {name!r} (absolute path, '..', link, device or fifo); "
            "pack only regular files and folders."
        )


def _gib(size: int) -> str:
    return f"{size / 1024**3:.1f} GiB"


def model_root(folder: Path) -> Path:
    """The folder itself, or its single subfolder when the archive wrapped everything in one."""
    entries = [entry for entry in folder.iterdir() if not entry.name.startswith(".")]
    if not (folder / "config.json").exists() and len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return folder
