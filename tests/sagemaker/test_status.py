"""hubserve states as SageMaker's EndpointStatus, from the record and the runtime only."""

from __future__ import annotations

import datetime as dt

from hubserve.api.sagemaker.status import endpoint_status, production_variant
from hubserve.control.runtime import EndpointRuntime
from hubserve.spec import EndpointSpec, EndpointState
from hubserve.store import EndpointRecord

SPEC = EndpointSpec.model_validate({"name": "ep", "model": {"source": "/m", "task": "text-classification"}})
NEW_SPEC = EndpointSpec.model_validate(
    {"name": "ep", "model": {"source": "/m", "task": "text-classification"}, "compute": {"type": "dedicated"}}
)


def _record(spec: EndpointSpec = SPEC, desired: str = "running") -> EndpointRecord:
    now = dt.datetime.now(dt.timezone.utc)
    return EndpointRecord(spec, desired, EndpointState.RUNNING, None, [], now, now)


def _runtime(state: EndpointState, deployed: EndpointSpec | None = SPEC) -> EndpointRuntime:
    runtime = EndpointRuntime(name="ep", state=state)
    if deployed is not None:
        runtime.spec, runtime.spec_json = deployed, deployed.model_dump_json()
    return runtime


def test_statuses() -> None:
    assert endpoint_status(_record(), _runtime(EndpointState.INITIALIZING, deployed=None)) == "Creating"
    assert endpoint_status(_record(), _runtime(EndpointState.RUNNING)) == "InService"
    assert endpoint_status(_record(), _runtime(EndpointState.SCALED_TO_ZERO)) == "InService"
    assert endpoint_status(_record(), _runtime(EndpointState.INITIALIZING)) == "InService"  # back from zero
    assert endpoint_status(_record(NEW_SPEC), _runtime(EndpointState.RUNNING)) == "Updating"  # asked, not begun
    assert endpoint_status(_record(desired="paused"), _runtime(EndpointState.RUNNING)) == "OutOfService"
    assert endpoint_status(_record(), _runtime(EndpointState.FAILED, deployed=None)) == "Failed"
    assert endpoint_status(_record(), _runtime(EndpointState.DELETING)) == "Deleting"
    failed_update = _runtime(EndpointState.UPDATE_FAILED)
    failed_update.failed_spec = NEW_SPEC.model_dump_json()
    assert endpoint_status(_record(NEW_SPEC), failed_update) == "InService"


def test_variant_reports_current_and_desired() -> None:
    variant = production_variant(_record(NEW_SPEC), _runtime(EndpointState.UPDATING), "AllTraffic")
    assert variant["CurrentServerlessConfig"]["MemorySizeInMB"] == 2048 and variant["DesiredInstanceCount"] == 1
