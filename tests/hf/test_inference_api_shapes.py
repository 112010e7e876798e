"""API_INFERENCE_COMPAT: the answer shapes InferenceClient parses, alone and through the batching path."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubserve.errors import ValidationError
from hubserve.models.batching import predict_many
from hubserve.models.loading import LoadedModel, load_model
from hubserve.models.predictors import COMPAT_ENV


@pytest.fixture
def compat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMPAT_ENV, "true")


def _load(
    tiny_models: dict[str, Path], task: str, key: str | None = None
) -> LoadedModel:
    return load_model(tiny_models[key or task], task)


def test_text_classification_one_input_is_a_batch_of_one(
    compat: None, tiny_models: dict[str, Path]
) -> None:
    model = _load(tiny_models, "text-classification")
    alone = model.predict({"inputs": "I love it"})
    assert (
        isinstance(alone, list)
        and len(alone) == 1
        and {item["label"] for item in alone[0]} == {"NEGATIVE", "POSITIVE"}
    )
    top1 = model.predict({"inputs": "I love it", "parameters": {"top_k": 1}})
    assert len(top1) == 1 and len(top1[0]) == 1
    batched = predict_many(
        model, [{"inputs": "I love it"}, {"inputs": "so bad"}, {"inputs": ["a", "b"]}]
    )
    assert [item["label"] for item in batched[0][0]] == [
        item["label"] for item in alone[0]
    ]
    assert len(batched[1]) == 1 and len(batched[1][0]) == 2
    assert len(batched[2]) == 2 and all(
        isinstance(item, dict) for item in batched[2]
    )  # lists keep the pipeline's shape


def test_zero_shot_is_a_list_of_label_scores(
    compat: None, tiny_models: dict[str, Path]
) -> None:
    model = _load(tiny_models, "zero-shot-classification")
    body = {
        "inputs": "book a flight",
        "parameters": {"candidate_labels": ["travel", "cooking"]},
    }
    answer = model.predict(body)
    assert sorted(item["label"] for item in answer) == ["cooking", "travel"]
    assert sum(item["score"] for item in answer) == pytest.approx(1.0, abs=1e-4)
    many = model.predict({**body, "inputs": ["a", "b"]})
    assert len(many) == 2 and all(len(labels) == 2 for labels in many)
    assert predict_many(model, [body])[0] == answer
    refused = predict_many(model, [{"inputs": "x"}])[
        0
    ]  # still checked on arrival, before it queues
    assert (
        isinstance(refused, ValidationError) and "candidate_labels" in refused.message
    )


def test_sentence_similarity_is_the_bare_list(
    compat: None, tiny_models: dict[str, Path]
) -> None:
    model = _load(tiny_models, "sentence-similarity")
    body = {"inputs": {"source_sentence": "a cat", "sentences": ["a cat", "the sky"]}}
    scores = model.predict(body)
    assert (
        isinstance(scores, list)
        and len(scores) == 2
        and scores[0] == pytest.approx(1.0, abs=1e-4)
    )
    assert predict_many(model, [body, body]) == [scores, scores]


def test_without_the_switch_the_toolkit_shapes_stay(
    monkeypatch: pytest.MonkeyPatch, tiny_models: dict[str, Path]
) -> None:
    monkeypatch.delenv(COMPAT_ENV, raising=False)
    similarity = _load(tiny_models, "sentence-similarity").predict(
        {"inputs": {"source_sentence": "a", "sentences": ["b"]}}
    )
    assert set(similarity) == {"similarities"}


def test_generation_names_unknown_parameters_as_transformers_does(
    tiny_models: dict[str, Path],
) -> None:
    model = _load(tiny_models, "text-generation")
    with pytest.raises(
        ValidationError,
        match=r"The following `model_kwargs` are not used by the model: \['details', 'seed'\]",
    ):
        model.predict({"inputs": "hi", "parameters": {"details": True, "seed": 1}})


def test_seq2seq_takes_generate_parameters_and_truncation_names(
    tiny_models: dict[str, Path],
) -> None:
    model = _load(tiny_models, "summarization", "text2text-generation")
    answer = model.predict({"inputs": "a long text", "parameters": {"generate_parameters": {"max_new_tokens": 2},
                                                                     "truncation": "only_first"}})  # fmt: skip
    assert isinstance(answer, list) and isinstance(answer[0]["summary_text"], str)
    with pytest.raises(ValidationError, match="generate_parameters"):
        model.predict({"inputs": "x", "parameters": {"generate_parameters": 3}})
