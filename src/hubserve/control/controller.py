"""Control's face: the user operations on endpoints, and the narrow capacity interface the gateway uses.

Operations write the store first and then kick the endpoint's reconcile loop (reconcile.py);
the autoscaler (autoscaler.py) and memory policing (memory.py) run beside it. The gateway sees
only ``find`` (an endpoint's live state to route from), ``request_capacity`` (a request is held:
scale now) and ``cold_start_timed_out``. Batch jobs get replicas of their own here, routed by the
gateway like an endpoint's but never scaled.
"""

from __future__ import annotations

import asyncio
import builtins
import os
from pathlib import Path

from hubserve.backends.base import Backend, Replica
from hubserve.control import registry_models
from hubserve.control.autoscaler import Autoscaler, Demand
from hubserve.control.capacity import MachineCapacity
from hubserve.control.live import EndpointLive, Generation
from hubserve.control.memory import MemoryPolice, backstop_mb, limit_mb, machine_memory_mb
from hubserve.control.ownership import Holder, Ownership, server_id
from hubserve.control.reconcile import ACTIVE_STATES, Reconciler
from hubserve.errors import EndpointNotFound, ModelNotReady, ReplicaCrashed
from hubserve.logs import EventLog
from hubserve.settings import Settings
from hubserve.spec import EndpointSpec, EndpointState, device_for, vcpus_for
from hubserve.store import EndpointRecord, EndpointStore, artifacts
from hubserve.store import registry as model_registry
from hubserve.store.leases import LeaseStore
from hubserve.store.servers import ServerStore
from hubserve.types import Channel
from hubserve.worker.launch import ReplicaLaunch


