"""A fake ``Backend`` whose replicas live in this process and answer from a function (like httpx's MockTransport).

``FakeBackend(answer)`` starts "replicas" that answer each ``call`` with ``answer(invocation)``
(a ``Reply``, or an awaitable of one; raising a HubserveError fails the call as a replica would)
and each ``stream`` with the parts of ``stream(invocation)``. Its ``FakeChannel`` is a real
``types.Channel``: outstanding counts, ``closed``, ``drained``, ``fail_pending``, and a cancel
(the caller cancelled, the deadline passed, a stream closed before its final part) is recorded in
``FakeBackend.cancelled``, so a test can see that it reached the "replica".

``FakeBackend(phases=[...])`` makes each replica report those steps of its start to
``wait_ready``'s ``on_phase``, in order, before it is ready (as a real one reports an export).

Tests drive the replicas' lives from outside: ``crash(replica_id, code)`` makes one exit (its
``wait_exit`` returns, what it holds fails with ReplicaCrashed), ``set_memory`` sets what
``resources`` reports. ``wired`` builds control and the gateway around a fake backend exactly as
``hubserve.compose.running`` does around the local one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from hubserve.backends.base import Replica, ReplicaHealth, ReplicaStartFailed, Resources
from hubserve.control.controller import Controller
from hubserve.control.live import EndpointLive
from hubserve.errors import InvocationTimeout, ReplicaCrashed
from hubserve.gateway import Admission, Gateway, Holding, Timing
from hubserve.gateway.admission import Authorize
from hubserve.logs import EventLog
from hubserve.metrics import Metrics
from hubserve.settings import Settings
from hubserve.spec import DedicatedCompute, EndpointSpec, EndpointState, ModelSpec, ServerlessCompute
from hubserve.store import EndpointStore
from hubserve.types import Channel, Invocation, InvocationResult, Part, Reply
from hubserve.worker.launch import ReplicaLaunch

Answer = Callable[[Invocation], Reply | Awaitable[Reply]]
StreamAnswer = Callable[[Invocation], AsyncIterator[Part]]


def echo(invocation: Invocation) -> Reply:
    return Reply(invocation.body, invocation.content_type)


class FakeChannel:
    """The gateway's side of one fake replica; implements ``hubserve.types.Channel``."""

    def __init__(self, replica_id: str, backend: FakeBackend) -> None:
        self.replica_id = replica_id
        self._backend = backend
        self._closed = False
        self._in_flight: dict[object, Callable[[Exception], None]] = {}  # token -> how to fail it
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def outstanding(self) -> int:
        return len(self._in_flight)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def holding(self) -> frozenset[str]:
        return frozenset()

    async def call(self, invocation: Invocation) -> Reply:
        failure: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

        def fail(error: Exception) -> None:
            if not failure.done():
                failure.set_exception(error)

        self._enter(failure, invocation, fail)
        work = asyncio.ensure_future(self._backend._answer(invocation))
        timeout = None if invocation.deadline is None else max(0.0, invocation.deadline - time.monotonic())
        try:
            done, _ = await asyncio.wait({work, failure}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done:  # the deadline passed: cancelled in the replica, as SocketChannel does
                raise InvocationTimeout("the invocation's deadline passed; it was cancelled in the replica")
        except (asyncio.CancelledError, InvocationTimeout):
            work.cancel()
            self._backend.cancelled.append(invocation)
            raise
        finally:
            self._leave(failure)
        if work.done():
            return work.result()
        work.cancel()
        return failure.result()  # raises what fail_pending failed it with

    async def stream(self, invocation: Invocation) -> AsyncIterator[Part]:
        queue: asyncio.Queue[Part | Exception] = asyncio.Queue()
        self._enter(queue, invocation, queue.put_nowait)
        pump = asyncio.ensure_future(self._backend._pump(invocation, queue))
        ended = False
        try:
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    ended = True
                    raise item
                if item.final:
                    ended = True
                    self._leave(queue)  # no longer outstanding, even if the consumer stops here
                yield item
                if item.final:
                    return
        finally:
            pump.cancel()
            self._leave(queue)
            if not ended:
                self._backend.cancelled.append(invocation)
                self._backend.closed_early.append(invocation)

    def fail_pending(self, error: Exception) -> None:
        self._closed = True
        for fail in list(self._in_flight.values()):
            fail(error)

    async def drained(self) -> None:
        await self._idle.wait()

    async def close(self) -> None:
        if not self._closed:
            self.fail_pending(ReplicaCrashed(f"Replica {self.replica_id} exited while serving this request."))

    def _enter(self, token: object, invocation: Invocation, fail: Callable[[Exception], None]) -> None:
        if self._closed:
            raise ReplicaCrashed(f"Replica {self.replica_id} is gone; retry the request.")
        self._in_flight[token] = fail
        self._idle.clear()
        self._backend.received.append((self.replica_id, invocation))

    def _leave(self, token: object) -> None:
        if self._in_flight.pop(token, None) is not None and not self._in_flight:
            self._idle.set()
        if isinstance(token, asyncio.Future) and token.done() and not token.cancelled():
            token.exception()  # retrieved: no "exception was never retrieved" noise


@dataclasses.dataclass(eq=False)
class FakeReplica:
    replica: Replica
    start_delay_s: float
    fail_start: str | None
    exited: asyncio.Future[int]
    memory_mb: float
    channel: FakeChannel | None = None


class FakeBackend:
    """In-process replicas; every start, ready, stop and exit is recorded in ``log`` in order."""

    def __init__(self, answer: Answer | None = None, *, start_delay_s: float = 0.0, fail_start: str | None = None,
                 stream: StreamAnswer | None = None, memory_mb: float = 100.0,
                 phases: Sequence[str] = ()) -> None:  # fmt: skip
        self.answer = answer or echo
        self.phases = list(phases)  # the steps each replica reports while it starts
        self.stream_answer = stream
        # Read when a replica starts: a test may change them between starts.
        self.start_delay_s = start_delay_s
        self.fail_start = fail_start
        self.memory_mb = memory_mb
        self.replicas: dict[str, FakeReplica] = {}
        self.log: list[tuple[str, str]] = []  # ("started" | "ready" | "failed" | "stopped" | "exited", replica id)
        self.received: list[tuple[str, Invocation]] = []  # (replica id, invocation) as each replica got them
        self.cancelled: list[Invocation] = []  # calls and streams whose cancel reached their replica
        self.closed_early: list[Invocation] = []  # streams closed before their final part
        self.closed = False

    # --- the Backend protocol -----------------------------------------------------------------

    async def start(self, replica_id: str, launch: ReplicaLaunch) -> Replica:
        replica = Replica(id=replica_id, launch=launch, log_location=f"memory://{replica_id}", placement="fake")
        exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.replicas[replica_id] = FakeReplica(replica, self.start_delay_s, self.fail_start, exited, self.memory_mb)
        self.log.append(("started", replica_id))
        return replica

    async def wait_ready(self, replica: Replica, timeout: float, on_phase: Callable[[str], None] | None = None) -> Channel:
        fake = self.replicas[replica.id]
        share = min(fake.start_delay_s, timeout) / (len(self.phases) + 1)  # the steps take the start delay
        for phase in self.phases:
            if fake.exited.done():
                break
            if on_phase is not None:
                on_phase(phase)
            await asyncio.wait({fake.exited}, timeout=share)
        await asyncio.wait({fake.exited}, timeout=share)
        if fake.exited.done():
            self.log.append(("failed", replica.id))
            raise ReplicaStartFailed(f"the replica exited with code {fake.exited.result()} while starting")
        if fake.start_delay_s > timeout:
            await self.stop(replica)
            raise ReplicaStartFailed(f"the replica did not become ready within {timeout:.0f}s")
        if fake.fail_start is not None:
            self._exit(fake, 1)
            self.log.append(("failed", replica.id))
            raise ReplicaStartFailed(fake.fail_start)
        fake.channel = FakeChannel(replica.id, self)
        replica.channel = fake.channel
        self.log.append(("ready", replica.id))
        return fake.channel

    async def wait_exit(self, replica: Replica) -> int:
        return await asyncio.shield(self.replicas[replica.id].exited)

    async def stop(self, replica: Replica, grace_s: float = 5.0) -> None:
        fake = self.replicas[replica.id]
        if fake.channel is not None:
            await fake.channel.close()
        if not fake.exited.done():
            self.log.append(("stopped", replica.id))
            self._exit(fake, -15)

    def health(self, replica: Replica) -> ReplicaHealth:
        fake = self.replicas.get(replica.id)
        if fake is None or fake.exited.done():
            return ReplicaHealth.EXITED
        if fake.channel is None:
            return ReplicaHealth.STARTING
        return ReplicaHealth.EXITED if fake.channel.closed else ReplicaHealth.READY

    def resources(self, replica: Replica) -> Resources | None:
        fake = self.replicas.get(replica.id)
        if fake is None or fake.exited.done():
            return None
        return Resources(memory_mb=fake.memory_mb, cpu_seconds=0.0)

    async def close(self) -> None:
        self.closed = True

    # --- what tests do to replicas ----------------------------------------------------------------

    def crash(self, replica_id: str, code: int = 1) -> None:
        """The replica exits on its own: what it holds fails with ReplicaCrashed, ``wait_exit`` returns ``code``."""
        fake = self.replicas[replica_id]
        if fake.channel is not None:
            fake.channel.fail_pending(ReplicaCrashed(f"Replica {replica_id} exited with code {code}."))
        self.log.append(("exited", replica_id))
        self._exit(fake, code)

    def set_memory(self, replica_id: str, memory_mb: float) -> None:
        self.replicas[replica_id].memory_mb = memory_mb

    @property
    def alive(self) -> list[str]:
        """Replicas started and not exited (starting ones included), in start order."""
        return [rid for rid, fake in self.replicas.items() if not fake.exited.done()]

    def started(self, endpoint: str | None = None) -> list[str]:
        return [
            rid for rid, fake in self.replicas.items() if endpoint is None or fake.replica.launch.endpoint == endpoint
        ]

    def when(self, what: str, replica_id: str) -> int:
        """Position of an entry in ``log`` (to assert the order of starts and stops)."""
        return self.log.index((what, replica_id))

    # --- answering ----------------------------------------------------------------------------------

    async def _answer(self, invocation: Invocation) -> Reply:
        reply = self.answer(invocation)
        if inspect.isawaitable(reply):
            return await reply
        return reply

    async def _pump(self, invocation: Invocation, queue: asyncio.Queue[Part | Exception]) -> None:
        """Run the stream function (or the answer, as one final part) into a stream's queue."""
        try:
            if self.stream_answer is None:
                reply = await self._answer(invocation)
                queue.put_nowait(Part(reply.body, reply.content_type, final=True))
                return
            async for part in self.stream_answer(invocation):
                queue.put_nowait(part)
                if part.final:
                    return
            queue.put_nowait(Part(b"", final=True))
        except Exception as error:  # the model's error ends the stream, as the replica's End frame would
            queue.put_nowait(error)

    @staticmethod
    def _exit(fake: FakeReplica, code: int) -> None:
        if not fake.exited.done():
            fake.exited.set_result(code)


# --- control and the gateway around a fake backend, wired as compose.running wires them -------------


@dataclasses.dataclass
class Wired:
    settings: Settings
    store: EndpointStore
    events: EventLog
    metrics: Metrics
    backend: FakeBackend
    controller: Controller
    gateway: Gateway

    def live(self, name: str) -> EndpointLive:
        live = self.controller.live(name)
        assert live is not None, f"no endpoint {name}"
        return live

    async def deploy(self, spec: EndpointSpec, replicas: int = 1) -> EndpointLive:
        """Create ``spec`` and wait until it runs ``replicas`` ready replicas."""
        self.controller.create(spec, [])
        live = self.live(spec.name)
        await eventually(lambda: live.state is EndpointState.RUNNING and len(live.replicas) == replicas,
                         what=f"{spec.name} running with {replicas} replica(s)")  # fmt: skip
        return live

    async def invoke(self, name: str, body: bytes = b"{}", **fields: Any) -> InvocationResult:
        return await self.gateway.invoke(Invocation(endpoint=name, body=body, **fields))


@contextlib.asynccontextmanager
async def wired(home: Path, backend: FakeBackend | None = None, *, authorize: Authorize | None = None,
                **settings: Any) -> AsyncIterator[Wired]:  # fmt: skip
    """Store, events, metrics, control and the gateway, as ``hubserve.compose.running`` builds them."""
    settings.setdefault("autoscale_interval_s", 0.05)
    settings.setdefault("drain_timeout_s", 2.0)
    config = Settings(home=home, **settings)
    store = EndpointStore(config.store_url)
    events = EventLog(config.home_dir / "logs")
    metrics = Metrics()
    backend = backend or FakeBackend()
    controller = Controller(store, backend, config, events)
    gateway = Gateway(
        controller,
        Admission(config.max_payload_bytes, authorize),
        Holding(controller, events, config.cold_start_timeout_s),
        Timing(metrics, events),
    )
    controller.add_demand(gateway.traffic)
    await controller.start()
    try:
        yield Wired(config, store, events, metrics, backend, controller, gateway)
    finally:
        await controller.stop()
        await backend.close()
        events.close()
        store.close()


async def eventually(check: Callable[[], bool], timeout: float = 3.0, what: str = "the condition") -> None:
    """Poll ``check`` until it holds; fail the test after ``timeout`` seconds."""
    until = time.monotonic() + timeout
    while not check():
        if time.monotonic() > until:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def serverless(name: str, **compute: Any) -> EndpointSpec:
    return EndpointSpec(name=name, model=ModelSpec(source="/models/fake"), compute=ServerlessCompute(**compute))


def dedicated(name: str, **compute: Any) -> EndpointSpec:
    return EndpointSpec(name=name, model=ModelSpec(source="/models/fake"), compute=DedicatedCompute(**compute))


class Gate:
    """An answer that blocks until released: keeps invocations in flight on purpose."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.waiting = 0

    async def __call__(self, invocation: Invocation) -> Reply:
        self.waiting += 1
        try:
            await self.open.wait()
        finally:
            self.waiting -= 1
        return Reply(invocation.body)
