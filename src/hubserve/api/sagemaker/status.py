"""How a hubserve endpoint looks through SageMaker's DescribeEndpoint: status, variant, async config.

Everything here is derived from the endpoint's stored record and its live state in control; the
only SageMaker-side fact is which endpoint config the endpoint was made from.
"""

from __future__ import annotations

from typing import Any

from hubserve.api.sagemaker.shapes import variant_config
from hubserve.control.live import EndpointLive
from hubserve.spec import EndpointSpec, EndpointState
from hubserve.store import EndpointRecord

ACCOUNT = "000000000000"  # ARNs need an account; this server has one


def arn(region: str, kind: str, name: str) -> str:
    """SageMaker's ARN form (names lower-cased, as AWS does)."""
    return f"arn:aws:sagemaker:{region}:{ACCOUNT}:{kind}/{name.lower()}"


def endpoint_status(record: EndpointRecord, live: EndpointLive, pending: bool) -> str:
    """SageMaker's EndpointStatus for hubserve's state.

    A stored spec that is not deployed yet reads Updating on a serving endpoint (the rolling
    update has been asked for: ``pending``), Creating on a new one; scaled to zero and a failed update (the
    previous spec still serves) are InService; pausing (SageMaker has no such status: the replicas take
    no new work) and paused are OutOfService.
    """
    state = live.state
    if state is EndpointState.DELETING:
        return "Deleting"
    if state is EndpointState.FAILED:
        return "Failed"
    if state in (EndpointState.PAUSING, EndpointState.PAUSED) or record.desired == "paused":
        return "OutOfService"
    if not live.deployed:
        return "Creating"
    if state is EndpointState.UPDATING or pending:
        return "Updating"
    return "InService"


def failure_reason(live: EndpointLive) -> str | None:
    if live.state in (EndpointState.FAILED, EndpointState.UPDATE_FAILED):
        return live.reason
    return None


def production_variant(record: EndpointRecord, live: EndpointLive, variant_name: str) -> dict[str, Any]:
    """ProductionVariantSummary: current (deployed) and desired (stored) sizes."""
    current_spec: EndpointSpec = live.spec or record.spec
    current, desired = variant_config(current_spec), variant_config(record.spec)
    summary: dict[str, Any] = {"VariantName": variant_name, "CurrentWeight": 1.0, "DesiredWeight": 1.0}
    if "serverless" in current:
        summary["CurrentServerlessConfig"] = current["serverless"]
    else:
        summary["CurrentInstanceCount"] = len(live.replicas)
    if "serverless" in desired:
        summary["DesiredServerlessConfig"] = desired["serverless"]
    else:
        summary["DesiredInstanceCount"] = desired["instances"]
    return summary


def async_config(spec: EndpointSpec) -> dict[str, Any] | None:
    section = spec.async_inference
    if section is None:
        return None
    output: dict[str, Any] = {}
    if section.output_location:
        output["S3OutputPath"] = section.output_location
    config: dict[str, Any] = {"OutputConfig": output}
    if section.max_concurrent_invocations_per_replica:
        config["ClientConfig"] = {"MaxConcurrentInvocationsPerInstance": section.max_concurrent_invocations_per_replica}
    return config
