"""Infer the task a model folder serves, from its files alone.

Reads JSON only (no torch, no transformers), so the server can call it while validating
an endpoint spec. Rules, first match wins:

1. ``modules.json`` present: a sentence-transformers folder -> ``sentence-embeddings``
   (ask for ``sentence-similarity`` explicitly; both run on the same folder).
2. ``config.json`` ``architectures[0]`` by suffix:
   ForSequenceClassification -> text-classification (NLI models included: zero-shot is
   a choice the user makes, not something the labels prove), ForTokenClassification ->
   token-classification, ForQuestionAnswering -> question-answering, ForMaskedLM ->
   fill-mask, ForCausalLM / LMHeadModel -> text-generation, plain ``...Model`` ->
   feature-extraction.
3. Encoder-decoder generators (ForConditionalGeneration, ForSeq2SeqLM, MTModel, or an
   LMHeadModel whose config is encoder-decoder such as old T5): ``translation`` for
   Marian ``MTModel``s or when ``task_specific_params`` names only translations;
   ``summarization`` when it names only summarization; otherwise
   ``text2text-generation`` (T5 lists both, and its prefixes are chosen per task).
   ForConditionalGeneration on a model that is not encoder-decoder (vision-language
   models) is not inferred.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hubserve.models import tabular
from hubserve.tasks import TASKS

_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMaskedLM", "fill-mask"),
    ("ForCausalLM", "text-generation"),
)
_SEQ2SEQ_SUFFIXES = ("ForConditionalGeneration", "ForSeq2SeqLM", "Seq2SeqLM", "MTModel", "LMHeadModel")
_SEQ2SEQ_MODEL_TYPES = frozenset(
    {"t5", "mt5", "umt5", "bart", "mbart", "marian", "pegasus", "pegasus_x", "led", "m2m_100",
     "nllb-moe", "fsmt", "prophetnet", "bigbird_pegasus", "longt5", "plbart", "blenderbot",
     "blenderbot-small", "switch_transformers"}
)


def infer_task(model_dir: Path) -> str:
    """Return the canonical task for ``model_dir`` or raise ValueError saying to set model.task."""
    model_dir = Path(model_dir)
    if (model_dir / "modules.json").is_file():
        return "sentence-embeddings"
    if tabular.is_sklearn_folder(model_dir):
        try:
            return tabular.sklearn_task(model_dir)
        except tabular.TabularModelError as exc:
            raise ValueError(str(exc)) from None
    config = _read_config(model_dir)
    architectures = config.get("architectures") or []
    if isinstance(architectures, list) and architectures and isinstance(architectures[0], str):
        task = _task_for(architectures[0], config)
        if task is not None:
            return task
    raise ValueError(
        f"could not infer the task of the model in {model_dir}: config.json architectures "
        f"{architectures or 'missing'} do not name a head hubserve knows. "
        f"Set model.task to one of: {', '.join(TASKS)}."
    )


def head_tasks(model_dir: Path) -> list[str]:
    """The tasks whose model the folder's weights hold a trained head for (JSON only, no weights read).

    From ``modules.json`` (a sentence-transformers folder: sentence tasks and feature extraction)
    and ``config.json`` ``architectures`` (the classes the weights were saved from): a bare
    ``...Model`` encoder serves feature extraction and the sentence tasks; a head serves its own
    task (a sequence classifier trained on NLI labels zero-shot classification too). Empty when
    neither file names anything hubserve knows.
    """
    model_dir = Path(model_dir)
    tasks: list[str] = []
    if (model_dir / "modules.json").is_file():
        tasks += ["sentence-embeddings", "sentence-similarity", "feature-extraction"]
    try:
        config = _read_config(model_dir)
    except ValueError:
        config = {}
    architectures = config.get("architectures")
    for architecture in architectures if isinstance(architectures, list) else []:
        task = _task_for(architecture, config) if isinstance(architecture, str) else None
        if task == "feature-extraction":
            tasks += ["feature-extraction", "sentence-embeddings", "sentence-similarity"]
        elif task in ("summarization", "translation", "text2text-generation"):
            tasks += ["summarization", "translation", "text2text-generation"]
        elif task is not None:
            tasks.append(task)
        if task == "text-classification" and _nli_labels(config):
            tasks.append("zero-shot-classification")
    return list(dict.fromkeys(tasks))


def _nli_labels(config: dict[str, Any]) -> bool:
    labels = config.get("label2id")
    return isinstance(labels, dict) and any(str(label).lower().startswith("entail") for label in labels)


def _read_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.is_file():
        raise ValueError(
            f"could not infer the task of the model in {model_dir}: it has no config.json "
            f"(nor modules.json). Set model.task to one of: {', '.join(TASKS)}."
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"could not infer the task of the model in {model_dir}: config.json is unreadable "
            f"({exc}). Fix the file or set model.task."
        ) from None
    return config if isinstance(config, dict) else {}


def _task_for(architecture: str, config: dict[str, Any]) -> str | None:
    for suffix, task in _SUFFIXES:
        if architecture.endswith(suffix):
            return task
    if architecture.endswith(_SEQ2SEQ_SUFFIXES):
        if _is_encoder_decoder(architecture, config):
            return _seq2seq_task(architecture, config)
        if architecture.endswith("LMHeadModel"):
            return "text-generation"  # GPT2LMHeadModel and friends
        return None
    if architecture.endswith("Model") and "For" not in architecture:
        return "feature-extraction"  # BertModel, MPNetModel: a bare encoder
    return None


def _is_encoder_decoder(architecture: str, config: dict[str, Any]) -> bool:
    return bool(
        config.get("is_encoder_decoder")
        or config.get("model_type") in _SEQ2SEQ_MODEL_TYPES
        or architecture.endswith(("Seq2SeqLM", "MTModel"))
    )


def _seq2seq_task(architecture: str, config: dict[str, Any]) -> str:
    if architecture.endswith("MTModel"):
        return "translation"
    params = config.get("task_specific_params")
    keys = list(params) if isinstance(params, dict) else []
    if keys and all(key.startswith("translation") for key in keys):
        return "translation"
    if keys == ["summarization"]:
        return "summarization"
    return "text2text-generation"
