"""The task vocabulary: which tasks hubserve serves and the aliases users may write.

A leaf module (imports nothing from hubserve) so the spec, the models package and the
CLI agree on one list.
"""

from __future__ import annotations

import re
from typing import Any

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
    "tabular-classification",  # scikit-learn models in the Hub's layout (models/tabular.py)
    "tabular-regression",
)

# One request body each task accepts, in the Hugging Face toolkit's shape: what `hubserve bench`
# sends when no --data is given, so a load test measures answers rather than 400s. fill-mask uses
# BERT's [MASK]; a model with another mask token (RoBERTa's <mask>) needs --data.
TASK_EXAMPLES: dict[str, dict[str, Any]] = {
    "text-classification": {"inputs": "I love this movie"},
    "token-classification": {"inputs": "My name is Sarah and I live in London"},
    "question-answering": {"inputs": {"question": "Where do I live?", "context": "My name is Sarah and I live in London"}},
    "fill-mask": {"inputs": "Paris is the [MASK] of France."},
    "feature-extraction": {"inputs": "I love this movie"},
    "sentence-embeddings": {"inputs": "I love this movie"},
    "sentence-similarity": {"inputs": {"source_sentence": "I love this movie", "sentences": ["I like this film", "The sky is blue"]}},
    "zero-shot-classification": {"inputs": "I love this movie", "parameters": {"candidate_labels": ["positive", "negative"]}},
    "summarization": {
        "inputs": "The tower is 324 metres tall, about the same height as an 81-storey building.",
        "parameters": {"max_new_tokens": 16},
    },
    "translation": {"inputs": "My name is Sarah and I live in London", "parameters": {"max_new_tokens": 16}},
    "text2text-generation": {"inputs": "Translate to German: I love this movie", "parameters": {"max_new_tokens": 16}},
    "text-generation": {"inputs": "Once upon a time", "parameters": {"max_new_tokens": 16}},
    # A tabular model's columns are its own: `hubserve bench` sends the config's example_input instead.
}

# Tasks whose answers are generated token by token: they stream (TGI's and OpenAI's formats on their
# routes), batch continuously in the replica and report time to first token and inter-token latency.
GENERATIVE_TASKS: frozenset[str] = frozenset({"text-generation", "text2text-generation", "summarization", "translation"})
# The encoder-decoder generative tasks (one prompt at a time, streamed; no continuous batching engine).
SEQ2SEQ_TASKS: tuple[str, ...] = ("summarization", "translation", "text2text-generation")
# Tasks of scikit-learn models only (a text pipeline serves text-classification too).
TABULAR_TASKS: frozenset[str] = frozenset({"tabular-classification", "tabular-regression"})
# Tasks the OpenAI embeddings route serves (``/endpoints/{name}/v1/embeddings``).
EMBEDDING_TASKS: frozenset[str] = frozenset({"feature-extraction", "sentence-embeddings"})

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
