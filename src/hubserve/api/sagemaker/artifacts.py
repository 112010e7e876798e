"""A model's ``ModelDataUrl`` as a folder on this machine: as is, extracted, or downloaded.

SageMaker packs models as ``model.tar.gz`` (files at the archive's root, ``code/inference.py``
beside them) or, uncompressed, as an S3 prefix. A local folder (path or ``file://``) is used
where it lies; archives and S3 objects are copied under ``<home>/sagemaker/models/<model>-<id>/``,
a fresh folder per model so a running endpoint never sees its files change. Archives are
extracted with tarfile's ``data`` filter and every member checked first: no absolute paths,
no ``..``, no links or devices, so an archive cannot write outside its folder. The archive is
read as a stream, member by member, and refused as soon as its members would add up to more than
``ArchiveLimits.max_bytes`` (or the free disk), or count more than ``max_members``: a small
archive that inflates to gigabytes stops at the cap, not at a full disk.
"""

from __future__ import annotations

import dataclasses
import posixpath
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path

from hubserve.api.sagemaker.errors import validation
from hubserve.errors import HubserveError
from hubserve.storage import Location, Storage

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_DISK_MARGIN_BYTES = 512 * 1024 * 1024  # an extraction never fills the disk to its last half gigabyte


@dataclasses.dataclass(frozen=True)
class ArchiveLimits:
    """How large a model archive may become once extracted (settings ``model_archive_max_*``)."""

    max_bytes: int = 20 * 1024**3
    max_members: int = 100_000


def materialise(
    url: str, model_name: str, cache_root: Path, storage: Storage, limits: ArchiveLimits | None = None
) -> Path:
    """The local model folder for ``url``; blocking (run it in a thread)."""
    limits = limits or ArchiveLimits()
    url = url.strip()
    if url.startswith("s3://"):
        location = _resolve(storage, url)
        target = _fresh_folder(cache_root, model_name)
        try:
            if url.endswith(ARCHIVE_SUFFIXES):
                with tempfile.TemporaryDirectory(dir=cache_root) as tmp:
                    local = Path(tmp) / "model.tar.gz"
                    _copy(location, local)
                    extract(local, target, limits)
            else:
                _download_prefix(location, target)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        return model_root(target)
    if "://" in url and not url.startswith("file://"):
        raise validation(f"ModelDataUrl {url!r}: use a local path, file:// or s3:// URL.")
    path = Path(url.removeprefix("file://")).expanduser()
    if not path.is_absolute():
        raise validation(f"ModelDataUrl {url!r} must be an absolute path, file:// or s3:// URL.")
    if path.is_dir():
        return path.resolve()
    if path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES):
        target = _fresh_folder(cache_root, model_name)
        try:
            extract(path, target, limits)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        return model_root(target)
    raise validation(f"ModelDataUrl {url!r} is neither a model folder nor a model.tar.gz archive.")


def is_cached(folder: Path, cache_root: Path) -> bool:
    """Whether ``folder`` is one of ours (and may be removed with its model)."""
    return cache_root.resolve() in folder.resolve().parents


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
                    raise validation(f"The model archive has more than {limits.max_members} members; refusing to extract it.")
                if total > budget:
                    raise validation(
                        f"The model archive would extract to more than {_gib(budget)} (at member {member.name!r}); "
                        f"the limit is {_gib(limits.max_bytes)} and the free disk {_gib(shutil.disk_usage(target).free)}."
                    )
                tar.extract(member, target, filter="data")
    except tarfile.TarError as exc:  # the data filter's refusals (FilterError) are TarErrors too
        raise validation(f"The model archive {archive.name} cannot be read: {exc}") from None


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or ".." in parts or not (member.isfile() or member.isdir()) or member.issparse():
        raise validation(
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


def _resolve(storage: Storage, url: str) -> Location:
    try:
        return storage.resolve(url)
    except HubserveError as exc:  # StorageLocationError: a bad or disallowed location
        raise validation(f"ModelDataUrl {url!r}: {exc.message}") from None


def _fresh_folder(cache_root: Path, model_name: str) -> Path:
    cache_root.mkdir(parents=True, exist_ok=True)
    target = cache_root / f"{model_name}-{uuid.uuid4().hex[:8]}"
    target.mkdir()
    return target


def _copy(location: Location, local: Path) -> None:
    try:
        with location.open("rb") as source, open(local, "wb") as sink:
            shutil.copyfileobj(source, sink, 1024 * 1024)
    except FileNotFoundError:
        raise validation(f"ModelDataUrl {location.url!r} does not exist.") from None


def _download_prefix(location: Location, target: Path) -> None:
    files = location.files()
    if not files:
        raise validation(f"ModelDataUrl {location.url!r} holds no files.")
    base = location.url.rstrip("/")
    for file in files:
        relative = file.url[len(base) :].lstrip("/") or posixpath.basename(file.url)
        if relative.startswith("/") or ".." in relative.split("/"):
            raise validation(f"S3 key {file.url!r} would land outside the model folder.")
        local = target / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        _copy(file, local)
