"""The async dispatcher: takes queued inferences from the store and runs them on the endpoint's replicas.

One loop per server. Each pass (on a kick from a new inference, or every
``async_poll_interval_s``) expires queued rows past their TTL, publishes the backlog on each
endpoint's runtime (the autoscaler counts it as demand, so queued work starts replicas of a
scaled-to-zero endpoint), and claims work for each endpoint up to ``replicas x slots`` at once.
An inference runs through the real invocation path: ``Controller.acquire`` (which holds through
a cold start) -> one frame whose body the replica reads from a local file -> release. Results
and failures are written through fsspec; webhooks are fired without waiting.

At-least-once: a claim counts an attempt; a replica that dies, a cold start that fails, or a
result that cannot be written puts the inference back in the queue until ``max_attempts``; rows a
dead server left ``running`` are queued again at start. The model's own errors and timeouts are
final (running them again would fail the same way).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from typing import Any

from hubserve.asyncinf import payloads
from hubserve.asyncinf.notify import Notifier
from hubserve.control.controller import Controller
from hubserve.control.runtime import EndpointRuntime
from hubserve.errors import EndpointNotFound, HubserveError, ModelNotReady, ReplicaCrashed, Throttled
from hubserve.settings import Settings
from hubserve.spec import EndpointState
from hubserve.storage import Location, Storage
from hubserve.store.inferences import EXPIRED, FAILED, QUEUED, RUNNING, SUCCEEDED, InferenceRecord, InferenceStore

log = logging.getLogger("hubserve.async")

_WAITING_STATES = (EndpointState.PAUSED, EndpointState.FAILED, EndpointState.DELETING)
_RETRY_BACKOFF_S = 1.0


class _Retry(Exception):
    """An attempt failed for a reason another attempt may not meet (replica death, cold start, storage)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class Dispatcher:
    """Runs the queue of every endpoint; `kick` after queueing work so it starts at once."""

    def __init__(
        self, store: InferenceStore, controller: Controller, storage: Storage, settings: Settings, notifier: Notifier
    ) -> None:
        self._store = store
        self._controller = controller
        self._storage = storage
        self._settings = settings
        self._notifier = notifier
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._active: dict[str, int] = {}
        self._backoff_until: dict[str, float] = {}
        self._published: set[str] = set()

    async def start(self) -> None:
        await self._recover()
        self._loop_task = asyncio.get_running_loop().create_task(self._forever())

    async def stop(self) -> None:
        """Stop dispatching; inferences cut short go back to the queue without using up an attempt."""
        tasks = [*self._tasks.values(), *([self._loop_task] if self._loop_task else [])]
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

    async def _tick(self) -> None:
        for row in self._store.expired():
            message = (
                f"still queued at {row.expires_at.isoformat()}, the end of its time to live "
                "(X-Amzn-SageMaker-RequestTTLSeconds); it was never run"
            )
            await self._fail(row, "RequestExpired", message, row.attempts, status=EXPIRED, from_status=QUEUED)
        counts = self._store.counts()
        self._publish(counts)
        now = time.monotonic()
        for endpoint, count in counts.items():
            if count[QUEUED] == 0 or now < self._backoff_until.get(endpoint, 0.0):
                continue
            runtime = self._controller.runtime(endpoint)
            if runtime is None:
                await self._fail_orphaned_endpoint(endpoint)
                continue
            if runtime.state in _WAITING_STATES:
                continue  # paused or failed: the work waits (until its TTL) for a resume
            room = self._capacity(runtime) - self._active.get(endpoint, 0)
            if room <= 0:
                continue
            for row in self._store.oldest_queued(endpoint, room):
                if self._store.claim(endpoint, row.id, self.owner):
                    self._start(row)

    def _publish(self, counts: dict[str, dict[str, int]]) -> None:
        """The backlog metric: on each endpoint's runtime, where describe and the autoscaler read it."""
        for endpoint in self._published - set(counts):
            runtime = self._controller.runtime(endpoint)
            if runtime is not None:
                runtime.async_queued = runtime.async_running = 0
        for endpoint, count in counts.items():
            runtime = self._controller.runtime(endpoint)
            if runtime is not None:
                runtime.async_queued, runtime.async_running = count[QUEUED], count["running"]
        self._published = set(counts)

    def _capacity(self, runtime: EndpointRuntime) -> int:
        """Inferences sent to the endpoint at once: ready replicas (at least one, to wake it) x slots."""
        policy = runtime.policy
        per_replica = policy.per_replica if policy is not None else self._settings.serverless_slots_per_replica
        spec = runtime.spec
        if spec is not None and spec.async_inference and spec.async_inference.max_concurrent_invocations_per_replica:
            per_replica = spec.async_inference.max_concurrent_invocations_per_replica
        capacity = max(1, len(runtime.serving)) * per_replica
        if policy is not None and policy.max_concurrency is not None:
            capacity = min(capacity, policy.max_concurrency)
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
            self._store.requeue(row.endpoint, row.id, refund_attempt=True)  # a shutdown is no attempt
            raise
        except _Retry as retry:
            if attempt >= row.max_attempts:
                await self._fail(row, retry.error_type, f"{retry.message} (gave up after {attempt} attempts)", attempt)
            else:
                log.warning("async inference %s/%s attempt %d failed, retrying: %s", row.endpoint, row.id, attempt, retry.message)
                self._store.requeue(row.endpoint, row.id, refund_attempt=False, error_type=retry.error_type, error=retry.message)
                self._backoff_until[row.endpoint] = time.monotonic() + _RETRY_BACKOFF_S
        except Exception as exc:  # a bug must fail this inference, not the dispatcher
            log.exception("async inference %s/%s failed", row.endpoint, row.id)
            await self._fail(row, "InternalFailure", f"internal error: {type(exc).__name__}: {exc}", attempt)

    async def _attempt(self, row: InferenceRecord) -> None:
        attempt = row.attempts + 1
        try:
            body_path = await self._local_input(row)
        except (HubserveError, OSError, ValueError) as exc:
            return await self._fail(row, "InputError", f"the input at {row.input_location} cannot be read: {_reason(exc)}", attempt)
        try:
            lease = await self._controller.acquire(row.endpoint)
        except Throttled:
            self._store.requeue(row.endpoint, row.id, refund_attempt=True)  # realtime traffic has the slots
            self._backoff_until[row.endpoint] = time.monotonic() + _RETRY_BACKOFF_S
            return
        except EndpointNotFound as exc:
            return await self._fail(row, exc.type, exc.message, attempt)
        except ModelNotReady as exc:
            raise _Retry(exc.type, exc.message) from None
        try:
            response = await asyncio.wait_for(lease.channel.call(b"", row.content_type, row.accept, body_path), row.timeout_s)
        except asyncio.TimeoutError:
            message = (
                f"the model did not answer within {row.timeout_s}s (X-Amzn-SageMaker-InvocationTimeoutSeconds); "
                "the replica may still finish the work, but its answer is dropped"
            )
            return await self._fail(row, "InvocationTimeout", message, attempt)
        except ReplicaCrashed as exc:
            raise _Retry(exc.type, exc.message) from None
        except HubserveError as exc:  # e.g. the replica was stopped for its memory: ModelError
            return await self._fail(row, exc.type, exc.message, attempt)
        finally:
            lease.release()
        if not response.ok:
            return await self._fail(row, response.error_type or "ModelError", response.error_message, attempt)
        output = self._storage.resolve(row.output_location)
        try:
            await asyncio.to_thread(_write_bytes, output, response.body)
        except (OSError, ValueError) as exc:
            raise _Retry("OutputWriteError", f"the result could not be written to {output.url}: {_reason(exc)}") from None
        if self._store.finish(row.endpoint, row.id, SUCCEEDED, output_content_type=response.content_type):
            await asyncio.to_thread(self._clean_inputs, row)
            self._notify(row, SUCCEEDED, {"outputLocation": row.output_location})

    async def _local_input(self, row: InferenceRecord) -> str:
        """A local file the replica can read: the stored payload, the user's file, or an S3 download."""
        source = self._storage.resolve(row.input_location)
        if not source.url.startswith("s3://"):
            if not source.exists():
                raise ValueError("the file does not exist (any more)")
            return source.path
        target = payloads.download_location(self._storage, row.endpoint, row.id)
        await asyncio.to_thread(payloads.copy_to_local, source, target)
        return target.path

    # --- outcomes ------------------------------------------------------------------------

    async def _fail(
        self, row: InferenceRecord, error_type: str, message: str, attempt: int, *,
        status: str = FAILED, from_status: str = RUNNING,
    ) -> None:  # fmt: skip
        """Write ``<id>.error.json`` (before the status says so), record the failure, drop our copies
        of the input, call the error webhook."""
        document = {
            "inferenceId": row.id, "endpoint": row.endpoint, "status": status,
            "error": {"type": error_type, "message": message}, "attempts": attempt,
        }  # fmt: skip
        try:
            failure = self._storage.resolve(row.failure_location)
            await asyncio.to_thread(_write_bytes, failure, json.dumps(document, indent=2).encode())
        except (HubserveError, OSError, ValueError) as exc:
            log.warning("could not write the failure of %s/%s to %s: %s", row.endpoint, row.id, row.failure_location, exc)
        if not self._store.finish(row.endpoint, row.id, status, from_status=from_status, error_type=error_type, error=message):
            return  # someone else settled it first
        await asyncio.to_thread(self._clean_inputs, row)
        self._notify(row, status, {"failureLocation": row.failure_location, "error": document["error"]})

    def _notify(self, row: InferenceRecord, status: str, extra: dict[str, Any]) -> None:
        try:
            spec = self._controller.describe(row.endpoint)[0].spec
        except EndpointNotFound:
            return
        notification = spec.async_inference.notification if spec.async_inference else None
        if notification is None:
            return
        url = notification.success_url if status == SUCCEEDED else notification.error_url
        if url:
            self._notifier.send(url, {"inferenceId": row.id, "endpoint": row.endpoint, "status": status, **extra})

    def _clean_inputs(self, row: InferenceRecord) -> None:
        """Inputs hubserve made (inline payloads, S3 downloads) go once the inference is over."""
        try:
            if row.input_owned:
                self._storage.resolve(row.input_location).remove()
            payloads.download_location(self._storage, row.endpoint, row.id).remove()
        except (HubserveError, OSError) as exc:
            log.warning("could not remove the input of %s/%s: %s", row.endpoint, row.id, exc)

    # --- start-up --------------------------------------------------------------------------

    async def _recover(self) -> None:
        """Inferences a dead server left running: queued again (the attempt counts), or failed at the limit."""
        for row in self._store.orphans():
            message = f"the server stopped during attempt {row.attempts} of {row.max_attempts}"
            if row.attempts >= row.max_attempts:
                await self._fail(row, "ServerRestarted", f"{message}; no attempts left", row.attempts)
            else:
                log.warning("async inference %s/%s: %s; queued again", row.endpoint, row.id, message)
                self._store.requeue(row.endpoint, row.id, refund_attempt=False, error_type="ServerRestarted", error=message)

    async def _fail_orphaned_endpoint(self, endpoint: str) -> None:
        """Queued work of an endpoint that was deleted fails with a reason instead of waiting forever."""
        for row in self._store.oldest_queued(endpoint, 1000):
            message = f"endpoint '{endpoint}' was deleted before this inference ran"
            await self._fail(row, "EndpointNotFound", message, row.attempts, from_status=QUEUED)


def _write_bytes(location: Location, data: bytes) -> None:
    with location.open("wb") as file:
        file.write(data)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, HubserveError):
        return exc.message
    return str(exc) or type(exc).__name__
