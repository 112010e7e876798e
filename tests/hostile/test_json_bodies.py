"""JSON bodies the server parses itself: UTF-8 checked and nesting bounded (api/bodies.py), on every route."""

from __future__ import annotations

import json

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from hubserve.api.bodies import MAX_JSON_DEPTH, BodyError, check_batch, parse_json
from hubserve.errors import ValidationError
from tests.integration.conftest import RunningServer

DEEP = b"[" * 100_000


def test_nesting_up_to_the_limit_parses_and_one_more_is_refused() -> None:
    assert parse_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is not None
    with pytest.raises(BodyError, match="nested too deeply"):
        parse_json(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    with pytest.raises(BodyError, match="nested too deeply"):
        parse_json(DEEP)


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"a": "[" * 500 + '\\"' + "{" * 500, "b": ['[\\"]']})
    assert parse_json(text.encode())["a"].startswith("[[")


def test_invalid_utf8_and_invalid_json_say_which() -> None:
    with pytest.raises(BodyError, match="not valid UTF-8"):
        parse_json(b'{"name": "\xff"}')
    with pytest.raises(BodyError, match="not valid JSON"):
        parse_json(b'{"name": ')
    assert parse_json(b"  ", empty={}) == {}


def test_a_batch_over_the_cap_is_refused_and_says_how_to_split() -> None:
    check_batch(json.dumps({"inputs": ["a"] * 10}).encode(), 10)
    with pytest.raises(ValidationError, match="split it into requests of at most 10"):
        check_batch(json.dumps({"inputs": ["a"] * 11}).encode(), 10)
    check_batch(b"[" * 1000, 10)  # not an object: left to the replica, no exception


def _signed(server: RunningServer, body: bytes, target: str = "SageMaker.ListEndpoints") -> dict[str, str]:
    request = AWSRequest(method="POST", url=f"{server.url}/", data=body, headers={
        "X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"})  # fmt: skip
    SigV4Auth(Credentials("hostile-key", server.token), "sagemaker", "us-east-1").add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize("body", [DEEP, b'{"x": "\xff"}'], ids=["deep", "not-utf8"])
def test_the_sagemaker_control_plane_answers_serialization_errors(hostile_server: RunningServer, body: bytes) -> None:
    response = httpx.post(f"{hostile_server.url}/", content=body, headers=_signed(hostile_server, body), timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["__type"] == "SerializationException"
    assert "nested too deeply" in response.json()["message"] or "UTF-8" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "says"), [(DEEP, "nested too deeply"), (b'{"name": "\xff"}', "UTF-8")], ids=["deep", "not-utf8"]
)
def test_inference_endpoints_v2_answers_400_in_its_dialect(hostile_api: httpx.Client, body: bytes, says: str) -> None:
    response = hostile_api.post("/v2/endpoint/someone", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]


@pytest.mark.parametrize("body", [DEEP, b'{"name": "\xff"}'], ids=["deep", "not-utf8"])
def test_the_management_api_answers_400(hostile_api: httpx.Client, body: bytes) -> None:
    response = hostile_api.post("/v1/endpoints", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "ValidationError"
    assert "UTF-8" in response.json()["error"]["message"]


def test_a_wrong_content_type_says_what_is_accepted(hostile_api: httpx.Client) -> None:
    response = hostile_api.post("/v1/endpoints", content=b"name=x", headers={"content-type": "text/plain"})
    assert response.status_code == 400
    assert "application/json" in response.json()["error"]["message"]
    assert hostile_api.get("/v1/endpoints").status_code == 200
