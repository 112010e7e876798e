"""A multi-model endpoint on an s3:// prefix of model.tar.gz archives, as SageMaker's: boto3 uploads the
archives to a real S3 API server (moto's), the replica fetches each on its first call, and boto3's
invoke_endpoint(TargetModel="<name>.tar.gz") answers from it; an archive uploaded later is served without a
redeploy, a missing one is SageMaker's ValidationError, an archive that would write outside its folder is refused."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.integration.conftest import RunningServer, start_server, stop_server, wait_for_state
from tests.multimodel.conftest import relabel
from tests.s3_server import CREDENTIALS, S3Server

PREFIX = "mme-models"


def _archive(folder: Path) -> bytes:
    """model.tar.gz as SageMaker packs it: the model's files at the archive's root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for file in sorted(folder.iterdir()):
            tar.add(file, arcname=file.name)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def uploaded(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory, sized_model: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mme-s3")
    folders = {name: relabel(sized_model, root / name, (f"{name}-neg", f"{name}-pos")) for name in ("red", "blue", "late")}
    s3 = s3_server.client()
    for name in ("red", "blue"):
        s3.put_object(Bucket=s3_server.bucket, Key=f"{PREFIX}/{name}.tar.gz", Body=_archive(folders[name]))
    return folders


@pytest.fixture(scope="module")
def server(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("mme-s3-server") / "home", extra_env=s3_server.env)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def api(server: RunningServer, uploaded: dict[str, Path], s3_server: S3Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=120) as client:
        spec = {"name": "s3-mme", "model": {"source": f"s3://{s3_server.bucket}/{PREFIX}/", "task": "text-classification",
                                            "multi_model": True}, "compute": {"type": "dedicated", "instance": "cpu-small"},
                "secrets": {key: value for key, value in CREDENTIALS.items() if key.startswith("AWS_")}}  # the endpoint's own  # fmt: skip
        created = client.post("/v1/endpoints", json=spec)
        assert created.status_code == 201, created.text
        assert wait_for_state(client, "s3-mme", {"running", "failed"})["state"] == "running"
        yield client
        client.delete("/v1/endpoints/s3-mme")


@pytest.fixture(scope="module")
def runtime(server: RunningServer) -> Any:
    return boto3.client("sagemaker-runtime", endpoint_url=server.url, aws_access_key_id="hubserve",
                        aws_secret_access_key=server.token, region_name="us-east-1",
                        config=Config(retries={"total_max_attempts": 1}))  # fmt: skip


def _invoke(runtime: Any, target: str) -> set[str]:
    answer = runtime.invoke_endpoint(EndpointName="s3-mme", TargetModel=target, ContentType="application/json",
                                     Body=b'{"inputs": "hello"}')  # fmt: skip
    return {item["label"] for item in json.loads(answer["Body"].read())}


def test_archives_under_the_prefix_answer_by_target_model(api: httpx.Client, runtime: Any) -> None:
    assert _invoke(runtime, "red.tar.gz") <= {"red-neg", "red-pos"}
    assert _invoke(runtime, "blue.tar.gz") <= {"blue-neg", "blue-pos"}
    listed = {model["name"]: model for model in api.get("/v1/endpoints/s3-mme/models").json()["models"]}
    assert {"red.tar.gz", "blue.tar.gz"} <= set(listed)
    assert listed["red.tar.gz"]["state"] in ("loaded", "loading") or listed["red.tar.gz"]["loads"] >= 1


def test_an_archive_uploaded_later_is_served_and_a_missing_one_is_refused(
    api: httpx.Client, runtime: Any, uploaded: dict[str, Path], s3_server: S3Server
) -> None:
    with pytest.raises(runtime.exceptions.ValidationError, match=r"late\.tar\.gz"):
        _invoke(runtime, "late.tar.gz")
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=f"{PREFIX}/late.tar.gz", Body=_archive(uploaded["late"]))
    assert _invoke(runtime, "late.tar.gz") <= {"late-neg", "late-pos"}


def test_an_unsafe_archive_is_refused(api: httpx.Client, s3_server: S3Server) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b"owned"
        member = tarfile.TarInfo("../escape.txt")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=f"{PREFIX}/evil.tar.gz", Body=buffer.getvalue())
    answer = api.post("/endpoints/s3-mme/models/evil.tar.gz", json={"inputs": "x"})
    assert answer.status_code == 424 and "unsafe member" in answer.json()["error"]["message"], answer.text
