"""Where payloads, results and datasets live: a local folder confined to allowed roots, or ``s3://``.

Async inference and batch transform read inputs and write outputs through one `Storage`, so a
location string from a user (`/data/in.jsonl`, `file:///data/in.jsonl`, `s3://bucket/prefix`)
means the same everywhere. fsspec does the I/O (s3fs for buckets); this module only decides which
locations are allowed: local paths must resolve inside a root (symlinks and `..` included), so a
request cannot read `/etc/passwd` or write over the server's state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import posixpath
import secrets
from pathlib import Path
from typing import IO, Any

import fsspec

from hubserve.errors import ValidationError


class StorageLocationError(ValidationError):
    """A location that is malformed, of an unsupported scheme, or outside every allowed root (400)."""

    type = "StorageLocationError"


@dataclasses.dataclass(frozen=True)
class Location:
    """One file or prefix: its filesystem, the path in that filesystem, and the URL users see."""

    fs: fsspec.AbstractFileSystem
    path: str
    url: str

    def child(self, *parts: str) -> Location:
        """The location `parts` below this one (each part a plain name, never `..`)."""
        for part in parts:
            if not part or part.startswith("/") or any(seg in ("", ".", "..") for seg in part.split("/")):
                raise StorageLocationError(f"bad path part {part!r}: plain names separated by '/' only")
        path = posixpath.join(self.path, *parts)
        url = posixpath.join(self.url, *parts)
        if _is_local(self.fs):  # the base was resolved inside a root; a link below it must not lead out again
            step = self.path
            for segment in "/".join(parts).split("/"):
                step = posixpath.join(step, segment)
                if os.path.islink(step):
                    raise StorageLocationError(f"location {url!r} goes through a symbolic link; name a plain folder")
        return Location(self.fs, path, url)

    def is_within(self, base: Location) -> bool:
        """Whether this is ``base`` or lies below it (same kind of filesystem, whole path segments)."""
        if self.url.startswith("s3://") != base.url.startswith("s3://"):
            return False
        path, root = self.path.rstrip("/"), base.path.rstrip("/")
        return path == root or path.startswith(root + "/")

    def open(self, mode: str = "rb", **kwargs: Any) -> IO[bytes]:
        """Open for reading or writing; parent folders are created for local writes."""
        if "w" in mode or "a" in mode:
            parent = posixpath.dirname(self.path)
            if parent:
                self.fs.makedirs(parent, exist_ok=True)
        handle: IO[bytes] = self.fs.open(self.path, mode, **kwargs)
        return handle

    def exists(self) -> bool:
        return bool(self.fs.exists(self.path))

    def is_dir(self) -> bool:
        return bool(self.fs.isdir(self.path))

    def size(self) -> int:
        return int(self.fs.size(self.path))

    def files(self) -> list[Location]:
        """Every file at or below this location, sorted by path (a file gives itself)."""
        if not self.fs.isdir(self.path):
            return [self] if self.fs.exists(self.path) else []
        found = sorted(p for p in self.fs.find(self.path) if not self.fs.isdir(p))
        base = self.path.rstrip("/")
        return [Location(self.fs, p, self.url.rstrip("/") + p[len(base) :]) for p in found]

    def remove(self) -> None:
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)

    def staging(self) -> Location:
        """Where to write this file until it is whole: a hidden sibling on a local disk (``put_in_place``
        renames it over this one), so a full disk or a kill mid-write never leaves a partial file under
        the name a client reads; on S3 this location itself (an object appears only once uploaded)."""
        if not _is_local(self.fs):
            return self
        folder, name = posixpath.split(self.path)
        return Location(self.fs, posixpath.join(folder, f".{name}.partial-{secrets.token_hex(4)}"), self.url)

    def put_in_place(self, staged: Location) -> None:
        """Make ``staged`` (from ``staging``) this file, at once."""
        if staged.path != self.path:
            os.replace(staged.path, self.path)

    def write_whole(self, data: bytes) -> None:
        """Write ``data`` whole or not at all (see ``staging``)."""
        staged = self.staging()
        try:
            with staged.open("wb") as file:
                file.write(data)
            self.put_in_place(staged)
        except BaseException:
            if staged.path != self.path:
                with contextlib.suppress(OSError):
                    os.unlink(staged.path)
            raise


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


class Storage:
    """Resolves user-given locations; local ones only inside `roots`, S3 ones at `s3_endpoint_url`."""

    def __init__(self, roots: list[Path], *, s3_endpoint_url: str | None = None) -> None:
        if not roots:
            raise ValueError("Storage needs at least one local root")
        self.roots = [Path(r).expanduser().resolve() for r in roots]
        self.s3_endpoint_url = s3_endpoint_url
        self._local = fsspec.filesystem("file")
        self._s3: fsspec.AbstractFileSystem | None = None

    @property
    def default_root(self) -> Location:
        """The first root: where results go when the user names no place."""
        root = self.roots[0]
        return Location(self._local, str(root), str(root))

    @property
    def async_area(self) -> Location:
        """The server's own async payloads and results (``<first root>/async/<endpoint>``): no batch job
        reads or writes there, and an async request only in its own endpoint's folder."""
        return self.default_root.child("async")

    def check_not_async_area(self, location: Location, what: str) -> None:
        """StorageLocationError when a batch job names the async area, where other endpoints' results are."""
        if location.is_within(self.async_area):
            raise StorageLocationError(
                f"{what} location {location.url!r} is inside {self.async_area.url}, where async inferences keep "
                "their payloads and results; name another folder"
            )

    def resolve(self, location: str) -> Location:
        """Turn a path, `file://` URL or `s3://` URL into a `Location`, or raise StorageLocationError."""
        if not isinstance(location, str) or not location.strip():
            raise StorageLocationError("a location must be a non-empty string: a path, file:// or s3:// URL")
        location = location.strip()
        if location.startswith("s3://"):
            return self._resolve_s3(location)
        if location.startswith("file://"):
            location = location[len("file://") :]
        elif "://" in location:
            scheme = location.split("://", 1)[0]
            raise StorageLocationError(f"unsupported location scheme {scheme!r}: use a local path, file:// or s3://")
        return self._resolve_local(location)

    def _resolve_local(self, raw: str) -> Location:
        path = Path(raw).expanduser()
        if not path.is_absolute():
            raise StorageLocationError(f"local location {raw!r} must be an absolute path")
        resolved = path.resolve()
        if not any(resolved == root or resolved.is_relative_to(root) for root in self.roots):
            allowed = ", ".join(str(r) for r in self.roots)
            raise StorageLocationError(
                f"local location {raw!r} is outside the allowed storage roots ({allowed}); "
                "add its folder with HUBSERVE_STORAGE_ROOTS or use s3://"
            )
        return Location(self._local, str(resolved), str(resolved))

    def _resolve_s3(self, url: str) -> Location:
        rest = url[len("s3://") :]
        bucket = rest.split("/", 1)[0]
        if not bucket:
            raise StorageLocationError(f"S3 location {url!r} names no bucket: use s3://bucket/key")
        if ".." in rest.split("/"):
            raise StorageLocationError(f"S3 location {url!r} may not contain '..'")
        return Location(self.s3_filesystem(), rest.rstrip("/") or bucket, url.rstrip("/"))

    def s3_filesystem(self) -> fsspec.AbstractFileSystem:
        """One s3fs filesystem per Storage (credentials from the usual AWS environment and files)."""
        if self._s3 is None:
            client_kwargs = {"endpoint_url": self.s3_endpoint_url} if self.s3_endpoint_url else {}
            # skip_instance_cache: tests and servers in one process may point at different endpoints.
            self._s3 = fsspec.filesystem("s3", client_kwargs=client_kwargs, skip_instance_cache=True)
        return self._s3
