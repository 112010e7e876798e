"""Request bodies bounded in size, whoever reads them.

An ASGI layer outside every other (authentication reads SigV4-signed bodies) that reads nothing
itself. Each request gets the limit of its route class (``limit_for``): invocations
``max_payload_bytes``, async invocations ``async_max_payload_bytes`` (streamed to storage), every
other route (management JSON, the SageMaker control plane, ``/v2``) ``max_request_body_bytes``. A
request that declares a ``Content-Length`` within its limit passes untouched (the HTTP parser holds
the body to that length): the invocation hot path pays a header scan. One that declares more is
refused at its first read, unread, so a request refused by its token (401) is answered first; one
that declares none (chunked) is counted as it is read and cut off past the limit. Each refusal is
answered in the route's own dialect, and the route then sees a disconnect, so nothing is left
half-read. How slowly a body may arrive is the HTTP protocol's deadline (``api.http_protocol``),
which renders its 408 with ``refusal`` in the same dialects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from http import HTTPStatus

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubserve.api.errors import error_response
from hubserve.api.sagemaker.errors import AMZ_JSON
from hubserve.api.sagemaker.invocations import sagemaker_error
from hubserve.errors import HubserveError, PayloadTooLarge
from hubserve.settings import Settings


class RequestTimeout(HubserveError):
    """The client sent its body too slowly (408)."""

    status = 408
    type = "RequestTimeout"


@dataclasses.dataclass(frozen=True)
class RouteClass:
    limit: int
    render: Callable[[HubserveError, Scope], JSONResponse]
    setting: str = "max_request_body_bytes"  # the setting that raises the limit
    advice: str = "send a smaller JSON body"


def _hubserve(error: HubserveError, scope: Scope) -> JSONResponse:
    return error_response(error)


def _hf(error: HubserveError, scope: Scope) -> JSONResponse:
    return error_response(error, hf=True)


def _control_plane(error: HubserveError, scope: Scope) -> JSONResponse:
    code = "RequestEntityTooLarge" if error.status == 413 else "RequestTimeout"
    return JSONResponse(
        {"__type": code, "message": error.message}, status_code=error.status, media_type=AMZ_JSON,
        headers={"x-amzn-ErrorType": code},
    )  # fmt: skip


def _runtime(error: HubserveError, scope: Scope) -> JSONResponse:
    parts = scope["path"].split("/")
    return sagemaker_error(error, parts[2] if len(parts) > 2 else "")


_INVOCATION_TAILS = (
    "invocations", "invocations-response-stream", "generate", "generate_stream", "completions", "embeddings",
)  # fmt: skip


_SPLIT = "split a batch into several requests, or use asynchronous inference for large payloads"
_BY_LOCATION = "put it in storage and send its location (X-Amzn-SageMaker-InputLocation)"


def limit_for(method: str, path: str, settings: Settings) -> RouteClass:
    """The body limit and error dialect of the route class ``path`` belongs to."""
    small = settings.max_request_body_bytes
    if path.startswith("/endpoints/") and method == "POST":
        parts = path.split("/")
        if len(parts) == 3 or parts[-1] in ("invocations", "invocations-response-stream"):
            render = _hubserve if len(parts) == 3 else _runtime
            return RouteClass(settings.max_payload_bytes, render, "max_payload_bytes", _SPLIT)
        if parts[-1] == "async-invocations":
            return RouteClass(settings.async_max_payload_bytes, _runtime, "async_max_payload_bytes", _BY_LOCATION)
        if parts[-1] in _INVOCATION_TAILS:
            return RouteClass(settings.max_payload_bytes, _hubserve, "max_payload_bytes", _SPLIT)
    if path == "/":
        return RouteClass(small, _control_plane)
    if path.startswith("/v2/"):
        return RouteClass(small, _hf)
    return RouteClass(small, _hubserve)


def too_large(route: RouteClass) -> PayloadTooLarge:
    limit = route.limit
    size = f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit} bytes"
    return PayloadTooLarge(
        f"The request body is larger than this route's limit of {size} (HUBSERVE_{route.setting.upper()}); "
        f"{route.advice}."
    )


def too_slow(rate: int) -> RequestTimeout:
    return RequestTimeout(
        f"The request body arrived too slowly (under {rate} bytes/s on average); the request was dropped. Send the "
        "whole body at once."
    )


def refusal(response: JSONResponse) -> bytes:
    """``response`` as the bytes of a whole HTTP/1.1 answer that closes its connection (for the protocol)."""
    status = HTTPStatus(response.status_code)
    head = f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode()
    for name, value in response.raw_headers:
        head += name + b": " + value + b"\r\n"
    return head + b"connection: close\r\n\r\n" + response.body


class BodyLimits:
    """ASGI middleware: per-route-class body size limits (see the module)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self._app = app
        self._settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        route = limit_for(scope["method"], scope["path"], self._settings)
        declared = _content_length(scope)
        if declared is not None and declared <= route.limit:
            await self._app(scope, receive, send)  # the parser stops the body at its declared length
            return
        await _Guarded(self._app, scope, receive, send, route, refuse_first_read=declared is not None).run()


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class _Guarded:
    """One request whose body declared too much (refused at the first read) or nothing (counted as read)."""

    def __init__(
        self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, route: RouteClass, *, refuse_first_read: bool
    ) -> None:
        self._app, self._scope, self._receive, self._send = app, scope, receive, send
        self._route = route
        self._refuse_first_read = refuse_first_read
        self._received = 0
        self._refused = False  # we answered: the route's own answer is dropped
        self._response_started = False

    async def run(self) -> None:
        try:
            await self._app(self._scope, self.receive, self.send)
        except Exception:
            if not self._refused:
                raise  # after a refusal the route sees a disconnect; whatever it raises then was answered

    async def receive(self) -> Message:
        if self._refused:
            return {"type": "http.disconnect"}
        if self._refuse_first_read:
            return await self._refuse(too_large(self._route))
        message = await self._receive()
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._route.limit:
                return await self._refuse(too_large(self._route))
        return message

    async def _refuse(self, error: HubserveError) -> Message:
        self._refused = True
        if not self._response_started:
            response = self._route.render(error, self._scope)
            response.headers["connection"] = "close"
            self._response_started = True
            await response(self._scope, self._receive, self._send)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self._refused:
            return
        if message["type"] == "http.response.start":
            self._response_started = True
        await self._send(message)
