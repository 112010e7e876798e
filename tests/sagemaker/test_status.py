"""hubserve states as SageMaker's EndpointStatus, from the record and the live state only."""

from __future__ import annotations

import datetime as dt

from hubserve.api.sagemaker.status import endpoint_status as status_of
from hubserve.api.sagemaker.status import production_variant
from hubserve.control.live import EndpointLive, Generation
from hubserve.spec import EndpointSpec, EndpointState
from hubserve.store import EndpointRecord

SPEC = EndpointSpec.model_validate({"name": "ep", "model": {"source": "/m", "task": "text-classification"}})
NEW_SPEC = EndpointSpec.model_validate(
    {"name": "ep", "model": {"source": "/m", "task": "text-classification"}, "compute": {"type": "dedicated"}}
)


def _record(spec: EndpointSpec = SPEC, desired: str = "running") -> EndpointRecord:
    now = dt.datetime.now(dt.timezone.utc)
    return EndpointRecord(spec, desired, EndpointState.RUNNING, None, [], now, now)


def _runtime(state: EndpointState, deployed: EndpointSpec | None = SPEC) -> EndpointLive:
    live = EndpointLive(name="ep", state=state)
    if deployed is not None:
        live.generation = Generation(deployed, deployed.model_dump_json(), policy=None)
    return live


def endpoint_status(record: EndpointRecord, live: EndpointLive, failed_spec: str | None = None) -> str:
    """As the controller decides ``pending``: the stored spec is neither deployed nor known to fail."""
    stored = record.spec.model_dump_json()
    deployed = live.generation.spec_json if live.generation is not None else None
    return status_of(record, live, pending=deployed != stored and failed_spec != stored)


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
    assert endpoint_status(_record(NEW_SPEC), failed_update, failed_spec=NEW_SPEC.model_dump_json()) == "InService"


def test_variant_reports_current_and_desired() -> None:
    variant = production_variant(_record(NEW_SPEC), _runtime(EndpointState.UPDATING), "AllTraffic")
    assert variant["CurrentServerlessConfig"]["MemorySizeInMB"] == 2048 and variant["DesiredInstanceCount"] == 1
