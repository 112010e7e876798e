"""uvicorn's httptools protocol with a header deadline and a header size cap.

uvicorn bounds the idle time between requests (``timeout_keep_alive``) but neither how long a
request's line and headers may take (a slowloris client sending a byte every few seconds holds a
connection for ever) nor how large they may grow. Once a request's first byte arrives, its line and
headers must be complete within ``header_timeout_s`` (else 408 and the connection closed) and stay
under ``max_header_bytes`` (else 431). Body limits are the ASGI layer's (``api.limits``).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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
    """HttpToolsProtocol that refuses slow (408) and oversized (431) request heads; see the module."""

    header_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024

    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes: int = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is dropped too

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm()

    def _arm(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._refuse, _TIMEOUT)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._refuse(_TOO_LARGE)
            raise HeadTooLarge(self._header_bytes)  # stops the parser; uvicorn's answer goes to a closed transport

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _refuse(self, answer: bytes) -> None:
        self._cancel_header_timer()
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()


def protocol_for(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn builds per connection, with this server's limits."""
    return type(
        "HubserveHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {"header_timeout_s": settings.header_timeout_s, "max_header_bytes": settings.max_header_bytes},
    )
