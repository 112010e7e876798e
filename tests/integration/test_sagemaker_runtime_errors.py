"""SageMaker runtime failures as boto3 and the AWS CLI read them, and as hubserve records them.

InvokeEndpointAsync answers its errors in SageMaker's shape (``x-amzn-ErrorType`` and ``message``),
so the client shows the code and the message; a paused endpoint on InvokeEndpoint is the 429
``ModelNotReadyException`` the client gets, in the metrics and the access log as well.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.conftest import RunningServer, wait_for_state

NAME = "rt-errors"


@pytest.fixture(scope="module")
def endpoint(api: httpx.Client, tiny_models: dict[str, Path]) -> Iterator[str]:
    spec = {"name": NAME, "model": {"source": str(tiny_models["text-classification"]), "task": "text-classification"}}
    assert api.post("/v1/endpoints", json=spec).status_code == 201
    assert wait_for_state(api, NAME, {"running", "failed"}, timeout=300)["state"] == "running"
    yield NAME
    api.delete(f"/v1/endpoints/{NAME}")


@pytest.fixture(scope="module")
def runtime(server: RunningServer) -> Any:
    return boto3.client("sagemaker-runtime", endpoint_url=server.url, aws_access_key_id="hubserve",
                        aws_secret_access_key=server.token, region_name="us-east-1",
                        config=Config(retries={"total_max_attempts": 1}))  # fmt: skip


def test_async_errors_reach_boto3_with_their_code_and_message(runtime: Any, endpoint: str) -> None:
    with pytest.raises(ClientError) as outside:
        runtime.invoke_endpoint_async(EndpointName=endpoint, InputLocation="/etc/passwd")
    error = outside.value.response["Error"]
    assert error["Code"] == "ValidationError" and "outside the allowed storage roots" in error["Message"]
    assert outside.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as unknown:
        runtime.invoke_endpoint_async(EndpointName="rt-no-such-endpoint", InputLocation="/tmp/in.json")
    error = unknown.value.response["Error"]
    assert error["Code"] == "EndpointNotFound" and "Endpoint 'rt-no-such-endpoint' does not exist" in error["Message"]


def test_the_aws_cli_prints_the_async_error(server: RunningServer, endpoint: str) -> None:
    aws = Path(sys.executable).with_name("aws")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "hubserve", "AWS_SECRET_ACCESS_KEY": server.token,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}  # fmt: skip
    done = subprocess.run([str(aws), "sagemaker-runtime", "invoke-endpoint-async", "--endpoint-name", endpoint,
                           "--input-location", "/etc/passwd", "--endpoint-url", server.url],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode != 0
    assert "(ValidationError)" in done.stderr and "outside the allowed storage roots" in done.stderr, done.stderr


def test_a_paused_endpoint_is_recorded_with_the_429_sagemaker_answers(
    api: httpx.Client, runtime: Any, endpoint: str
) -> None:
    assert api.post(f"/v1/endpoints/{endpoint}/pause").status_code == 200
    wait_for_state(api, endpoint, {"paused"})
    before = api.get(f"/v1/endpoints/{endpoint}/metrics", params={"window": "5m"}).json()
    with pytest.raises(runtime.exceptions.ModelNotReadyException) as paused:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=json.dumps({"inputs": "hi"}), ContentType="application/json")
    assert paused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert "is paused" in paused.value.response["Error"]["Message"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = api.get(f"/v1/endpoints/{endpoint}/metrics", params={"window": "5m"}).json()
        if after["errors_4xx"] > before["errors_4xx"]:
            break
        time.sleep(0.2)
    assert after["errors_4xx"] == before["errors_4xx"] + 1 and after["errors_5xx"] == before["errors_5xx"]
    lines = api.get(f"/v1/endpoints/{endpoint}/logs", params={"tail": 50}).json()["lines"]
    access = [line["message"] for line in lines if line["stream"] == "access"]
    assert access[-1].startswith(f'"POST /endpoints/{endpoint}/invocations" 429'), access
