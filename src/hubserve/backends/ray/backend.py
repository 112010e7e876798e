"""``RayBackend``: replicas placed on a Ray cluster by Ray's scheduler, served over TCP.

Each replica first gets a lease: a tiny actor that reserves the replica's CPUs, memory (its
policed memory size) and a GPU for a ``cuda`` device (placement.py) with
``scheduling_strategy="SPREAD"``, so Ray picks the node and an endpoint's replicas spread across
nodes; a replica that no alive node could ever hold fails at once, naming what the nodes have.
The node the lease lands on is where that node's ``NodeAgent``
(agent.py; one named, zero-CPU actor per node, pinned with a hard node affinity) forks the
replica from its zygote. Stopping the replica kills its lease, which frees the reservation.

The gateway reaches the replica through the same ``SocketChannel`` as locally, over TCP to the
node's IP, so streams and cancels work unchanged. ``resources`` is synchronous and called often:
it answers from a cache that a background task refreshes from the agents every half second; the same
task copies new replica log bytes into ``<logs>/<endpoint>/<replica>.log``, where the local
backend writes them, so ``endpoint logs`` reads them unchanged.

A node that dies takes its agent and leases with it: ``wait_exit`` hears Ray's actor-died error,
fails the requests in flight with ``ReplicaCrashed`` naming the lost node, and returns -9 so
control replaces the replica (on a node that is alive).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from hubserve.backends.base import Replica, ReplicaHealth, ReplicaStartFailed, Resources
from hubserve.backends.channel import SocketChannel
from hubserve.backends.ray import models, placement
from hubserve.backends.ray.agent import NodeAgent
from hubserve.errors import ReplicaCrashed
from hubserve.types import Channel
from hubserve.worker.launch import ReplicaLaunch, encode_launch

log = logging.getLogger("hubserve.backends.ray")

NAMESPACE = "hubserve"
_REFRESH_S = 0.5  # how often resources and logs are fetched from the agents (a log line lags at most this)
_PHASE_POLL_S = 0.2  # how often a starting replica's phases are fetched from its agent
_LOST_CODE = -9  # what wait_exit returns for a replica whose node (or agent) died


class _Lease:
    """Holds a replica's CPUs, memory and GPUs on the node Ray chose; killed when the replica stops."""

    def node_id(self) -> str:
        return str(ray.get_runtime_context().get_node_id())


class _RayReplica:
    """What the backend keeps per replica: its lease, its node's agent, its log offset, its end."""

    def __init__(self, lease: Any, agent: Any, node: str, log_path: Path) -> None:
        self.lease = lease
        self.log_path = log_path
        self.agent = agent
        self.node = node
        self.log_offset = 0
        self.exit_code: int | None = None
        self.resources: Resources | None = None


