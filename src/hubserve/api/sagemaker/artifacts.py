"""A model's ``ModelDataUrl`` as a folder on this machine: as is, extracted, or downloaded.

SageMaker packs models as ``model.tar.gz`` (files at the archive's root, ``code/inference.py``
beside them) or, uncompressed, as an S3 prefix. A local folder (path or ``file://``) is used
where it lies; archives and S3 objects are copied under ``<home>/sagemaker/models/<model>-<id>/``,
a fresh folder per model so a running endpoint never sees its files change. Archives are
extracted by ``models.archives`` (every member checked first, size and member caps), whose
refusals are answered here as SageMaker's ValidationException.
"""

from __future__ import annotations

import posixpath
import shutil
import tempfile
import uuid
from pathlib import Path

from hubserve.api.sagemaker.errors import validation
from hubserve.errors import HubserveError
from hubserve.models import archives
from hubserve.storage import Location, Storage

ARCHIVE_SUFFIXES = archives.ARCHIVE_SUFFIXES
ArchiveLimits = archives.ArchiveLimits
model_root = archives.model_root


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
    """``archives.extract``, its refusals as SageMaker's ValidationException."""
    try:
        archives.extract(archive, target, limits)
    except archives.ArchiveRefused as exc:
        raise validation(str(exc)) from None


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
