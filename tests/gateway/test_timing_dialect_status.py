"""Timing records the status the client got: a route's dialect may answer an error with its own status."""

from __future__ import annotations

from pathlib import Path

from hubserve.api.sagemaker.invocations import status_of
from hubserve.errors import ColdStartTimeout, ModelNotReady
from hubserve.gateway.timing import Timing
from hubserve.logs import EventLog
from hubserve.metrics import Metrics
from hubserve.types import Invocation


def test_a_paused_endpoint_on_the_sagemaker_route_is_recorded_as_the_429_it_answered(tmp_path: Path) -> None:
    metrics, events = Metrics(), EventLog(tmp_path)
    timing = Timing(metrics, events)
    paused = ModelNotReady("Endpoint 'ep' is paused")
    timing.failed(Invocation("ep", path="/endpoints/ep/invocations", error_status=status_of), paused, None)
    timing.failed(Invocation("ep", path="/endpoints/ep"), paused, None)  # the HF route answers 503
    timing.failed(Invocation("ep", path="/endpoints/ep/invocations", error_status=status_of),
                  ColdStartTimeout("no replica in time"), None)  # fmt: skip  # SageMaker says 503 too
    events.close()
    summary = metrics.summary("ep", 300)
    assert summary["errors_4xx"] == 1 and summary["errors_5xx"] == 2
    access = [line for line in (tmp_path / "ep" / "hubserve.log").read_text().splitlines() if "access" in line]
    assert '"POST /endpoints/ep/invocations" 429' in access[0]
    assert '"POST /endpoints/ep" 503' in access[1] and '"POST /endpoints/ep/invocations" 503' in access[2]
