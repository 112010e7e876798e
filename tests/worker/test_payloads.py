"""Async payloads: the replica opens ``body_url`` itself (a path, file:// or s3:// with the launch's options)."""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from s3_server import S3Server

from hubserve.backends.channel import SocketChannel
from hubserve.errors import ValidationError
from hubserve.models.batching import Limits
from hubserve.models.loading import LoadedModel, load_model
from hubserve.types import Invocation
from hubserve.worker.server import ReplicaServer

BODY = {"inputs": "I love this movie"}


@pytest.fixture(scope="module")
def model(tiny_models: dict[str, Path]) -> LoadedModel:
    return load_model(tiny_models["text-classification"], "text-classification")


@asynccontextmanager
async def channel_to(model: LoadedModel, storage_options: dict[str, dict[str, str]] | None = None) -> AsyncIterator[SocketChannel]:
    with tempfile.TemporaryDirectory(prefix="hs-", dir="/tmp") as folder:  # Unix socket paths must stay short
        path = str(Path(folder) / "r.sock")
        replica = ReplicaServer(model, Limits(8, 1024), storage_options)
        server = await asyncio.start_unix_server(replica.serve_connection, path=path)
        channel = await SocketChannel.connect(path, "r1")
        try:
            yield channel
        finally:
            await channel.close()
            server.close()


def answers(model: LoadedModel, *urls: str, storage_options: dict[str, dict[str, str]] | None = None) -> list[Any]:
    async def scenario() -> list[Any]:
        async with channel_to(model, storage_options) as channel:
            calls = [channel.call(Invocation(endpoint="e", body_url=url)) for url in urls]
            replies = await asyncio.gather(*calls, return_exceptions=True)
        return [reply if isinstance(reply, BaseException) else json.loads(reply.body) for reply in replies]

    result: list[Any] = asyncio.run(asyncio.wait_for(scenario(), 30))
    return result


def test_a_path_and_a_file_url_are_read_by_the_replica(model: LoadedModel, tmp_path: Path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps(BODY))
    expected = model.predict(BODY)
    assert answers(model, str(payload), f"file://{payload}") == [expected, expected]


def test_an_unreadable_payload_is_a_validation_error_naming_it(model: LoadedModel, tmp_path: Path) -> None:
    missing = f"file://{tmp_path}/missing.json"
    (error,) = answers(model, missing)
    assert isinstance(error, ValidationError) and missing in error.message


def test_an_s3_payload_is_read_with_the_launch_storage_options(model: LoadedModel, s3_server: S3Server) -> None:
    key = f"payloads/{uuid.uuid4().hex[:8]}.json"
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=key, Body=json.dumps(BODY).encode())
    options = {"s3": {"endpoint_url": s3_server.endpoint_url}}
    (answer,) = answers(model, f"s3://{s3_server.bucket}/{key}", storage_options=options)
    assert answer == model.predict(BODY)
