"""Every task in-process on the tiny models: answer shapes, types, parameters and errors."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from tiny_models import NLI_LABELS, TOKEN_LABELS, minilm_dir

from hubserve.errors import ValidationError
from hubserve.models.loading import LoadedModel, load_model
from tests.models.conftest import Load


def predict(model: LoadedModel, body: Any) -> Any:
    """Predict and prove the answer is plain JSON (no numpy or torch values)."""
    result = model.predict(body)
    assert json.loads(json.dumps(result)) == result
    return result


def is_probability(value: Any) -> bool:
    return type(value) is float and 0.0 <= value <= 1.0


# -- text-classification -------------------------------------------------------------------

def test_text_classification(load: Load) -> None:
    model = load("text-classification")
    result = predict(model, {"inputs": "I love this movie"})
    assert len(result) == 1 and result[0]["label"] in ("NEGATIVE", "POSITIVE") and is_probability(result[0]["score"])

    both = predict(model, {"inputs": "I love this movie", "parameters": {"top_k": 2}})
    assert sorted(item["label"] for item in both) == ["NEGATIVE", "POSITIVE"]
    assert both[0]["score"] >= both[1]["score"]
    assert len(predict(model, {"inputs": "x", "parameters": {"top_k": None}})) == 2  # null: every label

    batch = predict(model, {"inputs": ["good", "bad", "fine"]})
    assert len(batch) == 3 and all(item["label"] in ("NEGATIVE", "POSITIVE") for item in batch)

    pair = predict(model, {"inputs": {"text": "a premise", "text_pair": "a hypothesis"}})
    assert pair["label"] in ("NEGATIVE", "POSITIVE")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"text": "no inputs field"}, "'inputs' field"),
        ("just a string", "'inputs' field"),
        ({"inputs": 3}, "must be a string"),
        ({"inputs": []}, "must be a string"),
        ({"inputs": "x", "parameters": ["top_k"]}, "'parameters' must be a JSON object"),
        ({"inputs": "x", "parameters": {"bogus": 1}}, "unknown parameter 'bogus'.*supported parameters: .*top_k"),
        ({"inputs": "x", "parameters": {"top_k": "2"}}, "'top_k' must be an integer"),
        ({"inputs": "x", "parameters": {"top_k": 0}}, "'top_k' must be at least 1"),
        ({"inputs": "x", "parameters": {"function_to_apply": "relu"}}, "one of sigmoid, softmax, none"),
    ],
)
def test_text_classification_rejects_bad_bodies(load: Load, body: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load("text-classification").predict(body)


# -- token-classification ------------------------------------------------------------------

def test_token_classification(load: Load) -> None:
    model = load("token-classification")
    text = "My name is Wolfgang and I live in Berlin"
    entities = predict(model, {"inputs": text})
    assert entities, "the random head labels some tokens"
    for entity in entities:
        assert entity["entity"] in TOKEN_LABELS[1:]
        assert is_probability(entity["score"])
        assert type(entity["index"]) is int and type(entity["start"]) is int and type(entity["end"]) is int
        assert text[entity["start"]:entity["end"]].lower() == entity["word"]

    grouped = predict(model, {"inputs": text, "parameters": {"aggregation_strategy": "simple"}})
    assert grouped and all(item["entity_group"] in ("PER", "LOC") for item in grouped)
    assert all(type(item["start"]) is int and is_probability(item["score"]) for item in grouped)

    batch = predict(model, {"inputs": ["one sentence", "two sentences here"]})
    assert len(batch) == 2 and all(isinstance(item, list) for item in batch)

    with pytest.raises(ValidationError, match=r"aggregation_strategy.*simple"):
        model.predict({"inputs": text, "parameters": {"aggregation_strategy": "loudest"}})


# -- fill-mask -----------------------------------------------------------------------------

def test_fill_mask(load: Load) -> None:
    model = load("fill-mask")
    top3 = predict(model, {"inputs": "Paris is the [MASK] of France.", "parameters": {"top_k": 3}})
    assert len(top3) == 3
    assert all(type(item["token"]) is int and isinstance(item["token_str"], str) for item in top3)
    assert all(is_probability(item["score"]) and item["sequence"].startswith("paris is the") for item in top3)

    batch = predict(model, {"inputs": ["a [MASK] b", "c [MASK]"], "parameters": {"top_k": 1}})
    assert len(batch) == 2 and all(len(item) == 1 for item in batch)

    targeted = predict(model, {"inputs": "a [MASK]", "parameters": {"targets": ["paris", "london"]}})
    assert sorted(item["token_str"] for item in targeted) == ["london", "paris"]

    with pytest.raises(ValidationError, match=r"no mask token.*\[MASK\]"):
        model.predict({"inputs": "nothing to fill"})
    with pytest.raises(ValidationError, match="input 1 has no mask token"):
        model.predict({"inputs": ["a [MASK]", "nothing"]})


# -- feature-extraction and sentence-transformers ------------------------------------------

def test_feature_extraction(load: Load) -> None:
    model = load("feature-extraction")
    single = predict(model, {"inputs": "hello world"})
    # [batch of 1][tokens: CLS hello world SEP][hidden 32], as the pipeline returns it
    assert len(single) == 1 and len(single[0]) == 4 and len(single[0][0]) == 32
    assert all(type(value) is float for value in single[0][0])
    batch = predict(model, {"inputs": ["hello world", "a"]})
    assert len(batch) == 2 and len(batch[1][0]) == 3


def test_sentence_embeddings(load: Load) -> None:
    model = load("sentence-transformers", "sentence-embeddings")
    single = predict(model, {"inputs": "hello"})["embeddings"]
    assert len(single) == 32 and all(type(value) is float for value in single)
    batch = predict(model, {"inputs": ["hello", "world"]})["embeddings"]
    assert len(batch) == 2 and all(len(vector) == 32 for vector in batch)
    assert batch[0] == pytest.approx(single, abs=1e-5)

    unit = predict(model, {"inputs": "hello", "parameters": {"normalize_embeddings": True}})["embeddings"]
    assert math.sqrt(sum(v * v for v in unit)) == pytest.approx(1.0, abs=1e-4)


def test_sentence_similarity(load: Load) -> None:
    model = load("sentence-transformers", "sentence-similarity")
    body = {"inputs": {"source_sentence": "a cat", "sentences": ["a dog", "a car", "a cat"]}}
    scores = predict(model, body)["similarities"]
    assert len(scores) == 3 and all(-1.0001 <= s <= 1.0001 for s in scores)
    assert scores[2] == pytest.approx(1.0, abs=1e-4)  # identical sentence

    bad_bodies = (
        {"inputs": "a cat"},
        {"inputs": {"source_sentence": "a"}},
        {"inputs": {"source_sentence": "a", "sentences": []}},
    )
    for bad in bad_bodies:
        with pytest.raises(ValidationError, match=r"source_sentence|sentences"):
            model.predict(bad)


def test_real_minilm_orders_similarities_sensibly() -> None:
    model = load_model(minilm_dir(), "sentence-similarity")
    body = {
        "inputs": {
            "source_sentence": "A man is eating food.",
            "sentences": ["A man is eating bread.", "The sky is blue."],
        }
    }
    bread, sky = predict(model, body)["similarities"]
    assert bread > 0.5 > sky


# -- zero-shot-classification --------------------------------------------------------------

def test_zero_shot_classification(load: Load) -> None:
    model = load("zero-shot-classification")
    body = {"inputs": "I love travelling", "parameters": {"candidate_labels": ["travel", "cooking", "dance"]}}
    result = predict(model, body)
    assert result["sequence"] == "I love travelling"
    assert sorted(result["labels"]) == ["cooking", "dance", "travel"]
    assert sum(result["scores"]) == pytest.approx(1.0, abs=1e-4)
    assert result["scores"] == sorted(result["scores"], reverse=True)

    multi = predict(model, {"inputs": ["a", "b"], "parameters": {"candidate_labels": "x, y", "multi_label": True}})
    assert len(multi) == 2 and sorted(multi[0]["labels"]) == ["x", "y"]
    assert all(is_probability(score) for score in multi[0]["scores"])

    with pytest.raises(ValidationError, match=r"needs parameters.candidate_labels"):
        model.predict({"inputs": "I love travelling"})
    with pytest.raises(ValidationError, match="'candidate_labels' is empty"):
        model.predict({"inputs": "x", "parameters": {"candidate_labels": " , "}})
    with pytest.raises(ValidationError, match=r"'hypothesis_template' must be a string containing \{\}"):
        model.predict({"inputs": "x", "parameters": {"candidate_labels": ["a"], "hypothesis_template": "no slot"}})
    assert set(NLI_LABELS) == set(model.predictor.model_config.label2id)  # type: ignore[attr-defined]


# -- text-generation -----------------------------------------------------------------------

def test_text_generation(load: Load) -> None:
    model = load("text-generation")
    full = predict(model, {"inputs": "Hello", "parameters": {"max_new_tokens": 3, "return_full_text": True}})
    assert len(full) == 1 and full[0]["generated_text"].startswith("Hello")

    tail = predict(model, {"inputs": "Hello", "parameters": {"max_new_tokens": 3}})  # only the new text, as TGI
    assert isinstance(tail[0]["generated_text"], str) and not tail[0]["generated_text"].startswith("Hello")
    assert predict(model, {"inputs": "Hello", "parameters": {"max_new_tokens": 3}}) == tail  # greedy by default

    batch = predict(model, {"inputs": ["Hello", "Bye"], "parameters": {"max_new_tokens": 2}})
    assert len(batch) == 2 and all(len(item) == 1 for item in batch)

    sampled = predict(
        model, {"inputs": "Hi", "parameters": {"do_sample": True, "num_return_sequences": 2, "max_new_tokens": 2}}
    )
    assert len(sampled) == 2


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"max_new_tokens": "5"}, "'max_new_tokens' must be an integer"),
        ({"temperature": True}, "'temperature' must be a number"),
        ({"bogus": 1}, "unknown parameter 'bogus'"),
        ({"num_beams": 2, "num_return_sequences": 3}, "invalid generation parameters"),
    ],
)
def test_text_generation_rejects_bad_parameters(load: Load, parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load("text-generation").predict({"inputs": "Hello", "parameters": parameters})


def test_chat_messages_need_a_chat_template(load: Load) -> None:
    with pytest.raises(ValidationError, match="no chat template"):
        load("text-generation").predict({"inputs": [{"role": "user", "content": "hi"}]})


# -- question-answering --------------------------------------------------------------------

QUESTION = {"question": "Where do I live?", "context": "My name is Wolfgang and I live in Berlin."}


def _check_answer(answer: dict[str, Any], context: str) -> None:
    assert set(answer) == {"score", "start", "end", "answer"}
    assert is_probability(answer["score"])
    assert 0 <= answer["start"] <= answer["end"] <= len(context)
    assert answer["answer"] == context[answer["start"]:answer["end"]]


def test_question_answering(load: Load) -> None:
    model = load("question-answering")
    answer = predict(model, {"inputs": QUESTION})
    _check_answer(answer, QUESTION["context"])
    assert answer["answer"]  # a span, not the empty "no answer"
    assert answer["start"] >= 0 and "Where" not in answer["answer"]  # never a span of the question

    top3 = predict(model, {"inputs": QUESTION, "parameters": {"top_k": 3, "max_answer_len": 4}})
    assert len(top3) == 3 and [a["score"] for a in top3] == sorted((a["score"] for a in top3), reverse=True)
    for item in top3:
        _check_answer(item, QUESTION["context"])
    assert len({(a["start"], a["end"]) for a in top3}) == 3

    batch = predict(model, {"inputs": [QUESTION, {"question": "Who?", "context": "Bob is here."}]})
    assert len(batch) == 2
    _check_answer(batch[1], "Bob is here.")

    assert predict(model, QUESTION) == answer  # the toolkit also accepts question/context at the top


def test_question_answering_long_context_uses_windows(load: Load) -> None:
    context = "My name is Wolfgang and I live in Berlin. " * 60  # ~600 tokens: several windows
    answer = predict(load("question-answering"), {"inputs": {"question": "Where?", "context": context}})
    _check_answer(answer, context)


def test_question_answering_impossible_answer(load: Load) -> None:
    # One-token spans over ~10 context tokens: 20 answers must include the "no answer" one.
    parameters = {"handle_impossible_answer": True, "top_k": 20, "max_answer_len": 1}
    answers = predict(load("question-answering"), {"inputs": QUESTION, "parameters": parameters})
    empty = [a for a in answers if a["answer"] == ""]
    assert len(empty) == 1 and empty[0]["start"] == empty[0]["end"] == 0 and is_probability(empty[0]["score"])
    without = {"inputs": QUESTION, "parameters": {"top_k": 20, "max_answer_len": 1}}
    assert all(a["answer"] for a in predict(load("question-answering"), without))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": {"question": "Where?"}}, "string question and context"),
        ({"inputs": "Where?"}, "string question and context"),
        ({"inputs": {"question": "", "context": "x"}}, "non-empty question"),
        ({"inputs": QUESTION, "parameters": {"max_answer_len": 0}}, "'max_answer_len' must be at least 1"),
        ({"inputs": {"question": "why " * 400, "context": "x"}}, "shorten the question"),
    ],
)
def test_question_answering_errors(load: Load, body: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load("question-answering").predict(body)


# -- summarization, translation, text2text-generation --------------------------------------

@pytest.mark.parametrize(
    ("task", "key"),
    [
        ("summarization", "summary_text"),
        ("translation", "translation_text"),
        ("text2text-generation", "generated_text"),
    ],
)
def test_seq2seq_tasks(load: Load, task: str, key: str) -> None:
    model = load("text2text-generation", task)
    single = predict(model, {"inputs": "A long text about many things.", "parameters": {"max_new_tokens": 4}})
    assert len(single) == 1 and isinstance(single[0][key], str) and single[0][key]

    batch = predict(model, {"inputs": ["one", "two", "three"], "parameters": {"max_new_tokens": 2}})
    assert len(batch) == 3 and all(set(item) == {key} for item in batch)

    parameters = {"num_beams": 2, "num_return_sequences": 2, "max_new_tokens": 2}
    beams = predict(model, {"inputs": ["one", "two"], "parameters": parameters})
    assert len(beams) == 2 and all(len(group) == 2 for group in beams)

    with pytest.raises(ValidationError, match="unknown parameter 'bogus'"):
        model.predict({"inputs": "x", "parameters": {"bogus": True}})
    with pytest.raises(ValidationError, match="invalid generation parameters"):
        model.predict({"inputs": "x", "parameters": {"num_return_sequences": 3}})


def test_seq2seq_truncates_long_inputs(load: Load) -> None:
    long_text = "word " * 2000  # far past the 512 positions of the tiny BART
    body = {"inputs": long_text, "parameters": {"max_new_tokens": 2}}
    assert predict(load("text2text-generation", "summarization"), body)


def test_seq2seq_uses_task_specific_params(load: Load) -> None:
    model = load("text2text-generation", "summarization")
    generator = model.predictor
    saved = generator.task_params  # type: ignore[attr-defined]
    try:
        generator.task_params = {"summarization": {"prefix": "summarize: ", "max_new_tokens": 1}}  # type: ignore[attr-defined]
        short = predict(model, {"inputs": "some text"})[0]["summary_text"]
        longer = predict(model, {"inputs": "some text", "parameters": {"max_new_tokens": 6}})[0]["summary_text"]
    finally:
        generator.task_params = saved  # type: ignore[attr-defined]
    assert len(short) < len(longer)


def test_translation_ignores_plain_words_as_language_codes(load: Load) -> None:
    """tgt_lang only forces a first token on multilingual tokenizers (special language tokens)."""
    model = load("text2text-generation", "translation")
    parameters = {"src_lang": "en", "tgt_lang": "fr", "max_new_tokens": 3}
    with_langs = predict(model, {"inputs": "x", "parameters": parameters})
    without = predict(model, {"inputs": "x", "parameters": {"max_new_tokens": 3}})
    assert with_langs == without
