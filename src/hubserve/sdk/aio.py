"""``AsyncClient``: the same calls as ``Client`` for asyncio code, over httpx.AsyncClient.

Routes, bodies, error mapping and answer parsing come from ``sdk.http`` like the sync
client's, so the two cannot drift; only sending and sleeping differ.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from hubserve.sdk import http
from hubserve.sdk.client import endpoint_models_call, targeted
from hubserve.sdk.http import (
    DEFAULT_TIMEOUT,
    Call,
    ClientError,
    Dialect,
    Invocation,
    StreamEvent,
    error_from_response,
)

if TYPE_CHECKING:
    from hubserve.spec import EndpointSpec


class AsyncClient:
    """A hubserve server at ``url`` for asyncio; use ``async with AsyncClient(...) as client``.

    ``url`` and ``token`` default to $HUBSERVE_URL and $HUBSERVE_TOKEN, as ``Client``'s do.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = http.resolve_url(url)
        self.token = http.resolve_token(token)
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=http.default_headers(self.token), timeout=timeout, transport=transport
        )

    # lifecycle -----------------------------------------------------------------
    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient(url={self.url!r})"

    # management ----------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        return await self._call(http.health())  # type: ignore[no-any-return]

    async def create_endpoint(self, spec: Mapping[str, Any] | EndpointSpec) -> dict[str, Any]:
        return await self._call(http.create_endpoint(spec))  # type: ignore[no-any-return]

    async def list_endpoints(self) -> list[dict[str, Any]]:
        return http.items(await self._call(http.list_endpoints()))

    async def get_endpoint(self, name: str) -> dict[str, Any]:
        return await self._call(http.get_endpoint(name))  # type: ignore[no-any-return]

    async def get_metrics(self, name: str, window: str = "1h") -> dict[str, Any]:
        return await self._call(http.get_metrics(name, window))  # type: ignore[no-any-return]

    async def endpoint_models(self, name: str) -> dict[str, Any]:
        """A multi-model endpoint's models and its replicas' memory; see ``Client.endpoint_models``."""
        return await self._call(endpoint_models_call(name))  # type: ignore[no-any-return]

    async def get_logs(
        self, name: str, *, since: str | None = None, tail: int = 200, source: str | None = None
    ) -> dict[str, Any]:
        return await self._call(http.get_logs(name, since, tail, source))  # type: ignore[no-any-return]

    async def prometheus_metrics(self) -> str:
        return await self._call(http.prometheus_metrics())  # type: ignore[no-any-return]

    async def update_endpoint(self, name: str, spec: Mapping[str, Any] | EndpointSpec) -> dict[str, Any]:
        """Replace the whole spec (PUT); fields left out go back to their defaults."""
        return await self._call(http.update_endpoint(name, spec))  # type: ignore[no-any-return]

    async def patch_endpoint(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Change only the given fields (JSON merge patch: a null removes a field)."""
        return await self._call(http.patch_endpoint(name, patch))  # type: ignore[no-any-return]

    async def delete_endpoint(self, name: str) -> dict[str, Any]:
        return await self._call(http.delete_endpoint(name))  # type: ignore[no-any-return]

    async def pause_endpoint(self, name: str) -> dict[str, Any]:
        return await self._call(http.endpoint_action(name, "pause"))  # type: ignore[no-any-return]

    async def resume_endpoint(self, name: str) -> dict[str, Any]:
        return await self._call(http.endpoint_action(name, "resume"))  # type: ignore[no-any-return]

    async def scale_to_zero(self, name: str) -> dict[str, Any]:
        return await self._call(http.endpoint_action(name, "scale-to-zero"))  # type: ignore[no-any-return]

    async def wait_for(
        self,
        name: str,
        states: str | Iterable[str] = ("running",),
        timeout: float = 600.0,
        *,
        interval: float = 0.5,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the endpoint is in one of ``states``; ModelNotReady on ``failed`` or time out."""
        wanted = http.wanted_states(states)
        deadline = time.monotonic() + timeout
        while True:
            description = await self.get_endpoint(name)
            if on_poll is not None:
                on_poll(description)
            remaining = deadline - time.monotonic()
            if http.endpoint_wait_verdict(name, description, wanted, remaining, timeout):
                return description
            await asyncio.sleep(min(interval, remaining))

    # invocation ----------------------------------------------------------------
    async def invoke(
        self,
        name: str,
        data: Any,
        *,
        dialect: Dialect = "hf",
        parameters: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        target_model: str | None = None,
    ) -> Invocation:
        """One request to an endpoint; see ``Client.invoke`` for the two dialects and ``target_model``."""
        call = http.invoke(name, data, dialect=dialect, parameters=parameters, content_type=content_type, accept=accept)
        return await self._call(targeted(call, target_model))  # type: ignore[no-any-return]

    async def stream(
        self, name: str, data: Any, *, parameters: Mapping[str, Any] | None = None, target_model: str | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Invoke ``name`` as a stream and yield its server-sent events as they arrive; see ``Client.stream``."""
        call = targeted(http.stream(name, data, parameters=parameters), target_model)
        try:
            async with self._http.stream(call.method, call.path, **call.kwargs()) as response:
                if response.status_code >= 400:
                    await response.aread()
                refused = http.stream_refused(response, name)
                if refused is not None:
                    raise refused
                parser = http.EventParser()
                async for line in response.aiter_lines():
                    event = parser.feed(line)
                    if event is not None:
                        yield event
                parser.finish()
        except httpx.TransportError as exc:
            raise http.transport_error(exc, call.method, self.url, call.path, self.timeout) from exc

    async def invoke_async(
        self,
        name: str,
        data: Any = None,
        *,
        input_location: str | None = None,
        output_location: str | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        inference_id: str | None = None,
        ttl_s: int | None = None,
        timeout_s: int | None = None,
    ) -> dict[str, Any]:
        """Queue one inference (202); see ``Client.invoke_async``."""
        call = http.invoke_async(
            name, data, input_location=input_location, output_location=output_location, content_type=content_type,
            accept=accept, inference_id=inference_id, ttl_s=ttl_s, timeout_s=timeout_s,
        )  # fmt: skip
        return await self._call(call)  # type: ignore[no-any-return]

    async def get_async_inference(self, name: str, inference_id: str) -> dict[str, Any]:
        return await self._call(http.get_async_inference(name, inference_id))  # type: ignore[no-any-return]

    async def list_async_inferences(
        self, name: str, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        return http.items(await self._call(http.list_async_inferences(name, status, limit)))

    async def wait_async_inference(
        self, name: str, inference_id: str, timeout: float = 3600.0, *, interval: float = 0.5
    ) -> dict[str, Any]:
        """Poll until the inference is succeeded, failed or expired and return it (failures are not raised)."""
        deadline = time.monotonic() + timeout
        while True:
            inference = await self.get_async_inference(name, inference_id)
            if inference.get("status") in http.ASYNC_DONE:
                return inference
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClientError(f"async inference {inference_id} is still {inference.get('status')} after {timeout:g}s")
            await asyncio.sleep(min(interval, remaining))

    # the model registry -----------------------------------------------------------
    async def register_model(self, group: str, source: str, *, revision: str | None = None, task: str | None = None,
                             metrics: dict[str, Any] | None = None, description: str | None = None) -> dict[str, Any]:  # fmt: skip
        """Register the group's next version from a local folder (copied into the registry), a Hub id or a URI."""
        call = http.register_model(group, source, revision=revision, task=task, metrics=metrics, description=description)
        return await self._call(call)  # type: ignore[no-any-return]

    async def list_model_groups(self) -> list[dict[str, Any]]:
        return http.items(await self._call(http.list_model_groups()))

    async def list_model_versions(self, group: str) -> list[dict[str, Any]]:
        return http.items(await self._call(http.list_model_versions(group)))

    async def get_model_version(self, group: str, version: int) -> dict[str, Any]:
        return await self._call(http.model_version(group, version))  # type: ignore[no-any-return]

    async def approve_model_version(self, group: str, version: int) -> dict[str, Any]:
        """Approve a version; endpoints that follow ``registry://group/latest-approved`` roll to it."""
        return await self._call(http.model_version(group, version, "approve"))  # type: ignore[no-any-return]

    async def reject_model_version(self, group: str, version: int) -> dict[str, Any]:
        return await self._call(http.model_version(group, version, "reject"))  # type: ignore[no-any-return]

    async def delete_model_version(self, group: str, version: int) -> dict[str, Any]:
        return await self._call(http.model_version(group, version, "delete"))  # type: ignore[no-any-return]

    # tokens and the audit log (admin scope) ---------------------------------------
    async def create_token(
        self, name: str, scopes: Iterable[str], endpoints: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """A new scoped token: its record plus ``token``, the secret shown this once (keep it)."""
        return await self._call(http.create_token(name, scopes, endpoints))  # type: ignore[no-any-return]

    async def list_tokens(self, include_revoked: bool = False) -> list[dict[str, Any]]:
        return http.items(await self._call(http.list_tokens(include_revoked)))

    async def get_token(self, token_id: str) -> dict[str, Any]:
        return await self._call(http.token(token_id))  # type: ignore[no-any-return]

    async def revoke_token(self, token_id: str) -> dict[str, Any]:
        return await self._call(http.token(token_id, revoke=True))  # type: ignore[no-any-return]

    async def audit(
        self, limit: int = 100, since: str | None = None, endpoint: str | None = None
    ) -> list[dict[str, Any]]:
        return http.items(await self._call(http.audit(limit, since, endpoint)))

    # plumbing ------------------------------------------------------------------
    async def _call(self, call: Call) -> Any:
        try:
            response = await self._http.request(call.method, call.path, **call.kwargs())
        except httpx.TransportError as exc:
            raise http.transport_error(exc, call.method, self.url, call.path, self.timeout) from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return http.read(call, response)
