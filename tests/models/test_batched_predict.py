"""``batching.predict_many`` gives every request the answer ``predict`` gives it alone.

Each task's tiny model gets a mixed list of bodies (single inputs, lists, different
parameters, bad inputs); the batched answers must equal the one-by-one answers: exactly for
labels, tokens, strings and shapes, within 1e-5 for floats (padding a batch moves scores and
embeddings in their last bits: at most 2.5e-7 measured).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hubserve.errors import ValidationError
from hubserve.models import batching
from hubserve.models.loading import LoadedModel, load_model
from tests.models.conftest import Load

TOLERANCE = 1e-5


def assert_same(batched: Any, alone: Any, where: str = "answer") -> None:
    """Equal structure and values; floats within TOLERANCE."""
    if isinstance(alone, float) or isinstance(batched, float):
        assert type(batched) is type(alone), f"{where}: {batched!r} vs {alone!r}"
        assert batched == pytest.approx(alone, abs=TOLERANCE), where
    elif isinstance(alone, dict):
        assert isinstance(batched, dict) and batched.keys() == alone.keys(), f"{where}: {batched!r} vs {alone!r}"
        for key in alone:
            assert_same(batched[key], alone[key], f"{where}.{key}")
    elif isinstance(alone, list):
        assert isinstance(batched, list) and len(batched) == len(alone), f"{where}: {batched!r} vs {alone!r}"
        for index, (b, a) in enumerate(zip(batched, alone, strict=True)):
            assert_same(b, a, f"{where}[{index}]")
    else:
        assert batched == alone, f"{where}: {batched!r} vs {alone!r}"


def check_many(model: LoadedModel, bodies: list[Any], batch_size: int | None = None) -> list[Any]:
    """predict_many == predict one by one, errors included (same type and message)."""
    batched = batching.predict_many(model, bodies, batch_size)
    assert len(batched) == len(bodies)
    for index, (body, result) in enumerate(zip(bodies, batched, strict=True)):
        try:
            alone = model.predict(body)
        except Exception as exc:
            assert isinstance(result, Exception), f"body {index}: batched {result!r}, alone raised {exc!r}"
            assert type(result) is type(exc) and str(result) == str(exc), f"body {index}"
            continue
        assert not isinstance(result, Exception), f"body {index}: batched raised {result!r}"
        assert_same(result, alone, f"body {index}")
    return batched


class CountCalls:
    """Wraps a callable and counts calls: proves a group ran as one batch."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.target(*args, **kwargs)


def test_text_classification(load: Load) -> None:
    model = load("text-classification")
    bodies = [
        {"inputs": "I love this movie"},
        {"inputs": ["good", "a much longer and rather more detailed review", "fine"]},
        {"inputs": "two labels", "parameters": {"top_k": 2}},
        {"inputs": ["x", "y"], "parameters": {"top_k": 2}},
        {"inputs": "every label", "parameters": {"top_k": None}},
        {"inputs": {"text": "a premise", "text_pair": "a hypothesis"}},
        {"inputs": ["alone in a list"]},
        {"inputs": 3},  # invalid
        {"inputs": "x", "parameters": {"bogus": 1}},  # invalid
        {"inputs": "sigmoid", "parameters": {"function_to_apply": "sigmoid"}},
        {"inputs": "again"},
    ]
    results = check_many(model, bodies)
    assert isinstance(results[7], ValidationError) and isinstance(results[8], ValidationError)


def test_compatible_requests_share_one_pipeline_call(load: Load) -> None:
    model = load("text-classification")
    predictor: Any = model.predictor
    counter = CountCalls(predictor.pipe)
    predictor.pipe = counter
    try:
        bodies = [{"inputs": "a"}, {"inputs": ["b", "c"]}, {"inputs": "d"}, {"inputs": "e", "parameters": {"top_k": 2}}]
        batching.predict_many(model, bodies)
    finally:
        predictor.pipe = counter.target
    assert counter.calls == 2  # one call for the three default-parameter bodies, one for top_k


def test_token_classification(load: Load) -> None:
    text = "My name is Wolfgang and I live in Berlin"
    bodies = [
        {"inputs": text},
        {"inputs": [text, "short", "another sentence that is longer than the other ones"]},
        {"inputs": text, "parameters": {"aggregation_strategy": "simple"}},
        {"inputs": ["one", text], "parameters": {"aggregation_strategy": "simple"}},
        {"inputs": text, "parameters": {"aggregation_strategy": "max", "ignore_labels": ["O", "B-PER"]}},
        {"inputs": text, "parameters": {"aggregation_strategy": "loudest"}},  # invalid
        {"inputs": ["solo"]},
    ]
    check_many(load("token-classification"), bodies)


