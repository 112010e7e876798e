"""The SageMaker Python SDK's shape against a real server: the seed article's snippet with one changed
import, a dedicated deploy by instance type, and ``AsyncClient`` end to end.

The seed (AWS blog, "Host Hugging Face transformer models using Amazon SageMaker Serverless
Inference") imports ``HuggingFaceModel`` from ``sagemaker.huggingface.model`` and
``ServerlessInferenceConfig`` from ``sagemaker.serverless``; here both come from ``hubserve.sdk``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import tiny_models as builders

from hubserve import errors
from hubserve.instance_types import hubserve_instance
from hubserve.sdk import AsyncClient, Predictor, Session, WaiterConfig
from tests.integration.conftest import RunningServer

LABELS = {"NEGATIVE", "POSITIVE"}


@pytest.fixture(scope="module")
def sst2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return builders.build_text_classification(tmp_path_factory.mktemp("sdk-models") / "sst2")


@pytest.fixture
def hubserve_env(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the SDK connects, as a user's shell would say it (no Session in the seed's code)."""
    monkeypatch.setenv("HUBSERVE_URL", server.url)
    monkeypatch.setenv("HUBSERVE_TOKEN", server.token)


def test_the_seed_snippet_runs_with_one_changed_import(hubserve_env: None, sst2_dir: Path) -> None:
    # --- the article's code; only the import line differs ---
    from hubserve.sdk import HuggingFaceModel, ServerlessInferenceConfig

    role = "arn:aws:iam::111122223333:role/service-role/AmazonSageMaker-ExecutionRole"
    image_uri = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:1.10-transformers4.17-cpu-py38"

    # Hub Model configuration.
    hub = {
        "HF_MODEL_ID": "distilbert-base-uncased-finetuned-sst-2-english",
        "HF_TASK": "text-classification",
    }

    # create Hugging Face Model Class
    huggingface_model = HuggingFaceModel(
        env=hub,                      # configuration for loading model from Hub
        model_data=str(sst2_dir),     # hubserve: a local folder (the Hub id needs a download)
        role=role,                    # iam role with permissions
        transformers_version="4.17",  # transformers version used
        pytorch_version="1.10",       # pytorch version used
        py_version="py38",            # python version used
        image_uri=image_uri,          # image uri
    )

    # Specify MemorySizeInMB and MaxConcurrency
    serverless_config = ServerlessInferenceConfig(
        memory_size_in_mb=4096, max_concurrency=10,
    )

    # deploy the serverless endpoint
    predictor = huggingface_model.deploy(
        serverless_inference_config=serverless_config
    )
    # --- end of the article's code ---

    try:
        assert any("ignored image_uri, py_version, pytorch_version, role, transformers_version" in n
                   for n in huggingface_model.notes)  # fmt: skip
        description = predictor.describe()
        assert description["state"] in ("running", "scaledToZero")
        assert description["compute"]["type"] == "serverless"
        assert description["compute"]["memory_mb"] == 4096 and description["compute"]["max_concurrency"] == 10
        assert (description["model"]["source"], description["model"]["task"]) == (str(sst2_dir), "text-classification")
        assert description["env"] == {}  # HF_MODEL_ID / HF_TASK became the model, not replica env

        answer = predictor.predict({"inputs": "I love using hubserve"})
        assert isinstance(answer, list) and answer[0]["label"] in LABELS and 0 <= answer[0]["score"] <= 1

        pending = predictor.predict_async({"inputs": ["great", "awful"]})
        result = pending.get_result(WaiterConfig(max_attempts=120, delay=0.25))
        assert [item["label"] in LABELS for item in result] == [True, True]

        same = Predictor(predictor.endpoint_name)  # by name, from the env defaults, as SageMaker's Predictor
        assert same.predict({"inputs": "I love using hubserve"}) == answer
    finally:
        predictor.delete_endpoint()
    with pytest.raises(errors.EndpointNotFound):
        for _ in range(200):
            predictor.describe()
            asyncio.run(asyncio.sleep(0.1))


def test_dedicated_deploy_maps_the_instance_type(server: RunningServer, sst2_dir: Path) -> None:
    from hubserve.sdk import HuggingFaceModel

    session = Session(server.url, server.token)
    model = HuggingFaceModel(model_data=f"file://{sst2_dir}", env={"HF_TASK": "text-classification", "MY_FLAG": "1"},
                             sagemaker_session=session)  # fmt: skip
    predictor = model.deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name="sdk-dedicated")
    try:
        assert predictor.endpoint_name == model.endpoint_name == "sdk-dedicated"
        description = predictor.describe()
        assert description["state"] == "running"
        compute = description["compute"]
        assert (compute["type"], compute["instance"], compute["min_replicas"], compute["max_replicas"]) == (
            "dedicated", "cpu-medium", 1, 1)  # fmt: skip
        assert description["env"] == {"MY_FLAG": "1"}
        assert predictor.predict({"inputs": "dedicated works too"})[0]["label"] in LABELS
    finally:
        predictor.delete_endpoint()


