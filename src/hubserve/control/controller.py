"""The controller: one reconcile loop per endpoint drives its replicas towards the stored spec.

Every change a user makes is written to the store first and then "kicks" the endpoint's loop,
so a restart of the server, which simply starts every loop again, restores every endpoint.
Roll-outs start the new replica before the old one stops taking traffic, so updates drop nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import secrets
from pathlib import Path

from hubserve.backends.base import Backend, ReplicaHandle, ReplicaLaunch, ReplicaStartFailed
from hubserve.backends.channel import ReplicaChannel
from hubserve.errors import ColdStartTimeout, EndpointNotFound, ModelNotReady
from hubserve.models.sources import SourceError, resolve
from hubserve.settings import Settings
from hubserve.spec import EndpointSpec, EndpointState, device_for, vcpus_for
from hubserve.store import EndpointRecord, EndpointStore

log = logging.getLogger("hubserve.controller")


@dataclasses.dataclass(eq=False)
class EndpointRuntime:
    """What is running for one endpoint, kept in memory beside its stored record."""

    name: str
    state: EndpointState
    reason: str | None = None
    serving: list[ReplicaHandle] = dataclasses.field(default_factory=list)
    serving_spec: str | None = None  # the spec JSON the serving replicas were started from
    failed_spec: str | None = None  # a spec that failed to deploy is not retried until it changes
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    ready: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    loop_task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        self.changed.set()


class Controller:
    """Owns every endpoint's replicas; the gateway asks it for a channel per request."""

    def __init__(self, store: EndpointStore, backend: Backend, settings: Settings) -> None:
        self._store = store
        self._backend = backend
        self._settings = settings
        self._runtimes: dict[str, EndpointRuntime] = {}
        self._replica_ids = itertools.count(1)
        self._background: set[asyncio.Task[None]] = set()
        self._machine_cores = os.cpu_count() or 1

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Bring back every endpoint the store holds (desired state survives restarts)."""
        for record in self._store.list():
            self._ensure_runtime(record)

    async def stop(self) -> None:
        """Stop every replica; the store keeps the desired state for the next start."""
        tasks = [*(rt.loop_task for rt in self._runtimes.values() if rt.loop_task), *self._background]
        for task in tasks:
            task.cancel()  # supervisors would otherwise wait for replicas that we stop below
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(
            *(self._backend.stop(handle, grace_s=3.0) for rt in self._runtimes.values() for handle in rt.serving),
            return_exceptions=True,
        )
        await self._backend.close()

    # --- user operations (the store is written first) ------------------------------------

    def describe(self, name: str) -> tuple[EndpointRecord, EndpointRuntime]:
        record = self._store.get(name)
        runtime = self._runtimes.get(name)
        if record is None or runtime is None:
            raise EndpointNotFound(name)
        return record, runtime

    def list(self) -> list[tuple[EndpointRecord, EndpointRuntime]]:
        return [(record, self._runtimes[record.name]) for record in self._store.list() if record.name in self._runtimes]

    def create(self, spec: EndpointSpec, notes: list[str]) -> EndpointRecord:
        record = self._store.insert(spec, notes)  # KeyError when the name is taken
        self._ensure_runtime(record)
        return record

    def update(self, spec: EndpointSpec, notes: list[str]) -> EndpointRecord:
        record, runtime = self.describe(spec.name)
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
        if record.state in (EndpointState.PAUSED, EndpointState.FAILED):
            self._set_state(runtime, EndpointState.PENDING, None)
        runtime.kick()
        return self.describe(name)[0]

    def delete(self, name: str) -> EndpointRecord:
        _, runtime = self.describe(name)
        self._set_state(runtime, EndpointState.DELETING, None)
        runtime.kick()
        return self.describe(name)[0]

    # --- the gateway's view ----------------------------------------------------------------

    async def acquire(self, name: str) -> tuple[ReplicaChannel, bool]:
        """A ready replica's channel (least outstanding requests) and whether we waited for a start."""
        runtime = self._runtimes.get(name)
        if runtime is None:
            raise EndpointNotFound(name)
        cold = False
        if not runtime.serving:
            self._raise_if_unservable(runtime)
            cold = True
            try:
                await asyncio.wait_for(runtime.ready.wait(), self._settings.cold_start_timeout_s)
            except asyncio.TimeoutError:
                raise ColdStartTimeout(
                    f"Endpoint '{name}' had no ready replica within {self._settings.cold_start_timeout_s:.0f}s "
                    f"(state {runtime.state.value}); retry later or check its logs."
                ) from None
            if not runtime.serving:
                self._raise_if_unservable(runtime)
                raise ModelNotReady(f"Endpoint '{name}' is not ready (state {runtime.state.value}); retry shortly.")
        channels = [handle.channel for handle in runtime.serving if handle.channel and not handle.channel.closed]
        if not channels:
            raise ModelNotReady(f"Endpoint '{name}' is restarting its replica; retry shortly.")
        return min(channels, key=lambda channel: channel.outstanding), cold

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

    # --- reconciliation --------------------------------------------------------------------

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
            return True
        if record.desired == "paused":
            await self._retire_all(runtime)
            self._set_state(runtime, EndpointState.PAUSED, None)
            return False
        spec_json = record.spec.model_dump_json()
        if runtime.serving and runtime.serving_spec == spec_json:
            self._set_state(runtime, EndpointState.RUNNING, None)
        elif runtime.failed_spec != spec_json:
            await self._roll_out(runtime, record.spec, spec_json)
        return False

    async def _roll_out(self, runtime: EndpointRuntime, spec: EndpointSpec, spec_json: str) -> None:
        """Start a replica of the new spec; only once it is ready does it replace the old ones."""
        updating = bool(runtime.serving)
        self._set_state(runtime, EndpointState.UPDATING if updating else EndpointState.INITIALIZING, runtime.reason)
        try:
            launch = await self._launch_for(spec)
            handle = await self._backend.start(f"{spec.name}-{next(self._replica_ids)}-{secrets.token_hex(2)}", launch)
            await self._backend.wait_ready(handle, self._settings.replica_start_timeout_s)
        except (SourceError, ValueError, ReplicaStartFailed) as exc:
            reason = str(exc)
            runtime.failed_spec = spec_json
            if updating:
                reason = f"update failed, still serving the previous spec: {reason}"
            self._set_state(runtime, EndpointState.UPDATE_FAILED if updating else EndpointState.FAILED, reason)
            return
        previous = runtime.serving
        runtime.serving = [handle]
        runtime.serving_spec = spec_json
        runtime.failed_spec = None
        runtime.ready.set()
        self._spawn(self._supervise(runtime, handle))
        for old in previous:
            self._spawn(self._retire(old))
        if self._store.get(runtime.name) is not None:
            self._set_state(runtime, EndpointState.RUNNING, None)
            runtime.kick()  # the user may have changed something while we were starting

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
            env=spec.env,
        )

    async def _supervise(self, runtime: EndpointRuntime, handle: ReplicaHandle) -> None:
        """Restart a serving replica that exits on its own (a crash, an OOM kill)."""
        code = await self._backend.wait_exit(handle)
        if handle not in runtime.serving:
            return  # retired on purpose
        runtime.serving.remove(handle)
        await self._backend.stop(handle)
        if not runtime.serving:
            runtime.ready.clear()
            runtime.serving_spec = None
        log.warning("replica %s of %s exited with code %s; restarting", handle.id, runtime.name, code)
        self._set_state(runtime, EndpointState.INITIALIZING, f"replica {handle.id} exited with code {code}; restarting")
        runtime.kick()

    async def _retire(self, handle: ReplicaHandle) -> None:
        """Let a replica finish what it holds, then stop it."""
        if handle.channel is not None:
            try:
                await asyncio.wait_for(handle.channel.drained(), self._settings.drain_timeout_s)
            except asyncio.TimeoutError:
                log.warning("replica %s still busy after %.0fs; stopping it", handle.id, self._settings.drain_timeout_s)
        await self._backend.stop(handle)

    async def _retire_all(self, runtime: EndpointRuntime) -> None:
        handles, runtime.serving = runtime.serving, []
        runtime.serving_spec = None
        runtime.ready.clear()
        await asyncio.gather(*(self._retire(handle) for handle in handles))

    def _set_state(self, runtime: EndpointRuntime, state: EndpointState, reason: str | None) -> None:
        if runtime.state is EndpointState.DELETING and state is not EndpointState.DELETING:
            return  # deletion wins over anything a roll-out still reports
        runtime.state, runtime.reason = state, reason
        self._store.update(runtime.name, state=state, reason=reason)

    def _spawn(self, coroutine: object) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)
