"""Observability routes: an endpoint's metrics window and logs as JSON, every endpoint for Prometheus."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from hubserve.api.deps import ServicesDep
from hubserve.logs import parse_since, read_logs
from hubserve.logs.format import now_stamp
from hubserve.metrics import parse_window

router = APIRouter(tags=["observability"])


@router.get("/v1/endpoints/{name}/metrics", summary="An endpoint's metrics over a rolling window")
async def endpoint_metrics(services: ServicesDep, name: str, window: str = "1h") -> dict[str, Any]:
    """Counts, latencies (avg/p50/p90/p99/max), cold starts, levels; ``window``: 60s, 5m, 1h (the most kept).

    ``generation`` (null unless the endpoint generates or streams): time to first token and inter-token
    latency, generated tokens and tokens/s, sequences running and waiting and batch size."""
    seconds = parse_window(window)
    services.controller.describe(name)  # 404 for an unknown endpoint
    body = services.metrics.summary(name, seconds)
    return {"endpoint": name, "window": window, "window_s": seconds, "resolution_s": 60, **body}


@router.get("/metrics", summary="Prometheus metrics of every endpoint", response_class=Response)
async def prometheus(services: ServicesDep) -> Response:
    """The stock Prometheus text format; behind the management token when one is set."""
    return Response(services.metrics.prometheus_text(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/endpoints/{name}/logs", summary="An endpoint's logs: its replicas' output and hubserve's events")
async def endpoint_logs(
    services: ServicesDep, name: str, since: str | None = None, tail: int = 200, source: str | None = None
) -> dict[str, Any]:
    """Lines in time order, the last ``tail`` at or after ``since`` (a time or 30s / 5m / 2h); ``source``:
    ``hubserve`` or a replica id. ``next_since`` continues from here (the CLI's --follow)."""
    services.controller.describe(name)  # 404 for an unknown endpoint
    folder = services.settings.home_dir / "logs" / name
    start = parse_since(since)
    lines = await asyncio.to_thread(read_logs, folder, start, tail, source)
    last = lines[-1].time if lines else (start or now_stamp())
    return {"endpoint": name, "lines": [line.as_dict() for line in lines], "next_since": last}
