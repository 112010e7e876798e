"""One predictor per task: parsed request body in, JSON-able answer out.

A predictor is any callable ``predictor(data) -> result`` over the Hugging Face inference
toolkit's body ``{"inputs": ..., "parameters": {...}}``. Tasks that transformers 5 still
ships a pipeline for run that pipeline behind a parameter allowlist; sentence tasks run
sentence-transformers; question answering and the seq2seq tasks (whose pipelines
transformers 5 removed) live in ``qa`` and ``seq2seq``.

Answers take the Hugging Face inference toolkit's shapes. With ``API_INFERENCE_COMPAT`` set in
the endpoint's env (the toolkit's switch of the same name; endpoints created through the
Inference Endpoints API get it), three tasks answer in the Inference API shapes that
huggingface_hub's ``InferenceClient`` parses instead: text-classification of one input comes
back as a batch of one with the top labels (``[[{label, score}, ...]]``), zero-shot as
``[{label, score}, ...]`` per input, and sentence-similarity as the bare list of scores.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from hubserve.errors import ValidationError
from hubserve.models import requests as rq
from hubserve.models.generation import GENERATION_PARAMETERS, check_generation
from hubserve.models.jsonable import to_jsonable
from hubserve.models.weights import WeightsCheck, check_safetensors, load_pretrained, resolve_device, resolve_dtype
from hubserve.tasks import SEQ2SEQ_TASKS

if TYPE_CHECKING:
    from hubserve.models.runtimes import ModelRuntime

COMPAT_ENV = "API_INFERENCE_COMPAT"
COMPAT_TOP_K = 5  # the toolkit's DEFAULT_TOP_K: the ranking, not just the top label


def inference_api_compat() -> bool:
    """Whether this replica answers in the Inference API shapes (``COMPAT_ENV`` in its env)."""
    return os.environ.get(COMPAT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class Predictor(Protocol):
    def __call__(self, data: Any) -> Any: ...


Prepare = Callable[[Any, dict[str, Any]], tuple[Any, dict[str, Any]]]


@dataclass
class PipelinePredictor:
    """A transformers pipeline behind the toolkit's request shape and a parameter allowlist."""

    pipe: Any
    task: str
    allowed: dict[str, rq.Check]
    prepare: Prepare
    model_config: Any = field(default=None)

    def __call__(self, data: Any) -> Any:
        inputs, params = self.parse(data)
        with torch.inference_mode():
            return to_jsonable(self.pipe(inputs, **params))

    def parse(self, data: Any) -> tuple[Any, dict[str, Any]]:
        """Check one body: ``(inputs, parameters)`` as the pipeline takes them, or ValidationError."""
        inputs, parameters = rq.split_body(data, self.task)
        params = rq.check_parameters(parameters, self.allowed, self.task)
        return self.prepare(inputs, params)


# -- per-task input and parameter rules -------------------------------------------------

