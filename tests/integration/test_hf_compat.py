"""huggingface_hub, unchanged, against a real hubserve: HfApi's endpoint lifecycle and InferenceClient's tasks."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from huggingface_hub import HfApi, InferenceClient, InferenceEndpoint, constants
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.inference._generated.types import (
    FillMaskOutputElement,
    QuestionAnsweringOutputElement,
    SummarizationOutput,
    TextClassificationOutputElement,
    TokenClassificationOutputElement,
    TranslationOutput,
    ZeroShotClassificationOutputElement,
)

from tests.integration.conftest import RunningServer

NAMESPACE = "hubserve"
TASK_ENDPOINTS = {
    "text-classification": "hf-tc",
    "token-classification": "hf-ner",
    "question-answering": "hf-qa",
    "fill-mask": "hf-fm",
    "feature-extraction": "hf-fe",
    "sentence-similarity": "hf-ss",
    "zero-shot-classification": "hf-zs",
    "summarization": "hf-sum",
    "translation": "hf-tr",
    "text-generation": "hf-tg",
}


@pytest.fixture(scope="module")
def hf(server: RunningServer) -> Iterator[HfApi]:
    """HfApi pointed at hubserve the documented way: the constant, and hubserve's token as HF_TOKEN.

    HF_TOKEN matters: the InferenceEndpoint objects HfApi returns (fetch, wait, client) make a
    fresh HfApi that reads the token from the environment, not from the HfApi that made them.
    HF_HUB_OFFLINE (the test suite's, so that nothing reaches the real Hub) would make
    huggingface_hub refuse every request, hubserve's included: this client is not offline.
    """
    previous = constants.INFERENCE_ENDPOINTS_ENDPOINT, os.environ.get("HF_TOKEN"), constants.HF_HUB_OFFLINE
    constants.INFERENCE_ENDPOINTS_ENDPOINT = f"{server.url}/v2"
    constants.HF_HUB_OFFLINE = False
    os.environ["HF_TOKEN"] = server.token
    yield HfApi(endpoint=server.url, token=server.token)
    constants.INFERENCE_ENDPOINTS_ENDPOINT = previous[0]
    constants.HF_HUB_OFFLINE = previous[2]
    if previous[1] is None:
        os.environ.pop("HF_TOKEN", None)
    else:
        os.environ["HF_TOKEN"] = previous[1]


def _create(
    hf: HfApi, name: str, folder: Path, task: str, **extra: object
) -> InferenceEndpoint:
    arguments: dict = {"repository": str(folder), "framework": "pytorch", "task": task, "accelerator": "cpu",
                           "instance_size": "x1", "instance_type": "intel-icl", "region": "local", "vendor": "hubserve",
                           "namespace": NAMESPACE}  # fmt: skip
    return hf.create_inference_endpoint(name, **{**arguments, **extra})


def _until(
    endpoint: InferenceEndpoint, state: str, timeout: float = 120
) -> InferenceEndpoint:
    deadline = time.monotonic() + timeout
    while endpoint.fetch().status != state:
        assert time.monotonic() < deadline, (
            f"{endpoint.name} never reached {state}: {endpoint.raw['status']}"
        )
        time.sleep(0.2)
    return endpoint


# -- HfApi: the Inference Endpoints lifecycle --------------------------------------------------


def test_endpoint_lifecycle(
    hf: HfApi, api: httpx.Client, tiny_models: dict[str, Path]
) -> None:
    folder = tiny_models["text-classification"]
    endpoint = _create(
        hf,
        "hf-life",
        folder,
        "text-classification",
        type="private",
        min_replica=1,
        max_replica=1,
    )
    assert endpoint.name == "hf-life" and endpoint.repository == str(folder)
    assert endpoint.status in ("pending", "initializing") and endpoint.type == "private"
    assert endpoint.raw["compute"] == {
        "accelerator": "cpu", "instanceType": "intel-icl", "instanceSize": "x1",
        "scaling": {"minReplica": 1, "maxReplica": 1, "scaleToZeroTimeout": 15},
    }  # fmt: skip
    own = api.get(
        "/v1/endpoints/hf-life"
    ).json()  # one record: the HF call made a hubserve spec
    assert own["compute"]["instance"] == "cpu-small" and own["model"]["source"] == str(
        folder
    )

    endpoint.wait(timeout=180, refresh_every=1)
    assert (
        endpoint.status == "running"
        and endpoint.url == f"{hf.endpoint}/endpoints/hf-life"
    )
    assert endpoint.task == "text-classification" and endpoint.framework == "pytorch"
    labels = endpoint.client.text_classification("I love this movie")
    assert labels and all(
        isinstance(item, TextClassificationOutputElement) for item in labels
    )

    fetched = hf.get_inference_endpoint("hf-life", namespace=NAMESPACE)
    assert fetched.status == "running" and fetched.created_at <= fetched.updated_at
    assert "hf-life" in [
        item.name for item in hf.list_inference_endpoints(namespace=NAMESPACE)
    ]

    endpoint.update(
        min_replica=0, max_replica=2, scale_to_zero_timeout=30, instance_size="x2"
    )
    compute = api.get("/v1/endpoints/hf-life").json()["compute"]
    assert (compute["instance"], compute["min_replicas"], compute["max_replicas"]) == (
        "cpu-medium",
        0,
        2,
    )
    assert compute["scale_to_zero_after_s"] == 30 * 60
    assert endpoint.raw["compute"]["instanceSize"] == "x2"
    assert endpoint.raw["compute"]["scaling"] == {
        "minReplica": 0,
        "maxReplica": 2,
        "scaleToZeroTimeout": 30,
    }
    endpoint.wait(timeout=180, refresh_every=1)  # the rolling update to the new size

    endpoint.pause()
    assert _until(endpoint, "paused").raw["status"]["readyReplica"] == 0
    endpoint.resume()
    endpoint.wait(timeout=180, refresh_every=1)
    assert (
        endpoint.resume().status == "running"
    )  # running_ok: hubserve's 400 "already running" is fine

    endpoint.scale_to_zero()
    assert endpoint.status == "scaledToZero"
    assert endpoint.client.text_classification(
        "wake up"
    )  # the next request starts a replica

    endpoint.delete()
    deadline = time.monotonic() + 60
    while True:
        try:
            hf.get_inference_endpoint("hf-life", namespace=NAMESPACE)
        except HfHubHTTPError as error:
            assert error.response.status_code == 404 and "does not exist" in str(error)
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_errors_are_readable(
    hf: HfApi, server: RunningServer, tiny_models: dict[str, Path]
) -> None:
    with pytest.raises(HfHubHTTPError) as missing:
        hf.get_inference_endpoint("no-such-endpoint", namespace=NAMESPACE)
    assert missing.value.response.status_code == 404
    assert missing.value.response.json() == {
        "error": "Endpoint 'no-such-endpoint' does not exist. List endpoints with GET /v1/endpoints."
    }

    with pytest.raises(HfHubHTTPError) as bad_size:
        _create(
            hf,
            "hf-bad",
            tiny_models["text-classification"],
            "text-classification",
            instance_size="x3",
        )
    assert bad_size.value.response.status_code == 422 and "compute.instanceSize" in str(
        bad_size.value
    )

    with pytest.raises(HfHubHTTPError) as unauthorized:
        HfApi(token="wrong").list_inference_endpoints(namespace=NAMESPACE)
    assert unauthorized.value.response.status_code == 401 and "bearer token" in str(
        unauthorized.value
    )


# -- InferenceClient against endpoints created with HfApi -------------------------------------


@pytest.fixture(scope="module")
def clients(hf: HfApi, tiny_models: dict[str, Path]) -> dict[str, InferenceClient]:
    """One endpoint per task, created together through HfApi and awaited together."""
    endpoints = {
        task: _create(hf, name, tiny_models[task], task)
        for task, name in TASK_ENDPOINTS.items()
    }
    for endpoint in endpoints.values():
        endpoint.wait(timeout=300, refresh_every=1)
    return {task: endpoint.client for task, endpoint in endpoints.items()}


def _is_score(value: float) -> bool:
    return isinstance(value, float) and 0.0 <= value <= 1.0


def test_text_classification(clients: dict[str, InferenceClient]) -> None:
    labels = clients["text-classification"].text_classification("I love this movie")
    assert isinstance(labels, list) and all(
        isinstance(item, TextClassificationOutputElement) for item in labels
    )
    assert sorted(item.label for item in labels) == [
        "NEGATIVE",
        "POSITIVE",
    ]  # the ranking, not only the top label
    assert all(_is_score(item.score) for item in labels) and sum(
        item.score for item in labels
    ) == pytest.approx(1.0, abs=1e-4)
    top = clients["text-classification"].text_classification(
        "I love this movie", top_k=1
    )
    assert (
        len(top) == 1 and top[0].label == max(labels, key=lambda item: item.score).label
    )


def test_token_classification(clients: dict[str, InferenceClient]) -> None:
    text = "My name is Sarah and I live in London"
    tokens = clients["token-classification"].token_classification(text)
    assert tokens and all(
        isinstance(item, TokenClassificationOutputElement) for item in tokens
    )
    assert all(
        _is_score(item.score) and 0 <= item.start < item.end <= len(text)
        for item in tokens
    )
    groups = clients["token-classification"].token_classification(
        text, aggregation_strategy="simple"
    )
    assert all(
        isinstance(item.entity_group, str) and 0 <= item.start < item.end <= len(text)
        for item in groups
    )


def test_question_answering(clients: dict[str, InferenceClient]) -> None:
    context = "My name is Clara and I live in Berkeley."
    answer = clients["question-answering"].question_answering(
        question="Where do I live?", context=context
    )
    assert isinstance(answer, QuestionAnsweringOutputElement) and _is_score(
        answer.score
    )
    assert context[answer.start : answer.end] == answer.answer
    several = clients["question-answering"].question_answering(
        question="Who?", context=context, top_k=2
    )
    assert isinstance(several, list) and len(several) == 2


def test_fill_mask(clients: dict[str, InferenceClient]) -> None:
    filled = clients["fill-mask"].fill_mask("Paris is the [MASK] of France.", top_k=3)
    assert len(filled) == 3 and all(
        isinstance(item, FillMaskOutputElement) for item in filled
    )
    assert all(
        _is_score(item.score)
        and isinstance(item.token, int)
        and isinstance(item.sequence, str)
        for item in filled
    )


def test_feature_extraction(clients: dict[str, InferenceClient]) -> None:
    vectors = clients["feature-extraction"].feature_extraction("hello world")
    assert isinstance(vectors, np.ndarray) and vectors.dtype == np.float32
    assert (
        vectors.ndim == 3 and vectors.shape[0] == 1 and vectors.shape[2] == 32
    )  # [batch, tokens, hidden]


def test_sentence_similarity(clients: dict[str, InferenceClient]) -> None:
    scores = clients["sentence-similarity"].sentence_similarity(
        "a cat", ["a cat", "a dog", "the sky"]
    )
    assert (
        isinstance(scores, list)
        and len(scores) == 3
        and all(isinstance(score, float) for score in scores)
    )
    assert scores[0] == pytest.approx(1.0, abs=1e-4)


def test_zero_shot_classification(clients: dict[str, InferenceClient]) -> None:
    labels = ["travel", "cooking", "sport"]
    result = clients["zero-shot-classification"].zero_shot_classification(
        "I want to book a flight", labels
    )
    assert all(isinstance(item, ZeroShotClassificationOutputElement) for item in result)
    assert sorted(item.label for item in result) == sorted(labels)
    assert sum(item.score for item in result) == pytest.approx(1.0, abs=1e-3)
    multi = clients["zero-shot-classification"].zero_shot_classification(
        "a flight", labels, multi_label=True
    )
    assert all(_is_score(item.score) for item in multi)


def test_summarization_and_translation(clients: dict[str, InferenceClient]) -> None:
    text = (
        "The tower is 324 metres tall, about the same height as an 81-storey building."
    )
    summary = clients["summarization"].summarization(
        text, generate_parameters={"max_new_tokens": 4}
    )
    assert isinstance(summary, SummarizationOutput) and isinstance(
        summary.summary_text, str
    )
    translation = clients["translation"].translation(text, truncation="longest_first")
    assert isinstance(translation, TranslationOutput) and isinstance(
        translation.translation_text, str
    )


def test_text_generation(clients: dict[str, InferenceClient]) -> None:
    client = clients["text-generation"]
    text = client.text_generation("Once upon a time", max_new_tokens=4, do_sample=False, return_full_text=True)
    assert isinstance(text, str) and text.lower().startswith("once upon a time")
    continuation = client.text_generation(
        "Once upon a time", max_new_tokens=4, return_full_text=False
    )
    assert isinstance(continuation, str) and not continuation.lower().startswith(
        "once upon a time"
    )
    # The endpoint answers TGI's details (issue 15); tests/integration/test_generation_routes.py has the rest.
    detailed = client.text_generation("Once upon a time", max_new_tokens=4, details=True, seed=1)
    assert detailed.details is not None and detailed.details.generated_tokens <= 4  # type: ignore[union-attr]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # A TGI parameter hubserve cannot honour is named the way transformers names it: the
        # client drops it, warns, and asks again, exactly as against the HF inference toolkit.
        plain = client.text_generation("Once upon a time", max_new_tokens=4, top_n_tokens=2)
    assert isinstance(plain, str)
    assert any("not served via TGI" in str(warning.message) for warning in caught)
