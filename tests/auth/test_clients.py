"""The real clients, unchanged, with a created invoke token: huggingface_hub, boto3, the AWS CLI and openai."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from huggingface_hub import InferenceClient, constants
from huggingface_hub.errors import HfHubHTTPError

from tests.auth.conftest import MakeToken
from tests.integration.conftest import RunningServer


@pytest.fixture(scope="module")
def invoker(make_token: MakeToken, endpoints: dict[str, str]) -> dict[str, str]:
    made = make_token("invoke", endpoints=[endpoints["protected"]])
    made["secret"] = made["token"].split("_", 2)[2]
    return made


def _runtime(server: RunningServer, key: str, secret: str, region: str = "us-east-1") -> Any:
    return boto3.client("sagemaker-runtime", endpoint_url=server.url, aws_access_key_id=key,
                        aws_secret_access_key=secret, region_name=region,
                        config=Config(retries={"total_max_attempts": 1}))  # fmt: skip


def test_huggingface_hub_inference_client_sends_the_token(
    auth_server: RunningServer, endpoints: dict[str, str], invoker: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite's offline mode refuses hubserve's URL too
    url = f"{auth_server.url}/endpoints/{endpoints['protected']}"
    labels = InferenceClient(model=url, token=invoker["token"], timeout=60).text_classification("I love this")
    assert labels, labels
    with pytest.raises(HfHubHTTPError) as refused:
        InferenceClient(model=url, token="hs_0123456789ab_nope", timeout=60).text_classification("I love this")
    assert refused.value.response.status_code == 401


def test_boto3_signs_with_the_token_id_and_secret(
    auth_server: RunningServer, endpoints: dict[str, str], invoker: dict[str, str]
) -> None:
    name = endpoints["protected"]
    runtime = _runtime(auth_server, invoker["id"], invoker["secret"])
    answer = runtime.invoke_endpoint(EndpointName=name, Body=json.dumps({"inputs": "I love this"}),
                                     ContentType="application/json")  # fmt: skip
    assert json.loads(answer["Body"].read())
    wrong = _runtime(auth_server, invoker["id"], invoker["secret"][:-2] + "xx")
    with pytest.raises(ClientError) as refused:
        wrong.invoke_endpoint(EndpointName=name, Body=b'{"inputs": "x"}', ContentType="application/json")
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    other = _runtime(auth_server, invoker["id"], invoker["secret"])
    with pytest.raises(ClientError) as elsewhere:  # the token is limited to the protected endpoint
        other.invoke_endpoint(EndpointName=endpoints["private"], Body=b'{"inputs": "x"}', ContentType="application/json")
    assert elsewhere.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert elsewhere.value.response["Error"]["Code"] == "AccessDeniedException"


def test_an_old_signature_is_refused_as_a_replay(
    auth_server: RunningServer, endpoints: dict[str, str], invoker: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = _runtime(auth_server, invoker["id"], invoker["secret"])
    old = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=6)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda remove_tzinfo=True: old)  # a captured request
    with pytest.raises(ClientError) as refused:
        runtime.invoke_endpoint(EndpointName=endpoints["protected"], Body=b'{"inputs": "x"}',
                                ContentType="application/json")  # fmt: skip
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    assert "expired" in refused.value.response["Error"]["Message"]


def test_a_revoked_token_no_longer_signs(
    auth_server: RunningServer, admin: Any, make_token: MakeToken, endpoints: dict[str, str]
) -> None:
    made = make_token("invoke")
    runtime = _runtime(auth_server, made["id"], made["token"].split("_", 2)[2])
    body = b'{"inputs": "I love this"}'
    runtime.invoke_endpoint(EndpointName=endpoints["protected"], Body=body, ContentType="application/json")
    admin.delete(f"/v1/tokens/{made['id']}")
    with pytest.raises(ClientError) as refused:
        runtime.invoke_endpoint(EndpointName=endpoints["protected"], Body=body, ContentType="application/json")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401


def test_the_aws_cli_invokes_with_the_token(
    auth_server: RunningServer, endpoints: dict[str, str], invoker: dict[str, str], tmp_path: Path
) -> None:
    aws = Path(sys.executable).with_name("aws")
    out = tmp_path / "out.json"

    def run(secret: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": invoker["id"], "AWS_SECRET_ACCESS_KEY": secret,
               "AWS_DEFAULT_REGION": "eu-west-1", "AWS_CONFIG_FILE": os.devnull,
               "AWS_SHARED_CREDENTIALS_FILE": os.devnull}  # fmt: skip
        return subprocess.run(
            [str(aws), "sagemaker-runtime", "invoke-endpoint", "--endpoint-name", endpoints["protected"],
             "--body", '{"inputs": "I love this"}', "--content-type", "application/json",
             "--endpoint-url", auth_server.url, str(out)],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip

    done = run(invoker["secret"])
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())
    refused = run("wrong-secret")
    assert refused.returncode != 0 and "InvalidSignatureException" in refused.stderr


def test_the_openai_client_sends_its_api_key(
    auth_server: RunningServer, endpoints: dict[str, str], invoker: dict[str, str]
) -> None:
    base = f"{auth_server.url}/endpoints/{endpoints['protected']}/v1"
    models = openai.OpenAI(base_url=base, api_key=invoker["token"], max_retries=0).models.list()
    assert [model.id for model in models.data] == [endpoints["protected"]]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base, api_key="hs_0123456789ab_wrong", max_retries=0).models.list()
    other = f"{auth_server.url}/endpoints/{endpoints['private']}/v1"
    with pytest.raises(openai.PermissionDeniedError):
        openai.OpenAI(base_url=other, api_key=invoker["token"], max_retries=0).models.list()
