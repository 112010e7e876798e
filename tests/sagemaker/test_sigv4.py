"""SigV4 verification against requests signed by botocore itself, as boto3 signs them."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from hubserve.api.sagemaker import sigv4
from hubserve.api.sagemaker.errors import SageMakerApiError

URL = "http://127.0.0.1:8080/"
BODY = b'{"EndpointName": "x"}'


def _signed(secret: str, body: bytes = BODY) -> dict[str, str]:
    request = AWSRequest(method="POST", url=URL, data=body, headers={
        "X-Amz-Target": "SageMaker.DescribeEndpoint", "Content-Type": "application/x-amz-json-1.1",
    })  # fmt: skip
    SigV4Auth(Credentials("hubserve", secret), "sagemaker", "eu-west-1").add_auth(request)
    headers = {name.lower(): value for name, value in request.headers.items()}
    headers["host"] = "127.0.0.1:8080"
    return headers


def test_a_request_signed_with_the_token_passes() -> None:
    headers = _signed("tok")
    sigv4.verify("tok", "POST", URL, headers, BODY)
    assert sigv4.region_of(headers["authorization"]) == "eu-west-1"


@pytest.mark.parametrize(
    "change",
    [
        lambda h, b: ("other", h, b),  # another secret
        lambda h, b: ("tok", h, b + b" "),  # a changed body
        lambda h, b: ("tok", {**h, "x-amz-target": "SageMaker.DeleteEndpoint"}, b),  # a changed signed header
    ],
)
def test_anything_changed_is_refused(change) -> None:
    secret, headers, body = change(_signed("tok"), BODY)
    with pytest.raises(SageMakerApiError) as info:
        sigv4.verify(secret, "POST", URL, headers, body)
    assert (info.value.code, info.value.status) == ("InvalidSignatureException", 401)


def test_unsigned_and_stale_requests_are_refused() -> None:
    with pytest.raises(SageMakerApiError) as unsigned:
        sigv4.verify("tok", "POST", URL, {"host": "127.0.0.1:8080"}, BODY)
    assert unsigned.value.code == "MissingAuthenticationTokenException"
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=6)  # the window is 5 minutes
    with pytest.raises(SageMakerApiError, match="expired"):
        sigv4.verify("tok", "POST", URL, _signed("tok"), BODY, now=later)


def test_the_credential_scope_must_name_sagemaker_and_a_region() -> None:
    request = AWSRequest(method="POST", url=URL, data=BODY, headers={"X-Amz-Target": "SageMaker.DescribeEndpoint"})
    SigV4Auth(Credentials("hubserve", "tok"), "s3", "eu-west-1").add_auth(request)
    headers = {name.lower(): value for name, value in request.headers.items()} | {"host": "127.0.0.1:8080"}
    with pytest.raises(SageMakerApiError, match="service 's3'"):
        sigv4.verify("tok", "POST", URL, headers, BODY)
    request = AWSRequest(method="POST", url=URL, data=BODY, headers={"X-Amz-Target": "SageMaker.DescribeEndpoint"})
    SigV4Auth(Credentials("hubserve", "tok"), "sagemaker", "not a region").add_auth(request)
    headers = {name.lower(): value for name, value in request.headers.items()} | {"host": "127.0.0.1:8080"}
    with pytest.raises(SageMakerApiError, match="region"):
        sigv4.verify("tok", "POST", URL, headers, BODY)
