"""The async dispatcher: takes queued inferences from the store and runs them on the endpoint's replicas.

One loop per server. Each pass (on a kick from a new inference, or every
``async_poll_interval_s``) expires queued rows past their TTL, publishes the backlog on each
endpoint's runtime (the autoscaler counts it as demand, so queued work starts replicas of a
scaled-to-zero endpoint), and claims work for each endpoint up to ``replicas x slots`` at once.
An inference runs through the gateway like any invocation (kind ``async``: admission, holding
through a cold start, the replica reads the payload from its location itself, timing and
metrics), with the inference's processing timeout as its deadline, counted from its acceptance:
an inference queued past it fails without running ("expired while queued"); one running past it
is cancelled, its replica killed and replaced by the gateway, and it fails saying so. Results and failures are
written through fsspec, whole or not at all (a local file under a temporary name, then renamed: a full disk
leaves no partial result under the name a client reads); webhooks are fired without waiting.

At-least-once: a claim counts an attempt; a replica that dies, a cold start that fails, or a
result that cannot be written puts the inference back in the queue until ``max_attempts``. The
model's own errors and timeouts are final (running them again would fail the same way).

Several servers may share one store: a claim is a lease held by this server (``owner``, one id per
process) and extended by its heartbeat every ``HEARTBEAT_S``; rows left ``running`` under a lease
that lapsed (a server killed or cut off) are taken over and queued again by any server, at start
and on every heartbeat; work under another live server's lease is left alone. Every write after
the claim is guarded by the owner, so a server whose lease lapsed cannot settle work another has
taken since.

Only the holder of an endpoint's lease (control/ownership.py) runs its work: an endpoint without
live state here is skipped in ``_tick``. Another server forwards submissions to the holder
(api/forwarding.py), so the holder accepts them: inline payloads land in the storage of the server
that runs them, and its dispatcher is kicked at once. Status and lists are read from the shared
store by whichever server is asked.
When the lease moves, the new holder claims what is queued and, once the old claims lapse, what
was running; the owner-guarded writes keep each inference settled exactly once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Sequence, Sized
from typing import Any, Protocol

from hubserve.asyncinf.notify import Notifier
from hubserve.errors import (
    EndpointNotFound,
    HubserveError,
    InputUnreadable,
    InvocationTimeout,
    ModelNotReady,
    OutputUnwritable,
    ReplicaCrashed,
    RequestExpired,
    ServerRestarted,
    Throttled,
)
from hubserve.settings import Settings
from hubserve.spec import EndpointSpec, EndpointState
from hubserve.storage import Location, Storage
from hubserve.store.inferences import EXPIRED, FAILED, QUEUED, RUNNING, SUCCEEDED, InferenceRecord, InferenceStore
from hubserve.types import Invocation, Invoker

log = logging.getLogger("hubserve.async")

_WAITING_STATES = (EndpointState.PAUSING, EndpointState.PAUSED, EndpointState.FAILED, EndpointState.DELETING)
_RETRY_BACKOFF_S = 1.0
LEASE_S = 15.0  # a dead server's running work is queued again this long after its last heartbeat
HEARTBEAT_S = 3.0


class _Retry(Exception):
    """An attempt failed for a reason another attempt may not meet (replica death, cold start, storage)."""

    def __init__(self, error: HubserveError) -> None:
        super().__init__(error.message)
        self.error = error


class LiveEndpoint(Protocol):
    """What the queue reads of an endpoint's live state (control's ``EndpointLive``)."""

    @property
    def state(self) -> EndpointState: ...

    @property
    def spec(self) -> EndpointSpec | None: ...

    @property
    def replicas(self) -> Sized: ...

    @property
    def max_concurrency(self) -> int | None: ...

    @property
    def per_replica(self) -> int | None: ...


class Endpoints(Protocol):
    """Control, as the async queue sees it."""

    def live(self, name: str) -> LiveEndpoint | None: ...

    def stored_spec(self, name: str) -> EndpointSpec | None: ...

    def lives(self) -> Sequence[LiveEndpoint]: ...


class Dispatcher:
    """Runs the queue of every endpoint; `kick` after queueing work so it starts at once."""

    def __init__(self, store: InferenceStore, endpoints: Endpoints, invoker: Invoker, storage: Storage,
                 settings: Settings, notifier: Notifier) -> None:  # fmt: skip
        self._store = store
        self._endpoints = endpoints
        self._invoker = invoker
        self._storage = storage
        self._settings = settings
        self._notifier = notifier
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._active: dict[str, int] = {}
        self._backoff_until: dict[str, float] = {}
        self._counts: dict[str, dict[str, int]] = {}

    async def start(self) -> None:
        await self._recover()
        loop = asyncio.get_running_loop()
        self._loop_task = loop.create_task(self._forever())
        self._heartbeat_task = loop.create_task(self._heartbeats())

    async def stop(self) -> None:
        """Stop dispatching; inferences cut short go back to the queue without using up an attempt."""
        loops = [task for task in (self._loop_task, self._heartbeat_task) if task is not None]
        tasks = [*self._tasks.values(), *loops]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def kick(self) -> None:
        self._wake.set()

    # --- the loop ------------------------------------------------------------------------

    async def _forever(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._settings.async_poll_interval_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # the queue must outlive one bad pass (a locked database, a bug)
                log.exception("async dispatch pass failed")

    async def _heartbeats(self) -> None:
        """Keep our claims leased, and queue again the work of servers that stopped renewing theirs."""
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                self._store.heartbeat(self.owner, LEASE_S)
                await self._recover()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database that is briefly away must not end the heartbeat
                log.exception("async lease heartbeat failed")

    async def _tick(self) -> None:
        for row in self._store.expired():
            message = (
                f"still queued at {row.expires_at.isoformat()}, the end of its time to live "
                "(X-Amzn-SageMaker-RequestTTLSeconds); it was never run"
            )
            await self._fail(row, RequestExpired(message), row.attempts, status=EXPIRED, from_status=QUEUED)
        counts = self._counts = self._store.counts()
        now = time.monotonic()
        for endpoint, count in counts.items():
            if count[QUEUED] == 0 or now < self._backoff_until.get(endpoint, 0.0):
                continue
            live = self._endpoints.live(endpoint)
            if live is None:
                if self._endpoints.stored_spec(endpoint) is None:  # deleted; else another server's (shared store)
                    await self._fail_orphaned_endpoint(endpoint)
                continue
            if live.state in _WAITING_STATES:
                continue  # paused or failed: the work waits (until its TTL) for a resume
            room = self._capacity(live) - self._active.get(endpoint, 0)
            if room <= 0:
                continue
            for row in self._store.oldest_queued(endpoint, room):
                if self._store.claim(endpoint, row.id, self.owner, LEASE_S):
                    count[QUEUED] -= 1  # running now: demand must not count it as waiting until the next pass
                    count[RUNNING] += 1
                    self._start(row)

    # --- the backlog: control's Demand (queued work starts replicas) and describe's figures ---

    def demand(self, name: str) -> int:
        """Queued inferences as of the last pass, less those it claimed (cheap: the autoscaler asks often)."""
        count = self._counts.get(name)
        return count[QUEUED] if count is not None else 0

    def last_activity(self, name: str) -> float:
        return 0.0  # queued work is demand, not activity: the gateway records the invocations themselves

    def backlog(self, name: str) -> tuple[int, int]:
        """(queued, running) inferences of the endpoint now, counted in the store when asked: a pass's
        snapshot would still count an inference that has finished since."""
        return self._store.backlog(name)

    def _capacity(self, live: LiveEndpoint) -> int:
        """Inferences sent to the endpoint at once: ready replicas (at least one, to wake it) x slots."""
        per_replica = live.per_replica or self._settings.serverless_slots_per_replica
        spec = live.spec
        if spec is not None and spec.async_inference and spec.async_inference.max_concurrent_invocations_per_replica:
            per_replica = spec.async_inference.max_concurrent_invocations_per_replica
        capacity = max(1, len(live.replicas)) * per_replica
        if live.max_concurrency is not None:
            capacity = min(capacity, live.max_concurrency)
        return capacity

    def _start(self, row: InferenceRecord) -> None:
        self._active[row.endpoint] = self._active.get(row.endpoint, 0) + 1
        task = asyncio.get_running_loop().create_task(self._run(row))
        key = (row.endpoint, row.id)
        self._tasks[key] = task

        def done(_: asyncio.Task[None]) -> None:
            self._tasks.pop(key, None)
            self._active[row.endpoint] -= 1
            self.kick()  # a slot is free

        task.add_done_callback(done)

    # --- one inference ---------------------------------------------------------------------

    async def _run(self, row: InferenceRecord) -> None:
        attempt = row.attempts + 1  # the claim counted this one
        try:
            await self._attempt(row)
        except asyncio.CancelledError:
            self._store.requeue(row.endpoint, row.id, refund_attempt=True, owner=self.owner)  # a shutdown is no attempt
            raise
        except _Retry as retry:
            error = retry.error
            if attempt >= row.max_attempts:
                error.message = f"{error.message} (gave up after {attempt} attempts)"
                await self._fail(row, error, attempt)
            else:
                log.warning(
                    "async inference %s/%s attempt %d failed, retrying: %s",
                    row.endpoint,
                    row.id,
                    attempt,
                    error.message,
                )
                self._store.requeue(
                    row.endpoint,
                    row.id,
                    refund_attempt=False,
                    error_type=error.type,
                    error=error.message,
                    owner=self.owner,
                )
                self._backoff_until[row.endpoint] = time.monotonic() + _RETRY_BACKOFF_S
        except Exception as exc:  # a bug must fail this inference, not the dispatcher
            log.exception("async inference %s/%s failed", row.endpoint, row.id)
            await self._fail(row, HubserveError(f"internal error: {type(exc).__name__}: {exc}"), attempt)

    async def _attempt(self, row: InferenceRecord) -> None:
        attempt = row.attempts + 1
        try:
            body = await self._payload(row)
        except (HubserveError, OSError, ValueError) as exc:
            error = InputUnreadable(f"the input at {row.input_location} cannot be read: {_reason(exc)}")
            return await self._fail(row, error, attempt)
        waited_s = (dt.datetime.now(dt.timezone.utc) - row.created_at).total_seconds()
        if waited_s >= row.timeout_s:
            message = (
                f"expired while queued: it waited {waited_s:.1f} s for a replica, longer than its "
                f"InvocationTimeoutSeconds of {row.timeout_s} s, which counts from its acceptance; it was never run"
            )
            return await self._fail(row, InvocationTimeout(message), attempt)
        invocation = Invocation(
            endpoint=row.endpoint, body=body, content_type=row.content_type, accept=row.accept,
            deadline=time.monotonic() + (row.timeout_s - waited_s), kind="async", path=f"/endpoints/{row.endpoint}/async-invocations",
        )  # fmt: skip
        try:
            result = await self._invoker.invoke(invocation)
        except Throttled:
            # realtime traffic has the slots: no attempt used
            self._store.requeue(row.endpoint, row.id, refund_attempt=True, owner=self.owner)
            self._backoff_until[row.endpoint] = time.monotonic() + _RETRY_BACKOFF_S
            return
        except InvocationTimeout as timeout:
            message = (
                f"the model did not answer within {row.timeout_s} s of its acceptance "
                f"(X-Amzn-SageMaker-InvocationTimeoutSeconds): {timeout.message}"
            )
            return await self._fail(row, InvocationTimeout(message), attempt)
        except (ModelNotReady, ReplicaCrashed) as exc:
            raise _Retry(exc) from None
        except HubserveError as exc:  # the model's own errors, an unknown endpoint, a memory breach: final
            return await self._fail(row, exc, attempt)
        output = self._storage.resolve(row.output_location)
        try:
            await asyncio.to_thread(_write_bytes, output, result.body)
        except (OSError, ValueError) as exc:
            raise _Retry(OutputUnwritable(f"the result could not be written to {output.url}: {_reason(exc)}")) from None
        if self._store.finish(
            row.endpoint, row.id, SUCCEEDED, output_content_type=result.content_type, owner=self.owner
        ):
            await asyncio.to_thread(self._clean_inputs, row)
            self._notify(row, SUCCEEDED, {"outputLocation": row.output_location})

    async def _payload(self, row: InferenceRecord) -> bytes:
        """The payload, read here: the stored payload or the user's file or S3 object.

        Not by the replica: it runs as an unprivileged user without the server's credentials
        (worker/sandbox.py), so it can neither open the server's storage nor sign S3 requests.
        """
        source = self._storage.resolve(row.input_location)
        if not await asyncio.to_thread(source.exists):
            raise ValueError("it does not exist (any more)")
        return await asyncio.to_thread(_read_bytes, source)

    # --- outcomes ------------------------------------------------------------------------

    async def _fail(
        self, row: InferenceRecord, error: HubserveError, attempt: int, *, status: str = FAILED, from_status: str = RUNNING,
    ) -> None:  # fmt: skip
        """Write ``<id>.error.json`` (before the status says so), record the failure, drop our copies
        of the input, call the error webhook."""
        document = {
            "inferenceId": row.id, "endpoint": row.endpoint, "status": status,
            "error": {"type": error.type, "message": error.message}, "attempts": attempt,
        }  # fmt: skip
        try:
            failure = self._storage.resolve(row.failure_location)
            await asyncio.to_thread(_write_bytes, failure, json.dumps(document, indent=2).encode())
        except (HubserveError, OSError, ValueError) as exc:
            log.warning(
                "could not write the failure of %s/%s to %s: %s", row.endpoint, row.id, row.failure_location, exc
            )
        owner = self.owner if from_status == RUNNING else None  # a running row is settled only by its holder
        if not self._store.finish(
            row.endpoint,
            row.id,
            status,
            from_status=from_status,
            error_type=error.type,
            error=error.message,
            owner=owner,
        ):
            return  # someone else settled it first
        await asyncio.to_thread(self._clean_inputs, row)
        self._notify(row, status, {"failureLocation": row.failure_location, "error": document["error"]})

    def _notify(self, row: InferenceRecord, status: str, extra: dict[str, Any]) -> None:
        spec = self._endpoints.stored_spec(row.endpoint)
        if spec is None:
            return
        notification = spec.async_inference.notification if spec.async_inference else None
        if notification is None:
            return
        url = notification.success_url if status == SUCCEEDED else notification.error_url
        if url:
            self._notifier.send(url, {"inferenceId": row.id, "endpoint": row.endpoint, "status": status, **extra})

    def _clean_inputs(self, row: InferenceRecord) -> None:
        """Inputs hubserve made (inline payloads) go once the inference is over."""
        try:
            if row.input_owned:
                self._storage.resolve(row.input_location).remove()
        except (HubserveError, OSError) as exc:
            log.warning("could not remove the input of %s/%s: %s", row.endpoint, row.id, exc)

    # --- start-up --------------------------------------------------------------------------

    async def _recover(self) -> None:
        """Inferences a dead server left running (their lease lapsed): taken over, then queued again
        (the attempt counts) or failed at the limit. Another server may take one first: then it is its."""
        for row in self._store.orphans():
            if not self._store.take_orphan(row, self.owner, LEASE_S):
                continue
            message = f"the server stopped during attempt {row.attempts} of {row.max_attempts}"
            if row.attempts >= row.max_attempts:
                await self._fail(row, ServerRestarted(f"{message}; no attempts left"), row.attempts)
            else:
                log.warning("async inference %s/%s: %s; queued again", row.endpoint, row.id, message)
                restarted = ServerRestarted(message)
                self._store.requeue(
                    row.endpoint,
                    row.id,
                    refund_attempt=False,
                    error_type=restarted.type,
                    error=message,
                    owner=self.owner,
                )

    async def _fail_orphaned_endpoint(self, endpoint: str) -> None:
        """Queued work of an endpoint that was deleted fails with a reason instead of waiting forever."""
        for row in self._store.oldest_queued(endpoint, 1000):
            message = f"endpoint '{endpoint}' was deleted before this inference ran"
            error = EndpointNotFound(endpoint)
            error.message = message
            await self._fail(row, error, row.attempts, from_status=QUEUED)


def _read_bytes(location: Location) -> bytes:
    with location.open("rb") as file:
        return file.read()


def _write_bytes(location: Location, data: bytes) -> None:
    location.write_whole(data)  # a full disk leaves no partial result under the name a client reads


def _reason(exc: BaseException) -> str:
    if isinstance(exc, HubserveError):
        return exc.message
    return str(exc) or type(exc).__name__
