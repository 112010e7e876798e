"""The controller: reconciles each endpoint with its stored spec and scales its replicas.

Every change a user makes is written to the store first and then kicks the endpoint's
reconcile loop, so a restart of the server, which simply starts every loop again, restores
every endpoint. The reconcile loop owns generations (deploy, rolling update, pause, delete);
the autoscaler owns how many replicas of the deployed generation run (scaling.py), and
watches their memory.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from hubserve.backends.base import Backend, ReplicaHandle, ReplicaLaunch, ReplicaStartFailed
from hubserve.backends.channel import ReplicaChannel
from hubserve.control import memory
from hubserve.control.runtime import EndpointRuntime
from hubserve.control.scaling import Stabiliser, policy_for, recommend
from hubserve.errors import ColdStartTimeout, EndpointNotFound, ModelError, ModelNotReady, Throttled
from hubserve.logs import EventLog
from hubserve.models.sources import SourceError, resolve
from hubserve.settings import Settings
from hubserve.spec import EndpointSpec, EndpointState, device_for, vcpus_for
from hubserve.store import EndpointRecord, EndpointStore

log = logging.getLogger("hubserve.controller")

_ACTIVE_STATES = (EndpointState.RUNNING, EndpointState.SCALED_TO_ZERO, EndpointState.UPDATE_FAILED, EndpointState.INITIALIZING)


class Lease:
    """One admitted invocation: the channel to use and whether it waited for a cold start."""

    __slots__ = ("channel", "cold_start", "_runtime")

    def __init__(self, runtime: EndpointRuntime, channel: ReplicaChannel, cold_start: bool) -> None:
        self.channel = channel
        self.cold_start = cold_start
        self._runtime = runtime

    def release(self) -> None:
        self._runtime.in_flight -= 1
        self._runtime.last_activity = time.monotonic()


class Controller:
    """Owns every endpoint's replicas; the gateway leases a replica channel per request."""

    def __init__(self, store: EndpointStore, backend: Backend, settings: Settings) -> None:
        self._store = store
        self._backend = backend
        self._settings = settings
        self._runtimes: dict[str, EndpointRuntime] = {}
        self._replica_ids = itertools.count(1)
        self._background: set[asyncio.Task[Any]] = set()
        self._machine_cores = os.cpu_count() or 1
        self._machine_mb = memory.machine_memory_mb()
        self.events = EventLog(settings.home_dir / "logs")  # per endpoint: what hubserve did, and access lines
        self._autoscaler: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Bring back every endpoint the store holds (desired state survives restarts)."""
        for record in self._store.list():
            self._ensure_runtime(record)
        self._autoscaler = asyncio.get_running_loop().create_task(self._autoscale_forever())

    async def stop(self) -> None:
        """Stop every replica; the store keeps the desired state for the next start."""
        tasks = [*(rt.loop_task for rt in self._runtimes.values() if rt.loop_task), *self._background]
        if self._autoscaler is not None:
            tasks.append(self._autoscaler)
        for task in tasks:
            task.cancel()  # supervisors would otherwise wait for replicas that we stop below
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(
            *(self._backend.stop(handle, grace_s=3.0) for rt in self._runtimes.values() for handle in rt.serving),
            return_exceptions=True,
        )
        await self._backend.close()
        self.events.close()

    # --- user operations (the store is written first) ------------------------------------

    def describe(self, name: str) -> tuple[EndpointRecord, EndpointRuntime]:
        record = self._store.get(name)
        runtime = self._runtimes.get(name)
        if record is None or runtime is None:
            raise EndpointNotFound(name)
        return record, runtime

    def runtime(self, name: str) -> EndpointRuntime | None:
        """One endpoint's in-memory state without a store read (the async dispatcher polls it)."""
        return self._runtimes.get(name)

    def runtimes(self) -> list[EndpointRuntime]:
        """Every endpoint's in-memory state, without a store read (the metrics sampler)."""
        return list(self._runtimes.values())

    @property
    def machine_mb(self) -> int:
        return self._machine_mb

    def list(self) -> list[tuple[EndpointRecord, EndpointRuntime]]:
        return [(record, self._runtimes[record.name]) for record in self._store.list() if record.name in self._runtimes]

    def create(self, spec: EndpointSpec, notes: list[str]) -> EndpointRecord:
        record = self._store.insert(spec, notes)  # KeyError when the name is taken
        self._ensure_runtime(record)
        return record

    def update(self, spec: EndpointSpec, notes: list[str]) -> EndpointRecord:
        _, runtime = self.describe(spec.name)
        self._store.update(spec.name, spec=spec, notes=notes)
        runtime.kick()
        return self.describe(spec.name)[0]

    def pause(self, name: str) -> EndpointRecord:
        _, runtime = self.describe(name)
        self._store.update(name, desired="paused")
        runtime.kick()
        return self.describe(name)[0]

    def resume(self, name: str) -> EndpointRecord:
        record, runtime = self.describe(name)
        self._store.update(name, desired="running")
        runtime.failed_spec = None  # resume is also how a user retries a failed endpoint
        if record.state is EndpointState.FAILED and not runtime.serving:
            runtime.spec = runtime.spec_json = runtime.policy = None  # deploy the spec again from scratch
        if record.state in (EndpointState.PAUSED, EndpointState.FAILED):
            self._set_state(runtime, EndpointState.PENDING, None)
        runtime.kick()
        return self.describe(name)[0]

    def delete(self, name: str) -> EndpointRecord:
        _, runtime = self.describe(name)
        self._set_state(runtime, EndpointState.DELETING, None)
        runtime.kick()
        runtime.notify_waiters()
        return self.describe(name)[0]

    async def scale_to_zero(self, name: str) -> EndpointRecord:
        """Stop every replica now; the next invocation starts one (a cold start)."""
        record, runtime = self.describe(name)
        if not runtime.deployed or runtime.state not in _ACTIVE_STATES:
            raise ModelNotReady(f"Endpoint '{name}' is {runtime.state.value}; only a deployed endpoint can scale to zero.")
        runtime.forced_zero = True  # until the next invocation, whatever the minimum says
        if runtime.stabiliser is not None:
            runtime.stabiliser.reset()
        runtime.desired = 0
        await self._retire_all(runtime, keep_generation=True)
        self._set_state(runtime, EndpointState.SCALED_TO_ZERO, None)
        return self.describe(name)[0]

    # --- the gateway's view ----------------------------------------------------------------

    async def acquire(self, name: str) -> Lease:
        """Admit one invocation and lease it a ready replica, holding it through a cold start."""
        runtime = self._runtimes.get(name)
        if runtime is None:
            raise EndpointNotFound(name)
        policy = runtime.policy
        if policy is not None and policy.max_concurrency is not None and runtime.in_flight >= policy.max_concurrency:
            runtime.throttles += 1
            error = Throttled(
                f"Endpoint '{name}' is at its max_concurrency of {policy.max_concurrency} concurrent invocations; "
                "retry after a moment or raise max_concurrency."
            )
            error.headers["Retry-After"] = "1"
            raise error
        runtime.in_flight += 1
        runtime.last_activity = time.monotonic()
        runtime.forced_zero = False
        try:
            channel, cold = self._pick(runtime), False
            if channel is None:
                channel, cold = await self._hold(runtime), True
        except BaseException:
            runtime.in_flight -= 1
            raise
        return Lease(runtime, channel, cold)

    @staticmethod
    def _pick(runtime: EndpointRuntime) -> ReplicaChannel | None:
        best: ReplicaChannel | None = None
        for handle in runtime.serving:
            channel = handle.channel
            if channel is not None and not channel.closed and (best is None or channel.outstanding < best.outstanding):
                best = channel
        return best

    async def _hold(self, runtime: EndpointRuntime) -> ReplicaChannel:
        """Wait for a ready replica, asking the autoscaler for one now; never 503 while one starts."""
        self._raise_if_unservable(runtime)
        timeout = self._settings.cold_start_timeout_s
        deadline = time.monotonic() + timeout
        runtime.held += 1
        try:
            self._scale(runtime)
            while True:
                wakeup = runtime.wakeup
                channel = self._pick(runtime)
                if channel is not None:
                    runtime.cold_starts += 1
                    waited_ms = (time.monotonic() - deadline + timeout) * 1000.0
                    self.events.event(runtime.name, f"cold start: a request waited {waited_ms:.0f} ms for a replica")
                    return channel
                self._raise_if_unservable(runtime)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    reason = f"a cold start took longer than the {timeout:.0f}s cold-start timeout"
                    runtime.reason = reason
                    raise ColdStartTimeout(
                        f"Endpoint '{runtime.name}': {reason}; the request was not run. Retry, or check the endpoint's logs."
                    )
                try:
                    await asyncio.wait_for(wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    pass
        finally:
            runtime.held -= 1

    @staticmethod
    def _raise_if_unservable(runtime: EndpointRuntime) -> None:
        if runtime.state is EndpointState.PAUSED:
            raise ModelNotReady(
                f"Endpoint '{runtime.name}' is paused; resume it with POST /v1/endpoints/{runtime.name}/resume."
            )
        if runtime.state is EndpointState.FAILED:
            raise ModelNotReady(f"Endpoint '{runtime.name}' failed: {runtime.reason}")
        if runtime.state is EndpointState.DELETING:
            raise ModelNotReady(f"Endpoint '{runtime.name}' is being deleted.")

    # --- reconciliation of generations ---------------------------------------------------

    def _ensure_runtime(self, record: EndpointRecord) -> EndpointRuntime:
        runtime = self._runtimes.get(record.name)
        if runtime is None:
            runtime = EndpointRuntime(name=record.name, state=record.state, reason=record.reason)
            self._runtimes[record.name] = runtime
            runtime.loop_task = asyncio.get_running_loop().create_task(self._reconcile_forever(runtime))
        runtime.kick()
        return runtime

    async def _reconcile_forever(self, runtime: EndpointRuntime) -> None:
        while True:
            await runtime.changed.wait()
            runtime.changed.clear()
            try:
                finished = await self._reconcile(runtime)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug here must not kill the endpoint's loop silently
                log.exception("reconcile of %s failed", runtime.name)
                self._set_state(runtime, EndpointState.FAILED, f"internal error: {exc}")
                finished = False
            if finished:
                return

    async def _reconcile(self, runtime: EndpointRuntime) -> bool:
        """One pass towards the stored spec; returns True when the endpoint is gone."""
        record = self._store.get(runtime.name)
        if record is None or record.state is EndpointState.DELETING:
            await self._retire_all(runtime)
            self._store.delete(runtime.name)
            self._runtimes.pop(runtime.name, None)
            self.events.event(runtime.name, "deleted")
            self.events.forget(runtime.name)
            return True
        if record.desired == "paused":
            await self._retire_all(runtime)
            self._set_state(runtime, EndpointState.PAUSED, None)
            runtime.notify_waiters()
            return False
        spec_json = record.spec.model_dump_json()
        if runtime.spec_json != spec_json and runtime.failed_spec != spec_json:
            await self._roll_out(runtime, record.spec, spec_json)
        return False

    async def _roll_out(self, runtime: EndpointRuntime, spec: EndpointSpec, spec_json: str) -> None:
        """Start one replica of the new spec; only once it is ready does it replace the old ones."""
        updating = bool(runtime.serving)
        self._set_state(runtime, EndpointState.UPDATING if updating else EndpointState.INITIALIZING, None)
        started = time.perf_counter()
        try:
            handle = await self._start_ready_replica(spec)
        except (SourceError, ValueError, ReplicaStartFailed) as exc:
            runtime.failed_spec = spec_json
            if updating:
                self._set_state(runtime, EndpointState.UPDATE_FAILED, f"update failed, still serving the previous spec: {exc}")
            else:
                self._set_state(runtime, EndpointState.FAILED, str(exc))
            runtime.notify_waiters()
            return
        self._record_setup(runtime, handle, started)
        previous, runtime.serving = runtime.serving, []
        runtime.spec, runtime.spec_json, runtime.failed_spec = spec, spec_json, None
        runtime.runtime_info = handle.info.get("runtime")
        runtime.batching_info = handle.info.get("batching")
        runtime.policy = policy_for(spec.compute, self._settings.serverless_slots_per_replica)
        runtime.stabiliser = Stabiliser(self._settings.scale_down_window_s)
        runtime.last_activity = time.monotonic()
        self._add_serving(runtime, handle)
        for old in previous:
            self._spawn(self._retire(old))
        self._set_state(runtime, EndpointState.RUNNING, None)
        runtime.kick()  # the user may have changed something while we were starting

    # --- replicas of batch jobs: the job owns them, no endpoint serves from them ---------------

    async def start_job_replica(self, spec: EndpointSpec) -> ReplicaHandle:
        """Start a ready replica of ``spec`` for a batch job (its name names the logs folder)."""
        return await self._start_ready_replica(spec)

    async def stop_job_replica(self, handle: ReplicaHandle) -> None:
        await self._backend.stop(handle)

    async def _start_ready_replica(self, spec: EndpointSpec) -> ReplicaHandle:
        launch = await self._launch_for(spec)
        handle = await self._backend.start(f"{spec.name}-{next(self._replica_ids)}-{secrets.token_hex(2)}", launch)
        await self._backend.wait_ready(handle, self._settings.replica_start_timeout_s)
        return handle

    async def _launch_for(self, spec: EndpointSpec) -> ReplicaLaunch:
        from hubserve.models.task_inference import infer_task

        model_dir: Path = await asyncio.to_thread(
            resolve, spec.model, allowed_roots=self._settings.model_roots or None, cache_dir=self._settings.hub_cache
        )
        task = spec.model.task or await asyncio.to_thread(infer_task, model_dir)
        return ReplicaLaunch(
            endpoint=spec.name,
            model_dir=model_dir,
            task=task,
            custom_code=spec.custom_code,
            dtype=spec.model.dtype,
            device=device_for(spec.compute),
            threads=vcpus_for(spec.compute, self._machine_cores),
            runtime=spec.model.runtime,
            cache_dir=self._settings.home_dir / "runtimes",
            max_batch_size=spec.batching.max_batch_size,
            max_batch_tokens=spec.batching.max_batch_tokens,
            env=spec.env,
        )

    def _add_serving(self, runtime: EndpointRuntime, handle: ReplicaHandle) -> None:
        runtime.serving.append(handle)
        self._spawn(self._supervise(runtime, handle))
        runtime.notify_waiters()

    async def _supervise(self, runtime: EndpointRuntime, handle: ReplicaHandle) -> None:
        """Notice a serving replica that exits on its own (a crash, a kill); the autoscaler replaces it."""
        code = await self._backend.wait_exit(handle)
        if handle not in runtime.serving:
            return  # retired on purpose
        runtime.serving.remove(handle)
        await self._backend.stop(handle)
        log.warning("replica %s of %s exited with code %s", handle.id, runtime.name, code)
        self.events.event(runtime.name, f"replica {handle.id} exited on its own with code {code}; replacing it")
        if runtime.state is not EndpointState.FAILED:
            runtime.reason = f"replica {handle.id} exited with code {code}; replacing it"
        self._scale(runtime)

    async def _retire(self, handle: ReplicaHandle) -> None:
        """Let a replica finish what it holds, then stop it."""
        if handle.channel is not None:
            try:
                await asyncio.wait_for(handle.channel.drained(), self._settings.drain_timeout_s)
            except asyncio.TimeoutError:
                log.warning("replica %s still busy after %.0fs; stopping it", handle.id, self._settings.drain_timeout_s)
        await self._backend.stop(handle)

    async def _retire_all(self, runtime: EndpointRuntime, keep_generation: bool = False) -> None:
        handles, runtime.serving = runtime.serving, []
        if not keep_generation:
            runtime.spec = runtime.spec_json = runtime.policy = None
        await asyncio.gather(*(self._retire(handle) for handle in handles))

    # --- autoscaling ---------------------------------------------------------------------

    async def _autoscale_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.autoscale_interval_s)
            for runtime in list(self._runtimes.values()):
                try:
                    self._scale(runtime)
                    self._check_memory(runtime)
                except Exception:  # one endpoint's trouble must not stop the others' scaling
                    log.exception("autoscaling %s failed", runtime.name)

    def _scale(self, runtime: EndpointRuntime) -> None:
        """Move the replica count of the deployed generation towards what the policy wants."""
        if runtime.policy is None or runtime.stabiliser is None or runtime.state not in _ACTIVE_STATES:
            return
        now = time.monotonic()
        demand = runtime.in_flight + runtime.async_queued  # queued async work wants replicas too
        wanted = 0 if runtime.forced_zero else recommend(runtime.policy, demand, now - runtime.last_activity)
        desired = runtime.stabiliser.desired(now, wanted)
        if desired != runtime.desired:
            self.events.event(runtime.name, f"scaling from {runtime.desired} to {desired} replicas (demand {demand})")
        runtime.desired = desired
        running = len(runtime.serving)
        missing = runtime.desired - running - runtime.starting
        if missing > 0 and now >= runtime.start_backoff_until:
            if running == 0 and runtime.state is EndpointState.SCALED_TO_ZERO:
                self._set_state(runtime, EndpointState.INITIALIZING, None)
            for _ in range(missing):
                runtime.starting += 1
                self._spawn(self._scale_up(runtime, runtime.spec_json))
        elif runtime.desired < running and runtime.starting == 0:
            idle_first = sorted(runtime.serving, key=lambda h: h.channel.outstanding if h.channel else 0)
            for handle in idle_first[: running - runtime.desired]:
                runtime.serving.remove(handle)
                self._spawn(self._retire(handle))
        if runtime.desired == 0 and not runtime.serving and runtime.starting == 0 and runtime.state is EndpointState.RUNNING:
            self._set_state(runtime, EndpointState.SCALED_TO_ZERO, None)
        elif runtime.serving and runtime.state in (EndpointState.SCALED_TO_ZERO, EndpointState.INITIALIZING):
            self._set_state(runtime, EndpointState.RUNNING, None)

    async def _scale_up(self, runtime: EndpointRuntime, spec_json: str | None) -> None:
        started = time.perf_counter()
        assert runtime.spec is not None
        try:
            handle = await self._start_ready_replica(runtime.spec)
        except (SourceError, ValueError, ReplicaStartFailed) as exc:
            runtime.starting -= 1
            runtime.start_backoff_until = time.monotonic() + 5.0
            if not runtime.serving:
                self._set_state(runtime, EndpointState.FAILED, str(exc))
                runtime.failed_spec = spec_json
                runtime.notify_waiters()
            log.warning("starting a replica of %s failed: %s", runtime.name, exc)
            self.events.event(runtime.name, f"starting a replica failed: {exc}")
            return
        runtime.starting -= 1
        if runtime.spec_json != spec_json or runtime.state in (EndpointState.PAUSED, EndpointState.DELETING):
            await self._backend.stop(handle)  # the generation changed while it started
            return
        self._record_setup(runtime, handle, started)
        self._add_serving(runtime, handle)
        self._scale(runtime)

    def _record_setup(self, runtime: EndpointRuntime, handle: ReplicaHandle, started: float) -> None:
        """ModelSetupTime: from asking for a replica until it serves (source, load, socket ready)."""
        setup_ms = (time.perf_counter() - started) * 1000.0
        runtime.model_setup_ms.append(setup_ms)
        runtime.model_setups += 1
        self.events.event(runtime.name, f"replica {handle.id} ready (pid {handle.pid}): model setup took {setup_ms:.0f} ms")

    def _check_memory(self, runtime: EndpointRuntime) -> None:
        """Stop a replica that goes over its memory size, with a ModelError saying which size fits."""
        if runtime.spec is None:
            return
        limit = memory.limit_mb(runtime.spec.compute, self._machine_mb)
        for handle in list(runtime.serving):
            used = memory.rss_mb(handle.pid) if handle.pid else None
            if used is None or used <= limit:
                continue
            message = memory.breach_message(used, runtime.spec.compute, limit)
            log.warning("endpoint %s: %s", runtime.name, message)
            self.events.event(runtime.name, f"replica {handle.id} stopped for its memory: {message}")
            runtime.serving.remove(handle)
            if handle.channel is not None:
                handle.channel.fail_pending_with(ModelError(message))
            self._spawn(self._backend.stop(handle, grace_s=0.0))
            runtime.failed_spec = runtime.spec_json
            self._set_state(runtime, EndpointState.FAILED, message)
            runtime.notify_waiters()

    # --- helpers ---------------------------------------------------------------------------

    def _set_state(self, runtime: EndpointRuntime, state: EndpointState, reason: str | None) -> None:
        if runtime.state is EndpointState.DELETING and state is not EndpointState.DELETING:
            return  # deletion wins over anything a roll-out still reports
        if (runtime.state, runtime.reason) == (state, reason):
            return
        runtime.state, runtime.reason = state, reason
        self._store.update(runtime.name, state=state, reason=reason)
        self.events.event(runtime.name, f"state {state.value}" + (f": {reason}" if reason else ""))

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
