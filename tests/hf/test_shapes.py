"""Inference Endpoints payloads <-> EndpointSpec, without a server."""

from __future__ import annotations

import pytest

from hubserve.api.hf import shapes
from hubserve.errors import SpecError
from hubserve.spec import DedicatedCompute, EndpointSpec, ServerlessCompute


def _create(**compute: object) -> shapes.HfCreate:
    body = {
        "name": "ep",
        "model": {
            "repository": "org/model",
            "framework": "pytorch",
            "revision": None,
            "image": {"huggingface": {}},
        },
        "compute": compute,
        "provider": {"region": "us-east-1", "vendor": "aws"},
        "type": "protected",
        "tags": ["ignored"],
    }
    return shapes.parse(shapes.HfCreate, body)


@pytest.mark.parametrize(
    ("accelerator", "instance_type", "size", "instance"),
    [
        ("cpu", "intel-icl", "x1", "cpu-small"),
        ("cpu", "intel-spr", "x2", "cpu-medium"),
        ("cpu", "intel-icl", "x4", "cpu-large"),
        ("cpu", "intel-icl", "x8", "cpu-xlarge"),
        ("cpu", "intel-icl", "medium", "cpu-medium"),
        ("gpu", "nvidia-t4", "x1", "gpu-small"),
        (None, "nvidia-a10g", "x2", "gpu-medium"),
        ("gpu", "nvidia-l4", "x4", "gpu-large"),
        ("cpu", "intel-icl", "cpu-large", "cpu-large"),
    ],
)
def test_instance_sizes(
    accelerator: str | None, instance_type: str, size: str, instance: str
) -> None:
    spec = shapes.spec_from_create(
        _create(accelerator=accelerator, instanceType=instance_type, instanceSize=size)
    )
    assert (
        isinstance(spec.compute, DedicatedCompute) and spec.compute.instance == instance
    )


def test_create_maps_model_scaling_type_and_env() -> None:
    body = _create(accelerator="cpu", instanceType="intel-icl", instanceSize="x2",
                   scaling={"minReplica": 0, "maxReplica": 3, "scaleToZeroTimeout": 10})  # fmt: skip
    body.model.task = "text-classification"
    body.model.env = {"A": "1"}
    body.model.secrets = {"KEY": "s"}
    spec = shapes.spec_from_create(body)
    assert spec.model.source == "org/model" and spec.model.task == "text-classification"
    assert spec.compute == DedicatedCompute(
        instance="cpu-medium", min_replicas=0, max_replicas=3, scale_to_zero_after_s=600
    )
    assert (
        spec.env == {"A": "1", shapes.COMPAT_ENV: "true"}
        and spec.secrets == {"KEY": "s"}  # apart from env: never shown
        and spec.access == "protected"
    )


def test_unknown_size_and_framework_are_rejected() -> None:
    with pytest.raises(SpecError, match=r"compute.instanceSize"):
        shapes.spec_from_create(_create(accelerator="cpu", instanceSize="x3"))
    body = _create()
    body.model.framework = "tensorflow"
    with pytest.raises(SpecError, match=r"model.framework"):
        shapes.spec_from_create(body)


def test_update_keeps_what_it_does_not_name() -> None:
    spec = shapes.spec_from_create(
        _create(
            accelerator="cpu",
            instanceSize="x2",
            scaling={"minReplica": 1, "maxReplica": 2},
        )
    )
    scaled = shapes.spec_with_update(
        spec, shapes.parse(shapes.HfUpdate, {"compute": {"scaling": {"maxReplica": 4}}})
    )
    assert scaled.compute == DedicatedCompute(
        instance="cpu-medium", min_replicas=1, max_replicas=4
    )
    assert scaled.model == spec.model and scaled.env == spec.env

    moved = shapes.spec_with_update(
        spec.model_copy(
            update={
                "model": spec.model.model_copy(
                    update={"task": "fill-mask", "revision": "v1"}
                )
            }
        ),
        shapes.parse(shapes.HfUpdate, {"model": {"repository": "/models/other"}}),
    )
    assert (moved.model.source, moved.model.task, moved.model.revision) == (
        "/models/other",
        None,
        None,
    )


def test_serverless_endpoint_updated_through_hf_becomes_dedicated() -> None:
    spec = EndpointSpec(
        name="ep", model={"source": "org/m"}, compute=ServerlessCompute(memory_mb=3072)
    )
    updated = shapes.spec_with_update(
        spec, shapes.parse(shapes.HfUpdate, {"compute": {"scaling": {"minReplica": 0}}})
    )
    assert updated.compute == DedicatedCompute(instance="cpu-medium", min_replicas=0)


def test_raw_is_what_huggingface_hub_reads() -> None:
    from huggingface_hub import HfApi, InferenceEndpoint

    spec = shapes.spec_from_create(
        _create(accelerator="gpu", instanceType="nvidia-t4", instanceSize="x1")
    )
    description = {
        "state": "updateFailed", "reason": "update failed: boom", "url": "http://h/endpoints/ep",
        "replicas": {"ready": 1, "desired": 1},
        "created_at": "2024-05-01T10:00:00.123456+00:00", "updated_at": "2024-05-01T10:05:00+00:00",
    }  # fmt: skip
    raw = shapes.to_raw(description, spec, slots_per_replica=4)
    endpoint = InferenceEndpoint.from_raw(raw, namespace="me", token="t", api=HfApi())
    assert (endpoint.status, endpoint.url, endpoint.repository, endpoint.type) == (
        "updateFailed",
        "http://h/endpoints/ep",
        "org/model",
        "protected",
    )
    assert (
        endpoint.created_at.microsecond == 123000
        and raw["status"]["errorMessage"] == "update failed: boom"
    )
    assert raw["compute"] == {"accelerator": "gpu", "instanceType": "nvidia-gpu", "instanceSize": "x1",
                              "scaling": {"minReplica": 1, "maxReplica": 1, "scaleToZeroTimeout": 15}}  # fmt: skip


def test_update_keeps_secrets_sent_back_redacted_and_refuses_unknown_ones() -> None:
    body = _create()
    body.model.secrets = {"KEY": "s"}
    spec = shapes.spec_from_create(body)
    kept = shapes.spec_with_update(spec, shapes.HfUpdate.model_validate({"model": {"secrets": {"KEY": "***"}}}))
    assert kept.secrets == {"KEY": "s"}
    untouched = shapes.spec_with_update(spec, shapes.HfUpdate.model_validate({"model": {"env": {"B": "2"}}}))
    assert untouched.secrets == {"KEY": "s"}
    with pytest.raises(SpecError, match=r"secrets.OTHER"):
        shapes.spec_with_update(spec, shapes.HfUpdate.model_validate({"model": {"secrets": {"OTHER": "***"}}}))
