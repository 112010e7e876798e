"""SageMaker's async headers and JSON fields, checked against the limits."""

from __future__ import annotations

import pytest

from hubserve.asyncinf.request import DEFAULT_TIMEOUT_S, DEFAULT_TTL_S, parse, reference_fields
from hubserve.errors import ValidationError


def test_defaults_and_generated_id() -> None:
    request = parse({"content-type": "text/plain"})
    assert (request.ttl_s, request.timeout_s) == (DEFAULT_TTL_S, DEFAULT_TIMEOUT_S) == (21600, 900)
    assert len(request.inference_id) == 32 and not request.client_chose_id
    assert (request.content_type, request.accept, request.input_location) == ("text/plain", "application/json", None)


def test_sagemaker_headers_win() -> None:
    request = parse(
        {
            "content-type": "application/json",
            "x-amzn-sagemaker-content-type": "text/csv",
            "x-amzn-sagemaker-accept": "application/jsonlines",
            "x-amzn-sagemaker-inputlocation": "s3://b/k",
            "x-amzn-sagemaker-requestttlseconds": "60",
            "x-amzn-sagemaker-invocationtimeoutseconds": "3600",
            "x-amzn-sagemaker-inference-id": "job-1.part_2",
        }
    )
    assert (request.content_type, request.accept, request.input_location) == ("text/csv", "application/jsonlines", "s3://b/k")
    assert (request.ttl_s, request.timeout_s, request.inference_id, request.client_chose_id) == (60, 3600, "job-1.part_2", True)


def test_reference_fields_fill_in_and_the_body_type_is_not_the_payloads() -> None:
    fields = reference_fields({"input_location": "/data/x.json", "inference_id": "abc", "invocation_timeout_seconds": 5})
    assert fields is not None
    request = parse({"content-type": "application/json; charset=utf-8"}, fields)
    assert (request.input_location, request.inference_id, request.timeout_s) == ("/data/x.json", "abc", 5)
    assert request.content_type == "application/json"
    assert reference_fields({"inputs": "x", "input_location": "/a"}) is None  # a payload that mentions it
    assert reference_fields({"inputs": "x"}) is None
    with pytest.raises(ValidationError, match="Unknown field"):
        reference_fields({"input_location": "/a", "bogus": 1})


@pytest.mark.parametrize(
    ("header", "value", "says"),
    [
        ("x-amzn-sagemaker-requestttlseconds", "0", "between 1 and 21600"),
        ("x-amzn-sagemaker-requestttlseconds", "21601", "between 1 and 21600"),
        ("x-amzn-sagemaker-invocationtimeoutseconds", "3601", "between 1 and 3600"),
        ("x-amzn-sagemaker-invocationtimeoutseconds", "1.5", "whole number"),
        ("x-amzn-sagemaker-inference-id", "a/b", "Inference-Id"),
        ("x-amzn-sagemaker-inference-id", "x" * 65, "Inference-Id"),
    ],
)
def test_bad_values(header: str, value: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        parse({header: value})
