"""The composition root: the one place that builds a server's parts and wires them together.

One store engine for every table; the backend picked by settings; control, the gateway (with
control as its ``Capacity`` and itself as control's demand), the async queue and batch jobs
(through the gateway), the metrics sampler; then the HTTP app that mounts the routes. The CLI's
``serve`` calls ``serve`` here; tests and tools may call ``create_app``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from hubserve.api.app import build_app
from hubserve.api.http_protocol import protocol_for
from hubserve.asyncinf import AsyncInference
from hubserve.backends.base import Backend
from hubserve.backends.isolation import ReplicaUserError, choose_replica_user
from hubserve.backends.local import LocalBackend
from hubserve.batch.execution import ChunkComputer
from hubserve.batch.runner import BatchJobRunner
from hubserve.batch.through_gateway import GatewayChunks
from hubserve.control.controller import Controller
from hubserve.control.observe import Sampler
from hubserve.exposure import check_bind
from hubserve.gateway import Admission, Gateway, Holding, Timing
from hubserve.homedir import make_private, use_private_umask
from hubserve.logs import EventLog
from hubserve.metrics import Metrics
from hubserve.services import Services
from hubserve.settings import Settings
from hubserve.storage import Storage
from hubserve.store import EndpointStore
from hubserve.store.audit import AuditStore
from hubserve.store.batch_jobs import BatchJobStore
from hubserve.store.engine import open_engine
from hubserve.store.inferences import InferenceStore
from hubserve.store.leases import LeaseStore
from hubserve.store.registry import RegistryStore
from hubserve.store.sagemaker import SageMakerStore
from hubserve.store.servers import ServerStore
from hubserve.store.tokens import TokenStore, load_or_create_key


def build_backend(settings: Settings) -> Backend:
    """Where replicas run, as settings say: ``local`` processes, or Ray actors (imported only then)."""
    if settings.backend == "ray":
        from hubserve.backends.ray import RayBackend

        return RayBackend(settings.home_dir / "logs", settings.ray_address, zygote=settings.zygote)
    user, warning = choose_replica_user(settings.replica_user)
    if warning:
        logging.getLogger("hubserve").warning("%s", warning)
    return LocalBackend(settings.home_dir / "logs", zygote=settings.zygote, replica_user=user)


def chunk_computer(settings: Settings, controller: Controller, gateway: Gateway) -> ChunkComputer:
    """Where batch jobs compute their chunks: the job's replica through the gateway, or Ray Data on Ray."""
    through_gateway = GatewayChunks(controller, gateway)
    if settings.backend == "ray":
        from hubserve.batch.ray_data import RayDataChunks

        return RayDataChunks(controller.launch_for, fallback=through_gateway)
    return through_gateway


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Services]:
    """Build, start and (on exit) stop every part of one server."""
    home = settings.home_dir
    make_private(home)  # 0700, and an older home's world-readable files narrowed
    engine = open_engine(settings.store_url)
    storage = Storage([settings.storage_root, *settings.storage_roots], s3_endpoint_url=settings.s3_endpoint_url)
    events = EventLog(home / "logs")  # per endpoint: what hubserve did, and access lines
    metrics = Metrics()
    backend = build_backend(settings)
    controller = Controller(EndpointStore(engine), backend, settings, events, LeaseStore(engine),
                            ServerStore(engine),  # endpoint leases; where each server is reached (forwarding)
                            registry=RegistryStore(engine))  # registry:// sources resolve through it
    gateway = Gateway(
        controller,
        Admission(settings.max_payload_bytes),
        Holding(controller, events, settings.cold_start_timeout_s),
        Timing(metrics, events),
    )
    controller.add_demand(gateway.traffic)
    async_inference = AsyncInference(InferenceStore(engine), controller, gateway, storage, settings)
    controller.add_demand(async_inference.dispatcher)  # queued work starts replicas too
    batch_jobs = BatchJobRunner(BatchJobStore(engine), chunk_computer(settings, controller, gateway), storage,
                                home / "batch-jobs")  # fmt: skip
    services = Services(
        settings=settings, storage=storage, events=events, metrics=metrics, backend=backend,
        controller=controller, gateway=gateway, async_inference=async_inference, batch_jobs=batch_jobs,
        sagemaker_store=SageMakerStore(engine),
        tokens=TokenStore(engine, load_or_create_key(home / "token.key")),
        audit=AuditStore(engine),
    )  # fmt: skip
    sampler = Sampler(controller, backend, gateway.traffic, metrics, home / "logs")
    await controller.start()
    sampler_task = asyncio.create_task(sampler.run_forever(), name="metrics-sampler")
    await async_inference.start()
    await batch_jobs.start()
    try:
        yield services
    finally:
        sampler_task.cancel()
        await async_inference.stop()  # cut-short inferences go back to the queue first
        await batch_jobs.stop()  # jobs stay running in the store and resume on the next start
        await controller.stop()
        await backend.close()
        events.close()
        engine.dispose()


def create_app(settings: Settings) -> FastAPI:
    """The HTTP app of a server built by ``running``."""
    return build_app(settings, running)


def serve(settings: Settings) -> None:
    """Run the server until Ctrl-C (uvicorn with uvloop and httptools)."""
    import uvicorn

    exposure = check_bind(settings)  # UnsafeBind: a non-loopback bind without a token, refused
    logging.getLogger("hubserve").log(logging.WARNING if "INSECURE" in exposure else logging.INFO, exposure)
    try:
        choose_replica_user(settings.replica_user)  # a named replica user that cannot serve: refused before start
    except ReplicaUserError as exc:
        raise SystemExit(f"hubserve serve: {exc}") from None
    use_private_umask()  # state.db, the token key, logs and storage: 0600 files in 0700 folders
    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, loop="uvloop",
        http=protocol_for(settings),  # httptools, with a header deadline (408) and size cap (431)
        access_log=False, log_level="info", timeout_graceful_shutdown=10,
    )  # fmt: skip
    uvicorn.Server(config).run()
