"""Where async payloads, results and failures live, and how a payload gets there.

Inline payloads are streamed chunk by chunk into ``<storage_root>/async/<endpoint>/payloads/``
(written through a thread in 1 MiB slices and fsynced before the 202): the server holds at
most one slice, whatever the payload's size. Replicas read the payload themselves, from that
local file or from the user's ``s3://`` object (the invocation carries its URL, never its bytes).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from typing import IO

from hubserve.errors import PayloadTooLarge, ValidationError
from hubserve.storage import Location, Storage

_SLICE_BYTES = 1 << 20


def endpoint_root(storage: Storage, endpoint: str) -> Location:
    """Default home of an endpoint's async files: ``<storage_root>/async/<endpoint>``."""
    return storage.default_root.child("async", endpoint)


def new_payload_location(storage: Storage, endpoint: str, inference_id: str) -> Location:
    """A fresh file for an inline payload (unique: two requests with one id never share a file)."""
    return endpoint_root(storage, endpoint).child("payloads", f"{inference_id}.{secrets.token_hex(4)}.in")


def result_locations(
    storage: Storage, endpoint: str, inference_id: str, prefix: str | None,
    own: list[str] | None = None, others: list[str] | None = None,
) -> tuple[Location, Location]:  # fmt: skip
    """(output, failure): ``<prefix>/<id>.out`` and ``<prefix>/<id>.error.json``.

    No request writes where another endpoint keeps its results: not in another endpoint's folder
    of the server's async area, nor under the output location another endpoint's spec sets
    (``others``) unless this endpoint's spec sets it too (``own``). A result that already exists
    is never overwritten.
    """
    base = storage.resolve(prefix) if prefix else endpoint_root(storage, endpoint)
    mine = [endpoint_root(storage, endpoint), *(storage.resolve(url) for url in own or [])]
    if not any(base.is_within(folder) for folder in mine):
        theirs = [storage.async_area, *(storage.resolve(url) for url in others or [])]
        taken = next((folder for folder in theirs if base.is_within(folder)), None)
        if taken is not None:
            raise ValidationError(
                f"output location {base.url} is not this endpoint's: {taken.url} holds other endpoints' results; "
                f"name a folder under {' or '.join(folder.url for folder in mine)} or one of your own"
            )
    if not base.url.startswith("s3://") and base.fs.exists(base.path) and not base.fs.isdir(base.path):
        raise ValidationError(f"output location {base.url} is a file; give a folder or an s3:// prefix")
    output, failure = base.child(f"{inference_id}.out"), base.child(f"{inference_id}.error.json")
    for target in (output, failure):
        if target.exists():
            raise ValidationError(f"a result already exists at {target.url}; use a new inference id")
    return output, failure


def check_not_another_endpoints(storage: Storage, endpoint: str, location: Location) -> None:
    """Refuse an input inside the server's async area but outside this endpoint's folder (another's results)."""
    if location.is_within(storage.async_area) and not location.is_within(endpoint_root(storage, endpoint)):
        raise ValidationError(f"input location {location.url} belongs to another endpoint; name a payload of your own")


def check_input(storage: Storage, location: str, endpoint: str | None = None) -> Location:
    """A by-reference input: allowed, not another endpoint's, existing, a file; else a 400 that says which."""
    resolved = storage.resolve(location)
    if endpoint is not None:
        check_not_another_endpoints(storage, endpoint, resolved)
    try:
        exists, is_dir = resolved.exists(), resolved.is_dir()
    except (OSError, ValueError) as exc:  # s3fs: bad credentials, unknown bucket
        raise ValidationError(f"input location {resolved.url} cannot be read: {exc}") from None
    if not exists:
        raise ValidationError(f"input location {resolved.url} does not exist; upload the payload there first")
    if is_dir:
        raise ValidationError(f"input location {resolved.url} is a folder; name the payload file itself")
    return resolved


async def write_stream(location: Location, chunks: AsyncIterator[bytes], limit: int, first: bytes = b"") -> int:
    """Stream ``first`` then ``chunks`` into a local file, at most ``limit`` bytes; returns the size.

    Over the limit: PayloadTooLarge, and the partial file is removed; any other failure (the
    client went away) also removes it.
    """
    file = await asyncio.to_thread(location.open, "wb")
    size = 0
    pending: list[bytes] = []
    pending_bytes = 0
    try:
        async for chunk in _aprepend(first, chunks):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"The async payload is larger than {_mb(limit)}; the limit is {_mb(limit)} "
                    "(HUBSERVE_ASYNC_MAX_PAYLOAD_BYTES). Split it, or put it in storage and send its location."
                )
            pending.append(chunk)
            pending_bytes += len(chunk)
            if pending_bytes >= _SLICE_BYTES:
                data, pending, pending_bytes = b"".join(pending), [], 0
                await asyncio.to_thread(file.write, data)
        await asyncio.to_thread(_finish, file, b"".join(pending))
    except BaseException:
        await asyncio.to_thread(_discard, file, location)
        raise
    return size


async def _aprepend(first: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in chunks:
        if chunk:
            yield chunk


def _finish(file: IO[bytes], tail: bytes) -> None:
    if tail:
        file.write(tail)
    file.flush()
    os.fsync(file.fileno())  # accepted work is never lost: on disk before the 202
    file.close()


def _discard(file: IO[bytes], location: Location) -> None:
    try:
        file.close()
    finally:
        location.remove()


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB"
