"""The web console: its page and static files (no token: they hold no data) and the small JSON helpers
it needs beyond the management API (behind the token, like every data route)."""

from __future__ import annotations

import asyncio
import mimetypes
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from hubserve.api import deps
from hubserve.console import STATIC_DIR
from hubserve.cost.model import price_usage
from hubserve.cost.pricing import PricingError, load_pricing
from hubserve.cost.usage import usage_from_metrics
from hubserve.errors import ValidationError
from hubserve.metrics import parse_window
from hubserve.models import sources
from hubserve.spec import INSTANCE_SIZES, MEMORY_SIZES_MB, DedicatedCompute, EndpointSpec, ServerlessCompute
from hubserve.tasks import TASKS

_NO_CACHE = {"Cache-Control": "no-cache"}  # the files change with hubserve itself; revalidate each load

pages = APIRouter(include_in_schema=False)
data = APIRouter(tags=["console"])


@pages.get("/")
async def console_page() -> FileResponse:
    """The console's single page; everything after it is fetched with the user's token."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_NO_CACHE)


@pages.get("/console/config")
async def console_config(request: Request) -> dict[str, Any]:
    """Whether this server asks for a token, so the console offers sign-in and "Sign out" only where
    there is one (public: it says nothing but that; declared before the static files it would shadow)."""
    return {"auth_required": bool(deps.settings(request).token)}


@pages.get("/console/{path:path}")
async def console_asset(path: str) -> FileResponse:
    """A static file of the console, confined to the package's static folder."""
    root = STATIC_DIR.resolve()
    target = (root / path).resolve()
    if root not in target.parents or not target.is_file():
        raise HTTPException(404, f"no console file '{path}'")
    media_type = "text/javascript" if target.suffix == ".js" else mimetypes.guess_type(target.name)[0]
    return FileResponse(target, media_type=media_type or "application/octet-stream", headers=_NO_CACHE)


@data.get("/v1/console/options", summary="What the console's forms offer: tasks, sizes and limits")
async def options() -> dict[str, Any]:
    return {
        "tasks": list(TASKS),
        "memory_sizes_mb": list(MEMORY_SIZES_MB),
        "instance_sizes": INSTANCE_SIZES,
        "runtimes": ["torch", "onnx", "onnx-int8", "auto"],
        "serverless_defaults": ServerlessCompute().model_dump(),
        "dedicated_defaults": DedicatedCompute().model_dump(),
    }


@data.get("/v1/console/infer-task", summary="The task a model source would get, to pre-fill the create form")
async def infer_task_of(request: Request, source: str, revision: str | None = None) -> dict[str, Any]:
    """Local folders go through the same resolution (and model_roots confinement) as a create; Hub ids
    are only looked up in the local cache, never downloaded from here."""
    settings = deps.settings(request)
    return await asyncio.to_thread(_infer, source.strip(), revision, settings.model_roots or None, settings.hub_cache)


def _infer(source: str, revision: str | None, roots: list[Path] | None, hub_cache: Path | None) -> dict[str, Any]:
    from hubserve.models.task_inference import infer_task

    answer: dict[str, Any] = {"source": source, "local": sources.is_local(source), "task": None, "message": None}
    if not source:
        answer["message"] = "give a local folder or a Hub repo id"
        return answer
    try:
        if answer["local"]:
            folder = sources.resolve_local(source, roots)
        else:
            folder = sources.resolve_hub(source, revision, hub_cache, local_only=True)
        answer["task"] = infer_task(folder)
    except sources.SourceError as exc:
        answer["message"] = str(exc)
    except ValueError as exc:
        answer["message"] = str(exc)
    return answer


@data.get("/v1/endpoints/{name}/cost", summary="An endpoint's traffic over a window, priced serverless vs dedicated")
async def endpoint_cost(request: Request, name: str, window: str = "1h") -> dict[str, Any]:
    services = deps.services(request)
    record, _ = services.controller.describe(name)  # 404 for an unknown endpoint
    seconds = parse_window(window)
    metrics = services.metrics.summary(name, seconds)
    try:
        pricing = load_pricing()
    except PricingError as exc:
        raise ValidationError(str(exc)) from None
    memory = serverless_memory(record.spec)
    priced = price_usage(pricing, usage_from_metrics(metrics, memory, Decimal(str(seconds))))
    # One always-on replica each: the endpoint's own size (or its serverless equivalent), then the baseline.
    sizes = [size for size in dict.fromkeys((equivalent_instance(record.spec), pricing.baseline_instance)) if size in priced.instances]
    dedicated = [{"instance": size, "window": float(priced.instances[size][0]), "per_month": float(priced.instances[size][1])} for size in sizes]
    cheaper = "serverless" if not sizes or priced.serverless_window < priced.instances[sizes[0]][0] else "dedicated"
    return {
        "endpoint": name,
        "window": window,
        "window_s": seconds,
        "invocations": priced.usage.invocations,
        "billed_ms": float(priced.usage.billed_ms),
        "bytes_processed": priced.usage.bytes_processed,
        "serverless": {
            "memory_mb": memory,
            "window": float(priced.serverless_window),
            "per_month": float(priced.serverless_month),
            "requests_per_month": float(priced.requests_per_month),
        },
        "dedicated": dedicated,
        "cheaper": cheaper,
        "pricing_source": pricing.source,
    }


def equivalent_instance(spec: EndpointSpec) -> str:
    """The dedicated size to compare with: the endpoint's own, or the smallest CPU size holding its memory."""
    if isinstance(spec.compute, DedicatedCompute):
        return spec.compute.instance
    cpu = [(info["memory_mb"], name) for name, info in INSTANCE_SIZES.items() if info["accelerator"] == "cpu"]
    return min((pair for pair in cpu if pair[0] >= spec.compute.memory_mb), default=max(cpu))[1]


def serverless_memory(spec: EndpointSpec) -> int:
    """The memory size to price serverless at: the endpoint's own, or the smallest that holds its instance."""
    if isinstance(spec.compute, ServerlessCompute):
        return spec.compute.memory_mb
    wanted = int(INSTANCE_SIZES[spec.compute.instance]["memory_mb"])
    return min((size for size in MEMORY_SIZES_MB if size >= wanted), default=MEMORY_SIZES_MB[-1])


router = APIRouter()
router.include_router(pages)
router.include_router(data)
