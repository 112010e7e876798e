"""The task vocabulary: which tasks hubserve serves and the aliases users may write.

A leaf module (imports nothing from hubserve) so the spec, the models package and the
CLI agree on one list.
"""

from __future__ import annotations

import re

TASKS: tuple[str, ...] = (
    "text-classification",
    "token-classification",
    "question-answering",
    "fill-mask",
    "feature-extraction",
    "sentence-embeddings",
    "sentence-similarity",
    "zero-shot-classification",
    "summarization",
    "translation",
    "text2text-generation",
    "text-generation",
)

TASK_ALIASES: dict[str, str] = {
    "sentiment-analysis": "text-classification",
    "ner": "token-classification",
    "sentence-embedding": "sentence-embeddings",
}


def normalize_task(task: str) -> str:
    """Return the canonical task name, or raise ValueError listing the supported tasks."""
    name = task.strip().lower().replace("_", "-")
    name = TASK_ALIASES.get(name, name)
    if re.fullmatch(r"translation-[a-z]{2,3}(-[a-z]+)?-to-[a-z]{2,3}(-[a-z]+)?", name):
        return "translation"
    if name not in TASKS:
        raise ValueError(f"unknown task '{task}'; supported tasks: {', '.join(TASKS)}")
    return name
