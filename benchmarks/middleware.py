"""What the layers in front of the routers cost one invocation: body limits, authentication, audit.

Each stack wraps the same trivial ASGI app (reads the body, answers 200) and is called in this
process, in one run, one after the other: ``bare`` is the baseline, every other row is printed as
microseconds per request and the difference to it. The invocation is ``POST /endpoints/noop`` with
a 2-byte JSON body and a Content-Length, as the clients send it. Authentication is timed three ways:
no token configured (every request the local admin), the bootstrap token, and a scoped invoke
token (a real TokenStore on an in-memory SQLite store; verification is cached, as on a server).
The endpoint's visibility comes from a stand-in for the controller's live state (a dict look-up,
as the controller's is). The network, uvicorn and the routers are not in these figures: the suite
(benchmarks/suite.py) measures the whole request path.

    .venv/bin/python benchmarks/middleware.py [--requests 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from types import SimpleNamespace
from typing import Any

from hubserve.api.audit import AuditLog
from hubserve.api.auth import Authentication
from hubserve.api.limits import BodyLimits
from hubserve.settings import Settings
from hubserve.store.engine import open_engine
from hubserve.store.tokens import TokenStore

BOOTSTRAP = "bench-bootstrap-token"


async def answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"{}", "more_body": False}


async def send(message: dict[str, Any]) -> None:
    pass


def app_state(tokens: TokenStore) -> SimpleNamespace:
    live = SimpleNamespace(generation=SimpleNamespace(spec=SimpleNamespace(access=None)))
    controller = SimpleNamespace(live=lambda name: live)
    return SimpleNamespace(state=SimpleNamespace(services=SimpleNamespace(controller=controller, tokens=tokens)))


async def per_request_us(app: Any, app_obj: Any, authorization: str | None, requests: int) -> float:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    if authorization:
        headers.append((b"authorization", authorization.encode()))

    def scope() -> dict[str, Any]:
        return {"type": "http", "method": "POST", "path": "/endpoints/noop", "headers": headers,
                "client": ("127.0.0.1", 1), "app": app_obj}  # fmt: skip

    for _ in range(2000):
        await app(scope(), receive, send)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(requests):
            await app(scope(), receive, send)
        best = min(best, (time.perf_counter() - started) / requests * 1e6)
    return best


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    tokens = TokenStore(open_engine("sqlite://"), b"k" * 32)
    _, scoped = tokens.create("bench", ["invoke"])
    app_obj = app_state(tokens)
    open_settings, token_settings = Settings(), Settings(token=BOOTSTRAP)
    rows: list[tuple[str, Any, str | None]] = [
        ("bare app (baseline)", answer, None),
        ("body limits", BodyLimits(answer, settings=open_settings), None),
        ("audit", AuditLog(answer), None),
        ("auth, no token configured", Authentication(answer, settings=open_settings), None),
        ("auth, bootstrap token", Authentication(answer, settings=token_settings), f"Bearer {BOOTSTRAP}"),
        ("auth, scoped invoke token", Authentication(answer, settings=token_settings), f"Bearer {scoped}"),
        ("all three, no token", BodyLimits(Authentication(AuditLog(answer), settings=open_settings), settings=open_settings), None),
        ("all three, scoped token", BodyLimits(Authentication(AuditLog(answer), settings=token_settings), settings=token_settings), f"Bearer {scoped}"),
    ]  # fmt: skip
    print(f"{'stack':28s} {'µs/request':>10s} {'+ baseline':>11s}")
    baseline = None
    for name, app, authorization in rows:
        us = await per_request_us(app, app_obj, authorization, args.requests)
        baseline = us if baseline is None else baseline
        print(f"{name:28s} {us:10.2f} {us - baseline:+11.2f}")


if __name__ == "__main__":
    asyncio.run(main())