def _texts(task: str) -> Prepare:
    def prepare(inputs: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        items, as_list = rq.texts(inputs, task)
        return (items if as_list else items[0]), params

    return prepare


def _classification_inputs(inputs: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Strings, or ``{"text", "text_pair"}`` objects for cross-encoders, one or a list."""

    def ok(item: Any) -> bool:
        if isinstance(item, str):
            return True
        return (
            isinstance(item, dict)
            and isinstance(item.get("text"), str)
            and set(item) <= {"text", "text_pair"}
            and isinstance(item.get("text_pair", ""), str)
        )

    if ok(inputs) or (isinstance(inputs, list) and inputs and all(ok(item) for item in inputs)):
        return inputs, params
    raise ValidationError(
        "'inputs' must be a string, a {\"text\", \"text_pair\"} object, or a list of those "
        "for text-classification"
    )


def _classification_inputs_compat(inputs: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """One input runs as a batch of one with the ranking asked for, so it answers ``[[...]]``."""
    inputs, params = _classification_inputs(inputs, params)
    if not isinstance(inputs, list):
        inputs = [inputs]
        params.setdefault("top_k", COMPAT_TOP_K)
    return inputs, params


def _fill_mask_inputs(mask_token: str) -> Prepare:
    def prepare(inputs: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        items, as_list = rq.texts(inputs, "fill-mask")
        missing = [i for i, text in enumerate(items) if mask_token not in text]
        crowded = [i for i, text in enumerate(items) if text.count(mask_token) > FILL_MASK_MAX_MASKS]
        if crowded:
            where = f"input {crowded[0]}" if as_list else "the input"
            raise ValidationError(
                f"{where} has {items[crowded[0]].count(mask_token)} mask tokens; fill-mask takes at most "
                f"{FILL_MASK_MAX_MASKS} per input: split the text into several inputs"
            )
        if missing:
            where = f"input {missing[0]}" if as_list else "the input"
            raise ValidationError(
                f"{where} has no mask token; fill-mask inputs must contain {mask_token}, "
                f"e.g. \"Paris is the {mask_token} of France.\""
            )
        return (items if as_list else items[0]), params

    return prepare


def _candidate_labels(name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        labels = [label.strip() for label in value.split(",") if label.strip()]
    elif isinstance(value, list) and all(isinstance(label, str) for label in value):
        labels = [label for label in value if label.strip()]
    else:
        raise ValidationError(f"parameter '{name}' must be a list of strings or a comma-separated string")
    if not labels:
        raise ValidationError(f"parameter '{name}' is empty; give at least one label")
    return labels


def _hypothesis_template(name: str, value: Any) -> str:
    if not isinstance(value, str) or "{}" not in value:
        raise ValidationError(f"parameter '{name}' must be a string containing {{}}, e.g. \"This example is {{}}.\"")
    return value


def _zero_shot_inputs(inputs: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    if "candidate_labels" not in params:
        raise ValidationError(
            "zero-shot-classification needs parameters.candidate_labels, e.g. "
            '{"inputs": "I love travelling", "parameters": {"candidate_labels": ["travel", "cooking"]}}'
        )
    return _texts("zero-shot-classification")(inputs, params)


def _is_chat(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m for m in value)
    )


def _generation_inputs(tokenizer: Any, generation_config: Any) -> Prepare:
    def prepare(inputs: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        chat = _is_chat(inputs) or (isinstance(inputs, list) and bool(inputs) and all(_is_chat(i) for i in inputs))
        if chat and not getattr(tokenizer, "chat_template", None):
            raise ValidationError(
                "this model's tokenizer has no chat template, so 'inputs' must be a string or a "
                "list of strings, not chat messages"
            )
        if not chat:
            inputs, params = _texts("text-generation")(inputs, params)
        # As the replica's generation engine answers (models/textgen): greedy unless asked to sample,
        # and only the new text, as TGI; the pipeline's own defaults were sampling and the prompt included.
        params.setdefault("do_sample", False)
        params.setdefault("return_full_text", False)
        generation = {k: v for k, v in params.items() if k in GENERATION_PARAMETERS}
        check_generation(generation_config, generation)
        return inputs, params

    return prepare


TEXT_CLASSIFICATION_PARAMETERS: dict[str, rq.Check] = {
    "top_k": rq.nullable(rq.integer(1)),
    "function_to_apply": rq.choice(("sigmoid", "softmax", "none")),
    "truncation": rq.boolean,
    "max_length": rq.integer(1),
}
TOKEN_CLASSIFICATION_PARAMETERS: dict[str, rq.Check] = {
    "aggregation_strategy": rq.choice(("none", "simple", "first", "average", "max")),
    "ignore_labels": rq.string_list,
}
# Fill-mask scores the whole vocabulary at every mask: 500 masks with top_k 30,000 grew a tiny model's replica
# past 2 GB. Both are capped, and the error says how to split the request.
FILL_MASK_MAX_TOP_K = 100
FILL_MASK_MAX_MASKS = 16
FILL_MASK_PARAMETERS: dict[str, rq.Check] = {"top_k": rq.integer(1, FILL_MASK_MAX_TOP_K), "targets": rq.string_list}
FEATURE_EXTRACTION_PARAMETERS: dict[str, rq.Check] = {"truncation": rq.boolean}
ZERO_SHOT_PARAMETERS: dict[str, rq.Check] = {
    "candidate_labels": _candidate_labels,
    "multi_label": rq.boolean,
    "hypothesis_template": _hypothesis_template,
}
TEXT_GENERATION_PARAMETERS: dict[str, rq.Check] = {
    **GENERATION_PARAMETERS,
    "return_full_text": rq.boolean,
    "clean_up_tokenization_spaces": rq.boolean,
    "skip_special_tokens": rq.boolean,
    "prefix": rq.string,
    "stop_sequence": rq.string,
    "truncation": rq.boolean,
}

PIPELINE_TASKS: dict[str, str] = {  # task -> transformers Auto class name
    "text-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "fill-mask": "AutoModelForMaskedLM",
    "feature-extraction": "AutoModel",
    "zero-shot-classification": "AutoModelForSequenceClassification",
    "text-generation": "AutoModelForCausalLM",
}


def _pipeline_rules(task: str, model: Any, tokenizer: Any, compat: bool) -> tuple[dict[str, rq.Check], Prepare]:
    """Parameter allowlist and input check for a pipeline task."""
    if task == "text-classification":
        return TEXT_CLASSIFICATION_PARAMETERS, _classification_inputs_compat if compat else _classification_inputs
    if task == "token-classification":
        return TOKEN_CLASSIFICATION_PARAMETERS, _texts(task)
    if task == "fill-mask":
        return FILL_MASK_PARAMETERS, _fill_mask_inputs(str(tokenizer.mask_token))
    if task == "feature-extraction":
        return FEATURE_EXTRACTION_PARAMETERS, _texts(task)
    if task == "zero-shot-classification":
        return ZERO_SHOT_PARAMETERS, _zero_shot_inputs
    # text-generation; only generative models carry a generation_config in transformers 5
    return TEXT_GENERATION_PARAMETERS, _generation_inputs(tokenizer, model.generation_config)


def _pipeline_predictor(
    model_dir: Path, task: str, dtype: str, device: str, runtime: ModelRuntime | None = None,
    check: WeightsCheck | None = None,
) -> PipelinePredictor:  # fmt: skip
    import transformers

    auto_class = getattr(transformers, PIPELINE_TASKS[task])
    model, tokenizer = load_pretrained(model_dir, auto_class, dtype, device, runtime, check)
    make_pipeline: Any = transformers.pipeline  # its overloads want a literal task name
    pipe = make_pipeline(task, model=model, tokenizer=tokenizer, device=torch.device(device))
    allowed, prepare = _pipeline_rules(task, model, tokenizer, inference_api_compat())
    return PipelinePredictor(pipe=pipe, task=task, allowed=allowed, prepare=prepare, model_config=model.config)


# -- sentence-transformers ----------------------------------------------------------------

SENTENCE_PARAMETERS: dict[str, rq.Check] = {"normalize_embeddings": rq.boolean}


@dataclass
class SentenceEmbeddings:
    """``{"embeddings": ...}``: one vector for a string, a list of vectors for a list."""

    model: Any
    task: str = "sentence-embeddings"

    def __call__(self, data: Any) -> Any:
        items, as_list, params = self.parse(data)
        vectors = self.encode(items, **params)
        return {"embeddings": vectors if as_list else vectors[0]}

    def parse(self, data: Any) -> tuple[list[str], bool, dict[str, Any]]:
        """Check one body: ``(texts, whether a list was sent, parameters)``, or ValidationError."""
        inputs, parameters = rq.split_body(data, self.task)
        params = rq.check_parameters(parameters, SENTENCE_PARAMETERS, self.task)
        items, as_list = rq.texts(inputs, self.task)
        return items, as_list, params

    def encode(self, items: list[str], normalize_embeddings: bool = False, batch_size: int = 32) -> list[list[float]]:
        with torch.inference_mode():
            tensor = self.model.encode(
                items,
                batch_size=batch_size,
                convert_to_tensor=True,
                normalize_embeddings=normalize_embeddings,
                show_progress_bar=False,
            )
        result: list[list[float]] = to_jsonable(tensor)
        return result


@dataclass
class SentenceSimilarity(SentenceEmbeddings):
    """``{"similarities": [...]}``: cosine of ``source_sentence`` against each of ``sentences``."""

    task: str = "sentence-similarity"

    def __call__(self, data: Any) -> Any:
        from sentence_transformers.util import cos_sim

        source, sentences = self.parse_pair(data)
        with torch.inference_mode():
            embeddings = self.model.encode([source, *sentences], convert_to_tensor=True, show_progress_bar=False)
            scores = cos_sim(embeddings[:1], embeddings[1:])[0]
        return {"similarities": to_jsonable(scores)}

    def parse_pair(self, data: Any) -> tuple[str, list[str]]:
        """Check one body: ``(source_sentence, sentences)``, or ValidationError."""
        inputs, parameters = rq.split_body(data, self.task)
        rq.check_parameters(parameters, {}, self.task)
        return _similarity_inputs(inputs)


def _similarity_inputs(inputs: Any) -> tuple[str, list[str]]:
    example = '{"inputs": {"source_sentence": "A man is eating.", "sentences": ["A man eats.", "It rains."]}}'
    if not isinstance(inputs, dict):
        raise ValidationError(f"'inputs' must be an object with source_sentence and sentences, e.g. {example}")
    source, sentences = inputs.get("source_sentence"), inputs.get("sentences")
    if not isinstance(source, str):
        raise ValidationError(f"'inputs.source_sentence' must be a string, e.g. {example}")
    if not isinstance(sentences, list) or not sentences or not all(isinstance(s, str) for s in sentences):
        raise ValidationError(f"'inputs.sentences' must be a non-empty list of strings, e.g. {example}")
    return source, sentences


def _sentence_model(model_dir: Path, dtype: str, device: str, runtime: ModelRuntime | None = None) -> Any:
    from sentence_transformers import SentenceTransformer

    check_safetensors(model_dir)
    model = SentenceTransformer(
        str(model_dir),
        device=resolve_device(device),
        trust_remote_code=False,
        local_files_only=True,
        model_kwargs={"dtype": resolve_dtype(dtype), "use_safetensors": True},
    )
    model.eval()
    return model if runtime is None else runtime.sentence_model(model_dir, model)


# -- Inference API answer shapes (API_INFERENCE_COMPAT) ---------------------------------------

@dataclass
class InferenceApiAnswers:
    """A predictor whose answers are reshaped for the Inference API; it runs unbatched.

    ``parse`` still checks each body on arrival (a bad one is a 400 before it queues).
    """

    inner: Any
    check: Callable[[Any], Any]
    reshape: Callable[[Any], Any]

    def __call__(self, data: Any) -> Any:
        return self.reshape(to_jsonable(self.inner(data)))

    def parse(self, data: Any) -> Any:
        return self.check(data)


def _label_scores(answer: Any) -> Any:
    """Zero-shot's ``{"sequence", "labels", "scores"}`` (or a list of them) as ``[{label, score}]``."""
    if isinstance(answer, list):
        return [_label_scores(item) for item in answer]
    return [{"label": label, "score": score} for label, score in zip(answer["labels"], answer["scores"], strict=True)]


def _inference_api_answers(predictor: Any, task: str) -> Any:
    if task == "zero-shot-classification":
        return InferenceApiAnswers(predictor, predictor.parse, _label_scores)
    if task == "sentence-similarity":
        return InferenceApiAnswers(predictor, predictor.parse_pair, lambda answer: answer["similarities"])
    return predictor


# -- the factory ----------------------------------------------------------------------------

def build_predictor(
    model_dir: Path, task: str, *, dtype: str = "auto", device: str = "cpu", runtime: ModelRuntime | None = None,
    check: WeightsCheck | None = None,
) -> Predictor:  # fmt: skip
    """Load ``model_dir`` for ``task`` (a canonical task name) and return its predictor.

    ``runtime`` (onnx, onnx-int8, auto; None is torch) loads the encoder tasks' models; see ``runtimes``.
    ``check`` sees the weights a transformers checkpoint lacks for the task's model (the sentence
    tasks pool the encoder's hidden states themselves, so they have no head to miss).
    """
    model_dir = Path(model_dir)
    if task in PIPELINE_TASKS:
        pipeline = _pipeline_predictor(model_dir, task, dtype, device, runtime, check)
        return _inference_api_answers(pipeline, task) if inference_api_compat() else pipeline
    if task == "sentence-embeddings":
        return SentenceEmbeddings(_sentence_model(model_dir, dtype, device, runtime))
    if task == "sentence-similarity":
        similarity = SentenceSimilarity(_sentence_model(model_dir, dtype, device, runtime))
        return _inference_api_answers(similarity, task) if inference_api_compat() else similarity
    if task == "question-answering":
        from transformers import AutoModelForQuestionAnswering

        from hubserve.models.qa import QuestionAnswering

        return QuestionAnswering(*load_pretrained(model_dir, AutoModelForQuestionAnswering, dtype, device, runtime, check))
    if task in SEQ2SEQ_TASKS:
        from transformers import AutoModelForSeq2SeqLM

        from hubserve.models.seq2seq import Seq2SeqGenerator

        return Seq2SeqGenerator(*load_pretrained(model_dir, AutoModelForSeq2SeqLM, dtype, device, check=check), task=task)
    raise ValueError(f"hubserve has no predictor for task {task!r}")
