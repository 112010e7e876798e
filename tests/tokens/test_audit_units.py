"""Which requests the audit middleware records, and the audit table's filters (no server needed)."""

from __future__ import annotations

import datetime as dt

import pytest

from hubserve.api.audit import classify, parse_since
from hubserve.errors import ValidationError
from hubserve.store.audit import AuditEntry, AuditStore


@pytest.mark.parametrize(
    ("method", "path", "headers", "expected"),
    [
        ("POST", "/v1/endpoints", {}, ("endpoint.create", None)),
        ("PATCH", "/v1/endpoints/ep", {}, ("endpoint.patch", "ep")),
        ("POST", "/v1/endpoints/ep/scale-to-zero", {}, ("endpoint.scale_to_zero", "ep")),
        ("POST", "/v1/batch-jobs/batch-1/stop", {}, ("batch_job.stop", "batch-1")),
        ("DELETE", "/v1/tokens/abc", {}, ("token.revoke", "abc")),
        ("POST", "/v2/endpoint/me", {}, ("hf.create_endpoint", None)),
        ("PUT", "/v2/endpoint/me/ep", {}, ("hf.update_endpoint", "ep")),
        ("POST", "/v2/endpoint/me/ep/scale-to-zero", {}, ("hf.scale_to_zero_endpoint", "ep")),
        ("POST", "/", {"x-amz-target": "SageMaker.CreateEndpointConfig"}, ("sagemaker.CreateEndpointConfig", None)),
        ("POST", "/", {"x-amz-target": "SageMaker.DescribeEndpoint"}, None),
        ("POST", "/", {"x-amz-target": "SageMaker.ListModels"}, None),
        ("DELETE", "/v1/registry/g/1", {}, ("DELETE /v1/registry/g/1", None)),  # unnamed changes still recorded
    ],
)
def test_classify(method: str, path: str, headers: dict[str, str], expected: tuple[str, str | None] | None) -> None:
    assert classify(method, path, headers) == expected


def test_since_is_read_as_utc() -> None:
    assert parse_since("2026-01-31T12:00:00") == dt.datetime(2026, 1, 31, 12, tzinfo=dt.timezone.utc)
    assert parse_since("2026-01-31T13:00:00+01:00") == dt.datetime(2026, 1, 31, 12, tzinfo=dt.timezone.utc)
    assert parse_since("2026-01-31T12:00:00Z") == dt.datetime(2026, 1, 31, 12, tzinfo=dt.timezone.utc)
    with pytest.raises(ValidationError, match="ISO 8601"):
        parse_since("yesterday")


def test_the_store_reads_newest_first_with_filters() -> None:
    store = AuditStore("sqlite://")
    base = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for minute, target in enumerate(("a", "b", "a")):
        store.record(AuditEntry(
            at=base + dt.timedelta(minutes=minute), token_id="t1", token_name="n", method="POST",
            path="/v1/endpoints", action="endpoint.create", target=target, source="127.0.0.1",
            request_id=f"r{minute}", status=201,
        ))  # fmt: skip
    assert [e.request_id for e in store.list()] == ["r2", "r1", "r0"]
    assert [e.request_id for e in store.list(target="a")] == ["r2", "r0"]
    assert [e.request_id for e in store.list(since=base + dt.timedelta(minutes=1))] == ["r2", "r1"]
    assert [e.request_id for e in store.list(limit=1)] == ["r2"]
    assert store.list()[0].at == base + dt.timedelta(minutes=2) and store.list()[0].id is not None
    store.close()
