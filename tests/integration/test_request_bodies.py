"""A body without ``inputs`` is the input itself for tasks whose input is an object, on both routes.

Both Hugging Face inference toolkits take ``data.pop("inputs", data)``: a client that posts
``{"question", "context"}`` to a question-answering endpoint gets its answer. A body that is
neither the toolkit shape nor the task's object gets a 400 saying what the task takes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.integration.conftest import RunningServer, wait_for_state

ENDPOINTS = {"question-answering": "bodies-qa", "sentence-similarity": "bodies-ss", "zero-shot-classification": "bodies-zs"}
QA = {"question": "Where do I live?", "context": "My name is Wolfgang and I live in Berlin."}
SIMILARITY = {"source_sentence": "A man is eating food.", "sentences": ["A man eats.", "It is raining."]}


@pytest.fixture(scope="module")
def endpoints(api: httpx.Client, tiny_models: dict[str, Path]) -> Iterator[dict[str, str]]:
    for task, name in ENDPOINTS.items():
        spec = {"name": name, "model": {"source": str(tiny_models[task]), "task": task}}
        assert api.post("/v1/endpoints", json=spec).status_code == 201
    for name in ENDPOINTS.values():
        assert wait_for_state(api, name, {"running", "failed"}, timeout=300)["state"] == "running"
    yield ENDPOINTS
    for name in ENDPOINTS.values():
        api.delete(f"/v1/endpoints/{name}")


def _both_routes(api: httpx.Client, name: str, body: Any) -> list[httpx.Response]:
    return [api.post(f"/endpoints/{name}", json=body), api.post(f"/endpoints/{name}/invocations", json=body)]


def test_question_answering_takes_the_pair_itself(api: httpx.Client, endpoints: dict[str, str]) -> None:
    wrapped = api.post(f"/endpoints/{endpoints['question-answering']}", json={"inputs": QA}).json()
    for response in _both_routes(api, endpoints["question-answering"], QA):
        assert response.status_code == 200, response.text
        assert response.json() == wrapped and set(wrapped) == {"score", "start", "end", "answer"}
    top2 = api.post(f"/endpoints/{endpoints['question-answering']}", json={**QA, "parameters": {"top_k": 2}})
    assert top2.status_code == 200 and len(top2.json()) == 2


def test_sentence_similarity_takes_its_object_itself(api: httpx.Client, endpoints: dict[str, str]) -> None:
    wrapped = api.post(f"/endpoints/{endpoints['sentence-similarity']}", json={"inputs": SIMILARITY}).json()
    for response in _both_routes(api, endpoints["sentence-similarity"], SIMILARITY):
        assert response.status_code == 200, response.text
        assert response.json() == wrapped and len(wrapped["similarities"]) == 2


def test_zero_shot_takes_its_call_arguments_as_the_body(api: httpx.Client, endpoints: dict[str, str]) -> None:
    labels = ["travel", "cooking"]
    wrapped = api.post(f"/endpoints/{endpoints['zero-shot-classification']}",
                       json={"inputs": "I love travelling", "parameters": {"candidate_labels": labels}}).json()  # fmt: skip
    for response in _both_routes(api, endpoints["zero-shot-classification"],
                                 {"sequences": "I love travelling", "candidate_labels": labels}):  # fmt: skip
        assert response.status_code == 200, response.text
        assert response.json() == wrapped


def test_the_sagemaker_client_sends_the_object_as_is(server: RunningServer, endpoints: dict[str, str]) -> None:
    runtime = boto3.client("sagemaker-runtime", endpoint_url=server.url, aws_access_key_id="hubserve",
                           aws_secret_access_key=server.token, region_name="us-east-1",
                           config=Config(retries={"total_max_attempts": 1}))  # fmt: skip
    answer = runtime.invoke_endpoint(EndpointName=endpoints["question-answering"], Body=json.dumps(QA),
                                     ContentType="application/json")  # fmt: skip
    assert "answer" in json.loads(answer["Body"].read())


@pytest.mark.parametrize(
    ("task", "body", "says"),
    [
        ("question-answering", {"query": "Where?", "text": "Berlin."}, "string question and context"),
        ("sentence-similarity", {"source": "a", "targets": ["b"]}, "source_sentence"),
        ("question-answering", ["Where?", "Berlin."], "JSON object with an 'inputs' field"),
        ("zero-shot-classification", {"text": "x", "candidate_labels": ["a"]}, "no 'inputs' and no 'sequences'"),
    ],
)
def test_a_body_that_is_neither_is_a_400_saying_what_the_task_takes(
    api: httpx.Client, endpoints: dict[str, str], task: str, body: Any, says: str
) -> None:
    hf, sagemaker = _both_routes(api, endpoints[task], body)
    assert hf.status_code == 400 and says in hf.json()["error"]["message"], hf.text
    assert sagemaker.status_code == 400 and sagemaker.headers["x-amzn-ErrorType"] == "ValidationError"
    assert says in sagemaker.json()["message"]
