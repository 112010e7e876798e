"""Raw HTTP/1.1 over a socket: what a hostile client sends that httpx would not (slow, huge, half-sent)."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit


def connect(url: str, timeout: float = 10.0) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=timeout)
    return sock


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def push(sock: socket.socket, total: int, chunk: int = 1024 * 1024) -> int:
    """Send ``total`` bytes of body (one ``chunk`` reused, never held whole); stop when the server stops reading."""
    block = b"x" * chunk
    sent = 0
    try:
        while sent < total:
            sock.sendall(block[: min(chunk, total - sent)])
            sent += min(chunk, total - sent)
    except OSError:  # the server answered and closed, or stopped reading: what we want
        pass
    return sent


def read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, bytes]:
    """(status, raw bytes) of the response; status 0 when the server closed without answering."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            part = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:
            break
        if not part:
            break
        data += part
        if b"\r\n\r\n" in data:
            header, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in header.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                None,
            )
            if length is not None and len(body) >= length:
                break
    if not data.startswith(b"HTTP/1.1 "):
        return 0, data
    return int(data.split(b" ")[1]), data
