"""In the server: hubserve's own lines about an endpoint (events, one access line per invocation)."""

from __future__ import annotations

import logging
import logging.handlers
import threading
from pathlib import Path

from hubserve.logs.format import format_line

MAX_BYTES = 5 * 1024 * 1024  # hubserve.log per endpoint; one backup


class EventLog:
    """One rotating ``hubserve.log`` per endpoint under ``logs_dir/<endpoint>/``.

    Writes go through logging's RotatingFileHandler (bounded, one backup); the handlers are
    opened on first use and closed when the endpoint is forgotten.
    """

    def __init__(self, logs_dir: Path, max_bytes: int = MAX_BYTES) -> None:
        self._logs_dir = logs_dir
        self._max_bytes = max_bytes
        self._handlers: dict[str, logging.handlers.RotatingFileHandler] = {}
        self._lock = threading.Lock()

    def _handler(self, endpoint: str) -> logging.handlers.RotatingFileHandler:
        handler = self._handlers.get(endpoint)
        if handler is None:
            folder = self._logs_dir / endpoint
            folder.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(
                folder / "hubserve.log", maxBytes=self._max_bytes, backupCount=1, encoding="utf-8"
            )
            handler.terminator = ""
            self._handlers[endpoint] = handler
        return handler

    def _write(self, endpoint: str, stream: str, text: str) -> None:
        record = logging.makeLogRecord({"msg": format_line(stream, text), "levelno": logging.INFO})
        with self._lock:
            try:
                self._handler(endpoint).emit(record)
            except OSError:
                pass  # a full disk must not fail an invocation

    def event(self, endpoint: str, text: str) -> None:
        """Something hubserve did or saw: scaled, cold start took N ms, replica exited, memory breach."""
        self._write(endpoint, "event", text)

    def access(self, endpoint: str, method: str, path: str, status: int, model_ms: float | None,
               overhead_ms: float, cold_start: bool) -> None:  # fmt: skip
        """One line per invocation, as the Inference Endpoints toolkit prints them."""
        model = "-" if model_ms is None else f"{model_ms:.3f}"
        cold = " cold-start" if cold_start else ""
        self._write(endpoint, "access", f'"{method} {path}" {status} model_ms={model} overhead_ms={overhead_ms:.3f}{cold}')

    def forget(self, endpoint: str) -> None:
        with self._lock:
            handler = self._handlers.pop(endpoint, None)
        if handler is not None:
            handler.close()

    def close(self) -> None:
        for endpoint in list(self._handlers):
            self.forget(endpoint)
