"""Forwarding: an invocation that reaches a server other than its endpoint's holder is sent to the holder.

Several servers on one store sit behind a load balancer, and each endpoint's replicas run on one of
them, the holder of its lease (control/ownership.py). This ASGI layer sits inside authentication:
a caller is authenticated here first, so an unauthenticated request is refused here and never
forwarded. For a path under ``/endpoints/{name}`` whose endpoint has no live state here, it asks
the store who holds it and where that server said it is reached (store/servers.py); when another
live server does, the request goes there over HTTP: the method, path, query, the caller's own
headers (Authorization and every header SigV4 signs, Host included, so the holder authenticates
the caller itself against the shared store) and the body, streamed. The holder's status, headers
and body come back unchanged and streamed (SSE and event streams pass through as they are made);
a caller that hangs up cancels the forwarded request, which the holder sees as its own hang-up.

Async inferences: a submission is forwarded (the holder stores an inline payload where its own
dispatcher reads it, and runs it); status and list are answered here, from the shared store.

A forwarded request carries ``X-Hubserve-Forwarded-By: <server id>``: a server that receives one
never forwards it again, so a holder that has just lost the endpoint answers 503 (the routes' own
answer) instead of sending it round. A holder that cannot be reached gets a 503 in the route's
dialect naming it, with Retry-After: its lease lapses and a live server takes the endpoint over.

The endpoint held here costs one dictionary look-up (``Controller.live``), as routing did before;
only a miss reads the store, and a holder found is remembered for ``REMEMBER_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
from multidict import CIMultiDict
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubserve.api.auth import rule_for
from hubserve.api.errors import error_response
from hubserve.api.generation.openai import error_json as openai_error_json
from hubserve.api.sagemaker.invocations import sagemaker_error
from hubserve.control.controller import Controller
from hubserve.control.ownership import LEASE_TTL_S, RENEW_S, Holder
from hubserve.errors import ColdStartTimeout
from hubserve.services import Services

log = logging.getLogger("hubserve.forwarding")

FORWARDED_BY = "x-hubserve-forwarded-by"
_FORWARDED_BY = FORWARDED_BY.encode()
RETRY_AFTER_S = int(LEASE_TTL_S + RENEW_S) + 1  # a dead holder's lease lapses, and the next scan takes it
REMEMBER_S = 1.0  # how long a holder found is reused without reading the store again
_PREFIX = "/endpoints/"
# Hop-by-hop headers belong to one connection, not to the request (RFC 9110 7.6.1).
_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"})
_NOT_SENT = _HOP | {b"expect"}  # this server answered the caller's 100-continue already
_NOT_BACK = _HOP | {b"date", b"server"}  # this server's uvicorn writes its own
# The holder bounds the invocation itself; only reaching it is bounded here.
_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10.0, sock_connect=3.0)
# A bare request: none of the client's default headers (User-Agent, Accept...) is added to the caller's.
_NO_DEFAULTS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class HolderUnreachable(ColdStartTimeout):
    """The holder does not answer: 503, SageMaker's ServiceUnavailable, as when no replica is ready."""


class _ClientGone(Exception):
    """The caller hung up while its body was being forwarded."""


