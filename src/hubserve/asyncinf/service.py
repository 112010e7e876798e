"""Asynchronous inference as the API sees it: accept (store the payload, queue the row), look up, list.

Accepting is durable before it answers: the payload is on disk (fsynced) or checked at the
user's location, and the row is committed, before the 202. The dispatcher does the rest.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from hubserve.asyncinf import payloads
from hubserve.asyncinf.dispatcher import Dispatcher, Endpoints
from hubserve.asyncinf.notify import Notifier
from hubserve.asyncinf.request import H_INPUT_LOCATION, AsyncRequest, parse, reference_fields
from hubserve.errors import EndpointNotFound, InferenceNotFound, PayloadTooLarge, ValidationError
from hubserve.settings import Settings
from hubserve.storage import Storage
from hubserve.store.inferences import InferenceRecord, InferenceStore
from hubserve.types import Invoker

_PEEK_BYTES = 64 * 1024  # a by-reference JSON body is small; anything bigger is a payload


class AsyncInference:
    """The queue's store, the dispatcher that drains it, and the webhooks, for one server."""

    def __init__(self, store: InferenceStore, endpoints: Endpoints, invoker: Invoker, storage: Storage,
                 settings: Settings) -> None:  # fmt: skip
        self.store = store
        self._endpoints = endpoints
        self._storage = storage
        self._settings = settings
        self._notifier = Notifier()
        self.dispatcher = Dispatcher(store, endpoints, invoker, storage, settings, self._notifier)

    async def start(self) -> None:
        await self.dispatcher.start()

    async def stop(self) -> None:
        await self.dispatcher.stop()
        await self._notifier.close()

    async def submit(
        self, endpoint: str, headers: Mapping[str, str], chunks: AsyncIterator[bytes]
    ) -> tuple[InferenceRecord, bool]:
        """Queue one inference; returns (its record, whether it is new: False for a repeated id)."""
        if self._endpoints.live(endpoint) is None:
            raise EndpointNotFound(endpoint)
        declared = headers.get("content-length")
        limit = self._settings.async_max_payload_bytes
        by_header = headers.get(H_INPUT_LOCATION) is not None
        if not by_header and declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(
                f"The async payload ({int(declared)} bytes) is over the {limit} byte limit "
                "(HUBSERVE_ASYNC_MAX_PAYLOAD_BYTES); put it in storage and send its location."
            )
        stream = chunks.__aiter__()
        first, ended = (b"", True) if by_header else await _peek(stream)
        fields = _reference_body(first, headers) if ended else None
        request = parse(headers, fields)
        if request.client_chose_id:
            existing = self.store.get(endpoint, request.inference_id)
            if existing is not None:
                return existing, False
        own_output = self._endpoint_output(endpoint)
        output, failure = await asyncio.to_thread(
            payloads.result_locations, self._storage, endpoint, request.inference_id,
            request.output_location or own_output, [own_output] if own_output else [], self._others_outputs(endpoint),
        )  # fmt: skip
        if request.input_location is not None:
            source = await asyncio.to_thread(payloads.check_input, self._storage, request.input_location, endpoint)
            input_url, owned = source.url, False
        else:
            if ended and not first:
                raise ValidationError(
                    "The request has no payload: send it as the body, or name it with "
                    "X-Amzn-SageMaker-InputLocation (or an input_location field)."
                )
            target = payloads.new_payload_location(self._storage, endpoint, request.inference_id)
            await payloads.write_stream(target, _rest(stream, ended), limit, first)
            input_url, owned = target.url, True
        record = self.store.insert(_row(endpoint, request, input_url, owned, output.url, failure.url, self._settings))
        if record is None:  # the same id arrived twice at once: the first one wins
            if owned:
                self._storage.resolve(input_url).remove()
            existing = self.store.get(endpoint, request.inference_id)
            assert existing is not None
            return existing, False
        self.dispatcher.kick()
        return record, True

    def get(self, endpoint: str, inference_id: str) -> InferenceRecord:
        record = self.store.get(endpoint, inference_id)
        if record is None:
            if not self._exists(endpoint):
                raise EndpointNotFound(endpoint)
            raise InferenceNotFound(endpoint, inference_id)
        return record

    def list(self, endpoint: str, status: str | None, limit: int) -> list[InferenceRecord]:
        if not self._exists(endpoint):
            raise EndpointNotFound(endpoint)
        return self.store.list(endpoint, status, limit)

    def _exists(self, endpoint: str) -> bool:
        """Live here, or stored: another server of a shared store runs it, and its queue is in the store."""
        return self._endpoints.live(endpoint) is not None or self._endpoints.stored_spec(endpoint) is not None

    def _others_outputs(self, endpoint: str) -> builtins.list[str]:
        """The output locations other endpoints' specs set: where no request of ``endpoint`` may write."""
        return [
            live.spec.async_inference.output_location
            for live in self._endpoints.lives()
            if live.spec is not None and live.spec.name != endpoint
            and live.spec.async_inference is not None and live.spec.async_inference.output_location
        ]  # fmt: skip

    def _endpoint_output(self, endpoint: str) -> str | None:
        spec = self._endpoints.stored_spec(endpoint)
        return spec.async_inference.output_location if spec is not None and spec.async_inference else None


async def _peek(stream: AsyncIterator[bytes]) -> tuple[bytes, bool]:
    """Up to about 64 KiB of the body, and whether that was all of it."""
    seen: list[bytes] = []
    size = 0
    while size <= _PEEK_BYTES:
        try:
            chunk = await stream.__anext__()
        except StopAsyncIteration:
            return b"".join(seen), True
        seen.append(chunk)
        size += len(chunk)
    return b"".join(seen), False


async def _rest(stream: AsyncIterator[bytes], ended: bool) -> AsyncIterator[bytes]:
    if ended:
        return
    async for chunk in stream:
        yield chunk


def _reference_body(body: bytes, headers: Mapping[str, str]) -> dict[str, Any] | None:
    """The fields of a small JSON body that names its input (``{"input_location": ...}``)."""
    if not body or "json" not in headers.get("content-type", "application/json"):
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON (or nested too deeply): the payload itself, the replica judges it
    return reference_fields(data)


def _row(
    endpoint: str, request: AsyncRequest, input_url: str, owned: bool, output_url: str, failure_url: str,
    settings: Settings,
) -> dict[str, Any]:  # fmt: skip
    created = dt.datetime.now(dt.timezone.utc)
    return {
        "endpoint": endpoint,
        "id": request.inference_id,
        "input_location": input_url,
        "input_owned": owned,
        "content_type": request.content_type,
        "accept": request.accept,
        "output_location": output_url,
        "failure_location": failure_url,
        "timeout_s": request.timeout_s,
        "max_attempts": settings.async_max_attempts,
        "created_at": created,
        "expires_at": created + dt.timedelta(seconds=request.ttl_s),
    }
