"""uvicorn's httptools protocol with a deadline on each request's head and body, and a header size cap.

uvicorn bounds the idle time between requests (``timeout_keep_alive``) but neither how long a
request's line and headers may take (a slowloris client sending a byte every few seconds holds a
connection for ever), nor how slowly its body may trickle in, nor how large its head may grow.
Once a request's first byte arrives, its line and headers must be complete within
``header_timeout_s`` (else 408 and the connection closed) and stay under ``max_header_bytes``
(else 431); its body must then average ``min_body_rate_bytes_s`` after ``body_timeout_s`` of grace
(else 408, in the route's own dialect: ``api.limits.refusal``). One timer per request covers both:
armed when the request begins, looked at when it fires (re-armed while the body keeps pace),
cancelled when the request is complete. A request without a body costs what the head's deadline
alone cost, and no body chunk arms anything. Body sizes are the ASGI layer's (``api.limits``).
"""

from __future__ import annotations

import asyncio

from starlette.types import Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hubserve.api.limits import limit_for, refusal, too_slow
from hubserve.settings import Settings


def _refusal(status: int, reason: str, message: str) -> bytes:
    body = f'{{"error": {{"type": "{reason.replace(" ", "")}", "message": "{message}"}}}}'.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


_TIMEOUT = _refusal(408, "Request Timeout", "The request line and headers did not arrive in time.")
_TOO_LARGE = _refusal(431, "Request Header Fields Too Large", "The request line and headers are too large.")


class HeadTooLarge(Exception):
    """Raised inside the parser's callback to stop parsing a head already refused with 431."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses slow heads and bodies (408) and oversized heads (431); see the module."""

    header_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024
    body_timeout_s: float = 10.0
    min_body_rate_bytes_s: int = 16 * 1024
    _settings: Settings  # set by protocol_for

    _timer: asyncio.TimerHandle | None = None
    _header_bytes: int = 0
    _body_started: float | None = None  # loop time the head was complete; None while it is not
    _body_bytes: int = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s)  # a connection that never sends a byte is dropped too

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._body_started = None
        self._body_bytes = 0
        self._arm(self.header_timeout_s)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._body_started = self.loop.time()  # the same timer now bounds the body
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel_timer()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def _arm(self, delay: float) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(delay, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self._body_started is None:
            self._refuse(_TIMEOUT)
            return
        allowed = self._body_started + self.body_timeout_s + self._body_bytes / self.min_body_rate_bytes_s
        if allowed > self.loop.time():
            self._arm(allowed - self.loop.time())  # the body keeps pace: look again when it would not
            return
        self._refuse(self._body_too_slow())

    def _body_too_slow(self) -> bytes:
        """A 408 in the dialect of the route the body was for (built only when a body is refused)."""
        scope: Scope | None = getattr(self.cycle, "scope", None) if self.cycle is not None else None
        if scope is None:
            return _TIMEOUT
        if self.cycle.response_started:
            return b""  # the route answered already (say a 401 before reading): only close the connection
        response = limit_for(scope["method"], scope["path"], self._settings).render(too_slow(self.min_body_rate_bytes_s), scope)
        return refusal(response)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._refuse(_TOO_LARGE)
            raise HeadTooLarge(self._header_bytes)  # stops the parser; uvicorn's answer goes to a closed transport

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _refuse(self, answer: bytes) -> None:
        self._cancel_timer()
        if not self.transport.is_closing():
            if answer:
                self.transport.write(answer)
            self.transport.close()


def protocol_for(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn builds per connection, with this server's limits."""
    return type(
        "HubserveHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout_s": settings.header_timeout_s, "max_header_bytes": settings.max_header_bytes,
            "body_timeout_s": settings.body_timeout_s, "min_body_rate_bytes_s": settings.min_body_rate_bytes_s,
            "_settings": settings,
        },
    )  # fmt: skip