def test_fill_mask(load: Load) -> None:
    bodies = [
        {"inputs": "Paris is the [MASK] of France."},
        {"inputs": ["a [MASK] b", "the longest [MASK] of all the inputs here"], "parameters": {"top_k": 2}},
        {"inputs": ["a list of one [MASK]"]},  # the pipeline unwraps a list of one
        {"inputs": "two [MASK] masks [MASK]"},
        {"inputs": "a [MASK]", "parameters": {"targets": ["paris", "london"]}},
        {"inputs": "nothing to fill"},  # invalid
        {"inputs": ["a [MASK]", "nothing"]},  # invalid: input 1
        {"inputs": "c [MASK] d", "parameters": {"top_k": 2}},
    ]
    check_many(load("fill-mask"), bodies)


def test_fill_mask_alone_in_its_group(load: Load) -> None:
    """One single-input request in a group: the pipeline's list-of-one unwrapping is undone."""
    check_many(load("fill-mask"), [{"inputs": "x [MASK]"}, {"inputs": ["y [MASK]"], "parameters": {"top_k": 3}}])


def test_feature_extraction(load: Load) -> None:
    bodies = [
        {"inputs": "hello world"},
        {"inputs": ["a", "a much longer sentence, so the batch is padded to it"]},
        {"inputs": ["solo"]},
        {"inputs": "truncated", "parameters": {"truncation": True}},
        {"inputs": ""},
    ]
    results = check_many(load("feature-extraction"), bodies)
    assert len(results[1][0][0]) == 3  # CLS a SEP: the padded positions are gone


def test_sentence_embeddings(load: Load) -> None:
    bodies = [
        {"inputs": "hello"},
        {"inputs": ["hello", "a longer sentence than hello"]},
        {"inputs": "unit", "parameters": {"normalize_embeddings": True}},
        {"inputs": ["a", "b"], "parameters": {"normalize_embeddings": True}},
        {"inputs": []},  # invalid
    ]
    check_many(load("sentence-transformers", "sentence-embeddings"), bodies)


def test_sentence_similarity(load: Load) -> None:
    bodies = [
        {"inputs": {"source_sentence": "a cat", "sentences": ["a dog", "a car", "a cat"]}},
        {"inputs": {"source_sentence": "something much longer to pad", "sentences": ["x"]}},
        {"inputs": {"source_sentence": "a"}},  # invalid
    ]
    check_many(load("sentence-transformers", "sentence-similarity"), bodies)


def test_zero_shot_classification(load: Load) -> None:
    labels = {"candidate_labels": ["travel", "cooking", "dance"]}
    bodies = [
        {"inputs": "I love travelling", "parameters": labels},
        {"inputs": ["a", "a longer sentence about food"], "parameters": labels},
        {"inputs": "x", "parameters": {"candidate_labels": "x, y", "multi_label": True}},
        {"inputs": ["b", "c"], "parameters": {"candidate_labels": "x, y", "multi_label": True}},
        {"inputs": "t", "parameters": {**labels, "hypothesis_template": "It is about {}."}},
        {"inputs": "no labels"},  # invalid
        {"inputs": ["solo"], "parameters": labels},
    ]
    check_many(load("zero-shot-classification"), bodies)


QUESTION = {"question": "Where do I live?", "context": "My name is Wolfgang and I live in Berlin."}


def test_question_answering(load: Load) -> None:
    long_context = "My name is Wolfgang and I live in Berlin. " * 60  # several windows
    bodies = [
        {"inputs": QUESTION},
        {"inputs": [QUESTION, {"question": "Who?", "context": "Bob is here."}]},
        {"inputs": {"question": "Where?", "context": long_context}},
        {"inputs": QUESTION, "parameters": {"top_k": 3, "max_answer_len": 4}},
        {"inputs": [QUESTION], "parameters": {"top_k": 3, "max_answer_len": 4}},
        {"inputs": QUESTION, "parameters": {"handle_impossible_answer": True}},
        QUESTION,  # question/context at the top level, as the toolkit allows
        {"inputs": {"question": "Where?"}},  # invalid
    ]
    check_many(load("question-answering"), bodies)


def test_a_batch_that_raises_reruns_one_by_one(load: Load) -> None:
    """A question too long for the window fails the batched call: only its request fails."""
    model = load("question-answering")
    bad = {"inputs": {"question": "why " * 400, "context": "x"}}
    bodies = [{"inputs": QUESTION}, bad, {"inputs": {"question": "Who?", "context": "Bob is here."}}]
    prepared = [batching.prepare(model, body) for body in bodies]
    assert len({p.key for p in prepared}) == 1  # they do share a batch
    results = check_many(model, bodies)
    assert isinstance(results[1], ValidationError) and "shorten the question" in str(results[1])
    assert not isinstance(results[0], Exception) and not isinstance(results[2], Exception)