class Forwarding:
    """ASGI middleware: invocations of an endpoint another live server holds are relayed to that server."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._client: aiohttp.ClientSession | None = None  # one pooled session, opened at the first forward
        self._known: dict[str, tuple[float, Holder]] = {}  # endpoint -> (until, its holder elsewhere)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(_PREFIX):
            name = scope["path"][len(_PREFIX) :].partition("/")[0]
            services: Services = scope["app"].state.services
            controller = services.controller
            if name and controller.live(name) is None and not _was_forwarded(scope) and not _from_the_store(scope):
                holder = self._holder(controller, name)
                if holder is not None:
                    await self._forward(holder, controller.ownership.holder, scope, receive, send)
                    return
        elif scope["type"] == "lifespan":
            receive = self._closing(receive)
        await self._app(scope, receive, send)

    def _holder(self, controller: Controller, name: str) -> Holder | None:
        """The other server that holds ``name`` and told where it is reached; None: the routes answer here."""
        now = time.monotonic()
        known = self._known.get(name)
        if known is not None and known[0] > now:
            return known[1]
        holder = controller.holder_elsewhere(name)
        if holder is None or holder.url is None:  # ours, nobody's, no such endpoint, or a holder of an older hubserve
            self._known.pop(name, None)
            return None
        self._known[name] = (now + REMEMBER_S, holder)
        return holder

    def _closing(self, receive: Receive) -> Receive:
        """The app's lifespan messages, closing the pooled client when the server shuts down."""

        async def closing() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown" and self._client is not None:
                client, self._client = self._client, None
                await client.close()
            return message

        return closing

    async def _forward(self, holder: Holder, me: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Relay the request to ``holder`` and its answer back; the caller's hang-up cancels both."""
        assert holder.url is not None
        if self._client is None:
            # auto_decompress off: the holder's bytes go back as they are, with their own Content-Encoding
            connector = aiohttp.TCPConnector(limit=0)
            self._client = aiohttp.ClientSession(connector=connector, timeout=_TIMEOUT, auto_decompress=False,
                                                 skip_auto_headers=_NO_DEFAULTS, trust_env=False)  # fmt: skip
        request, body_read = _request(holder.url, me, scope, receive)
        relay = asyncio.ensure_future(self._relay(self._client, request, holder, scope, receive, send))
        watch = asyncio.ensure_future(_hang_up(receive, body_read))
        try:
            done, _ = await asyncio.wait({relay, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (relay, watch):
                task.cancel()
            await asyncio.gather(relay, watch, return_exceptions=True)
        if relay in done and not relay.cancelled():
            relay.result()  # a bug raises here, as it would in a route

    async def _relay(self, client: aiohttp.ClientSession, request: _Request, holder: Holder, scope: Scope,
                     receive: Receive, send: Send) -> None:  # fmt: skip
        name = scope["path"][len(_PREFIX) :].partition("/")[0]
        try:
            response = await client.request(request.method, request.url, headers=request.headers, data=request.body,
                                            allow_redirects=False, compress=None)  # fmt: skip
        except _ClientGone:
            return
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
            if request.gone.is_set():  # the caller hung up while its body was being sent: nobody to answer
                return
            self._known.pop(name, None)
            log.warning("forwarding %s %s to server %s at %s failed: %r", scope["method"], scope["path"],
                        holder.server, holder.url, error)  # fmt: skip
            await _unreachable(holder, name, error, scope)(scope, receive, send)
            return
        try:
            headers = [(key.lower(), value) for key, value in response.raw_headers if key.lower() not in _NOT_BACK]
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (aiohttp.ClientError, OSError) as error:  # the holder went away mid-answer: the caller's answer is cut too
            log.warning("the answer of server %s to %s %s broke off: %r", holder.server, scope["method"],
                        scope["path"], error)  # fmt: skip
        finally:
            response.release()


def _from_the_store(scope: Scope) -> bool:
    """Async inferences' status and list: any server answers them from the shared store, holder alive or not."""
    return scope["method"] in ("GET", "HEAD") and "/async-invocations" in scope["path"]


def _was_forwarded(scope: Scope) -> bool:
    return any(key == _FORWARDED_BY for key, _ in scope["headers"])


class _Request:
    """The caller's request, addressed to the holder; ``gone`` is set if the caller hangs up mid-body."""

    __slots__ = ("method", "url", "headers", "body", "gone")

    def __init__(self, method: str, url: str, headers: CIMultiDict[str], body: AsyncIterator[bytes] | None) -> None:
        self.method, self.url, self.headers, self.body = method, url, headers, body
        self.gone = asyncio.Event()


def _request(base_url: str, me: str, scope: Scope, receive: Receive) -> tuple[_Request, asyncio.Event]:
    """The caller's request, addressed to the holder, and the event set once its body has been read.

    The body streams from ``receive`` as the client sends it; no client default header is added.
    """
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    url = base_url + path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    headers: CIMultiDict[str] = CIMultiDict(
        (key.decode("latin-1"), value.decode("latin-1")) for key, value in scope["headers"] if key not in _NOT_SENT
    )
    headers[FORWARDED_BY] = me
    has_body = any(key in (b"content-length", b"transfer-encoding") for key, _ in scope["headers"])
    body_read = asyncio.Event()
    request = _Request(scope["method"], url, headers, None)
    if has_body:
        request.body = _body(receive, body_read, request.gone)
    else:
        body_read.set()
    return request, body_read


async def _body(receive: Receive, body_read: asyncio.Event, gone: asyncio.Event) -> AsyncIterator[bytes]:
    """The caller's body as it arrives; sets ``body_read`` after its last part (``gone`` if it hangs up)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            raise _ClientGone
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            break
    body_read.set()


async def _hang_up(receive: Receive, body_read: asyncio.Event) -> None:
    """Returns when the caller disconnects (listened for once its body has been read)."""
    await body_read.wait()
    while (await receive())["type"] != "http.disconnect":
        pass


def _unreachable(holder: Holder, name: str, error: Exception, scope: Scope) -> Response:
    """503 in the route's dialect, naming the holder and when to retry."""
    reason = type(error).__name__ if not str(error) else f"{type(error).__name__}: {error}"
    failure = HolderUnreachable(
        f"Endpoint '{name}' runs on server {holder.server} ({holder.url}), which does not answer ({reason}). "
        f"A live server takes the endpoint over within about {RETRY_AFTER_S} s of its last lease renewal; retry then."
    )
    failure.headers["Retry-After"] = str(RETRY_AFTER_S)
    rule = rule_for(scope["method"], scope["path"])
    dialect = rule.dialect if rule is not None else "hubserve"
    if dialect == "sagemaker":
        return sagemaker_error(failure, name)
    if dialect == "openai":
        headers = {"x-amzn-ErrorType": failure.type, **failure.headers}
        return JSONResponse(openai_error_json(failure), status_code=failure.status, headers=headers)
    return error_response(failure, hf=dialect == "hf")
