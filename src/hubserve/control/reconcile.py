"""Reconciliation: bring each endpoint's running replicas to its stored spec and desired count.

Every change a user makes is written to the store first and then kicks the endpoint's reconcile
loop, so a restart of the server, which simply starts every loop again, restores every endpoint.
The loop owns generations (deploy, rolling update, pause, delete); ``scale_to`` moves the replica
count of the deployed generation to what the autoscaler asks; a replica that exits on its own is
noticed here and replaced. Nothing here is on the request path.

An operation's answer is the state it leads to, never the one before it: ``take`` does at once
what needs no waiting (a scaling-only change of the deployed generation, taking a pausing
endpoint's replicas out of service, waking a resumed one) and sets the state the rest leads to
(``pausing``, ``updating``, ``initializing``); the loop's pass then does the waiting part.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any

from hubserve.backends.base import Backend, Replica, ReplicaStartFailed
from hubserve.control.live import EndpointLive, Generation
from hubserve.control.scaling import policy_for, scaling_only
from hubserve.errors import HubserveError, ReplicaCrashed, StoreUnavailable
from hubserve.logs import EventLog
from hubserve.settings import Settings
from hubserve.spec import EndpointSpec, EndpointState
from hubserve.store import EndpointRecord, EndpointStore
from hubserve.worker.launch import ReplicaLaunch

log = logging.getLogger("hubserve.control")

ACTIVE_STATES = (
    EndpointState.RUNNING,
    EndpointState.SCALED_TO_ZERO,
    EndpointState.UPDATE_FAILED,
    EndpointState.INITIALIZING,
)
START_BACKOFF_S = 5.0  # after a failed replica start, before scaling tries again
STORE_RETRY_S = 2.0  # a reconcile pass that met a store outage runs again after this (the outage's Retry-After)

LaunchFor = Callable[[EndpointSpec], ReplicaLaunch]


@dataclasses.dataclass(eq=False)
class _Loop:
    """What the reconcile loop of one endpoint keeps for itself."""

    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    failed_spec: str | None = None  # a spec that failed to deploy is not retried until it changes
    start_backoff_until: float = 0.0
    pausing: set[asyncio.Task[Any]] = dataclasses.field(default_factory=set)  # replicas a pause is stopping


class Reconciler:
    """Owns every endpoint's ``EndpointLive`` and replicas; only control modules call it."""

    def __init__(self, store: EndpointStore, backend: Backend, settings: Settings, events: EventLog,
                 launch_for: LaunchFor) -> None:  # fmt: skip
        self._store = store
        self._backend = backend
        self._settings = settings
        self._events = events
        self._launch_for = launch_for
        self.lives: dict[str, EndpointLive] = {}
        self._loops: dict[str, _Loop] = {}
        self._replica_ids = itertools.count(1)
        self._background: set[asyncio.Task[Any]] = set()
        self._retiring: set[Replica] = set()  # out of service, finishing what they hold
        # Called when an endpoint's replicas change on their own (a crash, a started one): the autoscaler.
        self.rescale: Callable[[EndpointLive], None] = lambda live: None

    # --- lifecycle -------------------------------------------------------------------------

    def ensure(self, record: EndpointRecord) -> EndpointLive:
        """The endpoint's live state, with its reconcile loop running; kicked for a pass."""
        live = self.lives.get(record.name)
        if live is None:
            live = EndpointLive(name=record.name, state=record.state, reason=record.reason)
            self.lives[record.name] = live
            loop = self._loops[record.name] = _Loop()
            loop.task = asyncio.get_running_loop().create_task(self._reconcile_forever(live, loop))
        self.kick(record.name)
        return live

    def kick(self, name: str) -> None:
        """Ask the endpoint's reconcile loop for a pass."""
        loop = self._loops.get(name)
        if loop is not None:
            loop.changed.set()

    def forget_failure(self, live: EndpointLive, redeploy: bool) -> None:
        """A resume retries a failed spec; ``redeploy`` starts it from scratch (nothing serves)."""
        self._loops[live.name].failed_spec = None
        if redeploy:
            live.generation = None

    def failed_spec(self, name: str) -> str | None:
        loop = self._loops.get(name)
        return loop.failed_spec if loop is not None else None

    async def stop(self) -> None:
        """Stop every loop and replica; the store keeps the desired state for the next start."""
        tasks = [*(loop.task for loop in self._loops.values() if loop.task), *self._background]
        retiring = list(self._retiring)  # their retire tasks are cancelled below: stop them here
        for task in tasks:
            task.cancel()  # supervisors would otherwise wait for replicas that we stop below
        await asyncio.gather(*tasks, return_exceptions=True)
        serving = [replica for live in self.lives.values() for replica in live.replicas]
        await asyncio.gather(
            *(self._backend.stop(replica, grace_s=3.0) for replica in [*serving, *retiring]),
            return_exceptions=True,
        )

    async def drop(self, name: str) -> None:
        """Another server holds the endpoint now: stop its loop and replicas here, leaving the store alone."""
        live = self.lives.pop(name, None)  # first: set_state no longer writes the store for it
        loop = self._loops.pop(name, None)
        if live is None:
            return
        live.state = EndpointState.DELETING  # a replica still starting stops itself (``_scale_up``)
        if loop is not None and loop.task is not None:
            loop.task.cancel()
            await asyncio.gather(loop.task, return_exceptions=True)
        replicas, live.replicas = live.replicas, []
        live.notify_waiters()
        await asyncio.gather(
            *(self._backend.stop(replica, grace_s=3.0) for replica in replicas), return_exceptions=True
        )

    # --- the reconcile loop ----------------------------------------------------------------

    async def _reconcile_forever(self, live: EndpointLive, loop: _Loop) -> None:
        while True:
            await loop.changed.wait()
            loop.changed.clear()
            try:
                finished = await self._reconcile(live, loop)
            except asyncio.CancelledError:
                raise
            except StoreUnavailable as exc:  # an outage, not the endpoint's fault: try again when it may be over
                log.warning("reconcile of %s waits for the store: %s", live.name, exc)
                await asyncio.sleep(STORE_RETRY_S)
                loop.changed.set()
                finished = False
            except Exception as exc:  # a bug here must not kill the endpoint's loop silently
                log.exception("reconcile of %s failed", live.name)
                self.set_state(live, EndpointState.FAILED, f"internal error: {exc}")
                finished = False
            if finished:
                return

    async def _reconcile(self, live: EndpointLive, loop: _Loop) -> bool:
        """One pass towards the stored spec; returns True when the endpoint is gone."""
        record = self._store.get(live.name)
        if record is None or record.state is EndpointState.DELETING:
            await self.retire_all(live)
            self._store.delete(live.name)
            self.lives.pop(live.name, None)
            self._loops.pop(live.name, None)
            self._events.event(live.name, "deleted")
            self._events.forget(live.name)
            return True
        self.take(live, record)
        if record.desired == "paused":
            await asyncio.gather(*loop.pausing, return_exceptions=True)
            now = self._store.get(live.name)
            if now is not None and now.desired == "paused" and live.state is EndpointState.PAUSING:
                self.set_state(live, EndpointState.PAUSED, None)  # every replica has stopped
            live.notify_waiters()
            return False
        spec_json = record.spec.model_dump_json()
        deployed = live.generation.spec_json if live.generation is not None else None
        if deployed != spec_json and loop.failed_spec != spec_json:
            await self._roll_out(live, loop, record.spec, spec_json)
        return False

    def take(self, live: EndpointLive, record: EndpointRecord) -> None:
        """Take the stored record at once, so that the operation that wrote it answers with where it leads.

        Pausing takes the replicas out of service now (they finish what they hold; the pass waits
        for them, then ``paused``); a spec that differs from the deployed one in scaling fields only
        becomes the deployed generation now, the serving replicas kept; any other new spec shows the
        state its roll-out sets (``updating`` while replicas serve, else ``initializing``); a kept
        generation with nothing serving (resumed, retried) is ``initializing`` and asks for replicas.
        """
        loop = self._loops.get(live.name)
        if loop is None or live.state is EndpointState.DELETING:
            return
        if record.desired == "paused":
            if live.state is not EndpointState.PAUSED:
                self.set_state(live, EndpointState.PAUSING, None)
            self._pause_replicas(live, loop)
            return
        spec_json = record.spec.model_dump_json()
        if loop.failed_spec == spec_json:
            return  # not retried until it changes (or a resume forgets the failure)
        generation = live.generation
        if generation is not None and generation.spec_json != spec_json and scaling_only(generation.spec, record.spec):
            self._retune(live, loop, generation, record.spec, spec_json)
        elif generation is None or generation.spec_json != spec_json:
            self.set_state(live, EndpointState.UPDATING if live.replicas else EndpointState.INITIALIZING, None)
            return
        if live.state in (EndpointState.RUNNING, EndpointState.SCALED_TO_ZERO, EndpointState.UPDATING):
            return  # serving the stored spec (or rolling out one asked for before it)
        self.set_state(live, EndpointState.RUNNING if live.replicas else EndpointState.INITIALIZING, None)
        self.rescale(live)
        if live.state is EndpointState.INITIALIZING and not live.replicas and not live.starting and live.desired == 0:
            self.set_state(live, EndpointState.SCALED_TO_ZERO, None)  # the policy wants none now

    def _pause_replicas(self, live: EndpointLive, loop: _Loop) -> None:
        """Out of service now; they finish what they hold and stop while the endpoint is ``pausing``."""
        replicas, live.replicas = live.replicas, []
        for replica in replicas:
            task = self.spawn(self.retire(replica))
            loop.pausing.add(task)
            task.add_done_callback(loop.pausing.discard)
        live.notify_waiters()

    def _retune(
        self, live: EndpointLive, loop: _Loop, generation: Generation, spec: EndpointSpec, spec_json: str
    ) -> None:
        """A scaling-only change: the serving replicas become the new spec's, no roll-out."""
        live.generation = dataclasses.replace(
            generation, spec=spec, spec_json=spec_json,
            policy=policy_for(spec.compute, self._settings.serverless_slots_per_replica),
        )  # fmt: skip
        loop.failed_spec = None
        self._events.event(live.name, "scaling changed: applied to the serving replicas, no roll-out")
        if live.state is EndpointState.UPDATE_FAILED:  # the failed spec is no longer asked for
            self.set_state(live, EndpointState.RUNNING if live.replicas else EndpointState.INITIALIZING, None)
        self.rescale(live)

    async def _roll_out(self, live: EndpointLive, loop: _Loop, spec: EndpointSpec, spec_json: str) -> None:
        """Start one replica of the new spec; only once it is ready does it replace the old ones."""
        updating = bool(live.replicas)
        self.set_state(live, EndpointState.UPDATING if updating else EndpointState.INITIALIZING, None)
        started = time.perf_counter()
        try:
            replica = await self.start_ready_replica(spec, live)
        except (ValueError, ReplicaStartFailed, HubserveError) as exc:
            loop.failed_spec = spec_json
            if live.state is EndpointState.PAUSING:
                self._events.event(live.name, f"the roll-out failed while pausing: {_reason(exc)}")
            elif updating:
                self.set_state(
                    live, EndpointState.UPDATE_FAILED, f"update failed, still serving the previous spec: {_reason(exc)}"
                )
            else:
                self.set_state(live, EndpointState.FAILED, _reason(exc))
            live.notify_waiters()
            return
        self.record_setup(live, replica, started)
        previous, live.replicas = live.replicas, []
        live.generation = Generation(
            spec=spec,
            spec_json=spec_json,
            policy=policy_for(spec.compute, self._settings.serverless_slots_per_replica),
            runtime_info=replica.info.get("runtime"),
            batching_info=replica.info.get("batching"),
        )
        loop.failed_spec = None
        self.add_serving(live, replica)
        for old in previous:
            self.spawn(self.retire(old))
        stored = self._store.get(live.name)
        if stored is None or stored.desired == "running":
            self.set_state(live, EndpointState.RUNNING, None)
        if stored is not None:
            self.take(live, stored)  # what the user changed while we were starting shows at once
        self.kick(live.name)

    # --- replica count of the deployed generation -------------------------------------------

    def scale_to(self, live: EndpointLive, desired: int, demand: int) -> None:
        """Start or retire replicas of the deployed generation until ``desired`` run."""
        if live.generation is None or live.state not in ACTIVE_STATES:
            return
        if desired != live.desired:
            self._events.event(live.name, f"scaling from {live.desired} to {desired} replicas (demand {demand})")
        live.desired = desired
        running = len(live.replicas)
        missing = desired - running - live.starting
        loop = self._loops[live.name]
        if missing > 0 and time.monotonic() >= loop.start_backoff_until:
            if running == 0 and live.state is EndpointState.SCALED_TO_ZERO:
                self.set_state(live, EndpointState.INITIALIZING, None)
            for _ in range(missing):
                live.starting += 1
                self.spawn(self._scale_up(live, live.generation))
        elif desired < running and live.starting == 0:
            idle_first = sorted(live.replicas, key=lambda r: r.channel.outstanding if r.channel else 0)
            for replica in idle_first[: running - desired]:
                live.replicas.remove(replica)
                self.spawn(self.retire(replica))
        if desired == 0 and not live.replicas and live.starting == 0 and live.state is EndpointState.RUNNING:
            self.set_state(live, EndpointState.SCALED_TO_ZERO, None)
        elif live.replicas and live.state in (EndpointState.SCALED_TO_ZERO, EndpointState.INITIALIZING):
            self.set_state(live, EndpointState.RUNNING, None)

    async def _scale_up(self, live: EndpointLive, generation: Generation) -> None:
        started = time.perf_counter()
        try:
            replica = await self.start_ready_replica(generation.spec, live)
        except (ValueError, ReplicaStartFailed, HubserveError) as exc:
            live.starting -= 1
            loop = self._loops.get(live.name)
            if loop is not None:
                loop.start_backoff_until = time.monotonic() + START_BACKOFF_S
            if not live.replicas:
                self.set_state(live, EndpointState.FAILED, _reason(exc))
                if loop is not None:
                    loop.failed_spec = generation.spec_json
                live.notify_waiters()
            log.warning("starting a replica of %s failed: %s", live.name, exc)
            self._events.event(live.name, f"starting a replica failed: {_reason(exc)}")
            return
        live.starting -= 1
        if (
            not _same_replicas(live.generation, generation)
            or live.state in _NOT_SERVING
            or (live.state is EndpointState.SCALED_TO_ZERO and live.desired == 0)
        ):
            await self._backend.stop(replica)  # the generation changed, or a pause or a scale-to-zero came
            return
        self.record_setup(live, replica, started)
        self.add_serving(live, replica)
        self.rescale(live)

    # --- replicas ----------------------------------------------------------------------------

    async def start_ready_replica(self, spec: EndpointSpec, live: EndpointLive | None = None) -> Replica:
        """Start a replica of ``spec`` and wait until it serves (the replica resolves the model itself).

        For an endpoint (``live``), each step of the replica's start (``exporting to ONNX (step 1
        of 4)``) becomes an event and, while the endpoint is ``initializing`` or ``updating``, its
        reason, so a long start says what it is doing; the state itself does not change.
        """
        launch = self._launch_for(spec)
        replica = await self._backend.start(f"{spec.name}-{next(self._replica_ids)}-{secrets.token_hex(2)}", launch)

        def on_phase(phase: str) -> None:
            if live is None or live.state is EndpointState.DELETING:
                return
            if live.state in (EndpointState.INITIALIZING, EndpointState.UPDATING):
                self.set_state(live, live.state, phase)  # its event: "state initializing: <phase>"
            else:
                self._events.event(live.name, f"replica {replica.id}: {phase}")

        await self._backend.wait_ready(replica, self._settings.replica_start_timeout_s, on_phase)
        return replica

    def record_setup(self, live: EndpointLive, replica: Replica, started: float) -> None:
        """ModelSetupTime: from asking for a replica until it serves (source, load, socket ready)."""
        setup_ms = (time.perf_counter() - started) * 1000.0
        live.model_setup_ms.append(setup_ms)
        live.model_setups += 1
        where = f" ({replica.placement})" if replica.placement else ""
        self._events.event(live.name, f"replica {replica.id} ready{where}: model setup took {setup_ms:.0f} ms")

    def add_serving(self, live: EndpointLive, replica: Replica) -> None:
        live.replicas.append(replica)
        self.spawn(self._supervise(live, replica))
        if live.state is EndpointState.RUNNING and live.reason is not None:
            self.set_state(live, EndpointState.RUNNING, None)  # a replacement serves: the crash is behind it
        live.notify_waiters()

    async def _supervise(self, live: EndpointLive, replica: Replica) -> None:
        """Notice a serving replica that exits on its own (a crash, a kill); the autoscaler replaces it."""
        code = await self._backend.wait_exit(replica)
        if replica not in live.replicas:
            return  # retired on purpose
        live.replicas.remove(replica)
        await self._backend.stop(replica)
        log.warning("replica %s of %s exited with code %s", replica.id, live.name, code)
        self._events.event(live.name, f"replica {replica.id} exited on its own with code {code}; replacing it")
        if live.state is not EndpointState.FAILED:
            self.set_state(live, live.state, f"replica {replica.id} exited with code {code}; replacing it")
        self.rescale(live)

    async def retire(self, replica: Replica) -> None:
        """Let a replica finish what it holds, then stop it."""
        self._retiring.add(replica)
        try:
            if replica.channel is not None:
                try:
                    await asyncio.wait_for(replica.channel.drained(), self._settings.drain_timeout_s)
                except asyncio.TimeoutError:
                    log.warning(
                        "replica %s still busy after %.0fs; stopping it", replica.id, self._settings.drain_timeout_s
                    )
            await self._backend.stop(replica)
        finally:
            self._retiring.discard(replica)

    async def retire_all(self, live: EndpointLive, keep_generation: bool = False) -> None:
        replicas, live.replicas = live.replicas, []
        if not keep_generation:
            live.generation = None
        await asyncio.gather(*(self.retire(replica) for replica in replicas))

    def stop_now(self, live: EndpointLive, replica: Replica, error: HubserveError) -> None:
        """Take a replica out of service at once, failing what it holds with ``error`` (memory policing)."""
        if replica in live.replicas:
            live.replicas.remove(replica)
        if replica.channel is not None:
            replica.channel.fail_pending(error)
        self.spawn(self._backend.stop(replica, grace_s=0.0))

    def replace_now(
        self, live: EndpointLive, replica: Replica, reason: str, error: HubserveError | None = None
    ) -> None:
        """Kill a replica a request made misbehave (past its time limit, over its memory) and start another.

        What the replica still held fails with ``error`` (default: ReplicaCrashed naming ``reason``);
        the endpoint stays in its state, its reason and events say why the replica was replaced.
        """
        log.warning("replica %s of %s killed: %s", replica.id, live.name, reason)
        self._events.event(live.name, f"replica {replica.id} killed: {reason}; replacing it")
        self.stop_now(live, replica, error or ReplicaCrashed(
            f"Replica {replica.id} of '{live.name}' was killed while serving this request ({reason}); retry the request."
        ))  # fmt: skip
        if live.state is not EndpointState.FAILED:
            self.set_state(live, live.state, f"replica {replica.id} killed: {reason}; replacing it")
        self.rescale(live)

    def fail(self, live: EndpointLive, reason: str) -> None:
        """The deployed spec cannot serve: FAILED with ``reason``, not retried until it changes."""
        loop = self._loops.get(live.name)
        if loop is not None and live.generation is not None:
            loop.failed_spec = live.generation.spec_json
        self.set_state(live, EndpointState.FAILED, reason)
        live.notify_waiters()

    # --- helpers -------------------------------------------------------------------------------

    def set_state(self, live: EndpointLive, state: EndpointState, reason: str | None) -> None:
        if live.state is EndpointState.DELETING and state is not EndpointState.DELETING:
            return  # deletion wins over anything a roll-out still reports
        if (live.state, live.reason) == (state, reason):
            return
        live.state, live.reason = state, reason
        if live.name in self.lives:  # a batch job's replicas have no stored record
            self._store.update(live.name, state=state, reason=reason)
            self._events.event(live.name, f"state {state.value}" + (f": {reason}" if reason else ""))

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


_NOT_SERVING = (EndpointState.PAUSING, EndpointState.PAUSED, EndpointState.DELETING)


def _same_replicas(current: Generation | None, started: Generation) -> bool:
    """A replica started for ``started`` serves ``current`` too: the same deployment (perhaps retuned) or spec."""
    if current is None:
        return False
    return current.deployment == started.deployment or current.spec_json == started.spec_json


def _reason(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, ReplicaStartFailed) else getattr(exc, "message", None) or str(exc)