def test_text_classification_input_too_long_fails_alone(load: Load) -> None:
    """Without truncation a 600-token input breaks the model: a ModelError for it alone."""
    model = load("text-classification")
    bodies = [{"inputs": "fine"}, {"inputs": "word " * 600}, {"inputs": ["also", "fine"]}]
    results = batching.predict_many(model, bodies)
    assert isinstance(results[1], Exception) and not isinstance(results[1], ValidationError)
    assert_same(results[0], model.predict(bodies[0]))
    assert_same(results[2], model.predict(bodies[2]))


@pytest.mark.parametrize("task", ["summarization", "translation", "text2text-generation"])
def test_seq2seq(load: Load, task: str) -> None:
    bodies = [
        {"inputs": "A long text about many things.", "parameters": {"max_new_tokens": 4}},
        {"inputs": ["one", "two three four five six"], "parameters": {"max_new_tokens": 4}},
        {"inputs": "x", "parameters": {"max_new_tokens": 4}},
        {"inputs": ["solo"], "parameters": {"max_new_tokens": 4}},
        {"inputs": ["one", "two"], "parameters": {"num_beams": 2, "num_return_sequences": 2, "max_new_tokens": 3}},
        {"inputs": "beams", "parameters": {"num_beams": 2, "num_return_sequences": 2, "max_new_tokens": 3}},
        {"inputs": "defaults"},
        {"inputs": "x", "parameters": {"num_return_sequences": 3}},  # invalid
    ]
    check_many(load("text2text-generation", task), bodies)


def test_text_generation_runs_alone(load: Load) -> None:
    model = load("text-generation")
    bodies = [
        {"inputs": "Hello", "parameters": {"max_new_tokens": 3, "do_sample": False}},  # the pipeline samples by default
        {"inputs": ["Hello", "Bye now"], "parameters": {"max_new_tokens": 3, "do_sample": False}},
        {"inputs": "Hello", "parameters": {"max_new_tokens": "5"}},  # invalid
    ]
    assert batching.prepare(model, bodies[0]).key is None
    with pytest.raises(ValidationError, match="max_new_tokens"):
        batching.prepare(model, bodies[2])  # checked on arrival even though it runs alone
    check_many(model, bodies)


def test_custom_code_runs_alone(tiny_models: dict[str, Path]) -> None:
    model = load_model(tiny_models["custom-handler"], "text-classification", custom_code=True)
    bodies = [{"inputs": "a"}, {"inputs": ["b", "c"]}]
    assert all(batching.prepare(model, body).key is None for body in bodies)
    check_many(model, bodies)


def test_keys_and_costs(load: Load) -> None:
    model = load("text-classification")
    single = batching.prepare(model, {"inputs": "x" * 40})
    several = batching.prepare(model, {"inputs": ["a", "b", "c"]})
    other = batching.prepare(model, {"inputs": "a", "parameters": {"top_k": 2}})
    assert single.key == several.key != other.key
    assert (single.sequences, single.tokens) == (1, 40 // 4 + 3)
    assert several.sequences == 3
    zero_shot = batching.prepare(
        load("zero-shot-classification"), {"inputs": ["a", "b"], "parameters": {"candidate_labels": ["x", "y", "z"]}}
    )
    assert zero_shot.sequences == 6  # every input against every label
    beams = batching.prepare(
        load("text2text-generation", "summarization"), {"inputs": ["a", "b"], "parameters": {"num_beams": 2}}
    )
    assert beams.sequences == 4
    timed = batching.prepare(load("text2text-generation", "summarization"), {"inputs": "a", "parameters": {"max_time": 1.0}})
    assert timed.key is None  # a time budget is not shared


def test_batch_size_bounds_each_call(load: Load) -> None:
    """predict_many splits a group into calls of at most batch_size sequences, never splitting a body."""
    model = load("question-answering")
    predictor: Any = model.predictor
    counter = CountCalls(predictor.answer)
    predictor.answer = counter
    bodies = [{"inputs": [QUESTION] * 3}, {"inputs": QUESTION}, {"inputs": [QUESTION] * 2}, {"inputs": QUESTION}]
    try:
        batching.predict_many(model, bodies, batch_size=4)
    finally:
        del predictor.answer
    assert counter.calls == 2  # [3 + 1], [2 + 1]
    check_many(model, bodies, batch_size=4)


def test_default_limits() -> None:
    assert batching.default_limits("torch") == batching.Limits(32, 1280)
    assert batching.default_limits("onnx") == batching.Limits(32, 1280)
    assert batching.default_limits("onnx-int8") == batching.Limits(32, 1280)
    assert batching.default_limits("something new") == batching.Limits(32, 1280)
    assert batching.default_limits("torch", "cuda").max_batch_size > 32
