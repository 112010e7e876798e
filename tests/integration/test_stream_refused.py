"""A stream asked of an endpoint that cannot stream is a 400 saying so, in each route's dialect.

Without it a streaming client (TGI's, OpenAI's, boto3's InvokeEndpointWithResponseStream) would
read the one JSON answer as an empty stream. An endpoint whose custom handler yields parts keeps
streaming: as server-sent events on the HF route (asked by ``Accept`` or ``"stream": true``), as
AWS event-stream ``PayloadPart`` events on SageMaker's response-stream route.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from tests.integration.conftest import RunningServer, wait_for_state
from tests.integration.models import streaming_handler_model

PLAIN, STREAMER = "refuse-plain", "refuse-streamer"
SSE = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module")
def endpoints(api: httpx.Client, tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    folder = streaming_handler_model(tmp_path_factory.mktemp("refuse-streamer") / "model")
    specs = [
        {"name": PLAIN, "model": {"source": str(tiny_models["text-classification"]), "task": "text-classification"}},
        {"name": STREAMER, "model": {"source": str(folder), "task": "text-generation"}, "custom_code": True},
    ]
    for spec in specs:
        assert api.post("/v1/endpoints", json=spec).status_code == 201
    for spec in specs:
        assert wait_for_state(api, spec["name"], {"running", "failed"}, timeout=300)["state"] == "running"
    yield
    for spec in specs:
        api.delete(f"/v1/endpoints/{spec['name']}")


@pytest.fixture(scope="module")
def runtime(server: RunningServer) -> Any:
    return boto3.client("sagemaker-runtime", endpoint_url=server.url, aws_access_key_id="hubserve",
                        aws_secret_access_key=server.token, region_name="us-east-1",
                        config=Config(retries={"total_max_attempts": 1}))  # fmt: skip


@pytest.mark.parametrize(
    ("headers", "body"),
    [(SSE, {"inputs": "I love this"}), ({}, {"inputs": "I love this", "stream": True})],
    ids=["accept", "body"],
)
def test_the_hf_route_refuses_a_stream_it_cannot_give(
    api: httpx.Client, endpoints: None, headers: dict[str, str], body: dict[str, Any]
) -> None:
    response = api.post(f"/endpoints/{PLAIN}", json=body, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "ValidationError"
    assert f"Endpoint '{PLAIN}' cannot stream: its task (text-classification)" in error["message"]
    assert 'Accept: text/event-stream and "stream": true' in error["message"]
    plain = api.post(f"/endpoints/{PLAIN}", json={"inputs": "I love this", "stream": False})
    assert plain.status_code == 200 and plain.json()[0]["label"]  # "stream": false is no request for one


def test_the_refusal_is_in_the_access_log(api: httpx.Client, endpoints: None) -> None:
    api.post(f"/endpoints/{PLAIN}", json={"inputs": "x"}, headers=SSE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = api.get(f"/v1/endpoints/{PLAIN}/logs", params={"tail": 50}).json()["lines"]
        if any(line["message"].startswith(f'"POST /endpoints/{PLAIN}" 400') for line in lines):
            return
        time.sleep(0.2)
    raise AssertionError(lines)


def test_sagemaker_refuses_in_its_own_shape(api: httpx.Client, runtime: Any, endpoints: None) -> None:
    invoked = api.post(f"/endpoints/{PLAIN}/invocations", json={"inputs": "x", "stream": True})
    assert invoked.status_code == 400 and invoked.headers["x-amzn-ErrorType"] == "ValidationError"
    assert "cannot stream" in invoked.json()["message"]
    with pytest.raises(ClientError) as info:
        runtime.invoke_endpoint_with_response_stream(EndpointName=PLAIN, Body=json.dumps({"inputs": "x"}),
                                                     ContentType="application/json")  # fmt: skip
    error = info.value.response["Error"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Code"] == "ValidationError" and f"Endpoint '{PLAIN}' cannot stream" in error["Message"]
    assert "call InvokeEndpoint" in error["Message"]


def test_an_endpoint_that_streams_keeps_streaming(server: RunningServer, runtime: Any, endpoints: None) -> None:
    body = {"inputs": {"parts": 3}, "stream": True}
    with httpx.stream("POST", f"{server.url}/endpoints/{STREAMER}", headers=server.headers(), json=body, timeout=60) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
    assert [event["token"]["id"] for event in events] == [0, 1, 2]

    answer = runtime.invoke_endpoint_with_response_stream(
        EndpointName=STREAMER, Body=json.dumps({"inputs": {"parts": 4}}), ContentType="application/json",
        CustomAttributes="trace=1",
    )  # fmt: skip
    assert answer["ContentType"] == "application/json" and answer["CustomAttributes"] == "trace=1"
    parts = [json.loads(event["PayloadPart"]["Bytes"]) for event in answer["Body"]]
    assert [part["token"]["id"] for part in parts] == [0, 1, 2, 3]


def test_a_failure_mid_stream_ends_the_event_stream(runtime: Any, endpoints: None) -> None:
    answer = runtime.invoke_endpoint_with_response_stream(
        EndpointName=STREAMER, Body=json.dumps({"inputs": {"parts": 5, "fail_after": 2}}), ContentType="application/json"
    )
    received = []
    with pytest.raises(EventStreamError) as info:
        for event in answer["Body"]:
            received.append(json.loads(event["PayloadPart"]["Bytes"]))
    assert [part["token"]["id"] for part in received] == [0, 1]
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    assert "failed after 2 parts" in info.value.response["Error"]["Message"]
