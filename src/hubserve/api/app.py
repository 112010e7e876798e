"""Assemble the ASGI app: store, backend, controller and gateway live for the app's lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from hubserve import __version__
from hubserve.api import invocation, management
from hubserve.api.errors import install_error_handlers
from hubserve.backends.local import LocalBackend
from hubserve.control.controller import Controller
from hubserve.gateway.gateway import Gateway
from hubserve.settings import Settings
from hubserve.storage import Storage
from hubserve.store import EndpointStore


def create_app(settings: Settings) -> FastAPI:
    home = settings.home_dir

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        home.mkdir(parents=True, exist_ok=True)
        store = EndpointStore(settings.store_url)
        app.state.storage = Storage(
            [settings.storage_root, *settings.storage_roots], s3_endpoint_url=settings.s3_endpoint_url
        )
        controller = Controller(store, LocalBackend(home / "logs", zygote=settings.zygote), settings)
        app.state.controller = controller
        app.state.gateway = Gateway(controller)
        await controller.start()
        try:
            yield
        finally:
            await controller.stop()
            store.close()

    app = FastAPI(title="hubserve", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(management.router)
    app.include_router(invocation.router)

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
