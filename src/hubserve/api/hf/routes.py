"""Inference Endpoints' REST API (``/v2/endpoint/{namespace}[/{name}]``) on hubserve's controller.

huggingface_hub's ``HfApi.*_inference_endpoint`` methods call these when
``huggingface_hub.constants.INFERENCE_ENDPOINTS_ENDPOINT`` is ``http://<hubserve>/v2``. Every
operation goes through the same controller calls as ``/v1/endpoints``; hubserve has one
namespace, so any namespace in the path addresses the same endpoints. Failures answer
``{"error": "<message>"}``, the body huggingface_hub prints in its ``HfHubHTTPError``.
``GET /endpoints/{name}/health`` is the health route ``InferenceEndpoint.wait()`` polls.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from hubserve.api import deps
from hubserve.api.bodies import parse_json
from hubserve.api.hf import shapes
from hubserve.api.management import describe, prepare
from hubserve.control.controller import Controller
from hubserve.errors import (
    EndpointExists,
    EndpointNotFound,
    HubserveError,
    ValidationError,
)
from hubserve.spec import EndpointState


class _HfErrors(APIRoute):
    """Render hubserve's errors as Inference Endpoints does: ``{"error": "..."}`` with the status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except HubserveError as error:
                return JSONResponse(
                    {"error": error.message},
                    status_code=error.status,
                    headers=error.headers,
                )
            except RequestValidationError as error:
                return JSONResponse(
                    {"error": f"invalid request: {error.errors()}"}, status_code=400
                )

        return route


router = APIRouter(route_class=_HfErrors)
v2 = APIRouter(
    prefix="/v2/endpoint",
    tags=["hugging face"],
    route_class=_HfErrors,
)


def _controller(request: Request) -> Controller:
    return deps.controller(request)


def _raw(request: Request, name: str) -> dict[str, Any]:
    services = deps.services(request)
    record, _ = services.controller.describe(name)
    description = describe(services, name, services.settings.public_base_url)  # never the Host header
    return shapes.to_raw(description, record.spec, services.settings.serverless_slots_per_replica)


async def _json(request: Request) -> Any:
    return parse_json(await request.body(), empty={})


@v2.get("/{namespace}", summary="List endpoints (Inference Endpoints shape)")
async def list_endpoints(request: Request, namespace: str) -> dict[str, Any]:
    return {
        "items": [
            _raw(request, record.name) for record, _ in _controller(request).list()
        ]
    }


@v2.post("/{namespace}", summary="Create an endpoint (Inference Endpoints shape)")
async def create_endpoint(request: Request, namespace: str) -> dict[str, Any]:
    body = shapes.parse(shapes.HfCreate, await _json(request))
    spec, notes = prepare(shapes.spec_from_create(body), deps.settings(request))
    try:
        _controller(request).create(spec, notes)
    except KeyError:
        raise EndpointExists(spec.name) from None
    return _raw(request, spec.name)


@v2.get(
    "/{namespace}/{name}", summary="Describe an endpoint (Inference Endpoints shape)"
)
async def get_endpoint(request: Request, namespace: str, name: str) -> dict[str, Any]:
    return _raw(request, name)


@v2.put(
    "/{namespace}/{name}",
    summary="Update an endpoint's model or compute (Inference Endpoints shape)",
)
async def update_endpoint(
    request: Request, namespace: str, name: str
) -> dict[str, Any]:
    controller = _controller(request)
    record, _ = controller.describe(name)
    body = shapes.parse(shapes.HfUpdate, await _json(request))
    spec, notes = prepare(
        shapes.spec_with_update(record.spec, body), deps.settings(request)
    )
    controller.update(spec, notes)
    return _raw(request, name)


@v2.delete("/{namespace}/{name}", summary="Delete an endpoint")
async def delete_endpoint(
    request: Request, namespace: str, name: str
) -> dict[str, Any]:
    _controller(request).delete(name)
    try:
        return _raw(request, name)
    except (
        EndpointNotFound
    ):  # already gone: the reconcile loop was quicker than this answer
        return {}


@v2.post("/{namespace}/{name}/pause", summary="Pause an endpoint")
async def pause_endpoint(request: Request, namespace: str, name: str) -> dict[str, Any]:
    _controller(request).pause(name)
    return _raw(request, name)


@v2.post("/{namespace}/{name}/resume", summary="Resume a paused or failed endpoint")
async def resume_endpoint(
    request: Request, namespace: str, name: str
) -> dict[str, Any]:
    controller = _controller(request)
    record, live = controller.describe(name)
    if record.desired != "paused" and live.state is not EndpointState.FAILED:
        # huggingface_hub's resume(running_ok=True) reads this 400 as "fine, fetch it".
        raise ValidationError(f"Endpoint '{name}' is already running ({live.state.value}).")
    controller.resume(name)
    return _raw(request, name)


@v2.post(
    "/{namespace}/{name}/scale-to-zero",
    summary="Stop every replica; the next request starts one",
)
async def scale_to_zero(request: Request, namespace: str, name: str) -> dict[str, Any]:
    await _controller(request).scale_to_zero(name)
    return _raw(request, name)


@router.get(
    "/endpoints/{name}/health",
    tags=["invocation"],
    summary="200 once a replica serves the endpoint",
)
async def endpoint_health(request: Request, name: str) -> JSONResponse:
    live = _controller(request).live(name)
    if live is None:
        raise EndpointNotFound(name)
    if not live.replicas:
        return JSONResponse({"error": f"Endpoint '{name}' has no ready replica ({live.state.value})."}, status_code=503)
    return JSONResponse({"status": "ok", "state": live.state.value})


router.include_router(v2)