class RayBackend:
    """Starts replicas on a Ray cluster (``address``), or on a local Ray instance it starts when None."""

    def __init__(self, logs_dir: Path, address: str | None = None, *, zygote: bool = True) -> None:
        self._logs_dir = logs_dir
        logs_dir.mkdir(parents=True, exist_ok=True)  # the metrics sampler prunes it from the start
        self._zygote = zygote
        self._owns_ray = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"namespace": NAMESPACE, "logging_level": logging.WARNING, "log_to_driver": False}
            if address:
                ray.init(address=address, **kwargs)
            else:  # a local instance: this machine's CPUs, no dashboard
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **kwargs)
            self._owns_ray = True
        self._lease_class: Any = ray.remote(_Lease)
        self._agent_class: Any = ray.remote(NodeAgent)
        self._agents: dict[str, Any] = {}
        self._replicas: dict[str, _RayReplica] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._shipping: dict[tuple[str, str], asyncio.Lock] = {}  # (node, content hash): one copy at a time
        # Agents are named per server: two servers on one cluster each have their own (and their own zygotes),
        # so one server's close never stops the other's replicas.
        self._owner = uuid.uuid4().hex[:8]
        self._warm_agents()

    # --- the Backend protocol ------------------------------------------------------------------

    async def start(self, replica_id: str, launch: ReplicaLaunch) -> Replica:
        wanted = placement.wanted(launch)
        nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        refusal = placement.infeasible(wanted, nodes)
        if refusal is not None:  # Ray would keep the lease pending forever: say why instead
            raise ReplicaStartFailed(refusal)
        lease: Any = self._lease_class.options(**wanted.options(), scheduling_strategy="SPREAD").remote()
        try:
            node = await lease.node_id.remote()
            agent = await self._agent(node)
            node_launch = await self._with_model_on(node, agent, launch)
            where = await agent.start.remote(replica_id, encode_launch(node_launch))
        except ray.exceptions.RayError as exc:
            ray.kill(lease)
            raise ReplicaStartFailed(f"Ray could not place the replica: {exc}") from exc
        log_path = self._logs_dir / launch.endpoint / f"{replica_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.touch()
        self._replicas[replica_id] = _RayReplica(lease, agent, node, log_path)
        self._ensure_refresher()
        return Replica(id=replica_id, launch=launch, log_location=str(log_path), placement=where)

    async def wait_ready(
        self, replica: Replica, timeout: float, on_phase: Callable[[str], None] | None = None
    ) -> Channel:
        state = self._replicas[replica.id]
        try:
            ready = await self._relaying_phases(
                state, replica.id, state.agent.wait_ready.remote(replica.id, timeout), on_phase
            )
        except ray.exceptions.RayError as exc:
            raise ReplicaStartFailed(f"node {state.node[:12]} was lost while the replica started: {exc}") from exc
        finally:
            with contextlib.suppress(ray.exceptions.RayError):  # the log so far, for the failure's reason
                await self._copy_logs(state.agent, {replica.id: state})
        if "error" in ready:
            await self.stop(replica)
            raise ReplicaStartFailed(str(ready["error"]))
        channel = await SocketChannel.connect_tcp(ready["host"], int(ready["port"]), replica.id)
        channel.where = f"on node {state.node[:12]} at {ready['host']}"
        replica.info = dict(ready["info"])
        replica.channel = channel
        return channel

    async def _relaying_phases(
        self, state: _RayReplica, replica_id: str, ready_ref: Any, on_phase: Callable[[str], None] | None
    ) -> dict[str, Any]:
        """Await the agent's ``wait_ready``, passing on each start phase the agent heard (polled) meanwhile."""
        waiting = asyncio.ensure_future(ready_ref)
        heard = 0
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=_PHASE_POLL_S)
            if on_phase is not None:
                with contextlib.suppress(ray.exceptions.RayError):
                    for phase in await state.agent.phases.remote(replica_id, heard):
                        heard += 1
                        try:
                            on_phase(phase)
                        except Exception:
                            log.exception("on_phase failed for %s", replica_id)
            if done:
                return dict(waiting.result())

    async def wait_exit(self, replica: Replica) -> int:
        state = self._replicas[replica.id]
        try:
            code = int(await state.agent.wait_exit.remote(replica.id))
        except ray.exceptions.RayError:
            code = _LOST_CODE
            reason = f"node {state.node[:12]} was lost"
            log.warning("replica %s: %s", replica.id, reason)
            if replica.channel is not None:
                replica.channel.fail_pending(
                    ReplicaCrashed(
                        f"Replica {replica.id} was lost with its {reason}; it is being replaced, retry the request."
                    )
                )
            self._agents.pop(state.node, None)
        state.exit_code = code
        return code

    async def stop(self, replica: Replica, grace_s: float = 5.0) -> None:
        if replica.channel is not None:
            await replica.channel.close()
        state = self._replicas.pop(replica.id, None)
        if state is None:
            return
        with contextlib.suppress(ray.exceptions.RayError):
            await self._copy_logs(state.agent, {replica.id: state})
            await state.agent.stop.remote(replica.id, grace_s)
        with contextlib.suppress(Exception):
            ray.kill(state.lease)
        state.exit_code = state.exit_code if state.exit_code is not None else 0

    def health(self, replica: Replica) -> ReplicaHealth:
        state = self._replicas.get(replica.id)
        if state is None or state.exit_code is not None:
            return ReplicaHealth.EXITED
        if replica.channel is None:
            return ReplicaHealth.STARTING
        return ReplicaHealth.EXITED if replica.channel.closed else ReplicaHealth.READY

    def resources(self, replica: Replica) -> Resources | None:
        """The figures the agents last reported (refreshed every half second); None once it is gone."""
        state = self._replicas.get(replica.id)
        return None if state is None or state.exit_code is not None else state.resources

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for agent in list(self._agents.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(agent.close.remote(), 10)
            with contextlib.suppress(Exception):
                ray.kill(agent)
        for state in self._replicas.values():
            with contextlib.suppress(Exception):
                ray.kill(state.lease)
        self._agents.clear()
        self._replicas.clear()
        if self._owns_ray:
            ray.shutdown()

    # --- agents, resources and logs ----------------------------------------------------------

    async def _agent(self, node: str) -> Any:
        """The node's agent, created the first time a replica lands there unless it was at start."""
        agent = self._agents.get(node)
        if agent is None:
            nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
            agent = self._create_agent(
                node, next((n["NodeManagerAddress"] for n in nodes if n["NodeID"] == node), "127.0.0.1")
            )
        await agent.ping.remote()  # its constructor ran (the zygote is starting), or it raises if the node is gone
        return agent

    def _create_agent(self, node: str, ip: str) -> Any:
        agent: Any = self._agent_class.options(
            name=f"agent-{self._owner}-{node}", namespace=NAMESPACE, get_if_exists=True, num_cpus=0,
            max_concurrency=1000, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        ).remote(node, ip, self._zygote, self._owner)  # fmt: skip
        self._agents[node] = agent
        return agent

    def _warm_agents(self) -> None:
        """An agent (and so a zygote importing torch) on every alive node now, as the local backend starts its zygote."""
        nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        for node in nodes:
            if node.get("Alive"):
                self._create_agent(node["NodeID"], node["NodeManagerAddress"])

    async def _with_model_on(self, node: str, agent: Any, launch: ReplicaLaunch) -> ReplicaLaunch:
        """``launch`` with a local-folder source replaced by that node's copy, sent there once per content hash."""
        source = Path(launch.source)
        if not source.is_absolute() or not source.is_dir():  # noqa: ASYNC240 (one stat)
            return launch  # a Hub repo: the replica resolves it on its node
        key = await asyncio.to_thread(models.content_hash, source)
        lock = self._shipping.setdefault((node, key), asyncio.Lock())
        async with lock:
            folder = await agent.model_folder.remote(key)
            if folder is None:
                started = time.perf_counter()
                files = await asyncio.to_thread(models.pack, source)
                folder = await agent.receive_model.remote(key, await asyncio.to_thread(ray.put, files))
                size_mb = sum(len(data) for data in files.values()) / 1e6
                log.info("model %s (%.1f MB, %s) sent to node %s in %.2fs", source, size_mb, key[:12], node[:12],
                         time.perf_counter() - started)  # fmt: skip
        roots = [str(Path(folder).parent)] if launch.allowed_roots else []
        return msgspec.structs.replace(launch, source=str(folder), allowed_roots=roots)

    def _ensure_refresher(self) -> None:
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh_forever(), name="ray-backend-refresh"
            )

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(_REFRESH_S)
            try:
                await self._refresh()
            except Exception:
                log.exception("refreshing replica resources and logs from the Ray agents failed")

    async def _refresh(self) -> None:
        by_agent: dict[str, dict[str, _RayReplica]] = {}
        for replica_id, state in self._replicas.items():
            if state.exit_code is None:
                by_agent.setdefault(state.node, {})[replica_id] = state
        for states in by_agent.values():
            agent = next(iter(states.values())).agent
            try:
                measured = await asyncio.wait_for(agent.resources.remote(), 5)
                await self._copy_logs(agent, states)
            except (ray.exceptions.RayError, asyncio.TimeoutError):
                continue  # a lost node: wait_exit reports it
            for replica_id, state in states.items():
                figures = measured.get(replica_id)
                state.resources = None if figures is None else Resources(memory_mb=figures[0], cpu_seconds=figures[1])

    async def _copy_logs(self, agent: Any, states: dict[str, _RayReplica]) -> None:
        """Append each replica's new log bytes on its node to its file here."""
        chunks = await agent.read_logs.remote({replica_id: state.log_offset for replica_id, state in states.items()})
        for replica_id, chunk in chunks.items():
            state = states[replica_id]
            with open(state.log_path, "ab") as handle:  # noqa: ASYNC230 (a local append, microseconds)
                handle.write(chunk)
            state.log_offset += len(chunk)
