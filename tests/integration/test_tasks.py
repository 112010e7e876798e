"""Every task end to end: deploy a tiny model through the API, invoke it in both dialects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import wait_for_state

TASK_ENDPOINTS = {
    "text-classification": "tc",
    "token-classification": "ner",
    "question-answering": "qa",
    "fill-mask": "fm",
    "feature-extraction": "fe",
    "sentence-embeddings": "se",
    "sentence-similarity": "ss",
    "zero-shot-classification": "zs",
    "summarization": "sum",
    "translation": "tr",
    "text2text-generation": "t2t",
    "text-generation": "tg",
}


@pytest.fixture(scope="module")
def task_endpoints(api: httpx.Client, tiny_models: dict[str, Path]) -> dict[str, str]:
    """One endpoint per task, created together and awaited together."""
    for task, name in TASK_ENDPOINTS.items():
        spec = {"name": name, "model": {"source": str(tiny_models[task]), "task": task}}
        response = api.post("/v1/endpoints", json=spec)
        assert response.status_code == 201, response.text
        assert response.json()["state"] == "pending"
    for name in TASK_ENDPOINTS.values():
        description = wait_for_state(api, name, {"running", "failed"}, timeout=300)
        assert description["state"] == "running", description
    return TASK_ENDPOINTS


def invoke(api: httpx.Client, name: str, body: Any, sagemaker: bool = False) -> httpx.Response:
    path = f"/endpoints/{name}/invocations" if sagemaker else f"/endpoints/{name}"
    response = api.post(path, json=body)
    assert response.status_code == 200, response.text
    assert float(response.headers["x-model-latency-ms"]) > 0
    assert float(response.headers["x-overhead-latency-ms"]) >= 0
    assert response.headers["x-cold-start"] in ("true", "false")
    return response


def _is_label_scores(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(i["label"], str) and 0 <= i["score"] <= 1 for i in items)


def test_text_classification(api: httpx.Client, task_endpoints: dict[str, str]) -> None:
    result = invoke(api, "tc", {"inputs": "I love this movie"}).json()
    assert _is_label_scores(result) and result[0]["label"] in ("NEGATIVE", "POSITIVE")
    top2 = invoke(api, "tc", {"inputs": "I love this movie", "parameters": {"top_k": 2}}).json()
    flat = top2[0] if isinstance(top2[0], list) else top2
    assert sorted(item["label"] for item in flat) == ["NEGATIVE", "POSITIVE"]
    batch = invoke(api, "tc", {"inputs": ["good", "bad", "fine"]}).json()
    assert len(batch) == 3


def test_sagemaker_dialect_gives_the_same_answer(api: httpx.Client, task_endpoints: dict[str, str]) -> None:
    body = {"inputs": "the same text"}
    assert invoke(api, "tc", body, sagemaker=True).json() == invoke(api, "tc", body).json()


def test_token_classification_with_aggregation(api: httpx.Client, task_endpoints: dict[str, str]) -> None:
    raw = invoke(api, "ner", {"inputs": "My name is Sarah and I live in London"}).json()
    assert isinstance(raw, list) and all("entity" in item and "score" in item for item in raw)
    grouped = invoke(
        api, "ner", {"inputs": "My name is Sarah and I live in London", "parameters": {"aggregation_strategy": "simple"}}
    ).json()
    assert all("entity_group" in item and isinstance(item["start"], int) for item in grouped)
    assert len(invoke(api, "ner", {"inputs": ["one sentence", "two sentences"]}).json()) == 2


def test_question_answering(api: httpx.Client, task_endpoints: dict[str, str]) -> None:
    context = "My name is Clara and I live in Berkeley."
    result = invoke(api, "qa", {"inputs": {"question": "Where do I live?", "context": context}}).json()
    assert set(result) >= {"score", "start", "end", "answer"}
    assert context[result["start"] : result["end"]] == result["answer"]
    many = invoke(api, "qa", {"inputs": [{"question": "Who?", "context": context}] * 2}).json()
    assert isinstance(many, list) and len(many) == 2


def test_fill_mask(api: httpx.Client, task_endpoints: dict[str, str]) -> None:
    result = invoke(api, "fm", {"inputs": "Paris is the [MASK] of France.", "parameters": {"top_k": 3}}).json()
    assert len(result) == 3 and all({"token_str", "score", "sequence"} <= set(item) for item in result)


def test_feature_extraction(api: httpx.Client, task_endpoints: dict[str, str]) -> None:
    result = invoke(api, "fe", {"inputs": "hello world"}).json()
    # [batch][tokens][hidden] or [tokens][hidden]: nested lists of floats either way.
    while isinstance(result[0], list):
        result = result[0]
    assert all(isinstance(value, float) for value in result) and len(result) == 32


def test_sentence_embeddings(api: httpx.Client, task_endpoints: dict[str, str]) -> None:
    single = invoke(api, "se", {"inputs": "hello world"}).json()["embeddings"]
    assert all(isinstance(value, float) for value in single)
    many = invoke(api, "se", {"inputs": ["a", "b", "c"]}).json()["embeddings"]
    assert len(many) == 3 and len(many[0]) == len(single)


def test_sentence_similarity(api: httpx.Client, task_endpoints: dict[str, str]) -> None:
    body = {"inputs": {"source_sentence": "a cat", "sentences": ["a cat", "a dog", "the sky"]}}
    similarities = invoke(api, "ss", body).json()["similarities"]
    assert len(similarities) == 3 and similarities[0] == pytest.approx(1.0, abs=1e-4)


def test_zero_shot_classification(api: httpx.Client, task_endpoints: dict[str, str]) -> None:
    body = {"inputs": "I want to book a flight", "parameters": {"candidate_labels": ["travel", "cooking", "sport"]}}
    result = invoke(api, "zs", body).json()
    assert result["sequence"] == "I want to book a flight"
    assert sorted(result["labels"]) == ["cooking", "sport", "travel"]
    assert sum(result["scores"]) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(("name", "key"), [("sum", "summary_text"), ("tr", "translation_text"), ("t2t", "generated_text")])
def test_seq2seq_tasks(api: httpx.Client, task_endpoints: dict[str, str], name: str, key: str) -> None:
    body = {"inputs": "The tower is 324 metres tall, about the same height as an 81-storey building.", "parameters": {"max_new_tokens": 5}}
    result = invoke(api, name, body).json()
    assert isinstance(result, list) and isinstance(result[0][key], str)
    assert len(invoke(api, name, {"inputs": ["one", "two"], "parameters": {"max_new_tokens": 3}}).json()) == 2


def test_text_generation(api: httpx.Client, task_endpoints: dict[str, str]) -> None:
    body = {"inputs": "Once upon a time", "parameters": {"max_new_tokens": 4, "return_full_text": True}}
    result = invoke(api, "tg", body).json()
    assert isinstance(result[0]["generated_text"], str) and result[0]["generated_text"].lower().startswith("once upon a time")
    # The default is the new text only, as TGI answers (greedy, so the same text each time).
    tail = invoke(api, "tg", {"inputs": "Once upon a time", "parameters": {"max_new_tokens": 4}}).json()
    assert result[0]["generated_text"].endswith(tail[0]["generated_text"]) and not tail[0]["generated_text"].startswith("Once")


def test_list_shows_every_task_endpoint(api: httpx.Client, task_endpoints: dict[str, str]) -> None:
    items = {item["name"]: item for item in api.get("/v1/endpoints").json()["items"]}
    for task, name in task_endpoints.items():
        assert items[name]["model"]["task"] == task
        assert items[name]["url"].endswith(f"/endpoints/{name}")
        assert items[name]["replicas"]["ready"] == 1 and items[name]["replicas"]["desired"] == 1
