"""ListModels, ListEndpointConfigs and the tag operations, with the real boto3 and the real AWS CLI.

Everything here is a control-plane call on the session's server: models and configs are stored
definitions (no replica starts), so the names carry a prefix of this module's own and every
listing filters on it.
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
import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import RunningServer

PREFIX = "lst"
MODELS = ("lst-charlie", "lst-alpha", "LST-Bravo", "lst-delta", "lst-echo")  # created in this order
SERVERLESS = {"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 2}}
ACCOUNT = "000000000000"


@pytest.fixture(scope="module")
def sm(server: RunningServer) -> Any:
    return boto3.client("sagemaker", endpoint_url=server.url, aws_access_key_id="hubserve",
                        aws_secret_access_key=server.token, region_name="us-east-1")  # fmt: skip


@pytest.fixture(scope="module")
def created(sm: Any, tiny_models: dict[str, Path]) -> Iterator[dict[str, float]]:
    """The models and one config per model, with the time each model was created."""
    times: dict[str, float] = {}
    for name in MODELS:
        times[name] = time.time()
        sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(tiny_models["text-classification"])},
                        Tags=[{"Key": "team", "Value": "search"}, {"Key": "order", "Value": str(len(times))}])  # fmt: skip
        sm.create_endpoint_config(EndpointConfigName=f"{name}-cfg",
                                  ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name, **SERVERLESS}])  # fmt: skip
        time.sleep(1.1)  # botocore sends CreationTime filters in whole seconds
    yield times
    for name in MODELS:
        sm.delete_endpoint_config(EndpointConfigName=f"{name}-cfg")
        sm.delete_model(ModelName=name)


def _arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:{kind}/{name.lower()}"


def test_list_models_filters_sorts_and_pages(sm: Any, created: dict[str, float]) -> None:
    newest_first = [m["ModelName"] for m in sm.list_models(NameContains=PREFIX, MaxResults=100)["Models"]]
    assert newest_first == list(reversed(MODELS))  # CreationTime, Descending by default; case-insensitive
    by_name = sm.list_models(NameContains="LST-", SortBy="Name", SortOrder="Ascending", MaxResults=2)
    assert [m["ModelName"] for m in by_name["Models"]] == ["LST-Bravo", "lst-alpha"] and by_name["NextToken"]
    summary = by_name["Models"][0]
    assert summary["ModelArn"] == _arn("model", "LST-Bravo") and summary["CreationTime"].tzinfo is not None
    rest = sm.list_models(NameContains="LST-", SortBy="Name", SortOrder="Ascending", MaxResults=2,
                          NextToken=by_name["NextToken"])  # fmt: skip
    assert [m["ModelName"] for m in rest["Models"]] == ["lst-charlie", "lst-delta"]
    after = sm.list_models(NameContains=PREFIX, CreationTimeAfter=created["lst-delta"], SortOrder="Ascending")
    assert [m["ModelName"] for m in after["Models"]] == ["lst-delta", "lst-echo"]
    window = sm.list_models(NameContains=PREFIX, CreationTimeAfter=created["lst-alpha"],
                            CreationTimeBefore=created["lst-delta"])  # fmt: skip
    assert [m["ModelName"] for m in window["Models"]] == ["LST-Bravo", "lst-alpha"]


def test_the_paginators_walk_every_page(sm: Any, created: dict[str, float]) -> None:
    pages = list(sm.get_paginator("list_models").paginate(NameContains=PREFIX, PaginationConfig={"PageSize": 2}))
    assert [len(page["Models"]) for page in pages] == [2, 2, 1]
    assert sorted(m["ModelName"] for page in pages for m in page["Models"]) == sorted(MODELS)
    configs = sm.get_paginator("list_endpoint_configs").paginate(
        NameContains="-cfg", SortBy="Name", SortOrder="Descending", PaginationConfig={"PageSize": 3}
    ).build_full_result()["EndpointConfigs"]
    names = [c["EndpointConfigName"] for c in configs if c["EndpointConfigName"].lower().startswith(PREFIX)]
    assert names == ["lst-echo-cfg", "lst-delta-cfg", "lst-charlie-cfg", "lst-alpha-cfg", "LST-Bravo-cfg"]
    assert configs[0]["EndpointConfigArn"].endswith(":endpoint-config/lst-echo-cfg")


def test_bad_list_requests_are_validation_exceptions(sm: Any, created: dict[str, float]) -> None:
    for request, says in (
        ({"NextToken": "42"}, "NextToken is invalid"),
        ({"SortBy": "Status"}, "SortBy"),
        ({"MaxResults": 101}, "MaxResults"),
    ):
        with pytest.raises(ClientError) as info:
            sm.list_models(**request)
        error = info.value.response["Error"]
        assert error["Code"] == "ValidationException" and says in error["Message"], error


def test_tags_are_added_listed_and_deleted(sm: Any, created: dict[str, float]) -> None:
    model = _arn("model", "LST-Bravo")
    assert sm.list_tags(ResourceArn=model)["Tags"] == [{"Key": "order", "Value": "3"}, {"Key": "team", "Value": "search"}]
    added = sm.add_tags(ResourceArn=model, Tags=[{"Key": "team", "Value": "ranking"}, {"Key": "cost", "Value": "42"}])
    assert added["Tags"] == [{"Key": "team", "Value": "ranking"}, {"Key": "cost", "Value": "42"}]
    sm.delete_tags(ResourceArn=model, TagKeys=["order", "not-there"])
    tags = sm.get_paginator("list_tags").paginate(ResourceArn=model).build_full_result()["Tags"]
    assert tags == [{"Key": "cost", "Value": "42"}, {"Key": "team", "Value": "ranking"}]
    config = _arn("endpoint-config", "lst-alpha-cfg")
    sm.add_tags(ResourceArn=config, Tags=[{"Key": "stage", "Value": "beta"}])
    assert sm.list_tags(ResourceArn=config.replace("us-east-1", "eu-west-1"))["Tags"] == [{"Key": "stage", "Value": "beta"}]


def test_tag_errors_say_what_is_wrong(sm: Any, created: dict[str, float]) -> None:
    with pytest.raises(ClientError) as malformed:
        sm.list_tags(ResourceArn="lst-alpha")
    assert malformed.value.response["Error"]["Code"] == "ValidationException"
    assert "ResourceArn 'lst-alpha' is invalid" in malformed.value.response["Error"]["Message"]
    with pytest.raises(sm.exceptions.ResourceNotFound) as missing:
        sm.add_tags(ResourceArn=_arn("model", "lst-never-made"), Tags=[{"Key": "a", "Value": "b"}])
    assert 'Could not find model "arn:aws:sagemaker' in missing.value.response["Error"]["Message"]
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.list_tags(ResourceArn=_arn("endpoint", "lst-no-endpoint"))
    too_many = [{"Key": f"k{index}", "Value": "v"} for index in range(49)]  # lst-alpha has two already
    with pytest.raises(ClientError) as over:
        sm.add_tags(ResourceArn=_arn("model", "lst-alpha"), Tags=too_many)
    assert over.value.response["Error"]["Code"] == "ValidationException"
    assert "at most 50 tags" in over.value.response["Error"]["Message"]


def test_a_deleted_model_takes_its_tags_along(sm: Any, tiny_models: dict[str, Path]) -> None:
    container = {"ModelDataUrl": str(tiny_models["text-classification"])}
    sm.create_model(ModelName="lst-again", PrimaryContainer=container, Tags=[{"Key": "old", "Value": "1"}])
    sm.delete_model(ModelName="lst-again")
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.list_tags(ResourceArn=_arn("model", "lst-again"))
    sm.create_model(ModelName="lst-again", PrimaryContainer=container)
    assert sm.list_tags(ResourceArn=_arn("model", "lst-again"))["Tags"] == []
    sm.delete_model(ModelName="lst-again")


def _aws(server: RunningServer, *arguments: str) -> Any:
    """The real AWS CLI (v1, from the test extra) against the server; dummy access key, the token as secret."""
    aws = Path(sys.executable).with_name("aws")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "hubserve", "AWS_SECRET_ACCESS_KEY": server.token,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}  # fmt: skip
    done = subprocess.run([str(aws), *arguments, "--endpoint-url", server.url, "--output", "json"],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_aws_cli_lists_models_and_endpoint_configs(server: RunningServer, created: dict[str, float]) -> None:
    models = _aws(server, "sagemaker", "list-models", "--name-contains", PREFIX, "--page-size", "2")["Models"]
    assert sorted(m["ModelName"] for m in models) == sorted(MODELS)  # the CLI follows NextToken itself
    configs = _aws(server, "sagemaker", "list-endpoint-configs", "--name-contains", "lst-a", "--sort-by", "Name")
    assert [c["EndpointConfigName"] for c in configs["EndpointConfigs"]] == ["lst-alpha-cfg"]
    tags = _aws(server, "sagemaker", "list-tags", "--resource-arn", _arn("model", "lst-echo"))["Tags"]
    assert {"Key": "team", "Value": "search"} in tags
