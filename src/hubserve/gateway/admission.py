"""Admission, the gateway's first layer: who may invoke, how large, and whether a slot is free.

An invocation is admitted when the authorisation hook lets it through (scopes come with tokens;
the hook is where they will be checked), its body is within the payload limit, and the endpoint
has a free concurrency slot (serverless ``max_concurrency``); past that it gets a 429
ThrottlingException with Retry-After. The slot is the ``Traffic.in_flight`` count the autoscaler
reads as demand; whoever admits must release.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hubserve.errors import PayloadTooLarge, Throttled
from hubserve.gateway.traffic import Traffic
from hubserve.types import Invocation

Authorize = Callable[[Invocation], None]  # raises Unauthorized (or a later scope error) to refuse


class Admission:
    """Checks an invocation and takes its concurrency slot."""

    def __init__(self, max_payload_bytes: int, authorize: Authorize | None = None) -> None:
        self.max_payload_bytes = max_payload_bytes
        self._authorize = authorize

    def admit(self, invocation: Invocation, traffic: Traffic, max_concurrency: int | None) -> None:
        """Take a slot for ``invocation`` or raise why it cannot run."""
        if self._authorize is not None:
            self._authorize(invocation)
        # Async payloads were bounded when accepted (async_max_payload_bytes); the dispatcher reads them here.
        if invocation.kind != "async" and len(invocation.body) > self.max_payload_bytes:
            raise payload_too_large(self.max_payload_bytes)
        if max_concurrency is not None and traffic.in_flight >= max_concurrency:
            traffic.throttles += 1
            error = Throttled(
                f"Endpoint '{invocation.endpoint}' is at its max_concurrency of {max_concurrency} concurrent "
                "invocations; retry after a moment or raise max_concurrency."
            )
            error.headers["Retry-After"] = "1"
            raise error
        traffic.in_flight += 1
        traffic.last_activity = time.monotonic()

    @staticmethod
    def release(traffic: Traffic) -> None:
        """The invocation is answered (or failed): give its slot back."""
        traffic.in_flight -= 1
        traffic.last_activity = time.monotonic()


def payload_too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than {limit // (1024 * 1024)} MB; send smaller batches, "
        "or use asynchronous inference for large payloads."
    )
