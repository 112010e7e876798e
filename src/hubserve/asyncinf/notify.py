"""Success and error webhooks of async inferences: fire and forget, with retries and backoff.

Each notification is its own task on one shared ``httpx.AsyncClient``, so a slow or dead
receiver never holds the queue; after the last attempt the failure is logged and dropped
(the inference's status in the store is the record of truth).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

log = logging.getLogger("hubserve.async.notify")


class Notifier:
    """POSTs JSON to webhook URLs: ``attempts`` tries, waiting ``backoff_s`` x 2^n between them."""

    def __init__(self, attempts: int = 4, backoff_s: float = 0.5, timeout_s: float = 10.0) -> None:
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._http = httpx.AsyncClient(timeout=timeout_s, headers={"User-Agent": "hubserve-async-notify"})
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, url: str, payload: dict[str, Any]) -> None:
        """Start delivering ``payload`` to ``url`` in the background."""
        task = asyncio.get_running_loop().create_task(self._deliver(url, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, payload: dict[str, Any]) -> None:
        reason = "no attempt was made"
        for attempt in range(self._attempts):
            try:
                response = await self._http.post(url, json=payload)
                if response.status_code < 500 and response.status_code != 429:
                    if response.status_code >= 400:
                        log.warning(
                            "webhook %s refused %s: HTTP %s", url, payload.get("inferenceId"), response.status_code
                        )
                    return
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if attempt + 1 < self._attempts:
                await asyncio.sleep(self._backoff_s * 2**attempt)
        log.warning(
            "webhook %s for %s gave up after %d attempts: %s", url, payload.get("inferenceId"), self._attempts, reason
        )

    async def close(self, grace_s: float = 2.0) -> None:
        """Give notifications in flight a moment, then stop them and close the client."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace_s)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()
