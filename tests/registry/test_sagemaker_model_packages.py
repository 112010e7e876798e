"""boto3's SageMaker model-registry calls against a real server: groups, packages, approval, deployment.

The seed's workflow, unchanged: create a model package group, register packages (a folder, a
model.tar.gz in S3), list them pending, approve with update_model_package, create_model from the
package, an endpoint config and an endpoint, invoke it; a second approved package rolls an endpoint
made from the group's ARN. The packages are the registry's versions, so REST sees them too.
"""

from __future__ import annotations

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
from typer.testing import CliRunner

from hubserve.cli.main import app
from tests.integration.conftest import RunningServer, start_server, stop_server

FAST_WAIT = {"Delay": 1, "MaxAttempts": 180}
SERVERLESS = {"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
ARN = "arn:aws:sagemaker:us-east-1:000000000000"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[RunningServer]:
    """This module's own server (the registry conftest's has no S3): packages may come from s3://."""
    running = start_server(tmp_path_factory.mktemp("packages-server") / "home", extra_env=s3_server.env)
    yield running
    stop_server(running)


def _client(server: RunningServer, service: str) -> Any:
    return boto3.client(service, endpoint_url=server.url, aws_access_key_id="hubserve",
                        aws_secret_access_key=server.token, region_name="us-east-1", config=NO_RETRIES)  # fmt: skip


@pytest.fixture(scope="module")
def sm(server: RunningServer) -> Any:
    return _client(server, "sagemaker")


@pytest.fixture(scope="module")
def runtime(server: RunningServer) -> Any:
    return _client(server, "sagemaker-runtime")


def _error(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def _container(folder: Path | str) -> dict[str, Any]:
    return {"Containers": [{"Image": "huggingface-pytorch-inference:2.1", "ModelDataUrl": str(folder)}],
            "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]}  # fmt: skip


def _label(runtime: Any, endpoint: str) -> str:
    answer = runtime.invoke_endpoint(EndpointName=endpoint, Body=json.dumps({"inputs": "great"}),
                                     ContentType="application/json", Accept="application/json")  # fmt: skip
    label: str = json.loads(answer["Body"].read())[0]["label"]
    return label


def _deploy(sm: Any, name: str, package: str) -> None:
    sm.create_model(ModelName=f"{name}-model", PrimaryContainer={"ModelPackageName": package})
    sm.create_endpoint_config(EndpointConfigName=f"{name}-config",
                              ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": f"{name}-model", **SERVERLESS}])  # fmt: skip
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAIT)


def _teardown(sm: Any, name: str) -> None:
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST_WAIT)
    sm.delete_endpoint_config(EndpointConfigName=f"{name}-config")
    sm.delete_model(ModelName=f"{name}-model")


def test_the_seed_workflow_register_approve_deploy_invoke(
    sm: Any, runtime: Any, api: httpx.Client, server: RunningServer, models: dict[str, Path]
) -> None:
    group = sm.create_model_package_group(ModelPackageGroupName="reviews", ModelPackageGroupDescription="sentiment")
    assert group["ModelPackageGroupArn"] == f"{ARN}:model-package-group/reviews"
    described_group = sm.describe_model_package_group(ModelPackageGroupName=group["ModelPackageGroupArn"])
    assert described_group["ModelPackageGroupDescription"] == "sentiment"
    assert described_group["ModelPackageGroupStatus"] == "Completed"

    created = sm.create_model_package(
        ModelPackageGroupName="reviews", ModelPackageDescription="fine-tuned on reviews",
        InferenceSpecification=_container(models["v1"]), CustomerMetadataProperties={"f1": "0.91"},
    )  # fmt: skip
    arn = created["ModelPackageArn"]
    assert arn == f"{ARN}:model-package/reviews/1"
    listed = sm.list_model_packages(ModelPackageGroupName="reviews")["ModelPackageSummaryList"]
    assert [(p["ModelPackageVersion"], p["ModelApprovalStatus"]) for p in listed] == [(1, "PendingManualApproval")]
    assert listed[0]["ModelPackageArn"] == arn and listed[0]["ModelPackageStatus"] == "Completed"

    # The same version through REST (and so `hubserve model list`): one registry.
    version = api.get("/v1/models/reviews/versions/1").json()
    assert version["source"] == str(models["v1"]) and version["task"] == "text-classification" and version["sha256"]
    assert version["description"] == "fine-tuned on reviews" and version["metrics"] == {"f1": "0.91"}
    assert any(g["name"] == "reviews" and g["versions"] == 1 for g in api.get("/v1/models").json()["items"])
    cli = CliRunner().invoke(app, ["--json", "model", "list", "reviews"],
                             env={"HUBSERVE_URL": server.url, "HUBSERVE_TOKEN": server.token})  # fmt: skip
    assert cli.exit_code == 0, cli.stdout + cli.stderr
    assert [(row["version"], row["approval_status"], row["sha256"]) for row in json.loads(cli.stdout)] == [
        (1, "PendingManualApproval", version["sha256"])]  # fmt: skip

    code, message = _error(sm.create_model, ModelName="too-early", PrimaryContainer={"ModelPackageName": arn})
    assert code == "ValidationException" and "PendingManualApproval" in message and "Approved" in message

    assert sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved",
                                   ApprovalDescription="passed evaluation")["ModelPackageArn"] == arn  # fmt: skip
    described = sm.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved" and described["ModelPackageGroupName"] == "reviews"
    assert described["ModelPackageVersion"] == 1 and described["ModelPackageDescription"] == "fine-tuned on reviews"
    container = described["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == str(models["v1"]) and container["Environment"]["HF_TASK"] == "text-classification"
    assert described["CustomerMetadataProperties"] == {"f1": "0.91"}
    assert sm.describe_model_package(ModelPackageName="reviews/1")["ModelPackageArn"] == arn  # GROUP/N works too
    assert api.get("/v1/models/reviews/versions/1").json()["approval_status"] == "Approved"

    _deploy(sm, "reviews-ep", arn)
    assert sm.describe_model(ModelName="reviews-ep-model")["PrimaryContainer"]["ModelPackageName"] == arn
    assert _label(runtime, "reviews-ep") in ("NEGATIVE", "POSITIVE")
    assert api.get("/v1/endpoints/reviews-ep").json()["model"]["source"] == "registry://reviews/1"

    code, message = _error(sm.delete_model_package, ModelPackageName=arn)
    assert code == "ConflictException" and "reviews-ep" in message and "DeleteEndpoint" in message
    code, message = _error(sm.update_model_package, ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    assert code == "ConflictException" and "reviews-ep" in message
    assert sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Approved"

    _teardown(sm, "reviews-ep")
    code, _ = _error(sm.delete_model_package_group, ModelPackageGroupName="reviews")
    assert code == "ConflictException"  # it still has a package
    sm.delete_model_package(ModelPackageName=arn)
    assert sm.list_model_packages(ModelPackageGroupName="reviews")["ModelPackageSummaryList"] == []
    assert api.get("/v1/models/reviews/versions/1").status_code == 404
    sm.delete_model_package_group(ModelPackageGroupName="reviews")
    code, message = _error(sm.describe_model_package_group, ModelPackageGroupName="reviews")
    assert code == "ValidationException" and "does not exist" in message


def test_approving_a_second_package_rolls_an_endpoint_made_from_the_group(
    sm: Any, runtime: Any, api: httpx.Client, models: dict[str, Path], s3_server: S3Server, tmp_path: Path
) -> None:
    group_arn = sm.create_model_package_group(ModelPackageGroupName="rolling-pkg")["ModelPackageGroupArn"]
    first = sm.create_model_package(ModelPackageGroupName=group_arn, InferenceSpecification=_container(models["v1"]),
                                    ModelApprovalStatus="Approved")["ModelPackageArn"]  # fmt: skip
    _deploy(sm, "rolling-ep", group_arn)  # the group's ARN: follow its newest Approved version
    assert _label(runtime, "rolling-ep") in ("NEGATIVE", "POSITIVE")
    assert api.get("/v1/endpoints/rolling-ep").json()["model"]["revision"] == "1"

    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(models["v2"].iterdir()):
            tar.add(path, arcname=path.name)
    s3_server.client().upload_file(str(archive), s3_server.bucket, "packages/v2/model.tar.gz")
    url = f"s3://{s3_server.bucket}/packages/v2/model.tar.gz"
    second = sm.create_model_package(ModelPackageGroupName="rolling-pkg", InferenceSpecification=_container(url),
                                     ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                                                   "S3Uri": "s3://b/eval.json"}}})["ModelPackageArn"]  # fmt: skip
    described = sm.describe_model_package(ModelPackageName=second)
    assert described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == url  # the URL, not our copy
    assert described["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == "s3://b/eval.json"
    assert api.get("/v1/models/rolling-pkg/versions/2").json()["sha256"] != api.get(
        "/v1/models/rolling-pkg/versions/1").json()["sha256"]  # fmt: skip
    assert _label(runtime, "rolling-ep") in ("NEGATIVE", "POSITIVE")  # registered is not approved

    sm.update_model_package(ModelPackageArn=second, ModelApprovalStatus="Approved")
    deadline = time.monotonic() + 180
    label = ""
    while time.monotonic() < deadline and label not in ("bad", "good"):
        label = _label(runtime, "rolling-ep")  # the old version serves until the new one is ready
        time.sleep(0.5)
    assert label in ("bad", "good"), "never rolled to the approved package"
    sm.get_waiter("endpoint_in_service").wait(EndpointName="rolling-ep", WaiterConfig=FAST_WAIT)
    assert api.get("/v1/endpoints/rolling-ep").json()["model"]["revision"] == "2"
    assert sm.describe_model(ModelName="rolling-ep-model")["PrimaryContainer"]["ModelPackageName"] == group_arn

    sm.delete_model_package(ModelPackageName=first)  # no endpoint runs version 1 any more
    code, message = _error(sm.delete_model_package, ModelPackageName=second)
    assert code == "ConflictException" and "rolling-ep" in message
    _teardown(sm, "rolling-ep")
    sm.delete_model_package(ModelPackageName=second)


def test_bad_inputs_get_sagemaker_errors_that_say_what_to_fix(
    sm: Any, api: httpx.Client, server: RunningServer, models: dict[str, Path]
) -> None:
    code, message = _error(sm.create_model_package, ModelPackageGroupName="nowhere",
                           InferenceSpecification=_container(models["v1"]))  # fmt: skip
    assert code == "ValidationException" and "'nowhere' does not exist" in message and "CreateModelPackageGroup" in message
    code, message = _error(sm.describe_model_package_group, ModelPackageGroupName="nowhere")
    assert code == "ValidationException" and "does not exist" in message
    code, message = _error(sm.list_model_packages, ModelPackageGroupName="nowhere")
    assert code == "ValidationException" and "does not exist" in message

    sm.create_model_package_group(ModelPackageGroupName="checks")
    code, message = _error(sm.create_model_package_group, ModelPackageGroupName="checks")
    assert code == "ValidationException" and "already exists" in message
    code, message = _error(sm.create_model_package, ModelPackageGroupName="checks",
                           InferenceSpecification=_container(models["v1"]), ModelApprovalStatus="Maybe")  # fmt: skip
    assert code == "ValidationException" and "'Maybe'" in message and "PendingManualApproval" in message
    assert sm.list_model_packages(ModelPackageGroupName="checks")["ModelPackageSummaryList"] == []  # nothing registered
    code, message = _error(sm.create_model_package, ModelPackageGroupName="checks",
                           InferenceSpecification=_container("/no/such/folder"))  # fmt: skip
    assert code == "ValidationException" and "ModelDataUrl" in message
    code, message = _error(sm.create_model_package, ModelPackageGroupName="checks",
                           InferenceSpecification={"Containers": [{"Image": "x"}]})  # fmt: skip
    assert code == "ValidationException" and "HF_MODEL_ID" in message

    # The same content twice: two versions, one stored copy (one hash).
    arns = [sm.create_model_package(ModelPackageGroupName="checks", InferenceSpecification=_container(models["v1"]))[
        "ModelPackageArn"] for _ in range(2)]  # fmt: skip
    assert arns == [f"{ARN}:model-package/checks/1", f"{ARN}:model-package/checks/2"]
    hashes = {api.get(f"/v1/models/checks/versions/{n}").json()["sha256"] for n in (1, 2)}
    assert len(hashes) == 1 and (server.home / "registry" / hashes.pop() / "config.json").is_file()
    hub = sm.create_model_package(ModelPackageGroupName="checks", InferenceSpecification={"Containers": [
        {"Image": "x", "Environment": {"HF_MODEL_ID": "org/some-model", "HF_TASK": "fill-mask"}}]})["ModelPackageArn"]  # fmt: skip
    environment = sm.describe_model_package(ModelPackageName=hub)["InferenceSpecification"]["Containers"][0]["Environment"]
    assert environment == {"HF_MODEL_ID": "org/some-model", "HF_TASK": "fill-mask"}

    code, message = _error(sm.update_model_package, ModelPackageArn=arns[0], ModelApprovalStatus="approved")
    assert code == "ValidationException" and "'approved'" in message and "Approved" in message
    code, message = _error(sm.update_model_package, ModelPackageArn=arns[0], CustomerMetadataProperties={"a": "b"})
    assert code == "ValidationException" and "CustomerMetadataProperties" in message
    code, message = _error(sm.describe_model_package, ModelPackageName="checks/9")
    assert code == "ValidationException" and "model-package/checks/9 does not exist" in message
    code, message = _error(sm.describe_model_package, ModelPackageName="checks")
    assert code == "ValidationException" and "GROUP/N" in message
    code, message = _error(sm.create_model, ModelName="unknown-pkg", PrimaryContainer={"ModelPackageName": "checks/9"})
    assert code == "ValidationException" and "does not exist" in message

    sm.update_model_package(ModelPackageArn=arns[1], ModelApprovalStatus="Rejected")
    rejected = sm.list_model_packages(ModelPackageGroupName="checks", ModelApprovalStatus="Rejected")
    assert [p["ModelPackageArn"] for p in rejected["ModelPackageSummaryList"]] == [arns[1]]
    newest = sm.list_model_packages(ModelPackageGroupName="checks", SortOrder="Descending", MaxResults=1)
    assert [p["ModelPackageVersion"] for p in newest["ModelPackageSummaryList"]] == [3] and "NextToken" in newest
    after = sm.list_model_packages(ModelPackageGroupName="checks", SortOrder="Descending", NextToken=newest["NextToken"])
    assert [p["ModelPackageVersion"] for p in after["ModelPackageSummaryList"]] == [2, 1]
    names = [g["ModelPackageGroupName"] for g in
             sm.list_model_package_groups(NameContains="check")["ModelPackageGroupSummaryList"]]  # fmt: skip
    assert names == ["checks"]

    # ARNs lower-case names, as AWS's do; the group keeps its own spelling.
    mixed = sm.create_model_package_group(ModelPackageGroupName="MixedCase")["ModelPackageGroupArn"]
    assert mixed == f"{ARN}:model-package-group/mixedcase"
    assert sm.describe_model_package_group(ModelPackageGroupName=mixed)["ModelPackageGroupName"] == "MixedCase"
    code, message = _error(sm.create_model_package_group, ModelPackageGroupName="mixedcase")
    assert code == "ValidationException" and "already exists" in message


def test_a_read_token_lists_packages_but_cannot_approve(sm: Any, api: httpx.Client, server: RunningServer,
                                                        models: dict[str, Path]) -> None:  # fmt: skip
    sm.create_model_package_group(ModelPackageGroupName="scoped-pkg")
    arn = sm.create_model_package(ModelPackageGroupName="scoped-pkg",
                                  InferenceSpecification=_container(models["v1"]))["ModelPackageArn"]  # fmt: skip
    made = api.post("/v1/tokens", json={"name": "pkg-reader", "scopes": ["read"]}).json()
    reader = boto3.client("sagemaker", endpoint_url=server.url, aws_access_key_id=made["id"],
                          aws_secret_access_key=made["token"].split("_", 2)[2], region_name="us-east-1",
                          config=NO_RETRIES)  # fmt: skip
    assert [p["ModelPackageArn"] for p in reader.list_model_packages(ModelPackageGroupName="scoped-pkg")[
        "ModelPackageSummaryList"]] == [arn]  # fmt: skip
    with pytest.raises(ClientError) as refused:
        reader.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "PendingManualApproval"
