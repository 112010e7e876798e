"""A body without ``inputs`` is the input itself for tasks whose input is an object (the HF toolkits' rule)."""

from __future__ import annotations

from typing import Any

import pytest

from hubserve.errors import ValidationError
from hubserve.models.requests import split_body


@pytest.mark.parametrize(
    ("task", "body", "inputs", "parameters"),
    [
        ("question-answering", {"question": "q?", "context": "c.", "parameters": {"top_k": 2}},
         {"question": "q?", "context": "c."}, {"top_k": 2}),
        ("sentence-similarity", {"source_sentence": "a", "sentences": ["b", "c"]},
         {"source_sentence": "a", "sentences": ["b", "c"]}, {}),
        ("zero-shot-classification", {"sequences": "I love travelling", "candidate_labels": ["travel", "cooking"],
                                      "multi_label": True, "parameters": {"multi_label": False}},
         "I love travelling", {"candidate_labels": ["travel", "cooking"], "multi_label": False}),
        ("question-answering", {"inputs": {"question": "q?", "context": "c."}}, {"question": "q?", "context": "c."}, {}),
    ],
)  # fmt: skip
def test_the_body_is_the_input(task: str, body: dict[str, Any], inputs: Any, parameters: dict[str, Any]) -> None:
    assert split_body(body, task) == (inputs, parameters)


@pytest.mark.parametrize(
    ("task", "body", "says"),
    [
        ("text-classification", {"text": "no inputs"}, "'inputs' field for text-classification"),
        ("question-answering", ["not", "an", "object"], "'inputs' field for question-answering"),
        ("zero-shot-classification", {"text": "x", "candidate_labels": ["a"]}, "no 'inputs' and no 'sequences'"),
        ("zero-shot-classification", {"sequences": "x", "labels": ["a"]}, "unknown field 'labels'"),
        ("question-answering", {"question": "q?", "parameters": [1]}, "'parameters' must be a JSON object"),
    ],
)
def test_a_body_that_is_neither_says_what_the_task_takes(task: str, body: Any, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        split_body(body, task)
