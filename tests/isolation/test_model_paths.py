"""Model sources are confined after resolving: symlinked files, Hub revisions, model roots and SageMaker models."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from hubserve.models.sources import SourceError, resolve_local
from tests.integration.conftest import RunningServer, start_server, stop_server
from tests.isolation.test_archives import bomb

FAST_WAIT = {"Delay": 1, "MaxAttempts": 120}


def _model_with_link(root: Path, text_classification: Path, target: Path) -> Path:
    folder = root / "linked-model"
    shutil.copytree(text_classification, folder)
    (folder / "tokenizer.json").unlink(missing_ok=True)
    (folder / "tokenizer.json").symlink_to(target)
    return folder


def test_symlink_out_of_the_root_is_refused(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    root = tmp_path / "root"
    folder = _model_with_link(root, tiny_models["text-classification"], Path("/etc/passwd"))
    with pytest.raises(SourceError, match=r"tokenizer.json' links to '/etc/passwd'"):
        resolve_local(str(folder), [root])
    resolve_local(str(folder), None)  # without model roots a link is the user's own business


def test_symlink_inside_the_root_is_allowed(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    root = tmp_path / "root"
    shared = root / "shared-tokenizer.json"
    root.mkdir()
    shutil.copy(tiny_models["text-classification"] / "tokenizer.json", shared)
    folder = _model_with_link(root, tiny_models["text-classification"], shared)
    assert resolve_local(str(folder), [root]) == folder.resolve()


@pytest.fixture(scope="module")
def rooted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    """A server with --model-root (as HUBSERVE_MODEL_ROOTS) and a small archive cap."""
    base = tmp_path_factory.mktemp("rooted")
    root = base / "models"
    root.mkdir()
    env = {"HUBSERVE_MODEL_ROOTS": json.dumps([str(root)]), "HUBSERVE_MODEL_ARCHIVE_MAX_BYTES": str(64 * 1024 * 1024)}
    running = start_server(base / "home", extra_env=env)
    yield running, root
    stop_server(running)


@pytest.fixture(scope="module")
def rooted_api(rooted: tuple[RunningServer, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=rooted[0].url, headers=rooted[0].headers(), timeout=120) as client:
        yield client


def test_create_refuses_a_link_out_of_the_root(
    rooted: tuple[RunningServer, Path], rooted_api: httpx.Client, tiny_models: dict[str, Path]
) -> None:
    folder = _model_with_link(rooted[1] / "evil", tiny_models["text-classification"], Path("/etc/passwd"))
    spec = {"name": "linked", "model": {"source": str(folder), "task": "text-classification"}}
    response = rooted_api.post("/v1/endpoints", json=spec)
    assert response.status_code == 422, response.text  # the management API's spec-error status
    assert response.json()["error"]["type"] == "ValidationError"
    assert "tokenizer.json" in response.text and "/etc/passwd" in response.text


@pytest.mark.parametrize("revision", ["../refs/main", "main/../../x", "/etc", "a b", "-rf", "x" * 300])
def test_create_refuses_a_revision_that_is_not_a_ref(rooted_api: httpx.Client, revision: str) -> None:
    spec = {"name": "badrev", "model": {"source": "org/model", "revision": revision, "task": "text-classification"}}
    response = rooted_api.post("/v1/endpoints", json=spec)
    assert response.status_code == 422, response.text
    assert "revision" in response.text and "branch, tag or commit" in response.text


def _sm(server: RunningServer) -> Any:
    return boto3.client(
        "sagemaker", endpoint_url=server.url, aws_access_key_id="hubserve",
        aws_secret_access_key=server.token, region_name="us-east-1",
    )  # fmt: skip


def _archive(folder: Path, path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for file in sorted(folder.rglob("*")):
            tar.add(file, arcname=str(file.relative_to(folder)), recursive=False)
    return path


def test_sagemaker_archive_deploys_under_model_roots(
    rooted: tuple[RunningServer, Path], tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """Extracted archives live under the server's home and count as allowed (they were all refused)."""
    sm = _sm(rooted[0])
    archive = _archive(tiny_models["text-classification"], tmp_path / "model.tar.gz")
    sm.create_model(ModelName="rooted-model", PrimaryContainer={"Image": "hf-inference", "ModelDataUrl": str(archive)})
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": "rooted-model",
        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 2},
    }
    sm.create_endpoint_config(EndpointConfigName="rooted-config", ProductionVariants=[variant])
    sm.create_endpoint(EndpointName="rooted", EndpointConfigName="rooted-config")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="rooted", WaiterConfig=FAST_WAIT)
    sm.delete_endpoint(EndpointName="rooted")


def test_create_model_refuses_what_create_endpoint_would(
    rooted: tuple[RunningServer, Path], tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    sm = _sm(rooted[0])
    outside = tiny_models["text-classification"]  # a real model, but not under the model root
    with pytest.raises(ClientError) as refused:
        sm.create_model(ModelName="outside", PrimaryContainer={"Image": "hf", "ModelDataUrl": str(outside)})
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "outside the allowed model roots" in refused.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as by_env:
        sm.create_model(
            ModelName="outside-env",
            PrimaryContainer={
                "Image": "hf",
                "Environment": {"HF_MODEL_ID": str(outside), "HF_TASK": "text-classification"},
            },
        )
    assert "outside the allowed model roots" in by_env.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as bad_revision:
        sm.create_model(
            ModelName="bad-revision",
            PrimaryContainer={
                "Image": "hf",
                "Environment": {"HF_MODEL_ID": "org/m", "HF_MODEL_REVISION": "../refs/main"},
            },
        )
    assert bad_revision.value.response["Error"]["Code"] == "ValidationException"
    names = [model["ModelName"] for model in sm.list_models()["Models"]]
    assert not {"outside", "outside-env", "bad-revision"} & set(names)


def test_create_model_refuses_a_compression_bomb(rooted: tuple[RunningServer, Path], tmp_path: Path) -> None:
    sm = _sm(rooted[0])
    archive = bomb(tmp_path / "model.tar.gz")
    with pytest.raises(ClientError) as refused:
        sm.create_model(ModelName="bomb", PrimaryContainer={"Image": "hf", "ModelDataUrl": str(archive)})
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "would extract to more than" in refused.value.response["Error"]["Message"]
    extracted = rooted[0].home / "sagemaker" / "models"
    assert not extracted.exists() or not any(path.name.startswith("bomb-") for path in extracted.iterdir())
