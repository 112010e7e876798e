"""A multi-model endpoint's models under an ``s3://`` prefix, fetched by the replica on their first call.

As SageMaker's multi-model endpoints: ``TargetModel`` is a key under the prefix, a ``model.tar.gz``
archive (extracted safely by ``models.archives``) or a folder of model files. The copy goes under
the replica's cache folder, one folder per model, and stays there: a later load (after the model
was unloaded for memory) reads the disk, not the object store. A name with no object is a 404.
Replicas never get the server's own credentials: the endpoint's spec gives them theirs (``secrets``
``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``, as a SageMaker endpoint has its execution role).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from hubserve.errors import TargetModelNotFound, ValidationError
from hubserve.models import archives

COMPLETE = ".hubserve-complete"  # written last: a folder without it was cut short and is fetched again


def object_store_fetcher(prefix: str, cache_dir: Path, storage_options: dict[str, dict[str, str]]) -> Callable[[str], Path]:
    """``fetch(name)``: the local folder of model ``name`` under ``prefix``, downloaded on the first call (blocking)."""
    protocol = prefix.split("://", 1)[0]
    base = prefix.rstrip("/")

    def fetch(name: str) -> Path:
        import fsspec  # only multi-model replicas on an object store need it

        target = cache_dir / name
        if (target / COMPLETE).exists():
            return archives.model_root(target)
        fs = fsspec.filesystem(protocol, **storage_options.get(protocol, {}))
        url = f"{base}/{name}"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        try:
            if fs.isfile(url):
                _archive(fs, url, name, target)
            elif fs.isdir(url):
                _folder(fs, url, target)
            else:
                raise TargetModelNotFound(
                    f"Model '{name}' is not under this endpoint's prefix {prefix}: upload {url} (a model.tar.gz or a "
                    "folder of model files), or name one that is there."
                )
        except BaseException as exc:
            shutil.rmtree(target, ignore_errors=True)
            if type(exc).__name__ == "NoCredentialsError":  # replicas never get the server's own credentials
                raise ValidationError(
                    f"Model '{name}' cannot be fetched from {prefix}: the endpoint has no credentials for it. Give the "
                    "endpoint its own: secrets AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in its spec."
                ) from None
            raise
        (target / COMPLETE).touch()
        return archives.model_root(target)

    return fetch


def _archive(fs: object, url: str, name: str, target: Path) -> None:
    if not name.endswith(archives.ARCHIVE_SUFFIXES):
        raise ValidationError(f"'{name}' is an object but not a model archive: name a .tar.gz archive or a folder of model files.")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        local = Path(tmp) / "model.tar.gz"
        fs.get_file(url, str(local))  # type: ignore[attr-defined]
        archives.extract(local, target)


def _folder(fs: object, url: str, target: Path) -> None:
    """Every object under ``url``, each key checked to stay inside ``target``."""
    keys: list[str] = fs.find(url)  # type: ignore[attr-defined]
    base = url.split("://", 1)[-1].rstrip("/")
    for key in keys:
        relative = key.split("://", 1)[-1][len(base):].lstrip("/")
        if not relative or relative.startswith("/") or ".." in relative.split("/"):
            raise ValidationError(f"Object key {key!r} would land outside the model's folder; refusing to fetch it.")
        local = target / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(key, str(local))  # type: ignore[attr-defined]
