"""Batched prediction: many checked request bodies, one forward pass per compatible group.

The replica's batcher (``worker/batcher.py``) decides *which* requests run together; this
module decides *how*. ``prepare`` checks one parsed body (raising ValidationError, exactly as
``predict`` would) and says what it may run with (``key``: equal keys batch together, None
runs alone) and what it costs (``sequences``, ``tokens``). ``run`` flattens a group with one
key into a single list, calls the pipeline or model once, and gives every request the answer
and JSON shape it gets alone: a string input the single-input shape, a list a list (with each
pipeline's quirks: text-classification wraps a lone string's answer in a list unless
``top_k`` is given, fill-mask unwraps a list of one). If the batched call raises, each request
of the group runs alone, so only the culprit fails. ``predict_many`` is both, for any mix of
bodies.

What batches (requests with equal checked parameters):
- text-classification, token-classification, fill-mask, feature-extraction and
  zero-shot-classification: the transformers pipeline on the flat list with ``batch_size``
  (the pipeline pads each batch; feature-extraction's padded positions are cut off again);
- sentence-embeddings and sentence-similarity: one ``SentenceTransformer.encode``;
- question-answering: one forward pass over every window of every pair;
- summarization, translation, text2text-generation: one ``generate`` (the encoder pads; the
  answers were measured equal to one-by-one for greedy and beam search), except requests with
  ``max_time``, whose budget a batch would share.
What runs alone: text-generation (a decoder-only batch needs left padding and changes
position ids, so answers would differ), custom code, and predictors this module does not know.

Padding changes float results only in the last bits (measured on the tiny models and
DistilBERT: at most 2.5e-7 on scores and embeddings).

Cost: ``sequences`` counts inputs (times candidate labels for zero-shot, times beams for
seq2seq, windows for long question-answering contexts); ``tokens`` estimates each sequence as
``len(text) // 4 + 3`` (about four characters per token for English subword vocabularies, plus
special tokens), capped at the model's input length where it truncates. Counting characters
costs nothing on the replica's event loop, where costs are computed; tokenizers run only in
the inference thread.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hubserve.errors import ValidationError
from hubserve.models.jsonable import to_jsonable
from hubserve.models.loading import LoadedModel

if TYPE_CHECKING:  # torch and the predictors load with a transformers model; a scikit-learn replica never imports them
    from hubserve.models.predictors import PipelinePredictor, SentenceEmbeddings, SentenceSimilarity
    from hubserve.models.qa import QuestionAnswering
    from hubserve.models.seq2seq import Seq2SeqGenerator

_HUGE = 100_000  # tokenizers without a real limit say model_max_length = 1e30


@dataclass(frozen=True)
class Limits:
    """How much one batch may hold; a single request over either limit still runs, alone."""

    max_batch_size: int  # sequences
    max_batch_tokens: int  # estimated tokens, summed over sequences


# Measured on the quiet 2-core CPU machines with a full-size DistilBERT (docs/architecture.md,
# "Batching"): the best batch follows the tokens in it, not the sequences. 128-token inputs run
# fastest 8 at a time on every runtime (3-6 % ahead of 32: a smaller batch's activations stay in
# cache), while 20-token inputs still gain up to 32 and beyond. So the budget is in tokens: 1280
# estimated tokens is 8 inputs of 128 tokens (estimated 160 each); short inputs fill 32 sequences.
# A GPU wants far larger batches to fill it.
CPU_TOKEN_BUDGET = 1280
DEFAULT_LIMITS: dict[str, Limits] = {
    "torch": Limits(32, CPU_TOKEN_BUDGET),
    "onnx": Limits(32, CPU_TOKEN_BUDGET),
    "onnx-int8": Limits(32, CPU_TOKEN_BUDGET),
}
CUDA_LIMITS = Limits(128, 65536)


def default_limits(runtime: str, device: str = "cpu") -> Limits:
    """The limits for a replica on ``runtime`` ("torch", "onnx", "onnx-int8") and ``device``."""
    if device.startswith("cuda"):
        return CUDA_LIMITS
    return DEFAULT_LIMITS.get(runtime, DEFAULT_LIMITS["torch"])


@dataclass(eq=False)
class Prepared:
    """One checked request body, ready to run alone or with others of the same ``key``."""

    body: Any  # the parsed body, to run it alone
    kind: _Kind
    key: Hashable | None  # None: never batched
    items: list[Any]  # its inputs, flat
    as_list: bool  # the client sent a list
    params: Any  # checked parameters (the same for every member of a group)
    sequences: int = 1
    tokens: int = 0


def prepare(model: LoadedModel, body: Any) -> Prepared:
    """Check ``body`` for ``model``; raises ValidationError as ``model.predict(body)`` would."""
    return _kind_of(model).prepare(model, body)


def run(model: LoadedModel, group: Sequence[Prepared], batch_size: int) -> list[Any]:
    """Answer a group with one key: a JSON-able result or an Exception per request, in order.

    ``batch_size`` bounds the sequences of one forward pass inside the call (pipelines and
    sentence-transformers split longer lists themselves).
    """
    if not group:
        return []
    if group[0].key is not None:
        try:
            results = group[0].kind.run(model, group, max(1, batch_size))
            return [to_jsonable(result) for result in results]
        except ValidationError as exc:
            if len(group) == 1:
                return [exc]  # its own input, and alone it would say the same
        except Exception:  # someone's input broke the batch (or its padding did): find out whose
            pass
    return [_alone(model, prepared.body) for prepared in group]


def predict_many(model: LoadedModel, bodies: Sequence[Any], batch_size: int | None = None) -> list[Any]:
    """Answer each parsed body as ``model.predict`` would: a result or an Exception per body.

    Bodies with compatible parameters run together, at most ``batch_size`` sequences per call
    (default: the runtime's ``max_batch_size``), never splitting one body.
    """
    limit = batch_size or default_limits(str(model.runtime_info.get("chosen", "torch"))).max_batch_size
    results: list[Any] = [None] * len(bodies)
    groups: dict[Hashable, list[tuple[int, Prepared]]] = {}
    for index, body in enumerate(bodies):
        try:
            prepared = prepare(model, body)
        except Exception as exc:  # this body's own answer
            results[index] = exc
            continue
        key = prepared.key if prepared.key is not None else ("alone", index)
        groups.setdefault(key, []).append((index, prepared))
    for members in groups.values():
        for chunk in _chunks(members, limit):
            for (index, _), result in zip(chunk, run(model, [p for _, p in chunk], limit), strict=True):
                results[index] = result
    return results


def _chunks(members: list[tuple[int, Prepared]], limit: int) -> list[list[tuple[int, Prepared]]]:
    chunks: list[list[tuple[int, Prepared]]] = []
    size = 0
    for member in members:
        if not chunks or size + member[1].sequences > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(member)
        size += member[1].sequences
    return chunks


def _alone(model: LoadedModel, body: Any) -> Any:
    try:
        return model.predict(body)
    except Exception as exc:  # returned, not raised: it is this request's answer
        return exc


# -- per-task ways of batching ----------------------------------------------------------------


def _tokens(text: str, cap: int | None = None) -> int:
    estimate = len(text) // 4 + 3
    return estimate if cap is None else min(estimate, cap)


def _max_len(tokenizer: Any) -> int | None:
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit < _HUGE else None


def _key(kind: _Kind, params: Any) -> str:
    return kind.name + json.dumps(params, sort_keys=True, default=repr)


def _split(group: Sequence[Prepared], flat: Sequence[Any]) -> list[list[Any]]:
    """Cut flat per-item outputs back into one list per request."""
    parts, start = [], 0
    for prepared in group:
        parts.append(list(flat[start : start + len(prepared.items)]))
        start += len(prepared.items)
    return parts


class _Kind:
    name = "alone"

    def prepare(self, model: LoadedModel, body: Any) -> Prepared:
        parse = getattr(model.predictor, "parse", None)
        if callable(parse) and not model.custom:
            parse(body)  # check on arrival; the request still runs through predict
        return Prepared(body, self, None, [body], False, None)

    def run(self, model: LoadedModel, group: Sequence[Prepared], batch_size: int) -> list[Any]:
        raise NotImplementedError  # never called: key None runs alone


class _Pipeline(_Kind):
    """The transformers pipeline tasks that take a list and ``batch_size``."""

    name = "pipeline"
    TASKS = ("text-classification", "token-classification", "fill-mask", "feature-extraction",
             "zero-shot-classification")  # fmt: skip

    def prepare(self, model: LoadedModel, body: Any) -> Prepared:
        predictor: PipelinePredictor = model.predictor  # type: ignore[assignment]
        inputs, params = predictor.parse(body)
        as_list = isinstance(inputs, list)
        items = list(inputs) if as_list else [inputs]
        cap = _max_len(predictor.pipe.tokenizer) if params.get("truncation") else None
        tokens = [_tokens(_text_of(item), cap) for item in items]
        if predictor.task == "zero-shot-classification":
            labels = params["candidate_labels"]
            per_label = len(params.get("hypothesis_template", "This example is {}.")) // 4
            sequences = len(items) * len(labels)
            total = sum(t + per_label + len(label) // 4 for t in tokens for label in labels)
        else:
            sequences, total = len(items), sum(tokens)
        key = _key(self, [predictor.task, params])
        return Prepared(body, self, key, items, as_list, params, sequences, total)

    def run(self, model: LoadedModel, group: Sequence[Prepared], batch_size: int) -> list[Any]:
        predictor: PipelinePredictor = model.predictor  # type: ignore[assignment]
        task, params = predictor.task, group[0].params
        flat = [item for prepared in group for item in prepared.items]
        import torch

        with torch.inference_mode():
            outputs = predictor.pipe(flat, batch_size=min(batch_size, sum(p.sequences for p in group)), **params)
        if task == "fill-mask" and len(flat) == 1:
            outputs = [outputs]  # the fill-mask pipeline unwraps a list of one
        if task == "feature-extraction":
            outputs = _unpad(predictor, flat, params, outputs)
        results = []
        for prepared, mine in zip(group, _split(group, outputs), strict=True):
            if prepared.as_list:
                results.append(mine[0] if task == "fill-mask" and len(mine) == 1 else mine)
            elif task == "text-classification" and isinstance(prepared.items[0], str) and "top_k" not in params:
                results.append(mine)  # a lone string's labels come wrapped in a list
            else:
                results.append(mine[0])
        return results


def _text_of(item: Any) -> str:
    if isinstance(item, dict):  # text-classification's {"text", "text_pair"}
        return str(item.get("text", "")) + " " + str(item.get("text_pair", ""))
    return str(item)


def _unpad(predictor: PipelinePredictor, flat: list[str], params: dict[str, Any], outputs: list[Any]) -> list[Any]:
    """Feature-extraction returns every position of the padded batch: keep each input's own."""
    tokenizer = predictor.pipe.tokenizer
    kwargs = {"truncation": params["truncation"]} if "truncation" in params else {}
    lengths = [len(ids) for ids in tokenizer(flat, **kwargs)["input_ids"]]
    left = getattr(tokenizer, "padding_side", "right") == "left"
    trimmed = []
    for output, length in zip(outputs, lengths, strict=True):
        rows = output[0]  # [1 (batch), positions, hidden]
        trimmed.append([rows[len(rows) - length :] if left else rows[:length]])
    return trimmed


class _Embeddings(_Kind):
    name = "embeddings"

    def prepare(self, model: LoadedModel, body: Any) -> Prepared:
        predictor: SentenceEmbeddings = model.predictor  # type: ignore[assignment]
        items, as_list, params = predictor.parse(body)
        cap = _max_len(getattr(predictor.model, "tokenizer", None))
        tokens = sum(_tokens(item, cap) for item in items)
        return Prepared(body, self, _key(self, params), items, as_list, params, len(items), tokens)

    def run(self, model: LoadedModel, group: Sequence[Prepared], batch_size: int) -> list[Any]:
        predictor: SentenceEmbeddings = model.predictor  # type: ignore[assignment]
        flat = [item for prepared in group for item in prepared.items]
        vectors = predictor.encode(flat, batch_size=batch_size, **group[0].params)
        return [
            {"embeddings": mine if prepared.as_list else mine[0]}
            for prepared, mine in zip(group, _split(group, vectors), strict=True)
        ]


class _Similarity(_Kind):
    name = "similarity"

    def prepare(self, model: LoadedModel, body: Any) -> Prepared:
        predictor: SentenceSimilarity = model.predictor  # type: ignore[assignment]
        source, sentences = predictor.parse_pair(body)
        items = [source, *sentences]
        cap = _max_len(getattr(predictor.model, "tokenizer", None))
        tokens = sum(_tokens(item, cap) for item in items)
        return Prepared(body, self, self.name, items, False, {}, len(items), tokens)

    def run(self, model: LoadedModel, group: Sequence[Prepared], batch_size: int) -> list[Any]:
        from sentence_transformers.util import cos_sim

        predictor: SentenceSimilarity = model.predictor  # type: ignore[assignment]
        flat = [item for prepared in group for item in prepared.items]
        results, start = [], 0
        import torch

        with torch.inference_mode():
            embeddings = predictor.model.encode(
                flat, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False
            )
            for prepared in group:
                end = start + len(prepared.items)
                scores = cos_sim(embeddings[start : start + 1], embeddings[start + 1 : end])[0]
                results.append({"similarities": to_jsonable(scores)})
                start = end
        return results


class _QuestionAnswering(_Kind):
    name = "qa"

    def prepare(self, model: LoadedModel, body: Any) -> Prepared:
        predictor = model.predictor
        pairs, as_list, params = predictor.parse(body)  # type: ignore[attr-defined]
        window = params.get("max_seq_len") or predictor.default_max_seq_len  # type: ignore[attr-defined]
        lengths = [_tokens(question + " " + context) for question, context in pairs]
        sequences = sum(max(1, math.ceil(length / window)) for length in lengths)  # windows
        return Prepared(body, self, _key(self, params), list(pairs), as_list, params, sequences, sum(lengths))

    def run(self, model: LoadedModel, group: Sequence[Prepared], batch_size: int) -> list[Any]:
        flat = [pair for prepared in group for pair in prepared.items]
        answers = model.predictor.answer(flat, group[0].params)  # type: ignore[attr-defined]
        return [
            mine if prepared.as_list else mine[0] for prepared, mine in zip(group, _split(group, answers), strict=True)
        ]


class _Seq2Seq(_Kind):
    name = "seq2seq"

    def prepare(self, model: LoadedModel, body: Any) -> Prepared:
        predictor = model.predictor
        texts, as_list, settings = predictor.parse(body)  # type: ignore[attr-defined]
        generation = settings["generation"]
        beams = int(generation.get("num_beams") or getattr(predictor.model.generation_config, "num_beams", 1) or 1)  # type: ignore[attr-defined]
        cap = predictor.max_input_len if settings["truncation"] else None  # type: ignore[attr-defined]
        tokens = sum(_tokens(text, cap) for text in texts) * beams
        key = None if generation.get("max_time") is not None else _key(self, settings)
        return Prepared(body, self, key, texts, as_list, settings, len(texts) * beams, tokens)

    def run(self, model: LoadedModel, group: Sequence[Prepared], batch_size: int) -> list[Any]:
        flat = [text for prepared in group for text in prepared.items]
        grouped = model.predictor.generate(flat, group[0].params)  # type: ignore[attr-defined]
        results = []
        for prepared, mine in zip(group, _split(group, grouped), strict=True):
            if not prepared.as_list:
                results.append(mine[0])
            else:
                results.append([answers[0] for answers in mine] if len(mine[0]) == 1 else mine)
        return results


_ALONE, _PIPELINE, _EMBEDDINGS, _SIMILARITY = _Kind(), _Pipeline(), _Embeddings(), _Similarity()
_QA, _SEQ2SEQ = _QuestionAnswering(), _Seq2Seq()


@functools.cache
def _torch_predictor_classes() -> tuple[
    type[PipelinePredictor],
    type[SentenceSimilarity],
    type[SentenceEmbeddings],
    type[QuestionAnswering],
    type[Seq2SeqGenerator],
]:
    """The transformers predictors' classes, imported on the first request to one (never in a scikit-learn
    replica, which cannot import torch), then looked up once per request instead of imported."""
    from hubserve.models.predictors import PipelinePredictor, SentenceEmbeddings, SentenceSimilarity
    from hubserve.models.qa import QuestionAnswering
    from hubserve.models.seq2seq import Seq2SeqGenerator

    return PipelinePredictor, SentenceSimilarity, SentenceEmbeddings, QuestionAnswering, Seq2SeqGenerator


def _kind_of(model: LoadedModel) -> _Kind:
    if model.custom or model.framework != "pytorch":
        return _ALONE  # user code, or a scikit-learn model: one vectorised call per request
    PipelinePredictor, SentenceSimilarity, SentenceEmbeddings, QuestionAnswering, Seq2SeqGenerator = (
        _torch_predictor_classes()
    )
    predictor = model.predictor
    if isinstance(predictor, PipelinePredictor):
        return _PIPELINE if predictor.task in _Pipeline.TASKS else _ALONE
    if isinstance(predictor, SentenceSimilarity):  # before SentenceEmbeddings: a subclass of it
        return _SIMILARITY
    if isinstance(predictor, SentenceEmbeddings):
        return _EMBEDDINGS
    if isinstance(predictor, QuestionAnswering):
        return _QA
    if isinstance(predictor, Seq2SeqGenerator):
        return _SEQ2SEQ
    return _ALONE
