"""From an endpoint's metrics to a ``Usage``: the one place that knows the metrics' field names.

The per-endpoint metrics route (``GET /v1/endpoints/{name}/metrics?window=``) is being built
separately; when its shape settles, ``usage_from_metrics`` is the function to adjust.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from hubserve.cost.model import Usage

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_window(text: str) -> Decimal:
    """'90s', '15m', '1h', '7d' -> seconds."""
    match = _WINDOW.match(text.lower())
    if not match or Decimal(match.group(1)) <= 0:
        raise ValueError(f"window '{text}' is not a duration like 15m, 1h or 7d")
    return Decimal(match.group(1)) * _UNITS[match.group(2)]


def usage_from_metrics(metrics: dict[str, Any], memory_mb: int, window_s: Decimal) -> Usage:
    """Map the metrics route's answer to the fields the cost model needs.

    Billed duration is what SageMaker bills: model latency plus overhead latency of every
    invocation; data processed is the request and response bytes.
    """
    return Usage(
        invocations=int(metrics.get("invocations") or 0),
        billed_ms=_sum(metrics, "model_latency_ms") + _sum(metrics, "overhead_latency_ms"),
        bytes_processed=int(metrics.get("bytes_in") or 0) + int(metrics.get("bytes_out") or 0),
        memory_mb=memory_mb,
        window_s=window_s,
    )


def _sum(metrics: dict[str, Any], key: str) -> Decimal:
    value = metrics.get(key)
    if isinstance(value, dict):
        value = value.get("sum")
    return Decimal(str(value or 0))