def test_deploy_refuses_what_it_cannot_map(server: RunningServer, sst2_dir: Path) -> None:
    from hubserve.sdk import HuggingFaceModel, ServerlessInferenceConfig

    with pytest.raises(ValueError, match=r"model_data .* or env\['HF_MODEL_ID'\]"):
        HuggingFaceModel(env={"HF_TASK": "text-classification"})
    model = HuggingFaceModel(model_data=str(sst2_dir), sagemaker_session=Session(server.url, server.token))
    with pytest.raises(ValueError, match="inf2 accelerators"):
        model.deploy(instance_type="ml.inf2.xlarge", initial_instance_count=1)
    with pytest.raises(errors.SpecError, match="memory_mb must be one of"):
        model.deploy(serverless_inference_config=ServerlessInferenceConfig(memory_size_in_mb=1000))
    hub = HuggingFaceModel(env={"HF_MODEL_ID": "org/some-model", "HF_MODEL_REVISION": "v2"})
    spec = hub.endpoint_spec("x", serverless_inference_config=ServerlessInferenceConfig())
    assert spec["model"] == {"source": "org/some-model", "revision": "v2"}


INSTANCE_TYPES = [
    ("ml.t2.medium", "cpu-medium"), ("ml.m5.xlarge", "cpu-large"), ("ml.c5.4xlarge", "cpu-xlarge"),
    ("ml.g4dn.xlarge", "gpu-small"), ("ml.g5.2xlarge", "gpu-medium"), ("ml.g5.8xlarge", "gpu-large"),
    ("ml.p4d.24xlarge", "gpu-large"), ("cpu-small", "cpu-small"),
]  # fmt: skip


@pytest.mark.parametrize(("sagemaker", "size"), INSTANCE_TYPES)
def test_instance_type_table(sagemaker: str, size: str) -> None:
    assert hubserve_instance(sagemaker) == size


def test_async_client_against_the_server(server: RunningServer, sst2_dir: Path) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url, server.token) as client:
            assert await client.health()
            created = await client.create_endpoint(
                {"name": "sdk-aio", "model": {"source": str(sst2_dir)}, "compute": {"memory_mb": 1024}}
            )
            assert created["name"] == "sdk-aio" and created["model"]["task"] == "text-classification"
            try:
                with pytest.raises(errors.EndpointExists):
                    await client.create_endpoint({"name": "sdk-aio", "model": {"source": str(sst2_dir)}})
                ready = await client.wait_for("sdk-aio", ("running",), timeout=120, interval=0.2)
                assert ready["replicas"]["ready"] >= 1
                assert "sdk-aio" in [item["name"] for item in await client.list_endpoints()]
                answers = await asyncio.gather(*(client.invoke("sdk-aio", text) for text in ("good", "bad", "fine")))
                assert all(answer.status == 200 and answer.body[0]["label"] in LABELS for answer in answers)
                assert all(answer.model_latency_ms > 0 for answer in answers)
                sm = await client.invoke("sdk-aio", {"inputs": "good"}, dialect="sagemaker")
                assert sm.body == answers[0].body
                queued = await client.invoke_async("sdk-aio", {"inputs": "good"})
                done = await client.wait_async_inference("sdk-aio", queued["inferenceId"], timeout=60, interval=0.2)
                assert done["status"] == "succeeded"
                patched = await client.patch_endpoint("sdk-aio", {"compute": {"max_concurrency": 3}})
                assert patched["compute"]["max_concurrency"] == 3
            finally:
                await client.delete_endpoint("sdk-aio")
            with pytest.raises(errors.EndpointNotFound):
                for _ in range(200):
                    await client.get_endpoint("sdk-aio")
                    await asyncio.sleep(0.1)

    asyncio.run(scenario())


def test_async_client_unreachable_server() -> None:
    async def scenario() -> None:
        async with AsyncClient("http://127.0.0.1:9", timeout=2) as client:
            await client.list_endpoints()

    from hubserve.sdk import ServerUnreachable

    with pytest.raises(ServerUnreachable, match=r"isn't reachable at http://127.0.0.1:9"):
        asyncio.run(scenario())
