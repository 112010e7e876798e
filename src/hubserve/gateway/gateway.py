"""The one way to invoke a model: sync, streamed, async and batch invocations all come through here.

Layers around one call, in order: admission (authorisation hook, payload limit, concurrency
slot or 429), routing (least-outstanding ready replica; none ready: ask control for capacity and
hold), the channel (``call`` for one answer, ``stream`` for parts; the invocation's deadline,
or else the endpoint's ``invocation_timeout_s``, cancels it and gets its replica replaced), and timing (latency headers, metrics, access line). Each layer is
its own small object (admission.py, routing.py, timing.py); this module runs them in order,
inline, because this is the hot path (no per-request closures or wrappers).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator

from hubserve.errors import ClientClosed, EndpointNotFound, HubserveError, InvocationTimeout
from hubserve.gateway.admission import Admission
from hubserve.gateway.departures import Departures
from hubserve.gateway.routing import Capacity, Holding, Routable, check_target, pick
from hubserve.gateway.timing import Timing
from hubserve.gateway.traffic import Traffic, TrafficBook
from hubserve.types import Channel, Invocation, InvocationResult, Part


class Gateway:
    """Admits, routes, calls and times every invocation."""

    def __init__(self, capacity: Capacity, admission: Admission, holding: Holding, timing: Timing) -> None:
        self._capacity = capacity
        self._admission = admission
        self._holding = holding
        self._timing = timing
        self.traffic = TrafficBook()
        self.departures = Departures()

    async def invoke(self, invocation: Invocation) -> InvocationResult:
        """One answer for ``invocation``; raises a HubserveError (with latency headers) when it fails."""
        live, traffic = self._find(invocation)
        model_ms: float | None = None
        try:
            self._admission.admit(invocation, traffic, live.max_concurrency)
            watched = None if invocation.client_gone is None else self.departures.watch(invocation.client_gone)
            try:
                target = invocation.target_model
                if target or live.multi_model:
                    check_target(live, target)
                channel = pick(live, target)  # routing, inline: the common case costs no extra coroutine
                cold_start = channel is None
                if channel is None:
                    channel = await self._holding.hold(live, traffic, invocation.deadline, target)
                own_deadline = invocation.deadline
                limit_s = None if own_deadline is not None else live.invocation_timeout_s
                if limit_s is not None:  # the endpoint's limit, counted from the hand-over to the replica
                    invocation.deadline = time.monotonic() + limit_s
                sent = time.perf_counter()
                try:
                    reply = await channel.call(invocation)  # the deadline is one timer handle in the channel
                except InvocationTimeout:
                    raise self._timed_out(live.name, invocation, channel, limit_s) from None
                finally:
                    invocation.deadline = own_deadline
                    model_ms = (time.perf_counter() - sent) * 1000.0
            except asyncio.CancelledError:
                if watched is None or not self.departures.unwatch(watched):
                    raise
                if sys.version_info >= (3, 11):  # the sweeper's cancel, not the server's: answer the client's leaving
                    watched.uncancel()
                watched = None
                raise ClientClosed(f"the client left before '{invocation.endpoint}' answered; the work was cancelled") from None
            finally:
                self._admission.release(traffic)
                if watched is not None:
                    self.departures.unwatch(watched)
        except HubserveError as error:
            self._timing.failed(invocation, error, model_ms)
            raise
        overhead_ms = self._timing.answered(invocation, len(reply.body), model_ms, cold_start)
        return InvocationResult(reply.body, reply.content_type, model_ms, overhead_ms, cold_start)

    async def stream(self, invocation: Invocation) -> InvocationStream:
        """Admit and route ``invocation`` and wait for its first part, so errors come before any part is sent."""
        live, traffic = self._find(invocation)
        try:
            self._admission.admit(invocation, traffic, live.max_concurrency)
        except HubserveError as error:
            self._timing.failed(invocation, error, None)
            raise
        sent: float | None = None
        try:
            channel, cold_start = await self._route(live, traffic, invocation)
            own_deadline = invocation.deadline
            limit_s = None if own_deadline is not None else live.invocation_timeout_s
            if limit_s is not None:  # the channel bounds the wait for each part by it
                invocation.deadline = time.monotonic() + limit_s
            sent = time.perf_counter()
            parts = channel.stream(invocation)
            try:
                first = await parts.__anext__()
            except StopAsyncIteration:
                first = Part(b"", final=True)
            except InvocationTimeout:
                await parts.aclose()
                raise self._timed_out(live.name, invocation, channel, limit_s) from None
            except BaseException:
                await parts.aclose()
                raise
            finally:
                invocation.deadline = own_deadline
            first_at = time.perf_counter()
        except HubserveError as error:
            self._admission.release(traffic)
            model_ms = (time.perf_counter() - sent) * 1000.0 if sent is not None else None
            self._timing.failed(invocation, error, model_ms)
            raise
        except BaseException:
            self._admission.release(traffic)
            raise
        stream = InvocationStream(self, invocation, traffic, parts, first, sent, cold_start)
        stream.limit = (live.name, channel, limit_s)
        if not first.final:  # a token (or a custom handler's part): the stream's time to first token
            stream.ttft_ms = (first_at - invocation.received) * 1000.0
            stream._last_at = first_at
        return stream

    def refused(self, invocation: Invocation, error: HubserveError) -> None:
        """Time and record an invocation its route refused before handing it over (a body over the limit)."""
        known = self._capacity.find(invocation.endpoint, invocation.kind == "batch") is not None
        self._timing.failed(invocation, error, None, record=known)

    def _find(self, invocation: Invocation) -> tuple[Routable, Traffic]:
        live = self._capacity.find(invocation.endpoint, invocation.kind == "batch")
        if live is None:
            error = EndpointNotFound(invocation.endpoint)
            self._timing.failed(invocation, error, None, record=False)  # no figures (and no label) for unknown names
            raise error
        return live, self.traffic.of(invocation.endpoint, live)

    async def _route(self, live: Routable, traffic: Traffic, invocation: Invocation) -> tuple[Channel, bool]:
        target = invocation.target_model
        if target or live.multi_model:
            check_target(live, target)
        channel = pick(live, target)
        if channel is not None:
            return channel, False
        return await self._holding.hold(live, traffic, invocation.deadline, target), True

    def _timed_out(self, name: str, invocation: Invocation, channel: Channel, limit_s: int | None) -> InvocationTimeout:
        """The request ran past its limit: its replica is killed and replaced (a handler stuck in C code
        stops no other way), and the client is told which limit it was."""
        if limit_s is not None:
            reason = f"a request exceeded invocation_timeout_s {limit_s} s"
            if invocation.stream:
                reason += " waiting for its stream's next part"
            message = (
                f"The model did not answer within {limit_s} s (invocation_timeout_s of endpoint '{name}'); "
                "the replica running it was killed and is being replaced. Raise invocation_timeout_s if the "
                "model needs longer, or use asynchronous inference."
            )
        else:
            reason = "a request ran past its own deadline"
            message = (
                f"Endpoint '{name}' did not answer before the invocation's deadline; the replica running it "
                "was killed and is being replaced."
            )
        self._capacity.replace_replica(name, invocation.kind == "batch", channel, reason)
        return InvocationTimeout(message)

    def _finish_stream(self, stream: InvocationStream, error: HubserveError | None, bytes_out: int) -> None:
        self._admission.release(stream.traffic)
        model_ms = (time.perf_counter() - stream.sent) * 1000.0
        if stream.ttft_ms is not None:  # tokens made before a failure or a client's leaving count too
            self._timing.streamed(stream.invocation, stream.ttft_ms, stream.gaps_ms)
        if error is None:
            stream.overhead_ms = self._timing.answered(stream.invocation, bytes_out, model_ms, stream.cold_start)
        else:
            self._timing.failed(stream.invocation, error, model_ms)


class InvocationStream:
    """A streamed answer: iterate ``parts()`` to the final part; closing it early cancels the rest.

    Each part before the final one is a token of a generative stream (a custom handler's item
    otherwise): ``ttft_ms`` is from the invocation's receipt to the first, ``gaps_ms`` the time
    between consecutive ones as they arrive from the replica, recorded by timing when the stream ends.
    """

    def __init__(self, gateway: Gateway, invocation: Invocation, traffic: Traffic, parts: AsyncGenerator[Part, None],
                 first: Part, sent: float, cold_start: bool) -> None:  # fmt: skip
        self._gateway = gateway
        self.invocation = invocation
        self.traffic = traffic
        self._parts = parts
        self.first = first
        self.sent = sent
        self.cold_start = cold_start
        self.overhead_ms = 0.0
        self.ttft_ms: float | None = None
        self.gaps_ms: list[float] = []
        self._last_at = 0.0
        # What a part's deadline passing means: (endpoint, channel, invocation_timeout_s or None: its own deadline)
        self.limit: tuple[str, Channel, int | None] | None = None
        self._finished = False
        self._ended = False

    async def parts(self) -> AsyncIterator[Part]:
        """Every part, the first included; the timing layer records the stream when it ends."""
        bytes_out = 0
        error: HubserveError | None = None
        try:
            part = self.first
            while True:
                bytes_out += len(part.body)
                self._ended = part.final  # the replica finished it, whether or not the client reads the last part
                yield part
                if part.final:
                    break
                part = await self._parts.__anext__()
                if not part.final:
                    now = time.perf_counter()
                    self.gaps_ms.append((now - self._last_at) * 1000.0)
                    self._last_at = now
        except StopAsyncIteration:
            self._ended = True
        except InvocationTimeout as failure:  # the wait for a part passed the limit: the replica is replaced
            error = failure if self.limit is None else self._gateway._timed_out(self.limit[0], self.invocation, *self.limit[1:])
            raise error from None
        except HubserveError as failure:
            error = failure
            raise
        finally:
            await self.close(error, bytes_out)

    async def close(self, error: HubserveError | None = None, bytes_out: int = 0) -> None:
        """Stop the stream (a cancel reaches the replica if it was not finished) and record it, once.

        Closed before its final part without an error of its own, it is recorded as the client's leaving.
        """
        if self._finished:
            return
        self._finished = True
        if error is None and not self._ended:
            error = ClientClosed(f"the client closed the stream of '{self.invocation.endpoint}' before its end")
        await self._parts.aclose()
        self._gateway._finish_stream(self, error, bytes_out)

