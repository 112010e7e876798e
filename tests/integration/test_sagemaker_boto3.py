"""The real boto3 against a real server: the SageMaker control plane, the runtime and their errors.

One server for the module, with a moto S3 (for s3:// model archives and async outputs) and a
token (so the control plane checks SigV4 signatures made with it as the secret key).
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from s3_server import S3Server

from tests.hub_cache import lay_out_hub_cache
from tests.integration.conftest import RunningServer, start_server, stop_server
from tests.integration.models import faulty_handler_model

HUB_REPO = "org/sm-tiny-classifier"
FAST_WAIT = {"Delay": 1, "MaxAttempts": 120}
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="module")
def sm_server(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, tiny_models: dict[str, Path]
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("sagemaker")
    lay_out_hub_cache(root / "hub", HUB_REPO, tiny_models["text-classification"])  # HF_MODEL_ID, offline
    env = {**s3_server.env, "HUBSERVE_HUB_CACHE": str(root / "hub")}
    running = start_server(root / "home", extra_env=env)
    yield running
    stop_server(running)


def _client(server: RunningServer, service: str, secret: str | None = None, config: Config | None = None) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.url,
        aws_access_key_id="hubserve",
        aws_secret_access_key=secret or server.token,
        region_name="us-east-1",
        config=config,
    )


@pytest.fixture(scope="module")
def sm(sm_server: RunningServer) -> Any:
    return _client(sm_server, "sagemaker")


@pytest.fixture(scope="module")
def runtime(sm_server: RunningServer) -> Any:
    return _client(sm_server, "sagemaker-runtime", config=NO_RETRIES)


def _deploy(sm: Any, name: str, model_data_url: str, variant: dict[str, Any], **config: Any) -> None:
    sm.create_model(ModelName=f"{name}-model", PrimaryContainer={"Image": "hf-inference", "ModelDataUrl": model_data_url})
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": f"{name}-model", **variant}],
        **config,
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAIT)


def _teardown(sm: Any, name: str) -> None:
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST_WAIT)
    sm.delete_endpoint_config(EndpointConfigName=f"{name}-config")
    sm.delete_model(ModelName=f"{name}-model")


SERVERLESS = {"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}


def test_control_plane_and_runtime_flow(sm: Any, runtime: Any, tiny_models: dict[str, Path]) -> None:
    name = "sm-flow"
    _deploy(sm, name, str(tiny_models["text-classification"]), SERVERLESS)

    described = sm.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == f"{name}-config"
    assert described["EndpointArn"].endswith(f":endpoint/{name}")
    variant = described["ProductionVariants"][0]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["CurrentServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5, "ProvisionedConcurrency": 0}
    config = sm.describe_endpoint_config(EndpointConfigName=f"{name}-config")
    assert config["ProductionVariants"][0]["ServerlessConfig"]["MemorySizeInMB"] == 2048
    model = sm.describe_model(ModelName=f"{name}-model")
    assert model["PrimaryContainer"]["ModelDataUrl"] == str(tiny_models["text-classification"])

    # JSON, with the headers SageMaker echoes.
    answer = runtime.invoke_endpoint(
        EndpointName=name, Body=json.dumps({"inputs": "I love this"}), ContentType="application/json",
        Accept="application/json", CustomAttributes="trace=abc", InferenceId="req-1",
    )  # fmt: skip
    assert answer["ContentType"].startswith("application/json") and answer["CustomAttributes"] == "trace=abc"
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    assert json.loads(answer["Body"].read())[0]["label"]

    # CSV in (the HF toolkit's decoder: a header row, one input a row), CSV out.
    csv_answer = runtime.invoke_endpoint(
        EndpointName=name, Body="inputs\nI love this\nI hate that\n", ContentType="text/csv", Accept="text/csv"
    )
    assert csv_answer["ContentType"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_answer["Body"].read().decode())))
    assert len(rows) == 2 and set(rows[0]) == {"label", "score"}
    as_json = runtime.invoke_endpoint(EndpointName=name, Body="inputs\nI love this\n", ContentType="text/csv")
    assert json.loads(as_json["Body"].read())[0]["label"] == rows[0]["label"]

    # A new config: a rolling update to a dedicated instance.
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-dedicated",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": f"{name}-model",
                             "InstanceType": "ml.t2.medium", "InitialInstanceCount": 1}],
    )  # fmt: skip
    sm.update_endpoint(EndpointName=name, EndpointConfigName=f"{name}-dedicated")
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] in ("Updating", "InService")
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAIT)
    updated = sm.describe_endpoint(EndpointName=name)
    assert updated["EndpointConfigName"] == f"{name}-dedicated"
    assert updated["ProductionVariants"][0]["DesiredInstanceCount"] == 1
    assert "CurrentServerlessConfig" not in updated["ProductionVariants"][0]

    listed = sm.list_endpoints(NameContains="sm-flow")["Endpoints"]
    assert [e["EndpointName"] for e in listed] == [name] and listed[0]["EndpointStatus"] == "InService"

    _teardown(sm, name)
    sm.delete_endpoint_config(EndpointConfigName=f"{name}-dedicated")
    for call, kwargs in [
        (sm.describe_endpoint, {"EndpointName": name}),
        (sm.describe_model, {"ModelName": f"{name}-model"}),
        (sm.describe_endpoint_config, {"EndpointConfigName": f"{name}-config"}),
    ]:
        with pytest.raises(ClientError) as info:
            call(**kwargs)
        assert info.value.response["Error"]["Code"] == "ValidationException"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_runtime_errors_are_the_modelled_exceptions(
    sm: Any, runtime: Any, sm_server: RunningServer, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    name = "sm-faulty"
    folder = faulty_handler_model(tiny_models["text-classification"], tmp_path / "faulty")
    _deploy(sm, name, f"file://{folder}", SERVERLESS)

    with pytest.raises(runtime.exceptions.ModelError) as model_error:
        runtime.invoke_endpoint(EndpointName=name, Body=json.dumps({"inputs": "boom"}), ContentType="application/json")
    response = model_error.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424 and response["OriginalStatusCode"] == 400
    assert "boom requested" in response["OriginalMessage"] and name in response["LogStreamArn"]

    with pytest.raises(runtime.exceptions.ValidationError) as bad_body:
        runtime.invoke_endpoint(EndpointName=name, Body=b"{not json", ContentType="application/json")
    assert bad_body.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    with httpx.Client(base_url=sm_server.url, headers=sm_server.headers(), timeout=60) as api:
        api.post(f"/v1/endpoints/{name}/pause").raise_for_status()
    with pytest.raises((runtime.exceptions.ModelNotReadyException, runtime.exceptions.ServiceUnavailable)) as paused:
        runtime.invoke_endpoint(EndpointName=name, Body=json.dumps({"inputs": "hi"}), ContentType="application/json")
    assert "paused" in str(paused.value)
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "OutOfService"
    _teardown(sm, name)


def test_hf_model_id_from_the_hub_cache(sm: Any, runtime: Any) -> None:
    name = "sm-hub"
    environment = {"HF_MODEL_ID": HUB_REPO, "HF_TASK": "text-classification"}
    sm.create_model(ModelName=f"{name}-model", PrimaryContainer={"Environment": environment})
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[{"VariantName": "main", "ModelName": f"{name}-model", **SERVERLESS}],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAIT)
    assert sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]["VariantName"] == "main"
    answer = runtime.invoke_endpoint(EndpointName=name, Body=json.dumps({"inputs": "hub"}), ContentType="application/json")
    assert json.loads(answer["Body"].read())[0]["label"]
    _teardown(sm, name)


def _archive(folder: Path, path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for file in sorted(folder.rglob("*")):
            tar.add(file, arcname=str(file.relative_to(folder)), recursive=False)
    return path


def test_s3_model_archive_and_async_invocation(
    sm: Any, runtime: Any, s3_server: S3Server, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    s3 = s3_server.client()
    archive = _archive(tiny_models["text-classification"], tmp_path / "model.tar.gz")
    s3.upload_file(str(archive), s3_server.bucket, "models/tc/model.tar.gz")
    s3.put_object(Bucket=s3_server.bucket, Key="async-in/one.json", Body=json.dumps({"inputs": "so good"}).encode())
    name = "sm-s3"
    output = f"s3://{s3_server.bucket}/async-out"
    _deploy(
        sm, name, f"s3://{s3_server.bucket}/models/tc/model.tar.gz", SERVERLESS,
        AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": output}},
    )  # fmt: skip
    assert sm.describe_endpoint(EndpointName=name)["AsyncInferenceConfig"]["OutputConfig"]["S3OutputPath"] == output
    answer = runtime.invoke_endpoint(EndpointName=name, Body=json.dumps({"inputs": "fine"}), ContentType="application/json")
    assert json.loads(answer["Body"].read())[0]["label"]

    queued = runtime.invoke_endpoint_async(
        EndpointName=name, InputLocation=f"s3://{s3_server.bucket}/async-in/one.json", ContentType="application/json"
    )
    assert queued["InferenceId"] and queued["OutputLocation"].startswith(output)
    assert queued["ResponseMetadata"]["HTTPStatusCode"] == 202
    key = queued["OutputLocation"].removeprefix(f"s3://{s3_server.bucket}/")
    deadline = time.monotonic() + 60
    while True:
        try:
            result = json.loads(s3.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read())
            break
        except s3.exceptions.NoSuchKey:
            assert time.monotonic() < deadline, "the async result never appeared"
            time.sleep(0.3)
    assert result[0]["label"]
    _teardown(sm, name)


def test_unsafe_archives_and_bad_requests_are_refused(sm: Any, tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    (tmp_path / "payload").write_text("x")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(tmp_path / "payload", arcname="../escaped")
    with pytest.raises(ClientError) as info:
        sm.create_model(ModelName="evil", PrimaryContainer={"ModelDataUrl": str(evil)})
    assert info.value.response["Error"]["Code"] == "ValidationException" and "unsafe" in str(info.value)
    assert not (tmp_path.parent / "escaped").exists()

    with pytest.raises(ClientError) as missing:
        sm.create_endpoint(EndpointName="nowhere", EndpointConfigName="no-such-config")
    assert missing.value.response["Error"]["Code"] == "ValidationException"

    with pytest.raises(ClientError) as unknown:
        sm.list_training_jobs()
    assert unknown.value.response["Error"]["Code"] == "UnknownOperationException"
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_sigv4_with_the_token_as_secret(sm: Any, sm_server: RunningServer) -> None:
    assert "Endpoints" in sm.list_endpoints()
    wrong = _client(sm_server, "sagemaker", secret="not-the-token", config=NO_RETRIES)
    with pytest.raises(ClientError) as info:
        wrong.list_endpoints()
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401  # a wrong credential: 401, as every route
    unsigned = httpx.post(sm_server.url + "/", headers={"X-Amz-Target": "SageMaker.ListEndpoints"}, content=b"{}")
    assert unsigned.status_code == 401 and unsigned.json()["__type"] == "MissingAuthenticationTokenException"