class Controller:
    """Owns every endpoint's replicas through the reconciler; the gateway routes from its live states."""

    def __init__(self, store: EndpointStore, backend: Backend, settings: Settings, events: EventLog,
                 leases: LeaseStore | None = None, servers: ServerStore | None = None,
                 registry: model_registry.RegistryStore | None = None) -> None:  # fmt: skip
        """``leases``: the store's endpoint leases, so several servers share it; None: this server holds all.
        ``servers``: where this server records the URL the others forward invocations to (``advertise_url``).
        ``registry``: the model registry that ``registry://`` sources resolve through (None: no registry)."""
        self._store = store
        self.registry = registry
        self._running_versions: dict[str, str] = {}  # endpoint -> the registry version its last launch ran
        self._backend = backend
        self._settings = settings
        self._machine_cores = os.cpu_count() or 1
        self.events = events
        self.reconciler = Reconciler(store, backend, settings, events, self.launch_for)
        capacity = (
            MachineCapacity(self._machine_cores, machine_memory_mb(), settings.replica_cpu_oversubscription)
            if settings.backend == "local" else None  # a Ray cluster places replicas by its own resources
        )  # fmt: skip
        self.autoscaler = Autoscaler(
            self.reconciler, settings.scale_down_window_s, settings.autoscale_interval_s, capacity,
            everyone=lambda: [*self.reconciler.lives.values(), *self._jobs.values()], events=events,
        )  # fmt: skip
        self.memory = MemoryPolice(self.reconciler, backend, events, settings.autoscale_interval_s)
        self.reconciler.rescale = self.autoscaler.step
        self._jobs: dict[str, EndpointLive] = {}  # batch jobs' replicas, by job id
        self._loops: list[asyncio.Task[None]] = []
        self.ownership = Ownership(
            leases, server_id(settings.home_dir) if leases is not None else "this-server",
            servers=servers, url=settings.advertised_base_url,
        )  # fmt: skip
        self._seen: dict[str, tuple[str, str, bool]] = {}  # held endpoints' user-set fields at the last scan

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Bring back every endpoint the store holds (desired state survives restarts)."""
        self.ownership.advertise()  # before any lease: a server that sees our lease can reach us
        for record in self._store.list():
            if self.ownership.take(record.name):
                self.reconciler.ensure(record)
        loop = asyncio.get_running_loop()
        self._loops = [
            loop.create_task(self.autoscaler.run_forever(), name="autoscaler"),
            loop.create_task(self.memory.run_forever(), name="memory-police"),
            loop.create_task(
                self.ownership.run_forever(self._stored_names, self._gained, self._lost, self._kick_held),
                name="endpoint-leases",
            ),
        ]

    async def stop(self) -> None:
        """Stop every replica; the store keeps the desired state for the next start."""
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.reconciler.stop()
        await asyncio.gather(*(self.stop_job(job_id) for job_id in list(self._jobs)), return_exceptions=True)
        self.ownership.release_all()  # after our replicas stopped: another server takes them at its next scan

    # --- endpoint leases (ownership.py): which endpoints this server reconciles -----------------

    def _stored_names(self) -> builtins.list[str]:
        return [record.name for record in self._store.list()]

    def _gained(self, name: str) -> None:
        """A lapsed or free endpoint is ours now: bring it up from the store."""
        record = self._store.get(name)
        if record is None:
            self.ownership.release(name)
            return
        self.events.event(name, f"taken over by server {self.ownership.holder}")
        self.reconciler.ensure(record)

    def _lost(self, name: str) -> None:
        """Our lease lapsed and another server took it: its replicas here must go."""
        self._seen.pop(name, None)
        self.reconciler.spawn(self.reconciler.drop(name))

    def _kick_held(self) -> None:
        """Release the leases of endpoints deleted here; a pass for those changed through another server."""
        for name in sorted(self.ownership.held):
            if name not in self.reconciler.lives:
                self._seen.pop(name, None)
                self.ownership.release(name)
                continue
            record = self._store.get(name)
            if record is None:
                continue
            seen = (record.spec.model_dump_json(), record.desired, record.state is EndpointState.DELETING)
            if self._seen.get(name, seen) != seen:
                if seen[2]:
                    self.reconciler.set_state(self.reconciler.lives[name], EndpointState.DELETING, None)
                self.reconciler.kick(name)
            self._seen[name] = seen

    def _view(self, record: EndpointRecord) -> EndpointLive:
        """The live state here, or, for an endpoint another server reconciles, its stored state (no replicas here)."""
        live = self.reconciler.lives.get(record.name)
        return live if live is not None else EndpointLive(name=record.name, state=record.state, reason=record.reason)

    def add_demand(self, source: Demand) -> None:
        """Count ``source``'s invocations as demand (the gateway, the async queue)."""
        self.autoscaler.add_source(source)

    @property
    def machine_mb(self) -> int:
        return self.memory.machine_mb

    # --- reading -------------------------------------------------------------------------

    def describe(self, name: str) -> tuple[EndpointRecord, EndpointLive]:
        record = self._store.get(name)
        if record is None:
            raise EndpointNotFound(name)
        return record, self._view(record)

    def live(self, name: str) -> EndpointLive | None:
        """One endpoint's live state without a store read."""
        return self.reconciler.lives.get(name)

    def stored_spec(self, name: str) -> EndpointSpec | None:
        """The spec the user last gave (which may not be deployed yet)."""
        record = self._store.get(name)
        return record.spec if record is not None else None

    def lives(self) -> builtins.list[EndpointLive]:
        """Every endpoint's live state, without a store read (the metrics sampler, the async queue)."""
        return list(self.reconciler.lives.values())

    def list(self) -> builtins.list[tuple[EndpointRecord, EndpointLive]]:
        return [(record, self._view(record)) for record in self._store.list()]

    def pending_spec(self, record: EndpointRecord, live: EndpointLive) -> bool:
        """The stored spec is neither deployed nor known to fail: a roll-out is still to come."""
        stored = record.spec.model_dump_json()
        deployed = live.generation.spec_json if live.generation is not None else None
        return deployed != stored and self.reconciler.failed_spec(record.name) != stored

    # --- user operations (the store is written first) ------------------------------------

    def create(self, spec: EndpointSpec, notes: builtins.list[str]) -> EndpointRecord:
        record = self._store.insert(spec, notes)  # KeyError when the name is taken
        if self.ownership.take(spec.name):  # inline: one statement; else another server's scan took it first
            self.reconciler.ensure(record)
        return record

    # Each operation has control take the change before it answers (``Reconciler.take``), so the
    # record it returns, and any describe after it, shows the state the change leads to.

    def update(self, spec: EndpointSpec, notes: builtins.list[str]) -> EndpointRecord:
        """A scaling-only change applies at once; any other starts a rolling update (``updating``)."""
        _, live = self.describe(spec.name)
        self._take(live, self._store.update(spec.name, spec=spec, notes=notes))
        return self.describe(spec.name)[0]

    def pause(self, name: str) -> EndpointRecord:
        """``pausing`` at once (the replicas take no new work), ``paused`` once every replica has stopped."""
        _, live = self.describe(name)
        self._take(live, self._store.update(name, desired="paused"))
        return self.describe(name)[0]

    def resume(self, name: str) -> EndpointRecord:
        """Start a paused endpoint again; also how a user retries a failed one."""
        record, live = self.describe(name)
        if not self.ownership.holds(name):  # the holder's next scan sees the change
            self._store.update(name, desired="running")
            return self.describe(name)[0]
        stopped = record.desired == "paused" or live.state is EndpointState.FAILED
        # a failed one with nothing serving deploys afresh; a paused one starts replicas of the spec it kept
        self.reconciler.forget_failure(live, redeploy=live.state is EndpointState.FAILED and not live.replicas)
        if stopped:
            self.autoscaler.resumed(live)
        self._take(live, self._store.update(name, desired="running"))
        return self.describe(name)[0]

    def _take(self, live: EndpointLive, record: EndpointRecord | None) -> None:
        if record is not None:
            self.reconciler.take(live, record)
        self.reconciler.kick(live.name)

    def delete(self, name: str) -> EndpointRecord:
        _, live = self.describe(name)
        if not self.ownership.holds(name):  # the holder's next scan (or whoever takes it over) deletes it
            self._store.update(name, state=EndpointState.DELETING, reason=None)
            return self.describe(name)[0]
        self.reconciler.set_state(live, EndpointState.DELETING, None)
        self.reconciler.kick(name)
        live.notify_waiters()
        return self.describe(name)[0]

    async def scale_to_zero(self, name: str) -> EndpointRecord:
        """Stop every replica now; the next invocation starts one (a cold start)."""
        _, live = self.describe(name)
        if not self.ownership.holds(name):
            raise ModelNotReady(f"Endpoint '{name}' is run by server {self.ownership.holder_of(name)}; scale it there.")
        if not live.deployed or live.state not in ACTIVE_STATES:
            raise ModelNotReady(f"Endpoint '{name}' is {live.state.value}; only a deployed endpoint can scale to zero.")
        self.autoscaler.force_zero(live)
        live.desired = 0
        self.reconciler.set_state(live, EndpointState.SCALED_TO_ZERO, None)  # before the wait: no describe lags
        await self.reconciler.retire_all(live, keep_generation=True)
        return self.describe(name)[0]

    # --- the gateway's narrow view ---------------------------------------------------------

    def find(self, name: str, batch: bool = False) -> EndpointLive | None:
        """The live state to route an invocation of ``name`` from (a batch job's replicas when ``batch``)."""
        if batch:
            return self._jobs.get(name)
        live = self.reconciler.lives.get(name)
        if live is None and self.ownership.shared and self._store.get(name) is not None:
            raise self._elsewhere(name)
        return live

    def holder_elsewhere(self, name: str) -> Holder | None:
        """The live server that holds ``name`` when it is not this one (where to forward its invocations).

        Two store reads: call it only once ``live`` found nothing here (api/forwarding.py does).
        """
        return self.ownership.where(name) if self.ownership.shared else None

    def holder_of(self, name: str) -> str | None:
        """The id of the server that reconciles ``name`` now (describe's ``server``)."""
        return self.ownership.holder_of(name)

    def _elsewhere(self, name: str) -> ModelNotReady:
        """An invocation of an endpoint another server reconciles that was not forwarded there: 503 naming it.

        Invocations are forwarded to the holder before they reach the routes (api/forwarding.py); one
        gets here when it was forwarded already (the lease moved meanwhile: no second hop), or when
        the holder advertised no URL (an older hubserve).
        """
        holder = self.ownership.holder_of(name)
        if holder is None:
            return ModelNotReady(f"Endpoint '{name}' is being taken over by another server; retry in a few seconds.")
        return ModelNotReady(
            f"Endpoint '{name}' runs on server {holder}, not this one; send the request to that server."
        )

    def request_capacity(self, name: str) -> None:
        """A request is held for want of a ready replica: scale now rather than at the next tick."""
        live = self.reconciler.lives.get(name)
        if live is not None:
            self.autoscaler.step(live)

    def replace_replica(self, name: str, batch: bool, channel: Channel, reason: str) -> None:
        """A request ran past its time limit on ``channel``'s replica: kill that replica and start another.

        Killing is the only stop that works on a handler stuck in C code. What else the replica
        held fails with ReplicaCrashed; the endpoint stays running and its events say why.
        """
        live = self._jobs.get(name) if batch else self.reconciler.lives.get(name)
        replica = next((r for r in live.replicas if r.channel is channel), None) if live is not None else None
        if live is None or replica is None:
            return  # already gone (a crash, a roll-out, another request's limit)
        if batch:  # the job's watcher sees the exit and the job replaces its replica
            self.reconciler.spawn(self._backend.stop(replica, grace_s=0.0))
            return
        self.reconciler.replace_now(live, replica, reason)

    def cold_start_timed_out(self, name: str, reason: str) -> None:
        """Shown as the endpoint's reason until its state changes."""
        live = self.reconciler.lives.get(name)
        if live is not None:
            live.reason = reason

    # --- batch jobs' replicas: the job owns them, no endpoint serves from them ----------------

    async def start_job(self, job_id: str, spec: EndpointSpec) -> EndpointLive:
        """Start one ready replica of ``spec`` for a batch job; the gateway routes the job's records to it."""
        live = self._jobs.get(job_id) or EndpointLive(name=job_id, state=EndpointState.INITIALIZING)
        self._jobs[job_id] = live
        replica = await self.reconciler.start_ready_replica(spec)
        live.generation = Generation(
            spec=spec, spec_json=spec.model_dump_json(), policy=None,
            runtime_info=replica.info.get("runtime"), batching_info=replica.info.get("batching"),
        )  # fmt: skip
        live.replicas.append(replica)
        live.state, live.reason = EndpointState.RUNNING, None
        live.notify_waiters()
        self.reconciler.spawn(self._watch_job_replica(live, replica))
        return live

    async def _watch_job_replica(self, live: EndpointLive, replica: Replica) -> None:
        """A job's replica that exits on its own fails what it holds; the job replaces it."""
        code = await self._backend.wait_exit(replica)
        if replica not in live.replicas:
            return  # stopped on purpose
        live.replicas.remove(replica)
        live.state, live.reason = EndpointState.FAILED, f"the job's replica {replica.id} exited with code {code}"
        if replica.channel is not None:
            replica.channel.fail_pending(ReplicaCrashed(f"Replica {replica.id} exited with code {code}."))
        live.notify_waiters()

    async def replace_job_replica(self, job_id: str) -> EndpointLive:
        """The job's replica went away: stop what is left of it and start another."""
        live = self._jobs[job_id]
        replicas, live.replicas = live.replicas, []
        live.state = EndpointState.INITIALIZING
        await asyncio.gather(*(self._backend.stop(replica) for replica in replicas))
        assert live.generation is not None
        return await self.start_job(job_id, live.generation.spec)

    async def stop_job(self, job_id: str) -> None:
        live = self._jobs.pop(job_id, None)
        if live is not None:
            live.state = EndpointState.DELETING
            live.notify_waiters()
            replicas, live.replicas = live.replicas, []
            await asyncio.gather(*(self._backend.stop(replica) for replica in replicas))

    # --- what a replica is started with ------------------------------------------------------

    # --- the model registry ---------------------------------------------------------------------

    def registry_version(self, spec: EndpointSpec) -> model_registry.ModelVersion | None:
        """The registry version a ``registry://`` spec runs (None for other sources); RegistryError if none can."""
        if not model_registry.is_ref(spec.model.source):
            return None
        if self.registry is None:
            raise model_registry.RegistryError("this server has no model registry; registry:// sources cannot be used")
        return model_registry.find(self.registry, spec.model.source, spec.model.revision)

    def running_version(self, name: str) -> str | None:
        """``registry://g/N (sha256 ...)``: the version this endpoint's replicas were last started from."""
        return self._running_versions.get(name)

    def users_of(self, group: str, number: int | None = None, *, pinned_only: bool = False) -> builtins.list[str]:
        """Endpoints whose source is a version of ``group`` (``number``: that version, pinned or followed)."""
        users = []
        for record in self._store.list():
            model = record.spec.model
            if model.multi_model and registry_models.group_of(model.source) == group:  # serves every Approved version
                if pinned_only:  # rejecting a version takes it out of such an endpoint: no conflict
                    continue
                version = self.registry.get(group, number) if number is not None and self.registry is not None else None
                if number is None or (version is not None and version.approval == model_registry.APPROVED):
                    users.append(record.name)
                continue
            if not model_registry.is_ref(model.source):
                continue
            try:
                ref_group, ref_number = model_registry.parse_ref(model.source)
            except model_registry.RegistryError:
                continue
            revision = model.revision or ""
            pinned = ref_number if ref_number is not None else (int(revision) if revision.isdigit() else None)
            if ref_group == group and (number is None or pinned == number):
                users.append(record.name)
        return users

    def follow_approval(self, group: str) -> builtins.list[str]:
        """Roll every endpoint that follows ``registry://group/latest-approved`` to the newest Approved version.

        Each goes through ``update`` (the usual rolling update: the old replicas serve until a new one is
        ready); returns the endpoints that were rolled.
        """
        if self.registry is not None:  # multi-model endpoints over the group serve its Approved versions
            registry_models.sync(self.registry, self._registry_root, group)
        latest = self.registry.latest_approved(group) if self.registry is not None else None
        if latest is None:
            return []
        rolled = []
        for record in self._store.list():
            model = record.spec.model
            if model.source != f"{model_registry.SCHEME}{group}/{model_registry.LATEST}" or model.revision == str(latest.number):
                continue
            spec = record.spec.model_copy(update={"model": model.model_copy(update={"revision": str(latest.number)})})
            self.events.event(record.name, f"{latest.uri} approved: rolling to it")
            self.update(spec, record.notes)
            rolled.append(record.name)
        return rolled

    @property
    def _registry_root(self) -> Path:
        return self._settings.home_dir / "registry"

    def models_root(self, spec: EndpointSpec) -> Path | None:
        """The folder of a multi-model endpoint's models: its own, or its registry group's links (made now);
        None for an object-store prefix (the replicas fetch each model)."""
        if spec.model.source.startswith("s3://"):
            return None
        group = registry_models.group_of(spec.model.source)
        if group is None:
            return Path(spec.model.source.removeprefix("file://")).expanduser().resolve()
        if self.registry is None:
            raise model_registry.RegistryError("this server has no model registry; registry:// sources cannot be used")
        return registry_models.sync(self.registry, self._registry_root, group)

    def _registry_launch(self, spec: EndpointSpec) -> tuple[str, str | None, str | None, builtins.list[str]]:
        """(source, revision, task, extra allowed roots) of a replica of a ``registry://`` spec, files verified."""
        version = self.registry_version(spec)
        assert version is not None
        task = spec.model.task or version.task
        launch: tuple[str, str | None, str | None, builtins.list[str]]
        if version.source_kind == "folder":
            assert version.sha256 is not None
            root = self._settings.home_dir / "registry"
            folder = artifacts.verified(root, version.sha256, version.uri)
            running, launch = f"{version.uri} (sha256 {version.sha256})", (str(folder), None, task, [str(root)])
        else:
            running, launch = f"{version.uri} ({version.source}{'@' + version.revision if version.revision else ''})", (
                version.source, version.revision, task, [])
        if self._running_versions.get(spec.name) != running:
            self._running_versions[spec.name] = running
            self.events.event(spec.name, f"running {running}")
        return launch

    def launch_for(self, spec: EndpointSpec) -> ReplicaLaunch:
        """The one structure a replica of ``spec`` starts from; the replica resolves the model itself.

        A ``registry://`` source becomes the version's verified folder (or its Hub id and revision) here.
        """
        settings = self._settings
        s3 = {"s3": {"endpoint_url": settings.s3_endpoint_url}} if settings.s3_endpoint_url else {}
        source, revision, task = spec.model.source, spec.model.revision, spec.model.task
        roots = [str(root) for root in settings.allowed_model_roots]
        if spec.model.multi_model:
            root = self.models_root(spec)
            source = str(root) if root is not None else spec.model.source  # an s3:// prefix: fetched by the replica
            if registry_models.group_of(spec.model.source) is not None:  # its links lead into the registry
                roots = [*roots, str(self._registry_root)]
        elif model_registry.is_ref(source):
            source, revision, task, extra = self._registry_launch(spec)
            roots = [*roots, *extra] if roots else roots
        return ReplicaLaunch(
            endpoint=spec.name,
            source=source,
            revision=revision,
            task=task,
            allowed_roots=roots,
            hub_cache=_optional_path(settings.hub_cache),
            custom_code=spec.custom_code,
            dtype=spec.model.dtype,
            device=device_for(spec.compute),
            threads=vcpus_for(spec.compute, self._machine_cores),
            runtime=spec.model.runtime,
            runtime_cache=str(settings.home_dir / "runtimes"),
            allow_missing_weights=spec.model.allow_missing_weights,
            max_batch_size=spec.batching.max_batch_size,
            max_batch_tokens=spec.batching.max_batch_tokens,
            **_generation_launch(spec),
            env={**spec.env, **spec.secrets},  # secrets reach the replicas as environment variables
            storage_options=s3,
            # CPU replicas only: CUDA maps writable memory of its own that is not the model's.
            memory_backstop_mb=None
            if device_for(spec.compute) == "cuda"
            else backstop_mb(limit_mb(spec.compute, self.machine_mb)),
            multi_model=spec.model.multi_model,
            models_memory_mb=spec.model.models_memory_mb,
            memory_limit_mb=limit_mb(spec.compute, self.machine_mb),
            framework=spec.model.framework,
            trusted_types=list(spec.model.trusted_types),
            allow_pickle=spec.allow_pickle,
        )


def _generation_launch(spec: EndpointSpec) -> dict[str, int]:
    """The spec's generation block as launch fields (none: the launch's defaults, 256 and 2048)."""
    if spec.generation is None:
        return {}
    return {
        "default_max_new_tokens": spec.generation.default_max_new_tokens,
        "max_new_tokens_limit": spec.generation.max_new_tokens_limit,
    }


def _optional_path(path: Path | None) -> str | None:
    return str(path) if path is not None else None
